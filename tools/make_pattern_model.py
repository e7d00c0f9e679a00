#!/usr/bin/python3
"""Writes a tiny Qwen3-MoE checkpoint whose weights are CONSTRUCTED so that greedy decoding
follows fixed patterns after the Qwen3 chat template: it thinks (<think>...</think>), answers,
calls tools (<tool_call>...</tool_call>, one or two in parallel), answers after a tool result,
and on request thinks for a long time. Random-weight models never emit these tokens; the
server's tests need one that does.

usage: make_pattern_model.py OUT_DIR [--dtype bf16|f32] [--layers N] [--verify]

OUT_DIR gets the usual files (config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json; same layout and tokenizer as tools/make_model.py, whose
config builder and safetensors writer are reused) plus pattern.json: for every case the chat
request, the rendered prompt (text and ids) and the exact greedy completion (text and ids).

Behaviour (greedy; every completion ends with <|im_end|>, an EOS of generation_config):
  * chat, thinking on (default template):  "<think>\\nThe user wants a reply. I will greet
    them.\\n</think>\\n\\nHello! How can I help you today?<|im_end|>"
  * chat, enable_thinking=false (prompt ends "<think>\\n\\n</think>\\n\\n"): the answer only.
  * tools offered (the prompt contains the <tool_call> token, which the template's tool
    instructions always include): thinking on: "<think>\\nThe user wants the weather. I will
    call the tool.\\n</think>\\n\\n" then the call; thinking off: the call only:
    "<tool_call>\\n{"name": "get_weather", "arguments": {"city": "Paris"}}\\n</tool_call><|im_end|>"
  * two parallel calls: tools offered AND the prompt contains the token " London" (e.g. "What is
    the weather in Paris and London?"): the Paris call, "\\n", then the same call for London.
  * after a tool result (the prompt contains <tool_response>, tools offered): thinking
    "The tool returned the weather. I will answer." (if on), then "It is sunny in Paris."
  * long thinking: the prompt contains the token " ponder" (e.g. "Please ponder this."):
    "<think>\\nLet me count: one, two, ..., ninety nine.\\n</think>\\n\\n" (274 reasoning
    tokens: </think> is completion_ids[276]) and then the chat answer; thinking off: the answer only.
  * thinking budget: after a </think> forced at any point of the reasoning the model continues
    "\\n\\n" + the answer (or the tool call); after a forced "</think>\\n\\n" the answer itself
    (pattern.json "budget_cases": prompt = case prompt + cut reasoning + forced text).
  * anything else (a context no rule covers): <|im_end|>.
  The winning logit beats the runner-up by ~28.6 (bf16 and f32), so sampling at the usual
  temperatures follows the same patterns.
Triggers are token ids, so the spelling matters: " ponder"/" London" with a leading space
(i.e. not the first word of a message); the JSON token "Paris" (no space) marks the first call
as made.

How the weights work (layer 0 does everything; further layers are inert):
  Residual layout (hidden 208): CUR[0:64) the token's code, P1[64:128) / P2[128:192) the codes of
  the previous two tokens, BIAS (constant 1), FILL, MARK[5] (marker bits of the token), FLAG[5].
  Token codes are +-rows of a 64x64 Hadamard matrix scaled to unit norm (128 codewords, mutually
  orthogonal or opposite); only the 85 tokens the patterns use get one, the others have a zero
  code. Embeddings are code + BIAS + MARK bits + FILL, FILL chosen so every row has squared norm
  3, so input_layernorm scales every token alike.
  Attention (head_dim 64, 16 q heads, 4 kv heads, QK-norm):
    * previous-token heads (kv 0 offset 1, kv 1 offset 2): q and k are constants (from BIAS) in
      the 10 fastest RoPE pairs; k's phase in pair i is d0*theta_i, so q.k = A*sum_i cos((t-s-
      d0)*theta_i), which peaks at t-s=d0. With A=32 per pair the peak beats every other
      distance up to 40960 by > 25 logits (checked numerically: the worst competitor is the
      neighbouring position). Values copy CUR into P1 / P2 (o_proj).
    * flag heads (kv 2: 4 flags, kv 3: 1): q constant in one slot of the two slowest RoPE pairs
      (dims 30,31,62,63: they turn < 0.1 rad over 40960 positions, so q.k does not depend on
      position); marker tokens have k in that slot, all others k in dim 20 (q.k = 0). Score 32
      at a marker, 0 elsewhere, so a present marker gets all the attention (value 1) and an
      absent one leaves the uniform average of zero values: FLAG = 1 or 0.
  MoE: the router sends every token to experts 0 and 1 (equal large logits), which hold the same
  neurons, so their weighted sum is one expert's output. Each neuron is a rule "(prev2, prev1,
  cur, some flags) -> next": gate = K*(code terms + flag terms - (n-0.5)*BIAS) is +0.5*K*s when
  all n conditions hold and <= -0.5*K*s otherwise (codes are orthogonal, flags 0/1); up = BIAS;
  down writes next's code (magnitude ~200) into CUR.
  lm_head row of a pattern token = 2*code (others zero); the final norm turns the big next-code
  into logit ~29 for the next token, < 1 for every other token. <|im_end|> also reads BIAS, so
  when no rule fires it wins (~20 vs ~10 for repeating the current token).
  Rules are derived from the cases: each (context, flags) -> next requirement gets the smallest
  generalisation (fewest of: last 1..3 tokens, flags) that no requirement with a different next
  matches; the script fails if two requirements conflict. With --verify it runs the numpy
  reference (tests/reference/qwen3_ref.py) teacher-forced on every case and prints the margins.
"""
import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import make_model  # noqa: E402

