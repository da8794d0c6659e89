#!/usr/bin/env bash
# The demo server against an emulated accelerator (README "Emulating an accelerator").
#   usage: emulation.sh littles | ring fd|cb | faults
# littles: sign latency 100 ms, one worker, 64 connections in flight. Little's law says
#   an async server does 64 / 0.1 s = 640 handshakes/s if the latency holds no worker
#   and nothing serialises: require >= 0.25 x that (160/s, plain build), 16 times what
#   one worker held for each latency would allow, and >= 10 x the sync server's rate.
#   0.8 x failed once on a loaded CI machine (492/s, p50 122 ms: the loop's and
#   client's turn-around on shared cores adds to the 100 ms), and 0.5 x (320/s) on a
#   machine losing the CPU to hypervisor steal; a serialisation shows as 10-20/s, far
#   below either bound. The sync server with the same latency (the sign waits on the
#   loop's thread) does at most 10/s: printed, and checked as an upper bound.
# ring: ring depth 8, 64 connections in flight plus 2 keep-alive clients: every
#   handshake completes, the ring refuses (emu.ring_refused > 0, the server saw EAGAIN
#   in callback mode), no heavy call ran on the loop's thread, and the keep-alive
#   requests are answered while the ring is full (the loop never waits for the device).
# faults: sign failure rate 5%: each failed handshake is clean (the client gets an alert,
#   the server logs "emulated device failure"), the others succeed, failures equal the
#   emu.faults counter and sit within the binomial spread, and the server's fds and
#   heap return to their baseline.
. "$(dirname "$0")/lib.sh"
what=${1:?littles, ring or faults}
make_certs
have_provider || { echo "SKIPPED: asyncpool.so not built" >&2; exit "$SKIP_RC"; }
PLAIN=1
[ -n "$SANITIZER" ] && PLAIN=0

# A config with one worker (Little's law must hold with a single one).
one_worker=$(conf_with workers 1)

case $what in
littles)
  export ASYNCPOOL_CONF=$one_worker ASYNCPOOL_EMULATE=sign=100ms
  # ECDSA P-256 and X25519, TLS 1.3, no request: the CPU per handshake stays far below
  # what 640/s needs on 2 cores, so the emulated device is the limit.
  start_server async --cert "$WORK/ecdsa.crt" --key "$WORK/ecdsa.key"
  out=$(timeout $((60 * SLOW)) "$BIN/tls_client" -p "$PORT" -c 64 -d 4 -w 1 --tls 1.3 \
        --no-request --no-progress) || { echo "$out"; fail "async client failed"; }
  echo "$out"
  stop_server async
  expect failures eq 0 "$out"
  expect sign.offloaded ge 1
  expect emu.delayed ge 1
  expect still_paused eq 0
  async=$(field hs_per_s "$out")
  start_server sync --cert "$WORK/ecdsa.crt" --key "$WORK/ecdsa.key" --sync
  sout=$(timeout $((60 * SLOW)) "$BIN/tls_client" -p "$PORT" -c 64 -d 3 -w 1 --tls 1.3 \
         --no-request --no-progress --timeout 30) || { echo "$sout"; fail "sync client failed"; }
  echo "$sout"
  stop_server sync
  expect sign.inline ge 1
  sync=$(field hs_per_s "$sout")
  note "Little's law, sign latency 100 ms, one worker, 64 in flight:" \
       "async $async handshakes/s (bound 640, required >= 160 and >= 10 x sync), sync $sync handshakes/s (bound 10)"
  # The sync bound holds in any build: each sign sleeps 100 ms on the one loop thread.
  awk -v s="$sync" 'BEGIN { exit !(s <= 10.5) }' || fail "sync server did $sync/s, above 10/s"
  if [ "$PLAIN" = 1 ]; then
    awk -v a="$async" 'BEGIN { exit !(a >= 160) }' || fail "async server did $async/s, below 160/s"
    awk -v a="$async" -v s="$sync" 'BEGIN { exit !(a >= 10 * s) }' \
      || fail "async ($async/s) is not 10 times sync ($sync/s)"
  else
    note "$SANITIZER build: the 160/s and 10 x sync bounds are checked in the plain build only"
    awk -v a="$async" -v s="$sync" 'BEGIN { exit !(a > 2 * s) }' \
      || fail "async ($async/s) is not even twice sync ($sync/s)"
  fi
  ;;

