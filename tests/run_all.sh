#!/usr/bin/env bash
# Runs every test of the default suite on a fresh Debian machine:
#   1. installs the build dependencies (.ci/install-deps.sh),
#   2. a Release build + ctest (C unit and golden tests, CLI, Python, Lua),
#      then the golden tests again under each SIMD kernel variant,
#   3. an AddressSanitizer/UBSan build running the C unit and golden tests.
# Long checks carry the ctest label "slow" and are excluded here; run them
# with: ctest --test-dir build -L slow
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
.ci/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs" -LE slow
# The golden tests once more with every SIMD kernel variant forced (one the
# CPU lacks falls back to the best it has, so this is safe on any machine).
for k in ref avx2 avx512 avx512_vnni avx512_bf16 avx512_amx; do
  echo "== golden tests with GEMMA3N_KERNELS=$k"
  GEMMA3N_KERNELS=$k ctest --test-dir build --output-on-failure -j"$jobs" -L golden
done
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGM_SANITIZE_ADDRESS=ON -DGM_BUILD_PYTHON=OFF -DGM_BUILD_LUA=OFF
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$jobs" -L "unit|golden"
