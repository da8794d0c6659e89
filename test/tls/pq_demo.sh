#!/usr/bin/env bash
# Post-quantum TLS 1.3 with the demo server (OpenSSL 3.5+), async fd mode:
#  1. tls_client --groups X25519MLKEM768: the group is negotiated, and the server's
#     counters show its encapsulations offloaded (kem.offloaded);
#  2. curl --curves X25519MLKEM768, where curl has the option: the same, one more each;
#  3. the client side: tls_client --async with the asyncpool config runs its own
#     handshakes in jobs; its counters (printed on its summary line) show its key shares
#     generated (keygen.offloaded) and the server's encapsulations decapsulated
#     (kem.offloaded) on its workers, one each per handshake, and the server's its
#     encapsulations;
#  4. an ML-DSA-65 certificate (openssl req -x509 -newkey mldsa65): every handshake
#     signs with it, offloaded (sign.offloaded), and curl fetches the page over it.
# On an OpenSSL without the group or ML-DSA the test says so and passes.
. "$(dirname "$0")/lib.sh"
# Every call made in a job is checked to be offloaded: offload = always. The default,
# offload = auto, runs cheap calls inline (test/tls/auto.sh tests that).
export ASYNCPOOL_OFFLOAD=always

if ! openssl list -kem-algorithms 2>/dev/null | grep -q X25519MLKEM768 ||
   ! openssl list -signature-algorithms 2>/dev/null | grep -q ML-DSA-65; then
  echo "X25519MLKEM768 / ML-DSA-65: not available on this OpenSSL ($(openssl version))"
  exit 0
fi
make_certs
openssl req -x509 -newkey mldsa65 -nodes -keyout "$WORK/mldsa.key" -out "$WORK/mldsa.crt" \
  -subj /CN=localhost -days 2 2>/dev/null || fail "cannot make an ML-DSA-65 certificate"
openssl x509 -in "$WORK/mldsa.crt" -noout -text | grep -q 'Public Key Algorithm: ML-DSA-65' ||
  fail "the certificate's key is not ML-DSA-65"
n=20
curl_curves=0
if command -v curl >/dev/null && curl --help all 2>/dev/null | grep -q -- '--curves'; then
  curl_curves=1
else
  note "curl without --curves: the curl steps are left out"
fi

# curl_get WANT CURL_ARGS...: fetches the page (TLS 1.3) from $PORT; curl -v's
# "SSL connection using" line must contain WANT (case-insensitive).
curl_get() {
  local want=$1 out conn; shift
  out=$(curl -sS -k -v --max-time $((10 * SLOW)) --tlsv1.3 "$@" "https://127.0.0.1:$PORT/" \
          2>"$WORK/curl.err") || { cat "$WORK/curl.err" >&2; fail "curl $* failed"; }
  [ "$out" = "hello from asyncpool ssl_demo" ] || fail "curl $*: body '$out'"
  conn=$(grep -o 'SSL connection using .*' "$WORK/curl.err" || true)
  grep -qi -- "$want" <<<"$conn" || fail "curl $*: '$conn' lacks $want"
  note "curl $*: $conn"
}

note "X25519MLKEM768, tls_client"
start_server mlkem --cert "$WORK/rsa.crt" --key "$WORK/rsa.key"
out=$(timeout $((60 * SLOW)) "$BIN/tls_client" -p "$PORT" -n $n -c 4 --tls 1.3 \
        --groups X25519MLKEM768 --no-progress) || { echo "$out"; fail "tls_client failed"; }
echo "$out"
expect handshakes eq $n "$out"
expect failures eq 0 "$out"
[ "$(field group "$out")" = X25519MLKEM768 ] || fail "group negotiated: $(field group "$out")"
hs=$n
if [ "$curl_curves" = 1 ]; then
  curl_get X25519MLKEM768 --curves X25519MLKEM768
  hs=$((hs + 1))
fi
stop_server mlkem
expect handshakes eq $hs
expect errors eq 0
expect still_paused eq 0
if have_provider; then
  # One encapsulation per handshake, in the server's jobs.
  expect kem.offloaded ge $hs
  expect kem.errors eq 0
fi

note "X25519MLKEM768, tls_client --async: the client's own counters"
start_server mlkem-client --cert "$WORK/rsa.crt" --key "$WORK/rsa.key"
out=$(OPENSSL_CONF=$ASYNCPOOL_CONF timeout $((60 * SLOW)) "$BIN/tls_client" -p "$PORT" -n $n \
        -c 4 --tls 1.3 --groups X25519MLKEM768 --async --no-progress) ||
  { echo "$out"; fail "tls_client --async failed"; }
echo "$out"
expect handshakes eq $n "$out"
expect failures eq 0 "$out"
[ "$(field group "$out")" = X25519MLKEM768 ] || fail "group negotiated: $(field group "$out")"
if have_provider; then
  [ "$(field provider "$out")" = asyncpool ] ||
    fail "tls_client did not load asyncpool through \$ASYNCPOOL_CONF: $out"
  # The client makes one X25519MLKEM768 key share and decapsulates the server's
  # ciphertext once per handshake, both in its jobs.
  expect kem.offloaded ge $n "$out"
  expect kem.inline eq 0 "$out"
  expect kem.errors eq 0 "$out"
  expect keygen.offloaded ge $n "$out"
fi
stop_server mlkem-client
expect handshakes eq $n
expect errors eq 0
expect still_paused eq 0
if have_provider; then
  expect kem.offloaded ge $n
  expect kem.errors eq 0
fi

note "ML-DSA-65 certificate"
start_server mldsa --cert "$WORK/mldsa.crt" --key "$WORK/mldsa.key"
out=$(timeout $((60 * SLOW)) "$BIN/tls_client" -p "$PORT" -n $n -c 4 --tls 1.3 \
        --no-progress) || { echo "$out"; fail "tls_client over ML-DSA-65 failed"; }
echo "$out"
expect handshakes eq $n "$out"
expect failures eq 0 "$out"
hs=$n
if command -v curl >/dev/null; then
  curl_get ml-dsa-65
  hs=$((hs + 1))
fi
stop_server mldsa
expect handshakes eq $hs
expect errors eq 0
expect still_paused eq 0
# The only certificate is ML-DSA-65: each CertificateVerify is an ML-DSA signature.
expect_offloaded $hs
expect sign.errors eq 0
finish
