#!/usr/bin/python3
r"""Generates tokenizer/tok_unidata.c: the Unicode tables the tokenizer needs.

    /usr/bin/python3 tests/tokenizer/gen_unidata.py > tokenizer/tok_unidata.c
(needs node and node_modules/tokenizers; takes about 10 s.)

Exactness against Hugging Face's tokenizers means using *its* Unicode data, and it uses two
different versions, neither of which matches any Unicode database on this machine:
  * the Split pre-tokenizer runs Oniguruma, whose \p{L}, \p{N} and \s follow Unicode 16.0
    (Python's unicodedata here is 14.0, Debian's unicode-data 15.0, Node's ICU 17.0);
  * the NFC normalizer (crate unicode-normalization-alignments) carries Unicode 9.0 tables, so
    combining marks and compositions added since 9.0 are inert in it.
So the character data comes from Python's unicodedata (14.0) and is then checked against the
reference with tests/tokenizer/probe_hf_unicode.js:
  * the pre-tokenizer class of every code point is read from the reference itself (Split on
    "a"+X, "!"+X, " "+X); the differences from Python's categories are listed in the header of
    the generated file;
  * every combining class, decomposition and composition from unicodedata is kept only if the
    reference's NFC honours it (all those it drops are characters assigned after Unicode 9.0).

Tables:
  * a two-stage class table over all code points: low 2 bits = pre-tokenizer class
    (0 other, 1 letter \p{L}, 2 number \p{N}, 3 whitespace as Oniguruma's \s defines it:
    U+0009-000D, U+0085 and the categories Zs, Zl, Zp), bit 2 = "NFC-unsafe": the character is not
    a normalization boundary (canonical combining class != 0, or NFC_Quick_Check is No or Maybe),
    so the text around it must go through the full NFC algorithm; bit 3 = word character as Rust's
    regex \w defines it (Alphabetic, M, Nd, Pc, Join_Control), for added tokens' single_word
    (from unicodedata alone: Alphabetic approximated as L, Nl and the Other_Alphabetic symbols);
  * canonical combining classes (sparse, sorted);
  * full canonical decompositions (sorted; Hangul syllables are algorithmic and left out);
  * primary composites: (first, second) -> composite, sorted by key (Hangul left out).
"""
import json
import os
import subprocess
import sys
import tempfile
import unicodedata as ud

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE = os.path.join(HERE, "probe_hf_unicode.js")
NODE = os.environ.get("MS_NODE", "node")
MAXCP = 0x110000
BLOCK = 256


def category_class(cp):
    ch = chr(cp)
    cat = ud.category(ch)
    if cp in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85) or cat in ("Zs", "Zl", "Zp"):
        return 3
    if cat[0] == "L":
        return 1
    if cat[0] == "N":
        return 2
    return 0


# Other_Alphabetic characters outside the letter and mark categories (circled/squared letters).
OTHER_ALPHA_SYMBOLS = [(0x24B6, 0x24E9), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189)]


def rust_word_char(cp):
    """Rust regex's Unicode \\w (used by HF for added tokens' single_word):
    Alphabetic, marks, Nd, Pc and Join_Control."""
    cat = ud.category(chr(cp))
    if cat[0] in "LM" or cat in ("Nd", "Nl", "Pc") or cp in (0x200C, 0x200D):
        return True
    return any(a <= cp <= b for a, b in OTHER_ALPHA_SYMBOLS)


def is_hangul_syllable(cp):
    return 0xAC00 <= cp < 0xAC00 + 11172


def hf_classes():
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "classes.bin")
        subprocess.run([NODE, PROBE, "classes", out], check=True)
        with open(out, "rb") as f:
            data = f.read()
    assert len(data) == MAXCP
    return data


def hf_nfc_ok(items):
    r = subprocess.run([NODE, PROBE, "nfc"], input=json.dumps(items).encode(), stdout=subprocess.PIPE,
                       check=True)
    res = json.loads(r.stdout)
    assert len(res) == len(items)
    return res


