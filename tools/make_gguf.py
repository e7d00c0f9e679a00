#!/usr/bin/python3
"""Converts a project Hugging Face checkpoint (tools/make_model.py's layout: config.json,
model.safetensors or model.safetensors.index.json + shards, tokenizer.json, tokenizer_config.json)
into a GGUF that llama.cpp loads: architecture qwen3moe (or qwen3 for a dense checkpoint), the
hyperparameters under the names llama.cpp's convert_hf_to_gguf.py writes, the tokenizer (gpt2 BPE,
pre-tokenizer qwen2) and the chat template, and the weights in a per-tensor type mix.

Tensors are converted one at a time (experts of a layer stacked into one [n_expert, ...] tensor),
so memory stays around the largest stacked tensor. Qwen3's q/k rows are NOT permuted (llama.cpp's
qwen2/qwen3 converters keep HF's order and use NEOX rope, which is HF's rotate_half).

--type (per-tensor choices, following llama-quantize where the needed format exists here):
  f32 f16 bf16   2-D weights in that type; norms and the router (ffn_gate_inp) F32 always
  q8_0           2-D weights Q8_0
  q4_0 q4_1 q5_0 q5_1 iq4_nl
                 2-D weights in that type; llama-quantize would write `output` as Q6_K, which is
                 not implemented here yet, so output is Q8_0 (stated in general.description)
  mxfp4_moe      ffn_*_exps MXFP4, other 2-D weights Q8_0
  q6_k           2-D weights Q6_K
  q4_k_m         Q4_K, except Q6_K for output and, in the layers where llama-quantize's
                 use_more_bits(i, n_layer) holds (the first and last eighth and every third in
                 between), attn_v and ffn_down(_exps)
  q5_k_m         Q5_K, with q4_k_m's Q6_K exceptions
  q3_k_m         Q3_K; attn_v Q5_K in layers 0 and 1, else Q4_K; ffn_down(_exps) Q5_K in the
                 first sixteenth of the layers, else Q4_K; attn_output Q4_K; output Q6_K
  q2_k           Q2_K; attn_v Q4_K when n_head / n_head_kv >= 4, else Q3_K; ffn_down(_exps)
                 and attn_output Q3_K; output Q6_K
  iq4_xs         IQ4_XS; attn_v Q5_K when n_head / n_head_kv >= 4; ffn_down(_exps) Q5_K in the
                 first eighth of the layers; output Q6_K
                 (these are llama-quantize's rules for a model with more than 8 experts and no
                 importance matrix; token_embd gets the base type)
A row whose length is not a multiple of 256 cannot hold K-quant blocks; such a tensor falls back
as llama-quantize does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K/IQ4_XS -> IQ4_NL).
The Q4_K and Q6_K blocks are made by tests/reference/ggml_formats.py's simple quantizer (valid
blocks, not ggml's exact search); Q2_K, Q3_K, Q5_K and IQ4_XS by ggml's reference quantizer
without its scale search (valid blocks, fast), or with it, bit for bit ggml's, under --exact.

--split N writes NAME-0000i-of-0000N.gguf with split.no (u16, 0-based), split.count (u16) and
split.tensors.count (i32, all files' tensors) in every file, as llama.cpp's gguf-split does; the
model metadata is in the first file only.

usage: make_gguf.py CHECKPOINT_DIR OUT.gguf [--type q8_0] [--split N] [--name NAME]
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
from gguf_write import GGUF, GGUFWriter  # noqa: E402
import ggml_formats as GF  # noqa: E402

# llama_ftype values (llama.h) for general.file_type
FTYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9,
          "q2_k": 10, "q3_k_m": 12, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18, "iq4_nl": 25,
          "iq4_xs": 30, "bf16": 32, "mxfp4_moe": 38}
BASE_TYPE = {"f32": GF.F32, "f16": GF.F16, "bf16": GF.BF16, "q8_0": GF.Q8_0, "q4_0": GF.Q4_0,
             "q4_1": GF.Q4_1, "q5_0": GF.Q5_0, "q5_1": GF.Q5_1, "iq4_nl": GF.IQ4_NL,
             "mxfp4_moe": GF.Q8_0, "q6_k": GF.Q6_K, "q4_k_m": GF.Q4_K, "q5_k_m": GF.Q5_K,
             "q3_k_m": GF.Q3_K, "q2_k": GF.Q2_K, "iq4_xs": GF.IQ4_XS}
FALLBACK = {GF.Q4_K: GF.Q5_0, GF.Q6_K: GF.Q8_0, GF.Q5_K: GF.Q5_1, GF.Q2_K: GF.IQ4_NL,
            GF.Q3_K: GF.IQ4_NL, GF.IQ4_XS: GF.IQ4_NL}
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5


# ---- safetensors (read-only, mapped) --------------------------------------------------------
class Safetensors:
    DT = {"BF16": "<u2", "F16": "<f2", "F32": "<f4"}

    def __init__(self, model_dir):
        index = os.path.join(model_dir, "model.safetensors.index.json")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.where = {}
        for fn in files:
            path = os.path.join(model_dir, fn)
            with open(path, "rb") as f:
                n = struct.unpack("<Q", f.read(8))[0]
                head = json.loads(f.read(n))
            mm = np.memmap(path, dtype=np.uint8, mode="r")
            for name, t in head.items():
                if name != "__metadata__":
                    self.where[name] = (mm, 8 + n, t)

    def get(self, name):
        """float32 array of tensor `name`."""
        if name not in self.where:
            raise KeyError(f"checkpoint has no tensor {name}")
        mm, base, t = self.where[name]
        a, b = t["data_offsets"]
        raw = np.frombuffer(mm[base + a:base + b], dtype=self.DT[t["dtype"]]).reshape(t["shape"])
        if t["dtype"] == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32)


# ---- model description ---------------------------------------------------------------------
def layer_is_sparse(cfg, i):
    if cfg.get("model_type") != "qwen3_moe":
        return False
    return (i not in cfg.get("mlp_only_layers", []) and cfg.get("num_experts", 0) > 0
            and (i + 1) % cfg.get("decoder_sparse_step", 1) == 0)


def tensor_plan(cfg):
    """[(gguf name, [hf names] (several = stacked experts), kind)] in llama.cpp's order."""
    plan = [("token_embd.weight", ["model.embed_tokens.weight"], "embd")]
    for i in range(cfg["num_hidden_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        plan += [(b + "attn_norm.weight", [p + "input_layernorm.weight"], "norm"),
                 (b + "attn_q.weight", [p + "self_attn.q_proj.weight"], "attn_q"),
                 (b + "attn_k.weight", [p + "self_attn.k_proj.weight"], "attn_k"),
                 (b + "attn_v.weight", [p + "self_attn.v_proj.weight"], "attn_v"),
                 (b + "attn_output.weight", [p + "self_attn.o_proj.weight"], "attn_output"),
                 (b + "attn_q_norm.weight", [p + "self_attn.q_norm.weight"], "norm"),
                 (b + "attn_k_norm.weight", [p + "self_attn.k_norm.weight"], "norm"),
                 (b + "ffn_norm.weight", [p + "post_attention_layernorm.weight"], "norm")]
        if layer_is_sparse(cfg, i):
            E = cfg["num_experts"]
            plan.append((b + "ffn_gate_inp.weight", [p + "mlp.gate.weight"], "router"))
            for g, h in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                plan.append((b + f"ffn_{g}_exps.weight",
                             [p + f"mlp.experts.{e}.{h}.weight" for e in range(E)], f"ffn_{g}_exps"))
        else:
            for g, h in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
                plan.append((b + f"ffn_{g}.weight", [p + f"mlp.{h}.weight"], f"ffn_{g}"))
    plan.append(("output_norm.weight", ["model.norm.weight"], "norm"))
    if not cfg.get("tie_word_embeddings"):
        plan.append(("output.weight", ["lm_head.weight"], "output"))
    return plan


def use_more_bits(i, n):
    """llama-quantize's choice of the layers that get more bits in the _M mixes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def k_mix_type(scheme, kind, layer, n_layer, gqa):
    """llama-quantize's per-tensor exceptions of the K and IQ4_XS mixes, or None."""
    down = kind in ("ffn_down", "ffn_down_exps")
    if kind == "output":
        return GF.Q6_K
    if scheme in ("q4_k_m", "q5_k_m"):
        return GF.Q6_K if (kind == "attn_v" or down) and use_more_bits(layer, n_layer) else None
    if scheme == "q3_k_m":
        if kind == "attn_v":
            return GF.Q5_K if layer < 2 else GF.Q4_K
        if down:
            return GF.Q5_K if layer < n_layer // 16 else GF.Q4_K
        return GF.Q4_K if kind == "attn_output" else None
    if scheme == "q2_k":
        if kind == "attn_v":
            return GF.Q4_K if gqa >= 4 else GF.Q3_K
        return GF.Q3_K if down or kind == "attn_output" else None
    if scheme == "iq4_xs":
        if kind == "attn_v" and gqa >= 4:
            return GF.Q5_K
        return GF.Q5_K if down and layer < n_layer // 8 else None
    return None


def choose_type(scheme, kind, shape, layer=None, n_layer=None, gqa=1):
    """The ggml type of one tensor under `scheme` (llama-quantize's rules, see the docstring);
    gqa = n_head / n_head_kv."""
    if len(shape) == 1 or kind in ("norm", "router"):
        return GF.F32
    t = BASE_TYPE[scheme]
    if scheme in ("q4_k_m", "q5_k_m", "q3_k_m", "q2_k", "iq4_xs"):
        t = k_mix_type(scheme, kind, layer, n_layer, gqa) or t
    if scheme == "mxfp4_moe" and kind.endswith("_exps"):
        t = GF.MXFP4
    if scheme in ("q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl") and kind == "output":
        t = GF.Q8_0   # llama-quantize: Q6_K (not implemented here yet)
    if shape[-1] % GF.BLOCKS[t][1] and t in FALLBACK:
        t = FALLBACK[t]
    if shape[-1] % GF.BLOCKS[t][1]:
        # llama-quantize's fallback for rows that do not fill a block
        t = GF.F16 if shape[-1] % 32 else GF.Q8_0
    return t


# ---- tokenizer -------------------------------------------------------------------------------
def tokenizer_kvs(model_dir, vocab_size):
    with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        tcfg = json.load(f)
    by_id = {i: (t, TOKEN_NORMAL) for t, i in tok["model"]["vocab"].items()}
    for a in tok["added_tokens"]:
        by_id[a["id"]] = (a["content"], TOKEN_CONTROL if a.get("special") else TOKEN_USER_DEFINED)
    n = max(vocab_size, max(by_id) + 1)
    tokens, types = [], []
    for i in range(n):
        t, ty = by_id.get(i, (f"[PAD{i}]", TOKEN_UNUSED))
        tokens.append(t)
        types.append(ty)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    ids = {t: i for i, (t, _) in by_id.items()}

    def tid(key):
        v = tcfg.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        return ids.get(v) if v is not None else None

    kv = [("tokenizer.ggml.model", "gpt2", GGUF.STRING), ("tokenizer.ggml.pre", "qwen2", GGUF.STRING),
          ("tokenizer.ggml.tokens", tokens, (GGUF.ARRAY, GGUF.STRING)),
          ("tokenizer.ggml.token_type", types, (GGUF.ARRAY, GGUF.INT32)),
          ("tokenizer.ggml.merges", merges, (GGUF.ARRAY, GGUF.STRING))]
    eos, pad = tid("eos_token"), tid("pad_token")
    bos = tid("bos_token")
    if bos is None:
        bos = ids.get("<|endoftext|>")   # what convert_hf_to_gguf writes for Qwen (unused)
    for key, v in (("eos_token_id", eos), ("padding_token_id", pad), ("bos_token_id", bos)):
        if v is not None:
            kv.append(("tokenizer.ggml." + key, v, GGUF.UINT32))
    kv.append(("tokenizer.ggml.add_bos_token", bool(tcfg.get("add_bos_token", False)), GGUF.BOOL))
    # chat_template.jinja (newer transformers save it there) wins over tokenizer_config.json's, as
    # in moeserve's tmpl_load
    jinja = os.path.join(model_dir, "chat_template.jinja")
    template = tcfg.get("chat_template")
    if os.path.exists(jinja):
        with open(jinja, encoding="utf-8") as f:
            template = f.read()
    if template:
        kv.append(("tokenizer.chat_template", template, GGUF.STRING))
    return kv


def model_kvs(cfg, scheme, name):
    dense = cfg.get("model_type") != "qwen3_moe"
    arch = "qwen3" if dense else "qwen3moe"
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    kv = [("general.architecture", arch, GGUF.STRING), ("general.type", "model", GGUF.STRING),
          ("general.name", name, GGUF.STRING),
          ("general.alignment", 32, GGUF.UINT32),
          (f"{arch}.block_count", cfg["num_hidden_layers"], GGUF.UINT32),
          (f"{arch}.context_length", cfg["max_position_embeddings"], GGUF.UINT32),
          (f"{arch}.embedding_length", cfg["hidden_size"], GGUF.UINT32),
          (f"{arch}.feed_forward_length", cfg["intermediate_size"], GGUF.UINT32),
          (f"{arch}.attention.head_count", cfg["num_attention_heads"], GGUF.UINT32),
          (f"{arch}.attention.head_count_kv", cfg["num_key_value_heads"], GGUF.UINT32),
          (f"{arch}.rope.freq_base", float(cfg["rope_theta"]), GGUF.FLOAT32),
          (f"{arch}.attention.layer_norm_rms_epsilon", float(cfg["rms_norm_eps"]), GGUF.FLOAT32),
          (f"{arch}.attention.key_length", hd, GGUF.UINT32),
          (f"{arch}.attention.value_length", hd, GGUF.UINT32)]
    if not dense:
        kv += [(f"{arch}.expert_used_count", cfg["num_experts_per_tok"], GGUF.UINT32),
               (f"{arch}.expert_count", cfg["num_experts"], GGUF.UINT32),
               (f"{arch}.expert_feed_forward_length", cfg["moe_intermediate_size"], GGUF.UINT32)]
        if not cfg.get("norm_topk_prob", True):
            # llama.cpp's qwen3moe graph always renormalises the top-k weights
            sys.stderr.write("make_gguf: warning: norm_topk_prob false is not expressible in GGUF\n")
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "yarn":
        kv += [(f"{arch}.rope.scaling.type", "yarn", GGUF.STRING),
               (f"{arch}.rope.scaling.factor", float(rs["factor"]), GGUF.FLOAT32),
               (f"{arch}.rope.scaling.original_context_length",
                int(rs["original_max_position_embeddings"]), GGUF.UINT32)]
    kv.append(("general.file_type", FTYPES[scheme], GGUF.UINT32))
    if scheme not in ("f32", "f16", "bf16"):
        kv.append(("general.quantization_version", 2, GGUF.UINT32))
    return arch, kv


def add_kv(w, key, value, vtype):
    if isinstance(vtype, tuple):
        w.add_array(key, value, vtype[1])
    else:
        w.add_scalar(key, value, vtype)


def convert_tensor(st, hf_names, ggml_type, exact=False):
    """Raw bytes of the (stacked) tensor in ggml_type, quantized one expert at a time."""
    parts = []
    for n in hf_names:
        x = st.get(n)
        rows = x.reshape(-1, x.shape[-1])
        parts.append(GF.quantize(rows, ggml_type, search=exact).tobytes())
    return b"".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", default="q8_0", choices=sorted(BASE_TYPE))
    ap.add_argument("--split", type=int, default=1, help="write N split files")
    ap.add_argument("--name", help="general.name (default: the checkpoint directory's name)")
    ap.add_argument("--exact", action="store_true",
                    help="Q2_K/Q3_K/Q5_K/IQ4_XS with ggml's scale searches (its bytes; slow)")
    args = ap.parse_args(argv)
    try:
        with open(os.path.join(args.model_dir, "config.json")) as f:
            cfg = json.load(f)
        st = Safetensors(args.model_dir)
    except (OSError, ValueError) as e:
        sys.exit(f"make_gguf: {args.model_dir}: {e}")
    name = args.name or os.path.basename(os.path.normpath(args.model_dir))
    arch, kvs = model_kvs(cfg, args.type, name)
    kvs += tokenizer_kvs(args.model_dir, cfg["vocab_size"])
    if args.type in ("q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl"):
        kvs.append(("general.description", "made by moeserve tools/make_gguf.py; output.weight is "
                    "Q8_0 where llama-quantize would use Q6_K", GGUF.STRING))

    plan = []
    for gname, hf, kind in tensor_plan(cfg):
        shape = list(st.where[hf[0]][2]["shape"]) if hf[0] in st.where else None
        if shape is None:
            sys.exit(f"make_gguf: checkpoint has no tensor {hf[0]}")
        if len(hf) > 1:
            shape = [len(hf)] + shape
        layer = int(gname.split(".")[1]) if gname.startswith("blk.") else None
        plan.append((gname, hf, tuple(shape),
                     choose_type(args.type, kind, shape, layer, cfg["num_hidden_layers"],
                                 cfg["num_attention_heads"] // cfg["num_key_value_heads"])))

    n = max(1, args.split)
    if n > len(plan):
        sys.exit(f"make_gguf: --split {n} is more than the {len(plan)} tensors")
    groups = [list(g) for g in np.array_split(np.arange(len(plan)), n)]
    if n == 1:
        paths = [args.out]
    else:
        stem = args.out[:-5] if args.out.endswith(".gguf") else args.out
        paths = [f"{stem}-{k + 1:05d}-of-{n:05d}.gguf" for k in range(n)]
    for k, (path, idx) in enumerate(zip(paths, groups)):
        w = GGUFWriter(path)
        if k == 0:
            for key, v, t in kvs:
                add_kv(w, key, v, t)
        else:
            w.add_uint32("general.alignment", 32)
        if n > 1:
            w.add_uint16("split.no", k)
            w.add_uint16("split.count", n)
            w.add_int32("split.tensors.count", len(plan))
        for i in idx:
            gname, _, shape, t = plan[i]
            w.add_tensor_info(gname, shape, t)
        w.write_header()
        for i in idx:
            gname, hf, shape, t = plan[i]
            w.write_tensor_data(gname, convert_tensor(st, hf, t, args.exact))
        w.close()
    counts = {}
    for _, _, _, t in plan:
        counts[GF.BLOCKS[t][0]] = counts.get(GF.BLOCKS[t][0], 0) + 1
    size = sum(os.path.getsize(p) for p in paths)
    print(f"wrote {', '.join(paths)}: {arch} {args.type}, {len(plan)} tensors {counts}, "
          f"{size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
