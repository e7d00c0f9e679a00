#!/usr/bin/env node
// Runs a GGUF in llama.cpp (the prebuilt CPU binaries of node-llama-cpp@3.21.1, never built or
// downloaded) and prints one JSON object on stdout:
//   {"meta": {...load metadata...}, "greedy": [ids], "probs": {"<pos>": [[id, p], ...]}}
// usage: node run_llamacpp.mjs --model FILE.gguf --prompt-ids 1,2,3 [--greedy N]
//            [--probs-top K] [--all-positions] [--ctx 512] [--threads 1]
//   --greedy N      N greedily generated ids after the prompt (temperature 0)
//   --probs-top K   next-token probabilities after the last prompt position (every position with
//                   --all-positions): the K most likely tokens, as [id, probability] pairs, from
//                   llama.cpp's softmax of its logits (K=0: the full vocabulary)
// Exit 1 with one line on stderr when loading or evaluating fails.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function parseArgs(argv) {
  const a = { greedy: 0, probsTop: -1, allPositions: false, ctx: 512, threads: 1 };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    if (k === "--model") a.model = v();
    else if (k === "--prompt-ids") a.ids = v().split(",").filter(Boolean).map(Number);
    else if (k === "--greedy") a.greedy = Number(v());
    else if (k === "--probs-top") a.probsTop = Number(v());
    else if (k === "--all-positions") a.allPositions = true;
    else if (k === "--ctx") a.ctx = Number(v());
    else if (k === "--threads") a.threads = Number(v());
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model || !a.ids || !a.ids.length) throw new Error("--model and --prompt-ids are required");
  return a;
}

function topProbs(map, k) {
  const out = [];
  for (const [id, p] of map) {          // the map is sorted by probability, highest first
    if (k > 0 && out.length >= k) break;
    out.push([id, p]);
  }
  return out;
}

async function main() {
  const a = parseArgs(process.argv);
  // gpu:false + build:"never" + skipDownload: use the shipped CPU binary or fail, never compile
  const llama = await getLlama({ gpu: false, build: "never", skipDownload: true,
                                 usePrebuiltBinaries: true, progressLogs: false,
                                 logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: a.model, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: a.ctx, threads: a.threads,
                                              batchSize: Math.max(a.ids.length, 32) });
  const seq = context.getSequence();
  const result = {
    meta: { trainContextSize: model.trainContextSize,
            fileSize: model.size, fileInfo: { architecture: model.fileInfo.metadata?.general?.architecture,
                                             name: model.fileInfo.metadata?.general?.name,
                                             tensorCount: model.fileInfo.totalTensorCount ?? null },
            eos: model.tokens.eos, bos: model.tokens.bos, gpu: llama.gpu },
    greedy: [], probs: {} };

  const want = a.probsTop >= 0;
  const input = a.ids.map((id, i) => {
    const last = i === a.ids.length - 1;
    if (!(last || (want && a.allPositions))) return id;
    return [id, { generateNext: { token: last, probabilities: want } }];
  });
  const out = await seq.controlledEvaluate(input);
  for (let i = 0; i < a.ids.length; i++) {
    const o = out[i];
    if (o?.next?.probabilities) result.probs[i] = topProbs(o.next.probabilities, a.probsTop);
  }
  let next = out[a.ids.length - 1]?.next?.token;
  // greedy: feed each argmax back in, one token at a time
  for (let n = 0; n < a.greedy; n++) {
    if (next == null) break;
    result.greedy.push(next);
    if (n + 1 === a.greedy) break;
    const o = await seq.controlledEvaluate([[next, { generateNext: { token: true } }]]);
    next = o[0]?.next?.token;
  }
  process.stdout.write(JSON.stringify(result) + "\n");
  await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  process.stderr.write(`run_llamacpp: ${String(e?.message ?? e).split("\n")[0]}\n`);
  process.exit(1);
});
