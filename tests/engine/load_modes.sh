#!/bin/sh
# --load-mode copy (the default: the mapping replaced by anonymous memory, 64 MB at a time) and
# mmap serve the same bytes: greedy output identical, on a checkpoint of several chunks and on a
# split GGUF (one mapping per part); a bad mode is one line and exit 1.
#   load_modes.sh MOESERVE MAKE_GGUF_PY MODEL_DIR WORK_DIR
set -eu
ms=$1 make_gguf=$2 model=$3 work=$4
mkdir -p "$work"
/usr/bin/python3 "$make_gguf" "$model" "$work/m.gguf" --type q8_0 --split 2 >/dev/null
size=$(du -sb "$model" | cut -f1)
[ "$size" -gt $((128 << 20)) ] || { echo "load_modes: $model is $size bytes, under 3 chunks"; exit 1; }
for m in "$model" "$work/m-00001-of-00002.gguf"; do
  "$ms" generate --model "$m" --prompt "The quick brown fox" --max-tokens 24 --ids --load-mode copy >"$work/copy.txt" 2>"$work/copy.err"
  "$ms" generate --model "$m" --prompt "The quick brown fox" --max-tokens 24 --ids --load-mode mmap >"$work/mmap.txt" 2>"$work/mmap.err"
  if grep -q 'out of memory' "$work/copy.err"; then cat "$work/copy.err"; exit 1; fi
  [ -s "$work/copy.txt" ] || { echo "load_modes: no output from $m"; cat "$work/copy.err"; exit 1; }
  cmp "$work/copy.txt" "$work/mmap.txt" || { echo "load_modes: copy and mmap differ on $m"; exit 1; }
  echo "load_modes: $m: copy = mmap ($(wc -w <"$work/copy.txt") words)"
done
if "$ms" generate --model "$model" --prompt hi --load-mode bogus >/dev/null 2>"$work/bad.err"; then
  echo "load_modes: --load-mode bogus accepted"; exit 1
fi
[ "$(wc -l <"$work/bad.err")" -eq 1 ] && grep -q "expects copy or mmap, got 'bogus'" "$work/bad.err" || { cat "$work/bad.err"; exit 1; }
echo "load_modes: a bad mode: $(cat "$work/bad.err")"
rm -rf "$work"
