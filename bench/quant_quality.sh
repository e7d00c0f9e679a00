#!/bin/sh
# The reconstruction-error table of docs/QUANTIZATION.md in one command: builds
# bench_quant_quality (Release) and runs it on N(0,1), Student-t(3) and the weight tensors of the
# one-layer a3b checkpoint. Without MODEL_DIR that is build/models/ref-a3b-1, made here the way
# the test fixture ref_model_a3b-1 makes it if missing (tools/make_model.py, 2.5 GB, a few
# minutes once; tests/reference/ensure_model.py skips it when up to date).
#   bench/quant_quality.sh [MODEL_DIR [extra bench_quant_quality options]]
set -e
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
    model=$1
    shift
else
    model=build/models/ref-a3b-1
    /usr/bin/python3 tests/reference/ensure_model.py "$model" --preset a3b --layers 1 >&2
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target bench_quant_quality >/dev/null
exec build/bench_quant_quality --model "$model" "$@"
