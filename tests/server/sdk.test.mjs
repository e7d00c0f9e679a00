// The official openai SDK against a real moeserve running the tiny random-weight model:
// chat (non-streamed and streamed), completions (string, list, token ids), n=2, stop strings
// across token boundaries, seed reproducibility, logprobs, and 16 concurrent streams.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './helpers.mjs';

let srv, client;
before(async () => {
  srv = await startServer({ args: ['--max-num-seqs', '8'] });
  client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'unused', maxRetries: 0 });
});
after(async () => { await srv.stop(); });

const hi = [{ role: 'user', content: 'Hello! Who are you?' }];

test('chat completion, not streamed', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: hi, max_tokens: 12, temperature: 0 });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'tiny');
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.ok(r.usage.prompt_tokens > 5);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
  assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
  // Same greedy request again: the same text, and the prompt now comes from the prefix cache
  // (whole blocks only).
  const again = await client.chat.completions.create({ model: 'tiny', messages: hi, max_tokens: 12, temperature: 0 });
  assert.equal(again.choices[0].message.content, c.message.content);
});

test('chat completion, streamed, equals the non-streamed text', async () => {
  const full = await client.chat.completions.create({ model: 'tiny', messages: hi, max_tokens: 16, temperature: 0 });
  const stream = await client.chat.completions.create({
    model: 'tiny', messages: hi, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '', chunks = 0, finish = null, usage = null, first = null;
  for await (const ch of stream) {
    chunks++;
    if (ch.usage) { usage = ch.usage; assert.equal(ch.choices.length, 0); continue; }
    if (!first) first = ch;
    assert.equal(ch.object, 'chat.completion.chunk');
    const d = ch.choices[0].delta;
    if (d.content) text += d.content;
    if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
  }
  assert.equal(first.choices[0].delta.role, 'assistant');
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, full.choices[0].finish_reason);
  assert.ok(usage, 'include_usage chunk');
  assert.equal(usage.completion_tokens, full.usage.completion_tokens);
  assert.ok(chunks >= 3);
});

test('completions: string, list of strings, token ids, list of token-id lists', async () => {
  const a = await client.completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 8, temperature: 0 });
  assert.equal(a.object, 'text_completion');
  assert.equal(a.choices.length, 1);
  assert.equal(typeof a.choices[0].text, 'string');
  const tok = await fetch(srv.base + '/tokenize', { method: 'POST', body: JSON.stringify({ prompt: 'The capital of France is' }) }).then((r) => r.json());
  const b = await client.completions.create({ model: 'tiny', prompt: tok.tokens, max_tokens: 8, temperature: 0 });
  assert.equal(b.choices[0].text, a.choices[0].text, 'ids and text give the same prompt');
  assert.equal(b.usage.prompt_tokens, tok.count);
  const c = await client.completions.create({ model: 'tiny', prompt: ['The capital of France is', 'Once upon a time'], max_tokens: 8, temperature: 0 });
  assert.equal(c.choices.length, 2);
  assert.deepEqual(c.choices.map((x) => x.index), [0, 1]);
  assert.equal(c.choices[0].text, a.choices[0].text);
  const d = await client.completions.create({ model: 'tiny', prompt: [tok.tokens, tok.tokens], max_tokens: 8, temperature: 0 });
  assert.equal(d.choices[1].text, a.choices[0].text);
  // streamed completions
  const s = await client.completions.create({ model: 'tiny', prompt: 'The capital of France is', max_tokens: 8, temperature: 0, stream: true });
  let text = '';
  for await (const ch of s) text += ch.choices[0]?.text || '';
  assert.equal(text, a.choices[0].text);
});

test('n=2 gives two choices from one prompt; with a seed they are reproducible', async () => {
  const req = { model: 'tiny', messages: hi, max_tokens: 10, temperature: 1, n: 2, seed: 7 };
  const r = await client.chat.completions.create(req);
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1]);
  const r2 = await client.chat.completions.create(req);
  assert.deepEqual(r2.choices.map((c) => c.message.content), r.choices.map((c) => c.message.content));
  assert.notEqual(r.choices[0].message.content, r.choices[1].message.content, 'seed+i per choice');
  // streamed n=2: both indices appear, each with one finish_reason
  const s = await client.chat.completions.create({ ...req, stream: true });
  const texts = ['', ''], finishes = [0, 0];
  for await (const ch of s) for (const c of ch.choices) { texts[c.index] += c.delta.content || ''; if (c.finish_reason) finishes[c.index]++; }
  assert.deepEqual(texts, r.choices.map((c) => c.message.content));
  assert.deepEqual(finishes, [1, 1]);
});

