#!/usr/bin/python3
"""Checks tests/reference/ggml_formats.py two ways:
(a) dequantizing hand-built blocks gives values computed by hand from the block layouts;
(b) quantize -> dequantize of Gaussian rows stays within each format's expected error: the
    relative RMS error of a uniform quantizer with step d is about d/sqrt(12) over the block's
    RMS; the bounds below are those estimates with ~25% headroom (and exact for F32).
Also round-trips a GGUF through tools/gguf_write.py (writer, then its reader)."""
import os
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import ggml_formats as G  # noqa: E402
from gguf_write import GGUF, GGML, GGUFReader, GGUFWriter  # noqa: E402

fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def f16(v):
    return struct.pack("<e", v)


def hand_blocks():
    nib = bytes([0x1F] + [0x88] * 15)             # q[0]=15, q[16]=1, others 8
    cases = {
        G.Q8_0: (f16(0.5) + bytes([0xFD, 0x01] + [0] * 30),          # q = -3, 1, 0...
                 [-1.5, 0.5] + [0] * 30),
        G.Q4_0: (f16(2.0) + nib, [14] + [0] * 15 + [-14] + [0] * 15),
        G.Q4_1: (f16(2.0) + f16(-1.0) + nib, [29] + [15] * 15 + [1] + [15] * 15),
        # qh bit 0 set -> q[0] = 16+15 = 31 -> (31-16)*1 = 15; q[16] = 1 -> -15; rest 8 -> -8
        G.Q5_0: (f16(1.0) + struct.pack("<I", 1) + nib, [15] + [-8] * 15 + [-15] + [-8] * 15),
        G.Q5_1: (f16(1.0) + f16(0.5) + struct.pack("<I", 1 << 16) + nib,
                 [15.5] + [8.5] * 15 + [17.5] + [8.5] * 15),
        G.IQ4_NL: (f16(0.5) + nib, [56.5] + [0.5] * 15 + [-52] + [0.5] * 15),
        # e = 129 -> scale 2^(129-128) = 2; q=15 -> -12*2, q=1 -> 1*2, q=8 -> 0 ("-0")
        G.MXFP4: (bytes([129]) + nib, [-24] + [0] * 15 + [2] + [0] * 15),
        G.BF16: (struct.pack("<HH", 0x3FC0, 0xC000), [1.5, -2.0]),
        G.F16: (f16(0.25) + f16(-3.0), [0.25, -3.0]),
    }
    for t, (raw, want) in cases.items():
        got = G.dequantize(np.frombuffer(raw, np.uint8), t, len(want))[0]
        check(np.array_equal(got, np.array(want, np.float32)), f"{G.BLOCKS[t][0]} hand block")


