#!/usr/bin/env bash
# The openssl CLI with conf/openssl-async.cnf: asyncpool is listed active; genpkey,
# pkeyutl -sign/-verify/-encrypt/-decrypt/-derive, req -x509 and enc work, and the
# ASYNCPOOL_STATS=1 line shows the operations ran through asyncpool, inline (the CLI
# runs no async job, and outside_job defaults to inline).
. "$(dirname "$0")/cli_lib.sh"

note "list -providers"
ossl list list -providers
grep -A3 -i '^ *asyncpool' "$TMP/list.out" | grep -qi 'status: active' ||
    { cat "$TMP/list.out"; fail "asyncpool not listed as active"; }

note "genpkey"
for spec in "RSA -pkeyopt rsa_keygen_bits:2048" "EC -pkeyopt ec_paramgen_curve:P-256" \
            "X25519" "X448" "ED25519" "ED448" "RSA-PSS -pkeyopt rsa_keygen_bits:2048"; do
    set -- $spec
    alg=$1; shift
    ossl "gen_$alg" genpkey -algorithm "$alg" "$@" -out "$TMP/$alg.pem"
    expect_gt "gen_$alg" keygen inline 0
    expect_gt "gen_$alg" keygen offloaded -1 >/dev/null
    [ "$(stat "gen_$alg" keygen offloaded)" -eq 0 ] || fail "gen_$alg: keygen offloaded outside a job"
    ossl "pub_$alg" pkey -in "$TMP/$alg.pem" -pubout -out "$TMP/$alg.pub"
done
# the peers for -derive
ossl gen_EC2 genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/EC2.pem"
ossl pub_EC2 pkey -in "$TMP/EC2.pem" -pubout -out "$TMP/EC2.pub"
ossl gen_X2 genpkey -algorithm X25519 -out "$TMP/X2.pem"
ossl pub_X2 pkey -in "$TMP/X2.pem" -pubout -out "$TMP/X2.pub"

note "pkeyutl -sign / -verify"
head -c 32 /dev/urandom >"$TMP/dgst"
head -c 1000 /dev/urandom >"$TMP/msg"
for alg in RSA EC RSA-PSS; do
    ossl "sign_$alg" pkeyutl -sign -inkey "$TMP/$alg.pem" -in "$TMP/dgst" -pkeyopt digest:sha256 \
        -out "$TMP/$alg.sig"
    expect_gt "sign_$alg" sign inline 0
    ossl "verify_$alg" pkeyutl -verify -pubin -inkey "$TMP/$alg.pub" -in "$TMP/dgst" \
        -pkeyopt digest:sha256 -sigfile "$TMP/$alg.sig"
    grep -q 'Signature Verified Successfully' "$TMP/verify_$alg.out" || fail "$alg: not verified"
    expect_gt "verify_$alg" verify inline 0
    # a tampered digest must not verify
    printf 'x' | dd of="$TMP/dgst" bs=1 seek=5 conv=notrunc status=none
    if openssl pkeyutl -verify -pubin -inkey "$TMP/$alg.pub" -in "$TMP/dgst" \
        -pkeyopt digest:sha256 -sigfile "$TMP/$alg.sig" >/dev/null 2>&1; then
        fail "$alg: a signature over another digest verified"
    fi
    head -c 32 /dev/urandom >"$TMP/dgst"
done
for alg in ED25519 ED448; do
    ossl "sign_$alg" pkeyutl -sign -rawin -inkey "$TMP/$alg.pem" -in "$TMP/msg" -out "$TMP/$alg.sig"
    expect_gt "sign_$alg" sign inline 0
    ossl "verify_$alg" pkeyutl -verify -rawin -pubin -inkey "$TMP/$alg.pub" -in "$TMP/msg" \
        -sigfile "$TMP/$alg.sig"
    grep -q 'Signature Verified Successfully' "$TMP/verify_$alg.out" || fail "$alg: not verified"
    expect_gt "verify_$alg" verify inline 0
done

note "pkeyutl -encrypt / -decrypt"
head -c 48 /dev/urandom >"$TMP/secret"
for pad in pkcs1 oaep; do
    ossl "enc_$pad" pkeyutl -encrypt -pubin -inkey "$TMP/RSA.pub" -pkeyopt rsa_padding_mode:$pad \
        -in "$TMP/secret" -out "$TMP/secret.$pad"
    expect_gt "enc_$pad" asym_cipher inline 0
    ossl "dec_$pad" pkeyutl -decrypt -inkey "$TMP/RSA.pem" -pkeyopt rsa_padding_mode:$pad \
        -in "$TMP/secret.$pad" -out "$TMP/secret.$pad.out"
    expect_gt "dec_$pad" asym_cipher inline 0
    cmp -s "$TMP/secret" "$TMP/secret.$pad.out" || fail "$pad: decrypted text differs"
done

note "pkeyutl -derive"
for pair in "EC EC2" "X25519 X2"; do
    set -- $pair
    ossl "derive_$1_a" pkeyutl -derive -inkey "$TMP/$1.pem" -peerkey "$TMP/$2.pub" -out "$TMP/$1.s1"
    ossl "derive_$1_b" pkeyutl -derive -inkey "$TMP/$2.pem" -peerkey "$TMP/$1.pub" -out "$TMP/$1.s2"
    expect_gt "derive_$1_a" derive inline 0
    [ -s "$TMP/$1.s1" ] && cmp -s "$TMP/$1.s1" "$TMP/$1.s2" || fail "$1: the two sides derived different secrets"
done

note "req -x509"
ossl req req -x509 -new -key "$TMP/RSA.pem" -subj /CN=asyncpool-test -days 1 -sha256 -out "$TMP/cert.pem"
expect_gt req sign inline 0
ossl verify_cert verify -CAfile "$TMP/cert.pem" "$TMP/cert.pem"
grep -q ': OK' "$TMP/verify_cert.out" || fail "self-signed certificate does not verify"
ossl req_ec req -x509 -new -key "$TMP/EC.pem" -subj /CN=asyncpool-test-ec -days 1 -out "$TMP/cert_ec.pem"
expect_gt req_ec sign inline 0

note "enc"
head -c 1000000 /dev/urandom >"$TMP/big"
for c in aes-256-cbc aes-128-cbc; do
    ossl "enc_$c" enc -$c -pbkdf2 -pass pass:asyncpool -in "$TMP/big" -out "$TMP/big.$c"
    expect_gt "enc_$c" cipher inline 0
    ossl "dec_$c" enc -d -$c -pbkdf2 -pass pass:asyncpool -in "$TMP/big.$c" -out "$TMP/big.$c.out"
    expect_gt "dec_$c" cipher inline 0
    cmp -s "$TMP/big" "$TMP/big.$c.out" || fail "$c: round trip differs"
    # default provider alone decrypts what went through asyncpool
    OPENSSL_CONF=/dev/null openssl enc -d -$c -pbkdf2 -pass pass:asyncpool -in "$TMP/big.$c" \
        -out "$TMP/big.$c.ref" 2>/dev/null || fail "$c: default provider cannot decrypt"
    cmp -s "$TMP/big" "$TMP/big.$c.ref" || fail "$c: default provider decrypts differently"
done

echo "PASS: openssl CLI with asyncpool"
