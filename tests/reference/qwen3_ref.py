#!/usr/bin/python3
"""Plain-numpy reference forward pass for Qwen3-MoE (Qwen3MoeForCausalLM) and dense Qwen3
(Qwen3ForCausalLM) checkpoints in the Hugging Face layout.

Written for clarity, independently of the C engine, following the semantics of Hugging Face
transformers (modeling_qwen3_moe.py, modeling_qwen3.py, modeling_rope_utils.py). The C engine's
forward pass is tested against it (tests/reference/compare_logits.py).

Precision: everything is computed in float64 by default (weights are decoded exactly from
BF16/F16/F32 and widened). A float64 reference is closer to the exact result of the model on its
stored weights than any float32 implementation, so the difference measured against a float32
engine is the engine's own rounding error rather than the sum of two float32 errors, and the
tolerance can be reasoned about from float32 rounding alone. `--precision float32` runs the same
code in float32 (as HF does for a float32 model); the difference between the two modes is a
measured estimate of how far an honest float32 implementation drifts from the exact result.

Points where HF's behaviour varies between versions or is not fully specified, and what is done
here:
  * top-k routing ties: torch.topk does not document its order on exact ties; here exact ties go
    to the lower expert index (stable sort). Exact ties do not occur with random weights.
  * yarn: the explicit rope_scaling["factor"] is used (transformers >= 4.57 behaviour). Some
    4.5x releases replaced it by max_position_embeddings / original_max_position_embeddings when
    original_max_position_embeddings was given; a warning is printed when the two disagree.
    `truncate` (default True) floors/ceils the correction range; attention_factor defaults to
    0.1*ln(factor)+1 (or the mscale/mscale_all_dim ratio when both are given) and multiplies
    both cos and sin.
  * rope angles: HF computes inv_freq, position*inv_freq, cos and sin in float32; here they are
    computed in float64 (the exact values). At the positions tested the difference is < 1e-4 rad.

HiF4 mode (`--quantize hif4`): as moeserve --quantize hif4, the projections whose rows hold
64-value units (not the router, the embedding or lm_head) are HiFloat4 weights (hif4.py's
encoder and decoder), and their inputs are Q8_0-quantized as in Q8_0 mode; dots in float64.

Q8_0 mode (`--quantize q8_0`, Model(quantize="q8_0")): the model as a Q8_0 inference engine
runs it (moeserve --quantize q8_0, and llama.cpp's Q8_0 weights x Q8_0 activations dot). See the
Q8_0 section below for the exact semantics; the dots themselves are still computed in float64.

usage:
  qwen3_ref.py --model DIR --prompt-ids 1,2,3 [--out FILE] [--greedy N] [--precision float64]
               [--quantize none|q8_0] [--expert-stats]
  --out writes the logits of every position as raw little-endian float32 [n_tokens, vocab].
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hif4  # noqa: E402

# --------------------------------------------------------------------------------------------
# safetensors reader
# --------------------------------------------------------------------------------------------

_ST_DTYPES = {"BF16": ("<u2", 2), "F16": ("<f2", 2), "F32": ("<f4", 4)}


class SafetensorsFile:
    """One .safetensors file, memory-mapped. Layout: u64 little-endian header length N, N bytes
    of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the
    data; offsets are relative to the first byte after the header."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError(f"{path}: too short for a safetensors file")
            (n,) = struct.unpack("<Q", head)
            size = os.fstat(f.fileno()).st_size
            if n > size - 8:
                raise ValueError(f"{path}: header length {n} exceeds the file size {size}")
            header = json.loads(f.read(n).decode("utf-8"))
        self.data_start = 8 + n
        header.pop("__metadata__", None)
        self.tensors = {}
        for name, info in header.items():
            dtype = info["dtype"]
            if dtype not in _ST_DTYPES:
                raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
            count = int(np.prod(shape)) if shape else 1
            if end - begin != count * _ST_DTYPES[dtype][1] or begin < 0:
                raise ValueError(f"{path}: tensor {name}: offsets {begin}..{end} do not match "
                                 f"shape {shape} of {dtype}")
            if self.data_start + end > size:
                raise ValueError(f"{path}: tensor {name} runs past the end of the file")
            self.tensors[name] = (dtype, shape, begin, end)
        self.mm = np.memmap(path, dtype=np.uint8, mode="r") if size > 0 else None

    def raw(self, name):
        """The stored tensor as a numpy view of the mapped file (no copy), in its stored dtype
        (BF16 as uint16 bit patterns)."""
        dtype, shape, begin, end = self.tensors[name]
        b = self.mm[self.data_start + begin:self.data_start + end]
        return b.view(_ST_DTYPES[dtype][0]).reshape(shape), dtype


