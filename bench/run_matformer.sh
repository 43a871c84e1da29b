#!/usr/bin/env bash
# MatFormer benchmark: tokens/s and RSS of E2B, two intermediate sizes and
# E4B, all selected at run time from ONE synthetic full-size E4B checkpoint
# (random weights, the released shapes; written once to $GM_BENCH_CACHE).
#   bench/run_matformer.sh [--weights q4_0|q8_0|bf16] [-p N] [-n N]
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${GM_BENCH_CACHE:-bench/cache}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target bench_matformer gemma3n-synth > /dev/null
if [ ! -f "$cache/E4B/model.safetensors.index.json" ]; then
  echo "writing the synthetic E4B checkpoint (15.7 GB) to $cache/E4B ..."
  build/bench/gemma3n-synth E4B "$cache/E4B"
fi
build/bench/bench_matformer "$cache/E4B" "$@"
