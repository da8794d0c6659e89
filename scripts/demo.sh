#!/usr/bin/env bash
# Installs what is missing, builds, and runs the TLS demo: the ssl_demo server in one
# thread with SSL_MODE_ASYNC and the asyncpool provider on 127.0.0.1, a few seconds of
# full TLS 1.3 handshakes from the load client, then the results and provider counters.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build

tmp=$(mktemp -d)
pid=''
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -subj /CN=localhost -days 1 2>/dev/null

[ -f build/provider/asyncpool.so ] || echo "demo: build/provider/asyncpool.so missing: the server will run its crypto synchronously"
OPENSSL_MODULES=$PWD/build/provider OPENSSL_CONF=$PWD/conf/openssl-async.cnf \
  build/ssl_demo/tls_server -p 0 --cert "$tmp/cert.pem" --key "$tmp/key.pem" \
  >"$tmp/server.log" 2>"$tmp/server.err" &
pid=$!
for ((i = 0; i < 100; i++)); do grep -q 'listening on' "$tmp/server.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.log")
[ -n "$port" ] || { cat "$tmp/server.err" >&2; echo "demo: server did not start" >&2; exit 1; }
cat "$tmp/server.err" "$tmp/server.log"
echo "curl https://127.0.0.1:$port/ -> $(curl -sk --max-time 5 "https://127.0.0.1:$port/")"

echo "load: 32 connections, 5 s of full TLS 1.3 handshakes (RSA-2048), one GET each"
build/ssl_demo/tls_client -p "$port" -c 32 -d 5 --tls 1.3

kill -TERM "$pid"
wait "$pid"
pid=''
summary=$(grep 'tls_server: summary' "$tmp/server.log")
echo "$summary" | sed 's/ provider=.*//'
echo "provider counters (non-zero):"
tr ' ' '\n' <<<"$summary" | sed -n '/^provider=/,$p' | grep -v '=0$' | paste -sd' ' | fold -s -w 100 | sed 's/^/  /'
