#!/usr/bin/env bash
# The full 48-layer Qwen3-30B-A3B shape from a GGUF, moeserve and llama.cpp back to back on the
# same file: load time and peak RSS, prefill, decode at 1 / 4 / 16 sequences (bench_engine, then
# bench/llamacpp_bench.mjs on node-llama-cpp 3.21.1's prebuilt CPU library). Generates the file
# (tools/make_random_gguf.py, about 18.6 GB at Q4_K_M, a few minutes) if it is missing.
#   usage: bash bench/gguf_full.sh [--type q4_k_m] [--prompt-len 128] [--decode-tokens 32]
# Run it twice to see warm loads (the first reads the file from disk). Prints both results.
set -euo pipefail
cd "$(dirname "$0")/.."
type=q4_k_m plen=128 dtok=32 batches=1,4,16
while [ $# -gt 0 ]; do
  case "$1" in
    --type) type=$2; shift 2 ;;
    --prompt-len) plen=$2; shift 2 ;;
    --decode-tokens) dtok=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    *) echo "gguf_full.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
model=models/a3b-48l-$type.gguf
[ -d build ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target moeserve bench_engine >/dev/null
if [ ! -f "$model" ]; then
  mkdir -p models
  /usr/bin/python3 tools/make_random_gguf.py "$model" --preset a3b --layers 48 --type "$type" >&2
fi
echo "# $model, $(date -u +%Y-%m-%dT%H:%MZ) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## moeserve (bench_engine)"
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell} ./build/bench_engine "$model" --prompt-len "$plen" \
  --decode-tokens "$dtok" --batches "$batches" 2>&1 | grep -v 'loading weights'
echo "## llama.cpp (node-llama-cpp 3.21.1, bench/llamacpp_bench.mjs)"
node bench/llamacpp_bench.mjs --model "$model" --prompt-len "$plen" --decode-tokens "$dtok" --batches "$batches"
