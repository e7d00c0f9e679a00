#!/usr/bin/python3
"""GGUF v3 writer (library, plus a small CLI that dumps a GGUF's header for inspection).

Written from the GGUF specification (ggml docs/gguf.md). A file is, all little-endian:
  u32 magic "GGUF", u32 version (3), u64 tensor_count, u64 kv_count,
  kv_count x (string key, u32 value_type, value),
  tensor_count x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml_type, u64 offset),
  zero padding to general.alignment (default 32), then the data section: each tensor at its
  offset (relative to the data section's start, a multiple of the alignment), zero padded.
A string is u64 length + bytes (no terminator); an array is u32 element type, u64 count, elements.

Dimension order: ggml's. ne[0] is the innermost (contiguous) dimension, i.e. the row length, so
a numpy array of shape (rows, cols) has ne = [cols, rows]. This module's API takes NUMPY order
(outermost first) everywhere and reverses it when writing; `ne` in read-back results is ggml's.

Memory is bounded: tensor infos (name, shape, type) are declared first, the header is written,
then each tensor's bytes are streamed in declaration order (write_tensor_data may be called
several times per tensor with consecutive chunks).

Library use:
    from gguf_write import GGUFWriter, GGML
    w = GGUFWriter("out.gguf")                 # alignment from general.alignment if added
    w.add_string("general.architecture", "qwen3moe")
    w.add_uint32("qwen3moe.block_count", 2)
    w.add_array("tokenizer.ggml.tokens", ["a", "b"], GGUF.STRING)
    w.add_tensor_info("token_embd.weight", (vocab, hidden), GGML.Q8_0)
    w.write_header()
    w.write_tensor_data("token_embd.weight", raw_bytes)   # in declaration order
    w.close()

CLI: gguf_write.py dump FILE.gguf   (prints the KVs, short arrays, and tensor infos as JSON)
"""
import json
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32


class GGUF:
    """Metadata value types (gguf_type)."""
    UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, \
        FLOAT64 = range(13)


_SCALAR_FMT = {GGUF.UINT8: "<B", GGUF.INT8: "<b", GGUF.UINT16: "<H", GGUF.INT16: "<h",
               GGUF.UINT32: "<I", GGUF.INT32: "<i", GGUF.FLOAT32: "<f", GGUF.BOOL: "<?",
               GGUF.UINT64: "<Q", GGUF.INT64: "<q", GGUF.FLOAT64: "<d"}
_NP_DTYPE = {GGUF.UINT8: "<u1", GGUF.INT8: "<i1", GGUF.UINT16: "<u2", GGUF.INT16: "<i2",
             GGUF.UINT32: "<u4", GGUF.INT32: "<i4", GGUF.FLOAT32: "<f4", GGUF.BOOL: "<u1",
             GGUF.UINT64: "<u8", GGUF.INT64: "<i8", GGUF.FLOAT64: "<f8"}


class GGML:
    """ggml tensor type ids (enum ggml_type in ggml.h)."""
    F32, F16, Q4_0, Q4_1 = 0, 1, 2, 3
    Q5_0, Q5_1, Q8_0, Q8_1 = 6, 7, 8, 9
    Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K = 10, 11, 12, 13, 14, 15
    IQ4_NL, IQ4_XS = 20, 23
    I8, I16, I32, I64, F64 = 24, 25, 26, 27, 28
    BF16 = 30
    MXFP4 = 39


# ggml type id -> (name, elements per block, bytes per block)
GGML_TYPES = {
    GGML.F32: ("F32", 1, 4), GGML.F16: ("F16", 1, 2), GGML.BF16: ("BF16", 1, 2),
    GGML.Q4_0: ("Q4_0", 32, 18), GGML.Q4_1: ("Q4_1", 32, 20),
    GGML.Q5_0: ("Q5_0", 32, 22), GGML.Q5_1: ("Q5_1", 32, 24),
    GGML.Q8_0: ("Q8_0", 32, 34), GGML.Q8_1: ("Q8_1", 32, 36),
    GGML.Q2_K: ("Q2_K", 256, 84), GGML.Q3_K: ("Q3_K", 256, 110), GGML.Q4_K: ("Q4_K", 256, 144),
    GGML.Q5_K: ("Q5_K", 256, 176), GGML.Q6_K: ("Q6_K", 256, 210), GGML.Q8_K: ("Q8_K", 256, 292),
    GGML.IQ4_NL: ("IQ4_NL", 32, 18), GGML.IQ4_XS: ("IQ4_XS", 256, 136),
    GGML.I8: ("I8", 1, 1), GGML.I16: ("I16", 1, 2), GGML.I32: ("I32", 1, 4),
    GGML.I64: ("I64", 1, 8), GGML.F64: ("F64", 1, 8),
    GGML.MXFP4: ("MXFP4", 32, 17),
}
GGML_TYPE_BY_NAME = {v[0]: k for k, v in GGML_TYPES.items()}


