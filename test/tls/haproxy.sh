# HAProxy harness, sourced by tests (it sources lib.sh itself: WORK, PIDS and the cleanup
# trap, fail/note, SLOW, AP_ENV, make_certs, have_provider). One HAProxy at a time, in
# the foreground (-db, no fork), on 127.0.0.1 only, killed by lib.sh's trap on any exit.
#
#   haproxy_start [--cert PEM] [--nbthread N] [--no-async] [--load conf|keywords|none]
#                 [VAR=value...]
#       Writes HAP_DIR/haproxy.cfg (HAP_DIR: a new $WORK/haproxy.<n> each start) and
#       starts haproxy with ASYNCPOOL_STATS=1 and the VAR=value assignments in its
#       environment (e.g. ASYNCPOOL_EMULATE=...); returns when it listens (fails the test
#       if it does not, or if asyncpool.so is not mapped into it when it should be). Sets
#       HAP_PID, HAP_PORT, HAP_DIR. Defaults: $WORK/rsa.pem (make_certs' RSA-2048; also
#       $WORK/ecdsa.pem, P-256), nbthread 2, ssl-mode-async on, --load conf.
#       --load conf:     OPENSSL_CONF=$ASYNCPOOL_CONF (conf/openssl-async.cnf), as every
#                        other test loads asyncpool
#       --load keywords: haproxy.cfg alone loads it (ssl-provider-path, ssl-provider
#                        default + asyncpool, ssl-propquery ?provider=asyncpool), the
#                        README's recipe; OPENSSL_CONF is an empty file
#       --load none:     asyncpool not loaded (OPENSSL_CONF is an empty file)
#       Every handshake is a full one (no session cache, no tickets) and every response
#       closes its connection (option httpclose): one request = one handshake = one
#       signature. The frontend answers "ok" itself (http-request return): no backend.
#   haproxy_load N C [curl args...]
#       N HTTPS requests, C in parallel (curl --parallel), each on a fresh connection
#       without session reuse. Never fails the test by itself: sets HAP_OK (200 with body
#       "ok"), HAP_FAIL (N - HAP_OK, missing transfers included) and HAP_CONNECTS (TCP
#       connections curl opened), prints one line with them and the distinct errors.
#   haproxy_probe          one request; returns 0 if it got "ok", 1 otherwise (no fail).
#   haproxy_stop
#       Soft-stop (SIGUSR1: HAProxy finishes its connections and exits through its normal
#       exit path, where asyncpool prints its stats line; SIGTERM kills it with status
#       143 before that). Fails the test unless haproxy exits within 15 s (x SLOW) with
#       status 0, with no [ALERT] and no sanitizer report on stderr, and, when asyncpool
#       was loaded, printed the stats line. Sets HAP_STATS to that line ('' if none).
#   hap_stat OP KEY [LINE] the number KEY= in the OP segment of the stats line (default
#                          HAP_STATS): hap_stat sign offloaded, hap_stat pool submitted.
#   hap_skip_unless_haproxy  exit SKIP (77), loudly, when haproxy is not installed.
#
# haproxy's stderr is $HAP_DIR/haproxy.err, its config $HAP_DIR/haproxy.cfg. Call
# haproxy_start and haproxy_stop in the test's own shell, not in $(...) or a pipeline:
# they set variables and wait for haproxy, which must be a child of that shell.
# Under the ASan build haproxy (not instrumented) gets lib.sh's AP_ENV: libasan preloaded,
# leak checks off (its own leaks at exit are not ours); a sanitizer report fails the stop.

declare -F have_provider >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HAP_PID='' HAP_PORT='' HAP_DIR=$WORK/haproxy HAP_STATS=''
HAP_OK=0 HAP_FAIL=0 HAP_CONNECTS=0 HAP_LOADED=0
HAP_RUNS=0

hap_skip_unless_haproxy() {
  if ! command -v haproxy >/dev/null; then
    echo "SKIPPED: haproxy is not installed (scripts/deps.sh installs it on bookworm)" >&2
    exit "$SKIP_RC"
  fi
}