def hand_superblocks():
    """One block of each super-block format with chosen fields; a few values worked out by hand
    from the layout, then every value by a per-index scalar reading of the layout."""
    qs64 = bytes((7 * i + 3) % 256 for i in range(64))
    qs128 = bytes((11 * i + 5) % 256 for i in range(128))
    # Q2_K: scales[16] = sc | m << 4, qs[64], d, dmin; value i: half i // 128, shift 2 ((i % 128) // 32)
    sc2 = bytes(((j % 15) + 1) | ((j % 4) << 4) for j in range(16))
    raw = sc2 + qs64 + f16(0.5) + f16(0.25)
    y = G.dequantize(np.frombuffer(raw, np.uint8), G.Q2_K, 256)[0]
    # y[0]: qs[0] = 3 -> q = 3, sc 1, m 0: 0.5*1*3 - 0 = 1.5; y[40]: qs[8] = 59 = 0b111011, shift 2
    # -> q = 2, group 2 (sc 3, m 2): 0.5*3*2 - 0.25*2 = 2.5
    want = [0.5 * (sc2[i // 16] & 15) * ((qs64[32 * (i // 128) + i % 32] >> (2 * ((i % 128) // 32))) & 3)
            - 0.25 * (sc2[i // 16] >> 4) for i in range(256)]
    check(y[0] == 1.5 and y[40] == 2.5 and np.array_equal(y, np.float32(want)), "Q2_K hand block")
    # Q3_K: hmask[32], qs[64], scales[12], d; value i: q = 2 low bits as Q2_K, minus 4 unless bit
    # i // 32 of hmask[i % 32]; scale j: low 4 bits in byte j % 8 (high nibble for j >= 8), high
    # 2 bits in byte 8 + j % 4 at bit 2 (j // 4)
    hm = bytes((0x5A ^ i) for i in range(32))
    sc6 = [(5 * j + 17) % 64 for j in range(16)]
    sc3 = [0] * 12
    for j in range(16):
        sc3[j % 8] |= (sc6[j] & 15) << (4 * (j // 8))
        sc3[8 + j % 4] |= (sc6[j] >> 4) << (2 * (j // 4))
    raw = hm + qs64 + bytes(sc3) + f16(2.0)
    y = G.dequantize(np.frombuffer(raw, np.uint8), G.Q3_K, 256)[0]
    # y[0]: q = 3, hmask[0] = 0x5A bit 0 clear -> 3 - 4 = -1, scale 17 - 32 = -15: 2*-15*-1 = 30
    want = [2.0 * (sc6[i // 16] - 32) * (((qs64[32 * (i // 128) + i % 32] >> (2 * ((i % 128) // 32))) & 3)
            - (0 if hm[i % 32] >> (i // 32) & 1 else 4)) for i in range(256)]
    check(y[0] == 30 and np.array_equal(y, np.float32(want)), "Q3_K hand block")
    # Q5_K: d, dmin, scales[12] (Q4_K's packing), qh[32], qs[128]; value i: sub-block j = i // 32,
    # low nibble of qs[32 (j // 2) + i % 32] (high nibble for odd j), 5th bit = bit j of qh[i % 32]
    ls = [1, 2, 3, 4, 17, 33, 5, 63]
    lm = [0, 1, 2, 3, 16, 0, 0, 9]
    pk = [0] * 12
    for j in range(4):
        pk[j] = ls[j] | ((ls[j + 4] >> 4) << 6)
        pk[j + 4] = lm[j] | ((lm[j + 4] >> 4) << 6)
        pk[j + 8] = (ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4)
    qh = bytes((0xC3 + 5 * i) % 256 for i in range(32))
    raw = f16(1.0) + f16(0.5) + bytes(pk) + qh + qs128
    y = G.dequantize(np.frombuffer(raw, np.uint8), G.Q5_K, 256)[0]
    # y[0]: qs[0] = 5 -> 5, qh[0] = 0xC3 bit 0 set -> 21: 1*1*21 - 0 = 21
    want = [ls[i // 32] * (((qs128[32 * (i // 64) + i % 32] >> (4 * ((i // 32) % 2))) & 15)
                           + 16 * (qh[i % 32] >> (i // 32) & 1)) - 0.5 * lm[i // 32] for i in range(256)]
    check(y[0] == 21 and np.array_equal(y, np.float32(want)), "Q5_K hand block")
    # IQ4_XS: d, scales_h (u16, 2 bits per sub-block), scales_l[4] (a nibble per sub-block), qs[128]
    # (sub-block j: qs[16 j ..], low nibbles its first 16 values); x = d (ls - 32) kvalues[q]
    ls6 = [0, 31, 32, 33, 63, 40, 20, 1]
    sh = sum((v >> 4) << (2 * j) for j, v in enumerate(ls6))
    sl = bytes((ls6[2 * k] & 15) | ((ls6[2 * k + 1] & 15) << 4) for k in range(4))
    raw = f16(0.5) + struct.pack("<H", sh) + sl + qs128
    y = G.dequantize(np.frombuffer(raw, np.uint8), G.IQ4_XS, 256)[0]
    kv = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
    # y[0]: q = qs[0] & 15 = 5 -> -35, ls 0: 0.5*-32*-35 = 560
    want = [0.5 * (ls6[i // 32] - 32) * kv[(qs128[16 * (i // 32) + i % 16] >> (4 * ((i % 32) // 16))) & 15]
            for i in range(256)]
    check(y[0] == 560 and np.array_equal(y, np.float32(want)), "IQ4_XS hand block")


BOUNDS = {G.F32: 0.0, G.F16: 4e-4, G.BF16: 3e-3, G.Q8_0: 0.008, G.Q4_0: 0.11, G.Q4_1: 0.10,
          G.Q5_0: 0.055, G.Q5_1: 0.05, G.IQ4_NL: 0.10, G.MXFP4: 0.15, G.Q4_K: 0.10, G.Q6_K: 0.025,
          G.Q2_K: 0.36, G.Q3_K: 0.17, G.Q5_K: 0.045, G.IQ4_XS: 0.09}


def round_trips():
    x = np.random.default_rng(7).standard_normal((256, 512)).astype(np.float32)
    x[0, :32] = 0                                 # an all-zero block must give zeros, not NaN
    for t, bound in BOUNDS.items():
        raw = G.quantize(x, t)
        check(raw.shape == (256, G.row_bytes(t, 512)), f"{G.BLOCKS[t][0]} row bytes")
        y = G.dequantize(raw, t, 512)
        err = float(np.sqrt(((x - y) ** 2).mean() / (x ** 2).mean()))
        check(np.all(np.isfinite(y)) and err <= bound,
              f"{G.BLOCKS[t][0]} round trip rel RMS {err:.3g} <= {bound}")
        check(np.all(y[0, :32] == 0), f"{G.BLOCKS[t][0]} zero block")


def gguf_round_trip():
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.gguf")
        w = GGUFWriter(p)
        w.add_uint32("general.alignment", 64)
        w.add_string("s", "héllo")
        w.add_array("as", ["a", "", "ccc"], GGUF.STRING)
        w.add_array("ai", [-1, 2, 3], GGUF.INT32)
        w.add_array("af", [0.5, -2.0], GGUF.FLOAT32)
        w.add_bool("b", True)
        w.add_uint64("u64", 1 << 40)
        w.add_float64("f64", 0.1)
        w.add_uint16("u16", 7)
        a = np.arange(15, dtype=np.float32).reshape(3, 5)
        w.add_tensor_info("a", a.shape, GGML.F32)
        q = G.quantize(np.ones((2, 64), np.float32), G.Q8_0)
        w.add_tensor_info("q", (2, 64), GGML.Q8_0)
        w.write_header()
        w.write_tensor_data("a", a)
        w.write_tensor_data("q", q)
        w.close()
        r = GGUFReader(p)
        check(r.kv == {"general.alignment": 64, "s": "héllo", "as": ["a", "", "ccc"],
                       "ai": [-1, 2, 3], "af": [0.5, -2.0], "b": True, "u64": 1 << 40,
                       "f64": 0.1, "u16": 7}, "gguf kvs read back")
        check(r.tensors["a"]["ne"] == [5, 3] and r.tensors["q"]["ne"] == [64, 2],
              "gguf ne order (ne[0] = row length)")
        check(r.data_offset % 64 == 0 and all(t["offset"] % 64 == 0 for t in r.tensors.values()),
              "gguf alignment honoured")
        check(np.array_equal(np.frombuffer(r.tensor_bytes("a"), "<f4").reshape(3, 5), a)
              and r.tensor_bytes("q") == q.tobytes(), "gguf tensor data read back")


hand_blocks()
hand_superblocks()
round_trips()
gguf_round_trip()
print(f"{len(fails)} failures" if fails else "all passed")
sys.exit(1 if fails else 0)