TOKENIZER_JSON = os.path.join(make_model.TOKENIZER_DIR, "tokenizer.json")
TOKENIZER_CONFIG = os.path.join(make_model.TOKENIZER_DIR, "tokenizer_config.json")

IM_END = 151645
# flags: name -> marker token ids (a flag is on when any marker is in the context so far)
FLAGS = [
    ("TOOLS", [151657]),   # <tool_call>: the tool instructions of the template contain it
    ("RESP", [151665]),    # <tool_response>: a tool result is in the conversation
    ("LONG", [47783]),     # " ponder"
    ("TWO", [7148]),       # " London"
    ("PARIS", [59604]),    # "Paris" (the JSON value of the first call)
]
NF = len(FLAGS)

# sizes
HID, D, HD, NQ, NKV = 208, 64, 64, 16, 4
CUR, P1, P2 = 0, 64, 128
BIAS, FILL, MARK, FLAG = 192, 193, 194, 194 + NF
EMB_SQ = 3.0                      # squared norm of every embedding row
PREV_PAIRS, PREV_AMP = 10, 32.0   # previous-token heads: RoPE pairs used, score amplitude/pair
FLAG_SCORE = 32.0                 # flag heads: score of a marker
JUNK = 20                         # flag heads: k dim of non-markers (q is zero there)
FLAG_SLOTS = [(2, 31), (2, 63), (2, 30), (2, 62), (3, 31)]  # (kv head, dim) per flag
K_GATE, LM_SCALE, EOS_BIAS = 16.0, 2.0, 4.0
N_EXPERTS, TOP_K = 8, 2

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}

ANSWER = "Hello! How can I help you today?"
CALL_PARIS = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
CALL_LONDON = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "London"}}\n</tool_call>'
TOOL_ANSWER = "It is sunny in Paris."


def think(text):
    return "<think>\n" + text + "\n</think>\n\n"


def counting():
    ones = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    teens = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
             "seventeen", "eighteen", "nineteen"]
    tens = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
    words = ones + teens + [t + s for t in tens for s in [""] + [" " + o for o in ones]]
    return "Let me count: " + ", ".join(words) + "."