test('seed: same seed same text, sampling at temperature 1', async () => {
  const req = { model: 'tiny', prompt: 'Once upon a time', max_tokens: 12, temperature: 1, seed: 1234 };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  const c = await client.completions.create({ ...req, seed: 99 });
  assert.equal(a.choices[0].text, b.choices[0].text);
  assert.notEqual(a.choices[0].text, c.choices[0].text);
});

// Picks a stop string that straddles a token boundary in what the model greedily generates.
test('stop strings: matched across token boundaries, removed from the output, held back while streaming', async () => {
  const prompts = ['Once upon a time', 'The capital of France is', 'def main():', 'Hello world', 'I think that', 'SELECT * FROM'];
  let chosen = null;
  for (const prompt of prompts) {
    const r = await client.completions.create({ model: 'tiny', prompt, max_tokens: 24, temperature: 0, logprobs: 0, ignore_eos: true });
    const text = r.choices[0].text, toks = r.choices[0].logprobs.tokens;
    let prefix = '';
    for (let k = 0; k + 1 < toks.length; k++) {
      prefix += toks[k];
      if (!text.startsWith(prefix)) break;
      const a = toks[k], b = toks[k + 1];
      if (k >= 1 && a.length >= 2 && b.length >= 2 && /^[\x20-\x7e]+$/.test(a + b)) {
        const stop = a.slice(-2) + b.slice(0, 2);
        const at = text.indexOf(stop);
        chosen = { prompt, stop, expected: text.slice(0, at) };
        break;
      }
    }
    if (chosen) break;
  }
  assert.ok(chosen, 'found a stop string across a token boundary');
  const r = await client.completions.create({ model: 'tiny', prompt: chosen.prompt, max_tokens: 24, temperature: 0, ignore_eos: true, stop: [chosen.stop] });
  assert.equal(r.choices[0].text, chosen.expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await client.completions.create({ model: 'tiny', prompt: chosen.prompt, max_tokens: 24, temperature: 0, ignore_eos: true, stop: chosen.stop, stream: true });
  let text = '', finish = null;
  for await (const ch of s) { text += ch.choices[0]?.text || ''; finish = ch.choices[0]?.finish_reason || finish; }
  assert.equal(text, chosen.expected, 'no part of the stop string leaked into the stream');
  assert.equal(finish, 'stop');
});

test('logprobs and top_logprobs (chat), logprobs (completions)', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: hi, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs.content;
  assert.equal(lp.length, r.usage.completion_tokens);
  for (const t of lp) {
    assert.equal(typeof t.token, 'string');
    assert.ok(t.logprob <= 0);
    assert.ok(Array.isArray(t.bytes));
    assert.equal(t.top_logprobs.length, 3);
    // greedy: the chosen token is the most likely one
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-5);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
  }
  // token texts join to the content (unless a token holds part of a UTF-8 character: its text is U+FFFD)
  if (!lp.some((t) => t.token.includes('\ufffd'))) assert.equal(lp.map((t) => t.token).join(''), r.choices[0].message.content);
  const bytes = Buffer.from(lp.flatMap((t) => t.bytes));
  assert.equal(bytes.toString('utf8'), r.choices[0].message.content, 'the bytes join to the content');
  const c = await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 5, temperature: 0, logprobs: 2 });
  const cl = c.choices[0].logprobs;
  assert.equal(cl.tokens.length, 5);
  assert.equal(cl.token_logprobs.length, 5);
  assert.equal(cl.top_logprobs.length, 5);
  assert.equal(cl.text_offset[0], 0);
});

test('16 concurrent streams all complete', async () => {
  const runs = Array.from({ length: 16 }, (_, i) => (async () => {
    const s = await client.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: `Count to ${i}` }], max_tokens: 12, temperature: 0.8, seed: i,
      stream: true, stream_options: { include_usage: true },
    });
    let text = '', finish = null, usage = null, role = null;
    for await (const ch of s) {
      if (ch.usage) usage = ch.usage;
      for (const c of ch.choices) { role = role || c.delta.role; text += c.delta.content || ''; finish = c.finish_reason || finish; }
    }
    return { text, finish, usage, role };
  })());
  const results = await Promise.all(runs);
  for (const r of results) {
    assert.equal(r.role, 'assistant');
    assert.ok(['stop', 'length'].includes(r.finish));
    assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12);
  }
});
