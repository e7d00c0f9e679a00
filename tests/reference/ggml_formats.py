#!/usr/bin/python3
"""numpy reference for ggml's tensor block formats: layouts, dequantizers and quantizers.

Written from the block layouts (ggml-common.h's block_* structs as documented) and the
semantics of ggml's quantize_row_*_ref, independently of the C engine. Everything works on
a 2-D float array x of shape (rows, row_len) at once (vectorised over rows x blocks);
row_len must be a multiple of the format's block size. quantize() returns the raw bytes as a
uint8 array of shape (rows, bytes_per_row), which is exactly what a GGUF tensor holds;
dequantize(raw, type, row_len) returns float32 (rows, row_len).

Formats here (ggml type ids as in ggml.h):
  F32 0, F16 1, BF16 30       exact / round-to-nearest-even conversions
  Q8_0 8   f16 d; i8 q[32]                        x = d*q
  Q4_0 2   f16 d; u8 qs[16] (q[j] | q[j+16]<<4)   x = d*(q-8)
  Q4_1 3   f16 d, f16 m; u8 qs[16]                x = d*q + m
  Q5_0 6   f16 d; u32 qh (bit j = 5th bit of q[j]); u8 qs[16]   x = d*(q-16)
  Q5_1 7   f16 d, f16 m; u32 qh; u8 qs[16]        x = d*q + m
  IQ4_NL 20  f16 d; u8 qs[16]                     x = d*kvalues_iq4nl[q]
  MXFP4 39   u8 e (E8M0); u8 qs[16]               x = 2^(e-128) * kvalues_mxfp4[q]
  Q4_K 12  f16 d, f16 dmin; u8 scales[12] (8 6-bit scale/min pairs); u8 qs[128]
           super-block of 256 = 8 sub-blocks of 32: x = d*sc[j]*q - dmin*m[j]
  Q6_K 14  u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), i8 scales[16], f16 d
           16 sub-blocks of 16: x = d*scales[j]*(q-32)
  Q2_K 10  u8 scales[16] (4-bit scale | 4-bit min << 4), u8 qs[64], f16 d, f16 dmin
           16 sub-blocks of 16: x = d*sc[j]*q - dmin*m[j], q in 0..3
  Q3_K 11  u8 hmask[32] (high bit), u8 qs[64] (low 2 bits), u8 scales[12] (16 6-bit), f16 d
           16 sub-blocks of 16: x = d*(sc[j]-32)*(q-4), q in 0..7
  Q5_K 13  f16 d, f16 dmin; u8 scales[12] (as Q4_K); u8 qh[32] (5th bits); u8 qs[128]
           8 sub-blocks of 32: x = d*sc[j]*q - dmin*m[j], q in 0..31
  IQ4_XS 23  f16 d; u16 scales_h (2 high bits each); u8 scales_l[4] (4 low bits each); u8 qs[128]
           8 sub-blocks of 32: x = d*(ls[j]-32)*kvalues_iq4nl[q]

Quantizer semantics: Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/MXFP4 follow ggml's reference quantizers
(scale from the block's absolute maximum or min/max; Q8_0 rounds half away from zero, the 4/5-bit
ones add 0.5 (or 8.5/16.5) and truncate, as the C casts do). IQ4_NL here uses the max-|x| scale
d = max/kvalues[0] and the nearest codebook entry with one least-squares refit of d, which is
simpler than ggml's search over 7 scale candidates: its error is a little larger, and its bytes
need not equal ggml's, but the dequantizer (what a reader must get right) is exact.
Q4_K and Q6_K likewise use a simple first-guess quantizer (sub-block scale from min/max or
max-|x|, then the 6-/8-bit quantization of the sub-block scales exactly as ggml stores them),
not ggml's iterative make_qkx2_quants/make_qx_quants search: the bytes are valid blocks
that llama.cpp reads the same way, with a somewhat larger error than ggml's own quantizer.
Q2_K, Q3_K, Q5_K and IQ4_XS follow ggml's reference quantizers step by step (quantize_row_q2_K_ref,
_q3_K_ref, _q5_K_ref and _iq4_xs_ref, i.e. make_qkx2_quants, make_q3_quants and the IQ4 scale
search without an importance matrix), in float32 and in ggml's order of operations (sums run
element by element, vectorised only across blocks), so their bytes are ggml's bit for bit
(tests/llamacpp/check_ggml_quants.py checks that against ggml's own library). The same holds for
their dequantizers.
"""
import numpy as np

F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 = 0, 1, 2, 3, 6, 7, 8
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K = 10, 11, 12, 13, 14
IQ4_NL, IQ4_XS, BF16, MXFP4 = 20, 23, 30, 39

# type -> (name, block elements, block bytes)
BLOCKS = {F32: ("F32", 1, 4), F16: ("F16", 1, 2), BF16: ("BF16", 1, 2),
          Q8_0: ("Q8_0", 32, 34), Q4_0: ("Q4_0", 32, 18), Q4_1: ("Q4_1", 32, 20),
          Q5_0: ("Q5_0", 32, 22), Q5_1: ("Q5_1", 32, 24), IQ4_NL: ("IQ4_NL", 32, 18),
          MXFP4: ("MXFP4", 32, 17), Q4_K: ("Q4_K", 256, 144), Q6_K: ("Q6_K", 256, 210),
          Q2_K: ("Q2_K", 256, 84), Q3_K: ("Q3_K", 256, 110), Q5_K: ("Q5_K", 256, 176),
          IQ4_XS: ("IQ4_XS", 256, 136)}