def case_list():
    """(name, request, completion text). Requests are what a client sends to the server."""
    hello = [{"role": "user", "content": "Hello!"}]
    paris = [{"role": "user", "content": "What is the weather in Paris?"}]
    two = [{"role": "user", "content": "What is the weather in Paris and London?"}]
    resp = paris + [
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": '{"temperature": 22, "condition": "sunny"}'}]
    ponder = [{"role": "user", "content": "Please ponder this question carefully."}]
    multi = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ANSWER},
             {"role": "user", "content": "Tell me about London."}]
    tools = [WEATHER_TOOL]
    off = {"enable_thinking": False}
    r_think = think("The user wants a reply. I will greet them.")
    r_tool = think("The user wants the weather. I will call the tool.")
    r_two = think("The user wants the weather in two cities. I will call the tool twice.")
    r_resp = think("The tool returned the weather. I will answer.")
    return [
        ("chat_think", dict(messages=hello), r_think + ANSWER),
        ("chat_nothink", dict(messages=hello, chat_template_kwargs=off), ANSWER),
        ("chat_multiturn_think", dict(messages=multi), r_think + ANSWER),
        ("tool_think", dict(messages=paris, tools=tools), r_tool + CALL_PARIS),
        ("tool_nothink", dict(messages=paris, tools=tools, chat_template_kwargs=off), CALL_PARIS),
        ("tool_two_think", dict(messages=two, tools=tools),
         r_two + CALL_PARIS + "\n" + CALL_LONDON),
        ("tool_two_nothink", dict(messages=two, tools=tools, chat_template_kwargs=off),
         CALL_PARIS + "\n" + CALL_LONDON),
        ("tool_result_think", dict(messages=resp, tools=tools), r_resp + TOOL_ANSWER),
        ("tool_result_nothink", dict(messages=resp, tools=tools, chat_template_kwargs=off),
         TOOL_ANSWER),
        ("long_think", dict(messages=ponder), think(counting()) + ANSWER),
        ("long_nothink", dict(messages=ponder, chat_template_kwargs=off), ANSWER),
    ]


# --------------------------------------------------------------------------------------------
# prompts and tokens
# --------------------------------------------------------------------------------------------

def render(request):
    """The chat template rendered as transformers' apply_chat_template(tokenize=False) does."""
    import jinja2
    import jinja2.ext
    import jinja2.sandbox
    with open(TOKENIZER_CONFIG) as f:
        template = json.load(f)["chat_template"]

    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
    env.globals["raise_exception"] = raise_exception
    kw = dict(request.get("chat_template_kwargs") or {})
    return env.from_string(template).render(
        messages=request["messages"], tools=request.get("tools"), add_generation_prompt=True,
        **kw)


NODE_ENCODE = r"""
const {Tokenizer} = require(process.argv[1]);
(async () => {
  const t = Tokenizer.fromFile(process.argv[2]);
  const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  const out = [];
  for (const s of texts) out.push(Array.from((await t.encode(s, null, {addSpecialTokens: false})).getIds()));
  process.stdout.write(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
"""


def encode(texts):
    """Token ids of each text with the real Qwen3 tokenizer (the HF tokenizers node binding)."""
    binding = os.path.join(ROOT, "node_modules", "tokenizers")
    r = subprocess.run(["node", "-e", NODE_ENCODE, binding, TOKENIZER_JSON],
                       input=json.dumps(texts), capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"make_pattern_model: tokenizing with node failed (run `npm ci`?):\n{r.stderr}")
    return json.loads(r.stdout)


# --------------------------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------------------------

def flags_of(ids):
    present = set(ids)
    return tuple(int(any(m in present for m in marks)) for _, marks in FLAGS)


def requirements(cases):
    """{(ctx3, flags): next} over every completion position of every case."""
    req = {}
    for c in cases:
        seq = c["prompt_ids"] + c["completion_ids"]
        n = len(c["prompt_ids"])
        for j in range(n, len(seq)):
            key = (tuple(seq[j - 3:j]), flags_of(seq[:j]))
            if req.setdefault(key, seq[j]) != seq[j]:
                sys.exit(f"make_pattern_model: case {c['name']}: context {key} must continue with "
                         f"both {req[key]} and {seq[j]}; change a pattern text")
    return req


def derive_rules(req):
    """Each requirement -> its smallest generalisation (last k context tokens, a subset of the
    flags) that matches no requirement with a different next token. Returns the set of rules
    (ctx_suffix, ((flag index, value), ...), next)."""
    by_suffix = {}
    for (ctx, fl), nxt in req.items():
        for k in (1, 2, 3):
            by_suffix.setdefault(ctx[-k:], []).append((fl, nxt))
    cands = sorted(((k, s) for k in (1, 2, 3) for r in range(NF + 1)
                    for s in itertools.combinations(range(NF), r)),
                   key=lambda ks: (ks[0] + len(ks[1]), ks[0]))
    rules = set()
    for (ctx, fl), nxt in req.items():
        for k, sub in cands:
            suffix = ctx[-k:]
            if all(n2 == nxt for fl2, n2 in by_suffix[suffix]
                   if all(fl2[i] == fl[i] for i in sub)):
                rules.add((suffix, tuple((i, fl[i]) for i in sub), nxt))
                break
    return sorted(rules)


