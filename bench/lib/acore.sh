# bench/lib/acore.sh — the async core's own overhead, no crypto (bench/acore_bench.c):
# round trip of one trivial offload (submit, worker, wake, epoll, resume) and the ceiling
# of trivial offloads per second with 64 jobs in flight, fd mode and callback mode (-c).
# Sourced by bench/run.sh.

acore_once() { # MODE ROUND
  local mode=$1 r=$2 log="$work/log/acore.$1.$2" rc=0
  local -a args=(-n "$ACORE_N" -s "$ACORE_SECONDS")
  [ "$mode" = callback ] && args+=(-c)
  step_begin acore "$mode r$((r + 1))"
  if [ ! -x "$BUILD/bench/acore_bench" ]; then
    step_fail "$BUILD/bench/acore_bench not built"
    return 0
  fi
  timeout -k 5 $((ACORE_SECONDS * 4 + 120)) "$BUILD/bench/acore_bench" "${args[@]}" \
    >"$log.out" 2>"$log.err" || rc=$?
  local med p99 ops
  med=$(sed -n 's/^roundtrip .* median_us=\([0-9.]*\).*/\1/p' "$log.out")
  p99=$(sed -n 's/^roundtrip .* p99_us=\([0-9.]*\).*/\1/p' "$log.out")
  ops=$(sed -n 's/^ceiling .* offloads_per_s=\([0-9.]*\).*/\1/p' "$log.out")
  [ -n "$med" ] && put acore roundtrip median_us "$mode" "$r" "$med"
  [ -n "$p99" ] && put acore roundtrip p99_us "$mode" "$r" "$p99"
  [ -n "$ops" ] && put acore ceiling offloads_per_s "$mode" "$r" "$ops"
  if [ "$rc" != 0 ] || [ -z "$med" ] || [ -z "$ops" ]; then
    cat "$log.out" "$log.err" >"$log.both" 2>/dev/null
    step_fail "acore_bench rc=$rc" "$log.both"
    return 0
  fi
  step_ok "roundtrip median=${med}us p99=${p99}us; ceiling ${ops} offloads/s"
}

run_acore() {
  local r k n=${#ACORE_MODES[@]}
  for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
      acore_once "${ACORE_MODES[$(((k + r) % n))]}" "$r"
    done
  done
}
