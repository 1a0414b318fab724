#!/usr/bin/env bash
# What the openssl command line leaves in its own memory after loading a key: each command runs
# with a preloaded shim that stops the process as it exits (after OpenSSL's cleanup), mg-keyscan
# reads the stopped process, then it is let go. With memguard (the shipped conf/memguard.cnf) no
# copy of the key is found, for `openssl pkey`, `pkey -pubout`, `pkey -noout`, an encrypted PKCS#8
# (passphrase from the command line) and a certificate+key file; the same commands without memguard
# are the control, and must leave copies the scan finds.
# Usage: cli_residue.sh <memguard.so> <stop_at_exit.so> <mg-keyscan>
set -uo pipefail
module=$(realpath "$1") shim=$(realpath "$2") scan=$(realpath "$3")
conf=$(cd "$(dirname "$0")/../../conf" && pwd)/memguard.cnf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export OPENSSL_MODULES=${module%/*}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
plain() { OPENSSL_CONF=/dev/null openssl "$@"; }

plain genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
plain genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
plain pkcs8 -topk8 -in rsa.pem -passout pass:secret -out rsa.enc 2>/dev/null
plain req -new -x509 -key rsa.pem -subj /CN=t -days 1 -out rsa.crt 2>/dev/null
cat rsa.crt rsa.pem > rsa.both

# copies CONF KEYFILE ARGS...: run `openssl ARGS` stopped at exit, print the number of key copies.
copies() {
  local cnf=$1 key=$2 pid state n
  shift 2
  OPENSSL_CONF=$cnf MEMGUARD_BACKEND=anonymous LD_PRELOAD=$shim openssl "$@" > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)
    [ "$state" = T ] && break
    sleep 0.05
  done
  if [ "$state" != T ]; then echo "did-not-stop"; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return; fi
  "$scan" --tsv "$key" "$pid" > scan.tsv 2>&1
  local rc=$?
  n=$(awk -F'\t' '$1 == "row" { s += $4 } END { print s + 0 }' scan.tsv)
  [ $rc -le 1 ] && grep -q "^row" scan.tsv || n=scan-error
  kill -CONT "$pid"
  wait "$pid" 2>/dev/null
  echo "$n"
}

while read -r name key args; do
  # shellcheck disable=SC2086
  with=$(copies "$conf" "$key" $args)
  # shellcheck disable=SC2086
  without=$(copies /dev/null "$key" $args)
  echo "     openssl $args: $with copies with memguard, $without without"
  if [ "$with" = 0 ] && [ "$without" != did-not-stop ] && [ "${without:-0}" -gt 0 ] 2>/dev/null; then
    ok "$name: no copy of the key left by openssl $args (control: $without)"
  else
    bad "$name: openssl $args left $with copies with memguard (control: $without)"
  fi
done <<LIST
pkey rsa.pem pkey -in rsa.pem
pkey-pubout rsa.pem pkey -in rsa.pem -pubout
pkey-noout rsa.pem pkey -in rsa.pem -noout
pkey-ec ec.pem pkey -in ec.pem -pubout
encrypted-pkcs8 rsa.pem pkey -in rsa.enc -passin pass:secret -pubout
cert-and-key rsa.pem pkey -in rsa.both -pubout
LIST

echo "cli_residue.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
