#!/usr/bin/env bash
# The provider through the real openssl command line: every key type is captured from unchanged
# PEM files, private export is refused, signatures/decryption/derivation interoperate with plain
# OpenSSL, bad input fails cleanly, and openssl s_server serves TLS with sealed keys.
# Usage: cli.sh <path to memguard.so>
set -uo pipefail
module=$1
shipped_conf=$(cd "$(dirname "$0")/../../conf" && pwd)/memguard.cnf
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi; }

cat > mg.cnf <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
memguard = memguard_sect
[default_sect]
activate = 1
[memguard_sect]
module = $module
activate = 1
memguard-debug = 1
CNF
plain() { OPENSSL_CONF=/dev/null openssl "$@"; }
mg() { OPENSSL_CONF=$work/mg.cnf openssl "$@"; }

# The provider loads and says who it is.
mg list -providers -verbose > providers.txt 2>&1
check "provider listed with name and status" grep -q "name: memguard enclave key provider" providers.txt
check "provider status active" grep -q "status: active" providers.txt
# The shipped configuration, unchanged, loads it by name from the modules directory.
OPENSSL_CONF=$shipped_conf OPENSSL_MODULES=$(dirname "$module") openssl list -providers > shipped.txt 2>&1
check "conf/memguard.cnf activates memguard from OPENSSL_MODULES" grep -q "name: memguard enclave key provider" shipped.txt
OPENSSL_CONF=$shipped_conf OPENSSL_MODULES=$(dirname "$module") openssl req -new -x509 -newkey ec \
  -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout shipped.key -subj /CN=x -out shipped.crt 2>/dev/null
check "conf/memguard.cnf keeps the system [req] settings usable" test -s shipped.crt

genkey() { # name algorithm [options]
  local n=$1; shift
  plain genpkey "$@" -out "$n.pem" && plain pkey -in "$n.pem" -pubout -out "$n.pub"
}
genkey rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
genkey rsa3072 -algorithm RSA -pkeyopt rsa_keygen_bits:3072
genkey rsapss -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048
genkey p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
genkey p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
genkey p521 -algorithm EC -pkeyopt ec_paramgen_curve:P-521
genkey ed25519 -algorithm ED25519
genkey ed448 -algorithm ED448
genkey x25519 -algorithm X25519
genkey x448 -algorithm X448
plain rsa -in rsa2048.pem -traditional -out rsa_trad.pem 2>/dev/null && cp rsa2048.pub rsa_trad.pub
plain ec -in p256.pem -out ec_trad.pem 2>/dev/null && cp p256.pub ec_trad.pub
plain pkcs8 -topk8 -in p384.pem -v2 aes-256-cbc -passout pass:secret -out p384_enc.pem && cp p384.pub p384_enc.pub
echo "the data to sign" > data

# Capture: public part matches, the key was sealed, private PEM export is refused with our reason.
for n in rsa2048 rsa3072 rsapss p256 p384 p521 ed25519 ed448 x25519 x448 rsa_trad ec_trad; do
  mg pkey -in $n.pem -pubout -out $n.mgpub 2> $n.log
  if cmp -s $n.mgpub $n.pub && grep -q "sealed a" $n.log; then ok "$n: captured, public key matches"; else bad "$n: capture"; fi
  if mg pkey -in $n.pem -out leaked.pem 2> $n.err; then bad "$n: private export was allowed"
  elif grep -q "private key export refused" $n.err; then ok "$n: private export refused"
  else bad "$n: private export failed without memguard's reason"; fi
done

# Encrypted PKCS#8 with a passphrase: OpenSSL decrypts, memguard seals what comes out.
mg pkey -in p384_enc.pem -passin pass:secret -pubout -out p384_enc.mgpub 2> p384_enc.log
if cmp -s p384_enc.mgpub p384.pub && grep -q "sealed a" p384_enc.log; then ok "encrypted PKCS#8: captured"; else bad "encrypted PKCS#8: capture"; fi

# Signatures made through memguard verify with plain OpenSSL.
for n in rsa2048 rsa3072 p256 p384 p521; do
  mg dgst -sha256 -sign $n.pem -out $n.sig data 2>/dev/null
  check "$n: signature verifies without memguard" plain dgst -sha256 -verify $n.pub -signature $n.sig data
done
mg dgst -sha256 -sign rsa2048.pem -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -out pss.sig data 2>/dev/null
check "rsa2048: PSS signature verifies" plain dgst -sha256 -verify rsa2048.pub -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -signature pss.sig data
mg dgst -sha256 -sign rsapss.pem -out rsapss.sig data 2>/dev/null
check "rsapss: restricted-key signature verifies" plain dgst -sha256 -verify rsapss.pub -signature rsapss.sig data
for n in ed25519 ed448; do
  mg pkeyutl -sign -rawin -inkey $n.pem -in data -out $n.sig 2>/dev/null
  check "$n: signature verifies without memguard" plain pkeyutl -verify -rawin -pubin -inkey $n.pub -in data -sigfile $n.sig
done
# And a plain signature verifies through the memguard key object (verify uses the public part).
plain dgst -sha256 -sign p256.pem -out plain.sig data
check "p256: plain signature verifies with the memguard key" mg dgst -sha256 -prverify p256.pem -signature plain.sig data

