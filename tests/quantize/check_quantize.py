#!/usr/bin/python3
"""`moeserve quantize CHECKPOINT OUT --type TYPE` against tools/make_gguf.py (an independent
implementation: numpy quantizers from the block layouts) and, with --tol, against llama.cpp.

1. Which formats the build writes: `moeserve quantize --help`'s "formats this build writes" line.
   If make_gguf.py's per-tensor plan for TYPE needs one it lacks (e.g. Q5_0 for q4_k_m's
   fallback on 64-wide rows before that format lands), the command must fail with one line
   naming a missing format, exit 1, and leave no file (output or temporary): the test then
   passes. Once the format is registered the same test checks the file instead.
2. The file against make_gguf.py's for the same TYPE:
   * header: same version, the same KVs (keys, order, types, values), the same tensor infos
     (names, order, ggml type, dims, offsets), the same data offset and file size;
   * F32/F16/BF16 tensors: byte-identical (so f32/f16/bf16 files are identical as a whole);
   * Q8_0 tensors: byte-identical to numpy's Q8_0 with ties rounded to even. That is where the
     two legitimately differ: make_gguf.py (like ggml's quantize_row_q8_0_ref, which
     llama-quantize runs) rounds x/d = k + 1/2 away from zero, the engine's Q8_0 (the format
     table's quantize_row, shared with `--quantize q8_0` at load and with ggml's SIMD
     quantizers) to even; exact ties are common with bf16 weights (see qwen3_ref.py). The
     count of such bytes is printed;
   * other formats (K-quants, ...): make_gguf.py's are simple first-guess quantizers, the
     engine's follow ggml's scale searches, so the bytes differ; both dequantized (numpy,
     tests/reference/ggml_formats.py) must reproduce the checkpoint's weights, ours with a
     relative RMS error at most 2% above make_gguf.py's (measured: 9% below it for Q4_K, 6%
     for Q6_K).
3. With --tol: llama.cpp loads our file and its log-probabilities match the reference on the
   dequantized weights (tests/llamacpp/compare_llamacpp.py --gguf ... --act-quant).

usage: check_quantize.py MOESERVE CHECKPOINT --work DIR --type TYPE [--tol NATS --prompt-ids IDS
                         [--greedy N]]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import ggml_formats as GF  # noqa: E402
import make_gguf  # noqa: E402
from gguf_write import GGUFReader  # noqa: E402
import workdir  # noqa: E402

FLOATS = {"F32", "F16", "BF16"}


def build_formats(moeserve):
    out = subprocess.run([moeserve, "quantize", "--help"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "formats this build writes:" in line:
            return set(line.split(":", 1)[1].split())
    sys.exit("FAIL: `moeserve quantize --help` does not list the formats it writes")


def planned_types(ckpt, scheme):
    """{gguf name: type name} as make_gguf.py plans them, or None if it does not know scheme."""
    if scheme not in make_gguf.BASE_TYPE:
        return None
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    st = make_gguf.Safetensors(ckpt)
    out = {}
    for gname, hf, kind in make_gguf.tensor_plan(cfg):
        shape = list(st.where[hf[0]][2]["shape"])
        if len(hf) > 1:
            shape = [len(hf)] + shape
        layer = int(gname.split(".")[1]) if gname.startswith("blk.") else None
        out[gname] = GF.BLOCKS[make_gguf.choose_type(scheme, kind, shape, layer, cfg["num_hidden_layers"])][0]
    return out


def q8_0_ties_to_even(x):
    """numpy Q8_0 blocks (ggml layout) with x/d = k + 1/2 rounded to even."""
    xb = x.reshape(x.shape[0], -1, 32)
    d = (np.abs(xb).max(axis=-1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np.rint((xb * inv[..., None]).astype(np.float32)).astype(np.int8)
    return np.concatenate([d.astype("<f2").view(np.uint8).reshape(d.shape + (2,)), q.view(np.uint8)],
                          axis=-1).reshape(x.shape[0], -1)


def rel_rms(y, x):
    return float(np.sqrt(((y - x) ** 2).mean()) / max(np.sqrt((x ** 2).mean()), 1e-30))


def compare_headers(a, b):
    errs = []
    if a.version != b.version:
        errs.append(f"version {a.version} vs {b.version}")
    if list(a.kv) != list(b.kv):
        errs.append(f"KV keys/order differ:\n  ours {list(a.kv)}\n  make_gguf {list(b.kv)}")
    for k in a.kv:
        if k in b.kv and (a.kv[k] != b.kv[k] or a.kv_types[k] != b.kv_types[k]):
            va, vb = a.kv[k], b.kv[k]
            short = (lambda v: v if not isinstance(v, list) else f"[{len(v)} items]")
            errs.append(f"KV {k}: {short(va)} (type {a.kv_types[k]}) vs {short(vb)} (type {b.kv_types[k]})")
    ti = [(n, t["ne"], t["type"], t["offset"]) for n, t in a.tensors.items()]
    tj = [(n, t["ne"], t["type"], t["offset"]) for n, t in b.tensors.items()]
    if ti != tj:
        for x, y in zip(ti, tj):
            if x != y:
                errs.append(f"tensor info {x} vs {y}")
        if len(ti) != len(tj):
            errs.append(f"{len(ti)} tensors vs {len(tj)}")
    if a.data_offset != b.data_offset:
        errs.append(f"data offset {a.data_offset} vs {b.data_offset}")
    if len(a.buf) != len(b.buf):
        errs.append(f"file size {len(a.buf)} vs {len(b.buf)}")
    return errs


def compare_data(ckpt, a, b):
    with open(os.path.join(ckpt, "config.json")) as f:
        cfg = json.load(f)
    st = make_gguf.Safetensors(ckpt)
    errs = []
    for gname, hf, _ in make_gguf.tensor_plan(cfg):
        t = a.tensors[gname]
        name = GF.BLOCKS[t["type"]][0]
        ours, ref = a.tensor_bytes(gname), b.tensor_bytes(gname)
        if name in FLOATS:
            if ours != ref:
                errs.append(f"{gname} ({name}) differs from make_gguf.py's bytes")
            continue
        x = np.concatenate([st.get(n).reshape(-1, t["shape"][-1]) for n in hf])
        if name == "Q8_0":
            want = q8_0_ties_to_even(x).tobytes()
            n_diff = int(np.count_nonzero(np.frombuffer(ours, np.uint8) != np.frombuffer(ref, np.uint8)))
            status = "ok" if ours == want else "DIFFERS"
            print(f"  {gname:30s} Q8_0 {status} vs numpy ties-to-even; {n_diff} bytes differ from "
                  f"make_gguf.py's (ties away from zero)")
            if ours != want:
                errs.append(f"{gname}: Q8_0 bytes differ from numpy's (ties to even)")
            continue
        row = t["shape"][-1]
        ya = GF.dequantize(np.frombuffer(ours, np.uint8), t["type"], row)
        yb = GF.dequantize(np.frombuffer(ref, np.uint8), t["type"], row)
        ea, eb = rel_rms(ya, x), rel_rms(yb, x)
        print(f"  {gname:30s} {name:6s} rel. RMS error ours {ea:.4f}, make_gguf.py {eb:.4f}; "
              f"bytes {'equal' if ours == ref else 'differ'}")
        if not ea <= 1.02 * eb + 1e-7:
            errs.append(f"{gname} ({name}): error {ea:.4g} > 1.02 x make_gguf.py's {eb:.4g}")
    return errs


def leftovers(work, out):
    base = os.path.basename(out)
    return [f for f in os.listdir(work) if f.startswith(base + ".tmp.")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("moeserve")
    ap.add_argument("checkpoint")
    ap.add_argument("--work", required=True)
    ap.add_argument("--type", required=True)
    ap.add_argument("--tol", type=float)
    ap.add_argument("--prompt-ids")
    ap.add_argument("--greedy", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    out = os.path.join(a.work, f"ours-{a.type}.gguf")
    if os.path.exists(out):
        os.remove(out)
    have = build_formats(a.moeserve)
    plan = planned_types(a.checkpoint, a.type)
    p = subprocess.run([a.moeserve, "quantize", a.checkpoint, out, "--type", a.type, "--threads", "2"],
                       capture_output=True, text=True)
    missing = set(plan.values()) - have if plan else None
    refused = p.returncode == 1 and "cannot write yet" in p.stderr
    if missing or (plan is None and refused):
        lines = p.stderr.strip().splitlines()
        named = lines[-1].split(" needs ")[1].split()[0] if refused and " needs " in lines[-1] else None
        print(f"{a.type}: needs {sorted(missing) if missing else named}, not in this build ({sorted(have)})")
        print(f"moeserve: exit {p.returncode}: {p.stderr.strip()}")
        ok = refused and len(lines) == 1 and named not in have and (not missing or named in missing)
        ok = ok and not os.path.exists(out) and not leftovers(a.work, out)
        print("PASS (refused, as it must)" if ok else "FAIL: expected one line naming a missing format, "
              "exit 1 and no file")
        return 0 if ok else 1
    if p.returncode:
        print(p.stderr[-3000:])
        print(f"FAIL: moeserve quantize exited {p.returncode}")
        return 1
    if leftovers(a.work, out):
        print(f"FAIL: temporary files left: {leftovers(a.work, out)}")
        return 1
    errs = []
    if plan is not None:
        ref = os.path.join(a.work, f"make_gguf-{a.type}.gguf")
        if make_gguf.main([a.checkpoint, ref, "--type", a.type]):
            print("FAIL: make_gguf.py failed")
            return 1
        ra, rb = GGUFReader(out), GGUFReader(ref)
        errs = compare_headers(ra, rb)
        if not errs:
            print(f"{a.type}: header identical to make_gguf.py's ({len(ra.kv)} KVs, {len(ra.tensors)} tensors)")
            errs = compare_data(a.checkpoint, ra, rb)
            if not errs and set(plan.values()) <= FLOATS:
                with open(out, "rb") as f1, open(ref, "rb") as f2:
                    if f1.read() != f2.read():
                        errs.append("files differ")
                    else:
                        print(f"{a.type}: file byte-identical to make_gguf.py's")
    for e in errs:
        print("FAIL:", e)
    if errs:
        return 1
    if a.tol is not None:
        cmd = [sys.executable, os.path.join(ROOT, "tests", "llamacpp", "compare_llamacpp.py"), a.checkpoint,
               "--work", os.path.join(a.work, "llamacpp"), "--type", a.type, "--gguf", out, "--tol", str(a.tol),
               "--prompt-ids", a.prompt_ids, "--greedy", str(a.greedy), "--act-quant"]
        r = subprocess.run(cmd)
        if r.returncode:
            return r.returncode
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(workdir.clean_on_success(main))
