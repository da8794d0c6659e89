#!/usr/bin/env bash
# soak.sh [MINUTES] [plain|asan|tsan] [-- SOAK ARGS...]
# Builds asyncpool and runs the soak (test/soak) for MINUTES (default 10) in the given
# build (default plain), with the environment ctest gives it. Extra arguments after --
# go to the soak (e.g. --seed N, --workers 1 --capacity 1; soak --help lists them).
# Exits with the soak's status: 0 pass, 1 a check failed, 2 something hung.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10 kind=plain
if [ $# -gt 0 ] && [ "$1" != "--" ]; then minutes=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then kind=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
case "$minutes" in '' | *[!0-9]*) echo "usage: $0 [minutes] [plain|asan|tsan] [-- soak args]" >&2; exit 64 ;; esac

env=()
case "$kind" in
plain) dir=build; cargs=() ;;
asan)
  dir=build-asan; cargs=(-DASYNCPOOL_SANITIZE=address)
  env=("ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0"
       "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1") ;;
tsan)
  dir=build-tsan; cargs=(-DASYNCPOOL_SANITIZE=thread)
  env=("TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/$dir/test/soak-tsan.supp"
       "AP_UNDER_TSAN=1") ;;
*) echo "usage: $0 [minutes] [plain|asan|tsan] [-- soak args]" >&2; exit 64 ;;
esac

echo "=== building ($kind) in $dir"
scripts/build.sh "$dir" "${cargs[@]}"
echo "=== soak: $minutes min ($kind)"
exec env "OPENSSL_MODULES=$PWD/$dir/provider" "${env[@]}" \
  "$dir/test/soak" --seconds "$((minutes * 60))" "$@"