BY_NAME = {v[0]: k for k, v in BLOCKS.items()}

KVALUES_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10,
                          1, 13, 25, 38, 53, 69, 89, 113], dtype=np.float32)
# ggml stores the E2M1 values doubled (so they are integers) and halves the E8M0 scale instead
KVALUES_MXFP4 = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12],
                         dtype=np.float32)


def row_bytes(ggml_type, row_len):
    _, bs, ts = BLOCKS[ggml_type]
    if row_len % bs:
        raise ValueError(f"row length {row_len} is not a multiple of {bs}")
    return row_len // bs * ts


# ---- helpers --------------------------------------------------------------------------------
def _f16_bytes(v):                      # (..., ) float -> (..., 2) u8
    return v.astype("<f2").view(np.uint8).reshape(v.shape + (2,))


def _f16_read(b):                       # (..., 2) u8 -> (...) float32
    return np.ascontiguousarray(b).view("<f2")[..., 0].astype(np.float32)


def _safe_inv(d):
    with np.errstate(divide="ignore"):
        return np.where(d != 0, 1.0 / np.where(d != 0, d, 1), 0).astype(np.float32)


def _trunc_i(v):
    """C's (int8_t) cast of a float: truncation toward zero."""
    return np.trunc(v).astype(np.int32)


def _round_away(v):
    """C's roundf: half away from zero."""
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int32)


def _pack_nibbles(q):                   # (..., 32) ints 0..15 -> (..., 16) u8
    return (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)


def _unpack_nibbles(qs):                # (..., 16) u8 -> (..., 32) ints
    return np.concatenate([qs & 0xF, qs >> 4], axis=-1).astype(np.int32)


def _pack_qh(q):                        # (..., 32) 5-bit ints -> (..., 4) u8 of a LE u32
    bits = ((q >> 4) & 1).astype(np.uint32)
    qh = (bits << np.arange(32, dtype=np.uint32)).sum(axis=-1).astype("<u4")
    return qh[..., None].view(np.uint8)


def _unpack_qh(b):                      # (..., 4) u8 -> (..., 32) ints 0/1
    qh = np.ascontiguousarray(b).view("<u4")[..., 0]
    return ((qh[..., None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.int32)


def _max_signed(xb):
    """The element of largest magnitude, keeping its sign (first one on ties, as ggml's loop)."""
    idx = np.argmax(np.abs(xb), axis=-1)
    return np.take_along_axis(xb, idx[..., None], axis=-1)[..., 0]


def _bf16_from_f32(x):
    u = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + (0x7FFF + ((u >> 16) & 1))) >> 16) & 0xFFFF
    r = np.where(nan, (u >> 16) | 64, r)
    return r.astype("<u2")


