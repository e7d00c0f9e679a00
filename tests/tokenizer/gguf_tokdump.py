#!/usr/bin/python3
"""Dumps the tokenizer.* keys of a GGUF (read with tools/gguf_write.py's GGUFReader) in a simple
length-prefixed binary that the C tests read (tests/tokenizer/tokdump.h), so that they can build
the tokenizer with tok_load_vocab without a GGUF parser of their own.

Format, little-endian: b"MSTOKDUMP1", then records until tag b"E":
  tag (1 byte), u32 key length, key bytes, then by tag:
  b"S" string: u64 length, bytes        b"I" integer: i64 (bools as 0/1)
  b"A" string array: u64 count, then each: u64 length, bytes
  b"T" int32 array: u64 count, count x i32

usage: gguf_tokdump.py FILE.gguf OUT.tokdump
       gguf_tokdump.py make CHECKPOINT_DIR WORK_DIR NAME [--jinja TEMPLATE]
           makes WORK_DIR/NAME.gguf from the checkpoint with tools/make_gguf.py (--type f16) and
           WORK_DIR/NAME.tokdump from it; with --jinja the checkpoint is first copied (as symlinks)
           to WORK_DIR/NAME-ckpt with TEMPLATE as its chat_template.jinja.
"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "..", "..", "tools")
sys.path.insert(0, TOOLS)
from gguf_write import GGUF, GGUFReader  # noqa: E402

# The keys tok_load_vocab / tmpl_load_gguf take, and the GGUF types llama.cpp reads them as.
EXPECTED = {
    "tokenizer.ggml.model": GGUF.STRING, "tokenizer.ggml.pre": GGUF.STRING,
    "tokenizer.ggml.tokens": GGUF.ARRAY, "tokenizer.ggml.token_type": GGUF.ARRAY,
    "tokenizer.ggml.merges": GGUF.ARRAY, "tokenizer.ggml.bos_token_id": GGUF.UINT32,
    "tokenizer.ggml.eos_token_id": GGUF.UINT32, "tokenizer.ggml.padding_token_id": GGUF.UINT32,
    "tokenizer.ggml.add_bos_token": GGUF.BOOL, "tokenizer.ggml.add_eos_token": GGUF.BOOL,
    "tokenizer.chat_template": GGUF.STRING,
}


def record(tag, key, payload):
    k = key.encode()
    return tag + struct.pack("<I", len(k)) + k + payload


def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def dump(gguf_path, out_path):
    r = GGUFReader(gguf_path)
    parts = [b"MSTOKDUMP1"]
    for key, value in r.kv.items():
        if not key.startswith("tokenizer."):
            continue
        want = EXPECTED.get(key)
        if want is not None and r.kv_types[key] != want:
            sys.exit(f"gguf_tokdump: {gguf_path}: {key} has GGUF type {r.kv_types[key]}, not {want}")
        if isinstance(value, str):
            parts.append(record(b"S", key, enc_str(value)))
        elif isinstance(value, (bool, int)):
            parts.append(record(b"I", key, struct.pack("<q", int(value))))
        elif isinstance(value, list) and all(isinstance(x, str) for x in value):
            parts.append(record(b"A", key, struct.pack("<Q", len(value)) + b"".join(enc_str(x) for x in value)))
        elif isinstance(value, list) and all(isinstance(x, int) for x in value):
            parts.append(record(b"T", key, struct.pack("<Q", len(value)) + struct.pack(f"<{len(value)}i", *value)))
        else:
            sys.exit(f"gguf_tokdump: {gguf_path}: {key}: unexpected value type")
    parts.append(b"E")
    with open(out_path, "wb") as f:
        f.write(b"".join(parts))


def make(ckpt, work, name, jinja=None):
    os.makedirs(work, exist_ok=True)
    if jinja:
        dst = os.path.join(work, name + "-ckpt")
        os.makedirs(dst, exist_ok=True)
        for f in os.listdir(ckpt):
            if f == "chat_template.jinja":
                continue
            link = os.path.join(dst, f)
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(os.path.abspath(os.path.join(ckpt, f)), link)
        with open(jinja, encoding="utf-8") as src, open(os.path.join(dst, "chat_template.jinja"), "w",
                                                        encoding="utf-8") as out:
            out.write(src.read())
        ckpt = dst
    gguf = os.path.join(work, name + ".gguf")
    subprocess.run([sys.executable, os.path.join(TOOLS, "make_gguf.py"), ckpt, gguf, "--type", "f16"],
                   check=True)
    dump(gguf, os.path.join(work, name + ".tokdump"))
    print(f"wrote {os.path.join(work, name)}.tokdump")


def main(argv):
    if len(argv) >= 5 and argv[1] == "make":
        jinja = argv[6] if len(argv) == 7 and argv[5] == "--jinja" else None
        if len(argv) not in (5, 7) or (len(argv) == 7 and not jinja):
            sys.exit(__doc__)
        make(argv[2], argv[3], argv[4], jinja)
    elif len(argv) == 3:
        dump(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
