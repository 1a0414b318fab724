#!/usr/bin/env bash
# A server that memguard cannot protect does not start: with the shipped conf/memguard.cnf,
# `nginx -t` (which loads the certificate and key exactly as a start does) fails when the key is
# of a type memguard cannot seal (DSA) or fails validation (an RSA key whose dP is wrong, under a
# certificate that matches its public part), and nginx's own output carries memguard's reason. With
# memguard-unsealed-keys = allow the DSA key is served by the default provider, with a warning; a
# valid RSA key starts (the control).
# Usage: refuse.sh <memguard.so>
set -uo pipefail
. "$(dirname "$0")/lib.sh"
tls_test_init "$(realpath "$1")"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cd "$work" || exit 1

tls_make_ca "$work"
tls_make_key "$work" rsa RSA -pkeyopt rsa_keygen_bits:2048
# DSA: parameters first, then a key and a certificate for it.
tls_plain genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 -out dsap.pem 2>/dev/null
tls_plain genpkey -paramfile dsap.pem -out dsa.key 2>/dev/null
tls_plain req -new -x509 -key dsa.key -subj /CN=localhost -days 2 -out dsa.crt 2>/dev/null
# An RSA key whose dP is off by one bit in its last byte: n, e (and the certificate) unchanged.
tls_plain rsa -in rsa.key -traditional -outform DER -out rsa.der 2>/dev/null
read -r off hl len < <(tls_plain asn1parse -inform DER -in rsa.der | grep 'prim: INTEGER' | sed -n 7p |
  sed -E 's/^ *([0-9]+):d=[0-9]+ +hl= *([0-9]+) +l= *([0-9]+).*/\1 \2 \3/')
last=$((off + hl + len - 1))
python3 - rsa.der bad.der "$last" <<'PY'
import sys
data = bytearray(open(sys.argv[1], 'rb').read())
data[int(sys.argv[3])] ^= 1
open(sys.argv[2], 'wb').write(bytes(data))
PY
{ echo "-----BEGIN RSA PRIVATE KEY-----"; base64 -w 64 bad.der; echo "-----END RSA PRIVATE KEY-----"; } > bad.key
chmod 644 ./*

cp "$conf" allow.cnf && echo "memguard-unsealed-keys = allow" >> allow.cnf

nginx_t() { # key crt openssl.cnf -> exit status; output in t.out
  cat > nginx.conf <<NGINX
pid $work/nginx.pid;
error_log $work/error.log notice;
events { worker_connections 16; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$(tls_free_port) ssl;
    ssl_certificate $work/$2;
    ssl_certificate_key $work/$1;
  }
}
NGINX
  OPENSSL_CONF=$3 nginx -t -p "$work" -c "$work/nginx.conf" > t.out 2>&1
}

if nginx_t rsa.key rsa.crt "$conf"; then ok "control: a valid RSA key passes nginx -t"; else
  bad "control: valid RSA key: $(cat t.out)"; fi
if grep -q "private keys sealed" t.out; then ok "control: the key was sealed"; else bad "control: not sealed"; fi

if nginx_t dsa.key dsa.crt "$conf"; then
  bad "DSA key: nginx -t passed: $(cat t.out)"
elif grep -q "REFUSED a DSA private key" t.out && grep -q "memguard-unsealed-keys = allow" t.out &&
     grep -q "SSL_CTX_use_PrivateKey" t.out; then
  ok "DSA key: nginx refuses to start, naming the type and memguard-unsealed-keys = allow"
else
  bad "DSA key: nginx -t failed without memguard's reason: $(cat t.out)"
fi

if nginx_t dsa.key dsa.crt allow.cnf && grep -q "DSA" t.out && grep -qi "warning" t.out; then
  ok "DSA key with memguard-unsealed-keys = allow: nginx starts, with the warning"
else
  bad "DSA key with allow: $(cat t.out)"
fi

if nginx_t bad.key rsa.crt "$conf"; then
  bad "RSA key with a wrong dP: nginx -t passed: $(cat t.out)"
elif grep -q "REFUSED a RSA private key" t.out && grep -qi "invalid RSA private key" t.out &&
     grep -q "SSL_CTX_use_PrivateKey.*memguard.*dP" t.out; then
  ok "RSA key with a wrong dP: nginx refuses to start; its own log line carries memguard's reason"
else
  bad "RSA key with a wrong dP: nginx -t failed without memguard's reason: $(cat t.out)"
fi
# Nothing of the key in what was printed.
dp_hex=$(tls_plain rsa -in rsa.key -text -noout 2>/dev/null | awk '/^exponent1:/ { f = 1; next } /^exponent2:/ { f = 0 } f' |
  tr -d ' :\n' | cut -c1-24)
if [ -n "$dp_hex" ] && ! tr -d ' :\n' < t.out | grep -qi "$dp_hex"; then ok "no key bytes in the refusal"; else
  bad "refusal output holds key bytes (or no dP read)"; fi

tls_test_summary refuse.sh
