#!/usr/bin/env bash
# TLS 1.3 with the hybrid group X25519MLKEM768 (OpenSSL 3.5+), both peers with
# conf/openssl-async.cnf: `openssl s_server -async` encapsulates in its jobs and
# `openssl s_client -async` decapsulates in its own; both providers' counters (printed
# at exit, ASYNCPOOL_STATS=1) must show the KEM offloaded. On an OpenSSL without the
# group the test says so and passes.
. "$(dirname "$0")/lib.sh"
# Every call made in a job is checked to be offloaded: offload = always. The default,
# offload = auto, runs cheap calls inline (test/tls/auto.sh tests that).
export ASYNCPOOL_OFFLOAD=always

if ! openssl list -kem-algorithms 2>/dev/null | grep -q X25519MLKEM768; then
  echo "X25519MLKEM768: not available on this OpenSSL ($(openssl version))"
  exit 0
fi
have_provider || exit 77
make_certs

n=3
start_s_server $n -tls1_3 -groups X25519MLKEM768
sp=$SP sport=$SPORT
for ((i = 0; i < n; i++)); do
  out=$(echo | ASYNCPOOL_STATS=1 timeout $((30 * SLOW)) "${AP_ENV[@]}" openssl s_client \
          -async -connect "127.0.0.1:$sport" -tls1_3 -groups X25519MLKEM768 2>&1) \
    || { echo "$out" >&2; fail "s_client X25519MLKEM768 failed"; }
  grep -q 'Negotiated TLS1.3 group: X25519MLKEM768' <<<"$out" ||
    { echo "$out" >&2; fail "X25519MLKEM768 was not negotiated"; }
  kem=$(grep -o 'kem offloaded=[0-9]*' <<<"$out" | tail -1)
  note "s_client: X25519MLKEM768 negotiated; client $kem"
  [ "${kem#kem offloaded=}" -ge 1 ] || fail "client: decapsulation not offloaded ($kem)"
done
await_s_server_exit $n
wait "$sp" || true
stats=$(grep '^asyncpool: ' "$WORK/s_server.err" | tail -1 || true)
echo "s_server provider: $stats"
kem=$(grep -o 'kem offloaded=[0-9]*' <<<"$stats")
[ "${kem#kem offloaded=}" -ge $n ] || fail "server: encapsulation not offloaded ($kem)"
echo "PASS"
