#!/usr/bin/python3
"""Test vectors for the C 32-value block formats (engine/kernels/qlegacy.h), from the numpy
reference (ggml_formats.py): for each of Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL MXFP4,
  - float rows x (Gaussian at several scales, plus zero, constant, one-outlier, tiny and huge
    blocks) with the reference's quantized bytes and their dequantization, and
  - blocks of random bytes (any nibbles and high bits; finite f16 scales of any sign, including
    subnormals; every E8M0 exponent) with their dequantization.
tests/kernels/test_formats_legacy.c reads the file: its quantizer must give the same bytes and its
dequantizer the same float bits.

File (little endian): b"QLV1", u32 format count; per format: name (16 bytes, NUL padded),
u32 ggml type, u32 rows, u32 cols, f32 x[rows*cols], u8 q[rows*row_bytes], f32 deq[rows*cols],
u32 raw_rows, u8 raw[raw_rows*row_bytes], f32 raw_deq[raw_rows*cols].
Usage: legacy_vectors.py OUT"""
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_formats as G  # noqa: E402

FORMATS = [G.Q4_0, G.Q4_1, G.Q5_0, G.Q5_1, G.IQ4_NL, G.MXFP4]
ROWS, COLS, RAW_ROWS = 40, 256, 64


def float_rows(rng):
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    x *= (2.0 ** rng.integers(-12, 8, size=(ROWS, 1))).astype(np.float32)
    b = x.reshape(ROWS, COLS // 32, 32)
    b[0, 0] = 0                                   # zero block
    b[0, 1] = 0.75                                # constant block
    b[0, 2] = 0
    b[0, 2, 5] = -3.0                             # one outlier, the rest zero
    b[0, 3] = np.linspace(-1, 1, 32)              # evenly spaced: many rounding ties
    b[1, 0] = rng.standard_normal(32) * 1e-30     # tiny (the f16 scale underflows)
    b[1, 1] = np.abs(b[1, 1]) + 2                 # all positive (Q4_1 min > 0)
    b[1, 2] = -np.abs(b[1, 2]) - 2                # all negative
    b[1, 3] = rng.integers(-8, 8, 32)             # integers: exact grid points
    b[1, 4] = rng.standard_normal(32) * 1e4       # large (f16 min near its range)
    return x


def random_raw(rng, t):
    _, bs, ts = G.BLOCKS[t]
    raw = rng.integers(0, 256, size=(RAW_ROWS, COLS // bs, ts), dtype=np.uint8)
    if t == G.MXFP4:
        raw[..., 0] = np.arange(raw[..., 0].size).reshape(raw[..., 0].shape) % 256
        return raw.reshape(RAW_ROWS, -1)
    n_f16 = 2 if t in (G.Q4_1, G.Q5_1) else 1
    h = rng.integers(0, 0x10000, size=raw.shape[:-1] + (n_f16,), dtype=np.uint32)
    h = np.where((h & 0x7C00) == 0x7C00, h & ~np.uint32(0x4000), h)   # no inf / NaN scales
    h = h.astype("<u2")
    raw[..., :2 * n_f16] = h.view(np.uint8).reshape(raw.shape[:-1] + (2 * n_f16,))
    return raw.reshape(RAW_ROWS, -1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rng = np.random.default_rng(20260)
    out = [b"QLV1", struct.pack("<I", len(FORMATS))]
    for t in FORMATS:
        name = G.BLOCKS[t][0]
        x = float_rows(rng)
        q = G.quantize(x, t)
        deq = G.dequantize(q, t, COLS)
        raw = random_raw(rng, t)
        with np.errstate(over="ignore"):        # E8M0 255 x 12 is inf in float32
            raw_deq = G.dequantize(raw, t, COLS)
        out += [name.encode().ljust(16, b"\0"), struct.pack("<III", t, ROWS, COLS),
                x.astype("<f4").tobytes(), q.tobytes(), deq.astype("<f4").tobytes(),
                struct.pack("<I", RAW_ROWS), raw.tobytes(), raw_deq.astype("<f4").tobytes()]
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(out))
    os.replace(tmp, sys.argv[1])


if __name__ == "__main__":
    main()
