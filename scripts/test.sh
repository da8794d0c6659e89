#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest:
#   plain   plain build (-Werror): every test, including the valgrind runs (label "valgrind")
#   asan    ASan+UBSan build: every test but the valgrind runs
#   tsan    ThreadSanitizer build: the threaded offload/async_core tests (label "threads")
#   trixie  plain build (-Werror) against Debian trixie's OpenSSL (3.5.x) in a debootstrap
#           root kept in /var/cache/asyncpool (scripts/trixie.sh): every test but the
#           valgrind runs, which the first suite already makes
# The first three use this machine's OpenSSL (Debian bookworm: 3.0.x).
#   scripts/test.sh --only trixie        only the named suites (comma separated)
# Ends with one line "asyncpool tests: N passed, N failed, N skipped" over every suite run,
# and exits non-zero on any failure (a skipped test, e.g. tls_haproxy where haproxy is not
# installed, is not a failure and not a pass).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

ALL=plain,asan,tsan,trixie
only=$ALL
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=${2:-}; shift 2 || shift ;;
    --only=*) only=${1#--only=}; shift ;;
    *) echo "usage: scripts/test.sh [--only SUITE[,SUITE...]]   suites: $ALL" >&2; exit 2 ;;
  esac
done
for s in ${only//,/ }; do
  [[ ",$ALL," == *",$s,"* ]] || { echo "test.sh: no suite '$s' (suites: $ALL)" >&2; exit 2; }
done
[ -n "${only//,/}" ] || { echo "test.sh: --only needs a suite ($ALL)" >&2; exit 2; }
want() { [[ ",$only," == *",$1,"* ]]; }

if want plain || want asan || want tsan; then
  scripts/deps.sh || exit 1
fi

total_pass=0 total_fail=0 total_skip=0 status=0 report=()
RUN=() # the command that builds and runs a suite's tests in its place (empty: here)
suite() { # suite NAME DIR CMAKE_ARGS -- CTEST_ARGS
  local name=$1 dir=$2 t0=$SECONDS; shift 2
  local cargs=() targs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cargs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targs=("$@")
  echo "=== [$name] building in $dir"
  if ! "${RUN[@]}" scripts/build.sh "$dir" "${cargs[@]}"; then
    echo "=== [$name] BUILD FAILED"; total_fail=$((total_fail + 1)); status=1
    report+=("[$name] build failed, $((SECONDS - t0)) s"); return
  fi
  echo "=== [$name] running ctest ${targs[*]}"
  local log; log=$(mktemp)
  "${RUN[@]}" ctest --test-dir "$dir" --output-on-failure --timeout 900 "${targs[@]}" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line; line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  local nfail ntot nskip
  nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  ntot=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  # ctest counts a skipped test (SKIP_RETURN_CODE: a tool or module missing) as passed;
  # it is not: count it apart, by the names ctest lists as "(Skipped)".
  nskip=$(grep -cE "^[[:space:]]+[0-9]+ - .* \(Skipped\)\$" "$log" || true)
  if [ -z "$line" ]; then
    echo "=== [$name] ran no test"; total_fail=$((total_fail + 1)); status=1
    report+=("[$name] ran no test, $((SECONDS - t0)) s")
  else
    total_pass=$((total_pass + ntot - nfail - nskip)); total_fail=$((total_fail + nfail))
    total_skip=$((total_skip + nskip))
    line="$((ntot - nfail - nskip)) passed, $nfail failed, $nskip skipped"
    report+=("[$name] $line, $((SECONDS - t0)) s")
  fi
  [ "$rc" -ne 0 ] && status=1
  rm -f "$log"
}

want plain && suite plain build -- -j2
want asan && suite asan+ubsan build-asan -DASYNCPOOL_SANITIZE=address -- -LE valgrind -j2
want tsan && suite tsan build-tsan -DASYNCPOOL_SANITIZE=thread -- -L threads -LE valgrind
if want trixie; then
  t0=$SECONDS
  echo "=== [trixie] preparing the Debian trixie root"
  if scripts/trixie.sh ensure && ver=$(scripts/trixie.sh run openssl version); then
    echo "=== [trixie] root ready, $ver, $((SECONDS - t0)) s"
    report+=("[trixie root] $((SECONDS - t0)) s")
    ver=$(awk '{split($2, v, "."); print v[1] "." v[2]}' <<<"$ver")
    RUN=(scripts/trixie.sh run)
    suite "plain (OpenSSL $ver trixie)" build-trixie -- -LE valgrind -j2
    RUN=()
  else
    echo "=== [trixie] ROOT FAILED"; total_fail=$((total_fail + 1)); status=1
    report+=("[trixie root] failed, $((SECONDS - t0)) s")
  fi
fi

printf '%s\n' "${report[@]}"
echo "asyncpool tests: $total_pass passed, $total_fail failed, $total_skip skipped"
exit $status
