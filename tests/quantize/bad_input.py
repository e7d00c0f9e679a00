#!/usr/bin/python3
"""`moeserve quantize` on bad input: each case must exit with the given status, end stderr with
one line starting "moeserve" that contains the expected text, and leave neither the
output nor a temporary file behind (an existing output is left untouched).

usage: bad_input.py MOESERVE CHECKPOINT WORK_DIR
"""
import os
import resource
import shutil
import signal
import subprocess
import sys


def limit_file_size():
    # writes past 1 MiB fail with EFBIG, as on a full disk; SIGXFSZ ignored so the write
    # returns the error instead of killing the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def main():
    moeserve, ckpt, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    out = os.path.join(work, "out.gguf")
    # a checkpoint without tokenizer.json, and one whose safetensors is cut short
    notok = os.path.join(work, "no-tokenizer")
    trunc = os.path.join(work, "truncated")
    for d in (notok, trunc):
        os.makedirs(d)
        for f in ("config.json", "tokenizer_config.json", "tokenizer.json", "model.safetensors"):
            if d == notok and f == "tokenizer.json":
                continue
            if d == trunc and f == "model.safetensors":
                with open(os.path.join(ckpt, f), "rb") as src, open(os.path.join(d, f), "wb") as dst:
                    dst.write(src.read(os.path.getsize(os.path.join(ckpt, f)) // 2))
                continue
            os.symlink(os.path.abspath(os.path.join(ckpt, f)), os.path.join(d, f))
    existing = os.path.join(work, "existing.gguf")
    # GGUF inputs the reader refuses: not a GGUF, a header cut short
    notgguf, cut = os.path.join(work, "not-a.gguf"), os.path.join(work, "cut.gguf")
    with open(notgguf, "wb") as f:
        f.write(b"this is not a GGUF file\n")
    with open(cut, "wb") as f:
        f.write(b"GGUF" + (3).to_bytes(4, "little") + (5).to_bytes(8, "little") + (2).to_bytes(8, "little"))
    # a valid GGUF whose tokenizer.ggml.tokens key is renamed (same length): no tokenizer to carry over
    notokg = os.path.join(work, "no-tokens.gguf")
    subprocess.run([moeserve, "quantize", ckpt, notokg, "--type", "f16"], capture_output=True, check=True)
    with open(notokg, "rb") as f:
        data = f.read()
    assert data.count(b"tokenizer.ggml.tokens") == 1
    with open(notokg, "wb") as f:
        f.write(data.replace(b"tokenizer.ggml.tokens", b"tokenizer.ggml.tokenX"))
    cases = [
        ("no arguments", [], 2, "required", None),
        ("no --type", [ckpt, out], 2, "--type", None),
        ("unknown --type", [ckpt, out, "--type", "q4_k_xl"], 2, "unknown --type 'q4_k_xl'", None),
        ("--type without a value", [ckpt, out, "--type"], 2, "needs a value", None),
        ("unknown option", [ckpt, out, "--type", "f16", "--fast"], 2, "unknown option '--fast'", None),
        ("--threads 0", [ckpt, out, "--type", "f16", "--threads", "0"], 2, "--threads", None),
        ("three paths", [ckpt, out, out, "--type", "f16"], 2, "unexpected argument", None),
        ("--type hif4 (no ggml type)", [ckpt, out, "--type", "hif4"], 2, "load-time scheme", None),
        ("--type nvfp4 (no ggml type)", [ckpt, out, "--type", "nvfp4"], 2, "load-time scheme", None),
        ("missing checkpoint", [os.path.join(work, "nowhere"), out, "--type", "f16"], 1, "nowhere", None),
        ("no tokenizer.json", [notok, out, "--type", "f16"], 1, "tokenizer.json", None),
        ("truncated safetensors", [trunc, out, "--type", "f16"], 1, "model.safetensors", None),
        ("missing GGUF", [os.path.join(work, "nowhere.gguf"), out, "--type", "q8_0"], 1, "nowhere.gguf", None),
        ("not a GGUF", [notgguf, out, "--type", "q8_0"], 1, "not-a.gguf", None),
        ("GGUF header cut short", [cut, out, "--type", "q8_0"], 1, "cut.gguf", None),
        ("GGUF without tokenizer.ggml.tokens", [notokg, out, "--type", "q8_0"], 1, "no tokenizer.ggml.tokens",
         None),
        ("output directory missing", [ckpt, os.path.join(work, "no", "out.gguf"), "--type", "f16"], 1,
         "cannot create", None),
        ("existing output", [ckpt, existing, "--type", "f16"], 1, "already exists", None),
        ("write fails (file size limit, as a full disk)", [ckpt, out, "--type", "f16"], 1, "File too large",
         limit_file_size),
    ]
    failed = 0
    for name, args, want_rc, want_text, pre in cases:
        with open(existing, "wb") as f:
            f.write(b"keep me")
        p = subprocess.run([moeserve, "quantize"] + args, capture_output=True, text=True, preexec_fn=pre)
        lines = p.stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        progress_only = all(l.startswith("moeserve quantize: [") for l in lines[:-1])
        left = [f for f in os.listdir(work) if ".tmp." in f]
        problems = []
        if p.returncode != want_rc:
            problems.append(f"exit {p.returncode}, want {want_rc}")
        if not last.startswith("moeserve") or want_text not in last:
            problems.append(f"last stderr line {last!r} lacks {want_text!r}")
        if not progress_only:
            problems.append(f"stderr has {len(lines)} lines: {lines[:3]}")
        if os.path.exists(out):
            problems.append("output file left")
            os.remove(out)
        if left:
            problems.append(f"temporary files left: {left}")
            for f in left:
                os.remove(os.path.join(work, f))
        with open(existing, "rb") as f:
            if f.read() != b"keep me":
                problems.append("the existing file was changed")
        print(f"{'FAIL' if problems else 'ok  '} {name}: {last}" + ("".join(f"\n     {x}" for x in problems)))
        failed += bool(problems)
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
