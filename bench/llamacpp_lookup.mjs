#!/usr/bin/env node
// The llama.cpp side of the prompt-lookup (n-gram) speculative decoding benchmark: loads a GGUF in
// llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU library, as tests/llamacpp/run_llamacpp.mjs does)
// and, for each prompt of --prompts, runs it twice on a fresh context (nothing cached across runs):
//   plain   a sequence without a token predictor: one decode per generated token
//   lookup  a sequence with node-llama-cpp's InputLookupTokenPredictor at its defaults:
//           predictionLength {min: 1, max: 3}, patternLength {min: 1, max: 0}, where the d.ts
//           says max 0 means "no limit" but the constructor clamps max up to min, so the pattern
//           in effect is the last token alone (the JSON's "predictor" shows the values the class
//           reports). An occurrence in the prompt of the last token (prompt + output) proposes
//           the (up to 3) prompt tokens after it, verified in the same decode as the pending
//           token: llama.cpp-style prompt lookup decoding. It looks only in the prompt (given to
//           it by updateInputTokens, as LlamaCompletion does), never in the generated text.
// Each run evaluates the prompt, then generates exactly max_tokens ids greedily (temperature 0,
// end-of-generation tokens yielded and fed back like any other, so the count never falls short).
// Timing: prompt_seconds runs from the evaluate call to the first id, which comes from the prompt's
// logits (with lookup, that batch also carries the first drafts); decode_seconds from the first id
// to the max_tokens-th, so decode_tokens = tokens - 1 and decode_tok_s = decode_tokens / that.
// Prints one JSON object on stdout; the summary's tok/s are total decode_tokens / total
// decode_seconds per mode, outputs_equal compares every id of each prompt's two runs, and
// validated/refuted/used are the sequence's tokenPredictions counters summed over the lookup runs
// (drafted = validated + refuted; accepted = validated). Never part of the test suite.
// usage: node bench/llamacpp_lookup.mjs --model FILE.gguf --prompts FILE.json [--threads 2] [--reps 1]
//   FILE.json: [{"prompt_ids": [int, ...], "max_tokens": N}, ...]
//   --reps R   run every prompt R times per mode (each a fresh context); all runs are listed
import { existsSync, readFileSync } from "node:fs";
import { getLlama, InputLookupTokenPredictor, LlamaLogLevel } from "node-llama-cpp";

function parseArgs(argv) {
  const a = { threads: 2, reps: 1 };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], v = () => {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      return argv[++i];
    };
    if (k === "--model") a.model = v();
    else if (k === "--prompts") a.prompts = v();
    else if (k === "--threads") a.threads = Number(v());
    else if (k === "--reps") a.reps = Number(v());
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model || !a.prompts) throw new Error("--model and --prompts are required");
  if (!Number.isInteger(a.threads) || a.threads < 1) throw new Error("--threads must be a positive integer");
  if (!Number.isInteger(a.reps) || a.reps < 1) throw new Error("--reps must be a positive integer");
  if (!existsSync(a.model)) throw new Error(`no such model file: ${a.model}`);
  return a;
}

