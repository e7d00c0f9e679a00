#!/usr/bin/python3
"""Makes a test model with tools/make_model.py unless OUT_DIR already holds one made by the same
make_model.py (same content hash) with the same arguments, so repeated test runs skip the
a3b-sized generation.

usage: ensure_model.py OUT_DIR [make_model.py arguments...]
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_MODEL = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "make_model.py"))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir, args = sys.argv[1], sys.argv[2:]
    with open(MAKE_MODEL, "rb") as f:
        stamp = {"make_model_sha256": hashlib.sha256(f.read()).hexdigest(), "args": args}
    stamp_path = os.path.join(out_dir, ".ensure_model.json")
    try:
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                print(f"{out_dir}: up to date")
                return 0
    except (OSError, ValueError):
        pass
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    r = subprocess.run([sys.executable, MAKE_MODEL, out_dir] + args)
    if r.returncode != 0:
        return r.returncode
    with open(stamp_path, "w") as f:
        json.dump(stamp, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
