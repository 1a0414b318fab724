#!/usr/bin/env bash
# Keys from files: examples/symmetric_file_key reads a raw 32-byte key file into guarded memory and
# MACs / encrypts stdin through memguard; the results must equal plain OpenSSL's (no provider config)
# with the same key. And the openssl command line with -propquery provider=memguard, likewise. Usage: sym_files.sh EXAMPLE (OPENSSL_CONF loads default, then memguard).
set -euo pipefail
example=$1
[[ -n ${OPENSSL_CONF:-} ]] || { echo "set OPENSSL_CONF to a configuration that loads memguard after default"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
plain() { OPENSSL_CONF=/dev/null openssl "$@"; }
fails=0
check() { # name, expected (never empty), got
    if [[ -n $2 && ${2,,} == "${3,,}" ]]; then echo "ok   $1"; else echo "FAIL $1: expected $2, got $3"; fails=$((fails + 1)); fi
}

umask 077
plain rand -out "$work/key" 32
hexkey=$(od -An -v -tx1 "$work/key" | tr -d ' \n')
iv=000102030405060708090a0b0c0d0e0f
for size in 0 1 15 16 17 1000 65536 200003; do
    head -c "$size" /dev/urandom > "$work/in"
    want=$(plain mac -digest SHA256 -macopt "hexkey:$hexkey" -in "$work/in" HMAC)
    check "HMAC-SHA256, $size bytes" "$want" "$("$example" "$work/key" hmac < "$work/in")"
    want=$(plain mac -cipher AES-256-CBC -macopt "hexkey:$hexkey" -in "$work/in" CMAC)
    check "CMAC-AES-256, $size bytes" "$want" "$("$example" "$work/key" cmac < "$work/in")"
    want=$(plain mac -macopt "hexkey:$hexkey" -in "$work/in" KMAC256)
    check "KMAC-256, $size bytes" "$want" "$("$example" "$work/key" kmac < "$work/in")"
    want=$(plain enc -aes-256-cbc -K "$hexkey" -iv "$iv" -in "$work/in" | od -An -v -tx1 | tr -d ' \n')
    got=$("$example" "$work/key" cbc "$iv" < "$work/in" | od -An -v -tx1 | tr -d ' \n')
    check "AES-256-CBC, $size bytes" "${want:0:64}...(${#want})" "${got:0:64}...(${#got})"
    [[ $want == "$got" ]] || { echo "FAIL AES-256-CBC, $size bytes: ciphertexts differ"; fails=$((fails + 1)); }
done

# The openssl command line, as a user would try it: -propquery provider=memguard picks memguard's
# MACs, ciphers and KDFs (nothing else answers that query), and they give plain OpenSSL's bytes.
head -c 5000 /dev/urandom > "$work/in"
for alg in "-digest SHA256 HMAC" "-digest SHA3-256 HMAC" "-cipher AES-256-CBC CMAC" KMAC128 KMAC256; do
    # shellcheck disable=SC2086 # options, then the MAC's name
    check "openssl mac -propquery provider=memguard $alg" "$(plain mac -macopt "hexkey:$hexkey" -in "$work/in" $alg)" \
        "$(openssl mac -propquery provider=memguard -macopt "hexkey:$hexkey" -in "$work/in" $alg)"
done
for c in aes-256-cbc aes-256-ctr; do
    want=$(plain enc -$c -K "$hexkey" -iv "$iv" -in "$work/in" | od -An -v -tx1 | tr -d ' \n')
    got=$(openssl enc -$c -propquery provider=memguard -K "$hexkey" -iv "$iv" -in "$work/in" | od -An -v -tx1 | tr -d ' \n')
    check "openssl enc -$c -propquery provider=memguard" "${want:0:64}...(${#want})" "${got:0:64}...(${#got})"
    [[ $want == "$got" ]] || { echo "FAIL enc -$c: ciphertexts differ"; fails=$((fails + 1)); }
done
for kdf in "-kdfopt digest:SHA256 -kdfopt hexkey:$hexkey -kdfopt salt:s HKDF" \
           "-kdfopt digest:SHA512 -kdfopt hexpass:$hexkey -kdfopt salt:saltsalt -kdfopt iter:1000 PBKDF2"; do
    # shellcheck disable=SC2086
    check "openssl kdf -propquery provider=memguard ${kdf##* }" "$(plain kdf -keylen 48 $kdf)" \
        "$(openssl kdf -propquery provider=memguard -keylen 48 $kdf)"
done
# The control: without memguard loaded, the same query finds nothing.
if plain mac -propquery provider=memguard -macopt "hexkey:$hexkey" -in "$work/in" KMAC128 > /dev/null 2>&1; then
    echo "FAIL -propquery provider=memguard answered without memguard"; fails=$((fails + 1))
else
    echo "ok   without memguard, -propquery provider=memguard finds nothing"
fi

# Key files that are not a raw 32-byte key are refused with a message, not used.
head -c 31 "$work/key" > "$work/short"
{ cat "$work/key"; echo; } > "$work/long"
for bad in short long missing; do
    if "$example" "$work/$bad" hmac < /dev/null > "$work/out" 2> "$work/err"; then
        echo "FAIL $bad key file accepted"; fails=$((fails + 1))
    else
        echo "ok   $bad key file refused: $(head -n1 "$work/err")"
    fi
done
# Without memguard the example says so instead of falling back to another provider.
if OPENSSL_CONF=/dev/null "$example" "$work/key" hmac < /dev/null > "$work/out" 2> "$work/err"; then
    echo "FAIL ran without memguard"; fails=$((fails + 1))
else
    echo "ok   without memguard: $(head -n1 "$work/err")"
fi
echo "$fails failure(s)"
[[ $fails -eq 0 ]]
