#!/usr/bin/python3
"""numpy reference of moeserve's NVFP4 weights (engine/kernels/nvfp4.h), written from the
format's definition, not from the C code:

  NVIDIA NVFP4: 16 FP4 E2M1 values (sign + magnitudes 0 0.5 1 1.5 2 3 4 6) share one FP8 E4M3
  scale (bias 7, 3 mantissa bits, subnormals down to 2^-9, no infinities, largest 448), and a
  second FP32 scale g = amax / (6 * 448) multiplies them all; E4M3 scale = E4M3(amax(block) / 6
  / g). moeserve keeps g per super-block of 256 values (16 blocks) instead of per tensor.

Super-block (148 bytes): f32 d; u8 s[16] (E4M3); u8 qs[128]; value 32p + j (p < 8, j < 16) is
the low nibble of qs[16p + j], value 32p + 16 + j its high nibble; nibble bit 3 the sign.
All arithmetic float32, in the order the header gives:
  x = (E4M3(s[k]) * d) * e2m1                      (k = value index / 16)
  d = amax / 2688; s[k] = E4M3_nearest_even_saturating((amax_k / 6) / d), 0 if d == 0
  code = E2M1 nearest (ties to even code) to |x| / (E4M3(s[k]) * d), 0 if that scale is 0;
  sign bit only when code != 0 and x < 0.

Run as a script: writes the test vectors tests/kernels/test_nvfp4.c reads:
  b"NVF1", u32 rows, u32 cols, f32 x[rows*cols], u8 q[rows*row_bytes], f32 deq[rows*cols],
  u32 raw_rows, u8 raw[raw_rows*row_bytes], f32 raw_deq[raw_rows*cols].
Usage: nvfp4.py OUT"""
import os
import struct
import sys

import numpy as np

SUPER, BLOCK, SB_BYTES = 256, 16, 148
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float32)


def e4m3_value(c):
    """float32 values of E4M3 bytes (0x7F / 0xFF are NaN in the spec; given as +-480, what the
    bits would say as a normal number, since the C reader does not special-case them)."""
    c = np.asarray(c, dtype=np.int64)
    e, m = (c >> 3) & 15, c & 7
    mag = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e - 7))
    return np.where(c & 0x80, -mag, mag).astype(np.float32)


E4M3_POS = e4m3_value(np.arange(0x7F))  # codes 0..0x7E, increasing, 0 .. 448


def e4m3_encode(v):
    """nearest E4M3 code to v >= 0 (ties to the even code), saturating at 448; 0 for v <= 0."""
    v = np.asarray(v, dtype=np.float64)
    hi = np.clip(np.searchsorted(E4M3_POS, v), 1, len(E4M3_POS) - 1)
    lo = hi - 1
    dl, dh = v - E4M3_POS[lo], E4M3_POS[hi] - v
    pick = np.where(dl < dh, lo, np.where(dh < dl, hi, np.where(lo % 2 == 0, lo, hi)))
    pick = np.where(v >= 448, 0x7E, pick)
    return np.where(v > 0, pick, 0).astype(np.uint8)


def e2m1_code(a):
    """nearest E2M1 magnitude code to a >= 0 (ties to the even code), 7 above 6."""
    a = np.asarray(a, dtype=np.float64)
    hi = np.clip(np.searchsorted(E2M1, a), 1, 7)
    lo = hi - 1
    dl, dh = a - E2M1[lo], E2M1[hi] - a
    return np.where(dl < dh, lo, np.where(dh < dl, hi, np.where(lo % 2 == 0, lo, hi))).astype(np.uint8)


