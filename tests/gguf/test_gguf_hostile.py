#!/usr/bin/python3
"""Malformed GGUF files against `moeserve forward --model FILE.gguf`: each must exit 1 with one
line on stderr that names the file and the problem, and never crash (in the Sanitize build a
sanitizer report is a crash: it changes the exit code and adds lines).

The files are built here byte by byte (the writer below is independent of the C reader and of
tools/gguf_write.py, so it can write what no writer should). A small valid qwen3moe model comes
first and must load and run (exit 0), so a reader refusing everything cannot pass.

usage: test_gguf_hostile.py MOESERVE WORKDIR
"""
import os
import struct
import subprocess
import sys

import numpy as np

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
          U64: "<Q", I64: "<q", F64: "<d"}
# ggml type id -> (block values, block bytes)
GGML = {0: (1, 4), 1: (1, 2), 8: (32, 34), 13: (256, 176), 30: (1, 2)}
GGML_F32, GGML_Q5_K, GGML_IQ2_XXS = 0, 13, 16

H, V, NH, NKV, HD, E, K, MI = 256, 32, 2, 1, 16, 2, 1, 32


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    if t == STR:
        return s(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(value(et, x) for x in items)
    return struct.pack(SCALAR[t], v)


class Model:
    """A GGUF as lists that a case may edit before `build()` lays it out."""

    def __init__(self):
        self.version = 3
        self.kvs = [("general.architecture", STR, "qwen3moe"), ("general.alignment", U32, 32)]
        a = "qwen3moe."
        for k, v in (("block_count", 1), ("context_length", 256), ("embedding_length", H),
                     ("feed_forward_length", 64), ("attention.head_count", NH),
                     ("attention.head_count_kv", NKV), ("attention.key_length", HD),
                     ("attention.value_length", HD), ("expert_count", E), ("expert_used_count", K),
                     ("expert_feed_forward_length", MI)):
            self.kvs.append((a + k, U32, v))
        self.kvs += [(a + "rope.freq_base", F32, 1e6), (a + "attention.layer_norm_rms_epsilon", F32, 1e-6),
                     ("tokenizer.ggml.tokens", ARR, (STR, [f"t{i}" for i in range(V)])),
                     ("tokenizer.ggml.eos_token_id", U32, 1)]
        self.tensors = []  # [name, ne (ggml order), type, offset or None]
        for name, ne in (("token_embd", [H, V]), ("blk.0.attn_norm", [H]), ("blk.0.attn_q", [H, NH * HD]),
                         ("blk.0.attn_k", [H, NKV * HD]), ("blk.0.attn_v", [H, NKV * HD]),
                         ("blk.0.attn_output", [NH * HD, H]), ("blk.0.attn_q_norm", [HD]),
                         ("blk.0.attn_k_norm", [HD]), ("blk.0.ffn_norm", [H]), ("blk.0.ffn_gate_inp", [H, E]),
                         ("blk.0.ffn_gate_exps", [H, MI, E]), ("blk.0.ffn_up_exps", [H, MI, E]),
                         ("blk.0.ffn_down_exps", [MI, H, E]), ("output_norm", [H])):
            self.tensors.append([name + ".weight", ne, GGML_F32, None])
        self.align = 32
        self.n_tensors = self.n_kv = None  # override the counts
        self.raw_kvs = []  # extra (bytes) appended after the kvs, counted
        self.marks = {}

    def tensor(self, name):
        return next(t for t in self.tensors if t[0] == name)

    def build(self):
        out = bytearray(b"GGUF" + struct.pack("<I", self.version))
        nkv = len(self.kvs) + len(self.raw_kvs)
        out += struct.pack("<QQ", len(self.tensors) if self.n_tensors is None else self.n_tensors,
                           nkv if self.n_kv is None else self.n_kv)
        self.marks["kv"] = len(out)
        for i, (k, t, v) in enumerate(self.kvs):
            self.marks[f"kv{i}"] = len(out)
            out += s(k) + struct.pack("<I", t)
            self.marks[f"kv{i}.value"] = len(out)
            out += value(t, v)
        for raw in self.raw_kvs:
            out += raw
        self.marks["tensors"] = len(out)
        off, infos = 0, []
        for name, ne, t, o in self.tensors:
            bv, bb = GGML.get(t, (1, 4))
            n = bb * (ne[0] // bv)
            for d in ne[1:]:
                n *= d
            if n >= 2**31:  # a hostile size: laid out as if empty, its data is never written
                n = 0
            if o is None:
                o = off
                off = (off + n + self.align - 1) // self.align * self.align
            infos.append((o, n))
            self.marks[f"ti.{name}"] = len(out)
            out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
            out += struct.pack("<IQ", t, o)
        self.marks["pad"] = len(out)
        out += b"\0" * ((self.align - len(out) % self.align) % self.align)
        data_start = len(out)
        self.marks["data"] = data_start
        size = max((o + n for o, n in infos if o + n < 2**31), default=0)
        data = bytearray(size)
        rng = np.random.default_rng(0)
        for (name, ne, t, _), (o, n) in zip(self.tensors, infos):
            if t == GGML_F32 and o + n <= size:
                x = rng.standard_normal(n // 4).astype("<f4") * (1.0 if "norm" in name else 0.05)
                data[o:o + n] = x.tobytes()
        return bytes(out + data)


def run(ms, path):
    p = subprocess.run([ms, "forward", "--model", path, "--prompt-ids", "1,2", "--out", os.devnull,
                        "--threads", "1"], capture_output=True, text=True)
    return p.returncode, p.stderr


def cases():
    """(name, bytes or a function of the path, what the message must contain)."""
    good = Model().build()
    m = Model()
    m.build()
    mk = m.marks
    out = []

    def edit(f):
        x = Model()
        f(x)
        return x.build()

    def patch(at, raw, base=good):
        return base[:at] + raw + base[at + len(raw):]

    out.append(("bad magic", b"GGML" + good[4:], "bad magic"))
    out.append(("version 1", patch(4, struct.pack("<I", 1)), "version 1"))
    out.append(("version 4", patch(4, struct.pack("<I", 4)), "version 4"))
    out.append(("big-endian", patch(4, struct.pack(">I", 3)), "big-endian"))
    out.append(("empty file", b"", "empty"))
    # truncated in every section: inside the magic, version, counts, each key, value, tensor info,
    # the padding and the data
    cuts = {"magic": 2, "version": 6, "tensor count": 12, "kv count": 20}
    for i in range(len(m.kvs)):
        cuts[f"key {i}"] = mk[f"kv{i}"] + 3
        cuts[f"value {i}"] = mk[f"kv{i}.value"] + 2
    for t in m.tensors:
        cuts[f"tensor info {t[0]}"] = mk[f"ti.{t[0]}"] + 10
    cuts["after the tensor infos"] = mk["pad"]
    cuts["data start"] = mk["data"] + 1
    cuts["last tensor's data"] = len(good) - 4
    for what, at in cuts.items():
        out.append((f"truncated: {what}", good[:at], ("truncated", "past the end", "more than the file can hold")))
    # counts near 2^64
    for n in (2**64 - 1, 2**63, 2**32 + 1):
        out.append((f"tensor count {n}", patch(8, struct.pack("<Q", n)), "tensors, more than the file can hold"))
        out.append((f"kv count {n}", patch(16, struct.pack("<Q", n)), "metadata entries, more than the file"))
    # string and array lengths past EOF
    out.append(("key length past EOF", patch(mk["kv0"], struct.pack("<Q", 2**63)), "past the end of the file"))
    out.append(("string value length past EOF", patch(mk["kv0.value"], struct.pack("<Q", 2**64 - 1)),
                "past the end of the file"))
    tok = next(i for i, kv in enumerate(m.kvs) if kv[0] == "tokenizer.ggml.tokens")
    out.append(("string array count past EOF", patch(mk[f"kv{tok}.value"] + 4, struct.pack("<Q", 2**61)),
                "array of 2305843009213693952 strings runs past the end"))
    out.append(("string in array past EOF", patch(mk[f"kv{tok}.value"] + 12 + 8 * 1 + 2, struct.pack("<Q", 2**40)),
                "tokenizer.ggml.tokens: string"))
    out.append(("u32 array past EOF", edit(lambda x: x.raw_kvs.append(s("a.b") + struct.pack("<IIQ", ARR, U32, 2**62))),
                "array of 4611686018427387904 u32 runs past the end"))
    out.append(("nested array", edit(lambda x: x.raw_kvs.append(s("a.b") + struct.pack("<IIQ", ARR, ARR, 1))),
                "nested arrays"))
    out.append(("unknown value type", edit(lambda x: x.raw_kvs.append(s("a.b") + struct.pack("<I", 13))),
                "unknown value type 13"))
    out.append(("bool value 2", edit(lambda x: x.kvs.append(("a.flag", BOOL, 2))), "bool value 2"))
    out.append(("NUL in a key", edit(lambda x: x.kvs.append(("a\0b", U32, 1))), "NUL byte"))
    out.append(("duplicate key", edit(lambda x: x.kvs.append(("qwen3moe.block_count", U32, 1))),
                "key qwen3moe.block_count appears twice"))
    # dimensions
    out.append(("dimension product overflows", edit(lambda x: x.tensor("blk.0.attn_norm.weight").__setitem__(1, [2**62, 2**62])),
                "overflow"))
    out.append(("dimension 2^63", edit(lambda x: x.tensor("blk.0.attn_norm.weight").__setitem__(1, [2**63])),
                "dimension 0 = 9223372036854775808"))
    out.append(("dimension 0", edit(lambda x: x.tensor("blk.0.attn_norm.weight").__setitem__(1, [0])), "dimension 0 = 0"))
    out.append(("5 dimensions", edit(lambda x: x.tensor("blk.0.attn_norm.weight").__setitem__(1, [1, 1, 1, 1, H])),
                "5 dimensions"))
    # offsets
    out.append(("offset past EOF", edit(lambda x: x.tensor("output_norm.weight").__setitem__(3, 2**40)), "past the end"))
    out.append(("offset near 2^64", edit(lambda x: x.tensor("output_norm.weight").__setitem__(3, 2**64 - 32)),
                "past the end"))
    out.append(("overlapping tensors", edit(lambda x: x.tensor("output_norm.weight").__setitem__(3, 0)), "overlap"))
    out.append(("misaligned offset", edit(lambda x: x.tensor("output_norm.weight").__setitem__(3, 4)),
                "not a multiple of the alignment 32"))
    out.append(("alignment 3", edit(lambda x: x.kvs.__setitem__(1, ("general.alignment", U32, 3))),
                "general.alignment 3"))
    out.append(("alignment 0", edit(lambda x: x.kvs.__setitem__(1, ("general.alignment", U32, 0))),
                "general.alignment 0"))
    out.append(("alignment as a string", edit(lambda x: x.kvs.__setitem__(1, ("general.alignment", STR, "32"))),
                "general.alignment has type string"))

    def unaligned_f32(x):
        x.kvs[1] = ("general.alignment", U32, 1)
        x.align = 1
        t = x.tensor("blk.0.attn_norm.weight")
        x.tensors.remove(t)
        end = sum(4 * int(np.prod(u[1])) for u in x.tensors)
        t[3] = end + 2  # after every other tensor, 2 bytes past an element boundary
        x.tensors.append(t)
    out.append(("F32 data not on a 4-byte boundary", edit(unaligned_f32), "not aligned to 4 bytes"))
    # types
    out.append(("unknown ggml type", edit(lambda x: x.tensor("blk.0.attn_q.weight").__setitem__(2, 99)),
                "unknown ggml type 99"))
    out.append(("type moeserve cannot run", edit(lambda x: x.tensor("blk.0.ffn_gate_exps.weight").__setitem__(2, GGML_IQ2_XXS)),
                "tensor blk.0.ffn_gate_exps.weight has type iq2_xxs, which moeserve cannot run"))
    # a type moeserve runs, but gate and up then need different activations (one shared input)
    out.append(("gate and up read different activations",
                edit(lambda x: x.tensor("blk.0.ffn_gate_exps.weight").__setitem__(2, GGML_Q5_K)),
                "layer 0 stores ffn gate and up as Q5_K and F32"))
    out.append(("row not a whole block", edit(lambda x: x.tensor("blk.0.attn_q_norm.weight").__setitem__(2, 8)),
                "row length 16 is not a multiple of q8_0's block of 32"))
    # names
    out.append(("duplicate tensor", edit(lambda x: x.tensors.append(["output_norm.weight", [H], GGML_F32, None])),
                "tensor output_norm.weight appears twice"))
    out.append(("newline in a tensor name", edit(lambda x: x.tensor("output_norm.weight").__setitem__(0, "output_norm\nx")),
                "control character 0x0a"))
    out.append(("newline in the architecture", edit(lambda x: x.kvs.__setitem__(0, ("general.architecture", STR, "ll\nama"))),
                "general.architecture \"ll?ama\" is not supported"))
    out.append(("NUL in a tensor name", edit(lambda x: x.tensor("output_norm.weight").__setitem__(0, "output_norm\0x")),
                "NUL byte"))
    # metadata and shapes that disagree
    out.append(("architecture llama", edit(lambda x: x.kvs.__setitem__(0, ("general.architecture", STR, "llama"))),
                "general.architecture \"llama\" is not supported"))
    out.append(("no block_count", edit(lambda x: x.kvs.pop(2)), "required key qwen3moe.block_count is missing"))
    out.append(("block_count as a string", edit(lambda x: x.kvs.__setitem__(2, ("qwen3moe.block_count", STR, "1"))),
                "qwen3moe.block_count has type string"))

    def setkv(key, t, v):
        def f(x):
            i = next(i for i, kv in enumerate(x.kvs) if kv[0] == key)
            x.kvs[i] = (key, t, v)
        return f
    out.append(("heads not a multiple of kv heads", edit(setkv("qwen3moe.attention.head_count_kv", U32, 3)),
                "qwen3moe.attention.head_count 2 is not a multiple of qwen3moe.attention.head_count_kv 3"))
    out.append(("top-k above the experts", edit(setkv("qwen3moe.expert_used_count", U32, 3)),
                "qwen3moe.expert_used_count 3 must be in [1, qwen3moe.expert_count 2]"))
    out.append(("block_count 2^40", edit(setkv("qwen3moe.block_count", U64, 2**40)), "qwen3moe.block_count"))
    out.append(("eos outside the vocabulary", edit(setkv("tokenizer.ggml.eos_token_id", U32, V)),
                "tokenizer.ggml.eos_token_id = 32 is outside the vocabulary"))
    out.append(("yarn without factor", edit(lambda x: x.kvs.append(("qwen3moe.rope.scaling.type", STR, "yarn"))),
                "required key qwen3moe.rope.scaling.factor is missing"))
    out.append(("embedding shape vs metadata", edit(lambda x: x.tensor("token_embd.weight").__setitem__(1, [H, V + 1])),
                "tensor token_embd.weight has shape [33, 256], the metadata implies [32, 256]"))
    out.append(("experts vs expert_count", edit(lambda x: x.tensor("blk.0.ffn_up_exps.weight").__setitem__(1, [H, MI, E + 1])),
                "tensor blk.0.ffn_up_exps.weight has shape [3, 32, 256], the metadata implies [2, 32, 256]"))
    out.append(("missing tensor", edit(lambda x: x.tensors.remove(x.tensor("blk.0.attn_k_norm.weight"))),
                "tensor blk.0.attn_k_norm.weight is missing"))
    out.append(("split.count in an unsplit name", edit(lambda x: x.kvs.append(("split.count", U16, 2))),
                "split.count is 2"))
    return good, out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ms, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    good, table = cases()
    path = os.path.join(work, "good.gguf")
    with open(path, "wb") as f:
        f.write(good)
    rc, err = run(ms, path)
    failures = 0
    if rc != 0:
        print(f"FAIL: the valid file does not load: exit {rc}: {err.strip()}")
        failures += 1
    for i, (name, data, want) in enumerate(table):
        path = os.path.join(work, f"case{i:02d}.gguf")
        with open(path, "wb") as f:
            f.write(data)
        rc, err = run(ms, path)
        lines = err.strip().split("\n")
        wants = want if isinstance(want, tuple) else (want,)
        ok = rc == 1 and len(lines) == 1 and path in lines[0] and any(w in lines[0] for w in wants)
        print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {rc}: {err.strip()[:300]}")
        if not ok:
            print(f"     expected exit 1 and one line naming {path} and containing: {want}")
            failures += 1
    # split sets: a missing part and parts that disagree with their names
    split_ok, split_cases = split_table(work)
    rc, err = run(ms, split_ok)
    if rc != 0:
        print(f"FAIL: the valid split set does not load: exit {rc}: {err.strip()}")
        failures += 1
    for name, path, want in split_cases:
        rc, err = run(ms, path)
        lines = err.strip().split("\n")
        ok = rc == 1 and len(lines) == 1 and want in lines[0]
        print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {rc}: {err.strip()[:300]}")
        if not ok:
            print(f"     expected exit 1 and one line containing: {want}")
            failures += 1
    total = len(table) + len(split_cases) + 2
    print(f"{total - failures} of {total} cases as expected")
    return 1 if failures else 0


def split_table(work):
    """Two-part sets made from the valid model: the tensors split in halves."""
    def write_set(stem, mutate=None, parts=2):
        m = Model()
        half = len(m.tensors) // 2
        paths = []
        for k in range(parts):
            x = Model()
            if k:
                x.kvs = [("general.alignment", U32, 32)]
            x.tensors = m.tensors[:half] if k == 0 else m.tensors[half:]
            x.kvs += [("split.no", U16, k), ("split.count", U16, parts), ("split.tensors.count", I32, len(m.tensors))]
            if mutate:
                mutate(k, x)
            p = os.path.join(work, f"{stem}-{k + 1:05d}-of-{parts:05d}.gguf")
            with open(p, "wb") as f:
                f.write(x.build())
            paths.append(p)
        return paths

    out = []
    ok = write_set("split-ok")
    p = write_set("split-missing")
    os.remove(p[1])
    out.append(("split: second part missing", p[0], "split-missing-00002-of-00002.gguf: No such file"))

    def wrong_no(k, x):
        if k == 1:
            x.kvs[-3] = ("split.no", U16, 0)
    p = write_set("split-wrongno", wrong_no)
    out.append(("split: split.no disagrees with the name", p[0], "split.no 0 / split.count 2, expected part 1 of 2"))

    def wrong_total(k, x):
        if k == 0:
            x.kvs[-1] = ("split.tensors.count", I32, 99)
    p = write_set("split-total", wrong_total)
    out.append(("split: split.tensors.count", p[0], "split.tensors.count is 99"))

    def dup(k, x):
        if k == 1:
            x.tensors = x.tensors + [["token_embd.weight", [H, V], GGML_F32, None]]
    p = write_set("split-dup", dup)
    out.append(("split: a tensor in two parts", p[0], "tensor token_embd.weight appears twice"))
    out.append(("split: second part given", ok[1], "give the first part"))
    return ok[0], out


if __name__ == "__main__":
    sys.exit(main())
