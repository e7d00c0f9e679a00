#!/usr/bin/env node
// The llama.cpp side of the GGUF benchmarks: loads a GGUF in llama.cpp (node-llama-cpp 3.21.1's
// prebuilt CPU library, as tests/llamacpp/run_llamacpp.mjs does) and measures what bench_engine
// measures for moeserve, on the same file in the same run:
//   load     seconds from loadModel to a usable context, and the process's peak RSS after it
//   prefill  one prompt of --prompt-len random ids, evaluated in one batch: tok/s
//   decode   --decode-tokens greedy tokens for each of B sequences at once (B from --batches;
//            llama.cpp batches the sequences' pending tokens into one decode): aggregate tok/s
// Prints one JSON object on stdout. Never part of the test suite.
// usage: node bench/llamacpp_bench.mjs --model FILE.gguf [--threads 2] [--prompt-len 512]
//            [--decode-tokens 64] [--batches 1,4,8,16] [--decode-prompt 32] [--no-mmap]
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function parseArgs(argv) {
  const a = { threads: 2, promptLen: 512, decode: 64, batches: [1, 4, 8, 16], decodePrompt: 32, mmap: true };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    if (k === "--model") a.model = v();
    else if (k === "--threads") a.threads = Number(v());
    else if (k === "--prompt-len") a.promptLen = Number(v());
    else if (k === "--decode-tokens") a.decode = Number(v());
    else if (k === "--batches") a.batches = v().split(",").map(Number);
    else if (k === "--decode-prompt") a.decodePrompt = Number(v());
    else if (k === "--no-mmap") a.mmap = false;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model) throw new Error("--model is required");
  return a;
}

// ids from the ordinary part of the vocabulary, fixed by the seed (a tiny LCG: no dependency)
function randomIds(n, seed) {
  const out = [];
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(1000 + (s % 100000));
  }
  return out;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const peakRssGB = () => process.resourceUsage().maxRSS / 1e6; // maxRSS is in KiB

async function prefill(model, a) {
  const ctx = await model.createContext({ contextSize: a.promptLen + 16, threads: a.threads,
                                          batchSize: a.promptLen });
  const seq = ctx.getSequence();
  const ids = randomIds(a.promptLen, 1);
  const t0 = now();
  await seq.controlledEvaluate(ids.map((id, i) => (i === ids.length - 1 ? [id, { generateNext: { token: true } }] : id)));
  const dt = now() - t0;
  await ctx.dispose();
  return { tokens: a.promptLen, seconds: dt, tok_s: a.promptLen / dt };
}

async function decodeOne(seq, prompt, n) {
  let out = await seq.controlledEvaluate(prompt.map((id, i) => (i === prompt.length - 1 ? [id, { generateNext: { token: true } }] : id)));
  let next = out[prompt.length - 1]?.next?.token;
  const t0 = now();
  for (let k = 0; k < n && next != null; k++) {
    out = await seq.controlledEvaluate([[next, { generateNext: { token: true } }]]);
    next = out[0]?.next?.token;
  }
  return t0;
}

async function decode(model, a, B) {
  const per = a.decodePrompt + a.decode + 8;
  const ctx = await model.createContext({ contextSize: per * B, sequences: B, threads: a.threads,
                                          batchSize: Math.max(a.decodePrompt * B, 32) });
  const seqs = Array.from({ length: B }, () => ctx.getSequence());
  const t0 = now();
  const starts = await Promise.all(seqs.map((s, i) => decodeOne(s, randomIds(a.decodePrompt, 100 + i), a.decode)));
  const t1 = now();
  await ctx.dispose();
  // the prompts run first in one batch; time the decode from the latest prompt's end
  const start = Math.max(...starts);
  return { sequences: B, tokens: B * a.decode, seconds: t1 - start, tok_s: (B * a.decode) / (t1 - start),
           including_prompts_s: t1 - t0 };
}

async function main() {
  const a = parseArgs(process.argv);
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
                                 progressLogs: false, logLevel: LlamaLogLevel.error });
  const t0 = now();
  const model = await llama.loadModel({ modelPath: a.model, gpuLayers: 0, useMmap: a.mmap });
  const load = { seconds: now() - t0, peak_rss_gb: peakRssGB(), mmap: a.mmap };
  const result = { llama_cpp: "node-llama-cpp 3.21.1 prebuilt CPU", model: a.model, threads: a.threads, load };
  result.prefill = await prefill(model, a);
  result.decode = [];
  for (const B of a.batches) result.decode.push(await decode(model, a, B));
  result.peak_rss_gb = peakRssGB();
  process.stdout.write(JSON.stringify(result) + "\n");
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  process.stderr.write(`llamacpp_bench: ${String(e?.message ?? e).split("\n")[0]}\n`);
  process.exit(1);
});
