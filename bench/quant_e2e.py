#!/usr/bin/python3
"""End-to-end quality of the --quantize schemes against the stored BF16 weights: for N prompts of
T random token ids (fixed seed), `moeserve forward` dumps the logits of every position once with
the weights as stored and once per scheme; per position we take the KL divergence
KL(P_bf16 || P_scheme) of the next-token distributions (softmax in float64) and whether the two
top-1 tokens agree, and report mean and 99th percentile KL and the top-1 agreement.

usage (from the repository root):
  /usr/bin/python3 bench/quant_e2e.py --model DIR [--moeserve build/moeserve] [--prompts 2]
      [--positions 128] [--threads 2] [--schemes q8_0,q4_0,...] [--seed 100]"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

SCHEMES = "q8_0,q4_0,q4_k_m,iq4_xs,mxfp4_moe,nvfp4,hif4"


def forward(args, ids, scheme, out):
    cmd = [args.moeserve, "forward", "--model", args.model, "--prompt-ids", ",".join(map(str, ids)),
           "--out", out, "--threads", str(args.threads)]
    if scheme:
        cmd += ["--quantize", scheme]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return np.fromfile(out, dtype="<f4").reshape(len(ids), -1).astype(np.float64)


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--moeserve", default="build/moeserve")
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--positions", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--schemes", default=SCHEMES)
    ap.add_argument("--seed", type=int, default=100)
    args = ap.parse_args()
    schemes = args.schemes.split(",")
    rng = np.random.default_rng(args.seed)
    prompts = [rng.integers(0, 151643, args.positions) for _ in range(args.prompts)]  # below the special ids
    kl = {s: [] for s in schemes}
    top1 = {s: [] for s in schemes}
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.bin")
        for p, ids in enumerate(prompts):
            ref = log_softmax(forward(args, ids, None, out))
            ref_top = ref.argmax(axis=1)
            for s in schemes:
                q = log_softmax(forward(args, ids, s, out))
                kl[s].append((np.exp(ref) * (ref - q)).sum(axis=1))
                top1[s].append(q.argmax(axis=1) == ref_top)
                print(f"prompt {p} {s} done", file=sys.stderr)
    print(f"{args.prompts} prompts x {args.positions} positions (random token ids, seed {args.seed}), "
          f"model {args.model}\n")
    print("| scheme | mean KL (nats) | p99 KL (nats) | top-1 agreement |")
    print("|---|---:|---:|---:|")
    for s in schemes:
        k = np.concatenate(kl[s])
        t = np.concatenate(top1[s])
        print(f"| {s} | {k.mean():.4g} | {np.percentile(k, 99):.4g} | {100 * t.mean():.1f}% |")


if __name__ == "__main__":
    main()
