// Our regex DFAs against independent engines: for each regex of the table, random texts over
// its own characters plus a few awkward ones, texts our DFA accepts (random walks) and near
// misses of those (one character deleted, inserted, replaced or doubled) are judged by
//   guided_regex (full match, Python flavor): Python's re.fullmatch with re.ASCII, and
//   JSON Schema "pattern" (a search, ECMAScript flavor): JavaScript's RegExp with the u flag,
//     as ajv runs it; there each text is fed as a JSON string twice, once as JSON.stringify
//     writes it and once with every BMP character as a \uXXXX escape (the escapes' decoded
//     characters must be what the DFA sees); a few also carry minLength / maxLength;
// and our verdict must equal theirs on every text. Regexes we refuse must name the construct.
// Usage: node regex_reference.mjs <regex_probe binary> <python3>
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [probe, python] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));

// [regex, flavors]: 'py' = guided_regex, 'js' = pattern; both where the syntax is valid in both
const TABLE = [
  ['abc', 'py js'], ['a|b|cd', 'py js'], ['a*b+c?', 'py js'], ['(ab)*', 'py js'], ['(?:ab|cd){2,3}', 'py js'],
  ['[a-z]+', 'py js'], ['[^a-z]+', 'py js'], ['[a-zA-Z0-9_]{1,5}', 'py js'], ['\\d{3}-\\d{4}', 'py js'],
  ['\\w+@\\w+\\.com', 'py js'], ['\\s*x\\s*', 'py js'], ['\\D\\W\\S', 'py js'], ['.', 'py js'], ['.+', 'py js'],
  ['a.c', 'py js'], ['[\\d\\s]+', 'py js'], ['[^\\d]', 'py js'], ['[\\w-]+', 'py js'], ['[.]\\.', 'py js'],
  ['\\\\\\/[\\-]', 'py js'], ['\\n\\t', 'py js'], ['\\u00e9+', 'py js'], ['\\x41\\x42', 'py js'], ['[à-ÿ]+', 'py js'],
  ['[^à-ÿ]', 'py js'], ['日本|語', 'py js'], ['😀+', 'py js'], ['[😀-😂]x', 'py js'], ['^abc$', 'py js'],
  ['^a|b$', 'py js'], ['a{0}b', 'py js'], ['(a|)+b', 'py js'], ['((a|b)c)*d', 'py js'], ['a{2,}', 'py js'],
  ['(a*)*b', 'py js'], ['x*?y+?z??', 'py js'], ['(?:(?:a|b)(?:c|d))+', 'py js'],
  ['[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}', 'py js'], ['^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$', 'py js'],
  ['^\\+?[0-9]{1,3}[ -]?\\(?[0-9]{3}\\)?$', 'py js'], ['\\$\\^|\\{\\}', 'py js'], ['.\\r.', 'py js'],
  ['[\\s\\S]*', 'py js'], ['\\v\\f|"', 'py js'], ['a$|b', 'py js'], ['(?:^|x)y', 'py js'], ['[^\\s"]{2}', 'py js'],
  ['\\u{1F600}|[\\u{e9}-\\u{ff}]', 'js'], ['(?<name>ab)c', 'js'], ['[^]a', 'js'], ['\\uD83D\\uDE00', 'js'],
  ['[a-z]', 'js', 2, 4], ['^\\d+$', 'js', 0, 3], ['é|x', 'js', 3], ['^(ab|c)*$', 'js', 1, 5],
  ['(?P<n>ab)c', 'py'], ['[]a]+', 'py'], ['a{,2}b', 'py'], ['\\U0001F600', 'py'], ['\\a?b', 'py'],
];

// [regex, words the error must contain]
const ERRORS = [
  ['(?=a)', 'lookahead'], ['a(?!b)', 'lookahead'], ['(?<=a)b', 'lookbehind'], ['(a)\\1', 'backreferences'],
  ['\\bfoo', 'word boundaries'], ['a**', 'quantifier follows'], ['(a', 'never closed'], ['a)', 'unmatched'],
  ['[a', 'never closed'], ['a{5,2}', 'out of order'], ['\\p{L}', 'property'], ['(?i)a', 'inline flags'],
  ['a{1001}', 'larger than 1000'], ['(a|b)*a(a|b){13}', 'DFA states'], ['[z-a]', 'out of order'],
  ['*a', 'nothing to repeat'], ['a++', 'possessive'], ['\\q', 'unknown escape'], ['[\\d-z]', 'class escape'],
];

let seed = 12345;
const rand = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 4294967296; };
const pick = (a) => a[Math.floor(rand() * a.length)];
const EXTRA = Array.from('ab z09_-.\n\t\ré日😀"\\/@x{}$^');