def rule_matches(rule, ctx, fl):
    suffix, conds, _ = rule
    return tuple(ctx[-len(suffix):]) == suffix and all(fl[i] == v for i, v in conds)


def simulate(rules, prompt, max_new):
    """The symbolic machine the weights implement (all matching rules must agree)."""
    seq = list(prompt)
    for _ in range(max_new):
        nxts = {r[2] for r in rules if rule_matches(r, seq[-3:], flags_of(seq))}
        if len(nxts) > 1:
            raise AssertionError(f"rules disagree after {seq[-3:]}: {nxts}")
        seq.append(nxts.pop() if nxts else IM_END)
        if seq[-1] == IM_END:
            break
    return seq[len(prompt):]


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------

def hadamard(n):
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def build_weights(cfg, rules, vocab_tokens):
    V = cfg["vocab_size"]
    theta = cfg["rope_theta"]
    inv_freq = 1.0 / theta ** (np.arange(0, HD, 2, dtype=np.float64) / HD)
    H = hadamard(D) / math.sqrt(D)
    codebook = np.concatenate([H, -H])
    if len(vocab_tokens) > len(codebook):
        raise SystemExit(f"make_pattern_model: {len(vocab_tokens)} pattern tokens, codebook {len(codebook)}")
    code = {t: codebook[i] for i, t in enumerate(vocab_tokens)}
    W = {}

    emb = np.zeros((V, HID), dtype=np.float32)
    emb[:, BIAS] = 1.0
    marks = np.zeros((V, NF), dtype=np.float32)
    for f, (_, ids) in enumerate(FLAGS):
        marks[ids, f] = 1.0
    emb[:, MARK:MARK + NF] = marks
    for t, c in code.items():
        emb[t, CUR:CUR + D] = c
    sq = (emb * emb).sum(1)
    emb[:, FILL] = np.sqrt(np.maximum(EMB_SQ - sq, 0.0))
    W["model.embed_tokens.weight"] = emb
    s_in = math.sqrt(HID / EMB_SQ)  # input_layernorm scale of every token

    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        q = np.zeros((NQ * HD, HID), np.float32)
        k = np.zeros((NKV * HD, HID), np.float32)
        v = np.zeros((NKV * HD, HID), np.float32)
        o = np.zeros((HID, NQ * HD), np.float32)
        qn = np.ones(HD, np.float32)
        kn = np.ones(HD, np.float32)
        gate = np.zeros((N_EXPERTS, HID), np.float32)
        inter = cfg["moe_intermediate_size"]
        eg = np.zeros((inter, HID), np.float32)
        eu = np.zeros((inter, HID), np.float32)
        ed = np.zeros((HID, inter), np.float32)
        rep = NQ // NKV
        if layer == 0:
            # previous-token heads: q head rep*j reads kv head j (j = 0: offset 1, j = 1: offset 2)
            for j, d0 in ((0, 1), (1, 2)):
                for i in range(PREV_PAIRS):
                    q[rep * j * HD + i, BIAS] = 1.0
                    k[j * HD + i, BIAS] = math.cos(d0 * inv_freq[i])
                    k[j * HD + i + HD // 2, BIAS] = math.sin(d0 * inv_freq[i])
                for i in range(D):
                    v[j * HD + i, CUR + i] = 1.0 / s_in
                    o[(P1 if j == 0 else P2) + i, rep * j * HD + i] = 1.0
            # normalised q = sqrt(HD/PAIRS)*w, |k pair| = sqrt(HD/PAIRS)*w: A = (HD/PAIRS)*w^2/sqrt(HD)
            wp = math.sqrt(PREV_AMP * math.sqrt(HD) * PREV_PAIRS / HD)
            for i in range(PREV_PAIRS):
                qn[i] = qn[i + HD // 2] = kn[i] = kn[i + HD // 2] = wp
            # flag heads
            used = {}
            for f, (kv, dim) in enumerate(FLAG_SLOTS):
                slot = used.setdefault(kv, [])
                qh = kv * rep + len(slot)
                slot.append(f)
                q[qh * HD + dim, BIAS] = 1.0
                k[kv * HD + JUNK, BIAS] = 1.0
                k[kv * HD + dim, MARK + f] = 30.0
                v[kv * HD + len(slot) - 1, MARK + f] = 1.0 / s_in
                o[FLAG + f, qh * HD + len(slot) - 1] = 1.0
                # score = (sqrt(HD) w)^2 / sqrt(HD) = sqrt(HD) w^2
                wf = math.sqrt(FLAG_SCORE / math.sqrt(HD))
                qn[dim] = kn[dim] = wf
            # MoE: experts 0 and 1 (both chosen, equal weights) hold the rules
            gate[0, BIAS] = gate[1, BIAS] = 4.0
            for r, (suffix, conds, nxt) in enumerate(rules):
                n = 0
                for pos, t in zip((P2, P1, CUR)[-len(suffix):], suffix):
                    eg[r, pos:pos + D] = code[t]
                    n += 1
                for fi, val in conds:
                    eg[r, FLAG + fi] = 1.0 if val else -1.0
                    n += val
                eg[r, BIAS] = -(n - 0.5)
                eu[r, BIAS] = 1.0
                ed[CUR:CUR + D, r] = code[nxt]
            eg *= K_GATE
        else:
            gate[2, BIAS] = gate[3, BIAS] = 4.0  # inert layer: no ties in routing, zero outputs
        W[p + "input_layernorm.weight"] = np.ones(HID, np.float32)
        W[p + "self_attn.q_proj.weight"] = q
        W[p + "self_attn.k_proj.weight"] = k
        W[p + "self_attn.v_proj.weight"] = v
        W[p + "self_attn.o_proj.weight"] = o
        W[p + "self_attn.q_norm.weight"] = qn
        W[p + "self_attn.k_norm.weight"] = kn
        W[p + "post_attention_layernorm.weight"] = np.ones(HID, np.float32)
        W[p + "mlp.gate.weight"] = gate
        zero_g, zero_d = np.zeros_like(eg), np.zeros_like(ed)
        for e in range(N_EXPERTS):
            live = layer == 0 and e < 2
            W[p + f"mlp.experts.{e}.gate_proj.weight"] = eg if live else zero_g
            W[p + f"mlp.experts.{e}.up_proj.weight"] = eu if live else zero_g
            W[p + f"mlp.experts.{e}.down_proj.weight"] = ed if live else zero_d
    W["model.norm.weight"] = np.ones(HID, np.float32)
    lm = np.zeros((V, HID), np.float32)
    for t, c in code.items():
        lm[t, CUR:CUR + D] = LM_SCALE * c
    lm[IM_END, BIAS] = EOS_BIAS
    W["lm_head.weight"] = lm
    return W


def write_model(out_dir, cfg, W, dtype):
    specs = make_model.tensor_specs(cfg)
    missing = {s[0] for s in specs} ^ set(W)
    if missing:
        raise AssertionError(f"tensor set mismatch: {sorted(missing)[:5]}")
    for name, shape, _, _ in specs:
        assert W[name].shape == tuple(shape), (name, W[name].shape, shape)

    def write_tensor(f, name, shape, kind, std, seed, dt):  # make_model's writer, our values
        f.write(make_model.to_storage(np.ascontiguousarray(W[name], dtype=np.float32).ravel(), dt))

    saved = make_model.write_tensor
    make_model.write_tensor = write_tensor
    try:
        make_model.write_safetensors(os.path.join(out_dir, "model.safetensors"), specs,
                                     make_model.DTYPES[dtype], 0, lambda n: None)
    finally:
        make_model.write_tensor = saved
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                   "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95,
                   "transformers_version": "4.51.0"}, f, indent=2)
    for src in (TOKENIZER_JSON, TOKENIZER_CONFIG):
        shutil.copyfile(src, os.path.join(out_dir, os.path.basename(src)))


