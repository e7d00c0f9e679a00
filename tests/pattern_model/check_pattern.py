#!/usr/bin/python3
"""Checks the constructed pattern model (tools/make_pattern_model.py): every case of
MODEL/pattern.json must be the greedy completion of the C engine (`moeserve generate`, one
process per case with --prompt-ids, and all cases at once through --prompt-file, which batches
them), and of the numpy reference (tests/reference/qwen3_ref.py): teacher-forced argmax for every
case, and a real step-by-step greedy decode for the cases named by --ref-greedy.

Also checks the budget_cases (reasoning cut short and </think> forced into the prompt).

usage: check_pattern.py MOESERVE --model DIR [--ref-greedy chat_nothink,...]
                        [--no-reference | --no-engine]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import qwen3_ref  # noqa: E402

EOS = 151645  # <|im_end|>: every pattern ends with it


def engine_single(moeserve, model, case):
    n = len(case["completion_ids"])
    r = subprocess.run([moeserve, "generate", "--model", model, "--ids", "--max-tokens", str(n + 8),
                        "--prompt-ids", ",".join(map(str, case["prompt_ids"]))],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"moeserve generate failed ({r.returncode}): {r.stderr[-2000:]}")
    ids = [int(t) for t in r.stdout.replace(",", " ").split()]
    # it stops at an EOS without printing it; fewer ids than --max-tokens means it stopped
    return ids + [EOS] if len(ids) < n + 8 else ids


def engine_batch(moeserve, model, cases):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for c in cases:
            f.write(json.dumps({"prompt_ids": c["prompt_ids"],
                                "max_tokens": len(c["completion_ids"]) + 8}) + "\n")
        path = f.name
    try:
        r = subprocess.run([moeserve, "generate", "--model", model, "--prompt-file", path],
                           capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError(f"moeserve generate --prompt-file failed ({r.returncode}): {r.stderr[-2000:]}")
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    # the engine leaves the EOS that stopped it out of "ids"; put it back for the comparison
    return [l["ids"] + [EOS] if l["finish_reason"] == "stop" else l["ids"] for l in lines]


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("moeserve")
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref-greedy", default="chat_nothink,tool_result_nothink",
                    help="cases to decode step by step with the reference (slow: ~0.3 s/token)")
    ap.add_argument("--no-reference", action="store_true", help="check the engine only")
    ap.add_argument("--no-engine", action="store_true", help="check the reference only")
    ap.add_argument("--single-limit", type=int, default=-1,
                    help="run only the first N cases one process each (all still run batched)")
    args = ap.parse_args()

    with open(os.path.join(args.model, "pattern.json")) as f:
        info = json.load(f)
    cases = info["cases"] + info.get("budget_cases", [])
    fails = 0

    def check(what, case, got):
        nonlocal fails
        want = case["completion_ids"]
        if got == want:
            print(f"ok   {what:12} {case['name']} ({len(want)} tokens)")
        else:
            i = first_diff(got, want)
            print(f"FAIL {what:12} {case['name']}: differs at token {i}: got {got[i:i + 8]}, "
                  f"expected {want[i:i + 8]} (got {len(got)} tokens, expected {len(want)})")
            fails += 1

    if not args.no_engine:
        for c in cases if args.single_limit < 0 else cases[:args.single_limit]:
            check("engine", c, engine_single(args.moeserve, args.model, c))
        for c, got in zip(cases, engine_batch(args.moeserve, args.model, cases)):
            check("engine-batch", c, got)

    if not args.no_reference:
        model = qwen3_ref.Model(args.model)
        lm = model.ckpt.get("lm_head.weight", np.float64)
        live = np.nonzero(np.any(lm != 0, axis=1))[0]  # all other rows are zero: logit 0
        for c in cases:
            seq = c["prompt_ids"] + c["completion_ids"]
            n = len(c["prompt_ids"])
            lg = model.hidden_states(seq[:-1])[n - 1:] @ lm[live].T
            got = [int(live[np.argmax(row)]) if row.max() > 0 else 0 for row in lg]
            check("ref-forced", c, got)
        names = [s for s in args.ref_greedy.split(",") if s]
        for c in cases:
            if c["name"] in names:
                got = model.greedy(c["prompt_ids"], len(c["completion_ids"]))
                check("ref-greedy", c, got)
    print("FAILED" if fails else "all passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
