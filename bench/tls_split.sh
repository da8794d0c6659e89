#!/usr/bin/env bash
# tls_split.sh [BUILD_DIR]: where the demo server's CPU goes per TLS handshake, thread by
# thread: the event loop (thread "tls_server") and the pool's workers ("asyncpool-wrk"),
# for the sync server and the async-fd server under offload = auto, offload = always,
# "rule2" (auto without rule 6: offload_probe_ms = 0, every call over offload_min_us
# offloaded), and "jobs-inline" (async-fd with offload_min_us = 10 s and offload_load_pct
# = 100000: every call runs inline in its job, so the job machinery is measured without
# the offload).
# Per run: a 1 s warm-up (the pool's threads exist), then DURATION seconds of
# tls_client -c CONC (full TLS 1.3 handshakes + one GET); per-thread CPU from
# /proc/<pid>/task/*/stat over the measured run, divided by its handshakes. The
# contenders alternate, ROUNDS times; the last lines give the median of each.
# Env: ROUNDS (3), DURATION (4), CONC (32), CERT (rsa2048; or rsa3072, rsa4096, ecdsap256),
#      MODES ("sync jobs-inline auto rule2 always").
# Run it on a quiet machine: the client shares the cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
BUILD=$(cd "${1:-build}" && pwd)
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-4} CONC=${CONC:-32} CERT=${CERT:-rsa2048}
MODES=${MODES:-sync jobs-inline auto rule2 always}
# The bench's own pieces: tls_standalone (work dir, config, certificate), start_demo
# (its "listening on" wait and port), stop_pid, and cleanup at exit.
. bench/lib/common.sh
. bench/lib/tls.sh
tls_standalone tls_split
# offload_min_us and offload_load_pct replaced, wherever the shipped file sets them
awk '$1 == "offload_min_us" || $1 == "offload_load_pct" {next} {print}
     /^\[asyncpool_sect\]/ {print "offload_min_us = 10000000"; print "offload_load_pct = 100000"}' \
  "$AP_CONF" >"$work/inline.cnf"
awk '$1 == "offload_probe_ms" {next} {print} /^\[asyncpool_sect\]/ {print "offload_probe_ms = 0"}' \
  "$AP_CONF" >"$work/rule2.cnf"
hz=$(getconf CLK_TCK)

one() { # one MODE ROUND: appends its four figures to $work/data
  local log=$work/log/$1 t v hs hps loop=0 wrk=0
  case $1 in
    sync) start_demo sync "$log" "$CERT" ;;
    jobs-inline) AP_CONF=$work/inline.cnf start_demo async-fd "$log" "$CERT" ;;
    auto) start_demo async-fd "$log" "$CERT" ;;
    rule2) AP_CONF=$work/rule2.cnf start_demo async-fd "$log" "$CERT" ;;
    always) start_demo async-always "$log" "$CERT" ;;
    *) echo "tls_split: unknown mode $1" >&2; exit 2 ;;
  esac || { cat "$log.srverr" >&2; echo "tls_split: $1 server did not start" >&2; exit 1; }
  OPENSSL_CONF=/dev/null "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" -c "$CONC" -d 1 -w 0 \
    --tls 1.3 --no-progress >/dev/null 2>&1
  declare -A c0=()
  for t in /proc/"$TLS_PID"/task/*; do c0[$t]=$(awk '{print $14 + $15}' "$t/stat"); done
  OPENSSL_CONF=/dev/null "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" -c "$CONC" \
    -d "$DURATION" -w 0 --tls 1.3 --no-progress >"$log.out" 2>&1
  for t in /proc/"$TLS_PID"/task/*; do
    v=$(awk '{print $14 + $15}' "$t/stat")
    case $(cat "$t/comm") in
      asyncpool-wrk*) wrk=$((wrk + v - ${c0[$t]:-0})) ;;
      *) loop=$((loop + v - ${c0[$t]:-0})) ;;
    esac
  done
  stop_pid "$TLS_PID" 10 || true
  hs=$(grep -o 'handshakes=[0-9]*' "$log.out" | head -1 | cut -d= -f2)
  hps=$(grep -o 'hs_per_s=[0-9.]*' "$log.out" | cut -d= -f2)
  [ "${hs:-0}" -gt 0 ] || { cat "$log.out" >&2; echo "tls_split: no handshakes ($1)" >&2; exit 1; }
  # bench/run.sh's data format (group test metric contender round value), for
  # summarize.awk's medians
  awk -v m="$1" -v r="$2" -v c="$CERT" -v l="$loop" -v w="$wrk" -v hz="$hz" -v hs="$hs" \
      -v hps="$hps" 'BEGIN {OFS = "\t"; l = l / hz * 1000 / hs; w = w / hz * 1000 / hs
        print "split", c, "loop", m, r, l; print "split", c, "workers", m, r, w
        print "split", c, "total", m, r, l + w; print "split", c, "hs", m, r, hps}'
}

# row MODE LOOP WORKERS TOTAL HS: one line of the table
row() { printf '%-12s %8.3f %8.3f %8.3f %9.1f\n' "$@"; }

echo "CPU per handshake (ms), $CERT certificate, -c $CONC, ${DURATION}s per run, $ROUNDS rounds"
printf '%-12s %8s %8s %8s %9s\n' mode loop workers total 'hs/s'
for ((r = 0; r < ROUNDS; r++)); do
  for m in $MODES; do
    one "$m" "$r" >"$work/run"
    cat "$work/run" >>"$work/data"
    row "$m" $(cut -f6 "$work/run")
  done
done
echo "medians:"
awk -f bench/lib/summarize.awk "$work/data" >"$work/summary"
for m in $MODES; do
  row "$m" $(for k in loop workers total hs; do
    awk -F'\t' -v m="$m" -v k="$k" '$3 == k && $4 == m {print $5}' "$work/summary"
  done)
done
