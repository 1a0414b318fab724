#!/usr/bin/env bash
# Install what memguard needs to build and test, if anything is missing.
# Debian 12 (bookworm); as root it uses apt-get, otherwise it names the packages.
set -euo pipefail

PACKAGES=(
  cmake make gcc clang libclang-rt-14-dev pkgconf
  libssl-dev openssl libsodium-dev libcunit1-dev valgrind
  nginx-light stunnel4 curl procps   # the real servers and clients of tests/tls and the demo
  perl xz-utils                      # scripts/openssl35.sh: OpenSSL 3.5 built from Debian 13's source
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "memguard: missing packages: ${missing[*]}" >&2
  echo "memguard: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

echo "memguard: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages such as nginx start their service on install; the tests start their own on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
