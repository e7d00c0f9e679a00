#!/usr/bin/python3
"""The C GGUF reader (gguf_dump) against tools/gguf_write.py's Python reader on the same files:
every key with its type and exact value (strings byte for byte, string arrays element by element),
every tensor's type, ne, absolute offset, size and data (a position-weighted byte sum), across all split parts.

usage: compare_gguf_dump.py GGUF_DUMP FILE.gguf [more parts of the same set...]
(the first file is the one gguf_dump opens; the others are read by Python only)
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from gguf_write import GGUF, GGUFReader, tensor_nbytes  # noqa: E402


def weighted_sum(b):
    a = np.frombuffer(b, dtype=np.uint8).astype(np.uint64)
    w = np.arange(len(a), dtype=np.uint64) % np.uint64(251) + np.uint64(1)
    return int(np.sum(a * w, dtype=np.uint64))


def cstr(s):
    return s.encode("latin-1")  # gguf_dump prints one code point per byte


def scalar(vt, v):
    if vt == GGUF.STRING:
        return v.encode("utf-8")
    if vt == GGUF.BOOL:
        return bool(v)
    if vt == GGUF.FLOAT32:
        return float(struct.unpack("<f", struct.pack("<f", v))[0])
    if vt == GGUF.FLOAT64:
        return float(v)
    return int(v)


def c_scalar(vt, v):
    if vt == GGUF.STRING:
        return cstr(v)
    if vt == GGUF.BOOL:
        return v if isinstance(v, bool) else bool(int(v))
    if vt == GGUF.FLOAT32:  # printed with 9 digits: round trips to the same float32
        return float(struct.unpack("<f", struct.pack("<f", float(v)))[0])
    if vt == GGUF.FLOAT64:
        return float(v)
    return int(v)


def main():
    dump, files = sys.argv[1], sys.argv[2:]
    p = subprocess.run([dump, files[0]], capture_output=True)
    if p.returncode:
        sys.exit(f"FAIL: gguf_dump: {p.stderr.decode(errors='replace')}")
    c = json.loads(p.stdout.decode("ascii"))
    readers = [GGUFReader(f) for f in files]
    r0 = readers[0]
    bad = []
    if c["version"] != r0.version or c["alignment"] != r0.alignment or c["parts"] != len(files):
        bad.append(f"header: C {c['version']}/{c['alignment']}/{c['parts']} vs {r0.version}/{r0.alignment}/{len(files)}")
    ckv = {cstr(k).decode("utf-8"): v for k, v in c["kv"].items()}
    if set(ckv) != set(r0.kv):
        bad.append(f"keys differ: {sorted(set(ckv) ^ set(r0.kv))}")
    for k, v in r0.kv.items():
        if k not in ckv:
            continue
        vt, cv = r0.kv_types[k], ckv[k]
        if cv["type"] != vt:
            bad.append(f"{k}: type {cv['type']} vs {vt}")
            continue
        if vt == GGUF.ARRAY:
            et = cv["value"]["elem"]
            got = [c_scalar(et, x) for x in cv["value"]["items"]]
            want = [scalar(et, x) for x in v]
            if et == GGUF.UINT64:
                want = [x if x <= 2**63 - 1 else 2**63 - 1 for x in want]
        else:
            got, want = c_scalar(vt, cv["value"]), scalar(vt, v)
        if got != want:
            bad.append(f"{k}: value differs ({str(got)[:80]} vs {str(want)[:80]})")
    tensors = {}
    for f, r in zip(files, readers):
        for n, t in r.tensors.items():
            tensors[n] = (f, r, t)
    if set(c["tensors"]) != set(tensors):
        bad.append(f"tensors differ: {sorted(set(c['tensors']) ^ set(tensors))[:10]}")
    for n, ct in c["tensors"].items():
        if n not in tensors:
            continue
        f, r, t = tensors[n]
        data = r.tensor_bytes(n)
        want = dict(type=t["type"], ne=t["ne"], offset=r.data_offset + t["offset"],
                    nbytes=tensor_nbytes(t["shape"], t["type"]), sum=str(weighted_sum(data)), part=f, found=True)
        for key, w in want.items():
            if ct[key] != w:
                bad.append(f"tensor {n}: {key} {ct[key]} vs {w}")
    for b in bad[:20]:
        print("FAIL:", b)
    n_str = sum(len(v) for k, v in r0.kv.items() if r0.kv_types[k] == GGUF.ARRAY and isinstance(v, list))
    print(f"{files[0]}: {len(r0.kv)} keys ({n_str} array elements), {len(tensors)} tensors in {len(files)} part(s): "
          + ("PASS" if not bad else f"{len(bad)} differences"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
