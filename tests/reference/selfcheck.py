#!/usr/bin/python3
"""Self-checks of the numpy reference (qwen3_ref.py), independent of the C engine.

usage: selfcheck.py PREFIX
PREFIX + NAME are the test models made by tools/make_model.py with the same seed, for NAME in
  tiny (bf16), tiny-f32, tiny-f16, tiny-shards3, tiny-yarn, tiny-sparse-step
(e.g. PREFIX = build/models/ref- as tests/reference.cmake makes them, or some/dir/).
Prints one line per check and exits non-zero if any fails.
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_ref as R  # noqa: E402

FAILED = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        FAILED.append(name)


def random_ids(n, seed, vocab=151936):
    return [int(x) for x in np.random.default_rng(seed).integers(0, vocab, n)]


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def check_attention():
    rng = np.random.default_rng(1)
    for H, KV, T, d in [(4, 2, 9, 16), (6, 3, 5, 8), (4, 4, 1, 16), (8, 1, 7, 4)]:
        q = rng.standard_normal((H, T, d))
        k = rng.standard_normal((KV, T, d))
        v = rng.standard_normal((KV, T, d))
        a = R.causal_attention(q, k, v, H // KV)
        b = R.causal_attention_naive(q, k, v, H // KV)
        check(f"vectorised vs naive attention H={H} KV={KV} T={T} d={d}", rel(a, b) < 1e-12,
              f"rel {rel(a, b):.1e}")


def check_model_naive_attention(tiny):
    ids = random_ids(12, 5)
    m = R.Model(tiny)
    a = m.logits(ids)
    m.attention_fn = R.causal_attention_naive
    b = m.logits(ids)
    check("tiny logits with vectorised vs naive per-position attention", rel(a, b) < 1e-12,
          f"rel {rel(a, b):.1e}")


def check_moe_dense_formulation(tiny):
    """moe() (gather tokens per expert) against a per-token loop over ALL experts with a dense
    gate vector that is zero outside the top-k."""
    m = R.Model(tiny)
    c = m.cfg
    x = np.random.default_rng(2).standard_normal((17, c.hidden))
    for norm in (True, False):
        c.norm_topk = norm
        got = m.moe(0, x)
        want = np.zeros_like(x)
        wg = m.w("model.layers.0.mlp.gate.weight")
        for t in range(x.shape[0]):
            logits = wg @ x[t]
            p = np.exp(logits - logits.max())
            p /= p.sum()
            order = sorted(range(c.n_experts), key=lambda e: (-p[e], e))[:c.top_k]
            gate = np.zeros(c.n_experts)
            gate[order] = p[order]
            if norm:
                gate /= gate.sum()
            for e in range(c.n_experts):
                pre = f"model.layers.0.mlp.experts.{e}."
                h = R.silu(m.w(pre + "gate_proj.weight") @ x[t]) * (m.w(pre + "up_proj.weight") @ x[t])
                want[t] += gate[e] * (m.w(pre + "down_proj.weight") @ h)
        check(f"sparse MoE vs dense per-token formulation (norm_topk_prob={norm})",
              rel(got, want) < 1e-12, f"rel {rel(got, want):.1e}")


def check_reader(models):
    """The same seed in three dtypes: the bf16 and f16 files must hold exactly the f32 values
    rounded (make_model rounds bf16 to nearest even), which checks header parsing, offsets and
    BF16/F16 decoding."""
    f32 = R.Checkpoint(models + "tiny-f32")
    bf16 = R.Checkpoint(models + "tiny")
    f16 = R.Checkpoint(models + "tiny-f16")
    names = sorted(f32.where)
    check("all three dtypes hold the same tensor names", names == sorted(bf16.where) == sorted(f16.where))
    worst_bf, worst_f16 = 0, 0
    for name in names:
        ref = f32.get(name, np.float32)
        u = ref.view(np.uint32)
        rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)) << np.uint32(16)
        worst_bf = max(worst_bf, int(np.count_nonzero(rounded.view(np.float32) != bf16.get(name, np.float32))))
        worst_f16 = max(worst_f16, int(np.count_nonzero(ref.astype(np.float16).astype(np.float32) != f16.get(name, np.float32))))
    check("BF16 tensors == F32 tensors rounded to bf16 (bit-exact)", worst_bf == 0, f"{len(names)} tensors")
    check("F16 tensors == F32 tensors rounded to f16 (bit-exact)", worst_f16 == 0)
    # row-sliced decoding equals whole decoding
    e = bf16.get("model.embed_tokens.weight", np.float64)
    idx = np.array([0, 5, 151935, 5])
    check("row gather decodes like the whole tensor", np.array_equal(
        bf16.get("model.embed_tokens.weight", np.float64, rows=idx), e[idx]))


def check_shards(models):
    ids = random_ids(9, 7)
    a = R.Model(models + "tiny").logits(ids)
    b = R.Model(models + "tiny-shards3").logits(ids)
    files = [f for f in os.listdir(models + "tiny-shards3") if f.endswith(".safetensors")]
    check(f"3-shard checkpoint ({len(files)} files) gives identical logits", np.array_equal(a, b))


def check_prefix(tiny):
    """Causality: the logits of a prefix equal the first rows of the full prompt's logits."""
    ids = random_ids(40, 8)
    m = R.Model(tiny)
    full = m.logits(ids)
    worst = 0.0
    for n in (1, 2, 17, 39):
        worst = max(worst, rel(m.logits(ids[:n]), full[:n]))
    check("prefix logits == leading rows of the full logits", worst < 1e-12, f"rel {worst:.1e}")


