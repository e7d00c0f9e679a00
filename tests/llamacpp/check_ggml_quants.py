#!/usr/bin/python3
"""tests/reference/ggml_formats.py against ggml itself: the libggml-base.so that node-llama-cpp
3.21.1 ships (prebuilt llama.cpp, called through ctypes; nothing is built or downloaded).

(a) dequantize: for every block format, numpy's dequantize() of the same bytes must equal ggml's
    dequantize_row_* bit for bit. The bytes are ggml's own blocks of varied rows plus random
    bytes (with finite f16 scales), so every bit pattern of the quant fields is exercised.
(b) quantize: for the formats whose numpy quantizer follows ggml's reference quantizer (Q2_K,
    Q3_K, Q5_K, IQ4_XS), numpy's bytes must equal quantize_row_*_ref's bit for bit, on Gaussian
    rows of several scales, all-zero, constant, tiny (below ggml's 1e-15 group threshold and just
    above), one-outlier, all-positive and all-negative blocks.
(c) with --fmt-dump (tests/kernels/fmt_dump): the C quantizers of the super-block formats (Q4_K
    and Q6_K too, whose numpy quantizers are simpler) against quantize_row_*_ref, the same way.

usage: check_ggml_quants.py [--fmt-dump FMT_DUMP] [LIBGGML_BASE_SO]  (default: node_modules')"""
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import ggml_formats as G  # noqa: E402

LIB = os.path.join(HERE, "..", "..", "node_modules", "@node-llama-cpp", "linux-x64", "bins",
                   "linux-x64", "libggml-base.so")
# ggml's function suffix and the byte offsets of the block's f16 fields
SUFFIX = {G.Q8_0: ("q8_0", [0]), G.Q4_0: ("q4_0", [0]), G.Q4_1: ("q4_1", [0, 2]),
          G.Q5_0: ("q5_0", [0]), G.Q5_1: ("q5_1", [0, 2]), G.IQ4_NL: ("iq4_nl", [0]),
          G.Q4_K: ("q4_K", [0, 2]), G.Q6_K: ("q6_K", [208]), G.Q2_K: ("q2_K", [80, 82]),
          G.Q3_K: ("q3_K", [108]), G.Q5_K: ("q5_K", [0, 2]), G.IQ4_XS: ("iq4_xs", [0])}
EXACT_QUANT = (G.Q2_K, G.Q3_K, G.Q5_K, G.IQ4_XS)
C_QUANT = (G.Q4_K, G.Q6_K) + EXACT_QUANT
fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def rows_under_test(n):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((24, n)).astype(np.float32)
    x *= np.float32(10.0) ** rng.integers(-3, 2, size=(24, 1)).astype(np.float32)
    x[:, 256:512] *= (1 + np.arange(256) // 16 % 7).astype(np.float32)
    x[1, :256] = 0
    x[2, :256] = 0.75
    x[3, :256] *= np.float32(1e-17)
    x[4, :256] *= np.float32(1e-13)
    x[5, 7] = 300
    x[6] = np.abs(x[6])
    x[7] = -np.abs(x[7])
    x[8, :16] = 0
    x[8, 32:64] = 0
    x[9, :] = np.round(x[9] * 4) / 4          # many exact ties
    return x


def call_rows(fn, src, dst, n):
    for r in range(src.shape[0]):
        fn(src[r].ctypes.data_as(ctypes.c_void_p), dst[r].ctypes.data_as(ctypes.c_void_p),
           ctypes.c_int64(n))


def c_quantize(tool, name, x):
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "in"), os.path.join(d, "out")
        x.tofile(src)
        subprocess.run([tool, "quantize", name, str(x.shape[1]), src, dst], check=True)
        return np.fromfile(dst, np.uint8)


def main():
    args = sys.argv[1:]
    tool = None
    if args[:1] == ["--fmt-dump"]:
        tool, args = args[1], args[2:]
    path = args[0] if args else LIB
    if not os.path.exists(path):
        print(f"skipped: no {path}")
        return 0
    lib = ctypes.CDLL(path)
    n = 1024
    x = rows_under_test(n)
    rng = np.random.default_rng(3)
    for t, (sfx, f16_at) in SUFFIX.items():
        name, _, bs = G.BLOCKS[t]
        rb = G.row_bytes(t, n)
        ref = np.zeros((x.shape[0], rb), np.uint8)
        call_rows(getattr(lib, f"quantize_row_{sfx}_ref"), x, ref, n)
        if t in EXACT_QUANT:
            mine = G.quantize(x, t)
            bad = np.nonzero((mine != ref).reshape(x.shape[0], -1, bs).any(axis=-1))
            check(len(bad[0]) == 0, f"{name}: numpy quantizer = ggml's quantize_row_{sfx}_ref, "
                  f"bit for bit ({len(bad[0])} of {ref.size // bs} blocks differ)")
        if tool and t in C_QUANT:
            got = c_quantize(tool, name, x).reshape(ref.shape)
            bad = int((got != ref).reshape(x.shape[0], -1, bs).any(axis=-1).sum())
            check(bad == 0, f"{name}: C quantizer = ggml's quantize_row_{sfx}_ref, bit for bit "
                  f"({bad} of {ref.size // bs} blocks differ)")
        junk = rng.integers(0, 256, size=(8, rb), dtype=np.uint8).reshape(8, -1, bs)
        for off in f16_at:
            d = (rng.standard_normal(junk.shape[:2]) * 0.01).astype("<f2")
            junk[:, :, off:off + 2] = d.view(np.uint8).reshape(junk.shape[:2] + (2,))
        raw = np.ascontiguousarray(np.concatenate([ref, junk.reshape(8, rb)]))
        want = np.zeros((raw.shape[0], n), np.float32)
        call_rows(getattr(lib, f"dequantize_row_{sfx}"), raw, want, n)
        got = G.dequantize(raw, t, n)
        diff = int((got.view(np.uint32) != want.view(np.uint32)).sum())
        check(diff == 0, f"{name}: numpy dequantize = ggml's dequantize_row_{sfx}, bit for bit "
              f"({diff} of {want.size} values differ)")
    print(f"{len(fails)} failures" if fails else "all passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
