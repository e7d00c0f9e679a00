#!/usr/bin/python3
"""Writes a GGUF holding only what tools/make_gguf.py writes for a checkpoint's tokenizer
(tokenizer.ggml.*, tokenizer.chat_template) and no tensors: enough for `moeserve template` and the
tokenizer glue, in a fraction of a second.
usage: write_tokenizer_gguf.py CHECKPOINT_DIR OUT.gguf"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import make_gguf  # noqa: E402
from gguf_write import GGUFWriter  # noqa: E402

ckpt, out = sys.argv[1:3]
w = GGUFWriter(out)
w.add_string("general.architecture", "qwen3moe")
for key, v, t in make_gguf.tokenizer_kvs(ckpt, 0):
    make_gguf.add_kv(w, key, v, t)
w.write_header()
w.close()