function readPrompts(file) {
  let text, data;
  try { text = readFileSync(file, "utf8"); }
  catch (e) { throw new Error(`cannot read ${file}: ${e.code ?? e.message}`); }
  try { data = JSON.parse(text); }
  catch (e) { throw new Error(`${file}: bad JSON: ${e.message}`); }
  if (!Array.isArray(data) || data.length === 0) throw new Error(`${file}: expected a non-empty JSON array`);
  return data.map((p, i) => {
    const ids = p?.prompt_ids, n = p?.max_tokens;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((x) => Number.isInteger(x) && x >= 0))
      throw new Error(`${file}: prompt ${i}: prompt_ids must be a non-empty array of non-negative integers`);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${file}: prompt ${i}: max_tokens must be a positive integer`);
    return { ids, maxTokens: n };
  });
}

// the defaults as the class reports them (not copied from its documentation)
function predictorOptions() {
  const p = new InputLookupTokenPredictor();
  const o = { name: "InputLookupTokenPredictor", patternMinLength: p.patternMinLength,
              patternMaxLength: p.patternMaxLength, predictionMinLength: p.predictionMinLength,
              predictionMaxLength: p.predictionMaxLength };
  p.dispose();
  return o;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

// one run on its own context, disposed after: no KV cache or predictor state survives it
async function run(model, a, p, mode, sizes) {
  const ctx = await model.createContext({ contextSize: sizes.context, batchSize: sizes.batch,
                                          sequences: 1, threads: a.threads });
  try {
    const predictor = mode === "lookup" ? new InputLookupTokenPredictor() : undefined;
    const seq = ctx.getSequence(predictor ? { tokenPredictor: predictor } : undefined);
    // evaluate() resets the predictor with the state tokens, but the text it looks in comes from
    // updateInputTokens (LlamaCompletion/LlamaChat call it); without it, it never predicts
    predictor?.updateInputTokens(p.ids);
    const ids = [];
    const t0 = now();
    let t1 = t0, t2 = t0;
    for await (const token of seq.evaluate(p.ids, { temperature: 0, seed: 0, yieldEogToken: true })) {
      ids.push(token);
      if (ids.length === 1) t1 = now();
      if (ids.length >= p.maxTokens) { t2 = now(); break; }
    }
    if (ids.length < p.maxTokens) t2 = now(); // only if the sequence ended (context full)
    const decodeTokens = Math.max(0, ids.length - 1), dt = t2 - t1;
    const r = { mode, prompt_tokens: p.ids.length, tokens: ids.length, prompt_seconds: t1 - t0,
                decode_tokens: decodeTokens, decode_seconds: dt,
                decode_tok_s: dt > 0 ? decodeTokens / dt : null };
    if (predictor) r.predictions = { ...seq.tokenPredictions };
    r.all_ids = ids;
    return r;
  } finally {
    await ctx.dispose();
  }
}

async function main() {
  const a = parseArgs(process.argv);
  const prompts = readPrompts(a.prompts);
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
                                 progressLogs: false, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: a.model, gpuLayers: 0 });
  const vocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
  if (vocab) prompts.forEach((p, i) => {
    if (p.ids.some((x) => x >= vocab)) throw new Error(`prompt ${i}: an id is outside the vocabulary (${vocab})`);
  });
  const maxPrompt = Math.max(...prompts.map((p) => p.ids.length));
  const maxTotal = Math.max(...prompts.map((p) => p.ids.length + p.maxTokens));
  // room for every id plus the drafts (at most 3) past the last; the prompt (+ drafts) in one batch
  const sizes = { context: maxTotal + 16, batch: Math.max(maxPrompt + 8, 32) };

  const runs = [];
  const tot = { plain: { n: 0, s: 0 }, lookup: { n: 0, s: 0 } };
  const pred = { used: 0, unused: 0, validated: 0, refuted: 0 };
  let outputsEqual = true;
  for (let i = 0; i < prompts.length; i++) {
    for (let rep = 0; rep < a.reps; rep++) {
      const byMode = {};
      for (const mode of ["plain", "lookup"]) {
        const r = await run(model, a, prompts[i], mode, sizes);
        byMode[mode] = r.all_ids;
        tot[mode].n += r.decode_tokens;
        tot[mode].s += r.decode_seconds;
        if (r.predictions) for (const k of Object.keys(pred)) pred[k] += r.predictions[k];
        const { all_ids, ...rest } = r;
        runs.push({ prompt: i, rep, ...rest, ids: all_ids.slice(0, 64) });
      }
      const x = byMode.plain, y = byMode.lookup;
      if (x.length !== y.length || x.some((t, k) => t !== y[k])) outputsEqual = false;
    }
  }
  const tokS = (m) => (tot[m].s > 0 ? tot[m].n / tot[m].s : null);
  const plainTokS = tokS("plain"), lookupTokS = tokS("lookup");
  const result = {
    llama_cpp: "node-llama-cpp 3.21.1 prebuilt CPU", model: a.model, threads: a.threads, reps: a.reps,
    predictor: predictorOptions(),
    runs,
    summary: {
      plain_tok_s: plainTokS, lookup_tok_s: lookupTokS,
      speedup: plainTokS && lookupTokS ? lookupTokS / plainTokS : null,
      outputs_equal: outputsEqual,
      drafted: pred.validated + pred.refuted, accepted: pred.validated,
      validated: pred.validated, refuted: pred.refuted, used: pred.used, unused: pred.unused,
    },
  };
  process.stdout.write(JSON.stringify(result) + "\n");
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  process.stderr.write(`llamacpp_lookup: ${String(e?.message ?? e).split("\n")[0]}\n`);
  process.exit(1);
});
