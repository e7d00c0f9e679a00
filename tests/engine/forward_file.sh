#!/bin/sh
# moeserve forward --prompt-ids-file: each line's logits, one after the other, are byte for byte
# those of that prompt alone (--prompt-ids), after one model load; a file with no prompt, a bad
# line and both flags at once are one line and exit 2.
#   forward_file.sh MOESERVE MODEL_DIR WORK_DIR
set -eu
ms=$1 model=$2 work=$3
mkdir -p "$work"
a=151644,872,198,3838,374,279,6722
b=785,3974,13876,38835,34208,916,279,15678,13,198,13,13
printf '%s\n\n%s\n%s\n' "$a" "$b" "$a" >"$work/prompts.txt"
"$ms" forward --model "$model" --prompt-ids-file "$work/prompts.txt" --out "$work/all.f32" --threads 2
"$ms" forward --model "$model" --prompt-ids "$a" --out "$work/a.f32" --threads 2
"$ms" forward --model "$model" --prompt-ids "$b" --out "$work/b.f32" --threads 2
cat "$work/a.f32" "$work/b.f32" "$work/a.f32" >"$work/want.f32"
cmp "$work/all.f32" "$work/want.f32" || { echo "forward_file: the file's logits differ from each prompt alone"; exit 1; }
echo "forward_file: 3 prompts from a file = each alone ($(wc -c <"$work/all.f32") bytes)"
bad() { # bad LABEL ARGS...: exit 2 and one line on stderr
  label=$1; shift
  if "$ms" forward --model "$model" --out "$work/x.f32" "$@" 2>"$work/err.txt"; then echo "forward_file: $label accepted"; exit 1; fi
  [ "$(wc -l <"$work/err.txt")" -eq 1 ] || { echo "forward_file: $label:"; cat "$work/err.txt"; exit 1; }
  echo "forward_file: $label: $(cat "$work/err.txt")"
}
printf '\n\n' >"$work/empty.txt"
printf '1,2,3\n1,x\n' >"$work/badline.txt"
bad "an empty file" --prompt-ids-file "$work/empty.txt"
bad "a bad line" --prompt-ids-file "$work/badline.txt"
bad "a missing file" --prompt-ids-file "$work/nope.txt"
bad "both flags" --prompt-ids 1,2 --prompt-ids-file "$work/prompts.txt"
rm -rf "$work"