# ---- quantize ---------------------------------------------------------------------------------
def quantize(x, ggml_type, search=True):
    """search=False: Q2_K/Q3_K/Q5_K/IQ4_XS skip ggml's scale searches (its nstep = 0 / do_rmse =
    false / ntry = 0 paths): valid blocks, a larger error, many times faster."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError("quantize takes (rows, row_len)")
    rows, n = x.shape
    if ggml_type == F32:
        return x.astype("<f4").view(np.uint8).reshape(rows, -1)
    if ggml_type == F16:
        return x.astype("<f2").view(np.uint8).reshape(rows, -1)
    if ggml_type == BF16:
        return _bf16_from_f32(x).view(np.uint8).reshape(rows, -1)
    _, bs, ts = BLOCKS[ggml_type]
    if n % bs:
        raise ValueError(f"{BLOCKS[ggml_type][0]}: row length {n} not a multiple of {bs}")
    xb = x.reshape(rows, n // bs, bs)
    if ggml_type in _EXACT_K:
        # element-by-element loops over all blocks at once: chunks that stay in the caches
        flat = xb.reshape(-1, bs)
        out = np.concatenate([_EXACT_K[ggml_type](flat[i:i + 512], search)
                              for i in range(0, len(flat), 512)])
        return out.reshape(rows, -1)
    fn = {Q8_0: _q8_0, Q4_0: _q4_0, Q4_1: _q4_1, Q5_0: _q5_0, Q5_1: _q5_1, IQ4_NL: _iq4_nl,
          MXFP4: _mxfp4, Q4_K: _q4_k, Q6_K: _q6_k}[ggml_type]
    out = fn(xb)
    assert out.shape[-1] == ts
    return out.reshape(rows, -1)


def _q8_0(xb):
    amax = np.abs(xb).max(axis=-1)
    d = (amax / 127).astype(np.float32)
    q = _round_away(xb * _safe_inv(d)[..., None])
    return np.concatenate([_f16_bytes(d), q.astype(np.int8).view(np.uint8)], axis=-1)


def _q4_0(xb):
    d = (_max_signed(xb) / -8).astype(np.float32)
    q = np.minimum(15, _trunc_i(xb * _safe_inv(d)[..., None] + 8.5))
    return np.concatenate([_f16_bytes(d), _pack_nibbles(q)], axis=-1)


def _q4_1(xb):
    mn, mx = xb.min(axis=-1), xb.max(axis=-1)
    d = ((mx - mn) / 15).astype(np.float32)
    q = np.minimum(15, _trunc_i((xb - mn[..., None]) * _safe_inv(d)[..., None] + 0.5))
    return np.concatenate([_f16_bytes(d), _f16_bytes(mn), _pack_nibbles(q)], axis=-1)


def _q5_0(xb):
    d = (_max_signed(xb) / -16).astype(np.float32)
    q = np.minimum(31, _trunc_i(xb * _safe_inv(d)[..., None] + 16.5))
    return np.concatenate([_f16_bytes(d), _pack_qh(q), _pack_nibbles(q & 0xF)], axis=-1)


def _q5_1(xb):
    mn, mx = xb.min(axis=-1), xb.max(axis=-1)
    d = ((mx - mn) / 31).astype(np.float32)
    q = np.minimum(31, _trunc_i((xb - mn[..., None]) * _safe_inv(d)[..., None] + 0.5))
    return np.concatenate([_f16_bytes(d), _f16_bytes(mn), _pack_qh(q), _pack_nibbles(q & 0xF)],
                          axis=-1)


def _nearest(v, table):
    return np.argmin(np.abs(v[..., None] - table), axis=-1).astype(np.int32)


def _sum_in_order(v):
    """float32 sum over the last axis, left to right (numpy's own sum is pairwise, an order a
    C loop would not follow), so a C quantizer can give the same bits."""
    acc = np.zeros(v.shape[:-1], np.float32)
    for j in range(v.shape[-1]):
        acc = (acc + v[..., j]).astype(np.float32)
    return acc


def _iq4_nl(xb):
    d = (_max_signed(xb) / KVALUES_IQ4NL[0]).astype(np.float32)
    q = _nearest(xb * _safe_inv(d)[..., None], KVALUES_IQ4NL)
    kv = KVALUES_IQ4NL[q]
    den = (kv * kv).sum(axis=-1)                  # exact: integers below 2^24
    num = _sum_in_order(kv * xb)
    d = np.where(den > 0, num / np.where(den > 0, den, 1), d).astype(np.float32)
    q = _nearest(xb * _safe_inv(d)[..., None], KVALUES_IQ4NL)
    return np.concatenate([_f16_bytes(d), _pack_nibbles(q)], axis=-1)


def _mxfp4(xb):
    amax = np.abs(xb).max(axis=-1)
    with np.errstate(divide="ignore"):
        e = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1))) - 2 + 127, 0)
    e = np.clip(e, 0, 254).astype(np.int32)
    d = np.ldexp(np.float32(1), e - 128).astype(np.float32)   # half the E8M0 value
    # 2^-128 is subnormal in float32, so its inverse is taken in float64 (0 for a zero block)
    inv = np.where(amax > 0, np.ldexp(1.0, 128 - e), 0.0)
    q = _nearest((xb * inv[..., None]).astype(np.float32), KVALUES_MXFP4)
    return np.concatenate([e.astype(np.uint8)[..., None], _pack_nibbles(q)], axis=-1)


def _nearest_int(v):
    return np.rint(v).astype(np.int32)        # ggml's nearest_int: round half to even


def _q4_k(xb):
    sub = xb.reshape(xb.shape[:-1] + (8, 32))
    mn = np.minimum(sub.min(axis=-1), 0)       # ggml keeps min <= 0 (stored negated)
    mx = sub.max(axis=-1)
    scale = (mx - mn) / 15
    mins = -mn
    max_scale, max_min = scale.max(axis=-1), mins.max(axis=-1)
    ls = np.clip(_nearest_int(scale * _safe_inv(max_scale / 63)[..., None]), 0, 63)
    lm = np.clip(_nearest_int(mins * _safe_inv(max_min / 63)[..., None]), 0, 63)
    d = (max_scale / 63).astype(np.float16).astype(np.float32)
    dmin = (max_min / 63).astype(np.float16).astype(np.float32)
    dl = d[..., None] * ls
    dm = dmin[..., None] * lm
    q = np.clip(_nearest_int((sub + dm[..., None]) * _safe_inv(dl)[..., None]), 0, 15)
    q = np.where(dl[..., None] > 0, q, 0).reshape(xb.shape)
    sc = np.zeros(xb.shape[:-1] + (12,), np.int32)
    sc[..., 0:4] = ls[..., 0:4] | ((ls[..., 4:8] >> 4) << 6)
    sc[..., 4:8] = lm[..., 0:4] | ((lm[..., 4:8] >> 4) << 6)
    sc[..., 8:12] = (ls[..., 4:8] & 0xF) | ((lm[..., 4:8] & 0xF) << 4)
    q4 = q.reshape(xb.shape[:-1] + (4, 2, 32))   # 4 chunks of 64: low nibbles, high nibbles
    qs = (q4[..., 0, :] | (q4[..., 1, :] << 4)).reshape(xb.shape[:-1] + (128,))
    return np.concatenate([_f16_bytes(d), _f16_bytes(dmin), sc.astype(np.uint8),
                           qs.astype(np.uint8)], axis=-1)


def _q4_k_scales(sc):                          # (..., 12) u8 -> (..., 8) scales, (..., 8) mins
    sc = sc.astype(np.int32)
    ls = np.concatenate([sc[..., 0:4] & 63, (sc[..., 8:12] & 0xF) | ((sc[..., 0:4] >> 6) << 4)], -1)
    lm = np.concatenate([sc[..., 4:8] & 63, (sc[..., 8:12] >> 4) | ((sc[..., 4:8] >> 6) << 4)], -1)
    return ls, lm


def _q6_k(xb):
    sub = xb.reshape(xb.shape[:-1] + (16, 16))
    scale = _max_signed(sub) / -32
    idx = np.argmax(np.abs(scale), axis=-1)
    max_scale = np.take_along_axis(scale, idx[..., None], axis=-1)[..., 0]
    iscale = np.where(max_scale != 0, -128 * _safe_inv(max_scale), 0)
    sc = np.minimum(127, _nearest_int(iscale[..., None] * scale))
    d = _safe_inv(iscale).astype(np.float16).astype(np.float32)
    dd = d[..., None] * sc
    q = np.clip(_nearest_int(sub * _safe_inv(dd)[..., None]), -32, 31) + 32
    q = np.where(dd[..., None] != 0, q, 32).reshape(xb.shape[:-1] + (2, 4, 32))
    # low nibbles: q1 and q3 share ql[l], q2 and q4 share ql[l+32]
    lo = q & 0xF
    ql = np.concatenate([lo[..., 0, :] | (lo[..., 2, :] << 4), lo[..., 1, :] | (lo[..., 3, :] << 4)],
                        axis=-1).reshape(xb.shape[:-1] + (128,))
    hi = q >> 4
    qh = (hi[..., 0, :] | (hi[..., 1, :] << 2) | (hi[..., 2, :] << 4) | (hi[..., 3, :] << 6))
    qh = qh.reshape(xb.shape[:-1] + (64,))
    return np.concatenate([ql.astype(np.uint8), qh.astype(np.uint8),
                           sc.astype(np.int8).view(np.uint8), _f16_bytes(d)], axis=-1)


# ---- dequantize ------------------------------------------------------------------------------
def dequantize(raw, ggml_type, row_len):
    raw = np.ascontiguousarray(np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray, memoryview)) else raw, dtype=np.uint8)
    rb = row_bytes(ggml_type, row_len)
    raw = raw.reshape(-1, rb)
    rows = raw.shape[0]
    if ggml_type == F32:
        return raw.view("<f4").astype(np.float32)
    if ggml_type == F16:
        return raw.view("<f2").astype(np.float32)
    if ggml_type == BF16:
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    _, bs, ts = BLOCKS[ggml_type]
    b = raw.reshape(rows, row_len // bs, ts)
    if ggml_type == Q8_0:
        y = _f16_read(b[..., 0:2])[..., None] * b[..., 2:].view(np.int8).astype(np.float32)
    elif ggml_type == Q4_0:
        y = _f16_read(b[..., 0:2])[..., None] * (_unpack_nibbles(b[..., 2:]) - 8)
    elif ggml_type == Q4_1:
        y = _f16_read(b[..., 0:2])[..., None] * _unpack_nibbles(b[..., 4:]) \
            + _f16_read(b[..., 2:4])[..., None]
    elif ggml_type == Q5_0:
        q = _unpack_nibbles(b[..., 6:]) | (_unpack_qh(b[..., 2:6]) << 4)
        y = _f16_read(b[..., 0:2])[..., None] * (q - 16)
    elif ggml_type == Q5_1:
        q = _unpack_nibbles(b[..., 8:]) | (_unpack_qh(b[..., 4:8]) << 4)
        y = _f16_read(b[..., 0:2])[..., None] * q + _f16_read(b[..., 2:4])[..., None]
    elif ggml_type == IQ4_NL:
        y = _f16_read(b[..., 0:2])[..., None] * KVALUES_IQ4NL[_unpack_nibbles(b[..., 2:])]
    elif ggml_type == MXFP4:
        d = np.ldexp(np.float32(1), b[..., 0].astype(np.int32) - 128).astype(np.float32)
        y = d[..., None] * KVALUES_MXFP4[_unpack_nibbles(b[..., 1:])]
    elif ggml_type == Q4_K:
        d, dmin = _f16_read(b[..., 0:2]), _f16_read(b[..., 2:4])
        ls, lm = _q4_k_scales(b[..., 4:16])
        qs = b[..., 16:].reshape(rows, -1, 4, 32).astype(np.int32)
        q = np.stack([qs & 0xF, qs >> 4], axis=-2).reshape(rows, -1, 8, 32)
        y = d[..., None, None] * ls[..., None] * q - dmin[..., None, None] * lm[..., None]
    elif ggml_type == Q6_K:
        ql = b[..., 0:128].reshape(rows, -1, 2, 64).astype(np.int32)
        qh = b[..., 128:192].reshape(rows, -1, 2, 32).astype(np.int32)
        sc = b[..., 192:208].view(np.int8).astype(np.float32)
        d = _f16_read(b[..., 208:210])
        q = np.stack([(ql[..., 0:32] & 0xF) | ((qh & 3) << 4),
                      (ql[..., 32:64] & 0xF) | (((qh >> 2) & 3) << 4),
                      (ql[..., 0:32] >> 4) | (((qh >> 4) & 3) << 4),
                      (ql[..., 32:64] >> 4) | (((qh >> 6) & 3) << 4)], axis=-2) - 32
        q = q.reshape(rows, -1, 16, 16)
        y = d[..., None, None] * sc[..., None] * q
    elif ggml_type in (Q2_K, Q3_K, Q5_K, IQ4_XS):
        y = _DEQUANT_K[ggml_type](b)
    else:
        raise ValueError(f"no dequantizer for ggml type {ggml_type}")
    return y.astype(np.float32).reshape(rows, row_len)


# ---- Q2_K, Q3_K, Q5_K, IQ4_XS: ggml's reference quantizers, bit for bit -----------------------
# Every array is float32 and every sum runs element by element (vectorised across blocks only),
# in the order ggml's C loops use, so each float32 rounding is the one ggml makes. Integer
# results go through int32 and are converted to float32 before they meet a float (numpy would
# otherwise promote to float64).
_F = np.float32
GROUP_MAX_EPS = _F(1e-15)
_KV_I8 = KVALUES_IQ4NL                           # float32 copy of ggml's int8 table


def _seq_sum(terms):                             # (..., n) -> (...): ((t0 + t1) + t2) + ...
    acc = terms[..., 0].copy()
    for i in range(1, terms.shape[-1]):
        acc = acc + terms[..., i]
    return acc


def _first_absmax(x):
    """ggml's `if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }` from amax = 0."""
    ax = np.abs(x)
    idx = np.argmax(ax, axis=-1)
    amax = np.take_along_axis(ax, idx[..., None], axis=-1)[..., 0]
    mx = np.take_along_axis(x, idx[..., None], axis=-1)[..., 0]
    return amax, np.where(amax > 0, mx, _F(0))


