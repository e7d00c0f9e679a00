#!/usr/bin/python3
"""Accuracy cost of --quantize q8_0 (and of MOESERVE_BF16_ACTIVATIONS=1) against the stored BF16
weights with float activations, on the reference prompts.

usage: bench/q8_accuracy.py MOESERVE MODEL_DIR [--max-tokens 32]

For each prompt: `moeserve forward` logits of every position with and without Q8_0 (max and
RMS logit error, relative to the BF16 logits' standard deviation; top-1 agreement per position),
then greedy generation (`moeserve generate --ids --ignore-eos`, MOESERVE_QUANTIZE=q8_0 or not):
the number of leading tokens that agree. Prints a Markdown table."""
import os
import subprocess
import sys
import tempfile

import numpy as np

PROMPTS = {
    "CHAT": "151644,872,198,3838,374,279,6722,315,9625,30,151645,198,151644,77091,198",
    "CODE": "750,75698,1445,982,262,421,308,366,220,17,510,286,470,308,198,262,470,75698,1445,481,220,16,8,488,"
            "75698,1445,481,220,17,340",
    "FOX8": "785,3974,13876,38835,34208,916,279,15678",
}


VARIANTS = {"none": {}, "q8_0": {"MOESERVE_QUANTIZE": "q8_0"}, "bf16-act": {"MOESERVE_BF16_ACTIVATIONS": "1"}}


def env_for(variant):
    env = dict(os.environ, MOESERVE_QUANTIZE="none", MOESERVE_BF16_ACTIVATIONS="0")
    env.update(VARIANTS[variant])
    return env


def forward(exe, model, ids, variant, vocab):
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        cmd = [exe, "forward", "--model", model, "--prompt-ids", ids, "--out", f.name]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL, env=env_for(variant))
        return np.fromfile(f.name, dtype=np.float32).reshape(-1, vocab)


def greedy(exe, model, ids, variant, n):
    env = env_for(variant)
    out = subprocess.run([exe, "generate", "--model", model, "--prompt-ids", ids, "--max-tokens", str(n), "--ids",
                          "--ignore-eos"], check=True, env=env, capture_output=True, text=True).stdout
    return [int(t) for t in out.replace(",", " ").split()]


def main():
    exe, model = sys.argv[1], sys.argv[2]
    n = int(sys.argv[sys.argv.index("--max-tokens") + 1]) if "--max-tokens" in sys.argv else 32
    import json
    vocab = json.load(open(os.path.join(model, "config.json")))["vocab_size"]
    print("| variant | prompt | positions | max abs logit error | RMS error / logit std | top-1 agreement |"
          " greedy tokens agreeing |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for variant in ("q8_0", "bf16-act"):
        for name, ids in PROMPTS.items():
            a = forward(exe, model, ids, "none", vocab)
            b = forward(exe, model, ids, variant, vocab)
            err = b - a
            rel = np.sqrt((err ** 2).mean()) / a.std()
            top1 = (a.argmax(1) == b.argmax(1)).mean()
            ga, gb = greedy(exe, model, ids, "none", n), greedy(exe, model, ids, variant, n)
            agree = next((i for i, (x, y) in enumerate(zip(ga, gb)) if x != y), min(len(ga), len(gb)))
            print(f"| {variant} | {name} | {a.shape[0]} | {np.abs(err).max():.4f} | {rel:.4f} | {top1 * 100:.0f}% |"
                  f" {agree} / {len(ga)} |")


if __name__ == "__main__":
    main()