def decode(raw, dtype, out_dtype):
    """Stored values -> float array of out_dtype. BF16 is the high half of an IEEE float32, so
    widening the bit pattern into the top 16 bits of a uint32 gives the exact value."""
    if dtype == "BF16":
        f32 = (np.asarray(raw, dtype=np.uint32) << np.uint32(16)).view(np.float32)
    else:
        f32 = np.asarray(raw).astype(np.float32)  # F16 -> F32 and F32 -> F32 are exact
    return f32.astype(out_dtype, copy=False)


class Checkpoint:
    """All tensors of a model directory: model.safetensors, or the shards named by
    model.safetensors.index.json's weight_map."""

    def __init__(self, model_dir):
        index = os.path.join(model_dir, "model.safetensors.index.json")
        single = os.path.join(model_dir, "model.safetensors")
        self.where = {}
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
            files = {}
            for name, fname in weight_map.items():
                if fname not in files:
                    files[fname] = SafetensorsFile(os.path.join(model_dir, fname))
                if name not in files[fname].tensors:
                    raise ValueError(f"index maps {name} to {fname}, which does not hold it")
                self.where[name] = files[fname]
        elif os.path.exists(single):
            st = SafetensorsFile(single)
            self.where = {name: st for name in st.tensors}
        else:
            raise FileNotFoundError(f"{model_dir}: no model.safetensors or model.safetensors.index.json")

    def __contains__(self, name):
        return name in self.where

    def shape(self, name):
        return self.where[name].tensors[name][1]

    def get(self, name, out_dtype, rows=None):
        """Tensor `name` decoded to out_dtype; `rows` (a slice or an index array) selects rows
        of the first axis before decoding, so large matrices need not be decoded whole."""
        if name not in self.where:
            raise KeyError(f"tensor {name} is missing from the checkpoint")
        raw, dtype = self.where[name].raw(name)
        if rows is not None:
            raw = raw[rows]
        return decode(raw, dtype, out_dtype)


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------

