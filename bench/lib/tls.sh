# bench/lib/tls.sh — TLS 1.3 full handshakes (+ one GET) per second and latency, the
# ssl_demo load client (one thread, default provider, no resumption) against:
#   sync      ssl_demo tls_server --sync, default provider only, one thread
#   async-fd  ssl_demo tls_server, SSL_MODE_ASYNC fd mode, asyncpool, one thread
#   async-cb  ssl_demo tls_server --callback, asyncpool, one thread
#   nginx     Debian's nginx, worker_processes <cores>, its own temp prefix (the anchor)
# RSA-2048 certificate. The client shares the machine's cores with the server.
# Sourced by bench/run.sh.

TLS_TMP=''
TLS_PID=''
TLS_PORT=''

tls_prepare() {
  step_begin tls "prepare (ssl_demo binaries, RSA-2048 cert)"
  local b
  for b in tls_server tls_client; do
    if [ ! -x "$BUILD/ssl_demo/$b" ]; then
      TLS_MISSING="ssl_demo not built ($BUILD/ssl_demo/$b missing)"
      step_fail "$TLS_MISSING — step failed"
      return 0
    fi
  done
  TLS_TMP=$work/tls
  mkdir -p "$TLS_TMP/nginx"
  if ! openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_TMP/rsa.key" \
       -out "$TLS_TMP/rsa.crt" -subj /CN=localhost -days 2 >"$work/log/tls.req" 2>&1; then
    TLS_MISSING="could not make a certificate"
    step_fail "$TLS_MISSING" "$work/log/tls.req"
    return 0
  fi
  command -v nginx >/dev/null || echo "note: nginx missing; its runs will fail" >&2
  step_ok "ok: $("$BUILD/ssl_demo/tls_client" --help 2>&1 | head -1 | cut -c1-40)..."
}

start_demo() { # start_demo SERVER LOG
  local conf=/dev/null i
  local -a args=()
  case $1 in
    sync) args=(--sync) ;;
    async-fd) conf=$AP_CONF ;;
    async-cb) conf=$AP_CONF args=(--callback) ;;
  esac
  OPENSSL_CONF=$conf OPENSSL_MODULES=$AP_MODULES "$BUILD/ssl_demo/tls_server" -p 0 \
    --cert "$TLS_TMP/rsa.crt" --key "$TLS_TMP/rsa.key" "${args[@]}" >"$2.srv" 2>"$2.srverr" &
  TLS_PID=$!
  track "$TLS_PID"
  for ((i = 0; i < 100; i++)); do
    grep -q 'listening on' "$2.srv" 2>/dev/null && break
    kill -0 "$TLS_PID" 2>/dev/null || break
    sleep 0.1
  done
  TLS_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$2.srv")
  [ -n "$TLS_PORT" ]
}

start_nginx() { # start_nginx LOG: tries free-looking ports until nginx binds one
  local i j port pfx=$TLS_TMP/nginx
  for ((i = 0; i < 20; i++)); do
    port=$((20000 + RANDOM % 20000))
    ss -Htln "sport = :$port" | grep -q . && continue
    cat >"$pfx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $CORES;
pid $pfx/nginx.pid;
error_log $pfx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $pfx/body;
  proxy_temp_path $pfx/proxy;
  fastcgi_temp_path $pfx/fastcgi;
  uwsgi_temp_path $pfx/uwsgi;
  scgi_temp_path $pfx/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $TLS_TMP/rsa.crt;
    ssl_certificate_key $TLS_TMP/rsa.key;
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / { return 200 "hello from nginx\n"; }
  }
}
EOF
    OPENSSL_CONF=/dev/null nginx -p "$pfx" -c "$pfx/nginx.conf" -e "$pfx/error.log" \
      >"$1.srv" 2>"$1.srverr" &
    TLS_PID=$!
    track "$TLS_PID"
    for ((j = 0; j < 50; j++)); do
      # bound, and the workers are up (they are the ones that accept)
      if ss -Htln "sport = :$port" | grep -q . && [ "$(pgrep -c -P "$TLS_PID")" -ge "$CORES" ]; then
        TLS_PORT=$port
        return 0
      fi
      kill -0 "$TLS_PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_pid "$TLS_PID" 2 || true
  done
  cp "$pfx/error.log" "$1.srverr" 2>/dev/null || true
  return 1
}