def quantize(x):
    """float32 rows [R, C] (C % 256 == 0) -> uint8 [R, C / 256 * 148]"""
    x = np.asarray(x, dtype=np.float32)
    R, C = x.shape
    xs = x.reshape(R, C // SUPER, SUPER // BLOCK, BLOCK)
    amax = np.abs(xs).max(axis=(2, 3))
    d = (amax / np.float32(2688)).astype(np.float32)
    bam = np.abs(xs).max(axis=3)
    with np.errstate(divide="ignore", invalid="ignore"):
        sin = ((bam / np.float32(6)).astype(np.float32) / d[..., None]).astype(np.float32)
    s = np.where(d[..., None] > 0, e4m3_encode(sin), 0).astype(np.uint8)
    sc = (e4m3_value(s) * d[..., None]).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (np.abs(xs) / sc[..., None]).astype(np.float32)
    code = np.where(sc[..., None] > 0, e2m1_code(np.nan_to_num(v)), 0).astype(np.uint8)
    code = np.where((code > 0) & (xs < 0), code | 8, code).astype(np.uint8)
    code = code.reshape(R, C // SUPER, 8, 32)
    qs = (code[..., :16] | (code[..., 16:] << 4)).reshape(R, C // SUPER, 128)
    out = np.zeros((R, C // SUPER, SB_BYTES), dtype=np.uint8)
    out[..., 0:4] = d.astype("<f4").view(np.uint8).reshape(R, C // SUPER, 4)
    out[..., 4:20] = s
    out[..., 20:] = qs
    return out.reshape(R, -1)


def dequantize(q, C):
    q = np.asarray(q, dtype=np.uint8)
    R = q.shape[0]
    b = q.reshape(R, C // SUPER, SB_BYTES)
    d = b[..., 0:4].copy().view("<f4").reshape(R, C // SUPER)
    sc = (e4m3_value(b[..., 4:20]) * d[..., None]).astype(np.float32)   # [R, S, 16]
    qs = b[..., 20:].reshape(R, C // SUPER, 8, 16)
    code = np.concatenate([qs & 15, qs >> 4], axis=-1).reshape(R, C // SUPER, 16, 16)
    val = np.where(code & 8, -E2M1[code & 7], E2M1[code & 7]).astype(np.float32)
    with np.errstate(over="ignore"):
        return (sc[..., None] * val).astype(np.float32).reshape(R, C)


ROWS, COLS, RAW_ROWS = 24, 512, 32


def float_rows(rng):
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    x *= (2.0 ** rng.integers(-14, 8, size=(ROWS, 1))).astype(np.float32)
    b = x.reshape(ROWS, COLS // BLOCK, BLOCK)
    b[0, 0] = 0                                   # zero block beside nonzero ones
    b[0, 1] = 0.75                                # constant block
    b[0, 2] = 0
    b[0, 2, 5] = -3.0                             # one outlier
    b[0, 3] = np.linspace(-1, 1, 16)              # evenly spaced: rounding ties
    b[1, 0] = rng.standard_normal(16) * 1e-3      # a quiet block under a loud one: E4M3 subnormal
    b[1, 1] = rng.standard_normal(16) * 100
    x[2, :256] = 0                                # an all-zero super-block
    x[3, :256] = rng.standard_normal(256) * 1e-30  # tiny: d subnormal
    x[4] = rng.integers(-6, 7, COLS)               # grid points
    x[5] = rng.standard_normal(COLS) * 1e30        # huge
    return x


def random_raw(rng):
    raw = rng.integers(0, 256, size=(RAW_ROWS, COLS // SUPER, SB_BYTES), dtype=np.uint8)
    s = raw[..., 4:20]
    raw[..., 4:20] = np.where((s & 0x7F) == 0x7F, s & 0xFE, s)        # no NaN scales
    d = (rng.standard_normal((RAW_ROWS, COLS // SUPER)) * 2.0 ** rng.integers(-20, 10, (RAW_ROWS, COLS // SUPER)))
    raw[..., 0:4] = d.astype("<f4").view(np.uint8).reshape(RAW_ROWS, COLS // SUPER, 4)
    return raw.reshape(RAW_ROWS, -1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rng = np.random.default_rng(16016)
    x = float_rows(rng)
    q = quantize(x)
    raw = random_raw(rng)
    out = [b"NVF1", struct.pack("<II", ROWS, COLS), x.astype("<f4").tobytes(), q.tobytes(),
           dequantize(q, COLS).astype("<f4").tobytes(), struct.pack("<I", RAW_ROWS), raw.tobytes(),
           dequantize(raw, COLS).astype("<f4").tobytes()]
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"".join(out))
    os.replace(tmp, sys.argv[1])


if __name__ == "__main__":
    main()
