#!/usr/bin/env bash
# openssl speed -elapsed -async_jobs 16 -seconds 1 with conf/openssl-async.cnf: runs, prints
# results, and the ASYNCPOOL_STATS=1 line shows the matching operation offloaded
# (speed's async jobs pause while a worker computes). RSA/ECDSA/ECDH reach asyncpool
# through the config's default_properties; aes-128-gcm with 16 KiB blocks (above the
# inline threshold). On OpenSSL 3.5+ also the post-quantum ones (-kem-algorithms
# ML-KEM-768, -signature-algorithms ML-DSA-65): keygen, kem, sign and verify offloaded.
. "$(dirname "$0")/cli_lib.sh"

common=(speed -elapsed -async_jobs 16 -seconds 1)

note "rsa2048"
ossl rsa "${common[@]}" rsa2048
grep -qE '^rsa +2048 bits' "$TMP/rsa.out" || { cat "$TMP/rsa.out"; fail "rsa2048: no result line"; }
expect_gt rsa sign offloaded 0
expect_gt rsa verify offloaded 0

note "ecdsap256"
ossl ecdsa "${common[@]}" ecdsap256
grep -qE '256 bits ecdsa \(nistp256\)' "$TMP/ecdsa.out" || { cat "$TMP/ecdsa.out"; fail "ecdsap256: no result line"; }
expect_gt ecdsa sign offloaded 0
expect_gt ecdsa verify offloaded 0

note "ecdhp256"
ossl ecdh "${common[@]}" ecdhp256
grep -qE '256 bits ecdh \(nistp256\)' "$TMP/ecdh.out" || { cat "$TMP/ecdh.out"; fail "ecdhp256: no result line"; }
expect_gt ecdh derive offloaded 0

note "-evp aes-128-gcm -bytes 65536"
ossl gcm "${common[@]}" -bytes 65536 -evp aes-128-gcm
grep -qiE '^aes-128-gcm +[0-9.]+k' "$TMP/gcm.out" || { cat "$TMP/gcm.out"; fail "aes-128-gcm: no result line"; }
expect_gt gcm cipher offloaded 0

# Post-quantum (OpenSSL 3.5+): speed's -kem-algorithms and -signature-algorithms came
# with ML-KEM and ML-DSA in 3.5. Skipped only on an older OpenSSL; on 3.5+ a missing
# option or algorithm is a failure.
ver=$(openssl version | awk '{print $2}')
if [[ "$ver" =~ ^3\.[0-4]\. ]]; then
    echo "SKIP: post-quantum speed (ML-KEM-768, ML-DSA-65): OpenSSL $ver has neither;" \
         "they need 3.5+"
else
    note "-kem-algorithms ML-KEM-768"
    ossl mlkem "${common[@]}" -kem-algorithms ML-KEM-768
    grep -qE '^ +ML-KEM-768 +[0-9.]+s +[0-9.]+s +[0-9.]+s' "$TMP/mlkem.out" ||
        { cat "$TMP/mlkem.out"; fail "ML-KEM-768: no result line"; }
    grep -E '^ +(keygen|ML-KEM-768) ' "$TMP/mlkem.out"
    expect_gt mlkem keygen offloaded 0
    expect_gt mlkem kem offloaded 0

    note "-signature-algorithms ML-DSA-65"
    ossl mldsa "${common[@]}" -signature-algorithms ML-DSA-65
    grep -qE '^ +ML-DSA-65 +[0-9.]+s +[0-9.]+s +[0-9.]+s' "$TMP/mldsa.out" ||
        { cat "$TMP/mldsa.out"; fail "ML-DSA-65: no result line"; }
    grep -E '^ +(keygen|ML-DSA-65) ' "$TMP/mldsa.out"
    expect_gt mldsa keygen offloaded 0
    expect_gt mldsa sign offloaded 0
    expect_gt mldsa verify offloaded 0
fi

echo "PASS: openssl speed with asyncpool"
