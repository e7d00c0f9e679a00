// Deterministic tokenizer test corpus: hand-written cases (hand_cases.json) plus generated ones.
// Usage: node gen_corpus.js [OUT.jsonl]   (prints the corpus as JSON lines {"text": ...})
// Exported: corpus() -> array of strings.
'use strict';
const fs = require('fs');
const path = require('path');

function rng(seed) { // mulberry32
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ('the of and to in is was that for it with as his on be at by had are but from or have an they ' +
  'which one you were her all she there would their we him been has when who will more no if out so said what ' +
  'up its about into than them can only other new some could time these two may then do first any my now such ' +
  'like our over man me even most made after also did many before must through back years where much your way ' +
  'well down should because each just those people how too little state good very make world still own see men ' +
  'work long get here between both life being under never day same another know while last might us great old ' +
  'year off come since against go came right used take three tokenizer inference server expert mixture routing ' +
  'Qwen model attention kernel throughput latency batch prompt completion streaming unicode normalization ' +
  'internationalization antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis').split(' ');
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Re", "'rE", "'VE", "'vE",
  "'M", "'LL", "'lL", "'Ll", "'D", "n't", "N'T", "'ſ", "’s", "'x", "'", "''", "'re'", "'dd", "'lll"];
const PUNCT = ['.', ',', '!', '?', ';', ':', '...', ' - ', ' -- ', '—', '(', ')', '"', '“', '”', '«', '»', '¿', '¡', '…'];

const CHINESE = ['我们今天讨论混合专家模型的推理服务器。', '你好，世界！这是一个测试。', '机器学习是人工智能的一个分支，',
  '北京是中华人民共和国的首都，人口超过两千万。', '他说：“明天见。”', '数字１２３和ABC混合', '《红楼梦》是中国古典小说。',
  '请把文件发给我，谢谢！', '天气预报显示明天有雨', '编码器与解码器之间的注意力机制'];
const JAPANESE = ['今日は良い天気ですね。', 'トークナイザーのテストを行います。', 'ひらがなとカタカナと漢字を混ぜた文章です。',
  '東京タワーは３３３メートルです。', 'ｶﾀｶﾅ（半角）も使います', 'すみません、駅はどこですか？', 'ラーメンを食べたい！'];
const KOREAN = ['안녕하세요, 세계!', '토크나이저는 텍스트를 토큰으로 나눕니다.', '서울은 대한민국의 수도입니다.',
  '한국어 문장과 English 혼합', '감사합니다 😊'];
const ARABIC = ['مرحبا بالعالم', 'هذا اختبار لمحلل النصوص.', 'العربية لغة جميلة، أليس كذلك؟', 'الرقم ١٢٣٤٥ باللغة العربية',
  'بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ'];
const HINDI = ['नमस्ते दुनिया', 'यह एक परीक्षण है।', 'भारत की राजधानी नई दिल्ली है।', 'क़िला और ज़मीन', 'संख्या १२३४५'];
const THAI = ['สวัสดีชาวโลก', 'ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ', 'ประเทศไทยมีจังหวัดทั้งหมดเจ็ดสิบเจ็ดจังหวัด'];
const OTHER_SCRIPTS = ['Привет, мир! Ёжик.', 'Γειά σου Κόσμε· ἀρχὴ', 'שלום עולם', 'Xin chào thế giới, Việt Nam',
  'Zażółć gęślą jaźń', 'Ärger über Öl — straße STRASSE ß ẞ', 'ⅫⅣ ½ ¾ ² ³ ⁴ ₅ ①②③', 'Ꭰ Ꭱ Ꭲ ᐁ ᐂ', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕏 𝐀𝐁𝐂',
  'ʻOkina ʻāina', 'Ǆ ǅ ǆ ǈ', 'ﬁﬂ ﬀ', 'ᚠᚢᚦᚨᚱᚲ', 'ሰላም ዓለም', 'გამარჯობა', 'Բարեւ', '𓀀𓀁𓀂', '𠀀𠀁𪚥'];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇯🇵', '🇺🇸🇫🇷', '1️⃣', '#️⃣', '❤️', '🧑🏿‍💻', '🤷‍♀️', '🏴‍☠️', '👩🏻‍❤️‍💋‍👨🏼',
  '✨', '🎉🎉🎉', '©️', '™', '⌚', '🦀', '🐍', '🫠', '🏴󠁧󠁢󠁳󠁣󠁴󠁿'];
const WS = [' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n\n', '\n\n\n', '\r\n', '\r\n\r\n', '\r', ' \n', '\n ',
  ' \t\n', '\u0085', '\ufeff', '\u00a0', '\u3000', '\u2028', '\u2029', '\u200b', '\u2009', '\u202f', '\u205f',
  '\u1680', '\u000b', '\u000c', '\u001c', '\u001f', '\u180e', '        ', '\n\t\t', '\t \t'];
