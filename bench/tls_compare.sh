#!/usr/bin/env bash
# tls_compare.sh [BUILD_DIR]: full TLS 1.3 handshakes per second with an RSA-2048
# certificate, the same client load against three servers, side by side in one run:
#   async  ssl_demo tls_server, one thread, SSL_MODE_ASYNC (fd mode) + asyncpool
#   sync   the same binary, --sync, default provider only
#   nginx  Debian's nginx, worker_processes 2, its own temp prefix
# Contenders alternate within each round (the order rotates), ROUNDS rounds, medians.
# Env: ROUNDS (3), DURATION seconds measured per run (5), WARMUP seconds (1),
#      CONC client connections (32), NO_REQUEST=1 (handshake only, no GET).
# The client (ssl_demo tls_client, one thread, default provider, no resumption) shares
# the machine's cores with the server under test.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$(realpath -m "${1:-build}")
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5} WARMUP=${WARMUP:-1} CONC=${CONC:-32}
req_flag=() what="full handshakes + one GET"
[ "${NO_REQUEST:-0}" = 1 ] && req_flag=(--no-request) what="full handshakes, no request"

for b in tls_server tls_client; do
  [ -x "$build/ssl_demo/$b" ] || scripts/build.sh "$build"
done
command -v nginx >/dev/null || { echo "tls_compare: nginx missing (scripts/deps.sh installs nginx-light)" >&2; exit 1; }
have_ap=1
[ -f "$build/provider/asyncpool.so" ] || { have_ap=0; echo "tls_compare: WARNING: $build/provider/asyncpool.so missing: 'async' runs without offload" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tls_compare.XXXXXX")
srv_pid=''
cleanup() {
  [ -n "$srv_pid" ] && kill -KILL "$srv_pid" 2>/dev/null || true
  [ -f "$tmp/nginx/nginx.pid" ] && kill -KILL "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/rsa.key" -out "$tmp/rsa.crt" \
  -subj /CN=localhost -days 2 2>/dev/null

# Starts the demo server on a free port (it binds port 0 and prints it); sets PORT.
start_demo() { # start_demo NAME CONF [args...]
  local name=$1 conf=$2; shift 2
  : >"$tmp/$name.log"
  OPENSSL_CONF=$conf OPENSSL_MODULES="$build/provider" "$build/ssl_demo/tls_server" -p 0 \
    --cert "$tmp/rsa.crt" --key "$tmp/rsa.key" "$@" >"$tmp/$name.log" 2>"$tmp/$name.err" &
  srv_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do grep -q 'listening on' "$tmp/$name.log" && break; sleep 0.1; done
  PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.log")
  [ -n "$PORT" ] || { cat "$tmp/$name.err" >&2; echo "tls_compare: $name did not start" >&2; exit 1; }
}

stop_demo() { # stop_demo NAME
  kill -TERM "$srv_pid"
  wait "$srv_pid" || { cat "$tmp/$1.err" >&2; echo "tls_compare: $1 exit status" >&2; exit 1; }
  srv_pid=''
}

# nginx needs a fixed port: try random free-looking ones until it binds.
start_nginx() {
  local i port
  mkdir -p "$tmp/nginx"
  for ((i = 0; i < 20; i++)); do
    port=$((20000 + RANDOM % 20000))
    ss -Htln "sport = :$port" | grep -q . && continue
    cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $tmp/rsa.crt;
    ssl_certificate_key $tmp/rsa.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    location / { return 200 "hello from nginx\n"; }
  }
}
EOF
    env -u OPENSSL_CONF -u OPENSSL_MODULES nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
      -e "$tmp/nginx/error.log" &
    srv_pid=$!
    local j
    for ((j = 0; j < 50; j++)); do
      ss -Htln "sport = :$port" | grep -q . && { PORT=$port; return 0; }
      kill -0 "$srv_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
  done
  cat "$tmp/nginx/error.log" >&2
  echo "tls_compare: nginx did not start" >&2
  exit 1
}

stop_nginx() {
  kill -TERM "$srv_pid"   # fast shutdown of the master and its workers
  wait "$srv_pid" || true
  srv_pid=''
}

