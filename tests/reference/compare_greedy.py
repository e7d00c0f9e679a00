#!/usr/bin/python3
"""End-to-end check: `moeserve generate` greedy ids against the reference's greedy decode.

The engine generates incrementally (prefill, then one token at a time with its KV cache); the
reference recomputes the whole sequence at every step, so agreement also checks the engine's
cached decode path. Both stop at an end-of-sequence id (generation_config.json / config.json).

usage: compare_greedy.py MOESERVE --model DIR (--prompt-ids IDS | --random N [--seed S])
                         [--max-tokens 24]
A divergence at a step where the reference's top-two logits are within 1e-4 x std of each
other is reported as a near-tie (legitimate, exit 0); any other divergence fails (exit 1).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_ref  # noqa: E402

NEAR_TIE = 1e-4  # x std of the step's logits: the max-error bound of compare_logits.py


def eos_ids(model_dir):
    ids = set()
    for fname in ("generation_config.json", "config.json"):
        try:
            with open(os.path.join(model_dir, fname)) as f:
                v = json.load(f).get("eos_token_id")
        except OSError:
            continue
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, list):
            ids.update(int(x) for x in v)
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("moeserve")
    ap.add_argument("--model", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--prompt-ids")
    g.add_argument("--random", type=int, metavar="N")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=24)
    args = ap.parse_args()

    model = qwen3_ref.Model(args.model)
    if args.random:
        rng = np.random.default_rng(args.seed)
        prompt = [int(x) for x in rng.integers(0, model.cfg.vocab, args.random)]
    else:
        prompt = qwen3_ref.parse_ids(args.prompt_ids)

    cmd = [args.moeserve, "generate", "--model", args.model,
           "--prompt-ids", ",".join(map(str, prompt)), "--max-tokens", str(args.max_tokens),
           "--temperature", "0", "--ids"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.stdout.write(r.stderr.decode(errors="replace")[-4000:])
        print(f"FAIL: `moeserve generate` exited with status {r.returncode}")
        return 2
    try:
        engine = [int(t) for t in r.stdout.decode().replace(",", " ").split()]
    except ValueError:
        print(f"FAIL: cannot parse engine output {r.stdout[:200]!r}")
        return 2

    stop = eos_ids(args.model)
    name = "model.embed_tokens.weight" if model.cfg.tie else "lm_head.weight"
    head = model.ckpt.get(name, model.dtype)
    seq = list(prompt)
    ref = []
    for step in range(args.max_tokens):
        lg = (model.hidden_states(seq)[-1:] @ head.T)[0]
        top2 = np.argsort(-lg, kind="stable")[:2]
        nxt = int(top2[0])
        if step < len(engine) and engine[step] != nxt:
            gap = float(lg[top2[0]] - lg[top2[1]])
            if gap <= NEAR_TIE * float(lg.std()) and engine[step] == int(top2[1]):
                print(f"near-tie at step {step}: reference {nxt}, engine {engine[step]}, "
                      f"gap {gap:.3g}; agreed on {step} tokens before it")
                print("PASS (near-tie)")
                return 0
            print(f"reference: {ref + [nxt]}")
            print(f"engine:    {engine[:step + 1]}")
            print(f"FAIL: greedy ids differ at step {step} (reference top-2 gap {gap:.3g})")
            return 1
        ref.append(nxt)
        seq.append(nxt)
        if nxt in stop:
            break
    if engine != ref:
        print(f"reference: {ref}\nengine:    {engine}")
        print(f"FAIL: engine generated {len(engine)} ids, reference {len(ref)}")
        return 1
    print(f"prompt {len(prompt)} tokens; {len(ref)} greedy ids agree: {' '.join(map(str, ref))}")
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
