# Python's verdicts for tests/grammar/regex_reference.mjs: reads [[regex, [texts...]], ...] as
# JSON on stdin, prints [[bool...], ...]: re.fullmatch with re.ASCII (guided_regex's semantics:
# \d \w \s are ASCII, as vLLM's regex backends read them).
import json
import re
import sys

cases = json.load(sys.stdin)
out = []
for regex, texts in cases:
    r = re.compile(regex, re.ASCII)
    out.append([r.fullmatch(t) is not None for t in texts])
json.dump(out, sys.stdout)
