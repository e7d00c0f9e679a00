#!/usr/bin/python3
"""End-to-end check of `moeserve template`: every conversation of cases.json, sent as one JSON
request on stdin, must print exactly what jinja2 (set up as transformers does) renders, with no
newline added; bad requests must exit 1 with one line on stderr.
With FILE.gguf, moeserve renders with that GGUF's tokenizer.chat_template (made from MODEL_DIR)
while the reference still renders MODEL_DIR's template.
usage: cli_check.py MOESERVE MODEL_DIR CASES_JSON [FILE.gguf]"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402


def run(moeserve, model_dir, stdin_bytes, *extra):
    p = subprocess.run([moeserve, "template", "--model", model_dir, *extra], input=stdin_bytes,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout, p.stderr


def main():
    moeserve, model_dir, cases_path = sys.argv[1:4]
    source, special = reference.load_model_template(model_dir)
    if len(sys.argv) > 4:
        model_dir = sys.argv[4]  # what moeserve is given
    template = reference.compile_template(source)
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    failed = 0
    for case in cases:
        request = {"messages": case["messages"]}
        for k in ("tools", "add_generation_prompt", "chat_template_kwargs"):
            if k in case:
                request[k] = case[k]
        variables = {**special, "messages": case["messages"], "tools": case.get("tools"),
                     "documents": None, "add_generation_prompt": case.get("add_generation_prompt", False)}
        variables.update(case.get("chat_template_kwargs") or {})
        want = reference.render(template, variables)
        rc, out, err = run(moeserve, model_dir, json.dumps(request, ensure_ascii=False).encode())
        if "error" in want:
            ok = rc == 1 and out == b"" and err.count(b"\n") == 1
        else:
            ok = rc == 0 and out == want["output"].encode()
        if not ok:
            failed += 1
            print(f"FAIL {case['name']}: rc={rc} stderr={err!r}")
    bad_inputs = [b"", b"{", b"[]", b'{"messages": 5}', b'{"messages": [], "tools": 1}',
                  b'{"messages": [], "add_generation_prompt": "yes"}',
                  b'{"messages": [], "chat_template_kwargs": []}', b'{"messages": []} {}']
    for bad in bad_inputs:
        rc, out, err = run(moeserve, model_dir, bad)
        if not (rc == 1 and out == b"" and err.count(b"\n") == 1 and err.startswith(b"moeserve template: ")):
            failed += 1
            print(f"FAIL bad input {bad!r}: rc={rc} stdout={out!r} stderr={err!r}")
    rc, out, err = run(moeserve, model_dir, b"", "--help")
    if rc != 0 or b"usage: moeserve template" not in out:
        failed += 1
        print("FAIL --help")
    rc, out, err = run(moeserve, "/nonexistent-model-dir", b"{}")
    if rc != 1 or err.count(b"\n") != 1:
        failed += 1
        print(f"FAIL missing model dir: rc={rc} stderr={err!r}")
    print(f"{len(cases)} conversations and {len(bad_inputs)} bad requests checked, {failed} failures")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
