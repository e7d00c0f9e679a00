#!/usr/bin/python3
"""Compares the C engine's logits with the numpy reference (qwen3_ref.py) on one prompt.

Runs `MOESERVE forward --model DIR --prompt-ids IDS --out FILE` (raw little-endian float32
[n_tokens, vocab]) and the reference on the same prompt, and compares the full logits of every
position. Exits 0 on agreement, 1 on a mismatch, 2 when the engine fails or its output is
malformed.

usage: compare_logits.py MOESERVE --model DIR (--prompt-ids 1,2,3 | --random N [--seed S])
                         [--rtol 1e-4] [--rms-rtol 3e-6] [--precision float64] [--keep DIR]

Tolerance. Both sides compute in float32-or-better on the same decoded weights, so the only
legitimate difference is rounding: summation order (BLAS blocking, thread splits), exp/rsqrt
implementations, float32 RoPE angles. The reference computes in float64, i.e. essentially the
exact result, so what is measured is the engine's own float32 error. To calibrate, the reference
was also run in float32 (a faithful float32 implementation, HF-style float32 RoPE angles, numpy's
summation order) and compared with the float64 run:
    model (prompt)                   logit std   max|diff|/std   relative RMS error
    tiny (320 random tokens)           2.04         2.1e-6           2.4e-7
    tiny-sparse-step, 6 layers (64)    2.04         2.9e-6           2.9e-7
    a3b --layers 1 (8 tokens)          2.01         2.7e-6           4.4e-7
    a3b --layers 4 (64 tokens)         2.01         2.7e-6           4.1e-7
Logits have std about 2 and magnitude up to about 11, where one float32 ulp is about 1e-6: the
max error of an honest float32 implementation is a few ulps of the largest logits, independent
of depth and width here. Two bounds, both must hold:
    max |engine - reference|          <= rtol * std(reference),  rtol = 1e-4   (~35x measured)
    RMS(engine - reference) / RMS(ref) <= rms_rtol,              rms_rtol = 3e-6 (~10x measured)
The max bound catches anything local (one position or one expert wrong) with ample headroom for
other summation orders; the RMS bound, being an average over millions of logits, is statistically
stable and so can be tighter, and catches small systematic slips. Measured on the tiny models
(max/std, relRMS): rms_norm_eps 1e-5 instead of 1e-6 gives 5.6e-5, 6.7e-6 (caught by the RMS
bound); rope_theta off by 1e-4 relative 3.6e-5, 3.1e-6 (borderline); a bf16 KV cache 6e-3, 5.9e-4;
norm_topk_prob flipped or yarn without its attention factor ~2 x std. Scaling by the logit std
keeps the bounds meaningful if the test models' weight scales change.
Argmax must also agree at every position, except where the reference's top-two logits are closer
than twice the max bound (a legitimate near-tie; counted and reported).
A near-tie in MoE routing (k-th vs (k+1)-th router probability) could let a correct engine pick a
different expert; the reference reports its smallest top-k margin so such a failure can be told
apart from a bug (the smallest on the registered test prompts is 3e-5, far above float32 noise in
router probabilities, ~1e-8).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen3_ref  # noqa: E402

DEFAULT_RTOL = 1e-4
DEFAULT_RMS_RTOL = 3e-6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("moeserve", help="path of the moeserve binary")
    ap.add_argument("--model", required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--prompt-ids", help="comma-separated token ids")
    g.add_argument("--random", type=int, metavar="N", help="N random ids in [0, vocab)")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random")
    ap.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                    help="bound on max|diff| as a multiple of the reference logits' std")
    ap.add_argument("--rms-rtol", type=float, default=DEFAULT_RMS_RTOL,
                    help="bound on RMS(diff) / RMS(reference)")
    ap.add_argument("--precision", choices=["float64", "float32"], default="float64",
                    help="reference compute precision")
    ap.add_argument("--keep", help="directory to keep engine.bin and reference.bin in")
    args = ap.parse_args()

    cfg = qwen3_ref.Config(args.model)
    if args.random:
        rng = np.random.default_rng(args.seed)
        ids = [int(x) for x in rng.integers(0, cfg.vocab, args.random)]
    else:
        ids = qwen3_ref.parse_ids(args.prompt_ids)
    if not ids:
        sys.exit("compare_logits: empty prompt")
    T, V = len(ids), cfg.vocab
    ids_arg = ",".join(str(t) for t in ids)

    tmp = tempfile.mkdtemp(prefix="moeserve-cmp-")
    try:
        eng_path = os.path.join(tmp, "engine.bin")
        cmd = [args.moeserve, "forward", "--model", args.model, "--prompt-ids", ids_arg,
               "--out", eng_path]
        t0 = time.time()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        t_eng = time.time() - t0
        if r.returncode != 0:
            sys.stdout.write(r.stdout.decode(errors="replace")[-4000:])
            print(f"FAIL: `{args.moeserve} forward` exited with status {r.returncode}")
            return 2
        if not os.path.exists(eng_path):
            print(f"FAIL: engine wrote no output file {eng_path}")
            return 2
        size = os.path.getsize(eng_path)
        if size != T * V * 4:
            print(f"FAIL: engine output is {size} bytes; expected {T} x {V} x 4 = {T * V * 4}")
            return 2
        eng = np.fromfile(eng_path, dtype="<f4").reshape(T, V).astype(np.float64)

        t0 = time.time()
        model = qwen3_ref.Model(args.model, precision=args.precision)
        ref = model.logits(ids).astype(np.float64)
        t_ref = time.time() - t0
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            shutil.copyfile(eng_path, os.path.join(args.keep, "engine.bin"))
            ref.astype("<f4").tofile(os.path.join(args.keep, "reference.bin"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    c = cfg
    print(f"model {args.model}: {c.model_type}, {c.n_layers} layers, hidden {c.hidden}, "
          f"rope {c.rope_type}; prompt {T} tokens; engine {t_eng:.1f}s, reference {t_ref:.1f}s")
    if not np.all(np.isfinite(eng)):
        bad = np.argwhere(~np.isfinite(eng))[0]
        print(f"FAIL: engine logits contain NaN/Inf (first at position {bad[0]}, id {bad[1]})")
        return 1

    diff = np.abs(eng - ref)
    std = float(ref.std())
    max_abs = float(diff.max())
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    rel_rms = float(np.sqrt(np.mean((eng - ref) ** 2)) / np.sqrt(np.mean(ref ** 2)))
    bound = args.rtol * std
    per_pos = diff.max(axis=1)

    ref_top = np.argmax(ref, axis=1)
    eng_top = np.argmax(eng, axis=1)
    srt = np.sort(ref, axis=1)
    gap = srt[:, -1] - srt[:, -2]
    disagree = np.nonzero(ref_top != eng_top)[0]
    near_tie = [int(p) for p in disagree if gap[p] <= 2 * bound]
    real_disagree = [int(p) for p in disagree if gap[p] > 2 * bound]

    print(f"logit std {std:.4g}, max |ref| {float(np.abs(ref).max()):.4g}")
    print(f"max abs error {max_abs:.3e} at position {worst[0]}, id {worst[1]} "
          f"(engine {eng[worst]:.6g}, reference {ref[worst]:.6g})")
    print(f"max abs error / std {max_abs / std:.3e} (bound {args.rtol:.1e}); "
          f"relative RMS error {rel_rms:.3e} (bound {args.rms_rtol:.1e})")
    print(f"argmax agreement {T - len(disagree)}/{T} positions"
          + (f" ({len(near_tie)} disagreements at near-ties)" if near_tie else ""))
    if c.n_experts:
        print(f"reference min top-k router margin {model.min_topk_margin:.3g}")
    if T > 1:
        first_bad = np.nonzero(per_pos > bound)[0]
        if len(first_bad):
            print(f"positions over the bound: {len(first_bad)}/{T}, first {int(first_bad[0])}")

    ok = True
    if max_abs > bound:
        print(f"FAIL: max abs error {max_abs:.3e} exceeds {args.rtol:.1e} x std = {bound:.3e}")
        ok = False
    if rel_rms > args.rms_rtol:
        print(f"FAIL: relative RMS error {rel_rms:.3e} exceeds {args.rms_rtol:.1e}")
        ok = False
    if real_disagree:
        print(f"FAIL: argmax differs at positions {real_disagree[:20]}")
        ok = False
    if ok:
        print("PASS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