const SPECIALS = ['<|im_start|>', '<|im_end|>', '<|endoftext|>', '<think>', '</think>', '<tool_call>', '</tool_call>',
  '<tool_response>', '</tool_response>', '<|fim_prefix|>', '<|fim_middle|>', '<|fim_suffix|>', '<|fim_pad|>',
  '<|repo_name|>', '<|file_sep|>', '<|object_ref_start|>', '<|box_end|>', '<|vision_pad|>', '<|image_pad|>',
  '<|video_pad|>'];
const NEAR = ['<|im_start|', '|im_start|>', '<|im_star|>', '<|IM_START|>', '< think>', '<think >', '<THINK>', '<<think>>',
  '<thinking>', '</think', '<\\think>', '<tool_call', 'tool_call>', '<|im_start|><|im_end|>', '<think></think>',
  '<|im_start<|im_end|>', '<|endoftext', '<|<|endoftext|>|>', '<<|im_end|>>', '<tool_call></tool_call>',
  '<|im_end|>\n', '<think>\n\n</think>\n\n'];
const COMBINING = ['e\u0301', 'E\u0301', 'A\u030a', '\u212b', '\u2126', 'a\u0323\u0301', 'a\u0301\u0323',
  'o\u0302\u0301', 'u\u0308\u0304', '\u1100\u1161\u11a8', '\u1100\u1161', '\uac00\u11a8', '\u0958', '\u0915\u093c',
  '\u1e9b\u0323', '\u0344', 'q\u0307\u0323', '\u0041\u030a\u0301', 'n\u0303', 'c\u0327', '\u03b1\u0313\u0301',
  '\u0301', '\u0301\u0301e', 'e\u0301\u0301', '\u00e9\u0323', 'i\u0307', '\u0f73', '\u0f71\u0f72', '\u09c7\u09be',
  '\u0b47\u0b3e', '\u2000', '\uf900', '\u{2f800}', '\u0340', 'x\u0300\u0316\u0300', '\u1e0b\u0323', 'z\u0335\u0327'];
const CODE = [
  'def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
  '#include <stdio.h>\n\nint main(void)\n{\n\tprintf("hello, %s!\\n", "world");\n\treturn 0;\n}\n',
  'const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);\n// TODO: fix this\n',
  'fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}\n',
  '<!DOCTYPE html>\n<html lang="en">\n  <body><div class="a b">Hi &amp; bye</div></body>\n</html>\n',
  '{"name": "moeserve", "version": "0.1.0", "tags": ["c", "llm"], "n": 3.14e-10, "ok": true}\n',
  'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\' ORDER BY id DESC;\n',
  '#!/bin/sh\nset -eu\nfor f in *.c; do\n  gcc -O2 -Wall "$f" -o "${f%.c}" || exit 1\ndone\n',
  'x = [i**2 for i in range(10) if i % 2 == 0]  # squares\nprint(f"{x!r:>20}")\n',
  'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}\n',
  'public static void main(String[] args) { System.out.println(args.length); }\n',
  '    \t  indented_with_mixed = True\r\n\tif (a&&b||!c) { x+=1; y<<=2; z->w = **p; }\r\n',
  '$ ls -la /usr/local/bin | grep -E "^-rwx" | wc -l\n',
  'diff --git a/x.c b/x.c\n@@ -1,3 +1,4 @@\n-int a;\n+int a = 0;\n+int b;\n',
  '\\begin{equation} E = mc^2 \\quad \\sum_{i=0}^{n} x_i \\end{equation}\n',
  'matrix = [[1, 2, 3],\n          [4, 5, 6]]\n\n\n\nassert matrix[1][2] == 6\n',
];

function pick(r, a) { return a[Math.floor(r() * a.length)]; }

function sentence(r) {
  const n = 3 + Math.floor(r() * 15);
  const out = [];
  for (let i = 0; i < n; i++) {
    let w = pick(r, WORDS);
    const c = r();
    if (c < 0.1) w = w[0].toUpperCase() + w.slice(1);
    else if (c < 0.13) w = w.toUpperCase();
    if (r() < 0.08) w += pick(r, CONTRACTIONS);
    out.push(w);
    if (r() < 0.1) out.push(pick(r, PUNCT));
  }
  let s = out.join(' ');
  s = s[0].toUpperCase() + s.slice(1) + pick(r, ['.', '.', '!', '?', '...', '']);
  return s;
}

function num(r) {
  const k = r();
  if (k < 0.3) return String(Math.floor(r() * 1e6));
  if (k < 0.5) return (r() * 1000).toFixed(3);
  if (k < 0.6) return '+1 (555) 123-' + String(1000 + Math.floor(r() * 9000));
  if (k < 0.7) return '2026-11-23T16:15:00Z';
  if (k < 0.8) return '0x' + Math.floor(r() * 0xffffffff).toString(16);
  if (k < 0.9) return '3.14159265358979323846264338327950288419716939937510';
  return '1,234,567.89 €';
}

