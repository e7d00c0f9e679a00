// Soak benchmark (never part of the test suite): a long run of mixed traffic against one server,
// looking for leaks (RSS, threads, file descriptors, KV blocks) and for any unexpected failure.
//
// Starts `moeserve serve` on the given model (the tiny test model is the intended one), runs
// --streams concurrent client loops through the official OpenAI SDK, each sending a random mix of
// chat (streamed and not, thinking on and off) and completions requests with varying prompts,
// max_tokens, n > 1 and stop strings; about 17% of requests are cancelled by the client after a
// random delay (streams mid-stream). Any other failure, or a request not ended after
// --hang-seconds, is an error. The server's VmRSS (/proc/PID/status) is sampled every 10 s; the
// baseline is the first sample after the warm-up. At the end the loops stop, /metrics must show no
// running or waiting request and an empty KV pool, the server's threads and fds must be back to an
// idle server's, and it must exit 0 on SIGTERM. Prints a markdown summary; exits 1 if anything
// unexpected happened or RSS grew >= 5 %. The server's log (one access line per request, with the
// X-Request-Id the script sets, soak-SEED-N) goes to --log.
//
// usage: node bench/soak.mjs MOESERVE MODEL_DIR [--minutes 30] [--streams 8] [--seed 1]
//        [--warmup-minutes 1.5] [--threads 2] [--hang-seconds 60] [--log /tmp/soak-PID.log]
//        [-- extra serve flags...]
import { spawn } from 'node:child_process';
import { openSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { createServer } from 'node:net';
import OpenAI from 'openai';

const argv = process.argv.slice(2);
const extra = argv.includes('--') ? argv.slice(argv.indexOf('--') + 1) : [];
const args = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
const [BIN, MODEL] = args;
if (!BIN || !MODEL) {
  console.error('usage: node bench/soak.mjs MOESERVE MODEL_DIR [--minutes 30] [--streams 8] [--seed 1] [--warmup-minutes 1.5] [--threads 2] [-- serve flags]');
  process.exit(2);
}
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const MINUTES = Number(opt('--minutes', '30'));
const STREAMS = Number(opt('--streams', '8'));
const SEED = Number(opt('--seed', '1'));
// the warm-up lets allocator arenas, thread stacks and the prefix cache reach their steady size
const WARMUP_S = Number(opt('--warmup-minutes', String(Math.min(1.5, MINUTES / 4)))) * 60;
const THREADS = opt('--threads', '2');
const SAMPLE_S = 10;
const CANCEL_P = 0.22; // some finish before their cancel comes: about 17 % end cancelled
const HANG_MS = Number(opt('--hang-seconds', '60')) * 1000;

// ---- seeded randomness (mulberry32), one generator per loop so runs repeat per seed --------------
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), pick: (xs) => xs[Math.floor(next() * xs.length)], p: (x) => next() < x };
}

const WORDS = ('the a river mountain quickly seven wizards judge boxing matches near old bank ' +
  'summer winter light shadow engine token cache block stream thread memory prefix '
  + 'why how what when explain describe list compare story poem number 42 3.14 日本 café ünïcode 🙂').split(' ');
const STOPS = ['the', 'a', '.', '\n', 'er', 'in', '!'];

function words(r, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(r.pick(WORDS));
  return out.join(' ');
}

// ---- the server ------------------------------------------------------------------------------
// a free port picked here, so that nothing has to be read back from the log
const port = await new Promise((resolve) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); }); });
// the log goes to a file, where a request that misbehaves can be found by its X-Request-Id
const LOG = opt('--log', `/tmp/soak-${process.pid}.log`);
const logFd = openSync(LOG, 'w');
const child = spawn(BIN, ['serve', '--model', MODEL, '--port', String(port), '--threads', THREADS, '--served-model-name', 'soak',
  ...extra], { stdio: ['ignore', 'ignore', logFd], env: { OPENBLAS_CORETYPE: 'Haswell', ...process.env } });
const readLog = () => readFileSync(LOG, 'utf8');
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
const base = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  try { if ((await fetch(`${base}/health`)).ok) break; } catch { /* starting */ }
  if (i > 600 || child.exitCode !== null) throw new Error('server not healthy after 60 s:\n' + readLog().slice(-3000));
  await new Promise((r) => setTimeout(r, 100));
}
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 });

