#!/usr/bin/env bash
# cmake --install into a scratch prefix, then build and run a consumer with
# nothing but pkg-config, linked against the shared and the static library.
set -euo pipefail
build=$1 src=$2 cc=${3:-cc} ossl_prefix=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name memguard.pc)")/..
export PKG_CONFIG_PATH=$libdir/pkgconfig
test -f "$tmp/prefix/include/memguard/memguard.h"
test -f "$tmp/prefix/include/memguard/version.h"
test -n "$(find "$tmp/prefix" -path "*ossl-modules/memguard.so")"
# Where OpenSSL looks (`openssl version -m`), under this prefix: installing with --prefix equal to
# OpenSSL's own prefix puts the module exactly there.
[ -n "$ossl_prefix" ] || { echo "install check: no OpenSSL prefix given" >&2; exit 1; }
modulesdir=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
rel=${modulesdir#"$ossl_prefix"/}
if [ -z "$modulesdir" ] || [ "$rel" = "$modulesdir" ] || [ ! -f "$tmp/prefix/$rel/memguard.so" ]; then
  echo "install check: memguard.so is not in $tmp/prefix/$rel (openssl version -m: $modulesdir)" >&2
  find "$tmp/prefix" -name memguard.so >&2
  exit 1
fi
"$cc" -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$tmp/shared" \
  $(pkg-config --cflags --libs memguard) -Wl,-rpath,"$libdir"
"$tmp/shared"
# The consumer must have used the installed shared library, not a build-tree one.
# (captured first: with pipefail, grep -q closing the pipe early would fail ldd with SIGPIPE)
deps=$(ldd "$tmp/shared")
grep -q "$tmp/prefix" <<< "$deps"
"$cc" -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$tmp/static" \
  $(pkg-config --cflags memguard) "$libdir/libmemguard.a" $(pkg-config --static --libs-only-l --libs-only-other memguard | sed 's/-lmemguard//')
"$tmp/static"
deps=$(ldd "$tmp/static")
! grep -q libmemguard <<< "$deps"
echo "install check: headers, memguard.pc, shared and static library, provider module (in $rel, where openssl version -m points) all install and work"
