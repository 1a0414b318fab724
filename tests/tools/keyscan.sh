#!/usr/bin/env bash
# mg-keyscan finds keys where they are and nothing where they are not: for every key type a
# process holding the key (keyholder, plain OpenSSL) is reported with the key's components; a
# different key of the same type is not found in it; an RSA certificate alone finds p or q by the
# factor test; PEM and DER residue are found (also a freed DER copy); a real openssl s_server is
# found after one handshake; bad input gives status 2. Under memguard the result is shown, not
# asserted (that is the provider's test).
# Usage: keyscan.sh <mg-keyscan> <keyholder> [memguard-test.cnf]
set -uo pipefail
scan=$(realpath "$1") holder=$(realpath "$2") mgconf=${3:+$(realpath "$3")}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
export OPENSSL_CONF=/dev/null # plain OpenSSL everywhere unless a step says otherwise
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

# row TSVFILE TAG -> copies in that row (0 if the row is absent)
row() { awk -F'\t' -v t="$2" '$1 == "row" && $3 == t { print $4; f = 1 } END { if (!f) print 0 }' "$1"; }
# any TSVFILE TAG... -> success if one of the rows is non-zero
any() {
  local f=$1; shift
  for t in "$@"; do [ "$(row "$f" "$t")" -gt 0 ] && return 0; done
  return 1
}

# start_holder NAME ARGS... : runs keyholder with stdin on a fifo, waits for "ready", sets hpid.
start_holder() {
  local name=$1; shift
  mkfifo "$name.in"
  "$holder" "$@" < "$name.in" > "$name.out" 2> "$name.err" &
  hpid=$!
  pids+=("$hpid")
  exec 9> "$name.in" # the holder lives until this closes
  for _ in $(seq 100); do grep -q ready "$name.out" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
stop_holder() { exec 9>&-; wait "$hpid" 2>/dev/null; }

genkey() { # name algorithm [options]: two keys, NAME.pem and NAME-other.pem
  local n=$1; shift
  openssl genpkey "$@" -out "$n.pem" 2>/dev/null && openssl genpkey "$@" -out "$n-other.pem" 2>/dev/null
}
genkey rsa -algorithm RSA -pkeyopt rsa_keygen_bits:2048
genkey rsapss -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048
genkey p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
genkey p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
genkey p521 -algorithm EC -pkeyopt ec_paramgen_curve:P-521
genkey ed25519 -algorithm ED25519
genkey ed448 -algorithm ED448
genkey x25519 -algorithm X25519
genkey x448 -algorithm X448
openssl rsa -in rsa.pem -traditional -out rsatrad.pem 2>/dev/null
openssl rsa -in rsa-other.pem -traditional -out rsatrad-other.pem 2>/dev/null
openssl ec -in p256.pem -out ectrad.pem 2>/dev/null
openssl ec -in p256-other.pem -out ectrad-other.pem 2>/dev/null

# The private components each key type must be found by (any byte order).
components() {
  case $1 in
    rsa*) echo "rsa-d-be rsa-d-le|rsa-p-be rsa-p-le|rsa-q-be rsa-q-le" ;;
    p*|ectrad) echo "ec-priv-be ec-priv-le ec-pad-be ec-pad-le" ;;
    ed25519) echo "ed25519-priv-raw ed25519-priv-rev ed25519-scalar-raw ed25519-scalar-rev" ;;
    ed448) echo "ed448-priv-raw ed448-priv-rev ed448-scalar-raw ed448-scalar-rev" ;;
    x25519) echo "x25519-priv-raw x25519-priv-rev x25519-clamped-raw x25519-clamped-rev" ;;
    x448) echo "x448-priv-raw x448-priv-rev x448-clamped-raw x448-clamped-rev" ;;
  esac
}

for k in rsa rsatrad rsapss p256 p384 p521 ectrad ed25519 ed448 x25519 x448; do
  if ! start_holder "$k" "$k.pem"; then bad "$k: key holder did not start: $(cat "$k.err")"; continue; fi
  "$scan" --tsv "$k.pem" "$hpid" > "$k.tsv" 2> "$k.scanerr"; rc=$?
  allfound=1
  IFS='|' read -ra groups <<< "$(components "$k")"
  for g in "${groups[@]}"; do
    # shellcheck disable=SC2086 # a group is a list of row tags
    any "$k.tsv" $g || { allfound=0; echo "     $k: none of [$g] found"; }
  done
  if [ $rc -eq 1 ] && [ $allfound -eq 1 ]; then
    ok "$k: key found in the holder ($(awk -F'\t' '$1 == "summary" { print $3 }' "$k.tsv") copies)"
  else
    bad "$k: key not found (status $rc)"; cat "$k.scanerr"
  fi
  "$scan" --quiet "$k-other.pem" "$hpid" > "$k.other" 2>&1; rc=$?
  if [ $rc -eq 0 ] && grep -q "pid $hpid: 0 copies" "$k.other"; then
    ok "$k: a different key of the same type is not found"
  else
    bad "$k: false positive with a different key (status $rc)"; cat "$k.other"
  fi
  stop_holder
