#!/usr/bin/env bash
# Device emulation's settings (README "Emulating an accelerator"): the emulate_* config
# keys and ASYNCPOOL_EMULATE go through one strict parser; a bad value fails the load
# with one line on stderr naming the value and the grammar. Then: a good value loads;
# the environment overrides the config item by item; a second instance asking for
# another emulation fails to load while the first keeps its own; and the fault sequence
# replays with the same seed (and differs with another). Driven through the openssl CLI
# and emu_probe (test/provider/emu_probe.c).
. "$(dirname "$0")/cli_lib.sh"
unset ASYNCPOOL_STATS ASYNCPOOL_EMULATE # the stats line also starts with "asyncpool: "
PROBE=$ASYNCPOOL_BUILD/test/emu_probe
[ -x "$PROBE" ] || fail "$PROBE not built"

# conf NAME LINES...: the shipped config with LINES added to the asyncpool section.
conf() {
    local name=$1 add
    shift
    add=$(printf '%s\\n' "$@")
    sed -e "s|^outside_job = inline\$|outside_job = inline\\n${add}|" "$ASYNCPOOL_CONF" >"$TMP/$name.cnf"
}

# bad NAME EXPECTED-LINE [env]: with $TMP/NAME.cnf (and ASYNCPOOL_EMULATE=env), the line
# appears exactly once on stderr and asyncpool is not listed.
bad() {
    local name=$1 line=$2 n
    ASYNCPOOL_EMULATE=${3:-} OPENSSL_CONF="$TMP/$name.cnf" openssl list -providers \
        >"$TMP/$name.out" 2>"$TMP/$name.err"
    n=$(grep -cxF -- "$line" "$TMP/$name.err")
    [ "$n" -eq 1 ] || { cat "$TMP/$name.err" >&2
        fail "$name: expected once on stderr: $line (seen $n times)"; }
    grep -qi '^ *asyncpool' "$TMP/$name.out" && { cat "$TMP/$name.out" >&2
        fail "$name: asyncpool listed although its configuration is invalid"; }
    echo "    $name: $line"
}

# good NAME [env]: loads, lists asyncpool active, says nothing on stderr.
good() {
    local name=$1
    ASYNCPOOL_EMULATE=${2:-} OPENSSL_CONF="$TMP/$name.cnf" openssl list -providers \
        >"$TMP/$name.out" 2>"$TMP/$name.err"
    grep -q 'asyncpool' "$TMP/$name.err" && { cat "$TMP/$name.err" >&2; fail "$name: stderr"; }
    grep -A3 -i '^ *asyncpool' "$TMP/$name.out" | grep -q 'status: active' ||
        { cat "$TMP/$name.out" >&2; fail "$name: asyncpool not active"; }
    echo "    $name: loads"
}

LAT='expected <dur>, <dur>+-<dur>, exp:<dur> or <dur>+exp:<dur>, where <dur> is a number with a unit (ns, us, ms, s), at most 60s'
RATE='expected a rate from 0 to 1, such as 0.01'
P='asyncpool: invalid configuration:'
E='; the provider is not loaded'

note "config keys: bad values"
conf lat_nounit 'emulate_sign_latency = 5'
bad lat_nounit "$P emulate_sign_latency = \"5\": $LAT$E"
conf lat_jitter_half 'emulate_all_latency = 2ms+-'
bad lat_jitter_half "$P emulate_all_latency = \"2ms+-\": $LAT$E"
conf lat_too_long 'emulate_keygen_latency = 61s'
bad lat_too_long "$P emulate_keygen_latency = \"61s\": $LAT$E"
conf lat_neg 'emulate_derive_latency = -1ms'
bad lat_neg "$P emulate_derive_latency = \"-1ms\": $LAT$E"
conf rate_big 'emulate_verify_fail = 1.5'
bad rate_big "$P emulate_verify_fail = \"1.5\": $RATE$E"
conf rate_pct 'emulate_kem_refuse = 5%'
bad rate_pct "$P emulate_kem_refuse = \"5%\": $RATE$E"
conf ring_neg 'emulate_ring = -1'
bad ring_neg "$P emulate_ring = \"-1\": expected an integer from 0 (no ring) to 16777216$E"
conf seed_word 'emulate_seed = lucky'
bad seed_word "$P emulate_seed = \"lucky\": expected an integer from 0 to 2^64-1$E"

