# Sourced by the provider CLI tests. Sets up the environment for the openssl CLI with the
# asyncpool config and provides small assertion helpers.
set -uo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "--- $*"; }

[ -n "${ASYNCPOOL_CONF:-}" ] && [ -f "$ASYNCPOOL_CONF" ] || fail "ASYNCPOOL_CONF not set or missing (${ASYNCPOOL_CONF:-unset})"
[ -n "${OPENSSL_MODULES:-}" ] && [ -f "$OPENSSL_MODULES/asyncpool.so" ] ||
    fail "asyncpool.so not found in OPENSSL_MODULES=${OPENSSL_MODULES:-unset}"
export OPENSSL_CONF=$ASYNCPOOL_CONF ASYNCPOOL_STATS=1

# A sanitizer build of the module cannot be dlopen()ed by an uninstrumented openssl
# unless the ASan runtime is loaded first.
# (capture first: with pipefail, grep -q closing the pipe early would fail the test)
if [[ "$(ldd "$OPENSSL_MODULES/asyncpool.so" 2>/dev/null)" == *libasan* ]]; then
    asan=$(${CC:-gcc} -print-file-name=libasan.so)
    [ -f "$asan" ] || fail "module is built with ASan but libasan.so was not found"
    AP_ASAN_PRELOAD="$asan${LD_PRELOAD:+:$LD_PRELOAD}"
    # Only for openssl (other tools, e.g. dd, trip over ASan's allocator checks); and
    # the openssl CLI itself is not ours: do not fail on its leaks at exit.
    openssl() {
        LD_PRELOAD="$AP_ASAN_PRELOAD" \
            ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" command openssl "$@"
    }
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ossl NAME args...: run openssl, stdout to $TMP/NAME.out, stderr to $TMP/NAME.err; fail
# on a non-zero exit.
ossl() {
    local name=$1; shift
    if ! openssl "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; then
        cat "$TMP/$name.out" "$TMP/$name.err" >&2
        fail "openssl $* exited non-zero"
    fi
}

# stat NAME OP KIND: a counter from the ASYNCPOOL_STATS=1 line in $TMP/NAME.err
# (format "asyncpool: sign offloaded=N inline=N ...; verify ...; ... pool workers=N ...").
stat() {
    local line v
    line=$(grep '^asyncpool: ' "$TMP/$1.err" | tail -1)
    [ -n "$line" ] || fail "$1: no 'asyncpool:' stats line on stderr (ASYNCPOOL_STATS=1)"
    # Anchor the op name after ": " or "; " so "cipher" does not match "asym_cipher".
    v=$(grep -oE "(: |; )$2 [^;]*" <<<"$line" | grep -oE "(^| )$3=[0-9]+" | head -1 | cut -d= -f2)
    [ -n "$v" ] || fail "$1: no '$2 ... $3=' in: $line"
    echo "$v"
}

# expect_gt NAME OP KIND MIN: counter > MIN
expect_gt() {
    local v; v=$(stat "$1" "$2" "$3") || exit 1
    [ "$v" -gt "$4" ] || fail "$1: $2 $3=$v, expected > $4 ($(grep '^asyncpool: ' "$TMP/$1.err"))"
    echo "    $1: $2 $3=$v"
}