def tensor_nbytes(shape, ggml_type):
    """Bytes of a tensor of numpy-order `shape`; the row (last dim) must fill whole blocks."""
    _, bs, ts = GGML_TYPES[ggml_type]
    shape = tuple(int(d) for d in shape)
    if not shape or shape[-1] % bs:
        raise ValueError(f"row length {shape[-1] if shape else None} is not a multiple of the "
                         f"{GGML_TYPES[ggml_type][0]} block size {bs}")
    n = 1
    for d in shape[:-1]:
        n *= d
    return n * (shape[-1] // bs) * ts


def _pad(n, align):
    return (align - n % align) % align


def _enc_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


class GGUFWriter:
    def __init__(self, path, alignment=None):
        self.path = path
        self.kvs = []           # (key, encoded bytes of type + value)
        self.keys = set()
        self.tensors = []       # dicts: name, shape (numpy order), type, nbytes, offset
        self.alignment = alignment
        self.f = None
        self._cur = 0           # index of the tensor whose data is being written
        self._cur_written = 0

    # ---- metadata -------------------------------------------------------------------------
    def _add(self, key, payload):
        if self.f is not None:
            raise RuntimeError("metadata added after write_header")
        if key in self.keys:
            raise ValueError(f"duplicate key {key}")
        self.keys.add(key)
        self.kvs.append((key, payload))

    def add_scalar(self, key, value, vtype):
        if vtype == GGUF.STRING:
            payload = struct.pack("<I", vtype) + _enc_string(value)
        else:
            payload = struct.pack("<I", vtype) + struct.pack(_SCALAR_FMT[vtype], value)
        if key == "general.alignment":
            if vtype != GGUF.UINT32 or value <= 0 or value % 8:
                raise ValueError("general.alignment must be a u32 multiple of 8")
            if self.alignment is not None and self.alignment != value:
                raise ValueError("general.alignment disagrees with the writer's alignment")
            self.alignment = value
        self._add(key, payload)

    def add_uint8(self, k, v): self.add_scalar(k, v, GGUF.UINT8)
    def add_int8(self, k, v): self.add_scalar(k, v, GGUF.INT8)
    def add_uint16(self, k, v): self.add_scalar(k, v, GGUF.UINT16)
    def add_int16(self, k, v): self.add_scalar(k, v, GGUF.INT16)
    def add_uint32(self, k, v): self.add_scalar(k, v, GGUF.UINT32)
    def add_int32(self, k, v): self.add_scalar(k, v, GGUF.INT32)
    def add_uint64(self, k, v): self.add_scalar(k, v, GGUF.UINT64)
    def add_int64(self, k, v): self.add_scalar(k, v, GGUF.INT64)
    def add_float32(self, k, v): self.add_scalar(k, v, GGUF.FLOAT32)
    def add_float64(self, k, v): self.add_scalar(k, v, GGUF.FLOAT64)
    def add_bool(self, k, v): self.add_scalar(k, bool(v), GGUF.BOOL)
    def add_string(self, k, v): self.add_scalar(k, v, GGUF.STRING)

    def add_array(self, key, values, elem_type):
        """An array of one scalar type or of strings (nested arrays are not needed here)."""
        head = struct.pack("<IIQ", GGUF.ARRAY, elem_type, len(values))
        if elem_type == GGUF.STRING:
            body = b"".join(_enc_string(s) for s in values)
        elif elem_type == GGUF.ARRAY:
            raise ValueError("nested arrays are not supported")
        else:
            body = np.asarray(values).astype(_NP_DTYPE[elem_type]).tobytes()
        self._add(key, head + body)

    # ---- tensors --------------------------------------------------------------------------
    def add_tensor_info(self, name, shape, ggml_type):
        """Declares a tensor; `shape` in numpy order (the last dim is the row, ggml's ne[0])."""
        if self.f is not None:
            raise RuntimeError("tensor declared after write_header")
        if any(t["name"] == name for t in self.tensors):
            raise ValueError(f"duplicate tensor {name}")
        if not 1 <= len(shape) <= 4:
            raise ValueError(f"{name}: ggml tensors have 1 to 4 dimensions")
        self.tensors.append(dict(name=name, shape=tuple(int(d) for d in shape), type=ggml_type,
                                 nbytes=tensor_nbytes(shape, ggml_type)))

    def write_header(self):
        align = self.alignment or DEFAULT_ALIGNMENT
        self.alignment = align
        off = 0
        for t in self.tensors:
            t["offset"] = off
            off += t["nbytes"] + _pad(t["nbytes"], align)
        out = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kvs))]
        for key, payload in self.kvs:
            out += [_enc_string(key), payload]
        for t in self.tensors:
            ne = t["shape"][::-1]
            out += [_enc_string(t["name"]), struct.pack("<I", len(ne)),
                    struct.pack(f"<{len(ne)}Q", *ne), struct.pack("<IQ", t["type"], t["offset"])]
        head = b"".join(out)
        self.f = open(self.path, "wb")
        self.f.write(head + b"\0" * _pad(len(head), align))
        self._cur, self._cur_written = 0, 0

    def write_tensor_data(self, name, data):
        """Appends bytes (bytes-like or a numpy array, written raw) of the current tensor."""
        if self.f is None:
            raise RuntimeError("write_header first")
        if self._cur >= len(self.tensors) or self.tensors[self._cur]["name"] != name:
            want = self.tensors[self._cur]["name"] if self._cur < len(self.tensors) else None
            raise ValueError(f"tensor data out of order: got {name}, expected {want}")
        b = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        t = self.tensors[self._cur]
        self._cur_written += len(b)
        if self._cur_written > t["nbytes"]:
            raise ValueError(f"{name}: {self._cur_written} bytes written, tensor has {t['nbytes']}")
        self.f.write(b)
        if self._cur_written == t["nbytes"]:
            self.f.write(b"\0" * _pad(t["nbytes"], self.alignment))
            self._cur += 1
            self._cur_written = 0

    def close(self):
        if self.f is None:
            return
        if self._cur != len(self.tensors):
            self.f.close()
            raise RuntimeError(f"closed with {len(self.tensors) - self._cur} tensors unwritten")
        self.f.close()
        self.f = None


