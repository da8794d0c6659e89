#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest:
#   1. plain build (-Werror): every test, including the valgrind runs (label "valgrind")
#   2. ASan+UBSan build: every test but the valgrind runs
#   3. ThreadSanitizer build: the threaded offload/async_core tests (label "threads")
# Ends with one line "asyncpool tests: N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1

total_pass=0 total_fail=0 status=0
suite() { # suite NAME DIR CMAKE_ARGS -- CTEST_ARGS
  local name=$1 dir=$2; shift 2
  local cargs=() targs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do cargs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targs=("$@")
  echo "=== [$name] building in $dir"
  if ! scripts/build.sh "$dir" "${cargs[@]}"; then
    echo "=== [$name] BUILD FAILED"; total_fail=$((total_fail + 1)); status=1; return
  fi
  echo "=== [$name] running ctest ${targs[*]}"
  local log; log=$(mktemp)
  (cd "$dir" && ctest --output-on-failure --timeout 900 "${targs[@]}") 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line; line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  local nfail ntot
  nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  ntot=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  if [ -z "$line" ]; then
    echo "=== [$name] ran no test"; total_fail=$((total_fail + 1)); status=1
  else
    total_pass=$((total_pass + ntot - nfail)); total_fail=$((total_fail + nfail))
  fi
  [ "$rc" -ne 0 ] && status=1
  rm -f "$log"
}

suite plain build -- -j2
suite asan+ubsan build-asan -DASYNCPOOL_SANITIZE=address -- -LE valgrind -j2
suite tsan build-tsan -DASYNCPOOL_SANITIZE=thread -- -L threads -LE valgrind

echo "asyncpool tests: $total_pass passed, $total_fail failed"
exit $status
