#!/usr/bin/python3
"""`moeserve quantize IN.gguf OUT.gguf --type TYPE`: a GGUF converted to another scheme.

1. CHECKPOINT -> bf16 GGUF, then bf16 GGUF -> TYPE, against CHECKPOINT -> TYPE directly: the
   bf16 values are the checkpoint's, so the two files must be byte-identical as a whole (the
   tokenizer keys and chat template carried over in the input's order, the hyperparameters as
   the writer writes them, general.file_type / quantization_version of TYPE, every tensor).
2. That TYPE file -> TYPE again: every tensor is already in its type, so it is copied as is and
   the file is unchanged (a K-quant scale search on dequantized values would change bytes).
3. With --from-quant Q: the TYPE file -> Q (a quantized source): each tensor against numpy
   (tests/reference/ggml_formats.py): the input dequantized, then F32 as is, Q8_0 with ties to
   even (check_quantize.py's reference); a tensor whose type does not change is copied.
4. With --tol: llama.cpp loads the step-1 file and its log-probabilities match the reference
   (tests/llamacpp/compare_llamacpp.py --gguf ... --act-quant, as check_quantize.py).

usage: check_requant.py MOESERVE CHECKPOINT --work DIR --type TYPE [--from-quant Q]
                        [--tol NATS --prompt-ids IDS [--greedy N]]
"""
import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import ggml_formats as GF  # noqa: E402
from check_quantize import q8_0_ties_to_even  # noqa: E402
from gguf_write import GGUFReader  # noqa: E402
import workdir  # noqa: E402


def quantize(moeserve, src, out, typ):
    if os.path.exists(out):
        os.remove(out)
    p = subprocess.run([moeserve, "quantize", src, out, "--type", typ, "--threads", "2"], capture_output=True,
                       text=True)
    if p.returncode:
        print(p.stderr[-3000:])
        sys.exit(f"FAIL: moeserve quantize {src} -> {typ} exited {p.returncode}")
    return out


def same_file(a, b, what):
    with open(a, "rb") as f1, open(b, "rb") as f2:
        x, y = f1.read(), f2.read()
    if x == y:
        print(f"ok   {what}: byte-identical ({len(x)} bytes)")
        return []
    ra, rb = GGUFReader(a), GGUFReader(b)
    errs = [f"{what}: files differ"]
    if list(ra.kv) != list(rb.kv):
        errs.append(f"  KV keys/order: {list(ra.kv)} vs {list(rb.kv)}")
    for k in ra.kv:
        if k in rb.kv and ra.kv[k] != rb.kv[k]:
            errs.append(f"  KV {k} differs")
    for n in ra.tensors:
        if n not in rb.tensors or ra.tensor_bytes(n) != rb.tensor_bytes(n):
            errs.append(f"  tensor {n} ({GF.BLOCKS[ra.tensors[n]['type']][0]}) differs")
    return errs


def check_from_quant(src, out, typ):
    ra, rb = GGUFReader(src), GGUFReader(out)
    errs, counts = [], {}
    if [n for n in ra.tensors] != [n for n in rb.tensors]:
        return [f"{typ}: tensor names/order differ from the input's"]
    for k in ra.kv:
        if k.startswith("tokenizer.") and (k not in rb.kv or rb.kv[k] != ra.kv[k]):
            errs.append(f"{typ}: {k} not carried over")
    for n, t in rb.tensors.items():
        ti, to = ra.tensors[n]["type"], t["type"]
        name_i, name_o = GF.BLOCKS[ti][0], GF.BLOCKS[to][0]
        ours, row = rb.tensor_bytes(n), t["shape"][-1]
        if ti == to:
            want, how = ra.tensor_bytes(n), "copied"
        else:
            x = GF.dequantize(np.frombuffer(ra.tensor_bytes(n), np.uint8), ti, row).astype(np.float32)
            x = x.reshape(-1, row)
            if name_o == "F32":
                want = x.tobytes()
            elif name_o == "Q8_0":
                want = q8_0_ties_to_even(x).tobytes()
            else:
                errs.append(f"{n}: {name_i} -> {name_o} has no reference here")
                continue
            how = f"{name_i}->{name_o}"
        counts[how] = counts.get(how, 0) + 1
        if ours != want:
            errs.append(f"{n}: {how} differs from numpy's")
    print(f"{'ok  ' if not errs else 'FAIL'} {typ} from a quantized GGUF against numpy: {counts}")
    return errs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("moeserve")
    ap.add_argument("checkpoint")
    ap.add_argument("--work", required=True)
    ap.add_argument("--type", required=True)
    ap.add_argument("--from-quant")
    ap.add_argument("--tol", type=float)
    ap.add_argument("--prompt-ids")
    ap.add_argument("--greedy", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    w = lambda f: os.path.join(a.work, f)  # noqa: E731
    bf16 = quantize(a.moeserve, a.checkpoint, w("bf16.gguf"), "bf16")
    direct = quantize(a.moeserve, a.checkpoint, w(f"direct-{a.type}.gguf"), a.type)
    via = quantize(a.moeserve, bf16, w(f"via-bf16-{a.type}.gguf"), a.type)
    errs = same_file(via, direct, f"bf16 GGUF -> {a.type} vs checkpoint -> {a.type}")
    again = quantize(a.moeserve, via, w(f"again-{a.type}.gguf"), a.type)
    errs += same_file(again, via, f"{a.type} GGUF -> {a.type} (every tensor copied)")
    if a.from_quant:
        out = quantize(a.moeserve, via, w(f"{a.type}-to-{a.from_quant}.gguf"), a.from_quant)
        errs += check_from_quant(via, out, a.from_quant)
    for e in errs:
        print("FAIL:", e)
    if errs:
        return 1
    if a.tol is not None:
        cmd = [sys.executable, os.path.join(ROOT, "tests", "llamacpp", "compare_llamacpp.py"), a.checkpoint,
               "--work", w("llamacpp"), "--type", a.type, "--gguf", via, "--tol", str(a.tol),
               "--prompt-ids", a.prompt_ids, "--greedy", str(a.greedy), "--act-quant"]
        r = subprocess.run(cmd)
        if r.returncode:
            return r.returncode
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(workdir.clean_on_success(main))
