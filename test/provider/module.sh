#!/usr/bin/env bash
# The module as a packager sees it: only OSSL_provider_init is exported, and
# `cmake --install` puts asyncpool.so in the modules directory and the config beside
# the docs.
set -euo pipefail
# fail(), and an openssl() that preloads ASan when the module is an ASan build; $TMP.
. "$(dirname "$0")/cli_lib.sh"
so="$ASYNCPOOL_BUILD/provider/asyncpool.so"
[ -f "$so" ] || { echo "FAIL: $so not built"; exit 1; }

exports=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
if [ "$exports" != "OSSL_provider_init" ]; then
  echo "FAIL: exported symbols are:"; echo "$exports"; exit 1
fi
echo "ok: only OSSL_provider_init is exported"

# Thread-locals are initial-exec (offload/offload.c says why): a call to __tls_get_addr
# would mean a general-dynamic one slipped in.
undef=$(nm -D --undefined-only "$so")
if grep -q '__tls_get_addr' <<<"$undef"; then
  echo "FAIL: the module calls __tls_get_addr (a general-dynamic thread-local):"
  objdump -dr "$so" | grep -B3 '__tls_get_addr' | head -20; exit 1
fi
echo "ok: no general-dynamic thread-locals"

dest=$TMP/destdir
DESTDIR="$dest" cmake --install "$ASYNCPOOL_BUILD" >/dev/null
modulesdir=$(grep -E '^OPENSSL_MODULESDIR:' "$ASYNCPOOL_BUILD/CMakeCache.txt" | cut -d= -f2)
[ -n "$modulesdir" ] || { echo "FAIL: no OPENSSL_MODULESDIR in the cache"; exit 1; }
[ -f "$dest$modulesdir/asyncpool.so" ] || { echo "FAIL: $modulesdir/asyncpool.so not installed"; find "$dest"; exit 1; }
cnf=$(find "$dest" -name openssl-async.cnf | head -1)
[ -n "$cnf" ] || { echo "FAIL: openssl-async.cnf not installed"; find "$dest"; exit 1; }
echo "ok: installed $modulesdir/asyncpool.so and ${cnf#$dest}"

# The installed module loads from its installed place.
out=$(OPENSSL_MODULES="$dest$modulesdir" OPENSSL_CONF="$cnf" openssl list -providers)
grep -q 'name: asyncpool' <<<"$out" || { echo "FAIL: installed module does not load"; echo "$out"; exit 1; }
echo "ok: the installed module loads with the installed config"
