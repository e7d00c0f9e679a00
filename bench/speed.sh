#!/usr/bin/env bash
# Issue 6's speed benchmark in one command. Builds the benchmarks, generates the 4-layer
# checkpoint with Qwen3-30B-A3B's widths if it is missing (random weights, real tokenizer), then
# for BF16 as stored and for Q8_0 quantized at load measures:
#   bench_engine: prefill of a 512-token prompt, decode at 1, 4, 8, 16, 32 sequences, the time
#                 per step by phase, and the read bandwidth of the machine in the same run;
#   bench_served: streaming chat requests through the HTTP API (~176-token prompts, 128 output
#                 tokens, temperature 0, ignore_eos) from 1, 4, 8, 16 clients.
# Every throughput comes with its bandwidth bound and the fraction of it reached. Prints Markdown.
#
# usage: bash bench/speed.sh [MODEL_DIR] [--quick]
#   MODEL_DIR defaults to models/a3b-4l; --quick runs fewer batches and one request per client.
# The machine should be otherwise idle: runs vary 10-20% even then.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/a3b-4l
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -*) echo "speed.sh: unknown option $a" >&2; exit 2 ;;
    *) model=$a ;;
  esac
done
batches=1,4,8,16,32 clients=1,4,8,16 per_client=2
if [ "$quick" = 1 ]; then batches=1,16 clients=1,16 per_client=1; fi

[ -d build ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target moeserve bench_engine bench_kernels >/dev/null
if [ ! -f "$model/config.json" ]; then
  echo "generating $model (about 6.2 GB, under a minute)" >&2
  /usr/bin/python3 tools/make_model.py "$model" --preset a3b --layers 4 >&2
fi

echo "# moeserve speed, $(date -u +%Y-%m-%d) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo
echo "Model: $model. Load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for weights in bf16 q8_0; do
  quant=()
  [ "$weights" = q8_0 ] && quant=(--quantize q8_0)
  echo
  echo "## $weights: engine"
  echo
  ./build/bench_engine "$model" --prompt-len 512 --decode-tokens 32 --batches "$batches" "${quant[@]}" 2>/dev/null | tee "$out"
  bw=$(grep -o 'read bandwidth [0-9.]*' "$out" | awk '{print $3}')
  echo
  echo "## $weights: served (HTTP, streaming chat)"
  echo
  node bench/bench_served.mjs build/moeserve "$model" --clients "$clients" --requests-per-client "$per_client" \
    --bandwidth "$bw" "${quant[@]}" 2>/dev/null
done
echo
echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
