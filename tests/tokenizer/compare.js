// Corpus test: `moeserve tokenize` against Hugging Face tokenizers (Node binding).
// Usage: node compare.js MOESERVE MODEL_DIR [WORK_DIR [--flags]]
// --flags: test a copy of tokenizer.json whose added tokens get lstrip/rstrip/single_word/
// normalized set (see below), to check those flags against HF too.
//
// For every corpus case (gen_corpus.js) it requires, for special=true and special=false:
//   * identical ids from HF and from moeserve;
//   * moeserve's decode of those ids == HF's decode of them, and == text (or NFC(text) when the
//     text is not NFC; HF's own normalizer is the NFC oracle, ICU's Unicode version differs).
// HF's reference for special=false: the Node binding has no split_special_tokens switch, so it is a
// second HF tokenizer loaded from a copy of tokenizer.json whose added tokens marked special are
// removed. (For HF, split_special_tokens skips special matches after leftmost-longest matching;
// removing them is the same whenever no special token overlaps a non-special one, which this script
// checks for the file under test.)
'use strict';
const fs = require('fs');
const path = require('path');
const os = require('os');
const { spawnSync } = require('child_process');
const { Tokenizer } = require(path.join(__dirname, '..', '..', 'node_modules', 'tokenizers'));
const { corpus } = require('./gen_corpus.js');

function overlaps(a, b) { // can a match of a and a match of b overlap without one containing the other?
  for (let k = 1; k < Math.min(a.length, b.length); k++) {
    if (a.endsWith(b.slice(0, k)) || b.endsWith(a.slice(0, k))) return true;
  }
  return a.includes(b) || b.includes(a);
}

function runMoeserve(bin, model, lines, decode) {
  const args = ['tokenize', '--model', model];
  if (decode) args.push('--decode');
  const r = spawnSync(bin, args, { input: lines.join('\n') + '\n', maxBuffer: 1 << 30, encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`moeserve ${args.join(' ')} exited ${r.status}\n${r.stderr}`);
    process.exit(1);
  }
  const out = r.stdout.split('\n');
  out.pop();
  if (out.length !== lines.length) {
    console.error(`moeserve gave ${out.length} lines for ${lines.length} inputs`);
    process.exit(1);
  }
  return out.map((l) => JSON.parse(l));
}

function show(s) {
  const j = JSON.stringify(s);
  return j.length > 300 ? j.slice(0, 300) + `... (${s.length} chars)` : j;
}

