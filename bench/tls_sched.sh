#!/usr/bin/env bash
# tls_sched.sh [BUILD_DIR]: where the cores go idle in a TLS run, from the scheduler's
# own events. For the sync server and the async-fd one (offload = auto), in turn, ROUNDS
# times: tls_client -c CONC runs for DURATION seconds, and in its middle
# `perf sched record -a` takes SCHED_SECONDS of sched_switch / sched_waking /
# sched_migrate_task events. From them, per contender:
#  - idle: CPU-seconds per second that the CPUs were idle, split into
#      "wake": the CPU was idle while a task woken onto it was on its way (the wake-up
#              of a halted vCPU),
#      "queued": the CPU was idle while a task waited on the run queue of another CPU
#              (woken onto or preempted on a busy CPU, and not moved),
#      "none": nothing was runnable;
#  - per thread kind (the loop "tls_server", the workers "asyncpool-wrk", the client
#    "tls_client"), its wake-ups: how many were placed on an idle CPU and their median
#    delay to run; how many on a busy CPU, how many of those on the waker's own CPU,
#    and their median, 90th percentile and total delay to run (ms per second).
# A task that waits on a busy CPU while another CPU idles is the scheduler keeping a
# task where it is: a CPU going idle pulls waiting tasks from the other one, but not
# one that ran there within migration_cost (0.5 ms by default), which counts as
# cache-hot; a thread just preempted by the worker it woke is such a task.
# Env: ROUNDS (2), DURATION (4), SCHED_SECONDS (1), CONC (8), CERT (rsa2048),
#      SERVERS ("sync async-fd").
# Needs perf (linux-perf) and root, or perf_event_paranoid -1. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
BUILD=$(cd "${1:-build}" && pwd)
command -v perf >/dev/null || { echo "tls_sched: needs perf (apt-get install linux-perf)" >&2; exit 1; }
ROUNDS=${ROUNDS:-2} DURATION=${DURATION:-4} SCHED_SECONDS=${SCHED_SECONDS:-1}
CONC=${CONC:-8} CERT=${CERT:-rsa2048} SERVERS=${SERVERS:-sync async-fd}
awk -v d="$DURATION" -v s="$SCHED_SECONDS" 'BEGIN {exit !(d >= s + 2)}' \
  || { echo "tls_sched: DURATION must be at least SCHED_SECONDS + 2" >&2; exit 2; }
# The bench's own pieces: tls_standalone (work dir, config, certificate), start_demo
# (its "listening on" wait and port), stop_pid, and cleanup at exit.
. bench/lib/common.sh
. bench/lib/tls.sh
tls_standalone tls_sched

# Reads `perf script -F cpu,time,event,trace` and replays the CPUs' states. Writes to
# $1.sum the idle split "idle SECONDS WAKE QUEUED NONE" (CPU-seconds) and one line
# "d KIND PLACE SAMECPU DELAY_US" per wake-up of a thread of interest. The recorder's
# own threads ("perf") are left out.
replay() {
  awk -v out="$1.sum" '
    function kind(c) {
      if (c ~ /^asyncpool-wrk/) return "workers"
      if (c == "tls_server") return "loop"
      if (c == "tls_client") return "client"
      return ""
    }
    function val(k,   r) { r = $0; sub(".*[ :]" k "=", "", r); sub(/ .*/, "", r); return r }
    function advance(t,   c, p, dt) {
      if (last != "" && t > last) {
        dt = t - last
        for (c in cur) if (cur[c] == 0) {
          st = "none"
          for (p in waiting) { if (tgt[p] == c) { st = "wake"; break } st = "queued" }
          idle[st] += dt
        }
      }
      last = t
    }
    {
      cpu = $1; gsub(/[^0-9]/, "", cpu); cpu += 0
      t = $2; sub(/:$/, "", t); t += 0
      if (first == "") first = t
      advance(t)
    }
    $3 == "sched:sched_waking:" {
      p = val("pid"); c = $0; sub(/.*comm=/, "", c); sub(/ pid=.*/, "", c)
      if (c ~ /^perf/ || (p in oncpu)) next
      tc = val("target_cpu") + 0
      waiting[p] = t; tgt[p] = tc; nm[p] = c
      place[p] = (tc in cur && cur[tc] != 0) ? "busy" : "idle"; same[p] = (tc == cpu)
      next
    }
    $3 == "sched:sched_migrate_task:" {
      p = val("pid"); if (p in waiting) tgt[p] = val("dest_cpu") + 0
      next
    }
    $3 == "sched:sched_switch:" {
      pc = $0; sub(/.*prev_comm=/, "", pc); sub(/ prev_pid=.*/, "", pc)
      pp = val("prev_pid"); ps = val("prev_state")
      nc = $0; sub(/.*next_comm=/, "", nc); sub(/ next_pid=.*/, "", nc)
      np = val("next_pid")
      delete oncpu[pp]; delete waiting[pp]   # it ran: whatever woke it before, it is not waiting
      if (pp != 0 && ps ~ /^R/ && pc !~ /^perf/) {
        waiting[pp] = t; tgt[pp] = cpu; nm[pp] = pc; place[pp] = "preempted"; same[pp] = 1
      }
      if (np in waiting) {
        k = kind(nm[np])
        if (k != "") printf "d %s %s %d %.1f\n", k, place[np], same[np], (t - waiting[np]) * 1e6
        delete waiting[np]
      }
      cur[cpu] = (np == 0) ? 0 : 1
      if (np != 0) oncpu[np] = 1
    }
    END { printf "idle %.4f %.4f %.4f %.4f\n", last - first, idle["wake"], idle["queued"], idle["none"] > out }'
}

