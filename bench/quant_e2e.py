#!/usr/bin/python3
"""End-to-end quality of the --quantize schemes against the stored BF16 weights.

For N prompts of T random token ids (fixed seed), `moeserve forward --prompt-ids-file` dumps the
logits of every position once with the weights as stored and once per scheme (one model load
each); per position we take the KL divergence KL(P_bf16 || P_scheme) of the next-token
distributions (softmax in float64) and whether the two top-1 tokens agree, and report mean and
99th percentile KL and the top-1 agreement. Then `moeserve generate --prompt-file` continues G of
the prompts greedily for C tokens (ignore_eos) with each scheme, and we report the mean length
of the continuation that is identical to BF16's; and one single-stream greedy generate of 64
tokens gives each scheme's decode speed (tok/s as `generate` reports it, prefill of 8 tokens
included, so a lower bound on the decode rate).

The logits files are read one prompt at a time (memory-mapped), so memory stays at a few
prompts' logits; the temporary directory holds two files of N x T x vocab floats (5 GB for
64 x 128 at Qwen3's vocabulary).

usage (from the repository root):
  /usr/bin/python3 bench/quant_e2e.py --model DIR [--moeserve build/moeserve] [--prompts 64]
      [--positions 128] [--greedy-prompts 16] [--greedy-tokens 32] [--threads 2]
      [--schemes q8_0,q4_0,...] [--seed 100] [--tmp DIR]"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

SCHEMES = "q8_0,q4_0,q4_k_m,iq4_xs,mxfp4_moe,nvfp4,hif4"


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"quant_e2e: {' '.join(cmd[:4])} ... exited {p.returncode}: {p.stderr.strip()[-1500:]}")
    return p


def quant_args(scheme):
    return ["--quantize", scheme] if scheme else []


def forward(args, prompts_file, scheme, out):
    run([args.moeserve, "forward", "--model", args.model, "--prompt-ids-file", prompts_file, "--out", out,
         "--threads", str(args.threads)] + quant_args(scheme))


def greedy(args, jsonl, scheme):
    p = run([args.moeserve, "generate", "--model", args.model, "--prompt-file", jsonl, "--temperature", "0",
             "--threads", str(args.threads)] + quant_args(scheme))
    return [json.loads(line)["ids"] for line in p.stdout.splitlines() if line.strip()]


def decode_speed(args, scheme):
    p = run([args.moeserve, "generate", "--model", args.model, "--prompt-ids", "785,3974,13876,38835,34208,916,279,15678",
             "--max-tokens", "64", "--ignore-eos", "--ids", "--temperature", "0", "--threads", str(args.threads)]
            + quant_args(scheme))
    m = re.search(r"\(([0-9.]+) tok/s\)", p.stderr)
    return float(m.group(1)) if m else float("nan")


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def same_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--moeserve", default="build/moeserve")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--positions", type=int, default=128)
    ap.add_argument("--greedy-prompts", type=int, default=16)
    ap.add_argument("--greedy-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--schemes", default=SCHEMES)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--tmp", default=None, help="where the logits files go (default: the system's)")
    args = ap.parse_args()
    schemes = args.schemes.split(",")
    rng = np.random.default_rng(args.seed)
    prompts = [rng.integers(0, 151643, args.positions) for _ in range(args.prompts)]  # below the special ids
    kl = {s: [] for s in schemes}
    top1 = {s: [] for s in schemes}
    same = {s: [] for s in schemes}
    speed = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        pf = os.path.join(d, "prompts.txt")
        with open(pf, "w") as f:
            for ids in prompts:
                f.write(",".join(map(str, ids)) + "\n")
        gf = os.path.join(d, "greedy.jsonl")
        with open(gf, "w") as f:
            for ids in prompts[: args.greedy_prompts]:
                f.write(json.dumps({"prompt_ids": [int(i) for i in ids[:16]], "max_tokens": args.greedy_tokens,
                                    "ignore_eos": True}) + "\n")
        ref_path, q_path = os.path.join(d, "ref.f32"), os.path.join(d, "q.f32")
        forward(args, pf, None, ref_path)
        ref_greedy = greedy(args, gf, None)
        speed["bf16"] = decode_speed(args, None)
        ref_all = np.memmap(ref_path, dtype="<f4", mode="r").reshape(args.prompts, args.positions, -1)
        print(f"bf16 reference done ({time.time() - t0:.0f} s)", file=sys.stderr)
        for s in schemes:
            forward(args, pf, s, q_path)
            q_all = np.memmap(q_path, dtype="<f4", mode="r").reshape(args.prompts, args.positions, -1)
            for p in range(args.prompts):
                ref = log_softmax(ref_all[p].astype(np.float64))
                q = log_softmax(q_all[p].astype(np.float64))
                kl[s].append((np.exp(ref) * (ref - q)).sum(axis=1))
                top1[s].append(q.argmax(axis=1) == ref.argmax(axis=1))
            del q_all
            same[s] = [same_prefix(a, b) for a, b in zip(ref_greedy, greedy(args, gf, s))]
            speed[s] = decode_speed(args, s)
            print(f"{s} done ({time.time() - t0:.0f} s)", file=sys.stderr)
        del ref_all
    print(f"{args.prompts} prompts x {args.positions} positions (random token ids, seed {args.seed}), "
          f"model {args.model}; greedy: the first {args.greedy_prompts} prompts' first 16 ids, "
          f"{args.greedy_tokens} tokens; decode: one stream, 64 tokens; {args.threads} threads, "
          f"{time.time() - t0:.0f} s in all\n")
    print(f"| scheme | mean KL (nats) | p99 KL (nats) | top-1 agreement | identical greedy tokens "
          f"(mean of {args.greedy_tokens}) | decode tok/s |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| bf16 (as stored) | 0 | 0 | 100% | {args.greedy_tokens} | {speed['bf16']:.1f} |")
    for s in schemes:
        k = np.concatenate(kl[s])
        t = np.concatenate(top1[s])
        print(f"| {s} | {k.mean():.4g} | {np.percentile(k, 99):.4g} | {100 * t.mean():.1f}% | "
              f"{np.mean(same[s]):.1f} | {speed[s]:.1f} |")


if __name__ == "__main__":
    main()