def _qkx2(x, w, nmax, rmin, rdelta, nstep, use_mad):
    """make_qkx2_quants over rows of x (sub-blocks): returns scale, the_min (= -min), L."""
    x, w = x.astype(_F), w.astype(_F)
    n = x.shape[-1]
    fn = _F(nmax)
    with np.errstate(all="ignore"):
        mn, mx = x[:, 0].copy(), x[:, 0].copy()
        sum_w = w[:, 0].copy()
        sum_x = sum_w * x[:, 0]
        for i in range(1, n):
            mn = np.where(x[:, i] < mn, x[:, i], mn)
            mx = np.where(x[:, i] > mx, x[:, i], mx)
            sum_w = sum_w + w[:, i]
            sum_x = sum_x + w[:, i] * x[:, i]
        mn = np.where(mn > 0, _F(0), mn)
        flat = mx == mn
        iscale = fn / (mx - mn)
        scale = _F(1) / iscale
        L = np.clip(np.rint(iscale[:, None] * (x - mn[:, None])), 0, nmax).astype(np.int32)
        best = np.zeros_like(mn)
        for i in range(n):
            diff = scale * L[:, i].astype(_F) + mn - x[:, i]
            best = best + w[:, i] * (np.abs(diff) if use_mad else diff * diff)
        for step in range(nstep + 1 if nstep >= 1 else 0):   # ggml returns early for nstep < 1
            iscale = (_F(rmin) + _F(rdelta) * _F(step) + fn) / (mx - mn)
            la = np.clip(np.rint(iscale[:, None] * (x - mn[:, None])), 0, nmax).astype(np.int32)
            lf = la.astype(_F)
            sl = np.zeros_like(mn)
            sl2 = np.zeros_like(mn)
            sxl = np.zeros_like(mn)
            for i in range(n):
                wl = w[:, i] * lf[:, i]
                sl = sl + wl
                sl2 = sl2 + wl * lf[:, i]
                sxl = sxl + wl * x[:, i]
            D = sum_w * sl2 - sl * sl
            ok = D > 0
            s = (sum_w * sxl - sum_x * sl) / D
            m = (sl2 * sum_x - sl * sxl) / D
            pos = m > 0
            s = np.where(pos, sxl / sl2, s)
            m = np.where(pos, _F(0), m)
            err = np.zeros_like(mn)
            for i in range(n):
                diff = s * lf[:, i] + m - x[:, i]
                err = err + w[:, i] * (np.abs(diff) if use_mad else diff * diff)
            take = ok & (err < best) & ~flat
            L = np.where(take[:, None], la, L)
            best = np.where(take, err, best)
            scale = np.where(take, s, scale)
            mn = np.where(take, m, mn)
    L = np.where(flat[:, None], 0, L)
    scale = np.where(flat, _F(0), scale)
    return scale.astype(_F), (-mn).astype(_F), L