note "ASYNCPOOL_EMULATE: bad items"
conf plain
for case in \
    "sign=2|sign=2|$LAT" \
    "sign=2ms+-1|sign=2ms+-1|$LAT" \
    "sign=exp:|sign=exp:|$LAT" \
    "fail=sign:2|fail=sign:2|$RATE" \
    "ring=64 |ring=64 |expected ring=N, N from 0 (no ring) to 16777216" \
    "seed=-7|seed=-7|expected seed=N, N from 0 to 2^64-1" \
    "sign=2ms,sign=3ms|sign=3ms|this kind's latency given twice" \
    "refuse=kem:0.1,refuse=kem:0.2|refuse=kem:0.2|this kind's rate given twice" \
    "fail=rsa:0.1|fail=rsa:0.1|expected fail=<kind>:<rate> or refuse=<kind>:<rate>, kind one of sign, verify, asym_cipher, derive, keygen, cipher, kem, all" \
    "latency=2ms|latency=2ms|unknown key: expected a kind (sign, verify, asym_cipher, derive, keygen, cipher, kem, all), ring, fail, refuse or seed" \
    "sign=2ms,|||empty item (items are separated by single commas, no spaces)" \
    "sign|sign|expected <kind>=<latency>, ring=N, fail=<kind>:<rate>, refuse=<kind>:<rate> or seed=N"; do
    IFS='|' read -r env item why rest <<<"$case"
    [ -n "${rest:-}" ] && { item=''; why=$rest; }
    bad plain "$P ASYNCPOOL_EMULATE item \"$item\": $why$E" "$env"
done

note "good values"
conf all_keys 'emulate_sign_latency = 2ms+-1ms' 'emulate_verify_latency = exp:50us' \
    'emulate_all_latency = 0.5ms+exp:0.1ms' 'emulate_ring = 64' 'emulate_sign_fail = 0.01' \
    'emulate_kem_refuse = 1' 'emulate_seed = 18446744073709551615'
good all_keys
good plain "sign=2ms+-1ms,ring=64,fail=sign:0.01,refuse=all:0.5,seed=7,cipher=50us"
good plain "fail=kem:0.1,refuse=kem:0.1"

note "one pool per process: a second instance asking for another emulation fails"
# Two instances of the module in one process, asyncpool and asyncpool2.
sed -e 's|^asyncpool = asyncpool_sect$|asyncpool = asyncpool_sect\nasyncpool2 = asyncpool2_sect|' \
    -e "s|^\\[algorithm_sect\\]\$|[asyncpool2_sect]\\nmodule = $OPENSSL_MODULES/asyncpool.so\\nactivate = 1\\nemulate_sign_latency = 1ms\\n\\n[algorithm_sect]|" \
    "$ASYNCPOOL_CONF" >"$TMP/two.cnf"
OPENSSL_CONF="$TMP/two.cnf" openssl list -providers >"$TMP/two.out" 2>"$TMP/two.err"
grep -cxF 'asyncpool: the emulate_* settings (with ASYNCPOOL_EMULATE) differ from those of the asyncpool instance already loaded; the pool and its emulated device are process-wide, the first instance'"'"'s settings stand; the provider is not loaded' \
    "$TMP/two.err" | grep -qx 1 || { cat "$TMP/two.err" >&2; fail "two: no conflict line"; }
grep -A3 -i '^ *asyncpool$' "$TMP/two.out" | grep -q 'status: active' ||
    { cat "$TMP/two.out" >&2; fail "two: the first instance is not active"; }
grep -qi '^ *asyncpool2' "$TMP/two.out" && { cat "$TMP/two.out" >&2; fail "two: asyncpool2 listed"; }
echo "    two instances, different emulation: the second fails to load, the first stands"
# The same emulation for both (here: from the environment, which both read) is fine.
sed -i 's|^emulate_sign_latency = 1ms$||' "$TMP/two.cnf"
ASYNCPOOL_EMULATE=sign=1ms OPENSSL_CONF="$TMP/two.cnf" openssl list -providers \
    >"$TMP/two2.out" 2>"$TMP/two2.err"
