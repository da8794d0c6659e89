#!/usr/bin/env bash
# tls_compare.sh [BUILD_DIR]: only the TLS goals of the async TLS issue, at one client
# concurrency: full TLS 1.3 handshakes (+ one GET) per second with an RSA-2048
# certificate, the ssl_demo server async (fd and callback mode, asyncpool) against the
# same server --sync and against Debian's nginx (one worker per core).
# It is bench/run.sh --only tls, so both measure with the same code: the report goes to
# a temporary folder and its goal lines are printed here.
# Env: ROUNDS (3), DURATION seconds measured per run (5), WARMUP seconds (1),
#      CONC client connections (32).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d "${TMPDIR:-/tmp}/tls_compare.XXXXXX")
trap 'rm -rf "$out"' EXIT
# RSA-2048 only: the other certificates' points are left out (empty lists).
TLS_ROUNDS=${ROUNDS:-3} TLS_DURATION=${DURATION:-5} TLS_WARMUP=${WARMUP:-1} \
TLS_CONCS=${CONC:-32} TLS_RSA3072_CONCS='' TLS_RSA4096_CONCS='' TLS_ECDSA_CONCS='' \
  bench/run.sh --build "${1:-build}" --only tls --out "$out"
grep -h '^| TLS handshakes/s at' "$out"/*.md
