#!/usr/bin/env bash
# What device emulation costs when it is off: acore_bench from a build without it
# (BASE) and from this one (NEW), alternating, ROUNDS times each; prints the medians of
# the round trip and of the CPU per offload. Each run takes about a second.
#   usage: bench/emu_offcost.sh BASE_ACORE_BENCH NEW_ACORE_BENCH [ROUNDS]
# e.g. a build of the commit before emulation:
#   mkdir -p build-base/src && git archive 14732ee | tar -x -C build-base/src &&
#     cmake -S build-base/src -B build-base/obj && cmake --build build-base/obj --target acore_bench
#   bench/emu_offcost.sh build-base/obj/bench/acore_bench build/bench/acore_bench 7
set -euo pipefail
base=${1:?base acore_bench} new=${2:?new acore_bench} rounds=${3:-7}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((i = 0; i < rounds; i++)); do
  "$base" -n 5000 -j 32 -s 1 -w 1 | sed 's/^/base /' >>"$out"
  "$new" -n 5000 -j 32 -s 1 -w 1 | sed 's/^/new /' >>"$out"
done
awk '
  function kv(k,   i, a) { for (i = 3; i <= NF; i++) { split($i, a, "="); if (a[1] == k) return a[2] } }
  $2 == "roundtrip" { v[$1 " roundtrip_median_us"] = v[$1 " roundtrip_median_us"] " " kv("median_us") }
  $2 == "cpu" { n = kv("inflight")
                v[$1 " app_us_per_offload@" n] = v[$1 " app_us_per_offload@" n] " " kv("app_us_per_offload")
                v[$1 " worker_us_per_offload@" n] = v[$1 " worker_us_per_offload@" n] " " kv("worker_us_per_offload") }
  END { for (k in v) print k ":" v[k] }' "$out" | sort | while IFS=: read -r key vals; do
  med=$(tr ' ' '\n' <<<"$vals" | grep . | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
  printf '%-36s median %8.3f   runs:%s\n' "$key" "$med" "$vals"
done
