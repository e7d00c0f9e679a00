#!/usr/bin/python3
"""The C GGUF writer's file read back by tools/gguf_write.py's reader (written independently
from the GGUF specification): every value type, arrays, alignment 64, tensor infos in ggml's
dimension order, offsets, zero padding and data. Runs the C side's own error-path checks too.

usage: check_gguf_writer.py TEST_GGUF_WRITER WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from gguf_write import GGUF, GGUFReader  # noqa: E402


def main():
    exe, work = sys.argv[1:3]
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "all_types.gguf")
    p = subprocess.run([exe, path], capture_output=True, text=True)
    sys.stdout.write(p.stdout + p.stderr)
    if p.returncode:
        print("FAIL: test_gguf_writer")
        return 1
    r = GGUFReader(path)
    want = {"general.alignment": (64, GGUF.UINT32), "t.u8": (200, GGUF.UINT8), "t.i8": (-100, GGUF.INT8),
            "t.u16": (60000, GGUF.UINT16), "t.i16": (-30000, GGUF.INT16), "t.u32": (4000000000, GGUF.UINT32),
            "t.i32": (-2000000000, GGUF.INT32), "t.f32": (float(np.float32(1e-6)), GGUF.FLOAT32),
            "t.bool": (True, GGUF.BOOL), "t.str": ("héllo", GGUF.STRING),
            "t.u64": (18000000000000000000, GGUF.UINT64), "t.i64": (-9000000000000000000, GGUF.INT64),
            "t.f64": (3.141592653589793, GGUF.FLOAT64), "t.arr_i32": ([1, -2, 3], GGUF.ARRAY),
            "t.arr_f32": ([0.5, -1.25], GGUF.ARRAY), "t.arr_bool": ([True, False, True], GGUF.ARRAY),
            "t.arr_empty": ([], GGUF.ARRAY), "t.arr_str": (["a", "", "ĠHello"], GGUF.ARRAY)}
    errs = []
    if r.version != 3:
        errs.append(f"version {r.version}")
    if list(r.kv) != list(want):
        errs.append(f"keys {list(r.kv)}")
    for k, (v, t) in want.items():
        if r.kv.get(k) != v or r.kv_types.get(k) != t:
            errs.append(f"{k}: {r.kv.get(k)!r} (type {r.kv_types.get(k)}), want {v!r} (type {t})")
    tens = {n: (t["ne"], t["type"], t["offset"]) for n, t in r.tensors.items()}
    want_t = {"a.weight": ([3, 2], 0, 0), "b.weight": ([5], 0, 64), "c.weight": ([32, 2, 2], 8, 128)}
    if tens != want_t:
        errs.append(f"tensor infos {tens}, want {want_t}")
    if r.data_offset % 64:
        errs.append(f"data offset {r.data_offset} not aligned to 64")
    buf = r.buf
    d = r.data_offset
    if np.frombuffer(buf[d:d + 24], "<f4").tolist() != [1, 2, 3, 4, 5, 6]:
        errs.append("a.weight data")
    if np.frombuffer(buf[d + 64:d + 84], "<f4").tolist() != [-1, -2, -3, -4, -5]:
        errs.append("b.weight data")
    if buf[d + 128:d + 128 + 136] != bytes(range(136)):
        errs.append("c.weight data")
    if any(buf[d + 24:d + 64]) or any(buf[d + 84:d + 128]) or any(buf[r.pos:d]):
        errs.append("padding is not zero")
    if len(buf) != d + 128 + 136 + (64 - 136 % 64):
        errs.append(f"file size {len(buf)} (the last tensor padded to the alignment)")
    for e in errs:
        print("FAIL:", e)
    print("PASS" if not errs else "FAIL")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
