// KV-cache exhaustion under load (issue 8): a server whose KV pool holds 256 tokens (32 blocks of
// 8) gets 16 requests at once (chat and completions, streamed and not, ~70-110 prompt tokens and
// 48-80 output tokens each, so any two of them overflow the pool) plus one that can never fit.
// Every request that fits must answer 200, and its answer must be IDENTICAL (text, reasoning,
// finish_reason, token count, logprobs) to the same request sent alone to an uncontended server
// with a large pool: preemption (free the newest request's blocks, recompute it later, often
// through the prefix cache) must never change a token. /metrics must show that preemption and
// queueing happened, and afterwards that no KV block is held. The request that can never fit
// gets its own 400 naming the KV cache. Both servers run the same engine flags apart from the KV
// size, so any difference is the pressure's doing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { metrics, waitFor } from '../server/helpers.mjs';
import { startServerN } from './raw.mjs';

const note = (s) => console.log('# ' + s);
const ENGINE = ['--block-size', '8', '--max-num-seqs', '8', '--max-num-batched-tokens', '64', '--max-model-len', '1024'];
const POOL_TOKENS = 256; // 256 tokens x 2 layers x 2 KV heads x 16 dims x (K, V) x 4 bytes = 128 KiB
const SMALL_KV = ['--kv-cache-memory', String(POOL_TOKENS * 512)];

const WORDS = 'river mountain seven wizards judge boxing matches near the old bank summer winter light shadow engine token cache block stream thread memory prefix'.split(' ');
function words(seed, n) {
  const out = [];
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < n; i++) { x = (x * 1103515245 + 12345) >>> 0; out.push(WORDS[(x >>> 16) % WORDS.length]); }
  return out.join(' ');
}
// half of the prompts share a long prefix, so that prefix-cache hits and preemption meet
const SHARED = 'You are a careful assistant. Answer in full sentences and explain each step. ' + words(99, 30);

// 16 requests: kinds in turn, temperature 0 except two seeded samplers (one with n = 2), some
// with logprobs, two with stop strings. Each fits the pool alone (prompt + max_tokens <= 256).
function requests() {
  const out = [];
  for (let i = 0; i < 16; i++) {
    const kind = ['chat-stream', 'chat', 'completion-stream', 'completion'][i % 4];
    const text = (i % 2 ? SHARED + ' ' : '') + `Request ${i}: ` + words(i, 40 + (i * 7) % 30);
    const chat = kind.startsWith('chat');
    const body = {
      model: 'tiny', max_tokens: 48 + (i * 5) % 33, temperature: 0, ignore_eos: true,
      ...(chat ? { messages: [{ role: 'user', content: text }], chat_template_kwargs: { enable_thinking: i % 3 !== 0 } } : { prompt: text }),
      ...(kind.endsWith('stream') ? { stream: true, stream_options: { include_usage: true } } : {}),
    };
    if (i === 5 || i === 11) Object.assign(body, { temperature: 0.8, seed: 1234 + i });
    if (i === 11) body.n = 2;
    if (i % 5 === 0) Object.assign(body, chat ? { logprobs: true, top_logprobs: 2 } : { logprobs: 2 });
    if (i === 6 || i === 9) body.stop = ['er', 'ng'];
    out.push({ i, kind, chat, body });
  }
  return out;
}

// One request through the SDK, reduced to what must not change: per choice the text, the
// reasoning, finish_reason and logprobs; completion and prompt tokens. (cached_tokens may differ: the
// prefix cache is not the same on both servers.)
async function run(client, { chat, body }) {
  const api = chat ? client.chat.completions : client.completions;
  const choices = [];
  const at = (k) => (choices[k] ||= { text: '', reasoning: '', finish: null, logprobs: [] });
  let completionTokens, promptTokens;
  if (!body.stream) {
    const r = await api.create(body);
    for (const c of r.choices) {
      const o = at(c.index);
      o.text = chat ? c.message.content : c.text;
      o.reasoning = chat ? c.message.reasoning_content || '' : '';
      o.finish = c.finish_reason;
      o.logprobs = chat ? c.logprobs?.content || [] : c.logprobs?.token_logprobs || [];
    }
    completionTokens = r.usage.completion_tokens;
    promptTokens = r.usage.prompt_tokens;
  } else {
    for await (const chunk of await api.create(body)) {
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens, promptTokens = chunk.usage.prompt_tokens;
      for (const c of chunk.choices) {
        const o = at(c.index);
        o.text += (chat ? c.delta.content : c.text) || '';
        o.reasoning += chat ? c.delta.reasoning_content || '' : '';
        if (c.finish_reason) o.finish = c.finish_reason;
        if (c.logprobs) o.logprobs.push(...(chat ? c.logprobs.content || [] : c.logprobs.token_logprobs || []));
      }
    }
  }
  return { choices, completionTokens, promptTokens };
}

