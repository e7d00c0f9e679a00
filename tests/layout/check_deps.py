#!/usr/bin/env python3
"""The dependency rules of the source tree (docs/ARCHITECTURE.md, "Layers"), checked on what the
compiler and linker see rather than on what a comment claims:

1. No loop between modules. A module is a source stem: x.c with x.h, and the ISA-specific
   bodies beside them (x_avx2.c, x_avx512.c, x_amx.c: one family, one module). A depends on B when a source
   or header of A includes B's header (quoted #include), or when A's object file references a
   symbol B's object file defines (nm). A loop through calls is a loop even when both files only
   include a shared internal header.
2. Each folder is one static library (CMakeLists.txt, ms_library(name dir deps...)), and a file
   may only include headers of its own folder or of folders its library links, directly or not.

usage: check_deps.py SOURCE_DIR BUILD_DIR        exit 1 and a line per violation if any
       check_deps.py --selftest                    builds a small tree with a loop through includes,
                                                   one through calls only, and a folder including
                                                   above itself, and checks that each is reported
"""
import os
import re
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def libraries(src):
    """{folder: set of folders it may include from} from the ms_library lines."""
    text = open(os.path.join(src, "CMakeLists.txt")).read()
    lib_dir, deps = {}, {}
    for name, d, rest in re.findall(r"^ms_library\((\w+)\s+([\w/]+)\s*([^)]*)\)", text, re.M):
        lib_dir[name] = d
        deps[name] = [x for x in rest.split() if x.startswith("ms_")]
    def closure(name, seen):
        for d in deps.get(name, []):
            if d not in seen:
                seen.add(d)
                closure(d, seen)
        return seen
    return {lib_dir[n]: {lib_dir[d] for d in closure(n, set()) if d in lib_dir} | {lib_dir[n]} for n in lib_dir}


def sources(src, folders):
    for d in folders:
        for f in sorted(os.listdir(os.path.join(src, d))):
            if f.endswith((".c", ".h")):
                yield os.path.join(d, f)


ISA_SUFFIX = re.compile(r"_(avx2|avx512|amx)$")


def module(path):
    return ISA_SUFFIX.sub("", os.path.splitext(path)[0])


def include_edges(src, files):
    edges = set()
    for f in files:
        for inc in INCLUDE.findall(open(os.path.join(src, f), errors="replace").read()):
            if os.path.exists(os.path.join(src, inc)):
                edges.add((f, inc))
    return edges


def symbol_edges(src, build):
    """(module, module) pairs from the objects of the ms_* libraries."""
    objs = {}
    for root, _, names in os.walk(os.path.join(build, "CMakeFiles")):
        if not os.path.basename(root).startswith("ms_") and "/ms_" not in root:
            continue
        for n in names:
            if n.endswith(".c.o"):
                p = os.path.join(root, n)
                rel = p.split(".dir/", 1)[1][: -len(".o")]
                if os.path.exists(os.path.join(src, rel)):  # not a stale object of a moved file
                    objs[rel] = p
    defined, undefined = {}, {}
    for rel, p in objs.items():
        mod = module(rel)
        out = subprocess.run(["nm", p], capture_output=True, text=True, check=True).stdout
        undefined.setdefault(mod, set())
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                undefined[mod].add(parts[1])
            elif len(parts) == 3 and parts[1] in "TDBR":
                defined[parts[2]] = mod
    edges = set()
    for mod, syms in undefined.items():
        for s in syms:
            if s in defined and defined[s] != mod:
                edges.add((mod, defined[s]))
    return edges, len(objs)


def cycles(nodes, edges):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    adj = {n: [] for n in nodes}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, [])
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in adj:
        if root in index:
            continue
        work = [(root, iter(adj[root]))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop(); on.discard(w); comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif nxt not in index:
                index[nxt] = low[nxt] = counter[0]; counter[0] += 1
                stack.append(nxt); on.add(nxt)
                work.append((nxt, iter(adj[nxt])))
            elif nxt in on:
                low[v] = min(low[v], index[nxt])
    return out


def main():
    src, build = sys.argv[1], sys.argv[2]
    allowed = libraries(src)
    files = list(sources(src, sorted(allowed)))
    inc = include_edges(src, files)
    sym, n_objs = symbol_edges(src, build)
    if n_objs == 0:
        print(f"check_deps: no library objects under {build}/CMakeFiles: build first")
        return 1
    bad = []
    for f, h in sorted(inc):
        fd, hd = os.path.dirname(f), os.path.dirname(h)
        if hd in allowed and hd not in allowed.get(fd, {fd}):
            bad.append(f"{f} includes {h}: {fd}/ does not link {hd}/ (CMakeLists.txt)")
    edges = {(module(a), module(b)) for a, b in inc if module(a) != module(b)} | sym
    for comp in cycles({module(f) for f in files}, edges):
        inner = sorted(f"{a} -> {b}" for a, b in edges if a in comp and b in comp)
        bad.append("dependency loop between " + ", ".join(comp) + ": " + "; ".join(inner))
    for b in bad:
        print("check_deps:", b)
    print(f"check_deps: {len(files)} files, {n_objs} objects, {len(edges)} module dependencies, "
          f"{len(bad)} violations")
    return 1 if bad else 0


def selftest():
    import tempfile
    files = {
        "CMakeLists.txt": "ms_library(ms_low low)\nms_library(ms_high high ms_low)\n",
        "low/a.h": '#include "low/b.h"\n', "low/a.c": '#include "low/a.h"\n',
        "low/b.h": '#include "low/a.h"\n', "low/b.c": '#include "low/b.h"\n',
        "low/internal.h": "int f(int); int g(int);\n",
        "low/f.c": '#include "low/internal.h"\nint f(int x) { return x ? g(x - 1) : 0; }\n',
        "low/g.c": '#include "low/internal.h"\nint g(int x) { return x ? f(x - 1) : 1; }\n',
        "low/up.c": '#include "high/h.h"\n', "high/h.h": "\n", "high/h.c": '#include "low/a.h"\n',
    }
    with tempfile.TemporaryDirectory() as tmp:
        src, build = os.path.join(tmp, "src"), os.path.join(tmp, "build")
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            open(os.path.join(src, rel), "w").write(text)
        for rel in ("low/f.c", "low/g.c"):
            obj = os.path.join(build, "CMakeFiles", "ms_low.dir", rel + ".o")
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            subprocess.run(["cc", "-c", "-I", src, os.path.join(src, rel), "-o", obj], check=True)
        out = subprocess.run([sys.executable, __file__, src, build], capture_output=True, text=True)
    want = ["loop between low/a, low/b", "loop between low/f, low/g", "low/up.c includes high/h.h"]
    missing = [w for w in want if w not in out.stdout]
    print(out.stdout, end="")
    if out.returncode != 1 or missing or "high/h.c includes" in out.stdout:
        print("check_deps selftest: FAILED, not reported:", missing)
        return 1
    print("check_deps selftest: the include loop, the call loop and the upward include are reported")
    return 0


if __name__ == "__main__":
    sys.exit(selftest() if sys.argv[1:] == ["--selftest"] else main())
