#!/usr/bin/env bash
# A Debian trixie root (debootstrap) with trixie's own OpenSSL (3.5.x) and what asyncpool
# needs to build and run its plain test suite, kept between runs, and a way to run a
# command in it over this checkout. Needs root.
#
#   scripts/trixie.sh ensure        build the root unless it is there and current
#   scripts/trixie.sh run CMD...    run CMD inside the root, in this checkout's directory
#
# ASYNCPOOL_TRIXIE_ROOT    where the root lives; default /var/cache/asyncpool/trixie-root,
#                          outside the source tree so that clean clones reuse it
# ASYNCPOOL_DEBIAN_MIRROR  the Debian mirror to bootstrap from; default: the one this
#                          machine's apt sources use for its own release
#
# The root is current when its stamp records the same format, suite and package list as
# this script; otherwise it is built beside the old one and swapped in (a root whose
# build was interrupted is never taken for current). A lock beside the root keeps a
# rebuild from pulling the root from under another run that is using it.
#
# `run` makes its mounts (/proc, /sys, /dev, a fresh tmpfs on /tmp, and the checkout's
# parent directory at its own path, so ../shared is seen as on the host) in a private
# mount namespace: they are never visible to the host or to another run, and they go
# away with the command on every exit path, SIGKILL included, so there is nothing to
# unmount. The command gets a clean environment (PATH, HOME, LANG, TERM).
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${ASYNCPOOL_TRIXIE_ROOT:-/var/cache/asyncpool/trixie-root}
SUITE=trixie
# The plain suite's needs: build tools and libraries, the openssl CLI, curl and procps/
# iproute2 (ps, ss) for the script tests. Not valgrind: test.sh leaves the valgrind re-runs
# to the bookworm build. Not nginx-light: only bench/ uses it. libc6-dev: gcc only
# recommends it.
PKGS=(cmake gcc libc6-dev make pkg-config openssl libssl-dev liburcu-dev check
      libjson-c-dev curl procps iproute2)
STAMP_FILE=.asyncpool-root-stamp
STAMP="format=1 suite=$SUITE variant=minbase packages=${PKGS[*]}"

die() { echo "trixie: $*" >&2; exit 1; }

# The first URI of the apt source that serves this machine's own release (not -security,
# not a third-party repository), from deb822 .sources files or one-line .list files.
host_mirror() {
  local codename files=()
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || return 1
  shopt -s nullglob
  files=(/etc/apt/sources.list.d/*.sources)
  if [ ${#files[@]} -gt 0 ]; then
    awk -v want="$codename" '
      function flush() {
        if (!found && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " want " ") &&
            tolower(enabled) != "no" && uris != "") {
          split(uris, u, " "); print u[1]; found = 1
        }
        types = uris = suites = enabled = ""
      }
      FNR == 1 { flush() }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { k = tolower($1); sub(/:$/, "", k); $1 = ""; sub(/^[ \t]+/, "")
        if (k == "types") types = $0; else if (k == "uris") uris = $0
        else if (k == "suites") suites = $0; else if (k == "enabled") enabled = $0 }
      END { flush() }' "${files[@]}" | head -1
  fi
  files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  [ ${#files[@]} -gt 0 ] && awk -v want="$codename" '
      $1 == "deb" { i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit } }' "${files[@]}" 2>/dev/null | head -1
  return 0
}

current() { [ "$(cat "$ROOT/$STAMP_FILE" 2>/dev/null)" = "$STAMP" ]; }

build_root() {
  local mirror new=$ROOT.new log=$ROOT.log t0=$SECONDS
  mirror=${ASYNCPOOL_DEBIAN_MIRROR:-$(host_mirror | head -1)}
  [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources; set ASYNCPOOL_DEBIAN_MIRROR"
  command -v debootstrap >/dev/null || scripts/deps.sh debootstrap
  echo "trixie: building $ROOT (debootstrap $SUITE from $mirror, then ${PKGS[*]}; log $log)"
  rm -rf --one-file-system "$new"
  # In a private mount namespace: debootstrap and apt mount /proc and /sys in the new
  # root, and an interrupted build must not leave them mounted.
  if ! unshare --mount --propagation private bash -euo pipefail -c '
      new=$1 mirror=$2 suite=$3; shift 3
      debootstrap --variant=minbase "$suite" "$new" "$mirror"
      [ -s "$new/etc/hosts" ] || printf "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" >"$new/etc/hosts"
      mountpoint -q "$new/proc" || mount -t proc proc "$new/proc"
      mount --rbind /dev "$new/dev"
      export DEBIAN_FRONTEND=noninteractive
      chroot "$new" apt-get update -qq
      chroot "$new" apt-get install -y -qq --no-install-recommends "$@"
      chroot "$new" apt-get clean' _ "$new" "$mirror" "$SUITE" "${PKGS[@]}" >"$log" 2>&1; then
    tail -30 "$log" >&2
    die "building the root failed (full log: $log)"
  fi
  echo "$STAMP" >"$new/$STAMP_FILE"
  rm -rf --one-file-system "$ROOT"
  mv "$new" "$ROOT"
  echo "trixie: root ready in $((SECONDS - t0)) s: $(chroot "$ROOT" openssl version)"
}

# Leaves the lock (fd 9) held shared, with the root current.
ensure() {
  mkdir -p "$(dirname "$ROOT")"
  exec 9>>"$ROOT.lock"
  flock -s 9
  current && return
  flock -u 9
  flock -x 9
  current || build_root
  flock -s 9
}

run() {
  [ $# -gt 0 ] || die "run: no command"
  ensure
  local src parent shared commit
  src=$(pwd -P)
  parent=$(dirname "$src")
  # ../shared (the Wycheproof vectors) may be a link out of the parent: bind its target.
  shared=$(readlink -f "$parent/shared" 2>/dev/null || true)
  case "$shared" in "$parent"/*) shared='' ;; esac
  [ -d "$shared" ] || shared=''
  # The root has no git: the commit (for bench reports) is read here.
  commit=$(git -C "$src" describe --always --dirty 2>/dev/null || echo unknown)
  # exec: the command takes this process's place (a signal to it reaches the command) and
  # inherits the shared lock, which it holds until it ends.
  exec unshare --mount --propagation private bash -euo pipefail -c '
      r=$1 src=$2 parent=$3 shared=$4 ap_commit=$5; shift 5
      mount -t proc proc "$r/proc"
      mount --rbind /sys "$r/sys"
      mount --rbind /dev "$r/dev"
      mount -t tmpfs tmpfs "$r/tmp"
      for d in "$parent" ${shared:+"$shared"}; do mkdir -p "$r$d"; mount --rbind "$d" "$r$d"; done
      exec chroot "$r" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" AP_COMMIT="$ap_commit" \
        bash -c "cd \"\$0\" && exec \"\$@\"" "$src" "$@"' _ "$ROOT" "$src" "$parent" "$shared" "$commit" "$@"
}

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"
case "${1:-}" in
  ensure) ensure ;;
  run) shift; run "$@" ;;
  *) die "usage: scripts/trixie.sh ensure | run CMD..." ;;
esac
