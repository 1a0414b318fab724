#!/usr/bin/env bash
# The whole test suite: installs what is missing (as root, Debian 12), then
# builds and runs every suite through ctest in three builds:
#   dev      gcc, warnings as errors, every suite natively and under valgrind memcheck
#   asan     clang, AddressSanitizer + UndefinedBehaviorSanitizer
#   release  gcc -O2 with _FORTIFY_SOURCE, every suite natively
# and then once more against OpenSSL 3.5 (scripts/openssl35.sh: built from Debian 13's source, the
# EVP_SKEY code that 3.0 compiles out; every suite but the nginx/stunnel ones).
# Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
total=0
failed=0
failed_builds=()

run_build() {
  local preset=$1
  echo "==== $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs" >/dev/null
  echo "==== $preset: test"
  local log="build/$preset/ctest-summary.txt"
  set +e
  ctest --preset "$preset" -j "$jobs" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  tally "$preset" "$log" "$rc"
}

# Tally a ctest summary (in $2) for build $1.
tally() {
  local name=$1 log=$2 rc=$3 n f
  n=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
  total=$((total + ${n:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] || [ -z "$n" ]; then
    failed_builds+=("$name")
  fi
}

not_run=()
run_openssl35() {
  echo "==== openssl35: OpenSSL 3.5 from Debian 13's source, memguard built and tested against it"
  local log=build/openssl35-summary.txt rc
  mkdir -p build
  set +e
  bash scripts/openssl35.sh 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -eq 3 ]; then # the Debian archive could not be reached: said, not counted as passed
    not_run+=("openssl35 (OpenSSL 3.5 source not fetched from the Debian archive)")
    return
  fi
  tally openssl35 "$log" "$rc"
}

run_build dev
run_build asan
run_build release
run_openssl35

echo
if [ ${#failed_builds[@]} -ne 0 ]; then
  echo "FAILED in: ${failed_builds[*]}"
fi
if [ ${#not_run[@]} -ne 0 ]; then
  echo "NOT RUN: ${not_run[*]}"
fi
echo "test.sh: $((total - failed)) passed, $failed failed"
[ ${#failed_builds[@]} -eq 0 ] && [ "$failed" -eq 0 ] && [ "$total" -gt 0 ]