def _u8(v):                                       # C's (uint8_t) of an int
    return np.asarray(v, np.int64) & 0xFF


def _pack_2bit(L):                                # (B, 256) 0..3 -> (B, 64): ggml's q2/q3 qs
    q = L.reshape(L.shape[0], 2, 4, 32)
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(-1, 64)


def _unpack_2bit(qs):                             # (B, 64) -> (B, 256)
    q = qs.astype(np.int32).reshape(-1, 2, 1, 32)
    return ((q >> (2 * np.arange(4).reshape(1, 1, 4, 1))) & 3).reshape(-1, 256)


def _q2_k(xb, search=True):
    lead = xb.shape[:-1]
    x = xb.reshape(-1, 256).astype(_F)
    B = x.shape[0]
    sub = x.reshape(-1, 16)
    sc, mins, L = _qkx2(sub, np.abs(sub), 3, -0.5, 0.1, 15 if search else 0, True)
    sc, mins, L = sc.reshape(B, 16), mins.reshape(B, 16), L.reshape(B, 256)
    max_scale = np.maximum(sc.max(axis=-1), 0)
    max_min = np.maximum(mins.max(axis=-1), 0)
    q4 = _F(15)
    with np.errstate(all="ignore"):
        ls = np.where(max_scale[:, None] > 0, np.rint((q4 / max_scale)[:, None] * sc), 0)
        lm = np.where(max_min[:, None] > 0, np.rint((q4 / max_min)[:, None] * mins), 0)
    scales = _u8(_u8(ls) | (lm.astype(np.int64) << 4))
    d = np.where(max_scale > 0, max_scale / q4, _F(0)).astype(np.float16)
    dmin = np.where(max_min > 0, max_min / q4, _F(0)).astype(np.float16)
    dl = d.astype(_F)[:, None] * (scales & 0xF).astype(_F)
    dm = dmin.astype(_F)[:, None] * (scales >> 4).astype(_F)
    with np.errstate(all="ignore"):
        q = (x.reshape(B, 16, 16) + dm[..., None]) / dl[..., None]
        q = np.clip(np.rint(q), 0, 3).astype(np.int32)
    L = np.where((dl != 0)[..., None], q, L.reshape(B, 16, 16)).reshape(B, 256)
    out = np.concatenate([scales.astype(np.uint8), _pack_2bit(L).astype(np.uint8),
                          d.view(np.uint8).reshape(B, 2), dmin.view(np.uint8).reshape(B, 2)], -1)
    return out.reshape(lead + (84,))


