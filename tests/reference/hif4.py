#!/usr/bin/python3
"""HiFloat4 (HiF4) in numpy, written from the format's definition (arXiv 2602.11287 and its
authors' reference converter To_HiFX; layout and rules in engine/kernels/hif4.h), independent of
the C: float64 arithmetic, np.frexp exponents, np.round (half even) for the bf16 and E6M2
roundings, floor(v + 0.5) (half away) for the elements, bf16(1 / E6M2) computed, not tabled.

  hif4.py                 hand-computed units against this encoder and decoder
  hif4.py FMT_DUMP        also: the C quantizer's bytes and dequantizer's bits (through
                          tests/kernels/fmt_dump) equal numpy's on hand units, Gaussian rows of
                          many scales, Student-t(3) rows, and (dequantizer) random bytes.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

UNIT = 64
UNIT_BYTES = 36
BIAS = 48
fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def bf16(x):
    """x >= 0 (float64 array) to the nearest bf16, ties to even, subnormals kept"""
    x = np.asarray(x, dtype=np.float64)
    _, e = np.frexp(x)
    E = np.maximum(e - 1, -126)
    return np.where(x == 0, 0.0, np.round(np.ldexp(x, 7 - E)) * np.ldexp(1.0, E - 7))


def e6m2(sf):
    """scale factors to (value, byte): clamp to [2^-48, 1.5 * 2^15], 2 mantissa bits, ties even"""
    sf = np.clip(sf, 2.0 ** -BIAS, 1.5 * 2.0 ** 15)
    _, e = np.frexp(sf)
    v = np.round(np.ldexp(sf, 3 - e)) * np.ldexp(1.0, e - 3)
    _, e = np.frexp(v)
    E = e - 1
    m = (np.ldexp(v, -E) * 4 - 4).astype(np.int64)
    return v, ((E + BIAS) << 2 | m).astype(np.uint8)


def encode(x):
    """rows [r, n] (n % 64 == 0) -> bytes [r, n / 64 * 36]"""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    r, n = x.shape
    u = x.reshape(r, n // UNIT, UNIT)
    a = np.abs(u)
    v4 = a.reshape(r, -1, 16, 4).max(axis=3)
    v8 = v4.reshape(r, -1, 8, 2).max(axis=3)
    vmax = v8.max(axis=2)
    scale, ebyte = e6m2(bf16(vmax * bf16(1.0 / 7.0)))
    rec = bf16(1.0 / scale)[..., None]
    b8 = (v8 * rec >= 4).astype(np.int64)                                  # [r, nu, 8]
    b16 = (v4 * rec * np.ldexp(1.0, -np.repeat(b8, 2, axis=2)) >= 2).astype(np.int64)  # [r, nu, 16]
    shift = np.repeat(b8, 8, axis=2) + np.repeat(b16, 4, axis=2)           # [r, nu, 64]
    c = np.minimum(np.floor(a * rec * np.ldexp(1.0, 2 - shift) + 0.5), 7).astype(np.uint8)
    code = c | (u < 0).astype(np.uint8) << 3
    out = np.zeros((r, n // UNIT, UNIT_BYTES), dtype=np.uint8)
    out[..., 0] = ebyte
    out[..., 1] = (b8 << np.arange(8)).sum(axis=2)
    e16 = (b16 << np.arange(16)).sum(axis=2)
    out[..., 2] = e16 & 0xFF
    out[..., 3] = e16 >> 8
    out[..., 4:] = code[..., :32] | code[..., 32:] << 4
    return out.reshape(r, -1)


def decode(b, n):
    """bytes [r, n / 64 * 36] -> float32 [r, n]"""
    b = np.asarray(b, dtype=np.uint8).reshape(-1, n // UNIT, UNIT_BYTES)
    eb = b[..., 0].astype(np.int64)
    scale = np.ldexp(1 + (eb & 3) / 4.0, (eb >> 2) - BIAS)
    scale = np.where(eb == 0xFF, np.nan, scale)
    e8 = b[..., 1].astype(np.int64)
    e16 = b[..., 2].astype(np.int64) | b[..., 3].astype(np.int64) << 8
    i = np.arange(UNIT)
    shift = (e8[..., None] >> (i // 8) & 1) + (e16[..., None] >> (i // 4) & 1)
    qs = b[..., 4:].astype(np.int64)
    code = np.concatenate([qs & 0xF, qs >> 4], axis=2)
    mag = (code & 7) / 4.0 * np.ldexp(1.0, shift) * scale[..., None]
    return np.where(code & 8, -mag, mag).astype(np.float32).reshape(b.shape[0], n)


def unit_bytes(ebyte, e8, e16, codes):
    """a unit's 36 bytes from its fields; codes {value index: 4-bit code}"""
    c = np.zeros(UNIT, dtype=np.uint8)
    for i, v in codes.items():
        c[i] = v
    return np.concatenate([[ebyte, e8, e16 & 0xFF, e16 >> 8], c[:32] | c[32:] << 4]).astype(np.uint8)