function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [])[1] || 0);
  let fds = 0;
  try { fds = readdirSync(`/proc/${pid}/fd`).length; } catch { /* gone */ }
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), threads: kb('Threads'), fds };
}

async function metrics() {
  const body = await (await fetch(`${base}/metrics`)).text();
  const out = {};
  for (const line of body.split('\n')) {
    const m = line.match(/^moeserve:([a-z_]+)(\{[^}]*\})? (.+)$/);
    if (!m) continue;
    const labels = (m[2] || '').replace(/,?model_name="[^"]*"/, '').replace('{}', '');
    out[m[1] + labels] = Number(m[3]);
  }
  return out;
}

// ---- one request -----------------------------------------------------------------------------
const stats = { completed: 0, cancelled: 0, errors: 0, tokens: 0, byKind: {}, errorSamples: [] };
function kindStat(k) { return (stats.byKind[k] ||= { completed: 0, cancelled: 0, errors: 0 }); }

function fail(kind, what) {
  stats.errors++;
  kindStat(kind).errors++;
  if (stats.errorSamples.length < 20) stats.errorSamples.push(`${kind}: ${what}`);
}

// Checks a finished response: every choice present once, with a legal finish_reason.
function checkChoices(kind, choices, nWant, usage) {
  const idx = new Set(choices.map((c) => c.index));
  if (idx.size !== nWant) return fail(kind, `expected ${nWant} choices, got indexes ${[...idx]}`), false;
  for (const c of choices)
    if (!['stop', 'length'].includes(c.finish_reason)) return fail(kind, `finish_reason ${c.finish_reason}`), false;
  if (!usage || !(usage.completion_tokens >= 0 && usage.prompt_tokens > 0)) return fail(kind, `usage ${JSON.stringify(usage)}`), false;
  stats.tokens += usage.completion_tokens;
  return true;
}

let reqSeq = 0;

async function oneRequest(r) {
  const chat = r.p(0.6), stream = r.p(0.5), thinking = chat && r.p(0.5);
  const n = r.p(0.15) ? r.int(2, 3) : 1;
  const stop = r.p(0.2) ? [r.pick(STOPS), r.pick(STOPS)] : undefined;
  const maxTokens = r.int(1, 160);
  const text = words(r, r.int(2, 220));
  const cancel = r.p(CANCEL_P);
  const kind = `${chat ? 'chat' : 'completion'} ${stream ? 'stream' : 'plain'}${thinking ? ' thinking' : ''}`;
  const body = {
    model: 'soak', max_tokens: maxTokens, n, stop, temperature: r.pick([0, 0.7, 1.0]),
    ...(r.p(0.5) ? { seed: r.int(0, 1e6) } : {}),
    ...(chat ? { messages: [{ role: 'user', content: text }], chat_template_kwargs: { enable_thinking: thinking } }
      : { prompt: text }),
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  };
  const ac = new AbortController();
  const id = ++reqSeq;
  const me = { id: `soak-${SEED}-${id}`, phase: 'sent', body: JSON.stringify(body).slice(0, 300) };
  let timer;
  // a request of the tiny model takes well under a second; one that has not ended after HANG_MS
  // is an error (with its id, to find it in the server log), and is abandoned
  let giveUp;
  const hung = new Promise((resolve) => {
    me.hangTimer = setTimeout(() => {
      me.hung = true;
      fail(kind, `no end after ${HANG_MS / 1000} s (phase ${me.phase}, cancel ${cancel}, aborted ${ac.signal.aborted}, X-Request-Id ${me.id}): ${me.body}`);
      ac.abort();
      giveUp = setTimeout(resolve, 10000);
    }, HANG_MS);
  });
  try {
    await Promise.race([run(), hung]);
  } finally {
    clearTimeout(me.hangTimer);
    clearTimeout(giveUp);
    clearTimeout(timer);
  }
  async function run() {
    // Cancelling: a plain request aborts its fetch after a random delay; a stream breaks out of
    // its loop (the SDK then aborts the fetch and the socket closes) after a random number of
    // chunks or at the first chunk past a random delay. A stream is not cancelled by aborting
    // the signal while its loop still reads: with Node 20's fetch a read after the abort can
    // hang forever on the client side (48 of 6,184 such requests in a reproduction, the server having
    // sent the whole response), which would be the client's bug, not the server's.
    const afterChunks = stream ? r.int(1, Math.max(1, Math.floor(maxTokens / 2))) : 0;
    const cancelAt = Date.now() + r.int(5, 400);
    if (cancel && !stream) timer = setTimeout(() => ac.abort(), cancelAt - Date.now());
    try {
      const api = chat ? client.chat.completions : client.completions;
      const opts = { signal: ac.signal, headers: { 'X-Request-Id': me.id } };
      if (!stream) {
        const res = await api.create(body, opts);
        clearTimeout(timer); /* finished before the cancel: counted as completed */
        if (me.hung) return;
        if (checkChoices(kind, res.choices, n, res.usage)) { stats.completed++; kindStat(kind).completed++; }
        return;
      }
      const s = await api.create(body, opts);
      me.phase = 'streaming';
      const finish = new Map();
      let usage = null, chunks = 0, broke = false;
      for await (const c of s) {
        chunks++;
        if (c.usage) usage = c.usage;
        for (const ch of c.choices || []) if (ch.finish_reason) finish.set(ch.index, { index: ch.index, finish_reason: ch.finish_reason });
        if (cancel && (chunks >= afterChunks || Date.now() >= cancelAt)) { broke = true; break; }
      }
      if (me.hung) return;
      if (broke) { stats.cancelled++; kindStat(kind).cancelled++; return; }
      if (checkChoices(kind, [...finish.values()], n, usage)) { stats.completed++; kindStat(kind).completed++; }
    } catch (e) {
      if (me.hung) return;
      const aborted = ac.signal.aborted && (e.name === 'AbortError' || e instanceof OpenAI.APIUserAbortError || /abort/i.test(e.message));
      if (aborted) { stats.cancelled++; kindStat(kind).cancelled++; } else fail(kind, `${e.status || ''} ${e.name}: ${e.message}`.slice(0, 300));
    }
  }
}