def _q3_fit(x, nmax=4, do_rmse=True):
    """make_q3_quants(n, nmax, x, L, do_rmse) over rows of x: returns scale, L + nmax."""
    x = x.astype(_F)
    n = x.shape[-1]
    amax, mx = _first_absmax(x)
    zero = amax < GROUP_MAX_EPS
    with np.errstate(all="ignore"):
        iscale = _F(-nmax) / mx
        L = np.clip(np.rint(iscale[:, None] * x), -nmax, nmax - 1).astype(np.int32)
        if not do_rmse:
            return np.where(zero, _F(0), _F(1) / iscale).astype(_F), np.where(zero[:, None], 0, L + nmax)
        sumlx = np.zeros_like(amax)
        suml2 = np.zeros_like(amax)
        for i in range(n):
            w = x[:, i] * x[:, i]
            lf = L[:, i].astype(_F)
            sumlx = sumlx + w * x[:, i] * lf
            suml2 = suml2 + w * lf * lf
        for _ in range(5):     # a pass that changes nothing leaves the state as it was
            for i in range(n):
                w = x[:, i] * x[:, i]
                lf = L[:, i].astype(_F)
                slx = sumlx - w * x[:, i] * lf
                sl2 = suml2 - w * lf * lf
                new_l = np.clip(np.rint(x[:, i] * sl2 / slx), -nmax, nmax - 1).astype(np.int32)
                nf = new_l.astype(_F)
                slx2 = slx + w * x[:, i] * nf
                sl22 = sl2 + w * nf * nf
                take = ((slx > 0) & (new_l != L[:, i]) & (sl22 > 0)
                        & (slx2 * slx2 * suml2 > sumlx * sumlx * sl22) & ~zero)
                L[:, i] = np.where(take, new_l, L[:, i])
                sumlx = np.where(take, slx2, sumlx)
                suml2 = np.where(take, sl22, suml2)
        scale = sumlx / suml2
    return np.where(zero, _F(0), scale).astype(_F), np.where(zero[:, None], 0, L + nmax)


