#!/usr/bin/env bash
# curl fetches the page from the async server: TLS 1.2 and 1.3, RSA and ECDSA
# certificates; the server's summary must show the handshakes, no error, and (with the
# module) the signatures offloaded.   usage: curl.sh fd|cb
. "$(dirname "$0")/lib.sh"
mode=${1:?fd or cb}
flag=()
[ "$mode" = cb ] && flag=(--callback)
command -v curl >/dev/null || fail "curl missing (scripts/deps.sh installs it)"
make_certs
# Every signature must be offloaded: under offload = auto (the default) a P-256
# signature, cheap, runs inline once the first has been timed.
export ASYNCPOOL_OFFLOAD=always

for cert in rsa ecdsa; do
  start_server "$cert" --cert "$WORK/$cert.crt" --key "$WORK/$cert.key" "${flag[@]}"
  n=0
  for v in 1.2 1.3; do
    out=$(curl -sS -k -v --max-time $((10 * SLOW)) --tlsv$v --tls-max $v \
               "https://127.0.0.1:$PORT/" 2>"$WORK/curl.err") \
      || { cat "$WORK/curl.err" >&2; fail "curl TLS $v $cert failed"; }
    [ "$out" = "hello from asyncpool ssl_demo" ] || fail "curl TLS $v $cert: body '$out'"
    conn=$(grep -o 'SSL connection using [^ ]* / [^ ]*' "$WORK/curl.err" || true)
    grep -q "TLSv$v" <<<"$conn" || fail "curl TLS $v $cert: negotiated '$conn'"
    if [ "$v" = 1.2 ]; then
      want=$([ "$cert" = rsa ] && echo ECDHE-RSA || echo ECDHE-ECDSA)
      grep -q "$want" <<<"$conn" || fail "TLS 1.2 $cert: cipher '$conn', want $want"
    fi
    note "curl TLS $v $cert: ok ($conn)"
    n=$((n + 1))
  done
  stop_server "$cert"
  expect handshakes eq "$n"
  expect requests eq "$n"
  expect errors eq 0
  expect still_paused eq 0
  expect_offloaded "$n"
done
finish