// ---- the run ---------------------------------------------------------------------------------
const t0 = Date.now();
const endAt = t0 + MINUTES * 60000;
const samples = []; // { t, rss, threads, fds, running, waiting, kv }
const load0 = os.loadavg();

async function sample() {
  const st = procStatus(child.pid);
  let m = {};
  try { m = await metrics(); } catch { /* counted by the end checks */ }
  samples.push({ t: (Date.now() - t0) / 1000, ...st, running: m.num_requests_running, waiting: m.num_requests_waiting, kv: m.kv_cache_usage_perc, load: os.loadavg()[0] });
  const s = samples.at(-1);
  console.error(`[${s.t.toFixed(0).padStart(5)} s] rss ${(s.rss / 1024).toFixed(1)} MiB threads ${s.threads} fds ${s.fds} ` +
    `running ${s.running} waiting ${s.waiting} kv ${(100 * (s.kv || 0)).toFixed(0)}% load ${s.load.toFixed(2)} | ` +
    `done ${stats.completed} cancelled ${stats.cancelled} errors ${stats.errors}`);
}

await sample();
const sampler = setInterval(() => { sample().catch(() => {}); }, SAMPLE_S * 1000);
const loops = Array.from({ length: STREAMS }, async (_, i) => {
  const r = rng(SEED * 1000003 + i);
  while (Date.now() < endAt) await oneRequest(r);
});
let warm = null; // the first sample at or after the warm-up
const warmWatch = setInterval(() => { if (!warm) warm = samples.find((s) => s.t >= WARMUP_S) || null; }, 1000);
await Promise.all(loops);
clearInterval(sampler);
clearInterval(warmWatch);
await sample();
if (!warm) warm = samples.find((s) => s.t >= WARMUP_S) || samples[0];
const endSample = samples.at(-1);

// the server must settle to empty: nothing running or waiting, no KV block held
let settled = null;
for (let i = 0; i < 100 && !settled; i++) {
  const m = await metrics();
  if (m.num_requests_running === 0 && m.num_requests_waiting === 0 && m.kv_cache_usage_perc === 0) settled = m;
  else await new Promise((r) => setTimeout(r, 100));
}
const finalM = settled || await metrics();
// the SDK's keep-alive connections close after ~4 s idle; then each connection thread is gone
// too, so threads and fds must be back to what an idle server holds
await new Promise((r) => setTimeout(r, 6000));
const finalProc = procStatus(child.pid);
child.kill('SIGTERM');
const ex = await exited;
const load1 = os.loadavg();