def _q3_k_scales(sc):                             # (B, 12) u8 -> (B, 16) 6-bit scales
    sc = sc.astype(np.int32)
    j = np.arange(16)
    low = (sc[:, j % 8] >> (4 * (j // 8))) & 0xF
    high = (sc[:, 8 + j % 4] >> (2 * (j // 4))) & 3
    return low | (high << 4)


def _q3_k(xb, search=True):
    lead = xb.shape[:-1]
    x = xb.reshape(-1, 256).astype(_F)
    B = x.shape[0]
    scl, L = _q3_fit(x.reshape(-1, 16), 4, search)
    scl, L = scl.reshape(B, 16), L.reshape(B, 16, 16)
    _, max_scale = _first_absmax(scl)
    has = max_scale != 0
    with np.errstate(all="ignore"):
        iscale = _F(-32) / max_scale
        l = np.clip(np.rint(iscale[:, None] * scl), -32, 31).astype(np.int32) + 32
    l = np.where(has[:, None], l, 0)
    sc = np.zeros((B, 12), np.int32)
    sc[:, 0:8] = (l[:, 0:8] & 0xF) | ((l[:, 8:16] & 0xF) << 4)
    hi = l >> 4
    for j in range(16):
        sc[:, 8 + j % 4] |= hi[:, j] << (2 * (j // 4))
    sc = np.where(has[:, None], sc, 0)
    with np.errstate(all="ignore"):
        d = np.where(has, _F(1) / iscale, _F(0)).astype(np.float16)
    dl = d.astype(_F)[:, None] * (_q3_k_scales(sc) - 32).astype(_F)
    with np.errstate(all="ignore"):
        q = np.clip(np.rint(x.reshape(B, 16, 16) / dl[..., None]), -4, 3).astype(np.int32) + 4
    L = np.where((dl != 0)[..., None], q, L).reshape(B, 256)
    hmask = np.zeros((B, 32), np.int32)
    for k in range(8):                            # value 32k + m: bit k of hmask[m]
        hmask |= (L[:, 32 * k:32 * k + 32] > 3).astype(np.int32) << k
    L = np.where(L > 3, L - 4, L)
    out = np.concatenate([hmask.astype(np.uint8), _pack_2bit(L).astype(np.uint8), sc.astype(np.uint8),
                          d.view(np.uint8).reshape(B, 2)], -1)
    return out.reshape(lead + (110,))


def _k4_pack_scales(ls, lm):                      # (B, 8) 6-bit scales and mins -> (B, 12) u8
    sc = np.zeros(ls.shape[:-1] + (12,), np.int64)
    sc[..., 0:4] = ls[..., 0:4] | ((ls[..., 4:8] >> 4) << 6)
    sc[..., 4:8] = lm[..., 0:4] | ((lm[..., 4:8] >> 4) << 6)
    sc[..., 8:12] = (ls[..., 4:8] & 0xF) | ((lm[..., 4:8] & 0xF) << 4)
    return sc.astype(np.uint8)


def _q5_k(xb, search=True):
    lead = xb.shape[:-1]
    x = xb.reshape(-1, 256).astype(_F)
    B = x.shape[0]
    sub = x.reshape(-1, 32)
    av = np.sqrt(_seq_sum(sub * sub) / _F(32))
    sc, mins, L = _qkx2(sub, av[:, None] + np.abs(sub), 31, -0.5, 0.1, 15 if search else 0, False)
    sc, mins, L = sc.reshape(B, 8), mins.reshape(B, 8), L.reshape(B, 8, 32)
    max_scale = np.maximum(sc.max(axis=-1), 0)
    max_min = np.maximum(mins.max(axis=-1), 0)
    with np.errstate(all="ignore"):
        inv_s = np.where(max_scale > 0, _F(63) / max_scale, _F(0))
        inv_m = np.where(max_min > 0, _F(63) / max_min, _F(0))
    ls = np.minimum(63, _u8(np.rint(inv_s[:, None] * sc)))
    lm = np.minimum(63, _u8(np.rint(inv_m[:, None] * mins)))
    d = (max_scale / _F(63)).astype(np.float16)
    dmin = (max_min / _F(63)).astype(np.float16)
    dl = d.astype(_F)[:, None] * ls.astype(_F)
    dm = dmin.astype(_F)[:, None] * lm.astype(_F)
    with np.errstate(all="ignore"):
        q = np.clip(np.rint((x.reshape(B, 8, 32) + dm[..., None]) / dl[..., None]), 0, 31)
        q = np.where((dl != 0)[..., None], q, 0).astype(np.int32)
    L = np.where((dl != 0)[..., None], q, L)       # (B, 8, 32)
    hi = L >> 4
    qh = np.zeros((B, 32), np.int64)
    for j in range(8):
        qh |= hi[:, j].astype(np.int64) << j
    lo = (L & 0xF).reshape(B, 4, 2, 32)
    qs = (lo[:, :, 0] | (lo[:, :, 1] << 4)).reshape(B, 128)
    out = np.concatenate([d.view(np.uint8).reshape(B, 2), dmin.view(np.uint8).reshape(B, 2),
                          _k4_pack_scales(ls, lm), qh.astype(np.uint8), qs.astype(np.uint8)], -1)
    return out.reshape(lead + (176,))


# best_index_int8(16, kvalues_iq4nl, v) picks entry k + 1 over k when v - kv[k] >= kv[k + 1] - v.
# Both differences are exact in float32 wherever the comparison is close, so that is exactly
# v >= (kv[k] + kv[k + 1]) / 2, a multiple of 1/2: i.e. floor(2 v) >= kv[k] + kv[k + 1], an integer
# test that a table indexed by floor(2 v) answers (NaN gives 15, as ggml's bisection does).
_IQ4_MID2 = (_KV_I8[:-1] + _KV_I8[1:]).astype(np.int32)
_IQ4_LUT = (np.arange(-256, 257)[:, None] >= _IQ4_MID2).sum(axis=1).astype(np.int32)


def _best_index(v):
    """best_index_int8(16, kvalues_iq4nl, v): the nearest entry, ties to the upper one."""
    with np.errstate(invalid="ignore"):
        f = np.floor(np.nan_to_num(v * _F(2), nan=1e9, posinf=1e9, neginf=-1e9))
        f = np.minimum(np.maximum(f, _F(-256)), _F(256))
    return _IQ4_LUT[f.astype(np.int32) + 256]


def _iq4_sums(x, w, idv):
    q = _KV_I8[_best_index(idv[:, None] * x)]
    sqx = np.zeros(x.shape[0], _F)
    sq2 = np.zeros(x.shape[0], _F)
    for j in range(x.shape[1]):
        wq = w[:, j] * q[:, j]
        sqx = sqx + wq * x[:, j]
        sq2 = sq2 + wq * q[:, j]
    return sqx, sq2


def _iq4_xs(xb, search=True):
    """quantize_row_iq4_nl_impl(QK_K, 32, ..., ntry = 7, or 0 without search) without importance
    weights (weights = x^2)."""
    ntry = 7 if search else 0
    lead = xb.shape[:-1]
    x = xb.reshape(-1, 256).astype(_F)
    B = x.shape[0]
    sub = x.reshape(-1, 32)
    w = sub * sub
    amax, mx = _first_absmax(sub)
    zero = amax < GROUP_MAX_EPS
    with np.errstate(all="ignore"):
        d = -mx / _KV_I8[0] if ntry > 0 else mx / _KV_I8[0]
        sqx, sq2 = _iq4_sums(sub, w, _F(1) / d)
        d = sqx / sq2
        best = d * sqx
        for itry in range(-ntry, ntry + 1):
            sx, s2 = _iq4_sums(sub, w, _F(itry + int(_KV_I8[0])) / mx)
            take = (s2 > 0) & (sx * sx > best * s2)
            d = np.where(take, sx / s2, d)
            best = np.where(take, d * sx, best)
    scales = np.where(zero, _F(0), d).astype(_F).reshape(B, 8)
    _, max_scale = _first_absmax(scales)
    dd = -max_scale / _F(32)
    with np.errstate(all="ignore"):
        idd = np.where(dd != 0, _F(1) / dd, _F(0))
    l = np.clip(np.rint(idd[:, None] * scales), -32, 31).astype(np.int32)
    dl = dd[:, None] * l.astype(_F)
    with np.errstate(all="ignore"):
        idl = np.where(dl != 0, _F(1) / dl, _F(0))
    L = _best_index(idl[..., None] * x.reshape(B, 8, 32))
    l = l + 32
    scales_l = ((l[:, 0::2] & 0xF) | ((l[:, 1::2] & 0xF) << 4)).astype(np.uint8)
    scales_h = np.zeros(B, np.uint32)
    for ib in range(8):
        scales_h |= ((l[:, ib] >> 4) << (2 * ib)).astype(np.uint32)
    qs = (L[:, :, 0:16] | (L[:, :, 16:32] << 4)).reshape(B, 128)
    out = np.concatenate([dd.astype(np.float16).view(np.uint8).reshape(B, 2),
                          scales_h.astype("<u2").view(np.uint8).reshape(B, 2), scales_l,
                          qs.astype(np.uint8)], -1)
    return out.reshape(lead + (136,))


# dequantizers, ggml's float32 order: (d * scale) * q - (dmin * min)
def _dq_q2_k(b):                                  # b (rows, nb, 84)
    rows = b.shape[0]
    b = b.reshape(-1, 84)
    sc = b[:, 0:16].astype(np.int32)
    d, dmin = _f16_read(b[:, 80:82]), _f16_read(b[:, 82:84])
    dl = d[:, None] * (sc & 0xF).astype(_F)
    ml = dmin[:, None] * (sc >> 4).astype(_F)
    q = _unpack_2bit(b[:, 16:80]).reshape(-1, 16, 16).astype(_F)
    return (dl[..., None] * q - ml[..., None]).reshape(rows, -1)


def _dq_q3_k(b):
    rows = b.shape[0]
    b = b.reshape(-1, 110)
    hm = b[:, 0:32].astype(np.int32)
    high = (hm[:, None, :] >> np.arange(8).reshape(1, 8, 1)) & 1          # (B, 8, 32)
    q = _unpack_2bit(b[:, 32:96]) - 4 * (1 - high.reshape(-1, 256))
    dl = _f16_read(b[:, 108:110])[:, None] * (_q3_k_scales(b[:, 96:108]) - 32).astype(_F)
    return (dl[..., None] * q.reshape(-1, 16, 16).astype(_F)).reshape(rows, -1)


def _dq_q5_k(b):
    rows = b.shape[0]
    b = b.reshape(-1, 176)
    d, dmin = _f16_read(b[:, 0:2]), _f16_read(b[:, 2:4])
    ls, lm = _q4_k_scales(b[:, 4:16])
    qh = b[:, 16:48].astype(np.int32)
    qs = b[:, 48:176].reshape(-1, 4, 32).astype(np.int32)
    lo = np.stack([qs & 0xF, qs >> 4], axis=-2).reshape(-1, 8, 32)
    q = lo | (((qh[:, None, :] >> np.arange(8).reshape(1, 8, 1)) & 1) << 4)
    d1 = d[:, None] * ls.astype(_F)
    m1 = dmin[:, None] * lm.astype(_F)
    return (d1[..., None] * q.astype(_F) - m1[..., None]).reshape(rows, -1)


def _dq_iq4_xs(b):
    rows = b.shape[0]
    b = b.reshape(-1, 136)
    d = _f16_read(b[:, 0:2])
    sh = np.ascontiguousarray(b[:, 2:4]).view("<u2")[:, 0].astype(np.int32)
    sl = b[:, 4:8].astype(np.int32)
    ib = np.arange(8)
    ls = ((sl[:, ib // 2] >> (4 * (ib % 2))) & 0xF) | (((sh[:, None] >> (2 * ib)) & 3) << 4)
    dl = d[:, None] * (ls - 32).astype(_F)
    qs = b[:, 8:136].reshape(-1, 8, 16).astype(np.int32)
    q = np.concatenate([qs & 0xF, qs >> 4], axis=-1)
    return (dl[..., None] * KVALUES_IQ4NL[q]).reshape(rows, -1)


_EXACT_K = {Q2_K: _q2_k, Q3_K: _q3_k, Q5_K: _q5_k, IQ4_XS: _iq4_xs}
_DEQUANT_K = {Q2_K: _dq_q2_k, Q3_K: _dq_q3_k, Q5_K: _dq_q5_k, IQ4_XS: _dq_iq4_xs}
