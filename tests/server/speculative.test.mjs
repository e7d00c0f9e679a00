// Speculative decoding by prompt lookup through a real server (`serve --speculative ngram`):
// every request gives the same text (and logprobs) with drafts as with `"speculative": false`,
// greedy and seeded, streamed or not; the drafts really are taken on a workload that repeats its
// prompt (the constructed copy model, tools/make_copy_model.py), which /metrics shows; on the
// pattern model the thinking budget (forced text), tool calls and a JSON schema give the same
// outputs both ways; a bad field is a 400 naming it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer } from './helpers.mjs';

const COPY = process.env.MS_COPY_MODEL, PATTERN = process.env.MS_PATTERN_MODEL;
let copySrv, patternSrv;
before(async () => {
  copySrv = await startServer({ model: COPY, args: ['--speculative', 'ngram'] });
  patternSrv = await startServer({ model: PATTERN, args: ['--speculative', 'ngram'] });
});
after(async () => {
  if (copySrv) await copySrv.stop();
  if (patternSrv) await patternSrv.stop();
});

async function post(srv, route, body) {
  const r = await fetch(srv.base + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

async function metric(srv, name) {
  const text = await (await fetch(srv.base + '/metrics')).text();
  const m = text.match(new RegExp(`^moeserve:${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'));
  assert.ok(m, `metric ${name} missing`);
  return Number(m[1]);
}

// The text of a streamed completion, concatenated.
async function streamed(srv, body) {
  const r = await fetch(srv.base + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(r.status, 200);
  let text = '';
  for (const line of (await r.text()).split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const ev = JSON.parse(line.slice(6));
    if (ev.choices?.[0]?.text) text += ev.choices[0].text;
  }
  return text;
}

const copyPrompts = () => JSON.parse(fs.readFileSync(path.join(COPY, 'copy_prompts.json'), 'utf8'));

test('copy workload: drafts are taken, outputs equal those without drafts', async () => {
  const before = await metric(copySrv, 'spec_decode_num_accepted_tokens_total');
  for (const [i, p] of copyPrompts().slice(0, 4).entries()) {
    for (const sampling of [{ temperature: 0 }, { temperature: 1, seed: 11 + i }]) {
      const body = { prompt: p.prompt_ids, max_tokens: 48, ignore_eos: true, logprobs: 2, ...sampling };
      const off = await post(copySrv, '/v1/completions', { ...body, speculative: false });
      const on = await post(copySrv, '/v1/completions', body); // the server's default: ngram
      assert.equal(off.status, 200, JSON.stringify(off.json));
      assert.equal(on.status, 200, JSON.stringify(on.json));
      assert.equal(on.json.choices[0].text, off.json.choices[0].text, `prompt ${i} ${JSON.stringify(sampling)}`);
      assert.deepEqual(on.json.choices[0].logprobs, off.json.choices[0].logprobs);
      assert.equal(on.json.usage.completion_tokens, 48);
      assert.equal(await streamed(copySrv, body), off.json.choices[0].text, 'streamed with drafts');
    }
  }
  const accepted = await metric(copySrv, 'spec_decode_num_accepted_tokens_total') - before;
  const drafted = await metric(copySrv, 'spec_decode_num_draft_tokens_total');
  console.log(`copy workload: ${accepted} drafted tokens accepted (${drafted} drafted in all)`);
  assert.ok(accepted > 100, `only ${accepted} drafted tokens accepted on a workload that repeats its prompt`);
});

test('"speculative": false drafts nothing', async () => {
  const p = copyPrompts()[5];
  const before = await metric(copySrv, 'spec_decode_num_draft_tokens_total');
  const off = await post(copySrv, '/v1/completions', { prompt: p.prompt_ids, max_tokens: 32, temperature: 0, speculative: false });
  assert.equal(off.status, 200);
  assert.equal(await metric(copySrv, 'spec_decode_num_draft_tokens_total'), before);
});

test('a speculative field that is not a boolean is a 400 naming it', async () => {
  const r = await post(copySrv, '/v1/completions', { prompt: 'hi', max_tokens: 2, speculative: 'yes' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.param, 'speculative');
});

test('pattern model: thinking budget, tools and a schema give the same outputs with drafts', async () => {
  const cases = [
    { messages: [{ role: 'user', content: 'Please ponder this.' }] },
    { messages: [{ role: 'user', content: 'Please ponder this.' }], thinking_budget: 40 },
    { messages: [{ role: 'user', content: 'What is the weather in Paris and London?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object',
        properties: { city: { type: 'string' } }, required: ['city'] } } }] },
    { messages: [{ role: 'user', content: 'Hello!' }], enable_thinking: false,
      response_format: { type: 'json_schema', json_schema: { name: 'x', strict: true, schema: { type: 'object',
        properties: { a: { type: 'integer' }, b: { type: 'string', maxLength: 6 } }, required: ['a', 'b'], additionalProperties: false } } } },
  ];
  const before = await metric(patternSrv, 'spec_decode_num_draft_tokens_total');
  for (const [i, c] of cases.entries()) {
    const body = { ...c, max_tokens: 400, temperature: 0 };
    const off = await post(patternSrv, '/v1/chat/completions', { ...body, speculative: false });
    const on = await post(patternSrv, '/v1/chat/completions', body);
    assert.equal(off.status, 200, JSON.stringify(off.json));
    assert.equal(on.status, 200, JSON.stringify(on.json));
    const pick = (j) => { // tool call ids are random per response
      const m = structuredClone(j.choices[0].message);
      for (const call of m.tool_calls || []) delete call.id;
      return { m, f: j.choices[0].finish_reason, u: j.usage.completion_tokens };
    };
    assert.deepEqual(pick(on.json), pick(off.json), `case ${i}`);
  }
  const drafted = await metric(patternSrv, 'spec_decode_num_draft_tokens_total') - before;
  console.log(`pattern model: ${drafted} tokens drafted, ${await metric(patternSrv, 'spec_decode_num_accepted_tokens_total')} accepted`);
  assert.ok(drafted > 0, 'the long counting text drafts something');
});
