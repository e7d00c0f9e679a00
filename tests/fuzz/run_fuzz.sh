#!/bin/sh
# Runs one libFuzzer harness for SECONDS on a fresh copy of its committed corpus (the committed
# corpus is never written to). A finding (crash, leak, failed check, timeout, OOM) fails with the
# input saved as WORKDIR/crash-*, leak-*, timeout-* or oom-*.
#   run_fuzz.sh EXE CORPUS_DIR WORKDIR SECONDS [DICT]
set -eu
exe=$1 corpus=$2 work=$3 seconds=$4 dict=${5:-}
if [ -n "${MS_FUZZ_MODEL_DIR:-}" ] && [ ! -f "$MS_FUZZ_MODEL_DIR/tokenizer.json" ]; then
  echo "skipped: no tokenizer at $MS_FUZZ_MODEL_DIR (run npm ci)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work/corpus"
cp "$corpus"/* "$work/corpus/"
set -- -max_total_time="$seconds" -error_exitcode=1 -timeout=20 -rss_limit_mb=2560 -max_len=16384 -print_final_stats=1 \
       -artifact_prefix="$work/"
[ -n "$dict" ] && set -- "$@" -dict="$dict"
exec "$exe" "$@" "$work/corpus"
