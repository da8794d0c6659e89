#!/usr/bin/env bash
# tls_split.sh [BUILD_DIR]: where the demo server's CPU goes per TLS handshake, thread by
# thread: the event loop (thread "tls_server") and the pool's workers ("asyncpool-wrk"),
# for the sync server and the async-fd server under offload = auto, offload = always, and
# "jobs-inline" (async-fd with offload_min_us = 10 s and offload_load_pct = 100000: every
# call runs inline in its job, so the job machinery is measured without the offload).
# Per run: a 1 s warm-up (the pool's threads exist), then DURATION seconds of
# tls_client -c CONC (full TLS 1.3 handshakes + one GET); per-thread CPU from
# /proc/<pid>/task/*/stat over the measured run, divided by its handshakes. The
# contenders alternate, ROUNDS times; the last lines give the median of each.
# Env: ROUNDS (3), DURATION (4), CONC (32), CERT (rsa2048; or rsa3072, rsa4096, ecdsap256),
#      MODES ("sync jobs-inline auto always").
# Run it on a quiet machine: the client shares the cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(cd "${1:-build}" && pwd)
[ -x "$build/ssl_demo/tls_server" ] || { echo "tls_split: build first (scripts/build.sh)" >&2; exit 1; }
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-4} CONC=${CONC:-32} CERT=${CERT:-rsa2048}
MODES=${MODES:-sync jobs-inline auto always}
conf=$PWD/conf/openssl-async.cnf
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tls_split.XXXXXX")
pid=''
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
case $CERT in
  rsa*) alg=(-newkey "rsa:${CERT#rsa}") ;;
  ecdsap256) alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  *) echo "tls_split: unknown CERT $CERT" >&2; exit 2 ;;
esac
openssl req -x509 "${alg[@]}" -nodes -keyout "$tmp/key.pem" -out "$tmp/crt.pem" \
  -subj /CN=localhost -days 2 >/dev/null 2>&1
# offload_min_us and offload_load_pct replaced, wherever the shipped file sets them
awk '$1 == "offload_min_us" || $1 == "offload_load_pct" {next} {print}
     /^\[asyncpool_sect\]/ {print "offload_min_us = 10000000"; print "offload_load_pct = 100000"}' \
  "$conf" >"$tmp/inline.cnf"
hz=$(getconf CLK_TCK)

one() { # one MODE: prints "MODE loop_ms workers_ms hs_per_s"
  local cnf=$conf off='' t n v
  local -a args=()
  case $1 in
    sync) cnf=/dev/null args=(--sync) ;;
    jobs-inline) cnf=$tmp/inline.cnf ;;
    auto) off=auto ;;
    always) off=always ;;
    *) echo "tls_split: unknown mode $1" >&2; exit 2 ;;
  esac
  ASYNCPOOL_OFFLOAD=$off OPENSSL_CONF=$cnf OPENSSL_MODULES=$build/provider \
    "$build/ssl_demo/tls_server" -p 0 --cert "$tmp/crt.pem" --key "$tmp/key.pem" "${args[@]}" \
    >"$tmp/srv.out" 2>"$tmp/srv.err" &
  pid=$!
  for ((n = 0; n < 100; n++)); do
    grep -q 'listening on' "$tmp/srv.out" 2>/dev/null && break
    sleep 0.1
  done
  local port
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/srv.out")
  [ -n "$port" ] || { cat "$tmp/srv.err" >&2; echo "tls_split: $1 server did not start" >&2; exit 1; }
  OPENSSL_CONF=/dev/null "$build/ssl_demo/tls_client" -p "$port" -c "$CONC" -d 1 -w 0 \
    --tls 1.3 --no-progress >/dev/null 2>&1
  declare -A c0=()
  for t in /proc/"$pid"/task/*; do c0[$t]=$(awk '{print $14 + $15}' "$t/stat"); done
  OPENSSL_CONF=/dev/null "$build/ssl_demo/tls_client" -p "$port" -c "$CONC" -d "$DURATION" \
    -w 0 --tls 1.3 --no-progress >"$tmp/cli.out" 2>&1
  local loop=0 wrk=0 hs hps
  for t in /proc/"$pid"/task/*; do
    v=$(awk '{print $14 + $15}' "$t/stat")
    case $(cat "$t/comm") in
      asyncpool-wrk*) wrk=$((wrk + v - ${c0[$t]:-0})) ;;
      *) loop=$((loop + v - ${c0[$t]:-0})) ;;
    esac
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=''
  hs=$(grep -o 'handshakes=[0-9]*' "$tmp/cli.out" | head -1 | cut -d= -f2)
  hps=$(grep -o 'hs_per_s=[0-9.]*' "$tmp/cli.out" | cut -d= -f2)
  [ "${hs:-0}" -gt 0 ] || { cat "$tmp/cli.out" >&2; echo "tls_split: no handshakes ($1)" >&2; exit 1; }
  awk -v m="$1" -v l="$loop" -v w="$wrk" -v hz="$hz" -v hs="$hs" -v hps="$hps" \
    'BEGIN {printf "%s %.3f %.3f %s\n", m, l / hz * 1000 / hs, w / hz * 1000 / hs, hps}'
}

echo "CPU per handshake (ms), $CERT certificate, -c $CONC, ${DURATION}s per run, $ROUNDS rounds"
printf '%-12s %8s %8s %8s %9s\n' mode loop workers total 'hs/s'
for ((r = 0; r < ROUNDS; r++)); do
  for m in $MODES; do one "$m"; done
done | tee "$tmp/all" | awk '{printf "%-12s %8.3f %8.3f %8.3f %9.1f\n", $1, $2, $3, $2 + $3, $4}'
echo "medians:"
for m in $MODES; do
  awk -v m="$m" '$1 == m {l[n] = $2; w[n] = $3; t[n] = $2 + $3; h[n++] = $4}
    function med(a, n,   i, j, x) {
      for (i = 1; i < n; i++) for (j = i; j > 0 && a[j - 1] > a[j]; j--) { x = a[j]; a[j] = a[j - 1]; a[j - 1] = x }
      return n % 2 ? a[int(n / 2)] : (a[n / 2 - 1] + a[n / 2]) / 2
    }
    END {printf "%-12s %8.3f %8.3f %8.3f %9.1f\n", m, med(l, n), med(w, n), med(t, n), med(h, n)}' "$tmp/all"
done