def verify(out_dir, cases):
    """Teacher-forced numpy reference over every case: the argmax at each completion position
    must be the expected token. Prints the smallest margin (top1 - top2 logit) per case."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import qwen3_ref
    model = qwen3_ref.Model(out_dir)
    lm = model.ckpt.get("lm_head.weight", np.float64)
    live = np.nonzero(np.any(lm != 0, axis=1))[0]  # every other row is zero: logit exactly 0
    ok = True
    for c in cases:
        seq = c["prompt_ids"] + c["completion_ids"]
        n = len(c["prompt_ids"])
        h = model.hidden_states(seq[:-1])[n - 1:]
        lg = h @ lm[live].T
        worst = math.inf
        for j, row in enumerate(lg):
            order = np.argsort(-row)
            top, second = row[order[0]], max(row[order[1]], 0.0)
            got = int(live[order[0]]) if top > 0 else -1
            if got != c["completion_ids"][j]:
                print(f"{c['name']}: position {j}: expected {c['completion_ids'][j]}, got {got}")
                ok = False
                break
            worst = min(worst, top - second)
        print(f"{c['name']}: {len(c['completion_ids'])} tokens, min margin {worst:.2f}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--layers", type=int, default=2, help="layers (layer 0 works, others inert)")
    ap.add_argument("--verify", action="store_true", help="check with the numpy reference")
    args = ap.parse_args()

    raw = case_list()
    prompts = [render(req) for _, req, _ in raw]
    ids = encode(prompts + [comp for _, _, comp in raw])
    cases = []
    for i, (name, req, comp) in enumerate(raw):
        cids = ids[len(raw) + i]
        if cids[-1] != IM_END:
            cids = cids + [IM_END]
        cases.append({"name": name, "request": req, "prompt_text": prompts[i],
                      "prompt_ids": ids[i], "completion_text": comp + "<|im_end|>",
                      "completion_ids": cids})
    # thinking budget: the reasoning cut after `cut` tokens and `forced` appended (as a server
    # enforcing a budget does); the model must go on with the rest after </think>
    budget = []
    for name, base, cut, forced, rest in (
            ("long_think_cut1", "long_think", 1, "</think>", "\n\n" + ANSWER),
            ("long_think_cut50", "long_think", 50, "</think>", "\n\n" + ANSWER),
            ("long_think_cut50_nl", "long_think", 50, "\n</think>\n\n", ANSWER),
            ("long_think_cut201", "long_think", 201, "</think>\n\n", ANSWER),
            ("tool_think_cut5", "tool_think", 5, "</think>", "\n\n" + CALL_PARIS)):
        c = next(c for c in cases if c["name"] == base)
        fids, rids = encode([forced, rest])
        budget.append({"name": name, "base": base, "cut": cut,
                       "forced_text": forced, "forced_ids": fids,
                       "prompt_ids": c["prompt_ids"] + c["completion_ids"][:2 + cut] + fids,
                       "completion_text": rest + "<|im_end|>", "completion_ids": rids + [IM_END]})
    req = requirements(cases)
    rules = derive_rules(req)
    tokens = sorted({t for r in rules for t in r[0]} | {r[2] for r in rules} | {IM_END})
    for c in cases:
        got = simulate(rules, c["prompt_ids"], len(c["completion_ids"]) + 5)
        if got != c["completion_ids"]:
            raise AssertionError(f"{c['name']}: rule machine gives {got}")
    for c in budget:
        got = simulate(rules, c["prompt_ids"], len(c["completion_ids"]) + 5)
        if got != c["completion_ids"]:
            raise AssertionError(f"{c['name']}: rule machine gives {got}")

    margs = types.SimpleNamespace(
        preset="tiny", hidden_size=HID, num_experts=N_EXPERTS, num_experts_per_tok=TOP_K,
        moe_intermediate_size=max(64, -(-len(rules) // 64) * 64), intermediate_size=128,
        num_attention_heads=NQ, num_key_value_heads=NKV, head_dim=HD, layers=args.layers,
        dense=False, tie_embeddings=False, yarn=False, decoder_sparse_step=1, mlp_only_layers=[],
        no_norm_topk=False, dtype=args.dtype)
    cfg = make_model.build_config(margs)
    os.makedirs(args.out_dir, exist_ok=True)
    W = build_weights(cfg, rules, tokens)
    write_model(args.out_dir, cfg, W, args.dtype)
    info = {
        "description": "greedy completions of the constructed model (tools/make_pattern_model.py)",
        "eos_token_id": IM_END,
        "flags": {name: ids for name, ids in FLAGS},
        "n_rules": len(rules),
        "cases": cases,
        # cut after <think>\n + `cut` reasoning tokens, `forced` appended: prompt_ids -> completion
        "budget_cases": budget,
    }
    with open(os.path.join(args.out_dir, "pattern.json"), "w") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
    print(f"wrote {args.out_dir}: {len(cases)} cases, {len(rules)} rules, {len(tokens)} pattern "
          f"tokens, {args.dtype}")
    if args.verify and not verify(args.out_dir, cases + budget):
        sys.exit(1)


if __name__ == "__main__":
    main()
