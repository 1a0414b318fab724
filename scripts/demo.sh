#!/usr/bin/env bash
# The main job: nginx serves TLS with its private key sealed by memguard, and a memory scan proves
# it. Installs what is missing, builds, makes a throwaway CA, key and certificate, starts nginx on
# loopback with conf/memguard.cnf (unchanged nginx, unchanged PEM file), fetches a page with curl,
# runs a burst of full handshakes, then scans the memory of every nginx process for the key - and
# does the same for an identical nginx without memguard, side by side.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '%s\n' "$*"; }
say "== memguard demo: a TLS server whose private key is never readable in its memory"
bash scripts/deps.sh
cmake --preset release > /dev/null
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)" --target memguard_provider tls_handshakes mg-keyscan > /dev/null
build=$root/build/release
scan=$build/tools/mg-keyscan
source tests/tls/lib.sh
export OPENSSL_MODULES=$build/provider # where conf/memguard.cnf's "module = memguard.so" is found

work=$(mktemp -d)
chmod 755 "$work"
trap 'tls_nginx_stop "$work/mg"; tls_nginx_stop "$work/plain"; rm -rf "$work"' EXIT
mkdir -p "$work/mg" "$work/plain"
tls_make_ca "$work"
tls_make_key "$work" server RSA -pkeyopt rsa_keygen_bits:2048
say "-- made a throwaway CA and an RSA-2048 key + certificate for localhost: $work/server.key (plain PEM)"

tls_nginx_serve "$work/mg" "$work/server.key" "$work/server.crt" "$root/conf/memguard.cnf"
port_mg=$port
tls_nginx_serve "$work/plain" "$work/server.key" "$work/server.crt" /dev/null
port_plain=$port
say "-- nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') with OPENSSL_CONF=conf/memguard.cnf on 127.0.0.1:$port_mg (master + 2 workers as www-data)"
say "-- the same nginx without memguard on 127.0.0.1:$port_plain"
say
say "\$ curl --cacert ca.crt https://localhost:$port_mg/"
curl -sS --cacert "$work/ca.crt" --resolve "localhost:$port_mg:127.0.0.1" "https://localhost:$port_mg/"
for p in "$port_mg" "$port_plain"; do
  OPENSSL_CONF=/dev/null "$build/bench/tls_handshakes" -p "$p" -n 1000 -t 4 -b "hello from nginx" > "$work/load.$p"
done
say "-- 1000 full TLS handshakes on each server: with memguard $(sed 's/^handshakes: //' "$work/load.$port_mg" | cut -d, -f1,2); without $(sed 's/^handshakes: //' "$work/load.$port_plain" | cut -d, -f1,2)"
say
say "-- scanning every nginx process's memory (/proc/PID/mem) for the key: PEM text, DER,"
say "   and each private component (RSA d, p, q, dP, dQ, qInv) big- and little-endian, plus a factor test"
say
# mg-keyscan --tsv: "summary PID COPIES BYTES REGIONS UNREADABLE SECONDS" and "row PID ENCODING COPIES ...".
scan_tsv() { "$scan" --tsv "$work/server.key" "$1" 2>/dev/null || true; }
printf '   %-10s | %-30s | %-30s\n' process "with memguard" "without memguard"
printf '   %-10s-+-%-30s-+-%-30s\n' ---------- ------------------------------ ------------------------------
mg_pids=($(tls_nginx_pids "$work/mg")) plain_pids=($(tls_nginx_pids "$work/plain"))
total_mg=0 total_plain=0
for i in 0 1 2; do
  label=$([ $i = 0 ] && echo master || echo "worker $i")
  scan_tsv "${mg_pids[$i]}" > "$work/mg.tsv"
  scan_tsv "${plain_pids[$i]}" > "$work/plain.tsv"
  a=$(awk '$1 == "summary" {print $3}' "$work/mg.tsv") b=$(awk '$1 == "summary" {print $3}' "$work/plain.tsv")
  total_mg=$((total_mg + ${a:-1})) total_plain=$((total_plain + ${b:-0}))
  printf '   %-10s | %-30s | %-30s\n' "$label" "${a:-?} copies of the key" "${b:-?} copies of the key"
  [ $i = 0 ] && found=$(awk '$1 == "row" && $4 > 0 {printf "%s%s=%s", sep, $3, $4; sep=" "}' "$work/plain.tsv")
done
say
say "   what the scan matched in the plain master (encoding=matches): ${found:-nothing}"
say
if [ "$total_mg" -eq 0 ] && [ "$total_plain" -gt 0 ]; then
  say "RESULT: with memguard no process holds any form of the key ($total_plain copies without it)."
  say "        Between handshakes the key is sealed (XSalsa20-Poly1305); each signature unseals it into"
  say "        guarded memory, and OpenSSL's arithmetic holds parts of it for that moment (docs/in-operation.md)."
  say "        Every nginx process is non-dumpable; docs/threat-model.md says what is and is not protected."
  say "Re-run the scan on any process: $scan KEYFILE PID   (docs/keyscan.md, docs/tls.md)"
else
  say "RESULT: unexpected - with memguard $total_mg copies, without $total_plain. See docs/tls.md."
  exit 1
fi
