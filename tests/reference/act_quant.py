#!/usr/bin/python3
"""The reference forward (qwen3_ref.Model) with the matmul inputs quantized as an integer-dot
engine quantizes them: what moeserve's kernels and llama.cpp's CPU backend compute for quantized
weights, as opposed to the exact product with the dequantized weights.

Both engines quantize the input of a matmul whose weight is a quantized block format before the
integer dot: to Q8_K blocks (256 values, float32 d = max|x| / 127, q = round-half-even(x / d))
for the K-quants (Q2_K..Q6_K, IQ4_XS), to 32-value blocks (d = max|x| / 127, q likewise) for
Q8_0 and the other 32-blocks. The weights are used exactly as dequantized (qwen3_ref on a
checkpoint of the dequantized GGUF), so what remains between an engine and this reference is
float32 accumulation -- and, where an activation lies within that error of a rounding boundary,
one quantum of difference (see compare_logits.py's Q8_0 mode for that effect).

Why it matters: on the small random test models a handful of positions have MoE router top-k
margins of 1e-3 or less; the 0.3% error of Q8_K activations there flips an expert, moving those
positions' log-probabilities by up to 2 nats in BOTH engines alike (measured on gguf-w256,
q4_k_m from `moeserve quantize`: llama.cpp and moeserve within 0.12 nats of each other at every
position, both 1.9 nats from the float reference at position 3). Quantizing the inputs here as
they do makes the comparison exact up to such boundary cases instead of luck-dependent.

Library: ActQuantModel(deq_dir, kinds) with kinds {hf weight name: "q8_k" | "q8_0"} (names not
listed get float inputs: norms, the router, float weights); kinds_from_gguf(...) builds it.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_ref  # noqa: E402

K_QUANTS = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}
FLOATS = {"F32", "F16", "BF16"}


def quantize_rows(x, block):
    """x [T, n] float -> the float32 values of its activation blocks of `block` values."""
    x = np.asarray(x, dtype=np.float32)
    T, n = x.shape
    xb = x.reshape(T, n // block, block)
    d = (np.abs(xb).max(axis=-1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint((xb * inv[..., None]).astype(np.float32)), -127, 127)
    return (q * d[..., None]).reshape(T, n)


def act_kind(type_name):
    """The activation blocks an engine feeds a weight of ggml type `type_name`, or None."""
    if type_name in FLOATS:
        return None
    return "q8_k" if type_name in K_QUANTS else "q8_0"


def kinds_from_gguf(plan, types):
    """plan: make_gguf.tensor_plan(cfg); types {gguf name: ggml type name}."""
    kinds = {}
    for gname, hf_names, _ in plan:
        k = act_kind(types[gname])
        if k and types[gname] not in FLOATS and not gname.endswith(("_norm.weight", "ffn_gate_inp.weight")):
            for n in hf_names:
                kinds[n] = k
    return kinds


class ActQuantModel(qwen3_ref.Model):
    def __init__(self, model_dir, kinds, precision="float64"):
        super().__init__(model_dir, precision=precision)
        self.kinds = kinds
        if self.cfg.tie and "model.embed_tokens.weight" in kinds:
            kinds.setdefault("lm_head.weight", kinds["model.embed_tokens.weight"])

    def _q(self, x, name):
        k = self.kinds.get(name)
        if k is None:
            return x
        return quantize_rows(x, 256 if k == "q8_k" else 32).astype(x.dtype)

    def linear(self, x, name, pos=None):
        return super().linear(self._q(x, name), name, pos)

    def head(self, h, chunk_rows=16384):
        key = "lm_head.weight" if not self.cfg.tie else "model.embed_tokens.weight"
        k = self.kinds.get("lm_head.weight", self.kinds.get(key))
        if k is not None:
            h = quantize_rows(h, 256 if k == "q8_k" else 32).astype(h.dtype)
        return super().head(h, chunk_rows)
