#!/usr/bin/env bash
# Fail-closed loading under locked-memory pressure, as an unprivileged user: for RSA, P-256 and
# Ed25519 keys (PKCS#8, traditional, encrypted PKCS#8), `openssl pkey` (with -pubout, -noout),
# `openssl rsa`/`openssl ec` never print the private key, and test_load's C load paths give a
# memguard key or fail naming RLIMIT_MEMLOCK, at RLIMIT_MEMLOCK 16, 24, 32, 48 and 64 KiB.
# Usage: load_paths.sh <memguard.so> <test_load>
set -uo pipefail
module=$(realpath "$1") test_load=$(realpath "$2")
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
cd "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
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
CNF
plain() { OPENSSL_CONF=/dev/null openssl "$@"; }
plain genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.p8 2>/dev/null
plain genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.p8
plain genpkey -algorithm ED25519 -out ed.p8
plain rsa -in rsa.p8 -traditional -out rsa.trad 2>/dev/null
plain ec -in ec.p8 -out ec.trad 2>/dev/null
for t in rsa ec ed; do plain pkcs8 -topk8 -in $t.p8 -passout pass:secret -out $t.enc; done
chmod 644 ./*

# Run as nobody with RLIMIT_MEMLOCK = $1 KiB (only root can drop to nobody: else as ourselves).
limited() {
  local kib=$1; shift
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups prlimit --memlock=$((kib * 1024)):$((kib * 1024)) \
      env OPENSSL_CONF="$work/mg.cnf" MEMGUARD_BACKEND=anonymous "$@"
  else
    prlimit --memlock=$((kib * 1024)):$((kib * 1024)) env OPENSSL_CONF="$work/mg.cnf" MEMGUARD_BACKEND=anonymous "$@"
  fi
}
# The first base64 line of the plain PKCS#8 (holds private bytes for every type here).
secret_line() { sed -n '2p' "$1"; }

for kib in 16 24 32 48 64; do
  for f in rsa.p8 rsa.trad rsa.enc ec.p8 ec.trad ec.enc ed.p8 ed.enc; do
    t=${f%%.*}
    cmds=("pkey -in $f" "pkey -in $f -pubout" "pkey -in $f -noout" "pkey -in $f -traditional")
    [ "$t" = rsa ] && cmds+=("rsa -in $f")
    [ "$t" = ec ] && cmds+=("ec -in $f")
    plain pkey -in "$f" -passin pass:secret -out "$f.plain" 2>/dev/null
    for c in "${cmds[@]}"; do
      # shellcheck disable=SC2086
      limited "$kib" openssl $c -passin pass:secret > out 2> err
      if grep -q "PRIVATE KEY" out || grep -qF -e "$(secret_line "$f.plain")" out; then
        bad "$kib KiB: openssl $c printed the private key"
      elif grep -q "REFUSED" err && ! grep -q "RLIMIT_MEMLOCK" err; then
        bad "$kib KiB: openssl $c: refused without naming RLIMIT_MEMLOCK: $(grep REFUSED err | head -1)"
      else
        ok "$kib KiB: openssl $c: no private key printed$(grep -q REFUSED err && echo ' (refused, RLIMIT_MEMLOCK named)')"
      fi
    done
  done
  if limited "$kib" env MGT_LOAD_PRESSURE=1 "$test_load" > c.out 2>&1; then
    ok "$kib KiB: every C load path: a memguard key or an error naming RLIMIT_MEMLOCK"
  else
    bad "$kib KiB: C load paths"; grep -A3 "FAIL\|an unprotected key\|: a key from" c.out | head -20
  fi
done

# openssl s_server -key under pressure: it must not serve with an unprotected key.
for kib in 16 32 64; do
  limited "$kib" openssl req -new -x509 -key rsa.p8 -subj /CN=t -days 1 -out rsa.crt > /dev/null 2>&1 ||
    plain req -new -x509 -key rsa.p8 -subj /CN=t -days 1 -out rsa.crt
  chmod 644 rsa.crt
  limited "$kib" timeout 3 openssl s_server -accept 0 -naccept 1 -cert rsa.crt -key rsa.p8 -www > srv.out 2> srv.err
  if grep -q "REFUSED" srv.err && ! grep -q "RLIMIT_MEMLOCK" srv.err; then
    bad "$kib KiB: s_server refused the key without naming RLIMIT_MEMLOCK"
  else
    ok "$kib KiB: s_server -key: sealed key or refusal naming RLIMIT_MEMLOCK"
  fi
done

# memguard's own PEM decoder takes keys after a preamble of any length (OpenSSL's would otherwise
# decode the PEM into its buffers and only the DER reach us): its trace says it decoded and sealed.
sed 's/^activate = 1$/activate = 1/' mg.cnf > dbg.cnf && echo "memguard-debug = 1" >> dbg.cnf
for lines in 10 20000; do
  for t in rsa ec; do
    (seq 1 $lines | sed 's/^/preamble line /'; cat $t.p8) > $t.pre$lines
    OPENSSL_CONF=$work/dbg.cnf MEMGUARD_BACKEND=anonymous openssl pkey -in $t.pre$lines -pubout > pre.out 2> pre.err
    if grep -q 'decoded a "PRIVATE KEY" PEM block in guarded memory' pre.err && grep -q "handed a sealed " pre.err &&
       grep -q "BEGIN PUBLIC KEY" pre.out; then
      ok "$t key after a $lines-line preamble: decoded by memguard's PEM decoder and sealed"
    else
      bad "$t key after a $lines-line preamble: $(head -3 pre.err)"
    fi
  done
done

echo "load_paths: $pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
