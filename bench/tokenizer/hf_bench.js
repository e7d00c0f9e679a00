// HF tokenizers (Node binding) on the same corpus, one document at a time (awaiting each, so
// one encode runs at a time), then as one encodeBatch; add_special_tokens=false. Usage: node hf_bench.js MODEL_DIR CORPUS [REPEATS=3]
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '..', '..', 'node_modules', 'tokenizers'));

(async () => {
  const [model, corpus, rep] = process.argv.slice(2);
  const repeats = Number(rep || 3);
  const tok = Tokenizer.fromFile(path.join(model, 'tokenizer.json'));
  const docs = fs.readFileSync(corpus, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
  const bytes = docs.reduce((a, d) => a + Buffer.byteLength(d), 0);
  let best = Infinity, tokens = 0;
  for (let r = 0; r < repeats; r++) {
    tokens = 0;
    const t0 = process.hrtime.bigint();
    for (const d of docs) tokens += (await tok.encode(d, null, { addSpecialTokens: false })).getIds().length;
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, dt);
  }
  console.log(`hf-tokenizers encode: ${docs.length} docs, ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens, best of ${repeats}: ` +
              `${best.toFixed(3)} s = ${(bytes / 1e6 / best).toFixed(1)} MB/s, ${(tokens / 1e6 / best).toFixed(2)} M tokens/s`);
  // encodeBatch over all documents: removes the per-call overhead of the binding; with
  // RAYON_NUM_THREADS=1 it still encodes on one thread.
  best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    const encs = await tok.encodeBatch(docs, { addSpecialTokens: false });
    tokens = encs.reduce((a, e) => a + e.getIds().length, 0);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`hf-tokenizers encodeBatch: ${docs.length} docs, ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens, best of ${repeats}: ` +
              `${best.toFixed(3)} s = ${(bytes / 1e6 / best).toFixed(1)} MB/s, ${(tokens / 1e6 / best).toFixed(2)} M tokens/s`);
})();