function alphabet(re) {
  return [...new Set([...Array.from(re).filter((c) => c !== '\0'), ...EXTRA])];
}
function randomText(al) {
  let s = '';
  for (let n = Math.floor(rand() * 9); n > 0; n--) s += pick(al);
  return s;
}
function nearMisses(s, al) {
  const cs = Array.from(s), out = [];
  const at = () => Math.floor(rand() * (cs.length + 1));
  if (cs.length) { const i = at() % cs.length; out.push([...cs.slice(0, i), ...cs.slice(i + 1)].join('')); }
  { const i = at(); out.push([...cs.slice(0, i), pick(al), ...cs.slice(i)].join('')); }
  if (cs.length) { const i = at() % cs.length; out.push([...cs.slice(0, i), pick(al), ...cs.slice(i + 1)].join('')); }
  if (cs.length) { const i = at() % cs.length; out.push([...cs.slice(0, i + 1), ...cs.slice(i)].join('')); }
  return out;
}
const escapeAll = (s) => '"' + Array.from(s).map((c) => {
  const cp = c.codePointAt(0);
  return cp > 0xffff ? c : '\\u' + cp.toString(16).padStart(4, '0');
}).join('') + '"';

function runProbe(reqs) {
  const r = spawnSync(probe, [], { input: reqs.map((q) => JSON.stringify(q)).join('\n') + '\n', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error('probe failed: ' + r.stderr);
  return r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
}

const jobs = [];
for (const [re, flavors, minLength, maxLength] of TABLE) // lengths: pattern with minLength / maxLength
  for (const fl of flavors.split(' ')) jobs.push({ re, fl, al: alphabet(re), texts: [], minLength, maxLength });
const request = (j, texts, samples) => ({
  re: j.re, mode: j.fl === 'py' ? 'regex' : 'pattern', samples, minLength: j.minLength, maxLength: j.maxLength,
  texts: j.fl === 'py' ? texts : texts.flatMap((t) => [JSON.stringify(t), escapeAll(t)]),
});

// round 1: random texts, and samples of what we accept
for (const j of jobs) j.round1 = Array.from({ length: 40 }, () => randomText(j.al));
const ans1 = runProbe(jobs.map((j) => request(j, j.round1, 25)));
let failures = 0;
jobs.forEach((j, i) => {
  if (ans1[i].error) { console.error(`FAIL ${j.fl} /${j.re}/ does not compile: ${ans1[i].error}`); failures++; j.dead = true; }
});
// round 2: our samples and their near misses
for (const [i, j] of jobs.entries()) {
  if (j.dead) continue;
  const samples = ans1[i].samples.filter((s) => s.length || rand() < 0.2);
  j.round2 = [...samples, ...samples.flatMap((s) => nearMisses(s, j.al))];
}
const live = jobs.filter((j) => !j.dead);
const ans2 = runProbe(live.map((j) => request(j, j.round2, 0)));
live.forEach((j, k) => {
  const i = jobs.indexOf(j);
  j.texts = [...j.round1, ...j.round2];
  j.ours = [...ans1[i].verdicts, ...ans2[k].verdicts];
});

// the references
const py = live.filter((j) => j.fl === 'py');
const pr = spawnSync(python, [path.join(here, 'regex_reference.py')], { input: JSON.stringify(py.map((j) => [j.re, j.texts])), maxBuffer: 1 << 28 });
if (pr.status !== 0) throw new Error('python failed: ' + pr.stderr);
JSON.parse(pr.stdout.toString()).forEach((v, k) => { py[k].theirs = v; });
for (const j of live.filter((x) => x.fl === 'js')) {
  const r = new RegExp(j.re, 'u'), len = (t) => Array.from(t).length; // JSON Schema counts code points
  const ok = (t) => r.test(t) && len(t) >= (j.minLength ?? 0) && (j.maxLength === undefined || len(t) <= j.maxLength);
  j.theirs = j.texts.flatMap((t) => [ok(t), ok(t)]); // both encodings of each text
}

let compared = 0, positive = 0;
for (const j of live) {
  let shown = 0;
  j.ours.forEach((ours, k) => {
    compared++;
    positive += j.theirs[k] ? 1 : 0;
    if (ours !== j.theirs[k]) {
      failures++;
      const t = j.fl === 'py' ? j.texts[k] : j.texts[k >> 1] + (k & 1 ? ' (all \\u escapes)' : '');
      if (shown++ < 3) console.error(`FAIL ${j.fl} /${j.re}/ on ${JSON.stringify(t)}: ours ${ours}, reference ${j.theirs[k]}`);
    }
  });
}

// errors, in both modes
const errs = runProbe(ERRORS.flatMap(([re]) => [{ re, mode: 'regex', texts: [], samples: 0 }, { re, mode: 'pattern', texts: [], samples: 0 }]));
ERRORS.forEach(([re, word], i) => {
  for (const a of [errs[2 * i], errs[2 * i + 1]])
    if (!a.error || !a.error.includes(word)) { console.error(`FAIL /${re}/: expected an error naming "${word}", got ${JSON.stringify(a)}`); failures++; }
});

console.log(`regex vs reference: ${live.length} regex x flavor, ${compared} verdicts compared (${positive} matches), ` +
            `${ERRORS.length * 2} refusals checked, ${failures} failures`);
if (positive < compared / 5) { console.error('FAIL too few matching texts: the check would be weak'); failures++; }
process.exit(failures ? 1 : 0);