# CPU ticks used so far by the server: its own threads plus its children (nginx workers).
srv_ticks() {
  local p t=0
  for p in "$srv_pid" $(pgrep -P "$srv_pid" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

load() { # load -> the client's result line plus CPU ms per connection; fails on failures
  local out t0 t1 ct conns
  t0=$(srv_ticks)
  TIMEFORMAT='%U %S'
  { time OPENSSL_CONF=/dev/null "$build/ssl_demo/tls_client" -p "$PORT" -c "$CONC" \
      -d "$DURATION" -w "$WARMUP" --tls 1.3 --no-progress "${req_flag[@]}" >"$tmp/client.out"; } 2>"$tmp/client.time" \
    || { cat "$tmp/client.out" >&2; echo "tls_compare: client reported failures" >&2; exit 1; }
  t1=$(srv_ticks)
  out=$(cat "$tmp/client.out")
  # Connections made, warm-up and tail included: the GETs, or the handshakes counted
  # in the window scaled by the whole run's length.
  if [ ${#req_flag[@]} -eq 0 ]; then
    conns=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$out")
  else
    conns=$(awk -v o="$out" -v w="$WARMUP" -v d="$DURATION" 'BEGIN {
      match(o, /handshakes=[0-9]+/); print int(substr(o, RSTART + 11, RLENGTH - 11) * (w + d) / d) }')
  fi
  ct=$(awk '{print $1 + $2}' "$tmp/client.time")
  awk -v o="$out" -v s=$((t1 - t0)) -v hz="$hz" -v c="$ct" -v n="$conns" 'BEGIN {
    printf "%s cpu_ms_per_conn: server=%.2f client=%.2f\n", o, 1000 * s / hz / n, 1000 * c / n }'
}

run_one() { # run_one CONTENDER -> hs/s
  local c=$1 out
  case $c in
    async) start_demo async "$src/conf/openssl-async.cnf" ;;
    sync)  start_demo sync /dev/null --sync ;;
    nginx) start_nginx ;;
  esac
  out=$(load)
  case $c in
    nginx) stop_nginx ;;
    *) stop_demo "$c" ;;
  esac
  echo "  $c: $out" >&2
  if [ "$c" = async ]; then
    grep -o 'sign.offloaded=[0-9]*\|pool.high_water=[0-9]*\|provider=[a-z]*' "$tmp/async.log" \
      | tr '\n' ' ' | sed 's/^/    server: /' >&2
    echo >&2
  fi
  sed -n 's/.* hs_per_s=\([0-9.]*\).*/\1/p' <<<"$out"
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

declare -A res
contenders=(async sync nginx)
echo "tls_compare: RSA-2048, TLS 1.3, $what, client -c $CONC," \
     "${DURATION}s measured after ${WARMUP}s warm-up, $ROUNDS rounds, $(nproc) cores"
for ((r = 0; r < ROUNDS; r++)); do
  echo "round $((r + 1)):" >&2
  for ((k = 0; k < ${#contenders[@]}; k++)); do
    c=${contenders[$(((r + k) % ${#contenders[@]}))]}
    res[$c]+="$(run_one "$c") "
  done
done

declare -A med
for c in "${contenders[@]}"; do
  med[$c]=$(tr ' ' '\n' <<<"${res[$c]}" | grep . | median)
  printf '%-6s handshakes/s per round: %-30s median %s\n' "$c" "${res[$c]}" "${med[$c]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
r_sync=$(ratio "${med[async]}" "${med[sync]}")
r_nginx=$(ratio "${med[async]}" "${med[nginx]}")
verdict() { awk -v r="$1" -v g="$2" 'BEGIN {print (r >= g) ? "met" : "NOT met"}'; }
echo "async/sync  = $r_sync (goal >= 1.6: $(verdict "$r_sync" 1.6))"
echo "async/nginx = $r_nginx (goal >= 0.9: $(verdict "$r_nginx" 0.9))"
[ "$have_ap" = 1 ] || echo "NOTE: asyncpool.so was missing; 'async' ran without offload"
