#!/usr/bin/env bash
# A misconfigured asyncpool activated from OPENSSL_CONF (activate = 1, the documented
# way) must not pass silently. OpenSSL 3.0 drops the error of a provider that fails to
# activate from a config file, and the application runs on default alone; so asyncpool
# says it on stderr, once, naming the key, the value and what is allowed. Driven through
# `openssl list -providers`, which must also show asyncpool absent and default active.
# Positive control: the shipped config says nothing of the kind and lists asyncpool.
. "$(dirname "$0")/cli_lib.sh"
unset ASYNCPOOL_STATS # its line also starts with "asyncpool: "

# conf NAME SED-EXPR: the shipped config with one edit, as $TMP/NAME.cnf
conf() { sed -e "$2" "$ASYNCPOOL_CONF" >"$TMP/$1.cnf"; }

# bad NAME SED-EXPR EXPECTED-LINE: the message appears exactly once, asyncpool is absent.
bad() {
    local name=$1 line=$3 n
    conf "$name" "$2"
    grep -q . "$TMP/$name.cnf" || fail "$name: empty config"
    OPENSSL_CONF="$TMP/$name.cnf" openssl list -providers >"$TMP/$name.out" 2>"$TMP/$name.err"
    n=$(grep -cxF -- "$line" "$TMP/$name.err")
    [ "$n" -eq 1 ] || { cat "$TMP/$name.err" >&2
        fail "$name: expected once on stderr: $line (seen $n times)"; }
    grep -qi '^ *asyncpool' "$TMP/$name.out" && { cat "$TMP/$name.out" >&2
        fail "$name: asyncpool listed although its configuration is invalid"; }
    grep -A3 '^ *default' "$TMP/$name.out" | grep -q 'status: active' ||
        { cat "$TMP/$name.out" >&2; fail "$name: default not active"; }
    echo "    $name: $line"
}

note "invalid values, activated from OPENSSL_CONF"
bad workers_neg 's/^workers = 0$/workers = -1/' \
    'asyncpool: invalid configuration: workers = "-1": expected an integer from 0 to 256; the provider is not loaded'
bad workers_big 's/^workers = 0$/workers = 100000/' \
    'asyncpool: invalid configuration: workers = "100000": expected an integer from 0 to 256; the provider is not loaded'
bad capacity_zero 's/^queue_capacity = 1024$/queue_capacity = 0/' \
    'asyncpool: invalid configuration: queue_capacity = "0": expected an integer from 1 to 16777216; the provider is not loaded'
bad threshold_word 's/^inline_threshold = 32768$/inline_threshold = lots/' \
    'asyncpool: invalid configuration: inline_threshold = "lots": expected an integer from 0 to 1073741824; the provider is not loaded'
bad outside_word 's/^outside_job = inline$/outside_job = sometimes/' \
    'asyncpool: invalid configuration: outside_job = "sometimes": expected inline or block; the provider is not loaded'
bad backend_none 's/^# backend = legacy$/backend = nosuchprovider/' \
    'asyncpool: cannot load the backend provider: backend = "nosuchprovider"; the provider is not loaded'

note "positive control: the shipped config"
OPENSSL_CONF=$ASYNCPOOL_CONF openssl list -providers >"$TMP/good.out" 2>"$TMP/good.err"
grep -q 'asyncpool' "$TMP/good.err" && { cat "$TMP/good.err" >&2; fail "good config: asyncpool wrote to stderr"; }
grep -A3 -i '^ *asyncpool' "$TMP/good.out" | grep -q 'status: active' ||
    { cat "$TMP/good.out" >&2; fail "good config: asyncpool not listed as active"; }
echo "    good: asyncpool active, nothing on stderr"
echo "PASS"