# RSA decryption (OAEP and PKCS#1 v1.5) recovers what plain OpenSSL encrypted.
for pad in oaep pkcs1; do
  plain pkeyutl -encrypt -pubin -inkey rsa2048.pub -in data -out enc.$pad -pkeyopt rsa_padding_mode:$pad
  mg pkeyutl -decrypt -inkey rsa2048.pem -in enc.$pad -out dec.$pad -pkeyopt rsa_padding_mode:$pad 2>/dev/null
  check "rsa2048: $pad decryption" cmp dec.$pad data
done

# Key agreement agrees with the default provider.
for n in x25519 x448 p256; do
  case $n in p256) alg="-algorithm EC -pkeyopt ec_paramgen_curve:P-256";; *) alg="-algorithm ${n^^}";; esac
  plain genpkey $alg -out peer_$n.pem && plain pkey -in peer_$n.pem -pubout -out peer_$n.pub
  mg pkeyutl -derive -inkey $n.pem -peerkey peer_$n.pub -out mine_$n 2>/dev/null
  plain pkeyutl -derive -inkey peer_$n.pem -peerkey $n.pub -out theirs_$n
  check "$n: derived secret agrees" cmp mine_$n theirs_$n
done

# Certificates and CMS signed with sealed keys verify with plain OpenSSL.
# A CA certificate by its extensions too: OpenSSL >= 3.2 no longer accepts a bare self-signed one as CA.
mg req -x509 -new -key p256.pem -subj /CN=memguard-test-ca -days 2 -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,digitalSignature,keyCertSign,cRLSign -out ca.crt 2>/dev/null
check "req -x509: self-signed CA certificate verifies" plain verify -CAfile ca.crt ca.crt
plain req -new -key ed25519.pem -subj /CN=leaf -out leaf.csr
mg x509 -req -in leaf.csr -CA ca.crt -CAkey p256.pem -CAcreateserial -days 2 -out leaf.crt 2>/dev/null
check "x509 -req: certificate signed with a sealed CA key verifies" plain verify -CAfile ca.crt leaf.crt
mg cms -sign -in data -signer ca.crt -inkey p256.pem -out signed.cms 2>/dev/null
check "cms -sign: signature verifies" plain cms -verify -in signed.cms -CAfile ca.crt -out /dev/null

# Key generation: ordinary genpkey under the memguard configuration still works (default provider);
# forced into memguard, the key is generated sealed and writing it out is refused.
check "genpkey under memguard.cnf still works" mg genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out gen.pem
if mg genpkey -algorithm ED25519 -propquery provider=memguard -out gen2.pem 2> gen2.err; then
  bad "genpkey in memguard wrote a private key out"
elif grep -q "private key export refused" gen2.err; then ok "genpkey in memguard: key sealed from birth, never written out"
else bad "genpkey in memguard failed for another reason"; fi

# Bad input: clean errors, never a crash (a signal would give status >= 128).
printf -- '-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\n' > truncated.pem
head -c 300 rsa2048.pem > cut.pem; echo "-----END PRIVATE KEY-----" >> cut.pem
head -c 2000 /dev/urandom > garbage.pem
sed 's/A/B/g' p256.pem > corrupted.pem
for f in truncated cut garbage corrupted; do
  mg pkey -in $f.pem -pubout > /dev/null 2>&1; rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ]; then ok "$f key: clean error"; else bad "$f key: status $rc"; fi
done
mg pkey -in p384_enc.pem -passin pass:wrong -pubout > /dev/null 2>&1; rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 128 ]; then ok "wrong passphrase: clean error"; else bad "wrong passphrase: status $rc"; fi

# TLS: openssl s_server with sealed keys, plain s_client checks the handshake and the body.
for n in rsa2048 p256 p384 ed25519 rsapss; do
  plain req -x509 -new -key $n.pem -subj /CN=localhost -days 2 -out $n.crt 2>/dev/null
done
# Ports below Linux's ephemeral range (32768+), so that no outgoing connection holds one; a port
# that is taken anyway (s_server exits without ACCEPT) is replaced by the next one.
port=$((20000 + RANDOM % 10000))
tls() { # key "client options"
  local n=$1 opts=$2 pid
  for _ in 1 2 3; do
    port=$((port + 1))
    mg s_server -accept 127.0.0.1:$port -key $n.pem -cert $n.crt -naccept 1 -www > srv.log 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q ACCEPT srv.log && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    grep -q ACCEPT srv.log && break
  done
  local out
  out=$(printf 'GET / HTTP/1.0\r\n\r\n' | plain s_client -connect 127.0.0.1:$port -CAfile $n.crt -verify_return_error -ign_eof $opts 2>&1)
  wait $pid 2>/dev/null
  if grep -q "Verify return code: 0 (ok)" <<< "$out" && grep -q "HTTP/1.0 200" <<< "$out" && grep -q "sealed a" srv.log; then
    ok "TLS $n $opts: $(grep -m1 -oE 'TLSv1\.[23]' <<< "$out")"
  else
    bad "TLS $n $opts"; echo "$out" | tail -5
  fi
}
tls rsa2048 "-tls1_3"
tls rsa2048 "-tls1_2"
tls rsa2048 "-tls1_2 -sigalgs rsa_pkcs1_sha256"
tls rsa2048 "-tls1_2 -cipher AES128-GCM-SHA256"
tls rsa2048 "-tls1_3 -sigalgs rsa_pss_rsae_sha256"
tls rsapss "-tls1_3"
tls p256 "-tls1_3"
tls p256 "-tls1_2"
tls p384 "-tls1_3"
tls ed25519 "-tls1_3"

echo "provider cli: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
