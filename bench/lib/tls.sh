# bench/lib/tls.sh — TLS 1.3 full handshakes (+ one GET) per second and latency, the
# ssl_demo load client (one thread, default provider, no resumption) against:
#   sync      ssl_demo tls_server --sync, default provider only, one thread
#   async-fd  ssl_demo tls_server, SSL_MODE_ASYNC fd mode, asyncpool, one thread
#   async-cb  ssl_demo tls_server --callback, asyncpool, one thread
#   async-always  as async-fd, with ASYNCPOOL_OFFLOAD=always: every heavy call offloaded
#             (the default, offload = auto, keeps cheap calls inline when that pays)
#   nginx     Debian's nginx, worker_processes <cores>, its own temp prefix (the anchor)
# Certificates and client concurrencies (the plan, see tls_plan):
#   rsa2048    TLS_CONCS          all five servers; test names "c<conc>"
#   rsa3072    TLS_RSA3072_CONCS  all five servers; test names "rsa3072-c<conc>"
#   rsa4096    TLS_RSA4096_CONCS  all five servers; "rsa4096-c<conc>"
#   ecdsap256  TLS_ECDSA_CONCS    TLS_ECDSA_SERVERS (default: no nginx); "ecdsap256-c<conc>"
# The client shares the machine's cores with the server.
# Also the server side of bench/lib/resp.sh (tls_cert, tls_run). Sourced by bench/run.sh.

TLS_TMP=''
TLS_PID=''
TLS_PORT=''

# tls_test CERT CONC: the test name in the data
tls_test() { if [ "$1" = rsa2048 ]; then echo "c$2"; else echo "$1-c$2"; fi; }
tls_cert_label() {
  case $1 in rsa*) echo "RSA-${1#rsa}" ;; ecdsap256) echo "ECDSA P-256" ;; *) echo "$1" ;; esac
}
tls_concs_of() {
  case $1 in
    rsa2048) echo "$TLS_CONCS" ;; rsa3072) echo "$TLS_RSA3072_CONCS" ;;
    rsa4096) echo "$TLS_RSA4096_CONCS" ;; ecdsap256) echo "$TLS_ECDSA_CONCS" ;;
  esac
}
tls_servers_of() { case $1 in ecdsa*) echo "$TLS_ECDSA_SERVERS" ;; *) echo "${TLS_SERVERS[*]}" ;; esac; }

# tls_plan: fills TLS_PLAN with "cert conc" pairs, in run order
tls_plan() {
  local cert c
  TLS_PLAN=()
  for cert in "${TLS_CERTS[@]}"; do
    for c in $(tls_concs_of "$cert"); do TLS_PLAN+=("$cert $c"); done
  done
}

# tls_setup: checks the binaries, makes the work dir; sets TLS_MISSING on failure
tls_setup() {
  local b
  [ -n "$TLS_TMP" ] && return 0
  for b in tls_server tls_client; do
    if [ ! -x "$BUILD/ssl_demo/$b" ]; then
      TLS_MISSING="ssl_demo not built ($BUILD/ssl_demo/$b missing)"
      return 1
    fi
  done
  TLS_TMP=$work/tls
  mkdir -p "$TLS_TMP/nginx"
  command -v nginx >/dev/null || echo "note: nginx missing; its runs will fail" >&2
}

# tls_cert CERT: makes $TLS_TMP/CERT.{crt,key} once
tls_cert() {
  local c=$1
  local -a alg
  [ -s "$TLS_TMP/$c.crt" ] && return 0
  case $c in
    rsa*) alg=(-newkey "rsa:${c#rsa}") ;;
    ecdsap256) alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    *) echo "unknown certificate type $c" >&2; return 1 ;;
  esac
  openssl req -x509 "${alg[@]}" -nodes -keyout "$TLS_TMP/$c.key" -out "$TLS_TMP/$c.crt" \
    -subj /CN=localhost -days 2 >>"$work/log/tls.req" 2>&1
}

