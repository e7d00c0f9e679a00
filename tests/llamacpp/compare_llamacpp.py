#!/usr/bin/python3
"""llama.cpp (node-llama-cpp) against the numpy reference on a GGUF made by tools/make_gguf.py.

1. make_gguf.py converts CHECKPOINT into WORK/model-TYPE.gguf (--split N: split files), or
   --gguf FILE names a ready one made from CHECKPOINT (`moeserve quantize`).
2. The GGUF's tensors are read back (tools/gguf_write.GGUFReader) and dequantized with
   tests/reference/ggml_formats.py into an F32 Hugging Face checkpoint WORK/deq-TYPE, so the
   reference runs on exactly the weights llama.cpp has.
3. tests/reference/qwen3_ref.py (float64) gives the last position's next-token distribution and
   a greedy continuation (with --act-quant, on matmul inputs quantized as llama.cpp's are:
   tests/reference/act_quant.py); tests/llamacpp/run_llamacpp.mjs gives llama.cpp's.
Checks: the log-probabilities of llama.cpp's K most likely tokens agree within --tol (nats, an
absolute bound on a log-softmax difference, i.e. on logit differences after removing the common
shift), the top-1 token is the same unless the reference's top-1/top-2 margin is below the
tolerance, and (with --greedy N) the greedy ids are equal up to such a near-tie.
Tolerances are set per format in tests/gguf_tools.cmake; their justification is in docs/GGUF.md.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import act_quant  # noqa: E402
import ggml_formats as GF  # noqa: E402
import make_gguf  # noqa: E402
import qwen3_ref  # noqa: E402
from gguf_write import GGUFReader  # noqa: E402
import workdir  # noqa: E402


def write_safetensors_f32(path, tensors):
    header, off = {}, 0
    for name, a in tensors:
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, a in tensors:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def dequantized_checkpoint(ckpt_dir, gguf_paths, out_dir):
    """F32 HF checkpoint of the GGUF's weights, as ggml_formats dequantizes them."""
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        cfg = json.load(f)
    readers = [GGUFReader(p) for p in gguf_paths]
    where = {n: r for r in readers for n in r.tensors}
    out, types = [], {}
    for gname, hf_names, _ in make_gguf.tensor_plan(cfg):
        r = where[gname]
        t = r.tensors[gname]
        types[gname] = GF.BLOCKS[t["type"]][0]
        x = GF.dequantize(np.frombuffer(r.tensor_bytes(gname), np.uint8), t["type"], t["shape"][-1])
        x = x.reshape(t["shape"])
        if len(hf_names) == 1:
            out.append((hf_names[0], x))
        else:
            out += [(n, x[e]) for e, n in enumerate(hf_names)]
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors_f32(os.path.join(out_dir, "model.safetensors"), out)
    cfg["torch_dtype"] = "float32"
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    for n in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(ckpt_dir, n), os.path.join(out_dir, n))
    return types


def log_softmax(x):
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--work", required=True)
    ap.add_argument("--type", required=True)
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--gguf", help="check this ready GGUF (e.g. from `moeserve quantize`) instead of "
                    "making one with make_gguf.py; --type then only names the work files")
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--top", type=int, default=64, help="compare llama.cpp's K most likely tokens")
    ap.add_argument("--tol", type=float, required=True, help="nats")
    ap.add_argument("--act-quant", action="store_true",
                    help="the reference quantizes matmul inputs as llama.cpp does (Q8_K blocks for "
                    "K-quant weights, 32-blocks for the others: tests/reference/act_quant.py)")
    a = ap.parse_args()
    ids = [int(t) for t in a.prompt_ids.split(",")]
    os.makedirs(a.work, exist_ok=True)
    if a.gguf:
        paths = [a.gguf]
    else:
        gguf = os.path.join(a.work, f"model-{a.type}.gguf")
        r = make_gguf.main([a.checkpoint, gguf, "--type", a.type, "--split", str(a.split)])
        if r:
            return r
        paths = [gguf] if a.split <= 1 else \
            [os.path.join(a.work, f"model-{a.type}-{k + 1:05d}-of-{a.split:05d}.gguf") for k in range(a.split)]
    deq = os.path.join(a.work, f"deq-{a.type}")
    types = dequantized_checkpoint(a.checkpoint, paths, deq)

    if a.act_quant:
        with open(os.path.join(a.checkpoint, "config.json")) as f:
            kinds = act_quant.kinds_from_gguf(make_gguf.tensor_plan(json.load(f)), types)
        model = act_quant.ActQuantModel(deq, kinds, precision="float64")
    else:
        model = qwen3_ref.Model(deq, precision="float64")
    ref_lp = log_softmax(model.logits(ids)[-1])
    ref_greedy = model.greedy(ids, a.greedy) if a.greedy else []

    cmd = [os.environ.get("MS_NODE") or "node", os.path.join(HERE, "run_llamacpp.mjs"), "--model", paths[0], "--prompt-ids",
           ",".join(map(str, ids)), "--probs-top", str(a.top), "--greedy", str(a.greedy)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        print(f"FAIL: llama.cpp: {p.stderr.strip()}")
        return 1
    res = json.loads(p.stdout)
    top = res["probs"][str(len(ids) - 1)]
    ll_ids = np.array([t for t, _ in top])
    ll_lp = np.log(np.array([q for _, q in top], dtype=np.float64))
    diff = np.abs(ll_lp - ref_lp[ll_ids])
    order = np.argsort(-ref_lp)
    margin = ref_lp[order[0]] - ref_lp[order[1]]
    ok = True
    print(f"{a.type}: max |dlogp| over llama.cpp's top {len(top)} = {diff.max():.3g} nats "
          f"(tol {a.tol}); top-1 llama {ll_ids[0]} ref {order[0]} (ref margin {margin:.3g})")
    if diff.max() > a.tol:
        print("FAIL: log-probabilities differ beyond the tolerance")
        ok = False
    if ll_ids[0] != order[0] and margin > a.tol:
        print("FAIL: top-1 differs and is not a near-tie")
        ok = False
    if a.greedy:
        g = res["greedy"]
        print(f"greedy llama {g}\ngreedy ref   {ref_greedy}")
        if g != ref_greedy:
            k = next(i for i in range(min(len(g), len(ref_greedy))) if g[i] != ref_greedy[i])
            lp = log_softmax(model.logits(ids + ref_greedy[:k])[-1])
            s = np.sort(lp)[::-1]
            print(f"first divergence at {k}: ref margin {s[0] - s[1]:.3g}")
            if s[0] - s[1] > a.tol:
                print("FAIL: greedy continuations differ and not at a near-tie")
                ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(workdir.clean_on_success(main))
