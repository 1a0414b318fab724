#!/usr/bin/env bash
# nginx with memguard in openssl.cnf: the shipped conf/memguard.cnf, unchanged nginx, unchanged PEM
# files. For every key type of the matrix: curl and s_client handshakes (TLS 1.2 and 1.3, each
# signature scheme, TLS 1.2 RSA key exchange), a load of full handshakes with zero failures, then
# mg-keyscan over the master and every worker finds no copy of the key. Also: a client key held by
# memguard (mutual TLS), session resumption, `nginx -s reload` and a crashed worker, and the
# negative control (the same server without memguard: the scanner finds the key).
# Usage: nginx.sh <memguard.so> <tls_handshakes> <mg-keyscan>
set -uo pipefail
module=$1 load=$2 scan=$3
source "$(dirname "$0")/lib.sh"
tls_test_init "$module"
servers=()
cleanup() {
  for s in "${servers[@]}"; do tls_nginx_stop "$s"; done
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v nginx > /dev/null; then echo "FAIL nginx is not installed (scripts/deps.sh installs it)"; exit 1; fi
HANDSHAKES=${MG_TLS_HANDSHAKES:-3000}

tls_make_ca "$work" || { echo "FAIL cannot make the CA"; exit 1; }
tls_make_key "$work" rsa RSA -pkeyopt rsa_keygen_bits:2048
tls_make_key "$work" rsapss RSA-PSS -pkeyopt rsa_keygen_bits:2048
tls_make_key "$work" p256 EC -pkeyopt ec_paramgen_curve:P-256
tls_make_key "$work" p384 EC -pkeyopt ec_paramgen_curve:P-384
tls_make_key "$work" ed25519 ED25519
tls_make_key "$work" client EC -pkeyopt ec_paramgen_curve:P-256
# The traditional ("BEGIN RSA PRIVATE KEY") form, as many deployments still have it.
tls_plain rsa -in "$work/rsa.key" -traditional -out "$work/rsatrad.key" 2>/dev/null && cp "$work/rsa.crt" "$work/rsatrad.crt"
# An encrypted PKCS#8 key, its passphrase in ssl_password_file.
echo "correct horse battery staple" > "$work/pass.txt"
tls_plain pkcs8 -topk8 -in "$work/p256.key" -v2 aes-256-cbc -passout "file:$work/pass.txt" -out "$work/p256enc.key" &&
  cp "$work/p256.crt" "$work/p256enc.crt"

# s_client against PORT with options; the output is kept in $work/sc.out.
sclient() {
  local port=$1
  shift
  printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' |
    tls_plain s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$work/ca.crt" \
      -verify_return_error -ign_eof "$@" > "$work/sc.out" 2>&1
}
# check_sclient WHAT PORT EXPECTED_REGEX s_client-options...
check_sclient() {
  local what=$1 port=$2 expect=$3
  shift 3
  if sclient "$port" "$@" && grep -q "Verify return code: 0" "$work/sc.out" && grep -q "hello from nginx" "$work/sc.out" &&
    grep -Eq "$expect" "$work/sc.out"; then
    ok "$what"
  else
    bad "$what"
    grep -E "Cipher|Peer signature|error|Verify" "$work/sc.out" | head -5
  fi
}
curl_body() { # port [curl options]
  local port=$1
  shift
  curl -sS --max-time 10 --cacert "$work/ca.crt" --resolve "localhost:$port:127.0.0.1" "$@" "https://localhost:$port/"
}

# scan_zero WHAT DIR KEY: mg-keyscan over the master and all workers; prints its summary lines.
declare -A with_mg without_mg # key type -> "master/worker/worker" copies, for the summary table
copies_of() { # key pids... -> "a/b/c"
  local key=$1
  shift
  "$scan" --tsv "$key" "$@" 2>/dev/null | awk '$1 == "summary" {printf "%s%s", sep, $3; sep="/"}'
}
# Workers (uid www-data) whose /proc/PID files are root's: the kernel's sign of a non-dumpable
# process (proc(5)). nginx makes its workers dumpable after fork; memguard makes them not again.
workers_nondumpable() { # dir -> "n/m" (non-dumpable / workers)
  local n=0 m=0 pid uid
  for pid in $(tls_nginx_pids "$1" | sed 1d); do
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    [ "$uid" = 0 ] && continue
    m=$((m + 1))
    [ "$(stat -c %u "/proc/$pid/environ")" = 0 ] && n=$((n + 1))
  done
  echo "$n/$m"
}
scan_zero() {
  local what=$1 dir=$2 key=$3 pids nd
  nd=$(workers_nondumpable "$dir")
  if [ "$(id -u)" = 0 ]; then
    if [ "${nd%/*}" = "${nd#*/}" ] && [ "${nd#*/}" -gt 0 ]; then ok "$what: every worker is non-dumpable ($nd)"
    else bad "$what: workers non-dumpable: $nd"; fi
  fi
  pids=$(tls_nginx_pids "$dir" | tr '\n' ' ')
  "$scan" --quiet "$key" $pids > "$work/scan.out" 2>&1
  local rc=$?
  [[ -n ${current:-} ]] && with_mg[$current]=$(awk '{print $3}' "$work/scan.out" | paste -sd/)
  sed 's/^/       /' "$work/scan.out"
  if [ $rc -eq 0 ]; then ok "$what: no copy of the key in $(echo $pids | wc -w) nginx processes"
  else bad "$what: mg-keyscan exit $rc"; "$scan" "$key" $pids 2>&1 | tail -25; fi
}

# serve NAME: nginx with memguard for NAME.key; sets $port and $dir.
serve() {
  local name=$1 extra=${2:-}
  dir=$work/nginx-$name
  mkdir -p "$dir"
  servers+=("$dir")
  MEMGUARD_PROVIDER_DEBUG=1 tls_nginx_serve "$dir" "$work/$name.key" "$work/$name.crt" "$conf" "$extra"
}

# ---- the matrix ----
# name | s_client cases: "label|expected regex|options"
declare -A cases
cases[rsa]="TLS 1.3 RSA-PSS|Peer signature type: RSA-PSS|-tls1_3
TLS 1.2 PKCS#1 v1.5 signature|Peer signature type: RSA$|-tls1_2 -sigalgs RSA+SHA256
TLS 1.2 RSA-PSS signature|Peer signature type: RSA-PSS|-tls1_2 -sigalgs rsa_pss_rsae_sha256
TLS 1.2 RSA key exchange|Cipher is AES256-GCM-SHA384|-tls1_2 -cipher AES256-GCM-SHA384"
cases[rsatrad]="TLS 1.3, traditional PEM|Peer signature type: RSA-PSS|-tls1_3"
cases[rsapss]="TLS 1.3 RSA-PSS certificate|Peer signature type: RSA-PSS|-tls1_3
TLS 1.2 RSA-PSS certificate|Peer signature type: RSA-PSS|-tls1_2 -sigalgs rsa_pss_pss_sha256"
cases[p256]="TLS 1.3 ECDSA P-256|Peer signature type: ECDSA|-tls1_3
TLS 1.2 ECDSA P-256|Peer signature type: ECDSA|-tls1_2"
cases[p256enc]="TLS 1.3, encrypted PKCS#8 + ssl_password_file|Peer signature type: ECDSA|-tls1_3"
cases[p384]="TLS 1.3 ECDSA P-384|Peer signature type: ECDSA|-tls1_3
TLS 1.2 ECDSA P-384|Peer signature type: ECDSA|-tls1_2"
cases[ed25519]="TLS 1.3 Ed25519|Peer signature type: [Ee]d25519|-tls1_3
TLS 1.2 Ed25519|Peer signature type: [Ee]d25519|-tls1_2"

for name in rsa rsatrad rsapss p256 p256enc p384 ed25519; do
  extra=""
  [[ $name == p256enc ]] && extra="ssl_password_file $work/pass.txt;"
  if ! serve "$name" "$extra"; then bad "$name: nginx did not start"; continue; fi
  if grep -q "sealed a" "$dir/nginx.out"; then ok "$name: nginx's key was sealed by memguard"; else bad "$name: key not captured"; fi
  if grep -q "memguard.so" "/proc/$(tls_nginx_pids "$dir" | sed -n 2p)/maps"; then ok "$name: memguard is loaded in the workers"
  else bad "$name: memguard not mapped in a worker"; fi
  while IFS='|' read -r label expect opts; do
    # shellcheck disable=SC2086
    check_sclient "$name: $label" "$port" "$expect" $opts
  done <<< "${cases[$name]}"
  for v in 1.2 1.3; do
    if curl_body "$port" --tlsv$v --tls-max $v | grep -q "over TLSv$v"; then ok "$name: curl TLS $v"; else bad "$name: curl TLS $v"; fi
  done
  n=$HANDSHAKES
  [[ $name == rsa ]] || n=$((HANDSHAKES / 6))
  current=$name
  if OPENSSL_CONF=/dev/null "$load" -p "$port" -n "$n" -t 4 -b "hello from nginx" > "$work/load.out" 2>&1; then
    ok "$name: $(cat "$work/load.out")"
  else bad "$name: load: $(cat "$work/load.out")"; fi
  if [[ $name == p256enc ]]; then
    scan_zero "$name: after $n full handshakes" "$dir" "$work/p256.key" # the decrypted key is what must not be found
  else
    scan_zero "$name: after $n full handshakes" "$dir" "$work/$name.key"
  fi
  if [[ $name == rsa ]]; then
    # Session resumption: TLS 1.2 session ids and TLS 1.3 tickets are resumed.
    tls_nginx_stop "$dir"
    serve rsa "ssl_session_cache shared:SSL:1m; ssl_session_tickets on;" || bad "rsa: nginx with a session cache"
    for v in 1.2 1.3; do
      sclient "$port" -tls${v/./_} -sess_out "$work/sess" > /dev/null
      if sclient "$port" -tls${v/./_} -sess_in "$work/sess" && grep -q "^Reused" "$work/sc.out"; then
        ok "rsa: TLS $v session resumed"
      else bad "rsa: TLS $v session not resumed"; fi
    done
    # nginx -s reload: the master re-reads its configuration and key, forks new workers.
    old=$(pgrep -P "$(cat "$dir/nginx.pid")" | tr '\n' ' ')
    OPENSSL_CONF=$conf nginx -p "$dir" -c "$dir/nginx.conf" -s reload 2>> "$dir/error.log"
    if tls_nginx_wait_workers "$dir" 2 "$old" && curl_body "$port" | grep -q "hello from nginx"; then
      ok "rsa: serves after nginx -s reload (new workers)"
    else bad "rsa: reload"; fi
    OPENSSL_CONF=/dev/null "$load" -p "$port" -n 300 -t 4 -q > /dev/null 2>&1 || bad "rsa: load after reload"
    current=""
    scan_zero "rsa: after reload" "$dir" "$work/rsa.key"
    # A worker that crashes is replaced by the master (a fork of the master, with the sealed key).
    victim=$(pgrep -P "$(cat "$dir/nginx.pid")" | head -1)
    kill -SEGV "$victim"
    if tls_nginx_wait_workers "$dir" 2 "$victim" && curl_body "$port" | grep -q "hello from nginx"; then
      ok "rsa: a crashed worker was replaced and serves"
    else bad "rsa: worker crash/restart"; fi
    OPENSSL_CONF=/dev/null "$load" -p "$port" -n 300 -t 4 -q > /dev/null 2>&1 || bad "rsa: load after the restart"
    scan_zero "rsa: after a worker restart" "$dir" "$work/rsa.key"
  fi
  tls_nginx_stop "$dir"
done

# ---- mutual TLS: the client's key is held by memguard (curl and s_client read the unchanged PEM) ----
if serve rsa "ssl_client_certificate $work/ca.crt; ssl_verify_client on;"; then
  out=$(OPENSSL_CONF=$conf MEMGUARD_PROVIDER_DEBUG=1 curl_body "$port" --cert "$work/client.crt" --key "$work/client.key" 2> "$work/curl.err")
  if [[ $out == *"client SUCCESS"* ]] && grep -q "sealed a EC private key" "$work/curl.err"; then
    ok "mTLS: curl's client key sealed by memguard, nginx verified the client"
  else bad "mTLS: curl ($out)"; cat "$work/curl.err"; fi
  printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' |
    OPENSSL_CONF=$conf MEMGUARD_PROVIDER_DEBUG=1 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
      -CAfile "$work/ca.crt" -cert "$work/client.crt" -key "$work/client.key" -ign_eof -tls1_3 > "$work/sc.out" 2>&1
  if grep -q "client SUCCESS" "$work/sc.out" && grep -q "sealed a EC private key" "$work/sc.out"; then
    ok "mTLS: s_client (TLS 1.3) with a sealed client key"
  else bad "mTLS: s_client"; fi
  if ! curl_body "$port" > /dev/null 2>&1; then ok "mTLS: a client without a certificate is refused"
  elif curl_body "$port" | grep -q "client SUCCESS"; then bad "mTLS: verified without a certificate"
  else ok "mTLS: a client without a certificate is not verified"; fi
  tls_nginx_stop "$dir"
else bad "mTLS: nginx did not start"; fi

# ---- negative control: the same nginx without memguard holds the key where the scanner looks ----
for name in rsa rsatrad rsapss p256 p384 ed25519; do
  dir=$work/plain-$name
  mkdir -p "$dir"
  servers+=("$dir")
  if ! tls_nginx_serve "$dir" "$work/$name.key" "$work/$name.crt" /dev/null; then bad "control $name: start"; continue; fi
  OPENSSL_CONF=/dev/null "$load" -p "$port" -n 300 -t 4 -q > /dev/null 2>&1
  if [ "$(id -u)" = 0 ]; then
    nd=$(workers_nondumpable "$dir")
    if [ "${nd%/*}" = 0 ] && [ "${nd#*/}" -gt 0 ]; then ok "control $name: without memguard the workers are dumpable"
    else bad "control $name: workers non-dumpable without memguard: $nd (the check proves nothing)"; fi
  fi
  pids=$(tls_nginx_pids "$dir" | tr '\n' ' ')
  without_mg[$name]=$(copies_of "$work/$name.key" $pids)
  "$scan" --quiet "$work/$name.key" $pids > /dev/null 2>&1
  rc=$?
  if [ $rc -eq 1 ]; then ok "control $name: without memguard the scanner finds the key (${without_mg[$name]})"
  else bad "control $name: without memguard the scan returned $rc (a scanner that finds nothing proves nothing)"; fi
  tls_nginx_stop "$dir"
done

echo
echo "copies of the key found by mg-keyscan in nginx (master/worker/worker), after the load above:"
printf '  %-10s | %-16s | %-16s\n' key "with memguard" "without memguard"
for name in rsa rsatrad rsapss p256 p256enc p384 ed25519; do
  printf '  %-10s | %-16s | %-16s\n' "$name" "${with_mg[$name]:-?}" "${without_mg[$name]:-(not run)}"
done
tls_test_summary "tls nginx"
