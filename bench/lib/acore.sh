# bench/lib/acore.sh — the async core's own overhead, no crypto (bench/acore_bench.c):
# round trip of one trivial offload (submit, worker, wake, epoll, resume), the ceiling
# of trivial offloads per second with 64 jobs in flight, and the CPU one offload costs
# the application's thread and the pool's workers (per-thread CPU clocks) at 1 and at 64
# jobs in flight; fd mode and callback mode (-c), each also with workers that spin N µs
# before they park (mode suffix -spinN: acore_bench -S N), and fd mode with every
# thread on one CPU (suffix -1cpu: taskset to the first CPU we may use), where no
# wake-up crosses CPUs. Sourced by bench/run.sh.
#
# Data: acore roundtrip {median_us,p99_us} MODE; acore ceiling offloads_per_s MODE;
#       acore cpu-<inflight> {app_us,worker_us} MODE; acore run {cpu_ours,cpu_others} MODE

acore_once() { # MODE ROUND
  local mode=$1 r=$2 log="$work/log/acore.$1.$2" rc=0
  local -a args=(-n "$ACORE_N" -s "$ACORE_SECONDS") pin=()
  case $mode in callback*) args+=(-c) ;; esac
  case $mode in *-spin*) args+=(-S "${mode##*-spin}") ;; esac
  case $mode in *-1cpu) pin=(taskset -c "$(first_cpu)") ;; esac
  step_begin acore "$mode r$((r + 1))"
  if [ ! -x "$BUILD/bench/acore_bench" ]; then
    step_fail "$BUILD/bench/acore_bench not built"
    return 0
  fi
  _acore_cmd() {
    timeout -k 5 $((ACORE_SECONDS * 4 + 120)) "${pin[@]}" "$BUILD/bench/acore_bench" "${args[@]}" \
      >"$log.out" 2>"$log.err"
  }
  local tm wall ours others
  timed tm _acore_cmd || rc=$?
  read -r wall ours others <<<"$tm"
  local med p99 ops line inf app wrk cpu=""
  med=$(sed -n 's/^roundtrip .* median_us=\([0-9.]*\).*/\1/p' "$log.out")
  p99=$(sed -n 's/^roundtrip .* p99_us=\([0-9.]*\).*/\1/p' "$log.out")
  ops=$(sed -n 's/^ceiling .* offloads_per_s=\([0-9.]*\).*/\1/p' "$log.out")
  [ -n "$med" ] && put acore roundtrip median_us "$mode" "$r" "$med"
  [ -n "$p99" ] && put acore roundtrip p99_us "$mode" "$r" "$p99"
  [ -n "$ops" ] && put acore ceiling offloads_per_s "$mode" "$r" "$ops"
  while read -r line; do
    inf=$(sed -n 's/.* inflight=\([0-9]*\).*/\1/p' <<<"$line")
    app=$(sed -n 's/.* app_us_per_offload=\([0-9.]*\).*/\1/p' <<<"$line")
    wrk=$(sed -n 's/.* worker_us_per_offload=\([0-9.]*\).*/\1/p' <<<"$line")
    [ -n "$inf" ] && [ -n "$app" ] && [ -n "$wrk" ] || continue
    put acore "cpu-$inf" app_us "$mode" "$r" "$app"
    put acore "cpu-$inf" worker_us "$mode" "$r" "$wrk"
    cpu+=" cpu@$inf app=${app}us wrk=${wrk}us"
  done < <(grep '^cpu ' "$log.out" || true)
  put acore run cpu_ours "$mode" "$r" "$ours"
  put acore run cpu_others "$mode" "$r" "$others"
  if [ "$rc" != 0 ] || [ -z "$med" ] || [ -z "$ops" ] || [ -z "$cpu" ]; then
    cat "$log.out" "$log.err" >"$log.both" 2>/dev/null
    step_fail "acore_bench rc=$rc" "$log.both"
    return 0
  fi
  step_ok "rt median=${med}us p99=${p99}us; ceiling ${ops}/s;$cpu; others=$others"
}

# The first CPU in this shell's affinity mask (taskset -p prints it as a list).
first_cpu() {
  taskset -cp $$ | sed 's/.*: *//; s/[-,].*//'
}

run_acore() {
  local r k n=${#ACORE_MODES[@]}
  for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
      acore_once "${ACORE_MODES[$(((k + r) % n))]}" "$r"
    done
  done
}
