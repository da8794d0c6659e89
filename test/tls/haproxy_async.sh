#!/usr/bin/env bash
# HAProxy (the distribution's package) with ssl-mode-async through asyncpool: 400 HTTPS
# requests at concurrency 32 with an RSA-2048 and with an ECDSA P-256 certificate (TLS
# 1.3, asyncpool loaded by OPENSSL_CONF), then 100 at 16 over TLS 1.2 with asyncpool
# loaded by haproxy.cfg alone (ssl-provider, the README's recipe). Every request must
# succeed on its own full handshake, haproxy must soft-stop with status 0, and
# asyncpool's stats line must show one offloaded signature per handshake, none inline.
# Exit 77 (skipped) without haproxy or without asyncpool.so.
. "$(dirname "$0")/haproxy.sh"
hap_skip_unless_haproxy
make_certs

run() { # run NAME N C HAPROXY_START_ARGS... -- CURL_ARGS...
  local name=$1 n=$2 c=$3 sargs=() off
  shift 3
  while [ $# -gt 0 ] && [ "$1" != -- ]; do sargs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  haproxy_start "${sargs[@]}"
  haproxy_load "$n" "$c" "$@"
  [ "$HAP_OK" -eq "$n" ] || fail "$name: $HAP_FAIL of $n requests failed"
  [ "$HAP_CONNECTS" -eq "$n" ] || fail "$name: $HAP_CONNECTS connections for $n requests"
  haproxy_stop
  if have_provider; then
    [ -n "$HAP_STATS" ] || fail "$name: no asyncpool stats line: asyncpool was not loaded"
    off=$(hap_stat sign offloaded)
    [ "$off" -eq "$n" ] || fail "$name: sign offloaded=$off, want $n (one per handshake)"
    [ "$(hap_stat sign inline)" -eq 0 ] || fail "$name: signatures ran inline"
    [ "$(hap_stat sign errors)" -eq 0 ] || fail "$name: sign errors"
    [ "$(hap_stat pool submitted)" -eq "$(hap_stat pool completed)" ] \
      || fail "$name: pool submitted != completed"
    note "$name: $n requests ok, $off signatures offloaded"
  fi
}

# This test is about ssl-mode-async resuming offloaded jobs, one per handshake: always.
# Under the default offload = auto a P-256 signature is cheap enough to run inline, and
# an RSA one may run inline by rule 6 (provider/probe.c) when the pool's workers find no
# core of their own: on these 2 cores, beside the load generator, they may not.
run rsa 400 32 --cert "$WORK/rsa.pem" ASYNCPOOL_OFFLOAD=always
run ecdsa 400 32 --cert "$WORK/ecdsa.pem" ASYNCPOOL_OFFLOAD=always
run keywords-tls1.2 100 16 --cert "$WORK/rsa.pem" --load keywords --nbthread 1 \
    ASYNCPOOL_OFFLOAD=always -- --tlsv1.2 --tls-max 1.2
finish