# A port nobody listens on; haproxy cannot bind port 0, so haproxy_start retries on a
# lost race (noreuseport makes a taken port fail).
hap_free_port() {
  local p used
  used=$(ss -Htln 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
  while :; do
    p=$((20000 + RANDOM % 40000))
    grep -qx "$p" <<<"$used" || { echo "$p"; return; }
  done
}

hap_write_cfg() { # hap_write_cfg CFG PEM NBTHREAD ASYNC LOAD PORT
  local async_line='' prov=''
  [ "$4" = 1 ] && async_line='    ssl-mode-async'
  if [ "$5" = keywords ]; then
    prov="    ssl-provider-path $OPENSSL_MODULES
    ssl-provider default
    ssl-provider asyncpool
    ssl-propquery ?provider=asyncpool"
  fi
  cat >"$1" <<EOF
global
$async_line
$prov
    nbthread $3
    maxconn 1000
    # No SO_REUSEPORT: another haproxy (another test) on the same port must make the
    # bind fail (and haproxy_start retry), not share the connections.
    noreuseport
    tune.ssl.cachesize 0

defaults
    mode http
    option httpclose
    timeout connect 5s
    timeout client $((10 * SLOW))s
    timeout server $((10 * SLOW))s

frontend tls
    bind 127.0.0.1:$6 ssl crt $2 no-tls-tickets
    http-request return status 200 content-type text/plain string ok
EOF
}

haproxy_start() {
  local pem=$WORK/rsa.pem nbthread=2 async=1 load=conf envs=() i try
  [ -f "$WORK/rsa.key" ] || make_certs
  [ -f "$WORK/rsa.pem" ] || cat "$WORK/rsa.crt" "$WORK/rsa.key" >"$WORK/rsa.pem"
  [ -f "$WORK/ecdsa.pem" ] || cat "$WORK/ecdsa.crt" "$WORK/ecdsa.key" >"$WORK/ecdsa.pem"
  while [ $# -gt 0 ]; do
    case $1 in
      --cert) pem=$2; shift 2 ;;
      --nbthread) nbthread=$2; shift 2 ;;
      --no-async) async=0; shift ;;
      --load) load=$2; shift 2 ;;
      *=*) envs+=("$1"); shift ;;
      *) fail "haproxy_start: unknown argument '$1'" ;;
    esac
  done
  case $load in conf|keywords|none) ;; *) fail "haproxy_start: --load conf|keywords|none" ;; esac
  [ -z "$HAP_PID" ] || fail "haproxy_start: haproxy $HAP_PID is still running"
  HAP_RUNS=$((HAP_RUNS + 1))
  HAP_DIR=$WORK/haproxy.$HAP_RUNS
  mkdir -p "$HAP_DIR"
  : >"$HAP_DIR/empty.cnf"
  local conf=$ASYNCPOOL_CONF
  [ "$load" = conf ] || conf=$HAP_DIR/empty.cnf
  HAP_LOADED=0
  [ "$load" != none ] && have_provider && HAP_LOADED=1

  for ((try = 1; try <= 5; try++)); do
    HAP_PORT=$(hap_free_port)
    hap_write_cfg "$HAP_DIR/haproxy.cfg" "$pem" "$nbthread" "$async" "$load" "$HAP_PORT"
    # AP_ENV: the ASan runtime first when the module is an ASan build (haproxy is not).
    "${AP_ENV[@]}" "OPENSSL_CONF=$conf" ASYNCPOOL_STATS=1 "${envs[@]}" \
      haproxy -db -f "$HAP_DIR/haproxy.cfg" >"$HAP_DIR/haproxy.out" 2>"$HAP_DIR/haproxy.err" &
    HAP_PID=$!
    PIDS+=("$HAP_PID")
    for ((i = 0; i < 100 * SLOW; i++)); do
      ss -Htlnp "sport = :$HAP_PORT" 2>/dev/null | grep -q "pid=$HAP_PID," && break
      kill -0 "$HAP_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$HAP_PID" 2>/dev/null && break
    wait "$HAP_PID" || true
    HAP_PID=''
    grep -q 'cannot bind socket' "$HAP_DIR/haproxy.err" || break
  done
  if [ -z "$HAP_PID" ]; then
    cat "$HAP_DIR/haproxy.err" >&2
    fail "haproxy did not start (config $HAP_DIR/haproxy.cfg)"
  fi
  ss -Htlnp "sport = :$HAP_PORT" 2>/dev/null | grep -q "pid=$HAP_PID," \
    || { cat "$HAP_DIR/haproxy.err" >&2; fail "haproxy does not listen on 127.0.0.1:$HAP_PORT"; }
  # The module in haproxy's address space: the provider really was loaded.
  if [ "$HAP_LOADED" = 1 ] && ! grep -q '/asyncpool\.so$' "/proc/$HAP_PID/maps"; then
    cat "$HAP_DIR/haproxy.err" >&2
    fail "haproxy runs without asyncpool.so (--load $load)"
  fi
  note "haproxy pid $HAP_PID on 127.0.0.1:$HAP_PORT: $(basename "$pem"), nbthread $nbthread," \
       "ssl-mode-async $([ $async = 1 ] && echo on || echo off), asyncpool via $load" \
       ${envs[*]:+"(env: ${envs[*]})"}
}

