#!/usr/bin/python3
"""moeserve on a GGUF against the Hugging Face checkpoint it came from and against llama.cpp.

1. tools/make_gguf.py converts CHECKPOINT into WORK/model-TYPE.gguf (--split N: split files), or
   with --maker moeserve, `moeserve quantize` does (seconds where numpy takes minutes; the file is
   still checked against llama.cpp, an independent reader and implementation of every format).
2. `moeserve forward` gives the logits of every prompt position from the checkpoint and from the
   GGUF (passed as the first split file), and `moeserve generate --temperature 0` the greedy ids.
3. tests/llamacpp/run_llamacpp.mjs (node-llama-cpp's prebuilt llama.cpp) gives llama.cpp's
   next-token probabilities after the prompt and its greedy ids on the same GGUF.
Checks:
* --hf-tol X (float types, whose weights are the checkpoint's values): every logit of every
  position from the GGUF within X of the checkpoint's, and the same greedy ids.
* against llama.cpp: the log-probabilities of its --top most likely tokens within --tol nats of
  ours (log-softmax, so the common shift cancels), and the greedy ids equal up to a near-tie (our
  top-1/top-2 margin below --tol at the first divergence) -- docs/GGUF.md's tolerances.
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
sys.path.insert(0, os.path.join(ROOT, "tests"))
import make_gguf  # noqa: E402
import workdir  # noqa: E402


def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"FAIL: {' '.join(cmd[:3])}...: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p.stdout


def forward(ms, model, ids, work, tag):
    out = os.path.join(work, f"logits-{tag}.f32")
    run([ms, "forward", "--model", model, "--prompt-ids", ",".join(map(str, ids)), "--out", out, "--threads", "2"])
    x = np.fromfile(out, dtype="<f4")
    return x.reshape(len(ids), -1).astype(np.float64)


def greedy(ms, model, ids, n):
    out = run([ms, "generate", "--model", model, "--prompt-ids", ",".join(map(str, ids)), "--ids",
               "--temperature", "0", "--max-tokens", str(n), "--ignore-eos", "--threads", "2"])
    return [int(t) for t in out.split()]


def margin_at(ms, model, ids, work):
    lp = log_softmax(forward(ms, model, ids, work, "margin")[-1])
    s = np.sort(lp)[::-1]
    return s[0] - s[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--moeserve", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--type", required=True)
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--prompt-ids", required=True)
    ap.add_argument("--greedy", type=int, default=4)
    ap.add_argument("--top", type=int, default=64)
    ap.add_argument("--tol", type=float, required=True, help="against llama.cpp, nats")
    ap.add_argument("--hf-tol", type=float, help="against the checkpoint: max |d logit| (float types)")
    ap.add_argument("--maker", choices=("make_gguf", "moeserve"), default="make_gguf")
    a = ap.parse_args()
    ids = [int(t) for t in a.prompt_ids.split(",")]
    ms = a.moeserve
    os.makedirs(a.work, exist_ok=True)
    gguf = os.path.join(a.work, f"model-{a.type}.gguf")
    if a.maker == "moeserve":
        if a.split > 1:
            sys.exit("--maker moeserve writes one file")
        run([ms, "quantize", a.checkpoint, gguf, "--type", a.type, "--force"])
    elif make_gguf.main([a.checkpoint, gguf, "--type", a.type, "--split", str(a.split)]):
        return 1
    if a.split > 1:
        gguf = os.path.join(a.work, f"model-{a.type}-00001-of-{a.split:05d}.gguf")
    ok = True

    ours = forward(ms, gguf, ids, a.work, "gguf")
    ours_greedy = greedy(ms, gguf, ids, a.greedy)
    if a.hf_tol is not None:
        hf = forward(ms, a.checkpoint, ids, a.work, "hf")
        d = np.abs(ours - hf).max()
        hf_greedy = greedy(ms, a.checkpoint, ids, a.greedy)
        print(f"{a.type}: GGUF vs checkpoint: max |d logit| over {len(ids)} positions = {d:.3g} (tol {a.hf_tol}); "
              f"greedy {ours_greedy} vs {hf_greedy}")
        if not d <= a.hf_tol:
            print("FAIL: logits differ from the checkpoint's")
            ok = False
        if ours_greedy != hf_greedy:
            print("FAIL: greedy ids differ from the checkpoint's")
            ok = False

    cmd = [os.environ.get("MS_NODE") or "node", os.path.join(ROOT, "tests", "llamacpp", "run_llamacpp.mjs"),
           "--model", gguf, "--prompt-ids", ",".join(map(str, ids)), "--probs-top", str(a.top),
           "--greedy", str(a.greedy), "--threads", "2"]
    res = json.loads(run(cmd))
    top = res["probs"][str(len(ids) - 1)]
    ll_ids = np.array([t for t, _ in top])
    ll_lp = np.log(np.array([q for _, q in top], dtype=np.float64))
    lp = log_softmax(ours[-1])
    diff = np.abs(ll_lp - lp[ll_ids])
    order = np.argsort(-lp)
    margin = lp[order[0]] - lp[order[1]]
    print(f"{a.type}: moeserve vs llama.cpp: max |d log p| over its top {len(top)} = {diff.max():.3g} nats "
          f"(tol {a.tol}); top-1 llama {ll_ids[0]} moeserve {order[0]} (margin {margin:.3g})")
    if not diff.max() <= a.tol:
        print("FAIL: log-probabilities differ from llama.cpp's beyond the tolerance")
        ok = False
    if ll_ids[0] != order[0] and margin > a.tol:
        print("FAIL: top-1 differs from llama.cpp's and is not a near-tie")
        ok = False
    g = res["greedy"]
    print(f"greedy llama.cpp {g}\ngreedy moeserve  {ours_greedy}")
    if g != ours_greedy:
        k = next((i for i in range(min(len(g), len(ours_greedy))) if g[i] != ours_greedy[i]), None)
        if k is None:
            print("FAIL: greedy continuations differ in length")
            ok = False
        else:
            m = margin_at(ms, gguf, ids + ours_greedy[:k], a.work)
            print(f"first divergence at {k}: moeserve margin {m:.3g}")
            if m > a.tol:
                print("FAIL: greedy ids differ from llama.cpp's and not at a near-tie")
                ok = False
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(workdir.clean_on_success(main))
