#!/usr/bin/env bash
# tls_clients.sh [BUILD_DIR]: does one load-generating process change async ÷ sync? The
# same total concurrency CONC is offered by 1 tls_client process or split across N
# (CLIENTS, e.g. "1 2": -c CONC/N each, started together), against the sync demo server
# and the async-fd one (offload = auto). One tls_client works through its ready
# connections in batches, one thread for all of them; several processes offer the same
# connections as independent clients do. Per run: a 1 s warm-up, then DURATION seconds;
# handshakes/s summed over the clients, the server's cores (/proc/<pid>/stat) and the
# machine's idle cores (/proc/stat idle + iowait) over the run. Contenders alternate,
# ROUNDS times; the last lines give per client count the medians and the median of the
# per-round ratio async-fd ÷ sync.
# Env: ROUNDS (3), DURATION (5), CONC (8), CERT (rsa2048; or rsa3072, rsa4096,
#      ecdsap256), CLIENTS ("1 2").
# Run it on a quiet machine: the clients share the cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
BUILD=$(cd "${1:-build}" && pwd)
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5} CONC=${CONC:-8} CERT=${CERT:-rsa2048}
CLIENTS=${CLIENTS:-1 2}
for n in $CLIENTS; do
  [ "$n" -ge 1 ] && [ $((CONC % n)) -eq 0 ] || { echo "tls_clients: CONC $CONC does not split into $n clients" >&2; exit 2; }
done
# The bench's own pieces: tls_standalone (work dir, config, certificate), start_demo
# (its "listening on" wait and port), stop_pid, and cleanup at exit.
. bench/lib/common.sh
. bench/lib/tls.sh
tls_standalone tls_clients
hz=$(getconf CLK_TCK)

idle_ticks() { awk '$1 == "cpu" {print $5 + $6; exit}' /proc/stat; }

one() { # one SERVER NCLIENTS: prints "hs/s server-cores idle-cores"
  local log=$work/log/$1-$2 i s0 s1 i0 i1 hps
  local -a pids=()
  start_demo "$1" "$log" "$CERT" || { cat "$log.srverr" >&2; echo "tls_clients: $1 server did not start" >&2; exit 1; }
  OPENSSL_CONF=/dev/null "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" -c "$CONC" -d 1 -w 0 \
    --tls 1.3 --no-progress >/dev/null 2>&1
  s0=$(awk '{print $14 + $15}' "/proc/$TLS_PID/stat") i0=$(idle_ticks)
  for ((i = 0; i < $2; i++)); do
    OPENSSL_CONF=/dev/null "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" -c $((CONC / $2)) \
      -d "$DURATION" -w 0 --tls 1.3 --no-progress >"$log.out$i" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  s1=$(awk '{print $14 + $15}' "/proc/$TLS_PID/stat") i1=$(idle_ticks)
  stop_pid "$TLS_PID" 10 || true
  hps=$(cat "$log".out* | grep -o 'hs_per_s=[0-9.]*' | cut -d= -f2 | awk '{s += $1; n++} END {if (n) print s}')
  [ "$(cat "$log".out* | grep -c 'hs_per_s=')" -eq "$2" ] || { cat "$log".out* >&2; echo "tls_clients: a client failed ($1, $2 clients)" >&2; exit 1; }
  # the clients' wall time is DURATION plus their start and end: a slight overestimate
  # of both core figures, the same for every contender
  awk -v h="$hps" -v s=$((s1 - s0)) -v i=$((i1 - i0)) -v hz="$hz" -v d="$DURATION" \
    'BEGIN {printf "%.1f %.2f %.2f\n", h, s / hz / d, i / hz / d}'
}

echo "$CERT certificate, -c $CONC in all, ${DURATION}s per run, $ROUNDS rounds"
printf '%-8s %-9s %10s %13s %11s\n' clients server 'hs/s' 'server cores' 'idle cores'
for ((r = 0; r < ROUNDS; r++)); do
  for n in $CLIENTS; do
    for s in sync async-fd; do
      v=$(one "$s" "$n")
      printf '%-8s %-9s %10s %13s %11s\n' "$n" "$s" $v
      echo "$r $n $s $v" >>"$work/data"
    done
  done
done
echo "medians (ratio: median over rounds of async-fd ÷ sync):"
for n in $CLIENTS; do
  awk -v n="$n" 'function med(a, k,  i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
                   if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                   return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
    $2 == n { h[$1, $3] = $4; if ($3 == "sync") { ns++; sh[ns] = $4; si[ns] = $6 } else { na++; ah[na] = $4; ai[na] = $6 } }
    END { for (r = 0; (r, "sync") in h || (r, "async-fd") in h; r++)
            if ((r, "sync") in h && (r, "async-fd") in h) { nr++; ra[nr] = h[r, "async-fd"] / h[r, "sync"] }
          printf "%s client(s): sync %.0f hs/s (idle %.2f), async-fd %.0f hs/s (idle %.2f), ratio %.2f\n",
                 n, med(sh, ns), med(si, ns), med(ah, na), med(ai, na), med(ra, nr) }' "$work/data"
done
