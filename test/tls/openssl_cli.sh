#!/usr/bin/env bash
# Real OpenSSL peers, both with conf/openssl-async.cnf:
#  1. `openssl s_client -async` fetches the page from the demo server (TLS 1.2 and 1.3);
#  2. the demo client (--async) runs 50 handshakes against `openssl s_server -async`,
#     which exits after them (-naccept) so the provider prints its counters at unload.
#     s_server runs in its interactive mode: with -www it sleep(1)s whenever a job
#     pauses (apps/s_server.c www_body), 3-4 seconds per handshake here.
. "$(dirname "$0")/lib.sh"
# Every call made in a job is checked to be offloaded: offload = always. The default,
# offload = auto, runs cheap calls inline (test/tls/auto.sh tests that).
export ASYNCPOOL_OFFLOAD=always
make_certs

start_server demo --cert "$WORK/rsa.crt" --key "$WORK/rsa.key"
for v in 1.2 1.3; do
  out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout $((20 * SLOW)) "${AP_ENV[@]}" openssl s_client -async \
          -connect "127.0.0.1:$PORT" -tls${v/./_} -quiet 2>"$WORK/s_client.err") \
    || { cat "$WORK/s_client.err" >&2; fail "s_client -async TLS $v failed"; }
  grep -q 'hello from asyncpool ssl_demo' <<<"$out" || fail "s_client TLS $v: got '$out'"
  note "s_client -async TLS $v: ok"
done
stop_server demo
expect handshakes eq 2
expect errors eq 0
expect_offloaded 2

# s_server picks a free port itself (-accept 0) and prints it.
n=50
start_s_server $n
sp=$SP sport=$SPORT
note "openssl s_server -async on port $sport"
out=$(OPENSSL_CONF=$ASYNCPOOL_CONF timeout $((60 * SLOW)) "$BIN/tls_client" -p "$sport" \
        -n $n -c 4 --async --tls 1.3 --no-request --no-progress) || { echo "$out"; fail "tls_client against s_server"; }
echo "$out"
expect handshakes eq $n "$out"
expect failures eq 0 "$out"
if have_provider; then
  expect verify.offloaded ge $n "$out"   # the client's own jobs paused too
fi
await_s_server_exit $n
rc=0; wait "$sp" || rc=$?
[ "$rc" -eq 0 ] || { cat "$WORK/s_server.err" >&2; fail "s_server exit status $rc"; }
if have_provider; then
  # The client verified the server's signatures in its own async jobs, and s_server's
  # provider signed them; its counters are printed at unload (ASYNCPOOL_STATS=1).
  stats=$(grep '^asyncpool: sign offloaded=' "$WORK/s_server.err" | tail -1 || true)
  echo "s_server provider: $stats"
  [ -n "$stats" ] || fail "s_server printed no asyncpool stats line at exit"
  signed=$(sed -n 's/^asyncpool: sign offloaded=\([0-9]*\).*/\1/p' <<<"$stats")
  [ "${signed:-0}" -ge $n ] || fail "s_server offloaded $signed signatures, want >= $n"
fi
finish