def hand_units():
    """(description, 64 inputs, expected bytes, expected decoded values), computed by hand"""
    cases = []
    x = np.zeros(UNIT, dtype=np.float32)
    cases.append(("all zero: E6M2 clamps to 2^-48 (byte 0), all codes 0", x, unit_bytes(0, 0, 0, {}), x))
    # 1.75 * bf16(1/7) = 1.75 * 0.142578125 = 0.24951171875 -> bf16 tie 255.5/128 -> even -> 0.25;
    # E6M2 2^-2 (e 46, byte 0xB8), R = 4; V8 R = 7 >= 4, V4 R / 2 = 3.5 >= 2: every bit set;
    # c = floor(1.75 * 4 + 0.5) = 7
    x = np.full(UNIT, 1.75, dtype=np.float32)
    cases.append(("all 1.75: every micro-exponent set, c = 7", x,
                  unit_bytes(0xB8, 0xFF, 0xFFFF, {i: 7 for i in range(UNIT)}), x))
    # 7 * 0.142578125 = 0.998046875 -> bf16 1.0 -> E6M2 1.0 (0xC0), R = 1; group of 8 0: 7 >= 4
    # (E1_8 bit 0); groups of 4: 0 (7/2 >= 2), 4 (value 16: 3 >= 2) set, 2 (0.75) not;
    # codes: 7 (shift 2, 7 -> 7), 3 (shift 0, 0.75*4), -6 (shift 1, 3*2) = 8|6
    x = np.zeros(UNIT, dtype=np.float32)
    x[0], x[8], x[16] = 7.0, 0.75, -3.0
    cases.append(("three levels: E1_8 g0, E1_16 k0 and k4", x, unit_bytes(0xC0, 0x01, 0x0011, {0: 7, 8: 3, 16: 14}),
                  x))
    # 7.875 * 0.142578125 = 1.122802734375 -> bf16 144/128 = 1.125 -> E6M2 tie between 1.0 and
    # 1.25 -> even: 1.0 (0xC0); E1_8 g0, E1_16 k0 set (shift 2); c = floor(7.875 + 0.5) = 8 ->
    # clipped to 7, decoded 7; value 1 = 0.625 in the same group: floor(0.625 + 0.5) = 1 -> 1;
    # value 4 = 2.5 (group of 4 1: 2.5/2 >= 2 is false, shift 1): floor(2.5 * 2 + 0.5) = 5 -> 2.5
    x = np.zeros(UNIT, dtype=np.float32)
    x[0], x[1], x[4] = 7.875, 0.625, 2.5
    cases.append(("E6M2 tie to even, element clip at 7", x, unit_bytes(0xC0, 0x01, 0x0001, {0: 7, 1: 1, 4: 5}),
                  np.array([7.0, 1.0, 0, 0, 2.5] + [0] * 59, dtype=np.float32)))
    # 1.75 -> E6M2 0.25, R = 4 (as above), group 0 shift 2: 0.625 * 4 * 1 + 0.5 = 3 -> 3
    # (half away: 2.5 -> 3, ties-to-even would give 2), decoded 0.25 * 4 * 3/4 = 0.75; value 4
    # = 0.3 (group of 4 1: 1.2/2 < 2, shift 1): floor(0.3 * 4 * 2 + 0.5) = 2 -> 0.25;
    # value 32 = -0.03 (group 8 4 and group 4 8 clear, shift 0): floor(0.48 + 0.5) = 0 with
    # the sign: code 8, decoded -0.0
    x = np.zeros(UNIT, dtype=np.float32)
    x[0], x[2], x[4], x[32] = 1.75, 0.625, 0.3, -0.03
    cases.append(("element tie half away, shift 1, negative zero", x,
                  unit_bytes(0xB8, 0x01, 0x0001, {0: 7, 2: 3, 4: 2, 32: 8}),
                  np.array([1.75, 0, 0.75, 0, 0.25] + [0] * 27 + [-0.0] + [0] * 31, dtype=np.float32)))
    # the largest scale: 1e6 * 0.142578125 -> E6M2 clamps to 49152 = 1.5 * 2^15 (e 63, m 2: 0xFE)
    x = np.zeros(UNIT, dtype=np.float32)
    x[63] = 1e6
    rec = 2.0 ** -16 * 171 / 128  # bf16(1/49152)
    c = min(7, int(np.floor(1e6 * rec * 1 + 0.5)))
    cases.append(("E6M2 clamps at 49152", x, unit_bytes(0xFE, 0x80, 0x8000, {63: c}),
                  np.array([0] * 63 + [49152 * 4 * c / 4], dtype=np.float32)))
    return cases