haproxy_load() {
  local n=${1:?haproxy_load N C} c=${2:?haproxy_load N C} out cfg i
  shift 2
  out=$HAP_DIR/load.$SECONDS.$RANDOM
  cfg=$out.curlrc
  for ((i = 1; i <= n; i++)); do
    printf 'url = "https://127.0.0.1:%s/%s"\noutput = "/dev/null"\n' "$HAP_PORT" "$i"
  done >"$cfg"
  # -w per transfer: status, connections opened, body size, curl's exit code and error.
  timeout $((60 * SLOW)) curl -sk --no-progress-meter --no-sessionid --parallel --parallel-immediate \
    --parallel-max "$c" --max-time $((20 * SLOW)) "$@" \
    -w '%{http_code} %{num_connects} %{size_download} %{exitcode} %{errormsg}\n' \
    -K "$cfg" >"$out" 2>"$out.err" || true
  HAP_OK=$(awk '$1 == 200 && $3 == 2 && $4 == 0' "$out" | wc -l)
  HAP_CONNECTS=$(awk '{s += $2} END {print s + 0}' "$out")
  HAP_FAIL=$((n - HAP_OK))
  echo "haproxy_load: $n requests, $c parallel: ok=$HAP_OK failed=$HAP_FAIL connects=$HAP_CONNECTS"
  if [ "$HAP_FAIL" -gt 0 ]; then
    echo "  transfers reported: $(wc -l <"$out"); distinct failures (count, status, error):"
    awk '!($1 == 200 && $3 == 2 && $4 == 0) {$2 = ""; $3 = ""; print}' "$out" \
      | sort | uniq -c | sort -rn | head -5 | sed 's/^/   /'
    head -3 "$out.err" | sed 's/^/  curl: /'
  fi
  return 0
}

haproxy_probe() {
  local body
  body=$(curl -sk --no-sessionid --max-time $((10 * SLOW)) "https://127.0.0.1:$HAP_PORT/probe" \
         2>/dev/null) || return 1
  [ "$body" = ok ]
}

haproxy_stop() {
  local rc=0
  [ -n "$HAP_PID" ] || fail "haproxy_stop: haproxy is not running"
  kill -USR1 "$HAP_PID"
  if ! wait_exit "$HAP_PID" $((150 * SLOW)); then
    kill -KILL "$HAP_PID"
    cat "$HAP_DIR/haproxy.err" >&2
    fail "haproxy did not exit after SIGUSR1 (soft-stop)"
  fi
  wait "$HAP_PID" || rc=$?
  HAP_PID=''
  HAP_STATS=$(grep '^asyncpool: ' "$HAP_DIR/haproxy.err" | tail -1 || true)
  [ -n "$HAP_STATS" ] && echo "$HAP_STATS"
  if [ "$rc" -ne 0 ] || grep -q '\[ALERT\]' "$HAP_DIR/haproxy.err"; then
    cat "$HAP_DIR/haproxy.err" >&2
    fail "haproxy exited with status $rc (or with an ALERT)"
  fi
  if grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\)\|runtime error' "$HAP_DIR/haproxy.err"; then
    cat "$HAP_DIR/haproxy.err" >&2
    fail "sanitizer report in haproxy"
  fi
  if [ "$HAP_LOADED" = 1 ] && [ -z "$HAP_STATS" ]; then
    cat "$HAP_DIR/haproxy.err" >&2
    fail "haproxy exited without asyncpool's stats line"
  fi
  return 0
}

hap_stat() {
  local line=${3:-$HAP_STATS} v
  v=$(awk -v op="$1" -v key="$2" 'BEGIN {RS = ";"} {
        sub(/^[ \n]*(asyncpool: )?/, "")
        if ($1 != op) next
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' <<<"$line")
  [ -n "$v" ] || fail "no '$1 $2=' in the stats line: $line"
  echo "$v"
}
