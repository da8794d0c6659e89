#!/usr/bin/env bash
# The synchronous path's cost, counted in instructions (callgrind), so that the answer
# does not depend on how busy the machine is: for each operation, N calls through the
# default provider and N through asyncpool outside any async job, instructions per
# call, and the ratio. Goal: asyncpool within 3% of default.
#
# usage: bench/sync_overhead.sh [BUILD_DIR]   (prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath -m "${1:-build}")
bin=$build/bench/sync_overhead
[ -x "$bin" ] || { echo "sync_overhead: $bin not built (scripts/build.sh $build)" >&2; exit 1; }
command -v valgrind >/dev/null || scripts/deps.sh valgrind
export OPENSSL_MODULES=$build/provider OPENSSL_CONF=/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# op and how many calls (enough that per-call setup noise vanishes, few enough for valgrind)
ops=("rsa2048-sign 40" "ecdsap256-sign 400" "ecdhp256-derive 400" "x25519-derive 400"
     "ed25519-sign 400" "gcm-16 100000" "gcm-1024 20000" "gcm-16384 2000")

instr() { # op propq n -> instructions inside measure() per call
  local out=$tmp/cg.$RANDOM
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect=measure \
    "$bin" "$1" "$2" "$3" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; return 1; }
  awk -v n="$3" '/^summary:/ {printf "%.1f", $2 / n}' "$out"
}

echo "| operation | calls | default (instr/call) | asyncpool sync path (instr/call) | ratio | within 3% |"
echo "| --- | --- | --- | --- | --- | --- |"
for entry in "${ops[@]}"; do
  set -- $entry
  d=$(instr "$1" provider=default "$2")
  a=$(instr "$1" provider=asyncpool "$2")
  awk -v op="$1" -v n="$2" -v d="$d" -v a="$a" 'BEGIN {
    r = a / d; printf "| %s | %d | %.0f | %.0f | %.4f | %s |\n", op, n, d, a, r, (r <= 1.03 ? "yes" : "NO") }'
done
