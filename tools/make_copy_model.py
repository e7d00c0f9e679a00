#!/usr/bin/python3
"""Writes a Qwen3-MoE checkpoint (any make_model.py preset and depth, e.g. the real a3b widths)
whose weights are CONSTRUCTED so that greedy decoding copies text: it is a bigram model over a
fixed cycle of distinct tokens, the token after c[i] being c[i+1] (and after the last, c[0]),
whatever the context. Every layer still runs at full cost (attention, router, the 8 chosen
experts), but the attention output and expert down projections are zero, so the residual stream
is the token's embedding and lm_head reads the next token off it. Prompts that contain a stretch
of the cycle are then continued with that stretch: a workload whose output repeats its prompt,
for benchmarking speculative decoding by prompt lookup (bench/spec_ngram.sh).

usage: make_copy_model.py OUT_DIR [--preset a3b] [--layers N] [--dtype bf16] [--cycle 400]

Besides the checkpoint (make_model.py's layout and tokenizer), OUT_DIR gets two prompt sets,
JSON arrays of {"prompt_ids": [...], "max_tokens": N}:
  copy_prompts.json         random text, a 192-token stretch of the cycle, random text, then the
                            first 4 tokens of the stretch again: the answer is the stretch
  adversarial_prompts.json  random text, then 64 pairs c[i] c[i+1] each followed by a random
                            token, then the first pair's c[i]: the answer walks the pairs, and
                            every 2-gram the drafter matches predicts the random token after it,
                            which the model never writes (drafts all rejected)
and cycle.json (the cycle's token ids). --verify checks the bigram rule in numpy on every cycle
token (argmax of the logits from its embedding alone) and prints the smallest margin.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model  # noqa: E402

LM_SCALE = 0.01   # logit of the next cycle token: about LM_SCALE x hidden_size (20 at 2048)
FIRST_ID, LAST_ID = 1000, 150000  # ordinary vocabulary: no special or control tokens


def constructed(cfg, cycle, seed):
    """embed_tokens (random, RMS 1 rows) and lm_head (row c[i+1] = LM_SCALE x embedding of c[i];
    every other row zero), float32."""
    V, H = cfg["vocab_size"], cfg["hidden_size"]
    rng = np.random.default_rng([seed, 0xC0B1])
    embed = rng.standard_normal((V, H), dtype=np.float32)
    lm = np.zeros((V, H), np.float32)
    nxt = np.roll(cycle, -1)
    lm[nxt] = LM_SCALE * embed[cycle]
    return embed, lm


def prompt_sets(cycle, seed):
    rng = np.random.default_rng([seed, 0x9A7])
    rand = lambda n: [int(x) for x in rng.integers(FIRST_ID, LAST_ID, n)]
    L = len(cycle)
    copy, adversarial = [], []
    for k in range(8):
        start = (k * 47) % L
        stretch = [int(cycle[(start + i) % L]) for i in range(192)]
        copy.append({"prompt_ids": rand(48) + stretch + rand(16) + stretch[:4], "max_tokens": 128})
        pairs = []
        for i in range(64):
            a, b = int(cycle[(start + i) % L]), int(cycle[(start + i + 1) % L])
            pairs += [a, b] + rand(1)
        adversarial.append({"prompt_ids": rand(48) + pairs + [int(cycle[start])], "max_tokens": 128})
    return copy, adversarial


def verify(cfg, embed, lm, cycle):
    worst = np.inf
    norm_w = np.ones(cfg["hidden_size"], np.float32)
    for i, x in enumerate(cycle):
        h = embed[x] / np.sqrt(np.mean(embed[x] ** 2) + cfg["rms_norm_eps"]) * norm_w
        logits = lm @ h
        top2 = np.argsort(logits)[-2:]
        want = cycle[(i + 1) % len(cycle)]
        if top2[1] != want:
            sys.exit(f"make_copy_model: after {x} the argmax is {top2[1]}, not {want}")
        worst = min(worst, logits[top2[1]] - logits[top2[0]])
    print(f"verified: every cycle token's argmax is its successor (smallest margin {worst:.2f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--preset", choices=sorted(make_model.PRESETS), default="a3b")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--dtype", choices=sorted(make_model.DTYPES), default="bf16")
    ap.add_argument("--cycle", type=int, default=400, help="distinct tokens in the cycle")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng([args.seed, 0xC1C])
    cycle = rng.choice(np.arange(FIRST_ID, LAST_ID), size=args.cycle, replace=False)

    # make_model writes everything; its tensor writer is swapped for ours on the constructed names
    margs = ["make_model.py", args.out_dir, "--preset", args.preset, "--dtype", args.dtype,
             "--seed", str(args.seed)] + (["--layers", str(args.layers)] if args.layers else [])
    cfg_holder = {}
    saved_write, saved_specs = make_model.write_tensor, make_model.tensor_specs

    def specs(cfg):
        cfg_holder["cfg"] = cfg
        return saved_specs(cfg)

    def write_tensor(f, name, shape, kind, std, seed, dtype):
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            if "embed" not in cfg_holder:
                cfg_holder["embed"], cfg_holder["lm"] = constructed(cfg_holder["cfg"], cycle, args.seed)
            x = cfg_holder["embed"] if name.startswith("model.") else cfg_holder["lm"]
            for r0 in range(0, shape[0], 8192):
                f.write(make_model.to_storage(x[r0:r0 + 8192].ravel(), dtype))
        elif name.endswith(("o_proj.weight", "down_proj.weight")):
            f.write(make_model.to_storage(np.zeros(int(np.prod(shape)), np.float32), dtype))
        elif name == "model.norm.weight":
            f.write(make_model.to_storage(np.ones(shape, np.float32), dtype))
        else:
            saved_write(f, name, shape, kind, std, seed, dtype)

    make_model.write_tensor, make_model.tensor_specs = write_tensor, specs
    sys.argv = margs
    try:
        make_model.main()
    finally:
        make_model.write_tensor, make_model.tensor_specs = saved_write, saved_specs
    if "embed" not in cfg_holder:
        sys.exit("make_copy_model: the checkpoint has no lm_head (tied embeddings are not supported)")
    copy, adversarial = prompt_sets(cycle, args.seed)
    for name, data in (("copy_prompts.json", copy), ("adversarial_prompts.json", adversarial),
                       ("cycle.json", [int(c) for c in cycle])):
        with open(os.path.join(args.out_dir, name), "w") as f:
            json.dump(data, f)
    if args.verify:
        verify(cfg_holder["cfg"], cfg_holder["embed"], cfg_holder["lm"], cycle)


if __name__ == "__main__":
    main()