# tls_standalone NAME: the set-up of the standalone scripts (bench/tls_split.sh,
# tls_clients.sh, tls_sched.sh), run from the checkout with $src and $BUILD set: checks
# that $BUILD has the demo, makes the work dir $work (cleanup, at exit, kills what
# start_demo tracked and removes it), points start_demo at the shipped config and
# $BUILD's module, and makes the $CERT certificate. Exits with NAME's message on failure.
tls_standalone() {
  [ -x "$BUILD/ssl_demo/tls_server" ] || { echo "$1: build first (scripts/build.sh build)" >&2; exit 1; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  mkdir -p "$work/log"
  trap cleanup EXIT
  AP_CONF=$src/conf/openssl-async.cnf AP_MODULES=$BUILD/provider TLS_TMP=$work/tls
  mkdir -p "$TLS_TMP"
  tls_cert "$CERT" || { cat "$work/log/tls.req" >&2 2>/dev/null || true; echo "$1: no $CERT certificate" >&2; exit 1; }
}

tls_prepare() {
  local cert certs=()
  for cert in "${TLS_CERTS[@]}"; do [ -n "$(tls_concs_of "$cert")" ] && certs+=("$cert"); done
  step_begin tls "prepare (binaries, certs: ${certs[*]})"
  if ! tls_setup; then
    step_fail "$TLS_MISSING — step failed"
    return 0
  fi
  for cert in "${certs[@]}"; do
    if ! tls_cert "$cert"; then
      TLS_MISSING="could not make a $cert certificate"
      step_fail "$TLS_MISSING" "$work/log/tls.req"
      return 0
    fi
  done
  step_ok "ok: $("$BUILD/ssl_demo/tls_client" --help 2>&1 | head -1 | cut -c1-40)..."
}

start_demo() { # start_demo SERVER LOG CERT
  local conf=/dev/null i offload=
  local -a args=()
  case $1 in
    sync) args=(--sync) ;;
    async-fd) conf=$AP_CONF ;;
    async-cb) conf=$AP_CONF args=(--callback) ;;
    async-always) conf=$AP_CONF offload=always ;;
  esac
  ASYNCPOOL_OFFLOAD=$offload OPENSSL_CONF=$conf OPENSSL_MODULES=$AP_MODULES \
    "$BUILD/ssl_demo/tls_server" -p 0 \
    --cert "$TLS_TMP/$3.crt" --key "$TLS_TMP/$3.key" "${args[@]}" >"$2.srv" 2>"$2.srverr" &
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

start_nginx() { # start_nginx LOG CERT: tries free-looking ports until nginx binds one
  local i j port pfx=$TLS_TMP/nginx
  for ((i = 0; i < 20; i++)); do
    port=$((20000 + RANDOM % 20000))
    ss -Htln "sport = :$port" | grep -q . && continue
    # keepalive_*: the responsiveness group's clients keep one connection for the run
    cat >"$pfx/nginx.conf" <<EOF2
daemon off;
master_process on;
worker_processes $CORES;
pid $pfx/nginx.pid;
error_log $pfx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path $pfx/body;
  proxy_temp_path $pfx/proxy;
  fastcgi_temp_path $pfx/fastcgi;
  uwsgi_temp_path $pfx/uwsgi;
  scgi_temp_path $pfx/scgi;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $TLS_TMP/$2.crt;
    ssl_certificate_key $TLS_TMP/$2.key;
    ssl_protocols TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location / { return 200 "hello from nginx\n"; }
  }
}
EOF2
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

