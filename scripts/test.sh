#!/usr/bin/env bash
# The whole test suite: installs what is missing (as root, Debian 12), then
# builds and runs every suite through ctest in three builds:
#   dev      gcc, warnings as errors, every suite natively and under valgrind memcheck
#   asan     clang, AddressSanitizer + UndefinedBehaviorSanitizer
#   release  gcc -O2 with _FORTIFY_SOURCE, every suite natively
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
  local n f
  n=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
  total=$((total + ${n:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] || [ -z "$n" ]; then
    failed_builds+=("$preset")
  fi
}

run_build dev
run_build asan
run_build release

echo
if [ ${#failed_builds[@]} -ne 0 ]; then
  echo "FAILED in: ${failed_builds[*]}"
fi
echo "test.sh: $((total - failed)) passed, $failed failed"
[ ${#failed_builds[@]} -eq 0 ] && [ "$failed" -eq 0 ] && [ "$total" -gt 0 ]