# ---- a small reader, for tests and inspection (not for the engine: that one is in C) --------
class GGUFReader:
    """Parses a GGUF into .kv {key: python value}, .kv_types {key: type}, .tensors {name:
    dict(ne, shape (numpy order), type, offset)}, .data_offset; .tensor_bytes(name) reads data."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        if self._take(4) != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        self.version, nt, nkv = struct.unpack("<IQQ", self._take(20))
        self.kv, self.kv_types = {}, {}
        for _ in range(nkv):
            key = self._str()
            vt = self._u32()
            self.kv[key], self.kv_types[key] = self._value(vt), vt
        self.tensors = {}
        for _ in range(nt):
            name = self._str()
            nd = self._u32()
            ne = list(struct.unpack(f"<{nd}Q", self._take(8 * nd)))
            ty, off = struct.unpack("<IQ", self._take(12))
            self.tensors[name] = dict(ne=ne, shape=tuple(ne[::-1]), type=ty, offset=off)
        align = self.kv.get("general.alignment", DEFAULT_ALIGNMENT)
        self.alignment = align
        self.data_offset = self.pos + _pad(self.pos, align)

    def _take(self, n):
        b = self.buf[self.pos:self.pos + n]
        if len(b) != n:
            raise ValueError(f"{self.path}: truncated")
        self.pos += n
        return b

    def _u32(self):
        return struct.unpack("<I", self._take(4))[0]

    def _str(self):
        n = struct.unpack("<Q", self._take(8))[0]
        return self._take(n).decode("utf-8")

    def _value(self, vt):
        if vt == GGUF.STRING:
            return self._str()
        if vt == GGUF.ARRAY:
            et = self._u32()
            n = struct.unpack("<Q", self._take(8))[0]
            if et == GGUF.STRING:
                return [self._str() for _ in range(n)]
            dt = np.dtype(_NP_DTYPE[et])
            arr = np.frombuffer(self._take(n * dt.itemsize), dtype=dt)
            return arr.astype(bool).tolist() if et == GGUF.BOOL else arr.tolist()
        fmt = _SCALAR_FMT[vt]
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def tensor_bytes(self, name):
        t = self.tensors[name]
        start = self.data_offset + t["offset"]
        return self.buf[start:start + tensor_nbytes(t["shape"], t["type"])]


def main(argv):
    if len(argv) != 3 or argv[1] != "dump":
        sys.exit("usage: gguf_write.py dump FILE.gguf")
    r = GGUFReader(argv[2])
    kv = {k: (v if not isinstance(v, list) or len(v) <= 8 else f"[{len(v)} items] {v[:4]}...")
          for k, v in r.kv.items()}
    print(json.dumps({"version": r.version, "alignment": r.alignment, "kv": kv,
                      "tensors": {n: dict(ne=t["ne"], type=GGML_TYPES[t["type"]][0],
                                          offset=t["offset"]) for n, t in r.tensors.items()}},
                     indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv)