class Config:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            c = json.load(f)
        self.raw = c
        self.model_type = c.get("model_type", "qwen3_moe")
        if self.model_type not in ("qwen3_moe", "qwen3"):
            raise ValueError(f"unsupported model_type {self.model_type}")
        self.hidden = c["hidden_size"]
        self.n_layers = c["num_hidden_layers"]
        self.n_heads = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_heads
        self.head_dim = c.get("head_dim") or self.hidden // self.n_heads
        self.vocab = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.intermediate = c.get("intermediate_size")
        self.tie = bool(c.get("tie_word_embeddings", False))
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError(f"unsupported hidden_act {c.get('hidden_act')}")
        if c.get("attention_bias", False):
            raise ValueError("attention_bias=true is not supported")
        if c.get("use_sliding_window", False):
            raise ValueError("use_sliding_window=true is not supported")
        if self.n_heads % self.n_kv:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if c.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError("partial_rotary_factor != 1 is not supported")
        # MoE fields, with HF's Qwen3MoeConfig defaults where the file omits them
        if self.model_type == "qwen3_moe":
            self.n_experts = c.get("num_experts", 128)
            self.top_k = c.get("num_experts_per_tok", 8)
            self.moe_intermediate = c.get("moe_intermediate_size", 768)
            self.norm_topk = bool(c.get("norm_topk_prob", False))
            self.sparse_step = c.get("decoder_sparse_step", 1)
            self.mlp_only = list(c.get("mlp_only_layers") or [])
        else:
            self.n_experts = 0
            self.top_k = 0
            self.norm_topk = False
            self.sparse_step = 1
            self.mlp_only = []
        self.max_pos = c.get("max_position_embeddings", 32768)
        # rope: transformers >= 5 writes rope_parameters (with rope_theta inside); older versions
        # write rope_theta + rope_scaling (whose type key was once "type").
        rp = dict(c.get("rope_scaling") or {})
        rp.update(c.get("rope_parameters") or {})
        self.rope_theta = float(rp.get("rope_theta", c.get("rope_theta", 10000.0)))
        self.rope = rp
        self.rope_type = rp.get("rope_type", rp.get("type", "default"))

    def layer_is_sparse(self, i):
        """Qwen3MoeDecoderLayer's rule; the dense family has no sparse layers."""
        return (self.model_type == "qwen3_moe" and i not in self.mlp_only
                and self.n_experts > 0 and (i + 1) % self.sparse_step == 0)


# --------------------------------------------------------------------------------------------
# rotary position embedding
# --------------------------------------------------------------------------------------------

