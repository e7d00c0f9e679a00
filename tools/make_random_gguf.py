#!/usr/bin/env python3
"""Writes a random-weight GGUF of any preset straight to disk, without a Hugging Face checkpoint
in between: the full 48-layer Qwen3-30B-A3B shape at a Q4_K_M mix (about 18.6 GB) in minutes,
where converting a 61 GB BF16 checkpoint with make_gguf.py would take hours of numpy quantizing.

usage: make_random_gguf.py OUT.gguf [--preset a3b] [--layers 48] [--type q4_k_m] [--seed N]

The metadata, tokenizer (the real Qwen3 one), chat template, tensor names and the per-tensor type
mix are make_gguf.py's, so llama.cpp and moeserve read the file as they read a converted one. The
weights: each quantized tensor is made of blocks drawn at random from a pool of real blocks (the
numpy reference quantizer, tests/reference/ggml_formats.py, run once on normal values with that
tensor's standard deviation, make_model.py's); ggml blocks are self-contained, so every drawn
block is a valid block of that distribution. Float tensors (norms, routers) are drawn directly.
This is a file for speed and memory measurements: its outputs are as meaningless as any random
model's, and no test compares its numbers with anything.
"""
import argparse
import os
import sys
import time
import zlib
from types import SimpleNamespace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import ggml_formats as GF  # noqa: E402
import make_gguf  # noqa: E402
import make_model  # noqa: E402
from gguf_write import GGUFWriter  # noqa: E402

POOL_ROWS = 8192          # rows of 256 values quantized per (type, std): a few seconds each
CHUNK_BLOCKS = 1 << 18    # blocks gathered per write (tens of MB)


def config(args):
    widths = dict.fromkeys(("hidden_size", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
                            "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim"))
    ns = SimpleNamespace(preset=args.preset, layers=args.layers, dense=False, tie_embeddings=False,
                         dtype="bf16", decoder_sparse_step=1, mlp_only_layers=[], no_norm_topk=False,
                         yarn=False, **widths)
    return make_model.build_config(ns)


class BlockPool:
    """Real quantized blocks of N(0, std), one pool per (ggml type, std)."""

    def __init__(self, seed):
        self.pools = {}
        self.seed = seed

    def get(self, ggml_type, std):
        key = (ggml_type, round(std, 9))
        if key not in self.pools:
            rng = np.random.default_rng([self.seed, ggml_type, zlib.crc32(repr(key).encode())])
            x = rng.standard_normal((POOL_ROWS, 256), dtype=np.float32) * np.float32(std)
            raw = GF.quantize(x, ggml_type)
            self.pools[key] = raw.reshape(-1, GF.BLOCKS[ggml_type][2])
        return self.pools[key]


def float_data(kind, std, n, ggml_type, rng):
    if kind == "norm":
        x = 1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)
    else:
        x = rng.standard_normal(n, dtype=np.float32) * np.float32(std)
    return GF.quantize(x.reshape(1, -1), ggml_type).tobytes()


def write_tensor(w, name, shape, ggml_type, kind, std, pool, rng):
    n = int(np.prod(shape))
    if ggml_type in (GF.F32, GF.F16, GF.BF16):
        step = 1 << 22
        for i in range(0, n, step):
            w.write_tensor_data(name, float_data(kind, std, min(step, n - i), ggml_type, rng))
        return
    blocks = pool.get(ggml_type, std)
    total = n // GF.BLOCKS[ggml_type][1]
    for i in range(0, total, CHUNK_BLOCKS):
        idx = rng.integers(0, len(blocks), min(CHUNK_BLOCKS, total - i))
        w.write_tensor_data(name, blocks[idx])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--preset", default="a3b", choices=sorted(make_model.PRESETS))
    ap.add_argument("--layers", type=int, help="layers (default: 48 for a3b, the preset's otherwise)")
    ap.add_argument("--type", default="q4_k_m", choices=sorted(make_gguf.BASE_TYPE))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.layers is None:
        args.layers = 48 if args.preset == "a3b" else None
    cfg = config(args)
    L = cfg["num_hidden_layers"]
    std_of = {name: std for name, _, _, std in make_model.tensor_specs(cfg)}
    arch, kvs = make_gguf.model_kvs(cfg, args.type, f"random-{args.preset}-{L}l")
    kvs += make_gguf.tokenizer_kvs(make_model.TOKENIZER_DIR, cfg["vocab_size"])
    kvs.append(("general.description", "random weights, moeserve tools/make_random_gguf.py",
                make_gguf.GGUF.STRING))

    plan = make_gguf.tensor_plan(cfg)
    shapes = {name: shape for name, shape, _, _ in make_model.tensor_specs(cfg)}
    w = GGUFWriter(args.out + ".part")
    for key, v, t in kvs:
        make_gguf.add_kv(w, key, v, t)
    entries = []
    for gname, hf, kind in plan:
        shape = list(shapes[hf[0]])
        if len(hf) > 1:
            shape = [len(hf)] + shape
        layer = int(gname.split(".")[1]) if gname.startswith("blk.") else None
        t = make_gguf.choose_type(args.type, kind, shape, layer, L)
        entries.append((gname, tuple(shape), t, "norm" if kind == "norm" else "normal", std_of[hf[0]]))
        w.add_tensor_info(gname, shape, t)
    w.write_header()
    pool, rng = BlockPool(args.seed), np.random.default_rng(args.seed)
    total = sum(GF.row_bytes(t, s[-1]) * int(np.prod(s[:-1])) for _, s, t, _, _ in entries)
    done, t0 = 0, time.time()
    tty = sys.stderr.isatty()
    for i, (gname, shape, t, kind, std) in enumerate(entries):
        write_tensor(w, gname, shape, t, kind, std, pool, rng)
        done += GF.row_bytes(t, shape[-1]) * int(np.prod(shape[:-1]))
        line = (f"make_random_gguf: tensor {i + 1}/{len(entries)}, {done / 1e9:.2f} of "
                f"{total / 1e9:.2f} GB, {done / 1e6 / max(time.time() - t0, 1e-9):.0f} MB/s")
        if tty:
            sys.stderr.write("\r" + line)
        elif i + 1 == len(entries) or (i * 10) // len(entries) != ((i + 1) * 10) // len(entries):
            sys.stderr.write(line + "\n")
    if tty:
        sys.stderr.write("\n")
    w.close()
    os.replace(args.out + ".part", args.out)
    counts = {}
    for _, _, t, _, _ in entries:
        counts[GF.BLOCKS[t][0]] = counts.get(GF.BLOCKS[t][0], 0) + 1
    print(f"wrote {args.out}: {arch} {args.type}, {L} layers, {len(entries)} tensors {counts}, "
          f"{os.path.getsize(args.out) / 1e9:.2f} GB in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
