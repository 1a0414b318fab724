#!/usr/bin/env bash
# The main job: build memguard and show guarded memory at work.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)" --target guarded_demo >/dev/null
./build/release/examples/guarded_demo
