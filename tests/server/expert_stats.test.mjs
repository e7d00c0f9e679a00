// Expert-load metrics (docs/API.md, /metrics): moeserve:moe_expert_selections_total per (layer,
// expert) and the moeserve:moe_distinct_experts_per_layer_step histogram, checked against what
// the tiny model's config.json and the responses' usage imply, not against the implementation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, postJSON, metrics, waitFor, haveFile, TINY, MODELS } from './helpers.mjs';

const SEL = 'moeserve:moe_expert_selections_total';
const DIST = 'moeserve:moe_distinct_experts_per_layer_step';

// Hugging Face's Qwen3MoE rule for which layers are sparse.
function sparseLayers(cfg) {
  const only = cfg.mlp_only_layers || [];
  const step = cfg.decoder_sparse_step || 1;
  const out = [];
  for (let l = 0; l < cfg.num_hidden_layers; l++)
    if (!only.includes(l) && cfg.num_experts > 0 && (l + 1) % step === 0) out.push(l);
  return out;
}

// { "L,E": count } from the selection series; asserts the labels are in range.
function selections(mx, cfg) {
  const out = {};
  for (const [k, v] of Object.entries(mx)) {
    if (!k.startsWith(SEL + '{')) continue;
    const m = k.match(/layer="(\d+)",expert="(\d+)"/);
    assert.ok(m, 'labels of ' + k);
    const l = Number(m[1]), e = Number(m[2]);
    assert.ok(l >= 0 && l < cfg.num_hidden_layers, 'layer label in range: ' + k);
    assert.ok(e >= 0 && e < cfg.num_experts, 'expert label in range: ' + k);
    out[`${l},${e}`] = v;
  }
  return out;
}

// Sends three completions one at a time, each prompt short enough to prefill in one step (so a
// request's steps are its prefill, which samples the first token, and one decode per further
// token), and returns { forwarded, forwards } as the usage implies them.
async function sendRequests(base) {
  let forwarded = 0, forwards = 0;
  for (const [i, [promptLen, maxTokens]] of [[7, 5], [14, 9], [21, 1]].entries()) {
    const prompt = Array.from({ length: promptLen }, (_, j) => 100 + 31 * i + j);
    const r = await postJSON(base, '/v1/completions', { prompt, max_tokens: maxTokens, ignore_eos: true, temperature: 0 });
    assert.equal(r.status, 200, r.body);
    const u = r.json.usage;
    assert.equal(u.completion_tokens, maxTokens);
    // the last sampled token is returned but never forwarded
    forwarded += u.prompt_tokens + u.completion_tokens - 1;
    forwards += u.completion_tokens;
  }
  return { forwarded, forwards };
}

// The histogram after the run against `count` new observations (before -> after deltas).
function checkHistogram(before, after, count, K, E) {
  const key = (suffix) => DIST + suffix;
  assert.equal(after[key('_count')] - before[key('_count')], count, 'one observation per step and sparse layer');
  assert.equal(after[key('_bucket{le="+Inf",model_name="m"}')], after[key('_count')]);
  // each token's K experts are distinct, and a layer has no more than E
  const sum = after[key('_sum')] - before[key('_sum')];
  assert.ok(sum >= K * count && sum <= E * count, `distinct sum ${sum} within [K, E] x ${count}`);
  let prev = 0;
  for (const le of [1, 2, 4, 8, 16, 32, 64, 128]) {
    const v = after[key(`_bucket{le="${le}",model_name="m"}`)];
    assert.ok(v >= prev, `bucket le=${le} cumulative`);
    if (le < K) assert.equal(v, 0, `bucket le=${le} below K`);
    if (le >= E) assert.equal(v, after[key('_count')], `bucket le=${le} holds all`);
    prev = v;
  }
}

// Starts a server on `dir` without the prefix cache (every prompt token is forwarded), sends
// the requests and checks the expert-load series against the model's config.json.
async function checkModel(dir) {
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const K = cfg.num_experts_per_tok, E = cfg.num_experts || 0, sparse = sparseLayers(cfg);
  const srv = await startServer({ model: dir, args: ['--no-prefix-caching', '--max-model-len', '256', '--served-model-name', 'm'] });
  try {
    const before = await metrics(srv.base);
    const sel0 = selections(before, cfg);
    const { forwarded, forwards } = await sendRequests(srv.base);
    // the engine publishes its counters after the step that streamed the last token: wait for it
    const steps = (m) => m['moeserve:engine_steps_total'] - before['moeserve:engine_steps_total'];
    const after = await waitFor(async () => { const m = await metrics(srv.base); return steps(m) >= forwards && m; },
      10000, 'the last step published');
    assert.equal(steps(after), forwards, 'steps (cross-check of the step count derived from usage)');
    if (!E) {
      assert.ok(!Object.keys(after).some((k) => k.startsWith('moeserve:moe_')), 'a dense model has no expert series');
      return;
    }
    const sel1 = selections(after, cfg);
    assert.equal(Object.keys(sel0).length, cfg.num_hidden_layers * E, 'one series per (layer, expert)');
    assert.equal(Object.keys(sel1).length, cfg.num_hidden_layers * E);
    for (let l = 0; l < cfg.num_hidden_layers; l++) {
      let layer = 0;
      for (let e = 0; e < E; e++) layer += sel1[`${l},${e}`] - sel0[`${l},${e}`];
      // every forwarded token picks K experts in each sparse layer; dense layers pick none
      assert.equal(layer, sparse.includes(l) ? forwarded * K : 0, `selections of layer ${l}`);
    }
    checkHistogram(before, after, forwards * sparse.length, K, E);
  } finally {
    await srv.stop();
  }
}

test('tiny MoE model: selections and distinct experts follow config and usage', async () => {
  const cfg = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));
  assert.ok(cfg.num_experts > 0, 'the tiny model has experts');
  await checkModel(TINY);
});

// tests/reference.cmake's fixtures; skipped when the reference models are not configured
const SPARSE_STEP = path.join(MODELS, 'ref-tiny-sparse-step'), DENSE = path.join(MODELS, 'ref-tiny-dense');

test('mixed model (decoder_sparse_step, mlp_only_layers): dense layers count nothing',
  { skip: !haveFile(path.join(SPARSE_STEP, 'config.json')) && 'no ref-tiny-sparse-step model' },
  async () => { await checkModel(SPARSE_STEP); });

test('dense model: no expert series',
  { skip: !haveFile(path.join(DENSE, 'config.json')) && 'no ref-tiny-dense model' },
  async () => { await checkModel(DENSE); });
