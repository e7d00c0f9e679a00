#!/usr/bin/python3
"""Stands in for `moeserve forward` so compare_logits.py can be tested without the C engine:
runs the reference in float32 (a float32 implementation with a different summation order than
the float64 reference) and writes its logits in the engine's format.

usage: fake_engine.py forward --model DIR --prompt-ids IDS --out FILE
FAKE_ENGINE_PERTURB=X adds X * std(logits) to one logit (the harness must then fail when X is
above its tolerance); FAKE_ENGINE_BF16=1 rounds the final hidden state to bf16 first (a
bf16-activation engine, which the harness must reject).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_ref  # noqa: E402


def to_bf16(x):
    u = np.asarray(x, dtype=np.float32).view(np.uint32)
    u = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000))
    return u.view(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["forward"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = qwen3_ref.Model(args.model, precision="float32")
    ids = qwen3_ref.parse_ids(args.prompt_ids)
    if os.environ.get("FAKE_ENGINE_BF16"):
        h = to_bf16(model.hidden_states(ids))
        name = "model.embed_tokens.weight" if model.cfg.tie else "lm_head.weight"
        lg = h @ model.ckpt.get(name, np.float32).T
    else:
        lg = model.logits(ids)
    x = float(os.environ.get("FAKE_ENGINE_PERTURB", "0"))
    if x:
        lg[len(ids) // 2, 1234] += x * lg.std()
    lg.astype("<f4").tofile(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
