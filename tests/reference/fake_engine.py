#!/usr/bin/python3
"""Stands in for `moeserve forward` so compare_logits.py can be tested without the C engine:
runs the reference in float32 (a float32 implementation with a different summation order than
the float64 reference) and writes its logits in the engine's format.

usage: fake_engine.py forward --model DIR --prompt-ids IDS --out FILE [--quantize q8_0]
FAKE_ENGINE_PERTURB=X adds X * std(logits) to one logit (the harness must then fail when X is
above its tolerance); FAKE_ENGINE_BF16=1 rounds the final hidden state to bf16 first (a
bf16-activation engine, which the harness must reject).
--quantize q8_0 runs the reference's Q8_0 mode (in float32). FAKE_ENGINE_Q8_FAULT=NAME makes it
a Q8_0 engine with one of the bugs below, which compare_logits.py --quantize q8_0 must reject.
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


def _round_half_away(v):
    return np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))


def _quantize_variant(block=qwen3_ref.Q8_BLOCK, divisor=127, rounding=np.rint, divide=False):
    """qwen3_ref.q8_0_quantize with one part of the format changed."""
    def quantize(x):
        x = np.asarray(x, dtype=np.float32)
        bs = block if x.shape[-1] % block == 0 else qwen3_ref.Q8_BLOCK
        xb = x.reshape(x.shape[:-1] + (x.shape[-1] // bs, bs))
        d = np.max(np.abs(xb), axis=-1) / np.float32(divisor)
        with np.errstate(divide="ignore", invalid="ignore"):
            if divide:
                v = np.where(d[..., None] != 0, xb / d[..., None], np.float32(0))
            else:
                inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
                v = xb * inv[..., None]
        q = rounding(v)
        if bs != qwen3_ref.Q8_BLOCK:  # hand back 32-blocks with the (shared) scale repeated
            r = bs // qwen3_ref.Q8_BLOCK
            d = np.repeat(d, r, axis=-1)
            q = q.reshape(x.shape[:-1] + (x.shape[-1] // qwen3_ref.Q8_BLOCK, qwen3_ref.Q8_BLOCK))
        return d, q
    return quantize


def _quantized_with_router(orig):
    def quantized(self, name):
        if self.quantize and name.endswith("mlp.gate.weight"):
            return self.ckpt.shape(name)[-1] % qwen3_ref.Q8_BLOCK == 0
        return orig(self, name)
    return quantized


def apply_q8_fault(name):
    """Patches the reference's Q8_0 mode into a buggy engine."""
    R = qwen3_ref
    if name == "no-act-quant":  # matmul inputs left in float (weights still Q8_0)
        R.q8_0_matmul = lambda x, wb, dtype: (np.asarray(x, dtype=np.float64)
                                              @ R.q8_0_dequant(*wb, np.float64).T).astype(dtype)
    elif name == "f32-scale":  # the weight scale kept in float32 instead of float16
        R.q8_0_weight_blocks = R.q8_0_quantize
    elif name == "scale-128":  # d = amax / 128
        R.q8_0_quantize = _quantize_variant(divisor=128)
    elif name == "block-64":  # one scale per 64 values
        R.q8_0_quantize = _quantize_variant(block=64)
    elif name == "round-half-away":  # roundf instead of round-half-even
        R.q8_0_quantize = _quantize_variant(rounding=_round_half_away)
    elif name == "x-over-d":  # x / d instead of x * (1 / d)
        R.q8_0_quantize = _quantize_variant(divide=True)
    elif name == "trunc":  # truncation instead of rounding
        R.q8_0_quantize = _quantize_variant(rounding=np.trunc)
    elif name == "router":  # the MoE router quantized too
        R.Model.quantized = _quantized_with_router(R.Model.quantized)
    else:
        sys.exit(f"fake_engine: unknown FAKE_ENGINE_Q8_FAULT {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["forward"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quantize", choices=["none", "q8_0"], default="none")
    args = ap.parse_args()
    if os.environ.get("FAKE_ENGINE_Q8_FAULT"):
        apply_q8_fault(os.environ["FAKE_ENGINE_Q8_FAULT"])
    model = qwen3_ref.Model(args.model, precision="float32", quantize=args.quantize)
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