def check_rope(models):
    """q.k after RoPE depends only on the position difference; yarn frequencies follow the
    ramp (fast dims unscaled, slow dims divided by factor) and scale cos/sin by 0.1 ln(f) + 1."""
    rng = np.random.default_rng(3)
    for name in ("tiny", "tiny-yarn"):
        cfg = R.Config(models + name)
        cos, sin = R.rope_cos_sin(cfg, np.arange(200), np.float64)
        q = rng.standard_normal((1, 1, cfg.head_dim))
        k = rng.standard_normal((1, 1, cfg.head_dim))

        def dot(p, s):
            return float(R.apply_rope(q, cos[p:p + 1], sin[p:p + 1]).ravel()
                         @ R.apply_rope(k, cos[s:s + 1], sin[s:s + 1]).ravel())
        d = [abs(dot(p, p + 13) - dot(0, 13)) for p in (1, 50, 150)]
        check(f"{name}: RoPE score depends only on the distance", max(d) < 1e-10, f"{max(d):.1e}")
        # position 0 is the identity up to the attention factor
        inv, af = R.rope_inv_freq(cfg)
        check(f"{name}: position 0 leaves q unrotated", np.allclose(R.apply_rope(q, cos[:1], sin[:1]), af * q))
        # rotate-half pairing: dim i and i + d/2 rotate together at frequency inv[i]
        half = cfg.head_dim // 2
        x = np.zeros((1, 1, cfg.head_dim))
        x[0, 0, 1] = 1.0
        y = R.apply_rope(x, cos[5:6], sin[5:6]).ravel() / af
        check(f"{name}: dim 1 rotates into dim 1+d/2 by angle 5*inv_freq[1]",
              abs(y[1] - math.cos(5 * inv[1])) < 1e-12 and abs(y[1 + half] - math.sin(5 * inv[1])) < 1e-12)
    cfg = R.Config(models + "tiny-yarn")
    base = 1.0 / cfg.rope_theta ** (np.arange(0, cfg.head_dim, 2) / cfg.head_dim)
    inv, af = R.rope_inv_freq(cfg)
    f = cfg.rope["factor"]
    ratio = base / inv
    check("yarn: attention factor 0.1 ln(factor) + 1", abs(af - (0.1 * math.log(f) + 1)) < 1e-15, f"{af:.6f}")
    check("yarn: first dim unscaled, last dim divided by factor, monotone in between",
          abs(ratio[0] - 1) < 1e-12 and abs(ratio[-1] - f) < 1e-12 and np.all(np.diff(ratio) >= -1e-12),
          "base/yarn ratios " + " ".join(f"{r:.3f}" for r in ratio))


