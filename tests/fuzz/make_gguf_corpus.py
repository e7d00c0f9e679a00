#!/usr/bin/python3
"""Writes the seed corpus of fuzz_gguf (tests/fuzz/corpus/gguf/) with tools/gguf_write.py: small
files (under libFuzzer's -max_len 16384) that reach every part of the reader: a whole tiny
qwen3moe model (config and tensors), a dense qwen3 header, every value type and array kind with
a few block-format tensors, the same as GGUF v2, and a split part.

usage: make_gguf_corpus.py OUT_DIR
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from gguf_write import GGML, GGUF, GGUFWriter, tensor_nbytes  # noqa: E402


def write(path, kvs, tensors, alignment=32):
    w = GGUFWriter(path)
    for add, key, *v in kvs:
        getattr(w, add)(key, *v)
    for name, shape, t in tensors:
        w.add_tensor_info(name, shape, t)
    w.write_header()
    rng = np.random.default_rng(1)
    for name, shape, t in tensors:
        n = tensor_nbytes(shape, t)
        if t == GGML.F32:
            w.write_tensor_data(name, (rng.standard_normal(n // 4) * 0.1).astype("<f4"))
        else:
            w.write_tensor_data(name, bytes(n))
    w.close()


def model(arch, H=16, V=8, NH=2, NKV=1, HD=8, E=2, MI=8, dense=False):
    a = arch + "."
    kvs = [("add_string", "general.architecture", arch), ("add_uint32", "general.alignment", 32)]
    for k, v in (("block_count", 1), ("context_length", 64), ("embedding_length", H), ("feed_forward_length", 16),
                 ("attention.head_count", NH), ("attention.head_count_kv", NKV), ("attention.key_length", HD)):
        kvs.append(("add_uint32", a + k, v))
    if not dense:
        kvs += [("add_uint32", a + "expert_count", E), ("add_uint32", a + "expert_used_count", 1),
                ("add_uint32", a + "expert_feed_forward_length", MI)]
    kvs += [("add_float32", a + "rope.freq_base", 1e6), ("add_float32", a + "attention.layer_norm_rms_epsilon", 1e-6),
            ("add_string", a + "rope.scaling.type", "yarn"), ("add_float32", a + "rope.scaling.factor", 4.0),
            ("add_uint32", a + "rope.scaling.original_context_length", 32),
            ("add_array", "tokenizer.ggml.tokens", ["<|endoftext|>", "<|im_end|>"] + [f"t{i}" for i in range(V - 2)], GGUF.STRING),
            ("add_array", "tokenizer.ggml.token_type", [3, 3] + [1] * (V - 2), GGUF.INT32),
            ("add_array", "tokenizer.ggml.merges", ["t 0", "t 1"], GGUF.STRING),
            ("add_uint32", "tokenizer.ggml.eos_token_id", 1), ("add_uint32", "tokenizer.ggml.bos_token_id", 0),
            ("add_string", "tokenizer.chat_template", "{{ messages }}")]
    ts = [("token_embd.weight", (V, H), GGML.F32), ("blk.0.attn_norm.weight", (H,), GGML.F32),
          ("blk.0.attn_q.weight", (NH * HD, H), GGML.F32), ("blk.0.attn_k.weight", (NKV * HD, H), GGML.F32),
          ("blk.0.attn_v.weight", (NKV * HD, H), GGML.F32), ("blk.0.attn_output.weight", (H, NH * HD), GGML.F32),
          ("blk.0.attn_q_norm.weight", (HD,), GGML.F32), ("blk.0.attn_k_norm.weight", (HD,), GGML.F32),
          ("blk.0.ffn_norm.weight", (H,), GGML.F32)]
    if dense:
        ts += [("blk.0.ffn_gate.weight", (16, H), GGML.F32), ("blk.0.ffn_up.weight", (16, H), GGML.F32),
               ("blk.0.ffn_down.weight", (H, 16), GGML.F32)]
    else:
        ts += [("blk.0.ffn_gate_inp.weight", (E, H), GGML.F32), ("blk.0.ffn_gate_exps.weight", (E, MI, H), GGML.F32),
               ("blk.0.ffn_up_exps.weight", (E, MI, H), GGML.F32), ("blk.0.ffn_down_exps.weight", (E, H, MI), GGML.F32)]
    ts.append(("output_norm.weight", (H,), GGML.F32))
    return kvs, ts


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "qwen3moe.gguf"), *model("qwen3moe"))
    kvs, ts = model("qwen3", dense=True)
    write(os.path.join(out, "qwen3_dense.gguf"), kvs, ts[:2])
    kvs = [("add_uint8", "a.u8", 200), ("add_int8", "a.i8", -5), ("add_uint16", "a.u16", 60000),
           ("add_int16", "a.i16", -300), ("add_uint32", "a.u32", 4000000000), ("add_int32", "a.i32", -7),
           ("add_uint64", "a.u64", 2**63 + 1), ("add_int64", "a.i64", -2**40), ("add_float32", "a.f32", 0.5),
           ("add_float64", "a.f64", 1e300), ("add_bool", "a.bool", True), ("add_string", "a.str", "h\u00e9llo"),
           ("add_array", "a.arr_u8", [1, 2, 3], GGUF.UINT8), ("add_array", "a.arr_f64", [1.5, -2.0], GGUF.FLOAT64),
           ("add_array", "a.arr_bool", [0, 1], GGUF.BOOL), ("add_array", "a.arr_str", ["", "x", "yz"], GGUF.STRING),
           ("add_array", "a.arr_empty", [], GGUF.INT64)]
    ts = [("q8", (2, 32), GGML.Q8_0), ("q4k", (1, 256), GGML.Q4_K), ("f16", (3, 5), GGML.F16), ("bf16", (4,), GGML.BF16)]
    write(os.path.join(out, "types.gguf"), kvs, ts)
    with open(os.path.join(out, "types.gguf"), "rb") as f:
        b = bytearray(f.read())
    b[4] = 2  # GGUF v2: the same layout
    with open(os.path.join(out, "types_v2.gguf"), "wb") as f:
        f.write(b)
    write(os.path.join(out, "split_part.gguf"),
          [("add_uint32", "general.alignment", 64), ("add_uint16", "split.no", 0), ("add_uint16", "split.count", 1),
           ("add_int32", "split.tensors.count", 1)], [("x", (2, 2), GGML.F32)])
    for n in sorted(os.listdir(out)):
        print(n, os.path.getsize(os.path.join(out, n)))


if __name__ == "__main__":
    main()