# tls_run SERVER CERT LOG TIMEOUT CLIENT_ARGS...: starts SERVER with CERT, runs
# tls_client CLIENT_ARGS against it (-p added; output in LOG.out/LOG.err), stops the
# server. Sets TR_RC (client status), TR_SRC (server's), TR_WALL, TR_CCORES (client
# cores), TR_SCORES (server cores), TR_OTHERS (everything else, cores), TR_TICKS (server
# CPU ticks during the client's run), TR_CSW (the server's context switches meanwhile).
# Returns 1 (and fails the step) if the server did not start.
tls_run() {
  local s=$1 cert=$2 log=$3 tmo=$4 ok=0
  shift 4
  TR_RC=0 TR_SRC=0
  if [ "$s" = nginx ]; then start_nginx "$log" "$cert" && ok=1; else start_demo "$s" "$log" "$cert" && ok=1; fi
  if [ "$ok" = 0 ]; then
    cat "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    [ -n "$TLS_PID" ] && { stop_pid "$TLS_PID" 2 || true; }
    TLS_PID=''
    step_fail "$s did not start" "$log.both"
    return 1
  fi
  local -a cargs=("$@")
  _client_cmd() {
    OPENSSL_CONF=/dev/null timeout -k 5 "$tmo" "$BUILD/ssl_demo/tls_client" -p "$TLS_PORT" \
      "${cargs[@]}" >"$log.out" 2>"$log.err"
  }
  local t0 t1 c0 c1 tm others
  t0=$(server_ticks "$TLS_PID") c0=$(server_ctxsw "$TLS_PID")
  timed tm _client_cmd || TR_RC=$?
  t1=$(server_ticks "$TLS_PID") c1=$(server_ctxsw "$TLS_PID")
  TR_CSW=$((c1 - c0))
  read -r TR_WALL TR_CCORES others <<<"$tm"
  stop_pid "$TLS_PID" 10 || TR_SRC=$?
  TLS_PID=''
  TR_TICKS=$((t1 - t0))
  TR_SCORES=$(awk -v d="$TR_TICKS" -v hz="$HZ" -v w="$TR_WALL" 'BEGIN {printf "%.2f", d / hz / w}')
  # the server's share of the machine's "others" moves to the server column
  TR_OTHERS=$(awk -v o="$others" -v s="$TR_SCORES" 'BEGIN {o -= s; printf "%.2f", o < 0 ? 0 : o}')
  return 0
}

kv() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# tls_offload_check SERVER NAME ROUND LOG RES: for asyncpool servers, records the sign
# counters and fails the step when nothing was offloaded, where something must have
# been: always with offload = always, and with RSA certificates (an RSA signature costs
# more than offload_min_us, so offload = auto offloads it too). An ECDSA P-256 signature
# under offload = auto runs inline unless the demand is high. Returns 1 if it failed.
tls_offload_check() {
  local s=$1 t=$2 r=$3 log=$4 res=$5 sum off inl
  [[ $s == async-* ]] || return 0
  sum=$(grep 'summary' "$log.srv" || true)
  off=$(kv 'sign\.offloaded' "$sum") inl=$(kv 'sign\.inline' "$sum")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$s" "$r" sign "${off:-0}" \
    "${inl:-0}" 0 0 0 0 >>"$STATS"
  OFFLOAD_NOTE=" [sign offloaded=${off:-?} inline=${inl:-?}]"
  if [ "${off:-0}" = 0 ] && { [ "$s" = async-always ] || [[ $t != ecdsa* ]]; }; then
    cat "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    step_fail "NOT OFFLOADED: server sign.offloaded=${off:-none} ($res)" "$log.both"
    return 1
  fi
}

