// Served benchmark: streaming chat requests through moeserve's HTTP API, as issue 6 defines it:
// distinct prompts of ~176 tokens, 128 output tokens (temperature 0, ignore_eos), from 1, 4, 8
// and 16 concurrent clients. Reports aggregate output tok/s, time to first token (median, p99)
// and the server's peak RSS (VmHWM from /proc). Starts and stops its own server.
//
// With --bandwidth GBPS (the machine's read bandwidth, as bench_engine measures it), each row
// also gives its bandwidth bound: the output tokens of the row over the time the weight bytes
// the server's forwards streamed meanwhile (prefill included; /metrics weight_bytes_read_total)
// take at that bandwidth, and the fraction of it reached.
//
// usage: node bench/bench_served.mjs MOESERVE MODEL_DIR [--clients 1,4,8,16] [--requests-per-client 2]
//        [--output-tokens 128] [--quantize q8_0] [--bandwidth GBPS] [-- extra serve flags...]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const args = process.argv.slice(2);
const [moeserve, model] = args;
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const clients = opt("--clients", "1,4,8,16").split(",").map(Number);
const perClient = Number(opt("--requests-per-client", "2"));
const outTokens = Number(opt("--output-tokens", "128"));
const bandwidth = Number(opt("--bandwidth", "0"));
const extra = args.includes("--") ? args.slice(args.indexOf("--") + 1) : [];

const port = await new Promise((r) => { const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
const env = { ...process.env };
if (opt("--quantize")) env.MOESERVE_QUANTIZE = opt("--quantize");
const maxSeqs = Math.max(...clients);
const server = spawn(moeserve, ["serve", "--model", model, "--port", String(port), "--max-num-seqs", String(maxSeqs),
  "--max-model-len", "1024", "--served-model-name", "bench", ...extra], { stdio: ["ignore", "ignore", "inherit"], env });
const base = `http://127.0.0.1:${port}`;
for (let i = 0; i < 6000; i++) {
  try { if ((await fetch(`${base}/health`)).ok) break; } catch { /* starting */ }
  await new Promise((r) => setTimeout(r, 100));
}

// ~176-token prompts, all different (a topic word and a number make each one distinct)
const WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches near the old river bank".split(" ");
let seq = 0;
function prompt() {
  const n = seq++;
  const words = [];
  for (let i = 0; i < 150; i++) words.push(WORDS[(i * 7 + n * 13) % WORDS.length]);
  return `Request ${n}: summarise this text in detail. ${words.join(" ")}`;
}

async function one() {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "bench", messages: [{ role: "user", content: prompt() }], stream: true,
      max_tokens: outTokens, temperature: 0, ignore_eos: true, stream_options: { include_usage: true },
      chat_template_kwargs: { enable_thinking: false } }),
  });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let ttft = null, buf = "", usage = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k); buf = buf.slice(k + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const c = JSON.parse(ev.slice(6));
      if (c.usage) usage = c.usage;
      if (ttft === null && c.choices?.[0]?.delta && (c.choices[0].delta.content || c.choices[0].delta.reasoning_content)) ttft = performance.now() - t0;
    }
  }
  return { ttft: ttft / 1000, tokens: usage?.completion_tokens ?? 0, prompt: usage?.prompt_tokens ?? 0 };
}

function pct(xs, p) { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; }
function rssGB() {
  const m = readFileSync(`/proc/${server.pid}/status`, "utf8").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 / 1e9 : NaN;
}

async function metric(name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.match(new RegExp(`^moeserve:${name}\\{[^}]*\\} (\\S+)$`, "m"));
  return m ? Number(m[1]) : NaN;
}

await one(); // warm-up
console.log("| clients | requests | prompt tokens (mean) | output tok/s (aggregate) | TTFT median s | TTFT p99 s | GB weights read | bandwidth bound tok/s | of bound |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const c of clients) {
  const bytes0 = await metric("weight_bytes_read_total");
  const t0 = performance.now();
  const results = (await Promise.all(Array.from({ length: c }, async () => {
    const out = [];
    for (let i = 0; i < perClient; i++) out.push(await one());
    return out;
  }))).flat();
  const dt = (performance.now() - t0) / 1000;
  const toks = results.reduce((a, r) => a + r.tokens, 0);
  const meanPrompt = results.reduce((a, r) => a + r.prompt, 0) / results.length;
  const ttfts = results.map((r) => r.ttft);
  const gb = ((await metric("weight_bytes_read_total")) - bytes0) / 1e9;
  const bound = bandwidth > 0 && gb > 0 ? toks / (gb / bandwidth) : NaN;
  const boundCols = Number.isNaN(bound) ? "n/a | n/a" : `${bound.toFixed(1)} | ${(100 * toks / dt / bound).toFixed(0)}%`;
  console.log(`| ${c} | ${results.length} | ${meanPrompt.toFixed(0)} | ${(toks / dt).toFixed(1)} | ${pct(ttfts, 0.5).toFixed(2)} | ${pct(ttfts, 0.99).toFixed(2)} | ${gb.toFixed(1)} | ${boundCols} |`);
}
console.log(`\nserver peak RSS ${rssGB().toFixed(2)} GB`);
server.kill("SIGTERM");