// ---- report ----------------------------------------------------------------------------------
const after = samples.filter((s) => s.t >= warm.t);
const maxRss = Math.max(...after.map((s) => s.rss));
const growth = (100 * (endSample.rss - warm.rss)) / warm.rss;
const wallMin = (Date.now() - t0) / 60000;
const problems = [];
if (stats.errors) problems.push(`${stats.errors} unexpected errors`);
if (growth >= 5) problems.push(`RSS grew ${growth.toFixed(1)} %`);
if (!settled) problems.push(`server did not settle: running ${finalM.num_requests_running} waiting ${finalM.num_requests_waiting} kv ${finalM.kv_cache_usage_perc}`);
if (finalProc.threads > samples[0].threads || finalProc.fds > samples[0].fds) problems.push(`threads/fds ${samples[0].threads}/${samples[0].fds} -> ${finalProc.threads}/${finalProc.fds}`);
if (ex.code !== 0) problems.push(`server exit ${JSON.stringify(ex)}`);
const log = readLog();
if (/AddressSanitizer|LeakSanitizer|runtime error:/.test(log)) problems.push('sanitizer report in the server log');
const mib = (kb) => (kb / 1024).toFixed(1) + ' MiB';
const fin = (k) => finalM[`request_success_total{finished_reason="${k}"}`];

const lines = [
  `| measure | value |`, `|---|---|`,
  `| duration | ${wallMin.toFixed(1)} min (warm-up ${(WARMUP_S / 60).toFixed(1)} min), ${STREAMS} client loops, seed ${SEED} |`,
  `| requests completed | ${stats.completed} |`,
  `| requests cancelled by the client | ${stats.cancelled} (${((100 * stats.cancelled) / Math.max(1, stats.completed + stats.cancelled + stats.errors)).toFixed(1)} %) |`,
  `| unexpected errors | ${stats.errors} |`,
  `| completion tokens received (finished requests) | ${stats.tokens} |`,
  `| server: generation tokens / prompt tokens / preemptions | ${finalM.generation_tokens_total} / ${finalM.prompt_tokens_total} / ${finalM.num_preemptions_total} |`,
  `| server: sequences finished stop / length / abort / error | ${fin('stop')} / ${fin('length')} / ${fin('abort')} / ${fin('error')} |`,
  `| server: client disconnects counted | ${finalM.client_disconnect_aborts_total} |`,
  `| RSS at start (after warm-up, ${warm.t.toFixed(0)} s) | ${mib(warm.rss)} |`,
  `| RSS at end | ${mib(endSample.rss)} |`,
  `| RSS max after warm-up (VmHWM overall) | ${mib(maxRss)} (${mib(finalProc.hwm)}) |`,
  `| RSS growth, start to end | ${growth.toFixed(2)} % |`,
  `| server threads / open fds: at the first sample (idle) → after the run (idle) | ${samples[0].threads} / ${samples[0].fds} → ${finalProc.threads} / ${finalProc.fds} |`,
  `| end: running / waiting / KV usage | ${finalM.num_requests_running} / ${finalM.num_requests_waiting} / ${finalM.kv_cache_usage_perc} |`,
  `| server exit on SIGTERM | ${ex.code === 0 ? '0' : JSON.stringify(ex)} |`,
  `| load average (1 min) at start → end; cores | ${load0[0].toFixed(2)} → ${load1[0].toFixed(2)}; ${os.cpus().length} |`,
  `| verdict | ${problems.length ? 'FAIL: ' + problems.join('; ') : 'PASS'} |`,
];
const kinds = Object.entries(stats.byKind).sort().map(([k, v]) => `| ${k} | ${v.completed} | ${v.cancelled} | ${v.errors} |`);
console.log('\n## Soak: ' + new Date().toISOString() + '\n');
console.log(lines.join('\n'));
console.log('\n| request kind | completed | cancelled | errors |\n|---|---|---|---|\n' + kinds.join('\n'));
console.log('\nRSS samples (every ' + SAMPLE_S + ' s, MiB): ' + samples.map((s) => (s.rss / 1024).toFixed(1)).join(' '));
if (stats.errorSamples.length) console.log('\nerrors:\n' + stats.errorSamples.map((e) => '- ' + e).join('\n'));
if (problems.length) console.log('\nserver log tail:\n' + log.slice(-3000));
process.exit(problems.length ? 1 : 0);
