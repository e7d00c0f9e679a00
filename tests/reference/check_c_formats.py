#!/usr/bin/python3
"""The C formats (engine/kernels/format.c, run through tests/kernels/fmt_dump) against the numpy
reference (tests/reference/ggml_formats.py, itself checked against ggml's library by
tests/llamacpp/check_ggml_quants.py):
  dequant:  C's dequantizer of numpy's blocks of varied rows, and of random bytes (finite f16
            scales), equals numpy's, bit for bit;
  quantize: for the formats whose numpy quantizer is ggml's (EXACT), C's bytes equal numpy's, bit
            for bit, on Gaussian rows of several scales, all-zero, constant, tiny (either side of
            ggml's 1e-15 group threshold), one-outlier, one-signed and tie-heavy blocks.

usage: check_c_formats.py FMT_DUMP FORMAT...      (ggml names: Q5_K IQ4_XS ...)"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ggml_formats as G  # noqa: E402

EXACT = (G.Q2_K, G.Q3_K, G.Q5_K, G.IQ4_XS)
F16_AT = {G.Q4_K: [0, 2], G.Q6_K: [208], G.Q2_K: [80, 82], G.Q3_K: [108], G.Q5_K: [0, 2],
          G.IQ4_XS: [0], G.Q8_0: [0]}
fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def rows_under_test(n):
    rng = np.random.default_rng(41)
    x = rng.standard_normal((32, n)).astype(np.float32)
    x *= np.float32(10.0) ** rng.integers(-4, 3, size=(32, 1)).astype(np.float32)
    x[:, 256:512] *= (1 + np.arange(256) // 16 % 7).astype(np.float32)
    x[1, :256] = 0
    x[2, :256] = -0.75
    x[3, :256] *= np.float32(1e-17)
    x[4, :256] *= np.float32(1e-13)
    x[5, 9] = 500
    x[6] = np.abs(x[6])
    x[7] = -np.abs(x[7])
    x[8, :16] = 0
    x[8, 32:64] = 0
    x[9] = np.round(x[9] * 4) / 4
    x[10, :256] = np.float32(2.0) ** rng.integers(-3, 3, size=256).astype(np.float32)
    return x


def run(tool, mode, fmt, n, data, out_dtype, d):
    src, dst = os.path.join(d, "in"), os.path.join(d, "out")
    data.tofile(src)
    subprocess.run([tool, mode, fmt, str(n), src, dst], check=True)
    return np.fromfile(dst, dtype=out_dtype)


def main():
    tool, names = sys.argv[1], sys.argv[2:]
    n = 1024
    x = rows_under_test(n)
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            t = G.BY_NAME[name]
            bs = G.BLOCKS[t][2]
            rb = G.row_bytes(t, n)
            ref = G.quantize(x, t)
            if t in EXACT:
                got = run(tool, "quantize", name, n, x, np.uint8, d).reshape(ref.shape)
                bad = int((got != ref).reshape(x.shape[0], -1, bs).any(axis=-1).sum())
                check(bad == 0, f"{name}: C quantizer = numpy's (ggml's), bit for bit "
                      f"({bad} of {ref.size // bs} blocks differ)")
            junk = rng.integers(0, 256, size=(8, rb), dtype=np.uint8).reshape(8, -1, bs)
            for off in F16_AT.get(t, []):
                v = (rng.standard_normal(junk.shape[:2]) * 0.01).astype("<f2")
                junk[:, :, off:off + 2] = v.view(np.uint8).reshape(junk.shape[:2] + (2,))
            raw = np.ascontiguousarray(np.concatenate([ref, junk.reshape(8, rb)]))
            want = G.dequantize(raw, t, n)
            got = run(tool, "dequant", name, n, raw, np.float32, d).reshape(want.shape)
            diff = int((got.view(np.uint32) != want.view(np.uint32)).sum())
            check(diff == 0, f"{name}: C dequantizer = numpy's, bit for bit ({diff} of {want.size} differ)")
    print(f"{len(fails)} failures" if fails else "all passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
