#!/usr/bin/env bash
# cmake --install into a scratch prefix, then build and run a consumer with
# nothing but pkg-config, linked against the shared and the static library.
set -euo pipefail
build=$1 src=$2 cc=${3:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name memguard.pc)")/..
export PKG_CONFIG_PATH=$libdir/pkgconfig
test -f "$tmp/prefix/include/memguard/memguard.h"
test -f "$tmp/prefix/include/memguard/version.h"
test -n "$(find "$tmp/prefix" -path "*ossl-modules/memguard.so")"
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
echo "install check: headers, memguard.pc, shared and static library, provider module all install and work"