const client = (srv) => new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 120000 });

test('KV exhaustion under load: every answer identical to the uncontended one, preemption and queueing seen, the pool empty after', async () => {
  const reqs = requests();
  // the reference: each request alone (one at a time) on a server with the default, large pool
  const ref = await startServerN({ args: ENGINE });
  const alone = [];
  try {
    const c = client(ref);
    for (const r of reqs) alone.push(await run(c, r));
    const m = await metrics(ref.base);
    assert.equal(m['moeserve:num_preemptions_total'], 0, 'the reference server never preempts');
  } finally {
    await ref.stop();
  }
  for (const [k, a] of alone.entries()) {
    assert.ok(a.completionTokens > 0 && a.choices.every((c) => c.finish), `reference answer ${k}: ${JSON.stringify(a)}`);
    if (reqs[k].body.logprobs) assert.ok(a.choices[0].logprobs.length > 0, `reference ${k} has logprobs`);
  }

  const srv = await startServerN({ args: [...ENGINE, ...SMALL_KV] });
  try {
    assert.match(srv.log(), new RegExp(`KV cache ${POOL_TOKENS} tokens`));
    const c = client(srv);
    // sample the queue and the pool while the load runs (informational, and: was there a queue?)
    let maxWaiting = 0, maxKv = 0, sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const m = await metrics(srv.base);
        maxWaiting = Math.max(maxWaiting, m['moeserve:num_requests_waiting']);
        maxKv = Math.max(maxKv, m['moeserve:kv_cache_usage_perc']);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t0 = performance.now();
    // one request that can never fit: prompt + max_tokens beyond the whole pool
    const tooBig = c.completions.create({ model: 'tiny', prompt: words(7, 120), max_tokens: 200, temperature: 0 })
      .then(() => null, (e) => e);
    const results = await Promise.allSettled(reqs.map((r) => run(c, r)));
    const ms = performance.now() - t0;
    sampling = false;
    await sampler;

    const err = await tooBig;
    assert.ok(err instanceof OpenAI.BadRequestError, `the request that cannot fit: ${err}`);
    assert.equal(err.status, 400);
    assert.equal(err.error.type, 'invalid_request_error');
    assert.match(err.error.message, /the request needs \d+ tokens of KV cache \(prompt \d+ \+ max_tokens 200\) but the cache holds 256; lower max_tokens or raise --kv-cache-memory/);

    for (const [k, r] of results.entries()) {
      assert.equal(r.status, 'fulfilled', `request ${k} (${reqs[k].kind}) failed under KV pressure: ${r.reason}`);
      // the whole answer, token for token (and logprob for logprob), as when it ran alone
      assert.deepEqual(r.value, alone[k], `request ${k} (${reqs[k].kind}, ${JSON.stringify(reqs[k].body).slice(0, 120)}) differs under KV pressure`);
    }
    const m = await waitFor(async () => {
      const x = await metrics(srv.base);
      return x['moeserve:kv_cache_usage_perc'] === 0 && x['moeserve:num_requests_running'] === 0 &&
        x['moeserve:num_requests_waiting'] === 0 ? x : null;
    }, 5000, 'the KV pool to empty after the load');
    const pre = m['moeserve:num_preemptions_total'];
    note(`17 sequences (+1 refused) on a ${POOL_TOKENS}-token pool in ${ms.toFixed(0)} ms: ${pre} preemptions, ` +
      `up to ${maxWaiting} waiting, KV usage up to ${(100 * maxKv).toFixed(0)} %, prefix-cache hits ` +
      `${m['moeserve:prefix_cache_hits_total']} of ${m['moeserve:prefix_cache_queries_total']} tokens`);
    assert.ok(pre > 0, 'the load preempted requests (else this test proves nothing)');
    assert.ok(maxWaiting > 0, 'requests queued for admission');
    assert.equal(m['moeserve:request_success_total{finished_reason="error",model_name="tiny"}'], 0);
    assert.equal(m['moeserve:request_success_total{finished_reason="abort",model_name="tiny"}'], 0);
    assert.equal(m['moeserve:engine_alive'], 1);
    // each sequence's prompt is looked up in the prefix cache once, however long it waited for
    // blocks or often it was preempted (the count once grew with every failed admission try)
    const prompts = alone.reduce((sum, a, k) => sum + a.promptTokens * (reqs[k].body.n || 1), 0);
    assert.ok(m['moeserve:prefix_cache_queries_total'] <= prompts,
      `prefix_cache_queries_total ${m['moeserve:prefix_cache_queries_total']} > the ${prompts} prompt tokens sent`);
  } finally {
    await srv.stop();
  }
});