tls_once() { # SERVER CONC ROUND CERT
  local s=$1 conc=$2 r=$3 cert=$4 t log
  t=$(tls_test "$cert" "$conc")
  log="$work/log/tls.$s.$t.$r"
  step_begin tls "$s $(tls_cert_label "$cert") -c $conc r$((r + 1))"
  if [ -n "${TLS_MISSING:-}" ]; then
    step_fail "$TLS_MISSING — step failed"
    return 0
  fi
  tls_run "$s" "$cert" "$log" $((TLS_DURATION + TLS_WARMUP + 40)) -c "$conc" \
    -d "$TLS_DURATION" -w "$TLS_WARMUP" --tls 1.3 --no-progress || return 0

  local line hs fails hps p50 p99 reqs cpu ccpu csw
  line=$(grep '^tls_client:.*hs_per_s=' "$log.out" || true)
  hs=$(kv handshakes "$line") fails=$(kv failures "$line") hps=$(kv hs_per_s "$line")
  p50=$(kv p50_ms "$line") p99=$(kv p99_ms "$line") reqs=$(kv requests "$line")
  if [ -z "$line" ] || [ "${hs:-0}" = 0 ]; then
    cat "$log.out" "$log.err" "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    step_fail "client rc=$TR_RC, no handshakes" "$log.both"
    return 0
  fi
  # CPU per connection (warm-up included) of the server and of the client
  cpu=$(awk -v d="$TR_TICKS" -v hz="$HZ" -v n="$reqs" \
        'BEGIN {if (n > 0) printf "%.2f", 1000 * d / hz / n}')
  ccpu=$(awk -v c="$TR_CCORES" -v w="$TR_WALL" -v n="$reqs" 'BEGIN {if (n > 0) printf "%.2f", 1000 * c * w / n}')
  # The server's context switches per connection: each is a sleep and a wake-up, or a
  # preemption, and what it costs beyond its instructions (see README, "What a wake-up
  # costs on a virtual machine").
  csw=$(awk -v c="$TR_CSW" -v n="$reqs" 'BEGIN {if (n > 0) printf "%.2f", c / n}')
  put tls "$t" hs_per_s "$s" "$r" "$hps"
  put tls "$t" p50_ms "$s" "$r" "$p50"
  put tls "$t" p99_ms "$s" "$r" "$p99"
  put tls "$t" failures "$s" "$r" "$fails"
  [ -n "$cpu" ] && put tls "$t" srv_cpu_ms "$s" "$r" "$cpu"
  [ -n "$ccpu" ] && put tls "$t" cli_cpu_ms "$s" "$r" "$ccpu"
  [ -n "$csw" ] && put tls "$t" srv_csw "$s" "$r" "$csw"
  put tls "$t" cpu_server "$s" "$r" "$TR_SCORES"
  put tls "$t" cpu_client "$s" "$r" "$TR_CCORES"
  put tls "$t" cpu_others "$s" "$r" "$TR_OTHERS"
  local res="hs/s=$hps p50=${p50}ms p99=${p99}ms cpu ms/conn: srv=$cpu cli=$ccpu; srv ctx switches/conn=$csw; cores: srv=$TR_SCORES cli=$TR_CCORES others=$TR_OTHERS"
  tls_step_end "$s" "tls-$t" "$r" "$log" "$res" "$fails" "failures=$fails of $((hs + fails))"
}

# tls_step_end SERVER TEST ROUND LOG RESULT FAILURES FAILURE_TEXT: the end of a client
# run against a server, for the tls and resp groups: the offload proof, then the step's
# verdict (client exit status and failures, then the server's exit status).
tls_step_end() {
  local s=$1 test=$2 r=$3 log=$4 res=$5 fails=$6 ftext=$7
  OFFLOAD_NOTE=''
  tls_offload_check "$s" "$test" "$r" "$log" "$res" || return 0
  res+=$OFFLOAD_NOTE
  if [ "$TR_RC" != 0 ] || [ "${fails:-0}" != 0 ]; then
    cat "$log.out" "$log.err" >"$log.both" 2>/dev/null
    step_fail "client rc=$TR_RC $ftext ($res)" "$log.both"
    return 0
  fi
  if [ "$TR_SRC" != 0 ]; then
    cat "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    step_fail "server exit status $TR_SRC ($res)" "$log.both"
    return 0
  fi
  step_ok "$res"
}

run_tls() {
  tls_prepare
  local r pi k cert conc n
  local -a servers
  for ((r = 0; r < TLS_ROUNDS; r++)); do
    for ((pi = 0; pi < ${#TLS_PLAN[@]}; pi++)); do
      read -r cert conc <<<"${TLS_PLAN[$pi]}"
      read -r -a servers <<<"$(tls_servers_of "$cert")"
      n=${#servers[@]}
      for ((k = 0; k < n; k++)); do
        tls_once "${servers[$(((k + r + pi) % n))]}" "$conc" "$r" "$cert"
      done
    done
  done
}