done

# The factor test: the certificate alone (no private key) finds p or q in the holder.
openssl req -x509 -new -key rsa.pem -subj /CN=localhost -days 2 -out rsa.crt 2>/dev/null
openssl req -x509 -new -key rsa-other.pem -subj /CN=localhost -days 2 -out rsa-other.crt 2>/dev/null
if start_holder rsacert rsa.pem; then
  "$scan" --tsv --cert rsa.crt "$hpid" > cert.tsv 2> cert.err; rc=$?
  if [ $rc -eq 1 ] && any cert.tsv factor-be factor-le; then ok "--cert: factor test finds p or q without the key"
  else bad "--cert: factor test (status $rc)"; cat cert.err; fi
  "$scan" --quiet --cert rsa-other.crt "$hpid" > cert.other 2>&1; rc=$?
  if [ $rc -eq 0 ]; then ok "--cert: another certificate's factors are not found"
  else bad "--cert: false positive (status $rc)"; cat cert.other; fi
  # The private-key run also reports the factor test.
  "$scan" --tsv rsa.pem "$hpid" > keyfactor.tsv 2>&1
  if any keyfactor.tsv factor-be factor-le; then ok "key file: factor test rows agree"; else bad "key file: factor test rows"; fi
  stop_holder
else
  bad "holder for --cert did not start"
fi

# PEM lines and DER copies: residue OpenSSL does not leave, made on purpose by the holder.
for k in rsa rsatrad p256 ed25519 x448; do
  if ! start_holder "$k-res" --keep-pem --leak-der "$k.pem"; then bad "$k: holder with residue did not start"; continue; fi
  "$scan" --tsv "$k.pem" "$hpid" > "$k-res.tsv" 2>&1
  lines=$(awk -F'\t' '$1 == "row" && $3 == "pem" { print $5 "/" $6 }' "$k-res.tsv")
  # Every line of the file that encodes private bytes is in the kept text. Lines that encode only
  # public bytes are not searched: the DER header, n and e fill the first 6 lines of an RSA-2048
  # key (~290 bytes, 48 per line), the EC public point the last line of a P-256 key.
  filelines=$(awk '/^-----/ { next } length($0) >= 16 { n++ } END { print n }' "$k.pem")
  case $k in rsa*) public=7 ;; *) public=1 ;; esac
  if [ "$(row "$k-res.tsv" pem)" -gt 0 ] && [ "${lines%/*}" -ge $((filelines - public)) ]; then
    ok "$k: PEM lines of the kept file found ($lines distinct, file has $filelines lines)"
  else
    bad "$k: PEM lines ($lines, file has $filelines)"; cat "$k-res.tsv"
  fi
  if any "$k-res.tsv" der-pkcs8; then ok "$k: freed PKCS#8 DER copy found"; else bad "$k: freed DER copy not found"; fi
  "$scan" --quiet "$k-other.pem" "$hpid" > "$k-res.other" 2>&1; rc=$?
  if [ $rc -eq 0 ]; then ok "$k: with residue, a different key is still not found"; else bad "$k: residue false positive"; cat "$k-res.other"; fi
  stop_holder
done

# Encrypted key file: --pass decrypts it; without it, a clear error.
openssl pkcs8 -topk8 -in p384.pem -v2 aes-256-cbc -passout pass:secret -out p384enc.pem
if start_holder enc p384enc.pem secret; then
  "$scan" --quiet --pass secret p384enc.pem "$hpid" > enc.out 2>&1; rc=$?
  if [ $rc -eq 1 ]; then ok "encrypted key file with --pass: found"; else bad "encrypted key with --pass (status $rc)"; cat enc.out; fi
  "$scan" --quiet p384enc.pem "$hpid" > enc2.out 2>&1; rc=$?
  if [ $rc -eq 2 ] && grep -q -- "--pass" enc2.out; then ok "encrypted key file without --pass: status 2, says so"
  else bad "encrypted key without --pass (status $rc)"; cat enc2.out; fi
  stop_holder
fi

