#!/usr/bin/env bash
# Full-handshake throughput against nginx on loopback, with and without memguard, in one run.
# TLS 1.3, session cache and tickets off, RSA-2048 and ECDSA P-256 certificates. The two servers
# run side by side and are measured in alternating rounds (median of rounds), so both see the
# same machine; the client is plain OpenSSL (bench/tls_handshakes). Also records worker RSS.
# Usage: bench/tls_bench.sh [build dir, default build/release]   (ROUNDS=5 N=1500 THREADS=4)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
rounds=${ROUNDS:-5} n=${N:-1500} threads=${THREADS:-4}
source "$root/tests/tls/lib.sh"
export OPENSSL_MODULES=$build/provider
load=$build/bench/tls_handshakes
[ -x "$load" ] && [ -f "$OPENSSL_MODULES/memguard.so" ] || { echo "build first: cmake --build --preset release" >&2; exit 2; }
work=$(mktemp -d)
dirs=()
trap 'for d in "${dirs[@]}"; do tls_nginx_stop "$d"; done; rm -rf "$work"' EXIT

tls_make_ca "$work"
tls_make_key "$work" rsa RSA -pkeyopt rsa_keygen_bits:2048
tls_make_key "$work" p256 EC -pkeyopt ec_paramgen_curve:P-256

rate() { OPENSSL_CONF=/dev/null "$load" -p "$1" -n "$n" -t "$threads" -v 1.3 -q | sed -E 's/.* ([0-9]+)\/s$/\1/'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
rss() { # total VmRSS of the workers, KiB
  local t=0
  for p in $(pgrep -P "$(cat "$1/nginx.pid")"); do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done
  echo $t
}

echo "full TLS 1.3 handshakes/s against nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), OpenSSL $(openssl version | cut -d' ' -f2), $(nproc) cores"
echo "$rounds alternating rounds of $n handshakes from $threads client threads; medians"
printf '%-12s | %12s | %12s | %6s | %15s | %15s\n' key memguard plain ratio "RSS mg (KiB)" "RSS plain (KiB)"
printf -- '-------------+--------------+--------------+--------+-----------------+----------------\n'
for key in rsa p256; do
  mg=$work/mg-$key plain=$work/plain-$key
  mkdir -p "$mg" "$plain"
  dirs+=("$mg" "$plain")
  tls_nginx_serve "$mg" "$work/$key.key" "$work/$key.crt" "$root/conf/memguard.cnf" "ssl_session_cache off; ssl_session_tickets off;"
  pm=$port
  tls_nginx_serve "$plain" "$work/$key.key" "$work/$key.crt" /dev/null "ssl_session_cache off; ssl_session_tickets off;"
  pp=$port
  rate "$pm" > /dev/null && rate "$pp" > /dev/null # warm-up
  : > "$work/m" && : > "$work/p"
  for _ in $(seq "$rounds"); do
    rate "$pm" >> "$work/m"
    rate "$pp" >> "$work/p"
  done
  m=$(median < "$work/m") p=$(median < "$work/p")
  label=$([ $key = rsa ] && echo RSA-2048 || echo "ECDSA P-256")
  printf '%-12s | %12s | %12s | %5.2fx | %15s | %15s\n' "$label" "$m" "$p" "$(echo "$m $p" | awk '{print $1/$2}')" "$(rss "$mg")" "$(rss "$plain")"
  eval "ratio_$key=$(echo "$m $p" | awk '{print $1/$2}')"
  tls_nginx_stop "$mg"
  tls_nginx_stop "$plain"
done
echo
awk -v r="$ratio_rsa" 'BEGIN {printf "target: RSA-2048 >= 0.90x plain (%.2fx): %s\n", r, (r >= 0.90 ? "PASS" : "MISS")}'
awk -v r="$ratio_p256" 'BEGIN {printf "target: ECDSA P-256 >= 0.95x plain (%.2fx): %s\n", r, (r >= 0.95 ? "PASS" : "MISS")}'
