#!/usr/bin/env bash
# provider/skeymgmt.c (OpenSSL >= 3.5 only) compiled on a machine with OpenSSL 3.0: with the test-only
# overlay tests/provider/skeymgmt35 (3.5's EVP_SKEY declarations over the system headers), or with
# real 3.5 headers given as OPENSSL35_INCLUDE=<dir containing openssl/core_dispatch.h>.
# Proves it compiles cleanly (-Wall -Wextra -Werror, gcc and clang); running it needs OpenSSL 3.5.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build_include=${1:?usage: skeymgmt_syntax.sh BUILD_INCLUDE_DIR (where memguard/version.h is generated)}
inc=(-I"${OPENSSL35_INCLUDE:-$here/skeymgmt35}" -I"$root/core/include" -I"$build_include")
flags=(-std=c11 -D_GNU_SOURCE -DMGP_HAVE_SKEYMGMT=1 -fsyntax-only -Wall -Wextra -Wpedantic -Wshadow
       -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual -Werror)
# The function must exist only because of the 3.5 declarations: without them the file is empty.
for cc in gcc clang; do
    command -v "$cc" > /dev/null || { echo "skip $cc (not installed)"; continue; }
    for f in skeymgmt.c skeymgmt_glue.c provider.c; do
        "$cc" "${flags[@]}" "${inc[@]}" "$root/provider/$f"
        echo "ok   $cc: provider/$f against ${OPENSSL35_INCLUDE:-the 3.5 overlay}"
    done
done
# And it really is compiled out against plain 3.0 headers (no 3.5 declarations): no symbols at all.
obj=$(mktemp --suffix=.o)
trap 'rm -f "$obj"' EXIT
gcc -std=c11 -D_GNU_SOURCE -c -Wall -Wextra -Werror -I"$root/core/include" -I"$build_include" \
    "$root/provider/skeymgmt.c" -o "$obj"
if nm "$obj" | grep -q ' T '; then echo "FAIL skeymgmt.c defines symbols without 3.5 headers"; exit 1; fi
echo "ok   against the system's 3.0 headers skeymgmt.c compiles to nothing"
