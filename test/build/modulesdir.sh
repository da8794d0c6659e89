#!/usr/bin/env bash
# The install folder follows the OpenSSL that find_package found, not the system's
# pkg-config: configures the project (no build) against fake OpenSSL prefixes made of the
# real headers and libraries, and reads OPENSSL_MODULESDIR from each cache.
set -euo pipefail
: "${ASYNCPOOL_SRC:?run through ctest}" "${ASYNCPOOL_BUILD:?}"
CMAKE=${AP_CMAKE:-cmake}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cached() { # cached BUILD_DIR VAR: a variable from a CMakeCache.txt
  sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt"
}
configure() { # configure NAME cmake-args...: a fresh (or existing) build dir $TMP/NAME
  local name=$1; shift
  "$CMAKE" -S "$ASYNCPOOL_SRC" -B "$TMP/$name" -DBUILD_TESTING=OFF "$@" \
    >"$TMP/$name.log" 2>&1 || { cat "$TMP/$name.log" >&2; fail "$name: cmake failed"; }
}
expect() { # expect NAME VAR VALUE
  local v; v=$(cached "$TMP/$1" "$2")
  [ "$v" = "$3" ] || fail "$1: $2 is '$v', expected '$3'"
  echo "ok: $1: $2=$v"
}

# What the build under test found: the real OpenSSL to borrow from.
crypto=$(cached "$ASYNCPOOL_BUILD" OPENSSL_CRYPTO_LIBRARY)
ssl=$(cached "$ASYNCPOOL_BUILD" OPENSSL_SSL_LIBRARY)
inc=$(cached "$ASYNCPOOL_BUILD" OPENSSL_INCLUDE_DIR)
[ -f "$crypto" ] && [ -f "$ssl" ] && [ -d "$inc/openssl" ] ||
  fail "no OpenSSL in $ASYNCPOOL_BUILD/CMakeCache.txt ('$crypto' '$ssl' '$inc')"

# fake PREFIX LIBDIR [MODULESDIR]: an OpenSSL prefix; with MODULESDIR, a libcrypto.pc
# in LIBDIR/pkgconfig that says so.
fake() {
  mkdir -p "$1/include" "$1/$2"
  ln -s "$inc/openssl" "$1/include/openssl"
  ln -s "$crypto" "$1/$2/libcrypto.so"
  ln -s "$ssl" "$1/$2/libssl.so"
  if [ $# -gt 2 ]; then
    mkdir -p "$1/$2/pkgconfig"
    printf 'prefix=%s\nlibdir=${prefix}/%s\nmodulesdir=%s\n\nName: OpenSSL-libcrypto\nDescription: fake\nVersion: 3.0.0\nLibs: -L${libdir} -lcrypto\n' \
      "$1" "$2" "$3" >"$1/$2/pkgconfig/libcrypto.pc"
  fi
}

# 1. The system OpenSSL: its pkg-config modulesdir, which is where its libcrypto looks
#    (openssl version -m).
configure system
sysdir=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
[ -n "$sysdir" ] || fail "openssl version -m printed no MODULESDIR"
expect system OPENSSL_MODULESDIR "$sysdir"

# 2. -DOPENSSL_ROOT_DIR with a libcrypto.pc: that .pc's modulesdir, even with the
#    system's (or another) libcrypto.pc first on PKG_CONFIG_PATH.
fake "$TMP/ossl-pc" lib64 "$TMP/ossl-pc/lib64/ossl-modules-from-pc"
mkdir -p "$TMP/decoy"
printf 'modulesdir=/decoy/ossl-modules\n\nName: OpenSSL-libcrypto\nDescription: decoy\nVersion: 3.0.0\nLibs: -lcrypto\n' \
  >"$TMP/decoy/libcrypto.pc"
PKG_CONFIG_PATH=$TMP/decoy configure root-pc -DOPENSSL_ROOT_DIR="$TMP/ossl-pc"
expect root-pc OPENSSL_CRYPTO_LIBRARY "$TMP/ossl-pc/lib64/libcrypto.so"
expect root-pc OPENSSL_MODULESDIR "$TMP/ossl-pc/lib64/ossl-modules-from-pc"

# 3. Without a libcrypto.pc: OpenSSL's default layout, <libdir>/ossl-modules.
fake "$TMP/ossl-nopc" lib
configure root-nopc -DOPENSSL_ROOT_DIR="$TMP/ossl-nopc"
expect root-nopc OPENSSL_CRYPTO_LIBRARY "$TMP/ossl-nopc/lib/libcrypto.so"
expect root-nopc OPENSSL_MODULESDIR "$TMP/ossl-nopc/lib/ossl-modules"

# 4. A reconfigure that finds another libcrypto moves a derived value along...
configure root-nopc -DOPENSSL_CRYPTO_LIBRARY="$TMP/ossl-pc/lib64/libcrypto.so"
expect root-nopc OPENSSL_MODULESDIR "$TMP/ossl-pc/lib64/ossl-modules-from-pc"

# 5. ...but never one set by hand.
configure manual -DOPENSSL_ROOT_DIR="$TMP/ossl-pc" -DOPENSSL_MODULESDIR=/opt/by-hand
expect manual OPENSSL_MODULESDIR /opt/by-hand
configure manual -DOPENSSL_CRYPTO_LIBRARY="$TMP/ossl-nopc/lib/libcrypto.so"
expect manual OPENSSL_MODULESDIR /opt/by-hand
