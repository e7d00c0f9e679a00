#!/usr/bin/python3
"""Reference chat-template renderer for the C interpreter's tests.

Sets jinja2 up the way Hugging Face transformers does in chat_template_utils.py
(_compile_jinja_template / render_jinja_template):
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[AssistantTracker, jinja2.ext.loopcontrols])
  filters['tojson'] = json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
                                 sort_keys=sort_keys)
  globals['raise_exception'] raises TemplateError(message)
  globals['strftime_now'] = datetime.now().strftime(format)
and renders with
  template.render(messages=..., tools=..., documents=None, add_generation_prompt=...,
                  **special_tokens_map, **chat_template_kwargs)

Usage (run with Debian's /usr/bin/python3, which has jinja2):
  reference.py cases MODEL_DIR CASES_JSON OUT_JSON   render every conversation of CASES_JSON
  reference.py units UNITS_JSON OUT_JSON             render every small template of UNITS_JSON
                                                     (messages=[], tools/documents None,
                                                     add_generation_prompt False, then its vars)
OUT_JSON is a list of {"name": ..., "output": text} or {"name": ..., "error": message}.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    """transformers' {% generation %} block, without the mask bookkeeping."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def compile_template(source):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


SPECIAL_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                "mask_token"]


def load_model_template(model_dir):
    """chat_template.jinja wins over tokenizer_config.json's chat_template, as in transformers."""
    cfg = {}
    cfg_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
    jinja_path = os.path.join(model_dir, "chat_template.jinja")
    if os.path.exists(jinja_path):
        with open(jinja_path, encoding="utf-8") as f:
            source = f.read()
    else:
        source = cfg["chat_template"]
        if isinstance(source, list):
            source = {t["name"]: t["template"] for t in source}["default"]
    special = {}
    for k in SPECIAL_KEYS:
        v = cfg.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            special[k] = v
    if isinstance(cfg.get("additional_special_tokens"), list):
        special["additional_special_tokens"] = [
            t["content"] if isinstance(t, dict) else t for t in cfg["additional_special_tokens"]]
    return source, special


def render(template, variables):
    try:
        return {"output": template.render(**variables)}
    except Exception as e:  # the C side must fail too; messages are informational
        return {"error": f"{type(e).__name__}: {e}"}


def run_cases(model_dir, cases_path, out_path):
    source, special = load_model_template(model_dir)
    template = compile_template(source)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    results = []
    for case in cases:
        tools = case.get("tools")
        variables = {
            **special,
            "messages": case["messages"],
            "tools": tools if tools is not None else None,
            "documents": None,
            "add_generation_prompt": case.get("add_generation_prompt", False),
        }
        variables.update(case.get("chat_template_kwargs") or {})
        results.append({"name": case["name"], **render(template, variables)})
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)


def run_units(units_path, out_path):
    with open(units_path, encoding="utf-8") as f:
        units = json.load(f)["units"]
    results = []
    for u in units:
        try:
            template = compile_template(u["template"])
        except Exception as e:
            results.append({"name": u["name"], "error": f"{type(e).__name__}: {e}"})
            continue
        variables = {"messages": [], "tools": None, "documents": None,
                     "add_generation_prompt": False, **u.get("vars", {})}
        results.append({"name": u["name"], **render(template, variables)})
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False, indent=1)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "cases":
        run_cases(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4 and sys.argv[1] == "units":
        run_units(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
