#!/bin/sh
# A text holding U+0000 is refused by `moeserve tokenize` with a clear error (exit 1), raw or as a
# \u0000 escape, instead of being cut at the NUL; a text with an escaped backslash before "u0000"
# (no NUL) is still encoded. Usage: nul_refused.sh TOK_CLI MODEL_DIR
set -u
cli=$1 model=$2
out=$(printf '%s\n' '{"text":"nul\u0000inside"}' | "$cli" tokenize --model "$model"); rc=$?
[ $rc -eq 1 ] || { echo "escaped NUL: exit $rc, want 1: $out"; exit 1; }
echo "$out" | grep -q '"error":"the line holds U+0000' || { echo "escaped NUL: $out"; exit 1; }
out=$(printf '{"text":"nul\000inside"}\n' | "$cli" tokenize --model "$model"); rc=$?
[ $rc -eq 1 ] || { echo "raw NUL: exit $rc, want 1: $out"; exit 1; }
echo "$out" | grep -q 'U+0000' || { echo "raw NUL: $out"; exit 1; }
out=$(printf '%s\n' '{"text":"a\\u0000b"}' | "$cli" tokenize --model "$model"); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q '"ids":\[' || { echo "escaped backslash: exit $rc: $out"; exit 1; }
echo ok
