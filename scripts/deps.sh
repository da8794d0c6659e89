#!/usr/bin/env bash
# Installs, from Debian, whatever asyncpool needs to build, test and benchmark and is not
# installed yet. Idempotent; does nothing when everything is there.
set -euo pipefail

pkgs=(cmake gcc make pkg-config openssl libssl-dev liburcu-dev check libjson-c-dev
      curl nginx-light haproxy valgrind procps iproute2)
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
