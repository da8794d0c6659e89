# bench/lib/common.sh — progress lines, failure bookkeeping, process cleanup, deps.
# Sourced by bench/run.sh; expects $work, $NSTEPS.

STEP=0
FAILS=()
PIDS=()        # background processes we started (servers); cleanup kills exactly these
STEP_T0=0

# step_begin GROUP WHAT: starts a progress line "[hh:mm:ss] [i/N] group  what ... "
step_begin() {
  STEP=$((STEP + 1))
  STEP_NAME="$1 $2"
  STEP_T0=$(date +%s.%N)
  printf '[%s] [%*d/%d] %-6s %-44s ' "$(date +%T)" ${#NSTEPS} "$STEP" "$NSTEPS" "$1" "$2"
}

_step_secs() { awk -v a="$STEP_T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1fs", b - a}'; }

# step_ok RESULT: ends the line
step_ok() { printf '%s (%s)\n' "$1" "$(_step_secs)"; }

# step_fail WHY [LOG]: ends the line with FAILED, remembers the step and the log's tail
step_fail() {
  local why=$1 log=${2:-} n=${#FAILS[@]}
  printf 'FAILED: %s (%s)\n' "$why" "$(_step_secs)"
  FAILS+=("$STEP_NAME: $why")
  if [ -n "$log" ] && [ -f "$log" ]; then
    tail -n 15 "$log" >"$work/fail.$n.log" 2>/dev/null || true
    sed 's/^/      | /' "$work/fail.$n.log" | tail -n 5
  fi
}

# Kills what we started, by pid (servers and their children), then removes the work dir.
cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    [ -n "$p" ] || continue
    pkill -KILL -P "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}

# stop_pid PID [SECONDS]: SIGTERM, wait a bounded time, then SIGKILL; returns its status
stop_pid() {
  local p=$1 t=${2:-10} i rc=0
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$p" 2>/dev/null; then
    pkill -KILL -P "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
    rc=137
  fi
  wait "$p" 2>/dev/null || rc=$?
  untrack "$p"
  return "$rc"
}

track() { PIDS+=("$1"); }
untrack() {
  local i
  for i in "${!PIDS[@]}"; do [ "${PIDS[$i]}" = "$1" ] && unset 'PIDS[i]'; done
  return 0
}

# ensure_deps: installs from Debian what the benchmark needs and is missing.
ensure_deps() {
  local missing=() p
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  command -v nginx >/dev/null || missing+=(nginx-light)
  for p in cmake gcc make pkg-config libssl-dev liburcu-dev check libjson-c-dev openssl procps iproute2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all present" >"$work/log/deps.summary"
    return 0
  fi
  local sudo=
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installed ${missing[*]}" >"$work/log/deps.summary"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 \
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# put GROUP TEST METRIC CONTENDER ROUND VALUE: one measurement
put() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$DATA"; }

# server_ticks PID: CPU clock ticks of PID (all its threads) and its children
server_ticks() {
  local p t=0 v
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo "$t"
}

# server_ctxsw PID: context switches (voluntary and involuntary) of every thread of PID
# and of its children, summed; a thread that exits takes its count with it
server_ctxsw() {
  local p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    cat /proc/"$p"/task/*/status 2>/dev/null || true
  done | awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ {t += $2} END {print t + 0}'
}

# fmtn VALUE: 3 significant-ish digits, "-" stays "-" (bash's printf: no process spawned,
# the report formats a few thousand values)
fmtn() {
  local x=$1 a i
  if [ -z "$x" ] || [ "$x" = - ]; then echo "-"; return; fi
  if [[ ! $x =~ ^-?[0-9]*\.?[0-9]*$ ]]; then
    awk -v x="$x" 'BEGIN { a = (x < 0) ? -x : x
      if (a >= 100) printf "%.0f\n", x; else if (a >= 10) printf "%.1f\n", x; else printf "%.2f\n", x }'
    return
  fi
  a=${x#-} i=${a%%.*}
  i=$((10#${i:-0}))
  if [ "$i" -ge 100 ]; then printf '%.0f\n' "$x"
  elif [ "$i" -ge 10 ]; then printf '%.1f\n' "$x"
  else printf '%.2f\n' "$x"; fi
}

# machine_busy -> "busy steal" jiffies summed over all CPUs since boot (/proc/stat "cpu"
# line: user nice system idle iowait irq softirq steal ...)
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $9; exit}' /proc/stat; }

# timed OUT_VAR CMD...: runs CMD (a function that does its own redirections, so that
# nothing but time's line reaches our capture) and sets OUT_VAR to "wall ours others":
# wall seconds, CPU cores used by CMD and its children ((user+sys) / wall), and cores
# used by everything else on the machine meanwhile ((busy + steal jiffies of all CPUs,
# less ours) / wall). Returns CMD's status.
timed() {
  local __out=$1 b0 s0 b1 s1 rc=0 tf w u sy
  shift
  tf=$(mktemp "$work/time.XXXXXX")
  read -r b0 s0 < <(machine_busy)
  local TIMEFORMAT='%R %U %S'
  { time "$@"; } 2>"$tf" || rc=$?
  read -r b1 s1 < <(machine_busy)
  read -r w u sy < <(tail -n 1 "$tf")
  rm -f "$tf"
  printf -v "$__out" '%s' "$(awk -v b=$((b1 - b0)) -v s=$((s1 - s0)) -v hz="$HZ" \
    -v w="${w:-0}" -v c="$(awk -v u="${u:-0}" -v y="${sy:-0}" 'BEGIN {print u + y}')" 'BEGIN {
      if (w <= 0) w = 1e-9; o = (b + s) / hz - c; if (o < 0) o = 0
      printf "%.3f %.2f %.2f", w, c / w, o / w }')"
  return "$rc"
}
HZ=$(getconf CLK_TCK)