ring)
  mode=${2:?fd or cb}
  export ASYNCPOOL_EMULATE=sign=20ms,ring=8
  extra=()
  [ "$mode" = cb ] && extra=(--callback)
  start_server ring --cert "$WORK/ecdsa.crt" --key "$WORK/ecdsa.key" "${extra[@]}"
  out=$(timeout $((60 * SLOW)) "$BIN/tls_client" -p "$PORT" -d 3 --flood 64 --keepalive 2 \
        --tls 1.3 --no-progress --timeout 30) || { echo "$out"; fail "client failed"; }
  echo "$out"
  hs=$(grep 'handshakes=' <<<"$out")
  ka=$(grep 'keepalive clients=' <<<"$out")
  expect failures eq 0 "$hs"
  expect handshakes ge 50 "$hs"
  expect failures eq 0 "$ka"
  expect requests ge 50 "$ka"
  stop_server ring
  expect errors eq 0
  expect still_paused eq 0
  expect emu.ring_refused ge 1
  # No sign or derive ran on the loop's thread (what a server that cannot wait does).
  # (keygen is not checked: one keygen per handshake runs inline with or without
  # emulation, outside the job's offload path.)
  for k in sign derive; do expect "$k.inline" eq 0; done
  [ "$mode" = cb ] && expect eagain ge 1
  # A server that waited for the ring would hold keep-alive requests for the device's
  # 20 ms most of the time; answered at once, their median stays far below it.
  p50=$(field ka_p50_ms "$ka")
  note "ring 8 ($mode): ring_refused=$(field emu.ring_refused) keep-alive p50 ${p50} ms"
  if [ "$PLAIN" = 1 ]; then
    awk -v p="$p50" 'BEGIN { exit !(p < 10) }' || fail "keep-alive median $p50 ms: the loop waited"
  fi
  ;;

faults)
  export ASYNCPOOL_EMULATE=fail=sign:0.05,seed=11
  start_server faults --cert "$WORK/ecdsa.crt" --key "$WORK/ecdsa.key" -v
  pid=$SERVER_PID
  heap_kb() { server_heap_kb "$pid" "$WORK/faults.log"; }
  client() {
    timeout $((60 * SLOW)) "$BIN/tls_client" -v -p "$PORT" -n "$1" -c 32 --tls 1.3 \
      --no-progress 2>"$WORK/client.err" || true
  }
  # Warm-up (job pool, arenas, lazily built tables), then the baseline.
  client 300 >/dev/null
  sleep 0.5
  fd0=$(fd_count "$pid")
  heap0=$(heap_kb)
  f0=$(grep -c 'emulated device failure' "$WORK/faults.err" || true)
  note "baseline: $fd0 fds, heap in use $heap0 kB"
  n=1000
  out=$(client $n)
  echo "$out"
  failures=$(field failures "$out")
  [ "$(field handshakes "$out")" -eq $((n - failures)) ] || fail "handshakes + failures != $n"
  alerts=$(grep -c 'alert internal error' "$WORK/client.err" || true)
  logged=$(( $(grep -c 'emulated device failure' "$WORK/faults.err" || true) - f0 ))
  note "$failures failed of $n; client alerts $alerts; server logged $logged"
  [ "$alerts" -eq "$failures" ] || { head "$WORK/client.err" >&2; fail "$failures failures but $alerts alerts"; }
  [ "$logged" -eq "$failures" ] || fail "$failures failures but the server logged $logged emulated failures"
  # 5% of 1000: mean 50, sd 6.9; outside 20..80 (over 4 sd) the rate is not applied.
  [ "$failures" -ge 20 ] && [ "$failures" -le 80 ] || fail "$failures failures of $n at rate 0.05"
  fd1=$(wait_fds "$pid" "$fd0" $((50 * SLOW)))
  heap1=$(heap_kb)
  note "after: $fd1 fds, heap in use $heap1 kB"
  [ "$fd1" -eq "$fd0" ] || { ls -l "/proc/$pid/fd" >&2; fail "fd count $fd0 -> $fd1"; }
  expect_heap_back "$heap0" "$heap1"
  stop_server faults
  total=$(field emu.faults)
  # The counter covers the warm-up's failures too.
  warm=$(( $(field errors) - failures ))
  [ "$total" -eq "$(field errors)" ] || fail "emu.faults=$total but the server counted $(field errors) errors"
  [ "$(field sign.errors)" -eq "$total" ] || fail "sign.errors=$(field sign.errors), emu.faults=$total"
  note "emu.faults=$total = failures $failures + warm-up $warm"
  expect still_paused eq 0
  ;;
*)
  fail "unknown case $what"
  ;;
esac
finish
