#!/usr/bin/python3
"""`moeserve generate --prompt-file` submits every line at once; its answers must equal a
one-at-a-time run (--max-num-seqs 1) line for line, greedy and seeded alike, with the prefix
cache reporting hits for lines that share a prefix.

usage: test_generate_batch.py MOESERVE MODEL_DIR WORK_DIR
"""
import json
import os
import random
import subprocess
import sys

moeserve, model, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
rnd = random.Random(5)
shared = [rnd.randrange(150000) for _ in range(40)]
lines = [
    {"prompt": "The capital of France is", "max_tokens": 12},
    {"prompt": "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "max_tokens": 10},
    {"prompt_ids": shared + [1, 2, 3], "max_tokens": 9},
    {"prompt_ids": shared + [4, 5], "max_tokens": 7},
    {"prompt": "def fib(n):", "max_tokens": 15, "temperature": 0.8, "top_k": 50, "seed": 7},
    {"prompt": "数学是", "max_tokens": 8, "temperature": 1.0, "top_p": 0.9, "seed": 3, "ignore_eos": True},
    {"prompt_ids": [rnd.randrange(150000) for _ in range(90)], "max_tokens": 20, "repetition_penalty": 1.3},
    {"messages": [{"role": "user", "content": "Hi!"}], "max_tokens": 6},
]
path = os.path.join(work, "prompts.jsonl")
with open(path, "w") as f:
    for ln in lines:
        f.write(json.dumps(ln, ensure_ascii=False) + "\n")


def run(*extra):
    p = subprocess.run([moeserve, "generate", "--model", model, "--prompt-file", path, *extra],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"generate failed ({p.returncode}): {p.stderr}")
    return [json.loads(x) for x in p.stdout.splitlines()]


batched = run("--max-num-seqs", "8", "--max-num-batched-tokens", "32")
alone = run("--max-num-seqs", "1")
failures = 0
for i, (b, a) in enumerate(zip(batched, alone)):
    same = b["ids"] == a["ids"] and b["text"] == a["text"] and b["finish_reason"] == a["finish_reason"]
    print(f"{'ok  ' if same else 'FAIL'} line {i + 1}: {len(b['ids'])} tokens, {b['finish_reason']}, "
          f"cached {b['cached_tokens']}/{b['prompt_tokens']}")
    failures += not same
    if b["completion_tokens"] != len(b["ids"]) + (b["finish_reason"] == "stop"):
        print(f"FAIL line {i + 1}: completion_tokens {b['completion_tokens']} vs {len(b['ids'])} ids")
        failures += 1
if len(batched) != len(lines) or len(alone) != len(lines):
    print("FAIL: wrong number of output lines")
    failures += 1
# one-at-a-time, the second line sharing the 40-token prefix hits the cache for 32 tokens
if alone[3]["cached_tokens"] != 32:
    print(f"FAIL: shared prefix cached {alone[3]['cached_tokens']} tokens, expected 32")
    failures += 1
print(f"{len(lines) - failures if failures <= len(lines) else 0} passed, {failures} failed")
sys.exit(1 if failures else 0)
