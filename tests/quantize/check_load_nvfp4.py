#!/usr/bin/python3
"""`--quantize nvfp4` at load against numpy, and how far NVFP4 moves the logits from BF16.

1. Every weight the nvfp4 scheme converts (the attention projections, the experts, a dense FFN;
   rows that are whole 256-value super-blocks) is quantized and dequantized with the numpy
   reference (tests/reference/nvfp4.py); the rest is kept as stored. That is written as an F32
   checkpoint WORK/deq.
2. `moeserve forward --model CHECKPOINT --quantize nvfp4` gives the logits of every prompt
   position. The float64 reference runs on WORK/deq with the inputs of the NVFP4 matmuls
   quantized to Q8_0 blocks as the kernels read them (tests/reference/act_quant.py). A tensor
   converted differently, other bits, or a mis-read block cannot agree within the float tests'
   bounds (check_load_quant.py: max |diff| <= 1e-4 x std, relative RMS <= 3e-6), and the
   logits must be >= 100x that max bound away from the exact-product reference, so the check
   tells the engine's quantized arithmetic from exact products.
3. The cost of the format: the same logits against the float64 reference on the stored (BF16)
   weights; printed, and bounded loosely (relative RMS <= 0.35; measured on gguf-w256: 0.146,
   max 1.38 x std, the same argmax at 73% of positions: FP4 is coarse, and the random test
   models have no structure for it to keep).
4. `moeserve generate --quantize nvfp4` (greedy) produces tokens.
5. `moeserve quantize --type nvfp4` (the GGUF writer) refuses: exit 2, one line, no file.

usage: check_load_nvfp4.py MOESERVE CHECKPOINT --work DIR --prompt-ids IDS
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "llamacpp"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import act_quant  # noqa: E402
import compare_llamacpp  # noqa: E402
import nvfp4  # noqa: E402
import qwen3_ref  # noqa: E402
import workdir  # noqa: E402

RTOL, RMS_RTOL, SEPARATION, BF16_RMS = 1e-4, 3e-6, 100.0, 0.35
CONVERTED = re.compile(r"\.(self_attn\.[qkvo]_proj|mlp\.(experts\.\d+\.)?(gate|up|down)_proj)\.weight$")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True)
    if p.returncode:
        sys.stdout.write(p.stderr.decode(errors="replace")[-3000:])
        print(f"FAIL: {' '.join(cmd[:2])} exited {p.returncode}")
        sys.exit(1)
    return p.stdout


def nvfp4_checkpoint(ckpt_dir, out_dir):
    """F32 checkpoint of the weights as the scheme gives them; returns the converted names."""
    ck = qwen3_ref.Checkpoint(ckpt_dir)
    out, kinds = [], {}
    for name in sorted(ck.where):
        x = ck.get(name, np.float32)
        if CONVERTED.search(name) and x.ndim == 2 and x.shape[1] % nvfp4.SUPER == 0:
            x = nvfp4.dequantize(nvfp4.quantize(x), x.shape[1])
            kinds[name] = "q8_0"
        out.append((name, x))
    os.makedirs(out_dir, exist_ok=True)
    compare_llamacpp.write_safetensors_f32(os.path.join(out_dir, "model.safetensors"), out)
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg["torch_dtype"] = "float32"
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    for n in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(ckpt_dir, n), os.path.join(out_dir, n))
    return kinds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("moeserve")
    ap.add_argument("checkpoint")
    ap.add_argument("--work", required=True)
    ap.add_argument("--prompt-ids", required=True)
    a = ap.parse_args()
    ids = [int(t) for t in a.prompt_ids.split(",")]
    deq = os.path.join(a.work, "deq")
    kinds = nvfp4_checkpoint(a.checkpoint, deq)
    print(f"nvfp4: {len(kinds)} tensors converted")

    out = os.path.join(a.work, "engine.bin")
    run([a.moeserve, "forward", "--model", a.checkpoint, "--quantize", "nvfp4", "--prompt-ids", a.prompt_ids,
         "--threads", "2", "--out", out])
    eng = np.fromfile(out, dtype="<f4").astype(np.float64)
    ref = act_quant.ActQuantModel(deq, kinds).logits(ids)
    if eng.size != ref.size or not kinds:
        print(f"FAIL: engine wrote {eng.size} logits, want {ref.size}; {len(kinds)} tensors converted")
        return 1
    eng = eng.reshape(ref.shape)
    std = float(ref.std())
    err = float(np.abs(eng - ref).max()) / std
    rms = float(np.sqrt(((eng - ref) ** 2).mean()) / np.sqrt((ref ** 2).mean()))
    exact = qwen3_ref.Model(deq, precision="float64").logits(ids)
    sep = float(np.abs(eng - exact).max()) / std / RTOL
    bf16 = qwen3_ref.Model(a.checkpoint, precision="float64").logits(ids)
    b_max = float(np.abs(eng - bf16).max()) / float(bf16.std())
    b_rms = float(np.sqrt(((eng - bf16) ** 2).mean()) / np.sqrt((bf16 ** 2).mean()))
    b_top = float(np.mean(eng.argmax(1) == bf16.argmax(1)))
    print(f"engine vs NVFP4 reference (Q8_0 inputs): max {err:.3g} x std (bound {RTOL}), relative RMS {rms:.3g} "
          f"(bound {RMS_RTOL}); vs exact products {sep:.3g} x the bound away")
    print(f"engine NVFP4 vs BF16 weights: max {b_max:.3g} x std, relative RMS {b_rms:.3g} (bound {BF16_RMS}), "
          f"same argmax at {b_top:.0%} of positions")
    ok = True
    if err > RTOL or rms > RMS_RTOL:
        print("FAIL: the engine's logits differ from the reference on the NVFP4 weights")
        ok = False
    if sep < SEPARATION:
        print(f"FAIL: the engine is not told apart from unquantized inputs (separation {sep:.3g})")
        ok = False
    if b_rms > BF16_RMS:
        print("FAIL: NVFP4 moved the logits further from BF16 than the bound")
        ok = False
    g = run([a.moeserve, "generate", "--model", a.checkpoint, "--quantize", "nvfp4", "--prompt-ids", a.prompt_ids,
             "--max-tokens", "4", "--temperature", "0", "--ignore-eos", "--ids", "--threads", "2"])
    got = [int(t) for t in g.decode().replace(",", " ").split()]
    print(f"generate --quantize nvfp4: {got}")
    if len(got) != 4:
        print("FAIL: generate did not produce 4 tokens")
        ok = False
    gguf = os.path.join(a.work, "refused.gguf")
    p = subprocess.run([a.moeserve, "quantize", a.checkpoint, gguf, "--type", "nvfp4"], capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    print(f"quantize --type nvfp4: exit {p.returncode}: {p.stderr.strip()}")
    if p.returncode != 2 or len(lines) != 1 or "load-time scheme" not in lines[0] or os.path.exists(gguf):
        print("FAIL: expected one line saying it is a load-time scheme, exit 2 and no file")
        ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(workdir.clean_on_success(main))
