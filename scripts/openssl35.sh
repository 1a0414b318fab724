#!/usr/bin/env bash
# memguard on OpenSSL 3.5: the system has 3.0 (Debian 12), where the provider's EVP_SKEY support
# (SKEYMGMT) is compiled out and nothing shows that it builds and works on newer 3.x. This script
# builds OpenSSL 3.5 from Debian 13's source package (fetched from the Debian archive, checked
# against the archive's SHA-256), builds memguard against it with warnings as errors, and runs
# every suite except tls.* (nginx and stunnel are linked to the system's 3.0), with the 3.5
# `openssl` command first in PATH - provider.skey among them, which exists only there.
# OpenSSL 3.5 is kept in build/openssl35 between runs.
# Exit status: 0 all passed, 1 a build or test failed, 3 the source could not be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=$root/build/openssl35
inst=$dir/inst
# The Debian archive this machine's apt already uses (never a host name written here): the first
# "deb" URI of the main archive (not -security, not a third-party repository) in its sources.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '/^Types:/ { deb = ($0 ~ /deb([^-]|$)/) } /^URIs:/ && deb { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
  done
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror | grep -E '/debian/?$' | head -1)}
mirror=${mirror%/}
if [ -z "$mirror" ]; then
  echo "openssl35: no Debian archive in this machine's apt sources (set DEBIAN_MIRROR)" >&2
  exit 3
fi
jobs=$(nproc 2>/dev/null || echo 2)

fetch_and_build() {
  mkdir -p "$dir"
  local sources=$dir/Sources.xz
  # Debian 13 (trixie) ships the 3.5 line; its source index names the tarball and its SHA-256.
  if ! curl -fsS --retry 2 -o "$sources" "$mirror/dists/trixie/main/source/Sources.xz"; then
    echo "openssl35: cannot fetch $mirror/dists/trixie/main/source/Sources.xz" >&2
    return 3
  fi
  local entry file sha path
  entry=$(xz -dc "$sources" | awk '/^Package: openssl$/ { p = 1 } p && /^$/ { exit } p')
  path=$(awk '/^Directory:/ { print $2 }' <<< "$entry")
  read -r sha file < <(awk '/^Checksums-Sha256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 ~ /orig\.tar\.gz$/ { print $1, $3; exit }' <<< "$entry")
  if [[ -z $file || -z $sha || -z $path || $file != openssl_3.* ]]; then
    echo "openssl35: no OpenSSL 3 source in Debian 13's index" >&2
    return 3
  fi
  echo "openssl35: $file from $mirror/$path"
  if ! curl -fsS --retry 2 -o "$dir/$file" "$mirror/$path/$file"; then
    echo "openssl35: cannot fetch $mirror/$path/$file" >&2
    return 3
  fi
  echo "$sha  $dir/$file" | sha256sum -c --quiet - || { echo "openssl35: $file: SHA-256 mismatch" >&2; return 1; }
  rm -rf "$dir/src" && mkdir -p "$dir/src"
  tar -xzf "$dir/$file" -C "$dir/src" --strip-components=1
  (cd "$dir/src" && ./Configure --prefix="$inst" --libdir=lib no-docs no-tests > "$dir/configure.log" &&
     make -j "$jobs" build_sw > "$dir/make.log" 2>&1 && make install_sw > "$dir/install.log") ||
    { echo "openssl35: building OpenSSL failed (logs in $dir)" >&2; return 1; }
}

if [ ! -x "$inst/bin/openssl" ]; then
  rc=0
  fetch_and_build || rc=$?
  [ $rc -eq 0 ] || exit $rc
fi
version=$(LD_LIBRARY_PATH=$inst/lib "$inst/bin/openssl" version)
echo "openssl35: $version"

PKG_CONFIG_PATH=$inst/lib/pkgconfig cmake -S . -B build/ossl35 -DCMAKE_BUILD_TYPE=Debug -DMG_WERROR=ON \
  -DOPENSSL_ROOT_DIR="$inst" > build/ossl35-configure.log
cmake --build build/ossl35 -j "$jobs" > build/ossl35-build.log || { tail -30 build/ossl35-build.log; exit 1; }
if ! grep -q '^MGP_HAVE_SKEYMGMT:INTERNAL=1' build/ossl35/CMakeCache.txt; then
  echo "openssl35: the provider was built without SKEYMGMT against $version" >&2
  exit 1
fi
# The 3.5 command line for provider.cli; the test binaries find 3.5's libraries by their RUNPATH.
MEMGUARD_BACKEND=anonymous PATH=$inst/bin:$PATH LD_LIBRARY_PATH=$inst/lib ctest --test-dir build/ossl35 -E '^tls\.' -j "$jobs" --output-on-failure