async function main() {
  const [bin, model0, work0, mode] = process.argv.slice(2);
  if (!bin || !model0) {
    console.error('usage: node compare.js MOESERVE MODEL_DIR [WORK_DIR [--flags]]');
    process.exit(2);
  }
  const work = work0 || fs.mkdtempSync(path.join(os.tmpdir(), 'tokcmp-'));
  fs.mkdirSync(work, { recursive: true });
  let model = model0;
  let tj = JSON.parse(fs.readFileSync(path.join(model, 'tokenizer.json'), 'utf8'));
  if (mode === '--flags') {
    // Qwen3's added tokens all have lstrip/rstrip/single_word false and normalized false; this
    // variant sets them on some tokens to check that they are honoured as HF does.
    const flags = {
      '<think>': { lstrip: true },
      '</think>': { rstrip: true },
      '<tool_call>': { single_word: true },
      '</tool_call>': { lstrip: true, rstrip: true },
      '<tool_response>': { single_word: true, lstrip: true },
      '<|fim_prefix|>': { normalized: true },
      '<|im_start|>': { lstrip: true, rstrip: true },
      '<|endoftext|>': { single_word: true },
    };
    tj.added_tokens = tj.added_tokens.map((t) => Object.assign({}, t, flags[t.content] || {}));
    model = path.join(work, 'flags-model');
    fs.mkdirSync(model, { recursive: true });
    fs.writeFileSync(path.join(model, 'tokenizer.json'), JSON.stringify(tj));
  }
  const tjPath = path.join(model, 'tokenizer.json');
  const special = tj.added_tokens.filter((t) => t.special), plain = tj.added_tokens.filter((t) => !t.special);
  for (const s of special) {
    for (const p of plain) {
      if (overlaps(s.content, p.content)) {
        console.error(`special ${s.content} overlaps non-special ${p.content}: the special=false reference is not exact`);
        process.exit(1);
      }
    }
  }
  const nosp = Object.assign({}, tj, { added_tokens: plain });
  const dir = work;
  const nospPath = path.join(dir, 'tokenizer.nospecial.json');
  fs.writeFileSync(nospPath, JSON.stringify(nosp));
  const hf = Tokenizer.fromFile(tjPath), hfNosp = Tokenizer.fromFile(nospPath);
  const nospFirstAdded = Object.keys(tj.model.vocab).length;

  const cases = corpus();
  fs.writeFileSync(path.join(dir, 'corpus.jsonl'), cases.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
  const input = [];
  for (const t of cases) {
    input.push(JSON.stringify({ text: t, special: true }));
    input.push(JSON.stringify({ text: t, special: false }));
  }
  const ours = runMoeserve(bin, model, input, false);
  const decIn = ours.map((o) => JSON.stringify({ ids: o.ids || [] }));
  const ourDec = runMoeserve(bin, model, decIn, true);

  // NFC as HF does it (its Unicode data, not ICU's): decode(encode(x)) gives x, or NFC(x) when x
  // is not normalized (computed per segment between added tokens, hence "x or NFC(x)").
  const norm = hf.getNormalizer();
  let fails = 0, checked = 0, roundtrip = 0;
  const fail = (msg) => {
    fails++;
    if (fails <= 20) console.error(msg);
  };
  for (let i = 0; i < cases.length; i++) {
    const text = cases[i];
    for (const sp of [true, false]) {
      const k = 2 * i + (sp ? 0 : 1);
      let ref = (await (sp ? hf : hfNosp).encode(text, null, { addSpecialTokens: false })).getIds();
      // hfNosp numbers its added tokens afresh; map them back to the file's ids by content.
      if (!sp) ref = ref.map((id) => (id >= nospFirstAdded ? hf.tokenToId(hfNosp.idToToken(id)) : id));
      const got = ours[k].ids;
      checked++;
      if (!got) {
        fail(`case ${i} special=${sp}: moeserve error ${ours[k].error} for ${show(text)}`);
        continue;
      }
      if (got.length !== ref.length || got.some((v, j) => v !== ref[j])) {
        let j = 0;
        while (j < got.length && got[j] === ref[j]) j++;
        fail(`case ${i} special=${sp}: ids differ at ${j} for ${show(text)}\n  hf:  ${JSON.stringify(ref.slice(j, j + 12))}` +
             ` ${JSON.stringify(ref.slice(j, j + 12).map((x) => hf.idToToken(x)))}\n  ours:${JSON.stringify(got.slice(j, j + 12))}` +
             ` ${JSON.stringify(got.slice(j, j + 12).map((x) => hf.idToToken(x)))}`);
        continue;
      }
      const hfText = await hf.decode(ref, false);
      const mine = ourDec[k].text;
      if (mine !== hfText) fail(`case ${i} special=${sp}: decode differs from HF: ${show(mine)} vs ${show(hfText)}`);
      else if (mode !== '--flags' && mine !== text && mine !== norm.normalizeString(text)) // strip flags drop spaces
        fail(`case ${i} special=${sp}: decode(encode(x)) is neither x nor NFC(x): ${show(mine)} vs ${show(text)}`);
      else if (mine === text) roundtrip++;
    }
  }
  console.log(`${cases.length} cases, ${checked} encodings checked (ids identical to HF, decode identical to HF;` +
              ` decode(encode(x)) == x for ${roundtrip}, == NFC(x) for the others), ${fails} failures`);
  process.exit(fails ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