one() { # one SERVER ROUND
  local log=$work/log/$1.$2
  start_demo "$1" "$log" "$CERT" || { cat "$log.srverr" >&2; echo "tls_sched: $1 server did not start" >&2; exit 1; }
  OPENSSL_CONF=/dev/null "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" -c "$CONC" -d 1 -w 0 \
    --tls 1.3 --no-progress >/dev/null 2>&1
  OPENSSL_CONF=/dev/null "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" -c "$CONC" \
    -d "$DURATION" -w 0 --tls 1.3 --no-progress >"$log.out" 2>&1 &
  local cpid=$!
  track "$cpid"
  sleep 1
  perf sched record -a -o "$log.data" -- sleep "$SCHED_SECONDS" >/dev/null 2>"$log.perr" \
    || { cat "$log.perr" >&2; echo "tls_sched: perf sched record failed" >&2; exit 1; }
  wait "$cpid" || { cat "$log.out" >&2; echo "tls_sched: the client failed ($1)" >&2; exit 1; }
  stop_pid "$TLS_PID" 10 || true
  perf script -i "$log.data" -F cpu,time,event,trace 2>/dev/null | replay "$log" >"$log.d"
  printf '%s %s %s\n' "$1" "$2" "$(grep -o 'hs_per_s=[0-9.]*' "$log.out" | cut -d= -f2)" >>"$work/rates"
}

for ((r = 0; r < ROUNDS; r++)); do
  for s in $SERVERS; do one "$s" "$r"; done
done

# Delays: median / p90 of a sorted list on stdin.
pct() {
  sort -n | awk '{v[NR] = $1}
    END {i = int(NR * 0.9 + 0.5); if (i < 1) i = 1
         if (NR) printf "%.0f %.0f\n", v[int((NR + 1) / 2)], v[i]; else print "- -"}'
}

echo "$CERT certificate, -c $CONC, ${SCHED_SECONDS}s of scheduler events per run, $ROUNDS rounds (all rounds pooled)"
for s in $SERVERS; do
  secs=$(cat "$work/log/$s".*.sum | awk '{t += $2} END {print t}')
  echo "== $s: $(awk -v s="$s" '$1 == s {printf "%s%s", n++ ? ", " : "", $3} END {print " hs/s"}' "$work/rates")"
  cat "$work/log/$s".*.sum | awk -v t="$secs" '{w += $3; q += $4; n += $5}
    END {printf "  idle cores %.2f: wake-up on its way %.2f, a task queued on the other CPU %.2f, nothing runnable %.2f\n",
         (w + q + n) / t, w / t, q / t, n / t}'
  cat "$work/log/$s".*.d >"$work/all.d"
  for k in loop workers client; do
    grep -q "^d $k " "$work/all.d" || continue
    ni=$(awk -v k="$k" '$2 == k && $3 == "idle"' "$work/all.d" | wc -l)
    nb=$(awk -v k="$k" '$2 == k && $3 == "busy"' "$work/all.d" | wc -l)
    ns=$(awk -v k="$k" '$2 == k && $3 == "busy" && $4 == 1' "$work/all.d" | wc -l)
    np=$(awk -v k="$k" '$2 == k && $3 == "preempted"' "$work/all.d" | wc -l)
    read -r mi _ < <(awk -v k="$k" '$2 == k && $3 == "idle" {print $5}' "$work/all.d" | pct)
    read -r mb pb < <(awk -v k="$k" '$2 == k && $3 == "busy" {print $5}' "$work/all.d" | pct)
    sb=$(awk -v k="$k" -v t="$secs" '$2 == k && $3 != "idle" {s += $5} END {printf "%.0f", s / 1000 / t}' "$work/all.d")
    printf '  %-7s per s: %4.0f woken onto an idle CPU (median delay %s µs); %4.0f onto a busy one, %4.0f of them the waker'"'"'s (median %s, p90 %s µs); %4.0f preempted; %s ms/s queued on busy CPUs\n' \
      "$k" "$(awk -v n="$ni" -v t="$secs" 'BEGIN {print n / t}')" "$mi" \
      "$(awk -v n="$nb" -v t="$secs" 'BEGIN {print n / t}')" "$(awk -v n="$ns" -v t="$secs" 'BEGIN {print n / t}')" \
      "$mb" "$pb" "$(awk -v n="$np" -v t="$secs" 'BEGIN {print n / t}')" "$sb"
  done
done
