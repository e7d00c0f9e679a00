#!/usr/bin/python3
"""Compares the C engine's logits with the numpy reference (qwen3_ref.py) on one prompt.

Runs `MOESERVE forward --model DIR --prompt-ids IDS --out FILE` (raw little-endian float32
[n_tokens, vocab]) and the reference on the same prompt, and compares the full logits of every
position. Exits 0 on agreement, 1 on a mismatch, 2 when the engine fails or its output is
malformed.

usage: compare_logits.py MOESERVE --model DIR (--prompt-ids 1,2,3 | --random N [--seed S])
                         [--rtol 1e-4] [--rms-rtol 3e-6] [--precision float64] [--keep DIR]
                         [--quantize q8_0 [Q8_0 options, see "Q8_0 mode" below]]

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

Q8_0 mode (--quantize q8_0): the engine runs with `--quantize q8_0` and the reference in its Q8_0
mode (qwen3_ref.py, "Q8_0 quantization": the same quantization of weights and matmul inputs,
written from the format's definition, with float64 dots). The quantized values are integers, so
the engine's float32 error cannot move them -- except where a value x/d lies within that error of
a rounding boundary k + 1/2. There the engine may round the other way than the reference: a
legitimate difference of one quantum in one activation, which is then far above float32 noise
(one quantum is max|x|/127 of its block) and is carried into every later layer and, through
attention, to later positions, where it makes further values cross boundaries. Measured on tiny
(64 random tokens, 8 seeds): the first position over the float bound is always one where the
reference has an activation within 6e-6 quanta of a boundary, often an exact tie (x/d = k + 1/2
exactly: a first-layer input is a bf16 embedding times a bf16 norm weight, and the ratio of two
such products is often exactly k + 1/2); positions after it are off by up to 0.06 x std (relative
RMS up to 7e-3), against 0.08..1.3 x std (relative RMS 1e-2..4e-2) between Q8_0 and unquantized
logits. So a bound loose enough for such flips would not tell quantized math from unquantized
with any margin. Instead the positions are split by the reference's rounding margin (the
smallest distance of any quantized activation at that position or before it from a boundary,
in quanta; qwen3_ref.Model.q8_margin):
  * unambiguous positions (margin >= --q8-margin, 1e-4 quanta: ~7x the float32 error of x/d
    near |q| = 127, one float32 ulp of 127 being 7.6e-6): the engine must round every value
    as the reference does, so the float tests' bounds apply unchanged (max <= 1e-4 x std, RMS
    <= 3e-6). Measured: max 1.0e-6..1.5e-6 x std, relative RMS ~1e-7 (the float32 stand-in
    engine: 2e-6) -- the Q8_0 path is as exact as the float one there.
    At least --min-unambiguous of them are required, so the check cannot silently become empty;
    `--random N --unambiguous` draws the prompt one token at a time, redrawing a token until
    its position is unambiguous, so that every position is.
  * all positions: a loose bound (--q8-rtol 0.25 x std on the max, --q8-rms-rtol 2e-2 relative
    RMS) sized for rounding flips carried through the layers (~4x and ~3x the largest measured),
    which only catches gross errors (garbage, a wrong tensor) where flips happened; it does
    not by itself tell Q8_0 from unquantized logits.
  * separation: on the unambiguous positions the engine must also be at least
    --float-separation (100) times the bound away from the UNQUANTIZED reference (measured
    500..1000x on the max, ~4000x on the RMS), so the check really tells Q8_0 math from float
    math.
What the unambiguous check catches, shown with deliberately broken engines (the stand-in
fake_engine.py with FAKE_ENGINE_Q8_FAULT, some registered in tests/reference.cmake, and the C
engine patched in a scratch copy), on tiny's 64-token unambiguous prompt, error at position 0:
matmul inputs not quantized 0.04 x std; weight scale kept in float32 0.05; q computed from the
f16-rounded scale 0.06; activation scale rounded to f16 0.05; d = amax/128 0.10; blocks of 64
0.09; ties rounded away from zero 0.05 (bf16 weights have many exact ties); x / d instead of
x * (1/d) for the weights 0.04; truncation 0.15; the router quantized 0.03; the AVX-512 tile
swapping two blocks' activation scales 2.9, or dropping the scale of an odd last block 6.1.
Any such difference, however small, moves activations by far more than 1e-4 quanta, so values
then round differently in the next layers and the error grows to that size.
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
# Q8_0 mode (see the docstring)
DEFAULT_Q8_MARGIN = 1e-4
DEFAULT_Q8_RTOL = 0.25
DEFAULT_Q8_RMS_RTOL = 2e-2
DEFAULT_FLOAT_SEPARATION = 100.0


def unambiguous_prompt(model, n, rng, margin, tries=200):
    """n random ids such that every position's Q8_0 rounding margin is >= margin: a prefix's
    margins do not depend on what follows it (causal), so each token is drawn, and redrawn
    while its position is ambiguous."""
    ids = []
    for t in range(n):
        for _ in range(tries):
            cand = ids + [int(rng.integers(0, model.cfg.vocab))]
            if model.q8_margins(cand)[-1] >= margin:
                ids = cand
                break
        else:
            sys.exit(f"compare_logits: no token found for position {t} with a rounding margin "
                     f">= {margin} in {tries} tries")
    return ids


def errors(eng, ref):
    """(max |diff|, relative RMS) of two logit arrays."""
    d = eng - ref
    return float(np.abs(d).max()), float(np.sqrt(np.mean(d ** 2)) / np.sqrt(np.mean(ref ** 2)))


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
    q8 = ap.add_argument_group("Q8_0 mode")
    q8.add_argument("--quantize", choices=["none", "q8_0", "hif4"], default="none",
                    help="run the engine with --quantize q8_0 (hif4) against the reference's Q8_0 "
                    "(HiF4) mode; hif4 takes the Q8_0 verdict, its activations being Q8_0")
    q8.add_argument("--q8-margin", type=float, default=DEFAULT_Q8_MARGIN,
                    help="rounding margin (quanta) from which a position is unambiguous")
    q8.add_argument("--min-unambiguous", type=int, default=1,
                    help="fail unless at least this many positions are unambiguous")
    q8.add_argument("--unambiguous", action="store_true",
                    help="with --random: draw the prompt so that every position is unambiguous")
    q8.add_argument("--q8-rtol", type=float, default=DEFAULT_Q8_RTOL,
                    help="bound on max|diff| / std over all positions")
    q8.add_argument("--q8-rms-rtol", type=float, default=DEFAULT_Q8_RMS_RTOL,
                    help="bound on the relative RMS error over all positions")
    q8.add_argument("--float-separation", type=float, default=DEFAULT_FLOAT_SEPARATION,
                    help="the unquantized reference must be this many bounds away (0: skip)")
    args = ap.parse_args()
    quant = args.quantize != "none"
    if args.unambiguous and not (quant and args.random):
        ap.error("--unambiguous needs --quantize q8_0 and --random")

    cfg = qwen3_ref.Config(args.model)
    model = qwen3_ref.Model(args.model, precision=args.precision,
                            quantize=args.quantize if quant else None)
    if args.random and args.unambiguous:
        t0 = time.time()
        ids = unambiguous_prompt(model, args.random, np.random.default_rng(args.seed),
                                 args.q8_margin)
        print(f"drew an unambiguous {len(ids)}-token prompt in {time.time() - t0:.1f}s")
    elif args.random:
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
               "--out", eng_path] + (["--quantize", args.quantize] if quant else [])
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
        ref = model.logits(ids).astype(np.float64)
        margin = model.q8_margin
        t_ref = time.time() - t0
        if quant and args.float_separation > 0:
            fmodel = qwen3_ref.Model(args.model, precision=args.precision)
            ref_float = fmodel.logits(ids).astype(np.float64)
            del fmodel
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            shutil.copyfile(eng_path, os.path.join(args.keep, "engine.bin"))
            ref.astype("<f4").tofile(os.path.join(args.keep, "reference.bin"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    c = cfg
    print(f"model {args.model}: {c.model_type}, {c.n_layers} layers, hidden {c.hidden}, "
          f"rope {c.rope_type}; prompt {T} tokens; engine {t_eng:.1f}s, reference {t_ref:.1f}s"
          + ("; Q8_0" if quant else ""))
    if not np.all(np.isfinite(eng)):
        bad = np.argwhere(~np.isfinite(eng))[0]
        print(f"FAIL: engine logits contain NaN/Inf (first at position {bad[0]}, id {bad[1]})")
        return 1
    if quant:
        return check_q8(args, model, eng, ref, margin, ref_float if args.float_separation > 0 else None)

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


def check_q8(args, model, eng, ref, margin, ref_float):
    """The Q8_0 verdict (see the docstring): float bounds on the unambiguous positions, loose
    bounds on all, separation from the unquantized reference."""
    T = eng.shape[0]
    std = float(ref.std())
    cum = np.minimum.accumulate(margin)
    clear = cum >= args.q8_margin
    n_clear = int(clear.sum())
    per_pos = np.abs(eng - ref).max(axis=1) / std
    print(f"logit std {std:.4g}, max |ref| {float(np.abs(ref).max()):.4g}")
    first_amb = int(np.argmin(clear)) if n_clear < T else T
    print(f"unambiguous positions (rounding margin >= {args.q8_margin:.0e} quanta): {n_clear}/{T}"
          + (f"; the first ambiguous one is {first_amb} (margin {margin[first_amb]:.2e})"
             if n_clear < T else ""))
    over = np.nonzero(per_pos > args.rtol)[0]
    if len(over):
        p = int(over[0])
        print(f"first position over {args.rtol:.0e} x std: {p} ({per_pos[p]:.2e} x std; its "
              f"rounding margin {margin[p]:.2e}, smallest up to it {cum[p]:.2e} quanta); "
              f"{len(over)}/{T} positions over")
    if model.cfg.n_experts:
        print(f"reference min top-k router margin {model.min_topk_margin:.3g}")
    ok = True
    if n_clear < args.min_unambiguous:
        print(f"FAIL: only {n_clear} unambiguous positions, at least {args.min_unambiguous} "
              f"required (use another prompt or --unambiguous)")
        ok = False
    if n_clear:
        mx, rms = errors(eng[clear], ref[clear])
        print(f"unambiguous positions: max abs error / std {mx / std:.3e} (bound {args.rtol:.1e}); "
              f"relative RMS error {rms:.3e} (bound {args.rms_rtol:.1e})")
        if mx > args.rtol * std:
            print(f"FAIL: max abs error {mx:.3e} on the unambiguous positions exceeds "
                  f"{args.rtol:.1e} x std = {args.rtol * std:.3e}")
            ok = False
        if rms > args.rms_rtol:
            print(f"FAIL: relative RMS error {rms:.3e} on the unambiguous positions exceeds "
                  f"{args.rms_rtol:.1e}")
            ok = False
        if not np.array_equal(np.argmax(eng[clear], axis=1), np.argmax(ref[clear], axis=1)):
            srt = np.sort(ref[clear], axis=1)
            gap = srt[:, -1] - srt[:, -2]
            bad = (np.argmax(eng[clear], axis=1) != np.argmax(ref[clear], axis=1)) & (gap > 2 * args.rtol * std)
            if bad.any():
                print(f"FAIL: argmax differs at unambiguous positions "
                      f"{np.nonzero(clear)[0][bad][:20].tolist()}")
                ok = False
        if ref_float is not None:
            fmx, frms = errors(eng[clear], ref_float[clear])
            print(f"unambiguous positions vs the UNQUANTIZED reference: max abs error / std "
                  f"{fmx / std:.3e} ({fmx / (args.rtol * std):.0f}x the bound), relative RMS "
                  f"{frms:.3e} ({frms / args.rms_rtol:.0f}x the bound)")
            if fmx < args.float_separation * args.rtol * std or frms < args.float_separation * args.rms_rtol:
                print(f"FAIL: the engine is within {args.float_separation:g}x the bound of the "
                      f"unquantized reference: is it quantizing at all?")
                ok = False
    mx, rms = errors(eng, ref)
    print(f"all positions: max abs error / std {mx / std:.3e} (bound {args.q8_rtol:.2g}); "
          f"relative RMS error {rms:.3e} (bound {args.q8_rms_rtol:.1e})")
    if ref_float is not None:
        fmx, frms = errors(eng, ref_float)
        print(f"all positions vs the UNQUANTIZED reference: max abs error / std {fmx / std:.3e}, "
              f"relative RMS {frms:.3e}")
    if mx > args.q8_rtol * std:
        print(f"FAIL: max abs error {mx:.3e} exceeds {args.q8_rtol:.2g} x std = {args.q8_rtol * std:.3e}")
        ok = False
    if rms > args.q8_rms_rtol:
        print(f"FAIL: relative RMS error {rms:.3e} exceeds {args.q8_rms_rtol:.1e}")
        ok = False
    print("PASS" if ok else "FAIL: the Q8_0 engine disagrees with the Q8_0 reference")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
