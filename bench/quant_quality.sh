#!/bin/sh
# The reconstruction-error table of docs/QUANTIZATION.md in one command: builds
# bench_quant_quality (Release) and runs it on N(0,1), Student-t(3) and the weight tensors of the
# one-layer a3b checkpoint (made by the test fixtures, or by tools/make_model.py; see the doc).
#   bench/quant_quality.sh [MODEL_DIR] [extra bench_quant_quality options]
set -e
cd "$(dirname "$0")/.."
model=${1:-build/models/ref-a3b-1}
[ $# -gt 0 ] && shift
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target bench_quant_quality >/dev/null
if [ -f "$model/model.safetensors" ]; then
    exec build/bench_quant_quality --model "$model" "$@"
fi
echo "no $model/model.safetensors: synthetic rows only" >&2
exec build/bench_quant_quality "$@"