def check_hand():
    for what, x, want, val in hand_units():
        got = encode(x[None])[0]
        check(np.array_equal(got, want), f"numpy encoder, hand unit: {what}")
        dec = decode(want[None], UNIT)[0]
        check(np.array_equal(dec.view(np.uint32), val.view(np.uint32)), f"numpy decoder, hand unit: {what}")


def rows_under_test(n, rng):
    g = rng.standard_normal((48, n)).astype(np.float32)
    g *= np.float32(2.0) ** rng.integers(-60, 40, size=(48, 1)).astype(np.float32)
    t = rng.standard_t(3, size=(48, n)).astype(np.float32)
    t *= np.float32(10.0) ** rng.integers(-3, 3, size=(48, 1)).astype(np.float32)
    bf = (g[:8].view(np.uint32) & 0xFFFF0000).view(np.float32)  # bf16-valued rows, as from a checkpoint
    return np.concatenate([g, t, bf, np.stack([h[1] for h in hand_units()])[:, :n] if n == UNIT else g[:0]])


def run(tool, mode, n, data, out_dtype, d):
    src, dst = os.path.join(d, "in"), os.path.join(d, "out")
    data.tofile(src)
    subprocess.run([tool, mode, "HIF4", str(n), src, dst], check=True)
    return np.fromfile(dst, dtype=out_dtype)


def check_c(tool):
    rng = np.random.default_rng(16)
    with tempfile.TemporaryDirectory() as d:
        for n in (UNIT, 2048):
            x = rows_under_test(n, rng)
            want = encode(x)
            got = run(tool, "quantize", n, x, np.uint8, d).reshape(want.shape)
            bad = np.nonzero((got != want).any(axis=1))[0]
            check(len(bad) == 0, f"C quantizer = numpy, {x.shape[0]} rows of {n} (Gaussian 2^-60..2^40, "
                  f"Student-t(3), bf16-valued{', hand units' if n == UNIT else ''}); bad rows {bad[:5]}")
            for src, what in ((want, "numpy's units"), (None, "random bytes")):
                if src is None:
                    src = rng.integers(0, 256, size=want.shape, dtype=np.uint8)
                    src[:, ::UNIT_BYTES][src[:, ::UNIT_BYTES] == 0xFF] = 0xFE
                dec = decode(src, n)
                got = run(tool, "dequant", n, src, np.float32, d).reshape(dec.shape)
                check(np.array_equal(got.view(np.uint32), dec.view(np.uint32)),
                      f"C dequantizer = numpy, bit for bit, {what}, rows of {n}")
        g = rng.standard_normal((64, 4096)).astype(np.float32)
        err = decode(encode(g), 4096) - g
        print(f"info: HiF4 on N(0,1): relative MSE {np.mean(err ** 2) / np.mean(g ** 2):.5f}")


if __name__ == "__main__":
    check_hand()
    if len(sys.argv) > 1:
        check_c(sys.argv[1])
    print(f"{len(fails)} failures" if fails else "all ok")
    sys.exit(1 if fails else 0)