def rope_inv_freq(cfg):
    """(inv_freq[head_dim/2], attention_factor) as _compute_{default,linear,yarn}_parameters."""
    dim = cfg.head_dim
    base = cfg.rope_theta
    exponents = np.arange(0, dim, 2, dtype=np.float64) / dim
    inv_freq = 1.0 / base ** exponents  # theta^(-2i/d)
    s = cfg.rope
    if cfg.rope_type == "default":
        return inv_freq, 1.0
    if cfg.rope_type == "linear":
        return inv_freq / s["factor"], 1.0
    if cfg.rope_type != "yarn":
        raise ValueError(f"unsupported rope type {cfg.rope_type}")

    factor = float(s["factor"])
    orig = s.get("original_max_position_embeddings") or cfg.max_pos
    if s.get("original_max_position_embeddings") and cfg.max_pos / orig not in (1.0, factor):
        sys.stderr.write(f"qwen3_ref: warning: yarn factor {factor} differs from "
                         f"max_position_embeddings/original = {cfg.max_pos / orig}; using {factor} "
                         f"(transformers 4.5x used the ratio)\n")

    def mscale_of(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = s.get("attention_factor")
    if attention_factor is None:
        if s.get("mscale") and s.get("mscale_all_dim"):
            attention_factor = mscale_of(factor, s["mscale"]) / mscale_of(factor, s["mscale_all_dim"])
        else:
            attention_factor = mscale_of(factor)
    beta_fast = s.get("beta_fast") or 32
    beta_slow = s.get("beta_slow") or 1

    def correction_dim(n_rotations):
        # the dimension index whose wavelength fits n_rotations times into the original context
        return dim * math.log(orig / (n_rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    # ramp 0 (fast-rotating dims): keep the original frequency (extrapolation);
    # ramp 1 (slow dims): divide by factor (interpolation); linear blend in between.
    inv_freq = inv_freq * (1.0 - ramp) + (inv_freq / factor) * ramp
    return inv_freq, float(attention_factor)


def rope_cos_sin(cfg, positions, dtype):
    """cos/sin [T, head_dim] times the attention factor. In float64 the angles are exact; in
    float32 they are rounded as HF rounds them (inv_freq, then position * inv_freq, in float32),
    so the float32 mode reproduces HF's angle error (up to half an ulp of the angle: ~1.5e-5 rad
    at position 300) and shows what it costs."""
    inv_freq, attention_factor = rope_inv_freq(cfg)
    if np.dtype(dtype) == np.float32:
        angles = (np.asarray(positions, dtype=np.float32)[:, None]
                  * inv_freq.astype(np.float32)[None, :]).astype(np.float64)
    else:
        angles = np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]
    emb = np.concatenate([angles, angles], axis=-1)  # [T, head_dim]: same angle for i and i+d/2
    return ((np.cos(emb) * attention_factor).astype(dtype),
            (np.sin(emb) * attention_factor).astype(dtype))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def apply_rope(x, cos, sin):
    """x: [heads, T, head_dim]; cos/sin: [T, head_dim]."""
    return x * cos[None] + rotate_half(x) * sin[None]


# --------------------------------------------------------------------------------------------
# Q8_0 quantization
# --------------------------------------------------------------------------------------------
#
# Q8_0 (GGUF's block_q8_0): a row of n values (n a multiple of 32) is cut into n/32 blocks of 32
# consecutive values; each block is stored as 32 int8 q[i] and one scale d, x[i] ~= d * q[i]:
#     amax = max |x[i]| over the block        (float32)
#     d    = amax / 127                       (float32 division)
#     id   = 1 / d, or 0 when d == 0          (float32 division)
#     q[i] = round_half_even(x[i] * id)       (float32 product, then to the nearest integer, ties
#                                              to even: the FPU's default mode, lrintf/cvtps2dq)
# as llama.cpp's quantize_row_q8_0 (which multiplies by 1/d rather than dividing by d: the two
# can differ in the last bit of x/d and so, next to a boundary k + 1/2, in q; its scalar version
# rounds ties away from zero, its x86 SIMD ones to even, as here). Exact ties are common in
# weights: a bf16 block whose largest value has the mantissa 1.984375 = 254/128 gets d = a power
# of two, and x * id = k + 1/2 exactly for many of its values. Weights store d as float16 (round
# to nearest even) -- q is computed with the float32 d, before d is rounded, as in llama.cpp.
# Activations (the input of every quantized matmul, quantized per token row when the matmul
# runs) keep d in float32.
# Which tensors: the matmul weights -- q/k/v/o projections, the dense MLP's and every expert's
# gate/up/down projections, and lm_head (a tied lm_head gets its own quantized copy; the
# embedding lookup stays exact) -- whose input width is a multiple of 32. Not quantized: the
# embedding, the norms, and the MoE router (routing stays in float; llama.cpp does not quantize
# ffn_gate_inp either).
# A quantized matmul is y[t, r] = sum over blocks b of d_w[r, b] * d_x[t, b] * s[t, r, b], where
# s[t, r, b] = sum_i q_w[r, b, i] * q_x[t, b, i] is the exact integer dot of the two blocks. Here
# s is computed exactly (|s| <= 32 * 127 * 127 < 2^24, so a float32 matmul of the integer values
# is exact), and the scaling and the sum over blocks in float64 (d_w * d_x, an f16 times an f32,
# is exact in float64).

Q8_BLOCK = 32
Q8_MATMUL_WEIGHTS = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
                     "gate_proj.weight", "up_proj.weight", "down_proj.weight")


def q8_0_quantize(x):
    """x [..., n] (n % 32 == 0) -> (d float32 [..., n/32], q [..., n/32, 32] integer-valued
    float32 in [-127, 127]) as described above."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[-1]
    if n % Q8_BLOCK:
        raise ValueError(f"Q8_0 needs a multiple of {Q8_BLOCK} values per row, got {n}")
    xb = x.reshape(x.shape[:-1] + (n // Q8_BLOCK, Q8_BLOCK))
    amax = np.max(np.abs(xb), axis=-1)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np.rint(xb * inv[..., None])  # float32 product; np.rint rounds half to even
    return d, q


def q8_0_weight_blocks(w):
    """A matmul weight [out, in] (float32) as Q8_0 blocks: (d float16 [out, in/32], q)."""
    d, q = q8_0_quantize(w)
    return d.astype(np.float16), q


def q8_0_act_blocks(x):
    """A matmul input [T, in] as per-row Q8_0 activation blocks: (d float32 [T, in/32], q). It
    is rounded to float32 first: an engine holds activations in float32."""
    return q8_0_quantize(x)


def q8_0_matmul(x, w_blocks, out_dtype):
    """x [T, in] (quantized here) @ W.T for W [out, in] given as Q8_0 blocks (d, q), by the
    block formula above; [T, out] in out_dtype."""
    wd, wq = w_blocks
    xd, xq = q8_0_act_blocks(x)
    # s[b, t, r], exact: integer-valued float32 products summed to at most 2^19 in magnitude
    s = np.matmul(np.ascontiguousarray(xq.transpose(1, 0, 2)),
                  np.ascontiguousarray(wq.transpose(1, 2, 0)))
    xd = xd.astype(np.float64)
    wd = wd.astype(np.float64)
    y = np.zeros((xq.shape[0], wq.shape[0]), dtype=np.float64)
    for b in range(s.shape[0]):
        y += s[b] * (xd[:, b, None] * wd[None, :, b])
    return y.astype(out_dtype, copy=False)


def hif4_weight(w):
    """A matmul weight [out, in] (float32) through HiFloat4 (tests/reference/hif4.py) and back,
    as float64: the HiF4 mode's weights, whose input is Q8_0-quantized as in Q8_0 mode."""
    return hif4.decode(hif4.encode(w), w.shape[-1]).astype(np.float64)


def q8_0_dequant(d, q, out_dtype):
    """d [..., nb], q [..., nb, 32] -> d * q as [..., nb * 32] in out_dtype (for checks)."""
    x = d.astype(np.float64)[..., None] * q.astype(np.float64)
    return x.reshape(x.shape[:-2] + (x.shape[-2] * Q8_BLOCK,)).astype(out_dtype, copy=False)


def q8_0_margin(x):
    """Per row of x [T, in]: the smallest distance, in quanta, of x / d (computed here in
    float64 from the reference's own activations, i.e. essentially exact) from a rounding
    boundary k + 1/2. Where it is below an engine's float32 error in x / d (~1e-5 quanta for the
    largest |q|), the engine may round that value the other way than the reference -- a
    legitimate difference of one quantum, which later layers then carry on (see
    compare_logits.py). 0 for an exact tie (frequent in the first layer's input: a bf16
    embedding times a bf16 norm weight over another such product can be exactly k + 1/2)."""
    x = np.asarray(x, dtype=np.float64)
    xb = x.reshape(x.shape[0], -1, Q8_BLOCK)
    amax = np.max(np.abs(xb), axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(amax > 0, xb * 127.0 / amax, 0.0)
    m = np.abs(v - np.floor(v) - 0.5)
    return m.reshape(x.shape[0], -1).min(axis=1)


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    """x * rsqrt(mean(x^2) + eps) * weight over the last axis."""
    var = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(var + eps) * weight


def silu(x):
    return x / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def causal_attention(q, k, v, n_rep):
    """q: [n_heads, T, d], k/v: [n_kv, T, d]; query head h uses kv head h // n_rep.
    Returns [n_heads, T, d]."""
    d = q.shape[-1]
    T = q.shape[1]
    k = np.repeat(k, n_rep, axis=0)
    v = np.repeat(v, n_rep, axis=0)
    scores = np.matmul(q, k.transpose(0, 2, 1)) / math.sqrt(d)  # [H, T, T]
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    scores = np.where(future[None], -np.inf, scores)
    return np.matmul(softmax(scores, axis=-1), v)


def causal_attention_naive(q, k, v, n_rep):
    """The same as causal_attention, one query position and head at a time (for self-checks)."""
    H, T, d = q.shape
    out = np.zeros_like(q)
    for h in range(H):
        kv = h // n_rep
        for t in range(T):
            s = np.array([float(np.dot(q[h, t], k[kv, j])) for j in range(t + 1)]) / math.sqrt(d)
            p = np.exp(s - s.max())
            p /= p.sum()
            for j in range(t + 1):
                out[h, t] += p[j] * v[kv, j]
    return out


def topk_experts(probs, k):
    """Indices [T, k] of the k largest probabilities, largest first; exact ties go to the lower
    expert index."""
    return np.argsort(-probs, axis=-1, kind="stable")[:, :k]


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------

class Model:
    def __init__(self, model_dir, precision="float64", cache_bytes=1 << 30, quantize=None):
        self.cfg = Config(model_dir)
        self.ckpt = Checkpoint(model_dir)
        self.dtype = np.dtype(precision)
        if quantize in (None, "none"):
            quantize = None
        elif quantize not in ("q8_0", "hif4"):
            raise ValueError(f"unsupported quantization {quantize!r} (q8_0, hif4 or none)")
        self.quantize = quantize
        self.cache = {}
        self.cache_left = cache_bytes
        self.attention_fn = causal_attention
        self.q8_margin = None
        self.reset_stats()
        self._check_tensors()

    def reset_stats(self):
        # per sparse layer: how many (token, slot) assignments each expert got
        self.expert_counts = {}
        # smallest gap between the k-th and (k+1)-th router probability seen (a near-tie there
        # is where two correct implementations could route differently)
        self.min_topk_margin = math.inf

    def _check_tensors(self):
        c = self.cfg
        need = {"model.embed_tokens.weight": (c.vocab, c.hidden), "model.norm.weight": (c.hidden,)}
        if not c.tie:
            need["lm_head.weight"] = (c.vocab, c.hidden)
        for name, shape in need.items():
            if name not in self.ckpt:
                raise KeyError(f"tensor {name} is missing from the checkpoint")
            if tuple(self.ckpt.shape(name)) != shape:
                raise ValueError(f"{name}: shape {self.ckpt.shape(name)}, expected {shape}")

    def quantized(self, name):
        """Whether matmul weight `name` runs as Q8_0 (see the Q8_0 section): in Q8_0 mode, the
        projections (not the router) and lm_head, when their input width allows."""
        if not self.quantize:
            return False
        if self.quantize == "hif4":  # the projections only, rows of whole 64-value units
            return name.endswith(Q8_MATMUL_WEIGHTS) and self.ckpt.shape(name)[-1] % hif4.UNIT == 0
        if name != self.head_name() and not name.endswith(Q8_MATMUL_WEIGHTS):
            return False
        return self.ckpt.shape(name)[-1] % Q8_BLOCK == 0

    def head_name(self):
        return "model.embed_tokens.weight" if self.cfg.tie else "lm_head.weight"

    def w(self, name):
        """A weight decoded to the compute dtype, or its Q8_0 blocks (d, q) when it is
        quantized; small and repeatedly used ones are cached."""
        if self.quantized(name):
            key = (self.quantize, name)
            if key not in self.cache:
                t = self.ckpt.get(name, np.float32)
                t = q8_0_weight_blocks(t) if self.quantize == "q8_0" else hif4_weight(t)
                nbytes = t[0].nbytes + t[1].nbytes if self.quantize == "q8_0" else t.nbytes
                if nbytes > self.cache_left:
                    return t
                self.cache[key] = t
                self.cache_left -= nbytes
            return self.cache[key]
        if name in self.cache:
            return self.cache[name]
        t = self.ckpt.get(name, self.dtype)
        if t.nbytes <= self.cache_left:
            self.cache[name] = t
            self.cache_left -= t.nbytes
        return t

    def linear(self, x, name, pos=None):
        """x [T, in] @ weight[out, in].T; a quantized weight's input is quantized too. pos:
        the prompt positions of x's rows (default: row i is position i), for q8_margin."""
        if self.quantized(name):
            self.track_margin(x, pos)
            if self.quantize == "hif4":
                return (q8_0_dequant(*q8_0_act_blocks(x), np.float64) @ self.w(name).T).astype(self.dtype)
            return q8_0_matmul(x, self.w(name), self.dtype)
        return x @ self.w(name).T

    def track_margin(self, x, pos):
        """q8_margin[t]: the smallest rounding margin (q8_0_margin) of any activation quantized
        at position t in the last forward pass."""
        if self.q8_margin is None:
            return
        m = q8_0_margin(x)
        if pos is None:
            pos = np.arange(x.shape[0])
        np.minimum.at(self.q8_margin, pos, m)

    def embed(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= self.cfg.vocab:
            raise ValueError(f"token id out of range [0, {self.cfg.vocab})")
        return self.ckpt.get("model.embed_tokens.weight", self.dtype, rows=ids)

    def attention(self, i, x, cos, sin):
        c = self.cfg
        p = f"model.layers.{i}.self_attn."
        T = x.shape[0]
        q = self.linear(x, p + "q_proj.weight").reshape(T, c.n_heads, c.head_dim)
        k = self.linear(x, p + "k_proj.weight").reshape(T, c.n_kv, c.head_dim)
        v = self.linear(x, p + "v_proj.weight").reshape(T, c.n_kv, c.head_dim)
        # per-head RMSNorm over head_dim, before RoPE
        q = rms_norm(q, self.w(p + "q_norm.weight"), c.eps).transpose(1, 0, 2)  # [H, T, d]
        k = rms_norm(k, self.w(p + "k_norm.weight"), c.eps).transpose(1, 0, 2)
        v = v.transpose(1, 0, 2)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        o = self.attention_fn(q, k, v, c.n_heads // c.n_kv)  # [H, T, d]
        o = o.transpose(1, 0, 2).reshape(T, c.n_heads * c.head_dim)
        return self.linear(o, p + "o_proj.weight")

    def mlp(self, prefix, x, pos=None):
        g = self.linear(x, prefix + "gate_proj.weight", pos)
        u = self.linear(x, prefix + "up_proj.weight", pos)
        return self.linear(silu(g) * u, prefix + "down_proj.weight", pos)

    def moe(self, i, x):
        c = self.cfg
        p = f"model.layers.{i}.mlp."
        router_logits = self.linear(x, p + "gate.weight")          # [T, E]; never quantized
        probs = softmax(router_logits, axis=-1)                   # over ALL experts
        chosen = topk_experts(probs, c.top_k)                     # [T, k]
        weights = np.take_along_axis(probs, chosen, axis=-1)      # [T, k]
        if c.top_k < c.n_experts:
            nxt = np.sort(probs, axis=-1)[:, ::-1][:, c.top_k]
            self.min_topk_margin = min(self.min_topk_margin, float(np.min(weights[:, -1] - nxt)))
        if c.norm_topk:
            weights = weights / np.sum(weights, axis=-1, keepdims=True)
        counts = self.expert_counts.setdefault(i, np.zeros(c.n_experts, dtype=np.int64))
        out = np.zeros_like(x)
        for e in np.unique(chosen):
            rows, slots = np.nonzero(chosen == e)
            counts[e] += len(rows)
            y = self.mlp(p + f"experts.{e}.", x[rows], rows)
            out[rows] += weights[rows, slots][:, None] * y
        return out

    def hidden_states(self, ids):
        """Final-normed hidden states [T, hidden] for a prompt starting at position 0."""
        c = self.cfg
        T = len(ids)
        self.q8_margin = np.full(T, np.inf) if self.quantize else None
        cos, sin = rope_cos_sin(c, np.arange(T), self.dtype)
        h = self.embed(ids)
        for i in range(c.n_layers):
            p = f"model.layers.{i}."
            a = rms_norm(h, self.w(p + "input_layernorm.weight"), c.eps)
            h = h + self.attention(i, a, cos, sin)
            m = rms_norm(h, self.w(p + "post_attention_layernorm.weight"), c.eps)
            h = h + (self.moe(i, m) if c.layer_is_sparse(i) else self.mlp(p + "mlp.", m))
        return rms_norm(h, self.w("model.norm.weight"), c.eps)

    def logits(self, ids, chunk_rows=16384):
        """Logits [T, vocab] (in the compute dtype) of every position."""
        return self.head(self.hidden_states(ids), chunk_rows)

    def q8_margins(self, ids):
        """q8_margin of every position of a forward pass over ids, lm_head's input included,
        without computing the logits (Q8_0 mode only)."""
        h = self.hidden_states(ids)
        if self.quantized(self.head_name()):
            self.track_margin(h, None)
        return self.q8_margin

    def head(self, h, chunk_rows=16384):
        """h [T, hidden] @ lm_head.T, decoding (and quantizing) lm_head a chunk of rows at a
        time; quantization is per row, so chunking by rows does not change it."""
        name = self.head_name()
        V = self.cfg.vocab
        q = self.quantized(name)
        if q and self.q8_margin is not None and len(self.q8_margin) == h.shape[0]:
            self.track_margin(h, None)
        out = np.empty((h.shape[0], V), dtype=self.dtype)
        for r0 in range(0, V, chunk_rows):
            r1 = min(V, r0 + chunk_rows)
            if q:
                wb = q8_0_weight_blocks(self.ckpt.get(name, np.float32, rows=slice(r0, r1)))
                out[:, r0:r1] = q8_0_matmul(h, wb, self.dtype)
            else:
                out[:, r0:r1] = h @ self.ckpt.get(name, self.dtype, rows=slice(r0, r1)).T
        return out

    def greedy(self, ids, n):
        """n greedily generated ids (argmax; lowest id on exact ties), full recompute per step."""
        ids = list(ids)
        new = []
        for _ in range(n):
            lg = self.head(self.hidden_states(ids)[-1:])[0]
            nxt = int(np.argmax(lg))
            new.append(nxt)
            ids.append(nxt)
        return new


def parse_ids(s):
    return [int(t) for t in s.replace(" ", "").split(",") if t != ""]


def format_histogram(model):
    lines = []
    for layer, counts in sorted(model.expert_counts.items()):
        n = len(counts)
        total = int(counts.sum())
        used = int(np.count_nonzero(counts))
        ideal = total / n
        lines.append(f"layer {layer}: {total} assignments over {n} experts; {used} used; "
                     f"max {int(counts.max())} (uniform would be {ideal:.1f}); "
                     f"top-share of busiest 10%: "
                     f"{np.sort(counts)[::-1][:max(1, n // 10)].sum() / max(total, 1):.2f}")
        lines.append("  counts: " + " ".join(str(int(v)) for v in counts))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description="numpy reference forward pass for Qwen3(-MoE)")
    ap.add_argument("--model", required=True, help="Hugging Face model directory")
    ap.add_argument("--prompt-ids", required=True, help="comma-separated token ids")
    ap.add_argument("--out", help="write logits of every position, raw float32 [n_tokens, vocab]")
    ap.add_argument("--greedy", type=int, default=0, help="print N greedily generated ids")
    ap.add_argument("--precision", choices=["float64", "float32"], default="float64")
    ap.add_argument("--quantize", choices=["none", "q8_0", "hif4"], default="none",
                    help="q8_0: the model as a Q8_0 engine runs it (matmul weights and inputs)")
    ap.add_argument("--expert-stats", action="store_true",
                    help="print the per-layer expert-usage histogram of the prompt's forward pass")
    args = ap.parse_args(argv)

    ids = parse_ids(args.prompt_ids)
    if not ids:
        ap.error("--prompt-ids is empty")
    model = Model(args.model, precision=args.precision, quantize=args.quantize)
    if args.out or args.expert_stats:
        lg = model.logits(ids)
        if args.out:
            lg.astype("<f4").tofile(args.out)
        if args.expert_stats:
            print(format_histogram(model))
            print(f"min top-k margin (k-th minus (k+1)-th router prob): {model.min_topk_margin:.3g}")
    if args.greedy:
        print(",".join(str(t) for t in model.greedy(ids, args.greedy)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