// Random code point from assigned, non-surrogate, non-private-use, non-NUL characters.
const UNASSIGNED = /^[\p{Cn}\p{Cs}\p{Co}]$/u;
function randomChar(r, wide) {
  for (;;) {
    let cp;
    const k = r();
    if (!wide && k < 0.5) cp = 1 + Math.floor(r() * 0x7f);
    else if (k < 0.75) cp = Math.floor(r() * 0x3000);
    else if (k < 0.95) cp = Math.floor(r() * 0x10000);
    else cp = 0x10000 + Math.floor(r() * 0x20000);
    if (cp === 0) continue;
    const s = String.fromCodePoint(cp);
    if (UNASSIGNED.test(s)) continue;
    return s;
  }
}

function mixed(r, n) {
  const parts = [];
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.3) parts.push(sentence(r));
    else if (k < 0.38) parts.push(pick(r, CODE));
    else if (k < 0.44) parts.push(pick(r, CHINESE));
    else if (k < 0.48) parts.push(pick(r, JAPANESE));
    else if (k < 0.51) parts.push(pick(r, KOREAN));
    else if (k < 0.54) parts.push(pick(r, ARABIC));
    else if (k < 0.57) parts.push(pick(r, HINDI));
    else if (k < 0.59) parts.push(pick(r, THAI));
    else if (k < 0.63) parts.push(pick(r, OTHER_SCRIPTS));
    else if (k < 0.68) parts.push(pick(r, EMOJI));
    else if (k < 0.73) parts.push(num(r));
    else if (k < 0.83) parts.push(pick(r, WS));
    else if (k < 0.87) parts.push(pick(r, COMBINING));
    else if (k < 0.91) parts.push(pick(r, SPECIALS));
    else if (k < 0.94) parts.push(pick(r, NEAR));
    else parts.push(pick(r, PUNCT));
    if (r() < 0.5) parts.push(' ');
  }
  return parts.join('');
}

function corpus() {
  const r = rng(20261123);
  const cases = JSON.parse(fs.readFileSync(path.join(__dirname, 'hand_cases.json'), 'utf8'));
  // Every list entry alone and with surrounding context.
  for (const list of [CHINESE, JAPANESE, KOREAN, ARABIC, HINDI, THAI, OTHER_SCRIPTS, EMOJI, WS, SPECIALS, NEAR,
    COMBINING, CODE, CONTRACTIONS, PUNCT]) {
    for (const x of list) {
      cases.push(x, 'a' + x + 'b', ' ' + x + ' ', 'Hi' + x + x + '\n');
    }
  }
  for (let i = 0; i < 300; i++) cases.push(sentence(r));
  for (let i = 0; i < 100; i++) cases.push(num(r) + ' ' + num(r));
  for (let i = 0; i < 600; i++) cases.push(mixed(r, 1 + Math.floor(r() * 12)));
  // Whitespace structure: runs of spaces, tabs, newlines, \r\n around words.
  for (let i = 0; i < 200; i++) {
    let s = '';
    const n = 1 + Math.floor(r() * 8);
    for (let j = 0; j < n; j++) {
      s += pick(r, WS).repeat(1 + Math.floor(r() * 3));
      if (r() < 0.6) s += pick(r, ['word', 'x', '1', '!', '(', 'é', '中', '😀', "'s", '<think>', '-']);
    }
    cases.push(s);
  }
  // Random characters, ASCII-heavy and wide.
  for (let i = 0; i < 300; i++) {
    let s = '';
    const n = 1 + Math.floor(r() * 40);
    const wide = i % 2 === 1;
    for (let j = 0; j < n; j++) s += randomChar(r, wide);
    cases.push(s);
  }
  // Long runs: digits, spaces, newlines, one long word, repeated emoji, repeated CJK.
  cases.push('1'.repeat(5000), ' '.repeat(3000), '\n'.repeat(2000), '\t'.repeat(1000) + 'x', 'a'.repeat(20000),
    'ab'.repeat(5000), '😀'.repeat(500), '中文'.repeat(2000), '!'.repeat(4000), ' \r\n'.repeat(1000),
    'x' + ' '.repeat(1000) + 'y', '<think>'.repeat(300), '<|im_start|>'.repeat(300), 'e\u0301'.repeat(1000));
  // Long documents (tens of KB).
  for (let i = 0; i < 6; i++) {
    let s = '';
    while (s.length < 15000 + i * 8000) s += mixed(r, 20) + pick(r, ['\n', '\n\n', '\r\n', ' ']);
    cases.push(s);
  }
  return cases;
}

module.exports = { corpus, rng, sentence, mixed, CHINESE, JAPANESE, KOREAN, ARABIC, HINDI, THAI };

if (require.main === module) {
  const lines = corpus().map((t) => JSON.stringify({ text: t })).join('\n') + '\n';
  if (process.argv[2]) fs.writeFileSync(process.argv[2], lines);
  else process.stdout.write(lines);
}
