#!/usr/bin/python3
"""Each kind of broken checkpoint gives a one-line error naming the file and tensor (or field),
and a non-zero exit, never a crash.

usage: test_bad_checkpoints.py MOESERVE_BINARY GOOD_TINY_MODEL_DIR WORK_DIR
Every case copies the good model, breaks one thing, runs `moeserve generate`, and checks the
exit code (1) and that stderr is exactly one line containing the expected words.
"""
import json
import os
import shutil
import struct
import subprocess
import sys

moeserve, good, work = sys.argv[1:4]


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def write_st(path, header, data, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(data)


def edit_config(d, fn, name="config.json"):
    p = os.path.join(d, name)
    cfg = json.load(open(p))
    fn(cfg)
    json.dump(cfg, open(p, "w"))


def edit_header(d, fn):
    p = os.path.join(d, "model.safetensors")
    header, data = read_st(p)
    fn(header)
    write_st(p, header, data)


def drop(name):
    return lambda h: h.pop(name)


def reshape(name, shape):
    def f(h):
        h[name]["shape"] = shape
    return f


def truncate(d):
    p = os.path.join(d, "model.safetensors")
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.truncate(size - 1000)


def garbage_header(d):
    p = os.path.join(d, "model.safetensors")
    _, data = read_st(p)
    write_st(p, None, data, raw_header=b'{"model.embed_tokens.weight": {"dtype": "BF16", ')


def huge_header_len(d):
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as f:
        f.write(struct.pack("<Q", 1 << 40))


def bad_json(name, text):
    def f(d):
        open(os.path.join(d, name), "w").write(text)
    return f


def sharded_missing_shard(d):
    os.remove(os.path.join(d, "model-00002-of-00003.safetensors"))


def remove(name):
    return lambda d: os.remove(os.path.join(d, name))


def bad_dtype(h):
    h["model.norm.weight"]["dtype"] = "I64"
    h["model.norm.weight"]["shape"] = [16]  # 16 * 8 bytes = the 128 bytes of 64 bf16 values


def overlap_offsets(h):
    h["model.norm.weight"]["data_offsets"] = [0, 10]


E = "model.layers.1.mlp.experts.3.down_proj.weight"
CASES = [
    # (name, mutate(dir), expected substrings of the single stderr line)
    ("missing tensor", lambda d: edit_header(d, drop(E)), ["model.safetensors", E, "missing"]),
    ("missing lm_head", lambda d: edit_header(d, drop("lm_head.weight")), ["lm_head.weight", "missing"]),
    ("wrong shape", lambda d: edit_header(d, reshape("model.layers.0.self_attn.q_proj.weight", [32, 128])),
     ["model.safetensors", "model.layers.0.self_attn.q_proj.weight", "shape [32, 128]", "[64, 64]"]),
    ("shape inconsistent with bytes", lambda d: edit_header(d, reshape("model.norm.weight", [65])),
     ["model.safetensors", "model.norm.weight", "bytes"]),
    ("bad offsets", lambda d: edit_header(d, overlap_offsets), ["model.norm.weight"]),
    ("unsupported dtype", lambda d: edit_header(d, bad_dtype), ["model.norm.weight", "I64"]),
    ("truncated file", truncate, ["model.safetensors", "truncated", "lm_head.weight"]),
    ("bad header json", garbage_header, ["model.safetensors", "bad header"]),
    ("header length beyond file", huge_header_len, ["model.safetensors", "bad header"]),
    ("empty safetensors", bad_json("model.safetensors", ""), ["model.safetensors", "empty"]),
    ("no weights at all", remove("model.safetensors"), ["no model.safetensors"]),
    ("config not json", bad_json("config.json", "{not json"), ["config.json", "not valid JSON"]),
    ("config missing", remove("config.json"), ["config.json", "No such file"]),
    ("config missing field", lambda d: edit_config(d, lambda c: c.pop("hidden_size")),
     ["config.json", "hidden_size", "missing"]),
    ("unsupported model_type", lambda d: edit_config(d, lambda c: c.update(model_type="llama")),
     ["config.json", "model_type", "llama"]),
    ("unsupported rope_scaling", lambda d: edit_config(
        d, lambda c: c.update(rope_scaling={"rope_type": "longrope", "factor": 2.0})),
     ["config.json", "rope_scaling", "longrope"]),
    ("unsupported activation", lambda d: edit_config(d, lambda c: c.update(hidden_act="gelu")),
     ["config.json", "hidden_act", "gelu"]),
    ("sliding window", lambda d: edit_config(d, lambda c: c.update(use_sliding_window=True)),
     ["config.json", "use_sliding_window"]),
    ("heads not divisible", lambda d: edit_config(d, lambda c: c.update(num_key_value_heads=3)),
     ["config.json", "num_key_value_heads"]),
    ("top-k beyond experts", lambda d: edit_config(d, lambda c: c.update(num_experts_per_tok=9)),
     ["config.json", "num_experts_per_tok"]),
    ("config wrong hidden size", lambda d: edit_config(d, lambda c: c.update(hidden_size=128)),
     ["model.safetensors", "model.embed_tokens.weight", "shape"]),
    ("bad generation_config", bad_json("generation_config.json", '{"eos_token_id": "x"}'),
     ["generation_config.json", "eos_token_id"]),
]

SHARDED_CASES = [
    ("missing shard", sharded_missing_shard, ["model-00002-of-00003.safetensors", "No such file"]),
    ("index not json", bad_json("model.safetensors.index.json", "[1,"), ["model.safetensors.index.json"]),
    ("index path traversal", bad_json("model.safetensors.index.json",
                                      '{"weight_map": {"model.norm.weight": "../../etc/passwd"}}'),
     ["model.safetensors.index.json", "../../etc/passwd"]),
]


def run_case(name, src, mutate, expected):
    d = os.path.join(work, name.replace(" ", "_"))
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d)
    mutate(d)
    p = subprocess.run([moeserve, "generate", "--model", d, "--prompt-ids", "1,2", "--max-tokens", "1"],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    problems = []
    if p.returncode != 1:
        problems.append(f"exit code {p.returncode}, expected 1")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines, expected 1")
    for word in expected:
        if word not in p.stderr:
            problems.append(f"stderr lacks {word!r}")
    shutil.rmtree(d, ignore_errors=True)
    status = "ok  " if not problems else "FAIL"
    print(f"{status} {name}: {lines[0] if lines else '(no stderr)'}")
    for pr in problems:
        print(f"     {pr}")
    return not problems


def main():
    os.makedirs(work, exist_ok=True)
    sharded = os.path.join(work, "sharded-src")
    if not os.path.isdir(sharded):
        subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "..", "..", "tools",
                                                         "make_model.py"), sharded, "--shards", "3"],
                       check=True, capture_output=True)
    results = [run_case(n, good, m, e) for n, m, e in CASES]
    results += [run_case(n, sharded, m, e) for n, m, e in SHARDED_CASES]
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


main()