tls_once() { # SERVER CONC ROUND
  local s=$1 conc=$2 r=$3 log="$work/log/tls.$1.c$2.$3" rc=0 src=0
  step_begin tls "$s -c $conc r$((r + 1))"
  if [ -n "${TLS_MISSING:-}" ]; then
    step_fail "$TLS_MISSING — step failed"
    return 0
  fi
  local ok=0
  if [ "$s" = nginx ]; then start_nginx "$log" && ok=1; else start_demo "$s" "$log" && ok=1; fi
  if [ "$ok" = 0 ]; then
    cat "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    [ -n "$TLS_PID" ] && { stop_pid "$TLS_PID" 2 || true; }
    step_fail "$s did not start" "$log.both"
    return 0
  fi
  local t0 t1 tm wall ccores others
  _client_cmd() {
    OPENSSL_CONF=/dev/null timeout -k 5 $((TLS_DURATION + TLS_WARMUP + 40)) \
      "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" -c "$conc" -d "$TLS_DURATION" \
      -w "$TLS_WARMUP" --tls 1.3 --no-progress >"$log.out" 2>"$log.err"
  }
  t0=$(server_ticks "$TLS_PID")
  timed tm _client_cmd || rc=$?
  t1=$(server_ticks "$TLS_PID")
  read -r wall ccores others <<<"$tm"
  stop_pid "$TLS_PID" 10 || src=$?
  TLS_PID=''

  local line hs fails hps p50 p99 reqs cpu
  line=$(grep '^tls_client:.*hs_per_s=' "$log.out" || true)
  kv() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
  hs=$(kv handshakes "$line") fails=$(kv failures "$line") hps=$(kv hs_per_s "$line")
  p50=$(kv p50_ms "$line") p99=$(kv p99_ms "$line") reqs=$(kv requests "$line")
  if [ -z "$line" ] || [ "${hs:-0}" = 0 ]; then
    cat "$log.out" "$log.err" "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    step_fail "client rc=$rc, no handshakes" "$log.both"
    return 0
  fi
  cpu=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" \
        'BEGIN {if (n > 0) printf "%.2f", 1000 * d / hz / n}')
  local ccpu scores
  # client CPU per connection; the server's share of "others" moves to the server column
  ccpu=$(awk -v c="$ccores" -v w="$wall" -v n="$reqs" 'BEGIN {if (n > 0) printf "%.2f", 1000 * c * w / n}')
  scores=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v w="$wall" 'BEGIN {printf "%.2f", d / hz / w}')
  others=$(awk -v o="$others" -v s="$scores" 'BEGIN {o -= s; printf "%.2f", o < 0 ? 0 : o}')
  put tls "c$conc" hs_per_s "$s" "$r" "$hps"
  put tls "c$conc" p50_ms "$s" "$r" "$p50"
  put tls "c$conc" p99_ms "$s" "$r" "$p99"
  put tls "c$conc" failures "$s" "$r" "$fails"
  [ -n "$cpu" ] && put tls "c$conc" srv_cpu_ms "$s" "$r" "$cpu"
  [ -n "$ccpu" ] && put tls "c$conc" cli_cpu_ms "$s" "$r" "$ccpu"
  put tls "c$conc" cpu_server "$s" "$r" "$scores"
  put tls "c$conc" cpu_client "$s" "$r" "$ccores"
  put tls "c$conc" cpu_others "$s" "$r" "$others"
  local res="hs/s=$hps p50=${p50}ms p99=${p99}ms cpu ms/conn: srv=$cpu cli=$ccpu; cores: srv=$scores cli=$ccores others=$others"
  if [[ $s == async-* ]]; then
    local sum off inl
    sum=$(grep 'summary' "$log.srv" || true)
    off=$(kv 'sign\.offloaded' "$sum") inl=$(kv 'sign\.inline' "$sum")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "tls-c$conc" "$s" "$r" sign "${off:-0}" \
      "${inl:-0}" 0 0 0 0 >>"$STATS"
    res+=" [sign offloaded=${off:-?} inline=${inl:-?}]"
    if [ "${off:-0}" = 0 ]; then
      cat "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
      step_fail "NOT OFFLOADED: server sign.offloaded=${off:-none} ($res)" "$log.both"
      return 0
    fi
  fi
  if [ "$rc" != 0 ] || [ "${fails:-0}" != 0 ]; then
    cat "$log.out" "$log.err" >"$log.both" 2>/dev/null
    step_fail "client rc=$rc failures=$fails of $((hs + fails)) ($res)" "$log.both"
    return 0
  fi
  if [ "$src" != 0 ]; then
    cat "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    step_fail "server exit status $src ($res)" "$log.both"
    return 0
  fi
  step_ok "$res"
}

run_tls() {
  tls_prepare
  local r ci k s n=${#TLS_SERVERS[@]}
  for ((r = 0; r < TLS_ROUNDS; r++)); do
    for ((ci = 0; ci < ${#TLS_CONC_LIST[@]}; ci++)); do
      for ((k = 0; k < n; k++)); do
        s=${TLS_SERVERS[$(((k + r + ci) % n))]}
        tls_once "$s" "${TLS_CONC_LIST[$ci]}" "$r"
      done
    done
  done
}
