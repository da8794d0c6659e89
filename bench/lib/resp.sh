# bench/lib/resp.sh — responsiveness: how long a request on an established keep-alive
# connection waits while the server is flooded with full handshakes.
# tls_client --keepalive RESP_KA --flood RESP_FLOOD --ka-interval RESP_INTERVAL: RESP_KA
# client threads each send a small GET every RESP_INTERVAL ms on their own keep-alive
# connection (latency from the time it was due to the last byte of the response), while
# the client's event loop keeps RESP_FLOOD connections doing full TLS 1.3 handshakes
# (+ one GET) as fast as the server takes them. Servers: RESP_SERVERS (sync, async-fd,
# async-cb, nginx, as in bench/lib/tls.sh), certificate RESP_CERT (default rsa4096: a
# sync server's loop is blocked ~7 ms per RSA-4096 signature, which is what an async
# server is meant to avoid). Uses tls.sh's server helpers. Sourced by bench/run.sh.
#
# Data: resp <cert> {ka_p50_ms,ka_p90_ms,ka_p99_ms,ka_max_ms,ka_requests,flood_hs_per_s,
#       flood_p99_ms,failures,cpu_server,cpu_client,cpu_others} SERVER

resp_prepare() {
  step_begin resp "prepare (binaries, $(tls_cert_label "$RESP_CERT") cert)"
  if ! tls_setup; then
    RESP_MISSING=$TLS_MISSING
    step_fail "$RESP_MISSING — step failed"
    return 0
  fi
  if ! tls_cert "$RESP_CERT"; then
    RESP_MISSING="could not make a $RESP_CERT certificate"
    step_fail "$RESP_MISSING" "$work/log/tls.req"
    return 0
  fi
  step_ok "ok: $RESP_KA keep-alive clients every ${RESP_INTERVAL} ms, flood of $RESP_FLOOD"
}

resp_once() { # SERVER ROUND
  local s=$1 r=$2 t=$RESP_CERT log="$work/log/resp.$1.$2"
  step_begin resp "$s $(tls_cert_label "$t") r$((r + 1))"
  if [ -n "${RESP_MISSING:-}" ]; then
    step_fail "$RESP_MISSING — step failed"
    return 0
  fi
  tls_run "$s" "$t" "$log" $((RESP_DURATION + TLS_WARMUP + 40)) --keepalive "$RESP_KA" \
    --flood "$RESP_FLOOD" --ka-interval "$RESP_INTERVAL" -d "$RESP_DURATION" \
    -w "$TLS_WARMUP" --tls 1.3 --no-progress || return 0
  local fl ka hps fp99 ffail kreq kfail p50 p90 p99 pmax
  fl=$(grep '^tls_client:.*hs_per_s=' "$log.out" || true)
  ka=$(grep '^tls_client: keepalive ' "$log.out" || true)
  hps=$(kv hs_per_s "$fl") fp99=$(kv p99_ms "$fl") ffail=$(kv failures "$fl")
  kreq=$(kv requests "$ka") kfail=$(kv failures "$ka")
  p50=$(kv ka_p50_ms "$ka") p90=$(kv ka_p90_ms "$ka") p99=$(kv ka_p99_ms "$ka") pmax=$(kv ka_max_ms "$ka")
  if [ -z "$ka" ] || [ "${kreq:-0}" = 0 ]; then
    cat "$log.out" "$log.err" "$log.srv" "$log.srverr" >"$log.both" 2>/dev/null
    step_fail "client rc=$TR_RC, no keep-alive requests" "$log.both"
    return 0
  fi
  put resp "$t" ka_p50_ms "$s" "$r" "$p50"
  put resp "$t" ka_p90_ms "$s" "$r" "$p90"
  put resp "$t" ka_p99_ms "$s" "$r" "$p99"
  put resp "$t" ka_max_ms "$s" "$r" "$pmax"
  put resp "$t" ka_requests "$s" "$r" "$kreq"
  [ -n "$hps" ] && put resp "$t" flood_hs_per_s "$s" "$r" "$hps"
  [ -n "$fp99" ] && put resp "$t" flood_p99_ms "$s" "$r" "$fp99"
  put resp "$t" failures "$s" "$r" $((${ffail:-0} + ${kfail:-0}))
  put resp "$t" cpu_server "$s" "$r" "$TR_SCORES"
  put resp "$t" cpu_client "$s" "$r" "$TR_CCORES"
  put resp "$t" cpu_others "$s" "$r" "$TR_OTHERS"
  local res="keep-alive p50=${p50}ms p99=${p99}ms max=${pmax}ms n=$kreq; flood hs/s=$hps; cores: srv=$TR_SCORES cli=$TR_CCORES others=$TR_OTHERS"
  tls_step_end "$s" "resp-$t" "$r" "$log" "$res" $((${ffail:-0} + ${kfail:-0})) \
    "failures: flood=$ffail keep-alive=$kfail"
}

run_resp() {
  resp_prepare
  local r k n=${#RESP_SERVER_LIST[@]}
  for ((r = 0; r < RESP_ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
      resp_once "${RESP_SERVER_LIST[$(((k + r) % n))]}" "$r"
    done
  done
}
