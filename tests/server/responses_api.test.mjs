// POST /v1/responses (OpenAI's Responses API) driven by the official openai SDK's
// client.responses.create / client.responses.stream against the pattern model, whose exact
// outputs pattern.json lists; error paths checked in OpenAI's error shape over raw HTTP.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, postJSON, getJSON, metrics, waitFor } from './helpers.mjs';
import { skip, patternModel, loadPattern, WEATHER, PARIS_Q, TOOL_RESULT } from './pattern.mjs';

if (skip) console.log(`# SKIP responses tests: ${skip}`);
const tools = [{ type: 'function', ...WEATHER }];
// the stream helper's finalResponse() carries no output_text convenience field: read the items
const outText = (r) => r.output.filter((o) => o.type === 'message').flatMap((o) => o.content)
  .filter((c) => c.type === 'output_text').map((c) => c.text).join('');

describe('/v1/responses', { skip }, () => {
  let srv, client, P;
  before(async () => {
    const dir = patternModel();
    P = loadPattern(dir);
    srv = await startServer({ model: dir, args: ['--served-model-name', 'pattern'] });
    client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0 });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('create: reasoning item, message, usage with reasoning tokens', async () => {
    const x = P.expected('chat_think');
    const r = await client.responses.create({ model: 'pattern', input: 'Hello!', temperature: 0 });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'completed');
    assert.match(r.id, /^resp_/);
    assert.deepEqual(r.output.map((o) => o.type), ['reasoning', 'message']);
    assert.equal(r.output[0].content[0].text, x.reasoning);
    assert.equal(r.output_text, x.content);
    assert.equal(r.usage.input_tokens, x.promptTokens);
    assert.equal(r.usage.output_tokens, x.completionTokens);
    assert.equal(r.usage.output_tokens_details.reasoning_tokens, x.reasoningTokens);
    assert.equal(r.usage.total_tokens, x.promptTokens + x.completionTokens);
  });

  test('input as message items with input_text parts, instructions, reasoning.effort none', async () => {
    const x = P.expected('chat_nothink');
    const r = await client.responses.create({ model: 'pattern', temperature: 0, reasoning: { effort: 'none' },
      input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hello!' }] }] });
    assert.deepEqual(r.output.map((o) => o.type), ['message']);
    assert.equal(r.output_text, x.content);
    assert.equal(r.usage.output_tokens_details.reasoning_tokens, 0);
    // instructions become a system message: the prompt grows by exactly its rendered tokens
    const withSys = await client.responses.create({ model: 'pattern', temperature: 0, reasoning: { effort: 'none' },
      instructions: 'Be brief.', input: 'Hello!' });
    assert.ok(withSys.usage.input_tokens > r.usage.input_tokens);
    assert.equal(withSys.instructions, 'Be brief.');
  });

  test('stream: typed events in order, deltas add up to the final response', async () => {
    const x = P.expected('chat_think');
    const stream = client.responses.stream({ model: 'pattern', input: 'Hello!', temperature: 0 });
    const types = [];
    let reasoning = '', text = '', lastSeq = -1;
    for await (const ev of stream) {
      types.push(ev.type);
      assert.equal(ev.sequence_number, lastSeq + 1, 'sequence numbers count up');
      lastSeq = ev.sequence_number;
      if (ev.type === 'response.reasoning_text.delta') reasoning += ev.delta;
      if (ev.type === 'response.output_text.delta') text += ev.delta;
    }
    const final = await stream.finalResponse();
    assert.equal(reasoning, x.reasoning);
    assert.equal(text, x.content);
    assert.equal(outText(final), x.content);
    assert.equal(final.output[0].content[0].text, x.reasoning);
    assert.equal(types[0], 'response.created');
    assert.equal(types[1], 'response.in_progress');
    assert.equal(types.at(-1), 'response.completed');
    for (const t of ['response.output_item.added', 'response.output_item.done', 'response.content_part.added',
      'response.reasoning_text.done', 'response.output_text.done'])
      assert.ok(types.includes(t), t);
    assert.ok(types.lastIndexOf('response.reasoning_text.delta') < types.indexOf('response.output_text.delta'));
    assert.equal(final.usage.output_tokens_details.reasoning_tokens, x.reasoningTokens);
  });

  test('two-turn function-call loop, passing the output items back (create)', async () => {
    const call = P.expected('tool_think').calls[0];
    const input = [{ role: 'user', content: PARIS_Q }];
    const r1 = await client.responses.create({ model: 'pattern', input, tools, temperature: 0 });
    const fc = r1.output.find((o) => o.type === 'function_call');
    assert.ok(fc, JSON.stringify(r1.output));
    assert.equal(fc.name, call.name);
    assert.deepEqual(JSON.parse(fc.arguments), call.arguments);
    assert.match(fc.call_id, /^call_/);
    assert.equal(r1.output_text, '');
    const r2 = await client.responses.create({ model: 'pattern', tools, temperature: 0,
      input: [...input, ...r1.output, { type: 'function_call_output', call_id: fc.call_id, output: TOOL_RESULT }] });
    const x = P.expected('tool_result_think');
    assert.equal(r2.output_text, x.content);
    assert.equal(r2.output.find((o) => o.type === 'reasoning').content[0].text, x.reasoning);
  });

  test('two-turn function-call loop, streamed, chained with previous_response_id', async () => {
    const call = P.expected('tool_nothink').calls[0];
    const s1 = client.responses.stream({ model: 'pattern', input: PARIS_Q, tools, temperature: 0, reasoning: { effort: 'none' } });
    let args = '';
    for await (const ev of s1) if (ev.type === 'response.function_call_arguments.delta') args += ev.delta;
    const r1 = await s1.finalResponse();
    const fc = r1.output.find((o) => o.type === 'function_call');
    assert.equal(fc.name, call.name);
    assert.equal(args, fc.arguments);
    assert.deepEqual(JSON.parse(args), call.arguments);
    const s2 = client.responses.stream({ model: 'pattern', previous_response_id: r1.id, tools, temperature: 0,
      reasoning: { effort: 'none' }, input: [{ type: 'function_call_output', call_id: fc.call_id, output: TOOL_RESULT }] });
    const r2 = await s2.finalResponse();
    assert.equal(outText(r2), P.expected('tool_result_nothink').content);
    assert.equal(r2.previous_response_id, r1.id);
    // the store gives the response back
    const got = await getJSON(srv.base, `/v1/responses/${r2.id}`);
    assert.equal(got.status, 200);
    assert.equal(got.json.id, r2.id);
    assert.equal(outText(got.json), outText(r2));
  });

  test('a client that aborts the stream aborts the request: KV blocks freed, the disconnect counted', async () => {
    const before = await metrics(srv.base);
    const s = client.responses.stream({ model: 'pattern', input: 'Please ponder this question carefully.' });
    let deltas = 0;
    await assert.rejects((async () => {
      for await (const ev of s) if (ev.type === 'response.reasoning_text.delta' && ++deltas === 2) s.abort();
    })(), (e) => /abort/i.test(e.name + e.message));
    await waitFor(async () => {
      const x = await metrics(srv.base);
      return x['moeserve:client_disconnect_aborts_total'] === before['moeserve:client_disconnect_aborts_total'] + 1 &&
        x['moeserve:kv_cache_usage_perc'] === 0 && x['moeserve:num_requests_running'] === 0;
    }, 5000, 'the abort counted and the KV blocks freed');
  });

  test('store: false is not kept; an unknown previous_response_id is a 404', async () => {
    const r = await client.responses.create({ model: 'pattern', input: 'Hello!', store: false, max_output_tokens: 3 });
    assert.equal(r.store, false);
    await assert.rejects(client.responses.create({ model: 'pattern', input: 'Hi', previous_response_id: r.id }),
      (e) => e.status === 404 && e.code === 'previous_response_not_found' && e.param === 'previous_response_id');
    assert.equal((await getJSON(srv.base, `/v1/responses/${r.id}`)).status, 404);
  });

  test('max_output_tokens cuts the response: status incomplete', async () => {
    const r = await client.responses.create({ model: 'pattern', input: 'Hello!', max_output_tokens: 5, reasoning: { effort: 'none' } });
    assert.equal(r.status, 'incomplete');
    assert.equal(r.incomplete_details.reason, 'max_output_tokens');
    assert.equal(r.usage.output_tokens, 5);
  });

  for (const [label, body, status, param] of [
    ['no input', { model: 'pattern' }, 400, 'input'],
    ['input a number', { input: 5 }, 400, 'input'],
    ['empty input list', { input: [] }, 400, 'input'],
    ['unknown item type', { input: [{ type: 'computer_call', call_id: 'x' }] }, 400, 'input'],
    ['image part', { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'data:' }] }] }, 400, 'input'],
    ['bad role', { input: [{ role: 'tool', content: 'x' }] }, 400, 'input'],
    ['function_call without call_id', { input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, 400, 'input'],
    ['hosted tool', { input: 'x', tools: [{ type: 'web_search' }] }, 400, 'tools'],
    ['bad tool_choice', { input: 'x', tools, tool_choice: { type: 'file_search' } }, 400, 'tool_choice'],
    ['json_schema format without a name', { input: 'x', text: { format: { type: 'json_schema', schema: {} } } }, 400, 'text.format'],
    ['background', { input: 'x', background: true }, 400, 'background'],
    ['store not a boolean', { input: 'x', store: 'yes' }, 400, 'store'],
    ['bad reasoning effort', { input: 'x', reasoning: { effort: 'extreme' } }, 400, 'reasoning.effort'],
    ['max_output_tokens zero', { input: 'x', max_output_tokens: 0 }, 400, 'max_output_tokens'],
    ['temperature out of range', { input: 'x', temperature: 7 }, 400, 'temperature'],
    ['instructions not a string', { input: 'x', instructions: 3 }, 400, 'instructions'],
    ['unknown model', { model: 'gpt-9', input: 'x' }, 404, 'model'],
    ['unknown previous_response_id', { input: 'x', previous_response_id: 'resp_nope' }, 404, 'previous_response_id'],
    ['too many items', { input: Array.from({ length: 5000 }, () => ({ role: 'user', content: 'x' })) }, 400, 'input'],
  ]) {
    test(`bad request (${label}) -> ${status} in OpenAI's error shape`, async () => {
      const r = await postJSON(srv.base, '/v1/responses', body);
      assert.equal(r.status, status, r.body);
      assert.equal(typeof r.json.error.message, 'string');
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(r.json.error.param, param);
    });
  }

  test('malformed JSON, a NUL escape and GET on the POST route', async () => {
    for (const body of ['{"input": ', '{"input": "a\\u0000b"}', '[1]']) {
      const r = await postJSON(srv.base, '/v1/responses', body);
      assert.equal(r.status, 400, body);
      assert.equal(r.json.error.type, 'invalid_request_error');
    }
    assert.equal((await getJSON(srv.base, '/v1/responses')).status, 405);
    assert.equal((await getJSON(srv.base, '/v1/responses/resp_unknown')).json.error.code, 'not_found');
  });
});

describe('/v1/responses: a generation that fails', { skip }, () => {
  let srv, client;
  before(async () => {
    srv = await startServer({ model: patternModel(), args: ['--served-model-name', 'pattern'],
      env: { MOESERVE_TEST_FAIL_AFTER_TOKENS: '3' } });
    client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0 });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('not streamed: 500 in OpenAI shape; streamed: an error event, no response.completed', async () => {
    const r = await postJSON(srv.base, '/v1/responses', { model: 'pattern', input: 'Hello!' });
    assert.equal(r.status, 500);
    assert.equal(r.json.error.type, 'server_error');
    assert.match(r.json.error.message, /injected failure/);
    const s = await client.responses.create({ model: 'pattern', input: 'Hello!', stream: true });
    const types = [];
    let err;
    for await (const ev of s) {
      types.push(ev.type);
      if (ev.type === 'error') err = ev;
    }
    assert.ok(err, types.join(' '));
    assert.match(err.message, /injected failure/);
    assert.equal(err.code, 'server_error');
    assert.ok(!types.includes('response.completed'));
    assert.equal(types.at(-1), 'response.failed');
  });
});
