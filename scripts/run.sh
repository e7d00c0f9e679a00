#!/usr/bin/env bash
# README's first command: install, build, and run moeserve on a model. With no MOESERVE_MODEL,
# a small random-weight model with the real Qwen3 tokenizer is generated under models/tiny.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
MODEL=${MOESERVE_MODEL:-models/tiny}
if [ ! -f "$MODEL/config.json" ]; then
  /usr/bin/python3 tools/make_model.py "$MODEL" --preset tiny
fi
exec ./build/moeserve serve --model "$MODEL"
