#!/usr/bin/env bash
# Speculative decoding by prompt lookup, moeserve and llama.cpp back to back on the same GGUF:
# the constructed copy model (tools/make_copy_model.py: real a3b widths, --layers deep, whose
# greedy answers repeat their prompts) at Q4_K_M, single-stream greedy decode of two prompt sets:
#   copy         the answer is a 192-token stretch of the prompt (drafts taken)
#   adversarial  every n-gram match predicts a token the model never writes (drafts rejected)
# moeserve: bench/bench_spec.c (drafts off and on back to back per prompt, outputs must match);
# llama.cpp: bench/llamacpp_lookup.mjs (node-llama-cpp 3.21.1, plain and InputLookupTokenPredictor).
# Then moeserve alone with 4 and 8 requests at once (aggregate decode; tokens per forward summed).
# Makes the checkpoint and the GGUF under models/ if they are missing (about 6 GB + 2 GB at 4 layers).
#   usage: bash bench/spec_ngram.sh [--layers 4] [--reps 2]
set -euo pipefail
cd "$(dirname "$0")/.."
layers=4 reps=2
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    *) echo "spec_ngram.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
dir=models/copy-a3b-${layers}l gguf=models/copy-a3b-${layers}l-q4_k_m.gguf
[ -d build ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target moeserve bench_spec >/dev/null
mkdir -p models
[ -f "$dir/cycle.json" ] || /usr/bin/python3 tools/make_copy_model.py "$dir" --preset a3b --layers "$layers" --verify >&2
[ -f "$gguf" ] || ./build/moeserve quantize "$dir" "$gguf" --type q4_k_m >&2
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
echo "# $gguf, $(date -u +%Y-%m-%dT%H:%MZ) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for set in copy adversarial; do
  echo "## moeserve, $set"
  ./build/bench_spec "$gguf" --prompts "$dir/${set}_prompts.json" --label "$set" --reps "$reps" 2>&1 |
    grep -v 'loading weights'
  echo "## llama.cpp, $set"
  node bench/llamacpp_lookup.mjs --model "$gguf" --prompts "$dir/${set}_prompts.json" --reps "$reps" |
    node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); console.log(JSON.stringify(j.summary))'
done
for set in copy adversarial; do # batched: moeserve only (node-llama-cpp's predictor is per sequence)
  for b in 4 8; do
    echo "## moeserve, $set, $b at once"
    ./build/bench_spec "$gguf" --prompts "$dir/${set}_prompts.json" --label "$set, $b at once" --reps "$reps" \
      --batch "$b" 2>&1 | grep -v 'loading weights'
  done
done