def main():
    out = sys.stdout
    # --- NFC data from unicodedata, filtered by what the reference's NFC honours. ---------------
    BASE = "#"  # composes with nothing
    ccc_items, ccc_cps = [], []
    dec_items, dec_cps = [], []
    for cp in range(MAXCP):
        if 0xD800 <= cp < 0xE000 or is_hangul_syllable(cp):
            continue
        ch = chr(cp)
        nfc = ud.normalize("NFC", ch)
        nfd = ud.normalize("NFD", ch)
        c = ud.combining(ch)
        if c > 1:  # a known class > 1 sorts after U+0334 (class 1)
            ccc_items.append([BASE + ch + "\u0334", BASE + "\u0334" + nfc])
            ccc_cps.append(cp)
        elif c == 1:  # a known class 1 sorts before U+0301 (class 230)
            ccc_items.append([BASE + "\u0301" + ch, BASE + nfc + "\u0301"])
            ccc_cps.append(cp)
        if nfd != ch:
            dec_items.append([ch, nfc])
            dec_items.append([nfd, nfc])
            dec_cps.append(cp)
    ok = hf_nfc_ok(ccc_items + dec_items)
    ccc_known = {cp for cp, k in zip(ccc_cps, ok[:len(ccc_cps)]) if k}
    dok = ok[len(ccc_cps):]
    dec_known = {cp for i, cp in enumerate(dec_cps) if dok[2 * i] and dok[2 * i + 1]}
    dropped_ccc = sorted(set(ccc_cps) - ccc_known)
    dropped_dec = sorted(set(dec_cps) - dec_known)

    comps = {}
    for cp in dec_known:
        d = ud.decomposition(chr(cp))
        parts = [int(x, 16) for x in d.split()]
        if len(parts) == 2 and ud.normalize("NFC", chr(cp)) == chr(cp):
            comps[(parts[0], parts[1])] = cp
    seconds = {b for (_, b) in comps}
    # Hangul V and T jamo compose with a preceding L or LV.
    seconds |= set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))

    # --- Pre-tokenizer classes from the reference. ----------------------------------------------
    hfc = hf_classes()
    class_diffs = []
    cls = bytearray(MAXCP)
    cccs = []
    decomp = []
    for cp in range(MAXCP):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        c = hfc[cp]
        if cp and c != category_class(cp):
            class_diffs.append(cp)
        ccc = ud.combining(ch) if cp in ccc_known else 0
        unsafe = ccc != 0 or (cp in dec_known and ud.normalize("NFC", ch) != ch) or cp in seconds
        cls[cp] = c | (4 if unsafe else 0) | (8 if rust_word_char(cp) else 0)
        if ccc:
            cccs.append((cp, ccc))
        if cp in dec_known and not is_hangul_syllable(cp):
            decomp.append((cp, [ord(x) for x in ud.normalize("NFD", ch)]))

    # Two-stage table with deduplicated blocks.
    blocks = []
    index = {}
    stage1 = []
    for b in range(MAXCP // BLOCK):
        blk = bytes(cls[b * BLOCK:(b + 1) * BLOCK])
        if blk not in index:
            index[blk] = len(blocks)
            blocks.append(blk)
        stage1.append(index[blk])

    w = out.write
    def ranges(cps):
        rs = []
        for cp in cps:
            if rs and rs[-1][1] == cp - 1:
                rs[-1][1] = cp
            else:
                rs.append([cp, cp])
        return " ".join("%04X" % a if a == b else "%04X-%04X" % (a, b) for a, b in rs)

    def wrap(text):
        words, lines, cur = text.split(), [], ""
        for wd in words:
            if len(cur) + len(wd) + 1 > 92:
                lines.append(cur)
                cur = ""
            cur += (" " if cur else "") + wd
        if cur:
            lines.append(cur)
        return "".join(" *   %s\n" % ln for ln in lines)

    w("/* Generated by tests/tokenizer/gen_unidata.py from Python %s unicodedata (Unicode %s),\n"
      " * checked against HF tokenizers (see the script). Do not edit by hand.\n"
      " * Pre-tokenizer classes that differ from unicodedata %s (%d code points):\n%s"
      " * Combining classes the reference's NFC lacks (%d):\n%s"
      " * Decompositions the reference's NFC lacks (%d):\n%s */\n"
      % (sys.version.split()[0], ud.unidata_version, ud.unidata_version, len(class_diffs),
         wrap(ranges(class_diffs)), len(dropped_ccc), wrap(ranges(dropped_ccc)), len(dropped_dec),
         wrap(ranges(dropped_dec))))
    w('#include "tokenizer/tok_unidata.h"\n\n')
    w("const uint16_t tok_cls_stage1[%d] = {\n" % len(stage1))
    for i in range(0, len(stage1), 16):
        w("    " + ", ".join(str(x) for x in stage1[i:i + 16]) + ",\n")
    w("};\n\n")
    w("const uint8_t tok_cls_stage2[%d] = {\n" % (len(blocks) * BLOCK))
    for blk in blocks:
        for i in range(0, BLOCK, 32):
            w("    " + ",".join(str(x) for x in blk[i:i + 32]) + ",\n")
    w("};\n\n")

    w("const struct tok_ccc tok_ccc_table[%d] = {\n" % len(cccs))
    for cp, c in cccs:
        w("    {0x%X, %d},\n" % (cp, c))
    w("};\nconst size_t tok_ccc_count = %d;\n\n" % len(cccs))

    pool = []
    entries = []
    for cp, seq in decomp:
        entries.append((cp, len(pool), len(seq)))
        pool.extend(seq)
    w("const uint32_t tok_decomp_pool[%d] = {\n" % len(pool))
    for i in range(0, len(pool), 12):
        w("    " + ", ".join("0x%X" % x for x in pool[i:i + 12]) + ",\n")
    w("};\n\n")
    w("const struct tok_decomp tok_decomp_table[%d] = {\n" % len(entries))
    for cp, off, n in entries:
        w("    {0x%X, %d, %d},\n" % (cp, off, n))
    w("};\nconst size_t tok_decomp_count = %d;\n\n" % len(entries))

    keys = sorted(comps.items(), key=lambda kv: (kv[0][0] << 21) | kv[0][1])
    w("const struct tok_comp tok_comp_table[%d] = {\n" % len(keys))
    for (a, b), cp in keys:
        w("    {0x%XULL, 0x%X},\n" % ((a << 21) | b, cp))
    w("};\nconst size_t tok_comp_count = %d;\n" % len(keys))


if __name__ == "__main__":
    main()