def check_precision(tiny):
    ids = random_ids(64, 9)
    a = R.Model(tiny, "float64").logits(ids)
    b = R.Model(tiny, "float32").logits(ids).astype(np.float64)
    d = float(np.max(np.abs(a - b)) / a.std())
    check("float32 run within 1e-5 x std of the float64 run", d < 1e-5, f"{d:.2e} x std")


def check_routing_spread(models):
    """Random test models must spread tokens over the experts like a trained model, or the
    engine's MoE paths go untested. Also: every tensor in the checkpoint gets read."""
    for name in ("tiny", "tiny-sparse-step"):
        path = models + name
        m = R.Model(path)
        used = set()
        get = m.ckpt.get

        def tracking_get(n, *a, **k):
            used.add(n)
            return get(n, *a, **k)
        m.ckpt.get = tracking_get
        m.logits(random_ids(320, 10))
        unused = sorted(set(m.ckpt.where) - used)
        check(f"{name}: every checkpoint tensor is used", not unused, ", ".join(unused[:5]))
        sparse = [i for i in range(m.cfg.n_layers) if m.cfg.layer_is_sparse(i)]
        check(f"{name}: sparse layers {sparse} are the ones routed", sorted(m.expert_counts) == sparse)
        for layer, counts in sorted(m.expert_counts.items()):
            uniform = counts.sum() / len(counts)
            check(f"{name} layer {layer}: all experts used, busiest < 2x uniform",
                  counts.min() > 0 and counts.max() < 2 * uniform, " ".join(map(str, counts)))


def check_q8_0():
    """The reference's Q8_0 quantizer and block-formula matmul, on synthetic data."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((7, 96)) * np.exp(rng.standard_normal((7, 1)))).astype(np.float32)
    x[2, 32:64] = 0  # an all-zero block: d = 0, q = 0
    d, q = R.q8_0_quantize(x)
    xb = x.reshape(7, 3, 32)
    amax = np.abs(xb).max(-1)
    ok = (np.all(np.abs(q) <= 127) and np.array_equal(q, np.rint(q))
          and np.array_equal(np.abs(q).max(-1)[amax > 0], np.full(int((amax > 0).sum()), 127.0))
          and np.all(q[2, 1] == 0) and d[2, 1] == 0
          and np.all(np.abs(xb - d[..., None].astype(np.float64) * q) <= d[..., None] * (0.5 + 1e-6)))
    check("Q8_0 blocks: |q| <= 127, the block max at +-127, |x - d q| <= d/2, zero block", ok)
    # ties: amax = 254/128 makes d = 2^-6 exactly, so x = 2.5 * 2^-6 is the tie 2.5 -> 2 (even)
    t = np.zeros((1, 32), dtype=np.float32)
    t[0, :4] = [254 / 128, 2.5 / 64, 3.5 / 64, -2.5 / 64]
    d, q = R.q8_0_quantize(t)
    check("Q8_0 ties round half to even", d[0, 0] == 2.0 ** -6 and q[0, 0, :4].tolist() == [127, 2, 4, -2],
          f"{q[0, 0, :4].tolist()}")
    w = rng.standard_normal((40, 96)).astype(np.float32) * 0.05
    wb = R.q8_0_weight_blocks(w)
    y = R.q8_0_matmul(x, wb, np.float64)
    ref = R.q8_0_dequant(*R.q8_0_act_blocks(x), np.float64) @ R.q8_0_dequant(*wb, np.float64).T
    check("Q8_0 block-formula matmul == dequantized float64 matmul", rel(y, ref) < 1e-13,
          f"rel {rel(y, ref):.1e}")
    check("Q8_0 weight scales are float16", wb[0].dtype == np.float16)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    models = sys.argv[1]
    tiny = models + "tiny"
    check_attention()
    check_q8_0()
    check_model_naive_attention(tiny)
    check_moe_dense_formulation(tiny)
    check_reader(models)
    check_shards(models)
    check_prefix(tiny)
    check_rope(models)
    check_precision(tiny)
    check_routing_spread(models)
    if FAILED:
        print(f"{len(FAILED)} check(s) failed")
        return 1
    print("all reference self-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