# Errors: status 2 and a message, never a crash.
printf -- '-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n' > garbage.pem
"$scan" garbage.pem $$ > garbage.out 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "mg-keyscan: garbage.pem" garbage.out; then ok "bad key file: status 2 with a message"; else bad "bad key file (status $rc)"; fi
"$scan" missing.pem $$ > missing.out 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "No such file" missing.out; then ok "missing key file: status 2"; else bad "missing key file (status $rc)"; fi
sleep 0.1 & gone=$!; wait $gone
"$scan" rsa.pem $gone > gone.out 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "no such process" gone.out; then ok "nonexistent pid: status 2, no such process"; else bad "nonexistent pid (status $rc)"; cat gone.out; fi
"$scan" rsa.pem notapid > nap.out 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "not a process id" nap.out; then ok "'notapid': status 2"; else bad "bad pid argument (status $rc)"; fi
"$scan" --cert ed25519.pem $$ > edcert.out 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "only RSA" edcert.out; then ok "--cert with a non-RSA key: status 2"; else bad "--cert non-RSA (status $rc)"; cat edcert.out; fi
# One error among several pids still gives 2; the good pid is still scanned.
"$scan" --quiet rsa.pem $$ $gone > mixed.out 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "pid $$:" mixed.out; then ok "mixed good and missing pids: status 2, the good one reported"; else bad "mixed pids (status $rc)"; fi
# The scanner never prints matched bytes: no hex run and no base64 line of the key in its output.
if start_holder leak --keep-pem rsa.pem; then
  "$scan" rsa.pem "$hpid" > leak.out 2>&1
  line=$(sed -n 2p rsa.pem)
  if ! grep -qF "$line" leak.out && ! grep -qE '[0-9a-f]{40}' leak.out; then ok "output holds no key bytes"; else bad "output leaks key bytes"; fi
  stop_holder
fi

# A real server: openssl s_server after one handshake holds its key where the scanner sees it.
openssl req -x509 -new -key rsa.pem -subj /CN=localhost -days 2 -out srv.crt 2>/dev/null
server() { # conf -> sets spid, port
  local conf=$1
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 30000))
    OPENSSL_CONF=$conf openssl s_server -accept 127.0.0.1:$port -key rsa.pem -cert srv.crt -www > srv.log 2>&1 &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 50); do grep -q ACCEPT srv.log && break; kill -0 $spid 2>/dev/null || break; sleep 0.1; done
    grep -q ACCEPT srv.log && return 0
    kill $spid 2>/dev/null; wait $spid 2>/dev/null
  done
  return 1
}
if server /dev/null; then
  out=$(printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:$port -ign_eof 2>&1)
  if grep -q "HTTP/1.0 200" <<< "$out"; then
    "$scan" rsa.pem $spid > srv.scan 2>&1; rc=$?
    if [ $rc -eq 1 ]; then ok "s_server: key found after a handshake"; else bad "s_server: key not found (status $rc)"; fi
    "$scan" --quiet --cert srv.crt $spid > srv.cert 2>&1; rc=$?
    if [ $rc -eq 1 ]; then ok "s_server: found from its certificate alone"; else bad "s_server: --cert (status $rc)"; fi
    "$scan" --quiet rsa-other.pem $spid > srv.other 2>&1; rc=$?
    if [ $rc -eq 0 ]; then ok "s_server: a different key is not found"; else bad "s_server: false positive"; cat srv.other; fi
    echo "---- s_server, plain OpenSSL:"; sed 's/^/     /' srv.scan
  else
    bad "s_server: handshake failed"; echo "$out" | tail -3
  fi
  kill $spid; wait $spid 2>/dev/null
else
  bad "s_server did not start"
fi

# Information only: what the scanner sees with memguard loaded (asserted by the provider's tests).
if [ -n "$mgconf" ] && [ -f "$mgconf" ]; then
  # The scanner ignores OPENSSL_CONF: a configuration that loads memguard neither loads the module
  # into it (it would capture the key file and refuse to export the patterns) nor changes results.
  if start_holder conf rsa.pem; then
    OPENSSL_CONF=$mgconf LD_DEBUG=files "$scan" --quiet rsa.pem "$hpid" > conf.out 2> conf.ld; rc=$?
    if [ $rc -eq 1 ] && ! grep -q memguard conf.ld; then ok "OPENSSL_CONF with memguard: ignored, key still found"
    else bad "OPENSSL_CONF with memguard (status $rc)"; grep -m3 memguard conf.ld; fi
    stop_holder
  fi
  for k in rsa p256 ed25519; do
    if OPENSSL_CONF=$mgconf start_holder "mg-$k" "$k.pem"; then
      echo "---- memguard, keyholder $k (information, not asserted):"
      "$scan" "$k.pem" "$hpid" 2>&1 | sed 's/^/     /'
      stop_holder
    fi
  done
  if server "$mgconf"; then
    printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:$port -ign_eof > /dev/null 2>&1
    echo "---- memguard, s_server rsa after one handshake (information, not asserted):"
    "$scan" rsa.pem $spid 2>&1 | sed 's/^/     /'
    kill $spid; wait $spid 2>/dev/null
  fi
fi

echo "tools keyscan: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
