#!/usr/bin/env bash
# 2,000 full handshakes at concurrency 64 against the async server: zero failures.
#   usage: load.sh fd|cb      (cb also caps the job pool to exercise WANT_ASYNC_JOB)
. "$(dirname "$0")/lib.sh"
mode=${1:?fd or cb}
make_certs
if [ "$mode" = cb ]; then
  # Every signature must be offloaded (expect_offloaded below), and a P-256 one is
  # cheap enough for the default offload = auto to run inline: always here. The fd
  # run (RSA-2048) keeps the default, rule 6 included: see below.
  export ASYNCPOOL_OFFLOAD=always
  start_server load --cert "$WORK/ecdsa.crt" --key "$WORK/ecdsa.key" --callback --max-jobs 16
  tls=1.2
else
  start_server load --cert "$WORK/rsa.crt" --key "$WORK/rsa.key"
  tls=1.3
fi
n=2000
out=$(timeout $((100 * SLOW)) "$BIN/tls_client" -p "$PORT" -n $n -c 64 --tls $tls --no-progress) \
  || { echo "$out"; fail "tls_client exit status (failures or timeout)"; }
echo "$out"
expect handshakes eq $n "$out"
expect failures eq 0 "$out"
expect requests eq $n "$out"
stop_server load
expect handshakes eq $n
expect errors eq 0
expect still_paused eq 0
if [ "$mode" = cb ]; then
  expect_offloaded $n
elif have_provider; then
  # offload = auto: RSA signatures go to the pool, but rule 6 (provider/probe.c) runs
  # them inline during its probes, and throughout if inline does more of them here:
  # the signatures it ran inline are all the inline ones. (Whether it probes at all
  # depends on the signature's cost here, under its 500 µs bound or, under a slow
  # sanitizer, not; test_policy checks the probes.)
  so=$(field sign.offloaded); si=$(field sign.inline); hi=$(field auto.heavy_inline)
  [ -n "$so" ] && [ -n "$si" ] && [ -n "$hi" ] || fail "no sign or auto counters in: $SUMMARY"
  [ $((so + si)) -eq $n ] || fail "expected sign.offloaded + sign.inline = $n, got $so + $si"
  [ "$si" -le "$hi" ] || fail "expected sign.inline <= auto.heavy_inline, got $si > $hi"
  expect sign.offloaded ge 1
  expect pauses ge 1
  note "rule 6: $(field auto.probes) probes, $(field auto.probe_switches) switches, $si of $n signatures inline"
else
  expect_offloaded $n
fi
finish
