#!/usr/bin/env bash
# openssl speed -elapsed -async_jobs 16 -seconds 1 with conf/openssl-async.cnf: runs, prints
# results, and the ASYNCPOOL_STATS=1 line shows the matching operation offloaded
# (speed's async jobs pause while a worker computes). RSA/ECDSA/ECDH reach asyncpool
# through the config's default_properties; aes-128-gcm with 16 KiB blocks (above the
# inline threshold).
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

echo "PASS: openssl speed with asyncpool"