[ "$(grep -c 'status: active' "$TMP/two2.out")" -ge 3 ] ||
    { cat "$TMP/two2.out" "$TMP/two2.err" >&2; fail "two, same emulation: not all active"; }
echo "    two instances, same emulation: both load"

# probe NAME CONF N MODE [OP] [env]: runs emu_probe; output in $TMP/NAME.out
probe() {
    local name=$1 cnf=$2 n=$3 mode=$4 op=${5:-sign} env=${6:-}
    ASYNCPOOL_EMULATE=$env OPENSSL_CONF="$cnf" "$PROBE" "$n" "$mode" "$op" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" ||
        { cat "$TMP/$name.out" "$TMP/$name.err" >&2; fail "$name: emu_probe failed"; }
}
val() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$TMP/$1.out"; }

note "precedence: environment over config, a kind over all"
conf failall 'emulate_all_fail = 1' 'emulate_sign_fail = 0'
probe prec_sign "$TMP/failall.cnf" 20 both sign
probe prec_verify "$TMP/failall.cnf" 20 both verify
[ "$(val prec_sign failed)" = 0 ] || fail "emulate_sign_fail = 0 did not override emulate_all_fail = 1"
[ "$(val prec_verify failed)" = 20 ] || fail "verify: emulate_all_fail = 1 did not apply"
probe prec_env "$TMP/failall.cnf" 20 both verify "fail=verify:0"
[ "$(val prec_env failed)" = 0 ] || fail "ASYNCPOOL_EMULATE fail=verify:0 did not override the config"
probe prec_envall "$TMP/failall.cnf" 20 both sign "fail=all:1"
[ "$(val prec_envall failed)" = 20 ] || fail "ASYNCPOOL_EMULATE fail=all:1 did not override emulate_sign_fail = 0"
echo "    env kind > env all > config kind > config all"

note "replay: the same seed, the same faults (single thread, inline and in jobs)"
probe r1 "$TMP/plain.cnf" 200 both sign "fail=sign:0.3,seed=7"
probe r2 "$TMP/plain.cnf" 200 both sign "fail=sign:0.3,seed=7"
probe r3 "$TMP/plain.cnf" 200 both sign "fail=sign:0.3,seed=8"
s1=$(val r1 seq) s2=$(val r2 seq) s3=$(val r3 seq)
echo "    seed 7: $s1"
echo "    seed 8: $s3"
[ "${#s1}" -eq 200 ] || fail "replay: short sequence"
[ "$s1" = "$s2" ] || fail "replay: seed 7 gave two different sequences"
[ "$s1" != "$s3" ] || fail "replay: seeds 7 and 8 gave the same sequence"
for r in r1 r3; do
    f=$(val $r failed)
    [ "$f" = "$(val $r faults)" ] || fail "$r: $f failures but asyncpool.emu.faults=$(val $r faults)"
    [ "$(val $r reason_ok)" = 1 ] || fail "$r: a failure without \"emulated device failure\" on the caller's queue"
    # p = 0.3 over 200 calls: mean 60, sd 6.5; outside 30..90 is a broken PRNG or rate.
    [ "$f" -ge 30 ] && [ "$f" -le 90 ] || fail "$r: $f failures of 200 at rate 0.3"
done
echo "    $(val r1 failed) and $(val r3 failed) failures of 200, each on the caller's queue and counted"

note "synchronous calls wait out the latency on the caller's thread"
probe sync "$TMP/plain.cnf" 10 inline sign "sign=20ms"
ms=$(val sync elapsed_ms)
echo "    10 inline signs at sign=20ms: ${ms} ms"
awk -v m="$ms" 'BEGIN { exit !(m >= 200) }' || fail "inline signs did not wait out the latency (${ms} ms)"
probe async1 "$TMP/plain.cnf" 10 job sign "sign=20ms"
ms=$(val async1 elapsed_ms)
echo "    10 signs in jobs, one at a time, at sign=20ms: ${ms} ms"
awk -v m="$ms" 'BEGIN { exit !(m >= 200) }' || fail "offloaded signs did not see the latency (${ms} ms)"
echo "PASS"
