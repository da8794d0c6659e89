#!/usr/bin/env bash
# HAProxy (Debian's 2.6) with ssl-mode-async against an emulated accelerator, through
# the HAProxy harness (haproxy.sh):
#  1. ASYNCPOOL_EMULATE=sign=2ms: 400 HTTPS requests at 32 in parallel, each on its own
#     full handshake, all succeed; every signature offloaded and delayed; no fault.
#  2. sign=2ms,fail=sign:0.01: 1,000 requests at 32: the failures are clean (curl sees
#     a TLS handshake failure, exit 35, never a timeout or a reset), there are exactly as
#     many as asyncpool.emu.faults and within the binomial spread, the others succeed,
#     HAProxy keeps serving (a probe afterwards gets "ok") and soft-stops cleanly.
# Exit 77 (skipped) without haproxy or without asyncpool.so.
. "$(dirname "$0")/haproxy.sh"
hap_skip_unless_haproxy
have_provider || { echo "SKIPPED: asyncpool.so not built" >&2; exit "$SKIP_RC"; }
make_certs
cat "$WORK/ecdsa.crt" "$WORK/ecdsa.key" >"$WORK/ecdsa.pem"

n=400
haproxy_start --cert "$WORK/ecdsa.pem" ASYNCPOOL_EMULATE=sign=2ms
haproxy_load $n 32
[ "$HAP_OK" -eq $n ] || fail "sign=2ms: $HAP_FAIL of $n requests failed"
[ "$HAP_CONNECTS" -eq $n ] || fail "sign=2ms: $HAP_CONNECTS connections for $n requests"
haproxy_stop
[ "$(hap_stat sign offloaded)" -eq $n ] || fail "sign offloaded=$(hap_stat sign offloaded), want $n"
[ "$(hap_stat sign inline)" -eq 0 ] || fail "signatures ran inline"
# A signature whose own work outlasts the 2 ms (a busy machine, a sanitizer) is not
# delayed further: most are, not necessarily all.
[ "$(hap_stat emu delayed)" -ge 1 ] || fail "no signature was delayed"
[ "$(hap_stat emu faults)" -eq 0 ] || fail "faults without a fail rate"
note "sign=2ms: $n requests ok, $(hap_stat emu delayed) delayed"

n=1000
haproxy_start --cert "$WORK/ecdsa.pem" ASYNCPOOL_EMULATE=sign=2ms,fail=sign:0.01,seed=5
haproxy_load $n 32
out=$(ls -t "$HAP_DIR"/load.* | grep -v '\.curlrc$\|\.err$' | head -1)
# Every failed transfer: curl's exit 35 (SSL connect error: the handshake's alert).
bad=$(awk '!($1 == 200 && $3 == 2 && $4 == 0) && $4 != 35' "$out" | wc -l)
[ "$bad" -eq 0 ] || { awk '$4 != 0' "$out" | sort | uniq -c | head >&2; fail "$bad failures that are not a clean handshake failure"; }
[ "$(wc -l <"$out")" -eq $n ] || fail "curl reported $(wc -l <"$out") transfers of $n"
haproxy_probe || fail "haproxy does not serve after the faults"
haproxy_stop
faults=$(hap_stat emu faults)
note "fail=sign:0.01: $HAP_FAIL of $n requests failed, emu faults=$faults, sign errors=$(hap_stat sign errors)"
# The probe's handshake may have drawn a fault too: it passed, so it did not.
[ "$HAP_FAIL" -eq "$faults" ] || fail "$HAP_FAIL failed requests but $faults faults injected"
[ "$(hap_stat sign errors)" -eq "$faults" ] || fail "sign errors != faults"
# 1% of 1,000: mean 10, sd 3.1; 0 or over 30 means the rate is not applied.
[ "$faults" -ge 1 ] && [ "$faults" -le 30 ] || fail "$faults faults of $n at rate 0.01"
finish
