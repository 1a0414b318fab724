#!/usr/bin/env bash
# Where sealed keys live, and that the process says so: with no setting, the provider uses
# memfd_secret pages when the kernel offers them (out of the kernel's direct map, unreadable
# through /proc/PID/mem) and anonymous mlock'ed pages otherwise; the first sealed key prints one
# line naming the backend; memguard-backend picks one explicitly and a bad value stops the load.
# Usage: backend.sh <path to memguard.so>
set -uo pipefail
module=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

conf() { # file [extra line]
  cat > "$1" <<CNF
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
${2:-}
CNF
}
conf auto.cnf
conf anon.cnf "memguard-backend = anonymous"
conf secret.cnf "memguard-backend = secretmem"
conf bogus.cnf "memguard-backend = tmpfs"
OPENSSL_CONF=/dev/null openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null

# Does this kernel hand out memfd_secret pages? (syscall 447 on x86_64; -1 where disabled.)
have_secret=$(python3 -c 'import ctypes, os; fd = ctypes.CDLL(None, use_errno=True).syscall(447, 0); print(1 if fd >= 0 else 0)')
echo "kernel memfd_secret: $have_secret"

line() { # conf -> the backend line the first sealed key printed
  env -u MEMGUARD_BACKEND OPENSSL_CONF=$1 openssl pkey -in key.pem -pubout -out /dev/null 2>&1 |
    grep -c "memguard-provider: private keys sealed; guarded memory: $2"
}
if [ "$have_secret" = 1 ]; then
  [ "$(line auto.cnf 'memfd_secret')" = 1 ] && ok "no setting: memfd_secret, said in one line" || bad "no setting: memfd_secret line"
  [ "$(line secret.cnf 'memfd_secret')" = 1 ] && ok "secretmem: memfd_secret" || bad "secretmem: memfd_secret"
else
  [ "$(line auto.cnf 'anonymous')" = 1 ] && ok "no setting, kernel without memfd_secret: anonymous, said" || bad "no setting: anonymous line"
fi
[ "$(line anon.cnf 'anonymous pages, mlock.ed (memguard-backend = anonymous)')" = 1 ] &&
  ok "memguard-backend = anonymous: anonymous, said with the reason" || bad "anonymous line"
# The environment switch (used by the suite's memory scans) is below the configuration.
n=$(MEMGUARD_BACKEND=anonymous OPENSSL_CONF=auto.cnf openssl pkey -in key.pem -pubout -out /dev/null 2>&1 |
    grep -c "guarded memory: anonymous pages, mlock.ed (MEMGUARD_BACKEND=anonymous)")
[ "$n" = 1 ] && ok "MEMGUARD_BACKEND=anonymous: anonymous" || bad "MEMGUARD_BACKEND=anonymous"
# Exactly one line per process, however many keys.
n=$(env -u MEMGUARD_BACKEND OPENSSL_CONF=auto.cnf openssl pkeyutl -sign -inkey key.pem -in key.pem -rawin \
    -digest sha256 -out /dev/null 2>&1 | grep -c "private keys sealed")
[ "$n" = 1 ] && ok "one line per process" || bad "one line per process ($n)"
# A bad value is a configuration error. The provider still loads (OpenSSL would skip a provider
# that fails to load, silently, and the default provider would read the key unprotected), says
# why, and refuses every private key until the configuration is fixed.
out=$(OPENSSL_CONF=bogus.cnf openssl list -providers 2>&1)
if grep -q "configuration error: memguard-backend = tmpfs" <<< "$out" && grep -q "memguard enclave key provider" <<< "$out"; then
  ok "memguard-backend = tmpfs: said, provider still loaded"
else
  bad "memguard-backend = tmpfs: $out"
fi
OPENSSL_CONF=bogus.cnf openssl pkey -in key.pem > bogus.out 2> bogus.err
rc=$?
if [ $rc -ne 0 ] && ! grep -q "PRIVATE KEY" bogus.out && grep -q "misconfigured (memguard-backend = tmpfs" bogus.err; then
  ok "memguard-backend = tmpfs: the key is refused, not printed, and the error names the setting"
else
  bad "memguard-backend = tmpfs: pkey rc=$rc, $(cat bogus.out bogus.err | head -5)"
fi
OPENSSL_CONF=bogus.cnf openssl pkeyutl -sign -inkey key.pem -in key.pem -rawin -digest sha256 -out sig.bin 2>/dev/null
[ $? -ne 0 ] && [ ! -s sig.bin ] && ok "memguard-backend = tmpfs: no signature with the key" || bad "memguard-backend = tmpfs: signed"

echo "backend.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
