// Builds the ~10 MB mixed benchmark corpus as JSON lines {"text": doc}, deterministically, from
// files in node_modules (npm ci, pinned by package-lock.json) and tests/tokenizer/gen_corpus.js:
//   ~50% code: TypeScript/JavaScript sources and typings of node_modules/openai (sorted)
//   ~10% English markdown: node_modules/**/*.md
//   the rest up to 30% generated English prose (word-list sentences with contractions and punctuation)
//   ~20% multilingual mixed text (CJK, Arabic, Hindi, Thai, Cyrillic, emoji, digits, whitespace)
// Usage: node make_corpus.js OUT.jsonl [MB=10]
'use strict';
const fs = require('fs');
const path = require('path');
const g = require('../../tests/tokenizer/gen_corpus.js');

const root = path.join(__dirname, '..', '..');
const out = process.argv[2];
const total = Number(process.argv[3] || 10) * 1e6;
if (!out) {
  console.error('usage: node make_corpus.js OUT.jsonl [MB]');
  process.exit(2);
}

function walk(dir, acc) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, acc);
    else acc.push(p);
  }
  return acc;
}

const files = walk(path.join(root, 'node_modules'), []);
const code = files.filter((f) => f.includes('/openai/') && /\.(ts|mts|js|mjs|cjs)$/.test(f));
const md = files.filter((f) => f.endsWith('.md'));
const docs = [];
let size = { code: 0, md: 0, prose: 0, multi: 0 };
const add = (kind, text) => {
  docs.push(text);
  size[kind] += Buffer.byteLength(text);
};
for (const f of code) {
  if (size.code >= total * 0.5) break;
  add('code', fs.readFileSync(f, 'utf8'));
}
for (const f of md) {
  if (size.md >= total * 0.1) break;
  add('md', fs.readFileSync(f, 'utf8'));
}
const r = g.rng(42);
while (size.prose < total * 0.3 - size.md) {
  let d = '';
  while (d.length < 4000) d += g.sentence(r) + (r() < 0.2 ? '\n\n' : ' ');
  add('prose', d);
}
const langs = [g.CHINESE, g.JAPANESE, g.KOREAN, g.ARABIC, g.HINDI, g.THAI];
while (size.multi < total * 0.2) {
  let d = '';
  while (d.length < 3000) {
    d += r() < 0.5 ? g.mixed(r, 8) : langs[Math.floor(r() * langs.length)].join('');
    d += '\n';
  }
  add('multi', d);
}
// Interleave deterministically so no kind is benchmarked alone.
const order = docs.map((d, i) => [((i * 2654435761) >>> 0) % 1000003, d]).sort((a, b) => a[0] - b[0]).map((x) => x[1]);
fs.writeFileSync(out, order.map((t) => JSON.stringify({ text: t })).join('\n') + '\n');
const mb = (x) => (x / 1e6).toFixed(2);
console.error(`corpus: ${order.length} docs, ${mb(size.code + size.md + size.prose + size.multi)} MB ` +
              `(code ${mb(size.code)}, markdown ${mb(size.md)}, prose ${mb(size.prose)}, multilingual ${mb(size.multi)})`);
