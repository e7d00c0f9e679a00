#!/usr/bin/python3
"""`--quantize TYPE` at load computes with the weights `moeserve quantize --type TYPE` writes.

1. `moeserve quantize CHECKPOINT WORK/q.gguf --type TYPE`; its tensors are dequantized with the
   numpy block decoders (tests/reference/ggml_formats.py) into an F32 checkpoint WORK/deq.
2. `moeserve forward --model CHECKPOINT --quantize TYPE` gives the logits of every prompt
   position; the reference (float64) runs on WORK/deq with its matmul inputs quantized as the
   engine's kernels quantize them (tests/reference/act_quant.py: Q8_K blocks for K-quants).
   If the engine converted any tensor differently from the file (another format, other bits,
   a tensor left out) or the kernels mis-read a block, this cannot agree: the bounds are the
   float tests' (compare_logits.py: max |diff| <= 1e-4 x std, relative RMS <= 3e-6; measured on
   gguf-w256, q4_k_m: 1.1e-6 x std and 8e-8), and the same logits must also be at least 100x
   the max bound away from the reference WITHOUT activation quantization, so the check tells
   the engine's quantized arithmetic from exact products (measured ~1e4x).
3. `moeserve generate --quantize TYPE` (greedy, --ignore-eos) must produce the reference's greedy
   ids (up to a near-tie: a top-2 gap below 1e-4 x std).
When the GGUF reader lands, the same check can load WORK/q.gguf itself and compare directly.

usage: check_load_quant.py MOESERVE CHECKPOINT --work DIR --type TYPE --prompt-ids IDS [--greedy N]
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
sys.path.insert(0, os.path.join(ROOT, "tests", "llamacpp"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import act_quant  # noqa: E402
import compare_llamacpp  # noqa: E402
import make_gguf  # noqa: E402
import qwen3_ref  # noqa: E402
import workdir  # noqa: E402

RTOL, RMS_RTOL, SEPARATION, NEAR_TIE = 1e-4, 3e-6, 100.0, 1e-4


def run(cmd):
    p = subprocess.run(cmd, capture_output=True)
    if p.returncode:
        sys.stdout.write(p.stderr.decode(errors="replace")[-3000:])
        print(f"FAIL: {' '.join(cmd[:2])} exited {p.returncode}")
        sys.exit(1)
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("moeserve")
    ap.add_argument("checkpoint")
    ap.add_argument("--work", required=True)
    ap.add_argument("--type", required=True)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--greedy", type=int, default=6)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    ids = [int(t) for t in a.prompt_ids.split(",")]
    gguf = os.path.join(a.work, "q.gguf")
    run([a.moeserve, "quantize", a.checkpoint, gguf, "--type", a.type, "--force", "--threads", "2"])
    deq = os.path.join(a.work, "deq")
    types = compare_llamacpp.dequantized_checkpoint(a.checkpoint, [gguf], deq)
    with open(os.path.join(a.checkpoint, "config.json")) as f:
        kinds = act_quant.kinds_from_gguf(make_gguf.tensor_plan(json.load(f)), types)
    print(f"{a.type}: tensor types {sorted(set(types.values()))}; {len(kinds)} matmul inputs quantized")

    out = os.path.join(a.work, "engine.bin")
    run([a.moeserve, "forward", "--model", a.checkpoint, "--quantize", a.type, "--prompt-ids", a.prompt_ids,
         "--out", out])
    eng = np.fromfile(out, dtype="<f4").astype(np.float64)
    model = act_quant.ActQuantModel(deq, kinds)
    ref = model.logits(ids)
    if eng.size != ref.size:
        print(f"FAIL: engine wrote {eng.size} logits, want {ref.size}")
        return 1
    eng = eng.reshape(ref.shape)
    std = float(ref.std())
    err = float(np.abs(eng - ref).max()) / std
    rms = float(np.sqrt(((eng - ref) ** 2).mean()) / np.sqrt((ref ** 2).mean()))
    exact = qwen3_ref.Model(deq, precision="float64").logits(ids)
    sep = float(np.abs(eng - exact).max()) / std / RTOL
    print(f"engine vs reference (quantized inputs): max {err:.3g} x std (bound {RTOL}), relative RMS "
          f"{rms:.3g} (bound {RMS_RTOL}); vs exact products {sep:.3g} x the bound away")
    ok = True
    if err > RTOL or rms > RMS_RTOL:
        print("FAIL: the engine's logits differ from the reference on the GGUF's weights")
        ok = False
    if sep < SEPARATION:
        print(f"FAIL: the engine is not told apart from unquantized inputs (separation {sep:.3g})")
        ok = False
    if not np.array_equal(eng.argmax(1), ref.argmax(1)):
        print("FAIL: argmax differs")
        ok = False

    g = run([a.moeserve, "generate", "--model", a.checkpoint, "--quantize", a.type, "--prompt-ids", a.prompt_ids,
             "--max-tokens", str(a.greedy), "--temperature", "0", "--ignore-eos", "--ids"])
    got = [int(t) for t in g.decode().replace(",", " ").split()]
    seq, want = list(ids), []
    for step in range(a.greedy):
        lg = model.head(model.hidden_states(seq)[-1:])[0]
        top2 = np.argsort(-lg, kind="stable")[:2]
        if step < len(got) and got[step] != int(top2[0]):
            gap = float(lg[top2[0]] - lg[top2[1]])
            tie = gap <= NEAR_TIE * float(lg.std()) and got[step] == int(top2[1])
            print(f"greedy step {step}: engine {got[step]}, reference {int(top2[0])} (gap {gap:.3g})"
                  f"{' near-tie' if tie else ''}")
            ok = ok and tie
            break
        want.append(int(top2[0]))
        seq.append(int(top2[0]))
    else:
        if got != want:
            print(f"FAIL: engine generated {got}, reference {want}")
            ok = False
    print(f"greedy: engine {got}\n        ref    {want}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(workdir.clean_on_success(main))
