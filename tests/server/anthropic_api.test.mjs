// POST /v1/messages (Anthropic's Messages API) driven by the official @anthropic-ai/sdk's
// messages.create / messages.stream / messages.countTokens against the pattern model, whose
// exact outputs pattern.json lists; error paths checked in Anthropic's error shape.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startServer, postJSON, request, metrics, waitFor } from './helpers.mjs';
import { skip, patternModel, loadPattern, WEATHER, PARIS_Q, TOOL_RESULT } from './pattern.mjs';

if (skip) console.log(`# SKIP messages tests: ${skip}`);
const tools = [{ name: WEATHER.name, description: WEATHER.description, input_schema: WEATHER.parameters }];
const hello = [{ role: 'user', content: 'Hello!' }];
const think = { type: 'enabled', budget_tokens: 1024 };
const KEY = 'sk-ant-test-key';

function anthropicError(r, status, type) {
  assert.equal(r.status, status, r.body);
  assert.equal(r.json.type, 'error', r.body);
  assert.equal(r.json.error.type, type, r.body);
  assert.equal(typeof r.json.error.message, 'string');
}

describe('/v1/messages', { skip }, () => {
  let srv, client, P;
  const post = (body, headers = { 'x-api-key': KEY }) => postJSON(srv.base, '/v1/messages', body, { headers });
  before(async () => {
    const dir = patternModel();
    P = loadPattern(dir);
    srv = await startServer({ model: dir, args: ['--served-model-name', 'pattern', '--api-key', KEY] });
    client = new Anthropic({ baseURL: srv.base, apiKey: KEY, maxRetries: 0 }); // sends x-api-key
  });
  after(async () => { if (srv) await srv.stop(); });

  test('create with thinking: a thinking block, then text; usage', async () => {
    const x = P.expected('chat_think');
    const m = await client.messages.create({ model: 'pattern', max_tokens: 200, messages: hello, thinking: think, temperature: 0 });
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.match(m.id, /^msg_/);
    assert.deepEqual(m.content.map((b) => b.type), ['thinking', 'text']);
    assert.equal(m.content[0].thinking, x.reasoning);
    assert.equal(m.content[1].text, x.content);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.stop_sequence, null);
    assert.equal(m.usage.input_tokens + m.usage.cache_read_input_tokens, x.promptTokens);
    assert.equal(m.usage.output_tokens, x.completionTokens);
  });

  test('create without thinking (the default) and with a system prompt: text only', async () => {
    const x = P.expected('chat_nothink');
    const m = await client.messages.create({ model: 'pattern', max_tokens: 200, messages: hello, temperature: 0, top_k: 1, top_p: 1 });
    assert.deepEqual(m.content, [{ type: 'text', text: x.content }]);
    const s = await client.messages.create({ model: 'pattern', max_tokens: 200, temperature: 0,
      system: [{ type: 'text', text: 'Be brief.' }], messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello!' }] }] });
    assert.equal(s.content[0].text, x.content);
    assert.ok(s.usage.input_tokens + s.usage.cache_read_input_tokens > x.promptTokens, 'the system prompt is rendered');
  });

  test('stream with thinking: the event sequence and the deltas', async () => {
    const x = P.expected('chat_think');
    const stream = client.messages.stream({ model: 'pattern', max_tokens: 200, messages: hello, thinking: think, temperature: 0 });
    const types = [];
    let thinking = '', text = '';
    for await (const ev of stream) {
      types.push(ev.type === 'content_block_delta' ? `delta:${ev.delta.type}` : ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'thinking_delta') thinking += ev.delta.thinking;
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    const m = await stream.finalMessage();
    assert.equal(thinking, x.reasoning);
    assert.equal(text, x.content);
    assert.deepEqual(m.content.map((b) => b.type), ['thinking', 'text']);
    assert.equal(m.content[1].text, x.content);
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.usage.output_tokens, x.completionTokens);
    const squeezed = types.filter((t, i) => t !== types[i - 1]);
    assert.deepEqual(squeezed, ['message_start', 'content_block_start', 'delta:thinking_delta', 'content_block_stop',
      'content_block_start', 'delta:text_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    // the raw stream carries a ping after message_start
    const raw = await request(srv.base, 'POST', '/v1/messages', { headers: { 'x-api-key': KEY },
      body: { model: 'pattern', max_tokens: 5, messages: hello, stream: true } });
    assert.match(raw.body, /^event: message_start\ndata: .*\n\nevent: ping\ndata: \{"type":"ping"\}\n\n/);
  });

  test('tool use round trip (create), then the same streamed with input_json_delta', async () => {
    const call = P.expected('tool_nothink').calls[0];
    const q = [{ role: 'user', content: PARIS_Q }];
    const m1 = await client.messages.create({ model: 'pattern', max_tokens: 200, messages: q, tools, temperature: 0 });
    assert.equal(m1.stop_reason, 'tool_use');
    const use = m1.content.find((b) => b.type === 'tool_use');
    assert.equal(use.name, call.name);
    assert.deepEqual(use.input, call.arguments);
    assert.match(use.id, /^toolu_/);
    const m2 = await client.messages.create({ model: 'pattern', max_tokens: 200, tools, temperature: 0, messages: [...q,
      { role: 'assistant', content: m1.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: TOOL_RESULT }] }] });
    assert.equal(m2.stop_reason, 'end_turn');
    assert.deepEqual(m2.content, [{ type: 'text', text: P.expected('tool_result_nothink').content }]);

    const s = client.messages.stream({ model: 'pattern', max_tokens: 200, messages: q, tools, temperature: 0,
      thinking: think, tool_choice: { type: 'any' } });
    let json = '';
    for await (const ev of s) if (ev.type === 'content_block_delta' && ev.delta.type === 'input_json_delta') json += ev.delta.partial_json;
    const fm = await s.finalMessage();
    assert.deepEqual(JSON.parse(json), call.arguments);
    assert.deepEqual(fm.content.map((b) => b.type), ['thinking', 'tool_use']);
    assert.equal(fm.content[0].thinking, P.expected('tool_think').reasoning);
    assert.deepEqual(fm.content[1].input, call.arguments);
    assert.equal(fm.stop_reason, 'tool_use');
    // the thinking block goes back with the tool result (tool_result content as text blocks)
    const m3 = await client.messages.create({ model: 'pattern', max_tokens: 200, tools, temperature: 0, thinking: think, messages: [...q,
      { role: 'assistant', content: fm.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: fm.content[1].id, content: [{ type: 'text', text: TOOL_RESULT }] }] }] });
    assert.equal(m3.content.find((b) => b.type === 'text').text, P.expected('tool_result_think').content);
  });

  test('stop_sequences and max_tokens end the message with their stop_reason', async () => {
    const answer = P.expected('chat_nothink').content;
    const m = await client.messages.create({ model: 'pattern', max_tokens: 200, messages: hello, stop_sequences: ['zzz', 'help'] });
    assert.equal(m.stop_reason, 'stop_sequence');
    assert.equal(m.stop_sequence, 'help');
    assert.equal(m.content[0].text, answer.slice(0, answer.indexOf('help')));
    const s = client.messages.stream({ model: 'pattern', max_tokens: 3, messages: hello });
    const fm = await s.finalMessage();
    assert.equal(fm.stop_reason, 'max_tokens');
    assert.equal(fm.usage.output_tokens, 3);
  });

  test('a client that aborts the stream aborts the request: KV blocks freed, the disconnect counted', async () => {
    const before = await metrics(srv.base);
    const s = client.messages.stream({ model: 'pattern', max_tokens: 4000, thinking: think,
      messages: [{ role: 'user', content: 'Please ponder this question carefully.' }] });
    let deltas = 0;
    await assert.rejects((async () => {
      for await (const ev of s) if (ev.type === 'content_block_delta' && ++deltas === 2) s.abort();
    })(), (e) => e instanceof Anthropic.APIUserAbortError || e.name === 'AbortError' || /abort/i.test(e.message));
    await waitFor(async () => {
      const x = await metrics(srv.base);
      return x['moeserve:client_disconnect_aborts_total'] === before['moeserve:client_disconnect_aborts_total'] + 1 &&
        x['moeserve:kv_cache_usage_perc'] === 0 && x['moeserve:num_requests_running'] === 0;
    }, 5000, 'the abort counted and the KV blocks freed');
  });

  test('count_tokens counts the prompt /v1/messages renders', async () => {
    const r = await client.messages.countTokens({ model: 'pattern', messages: hello });
    // thinking off is the default: the prompt ends with the empty think block
    assert.equal(r.input_tokens, P.byName('chat_nothink').prompt_ids.length);
    const t = await client.messages.countTokens({ model: 'pattern', messages: hello, thinking: think });
    assert.equal(t.input_tokens, P.byName('chat_think').prompt_ids.length);
  });

  test('API keys: x-api-key and Bearer accepted, a wrong one is a 401 in Anthropic shape', async () => {
    const body = { model: 'pattern', max_tokens: 2, messages: hello };
    assert.equal((await post(body, { authorization: `Bearer ${KEY}` })).status, 200);
    anthropicError(await post(body, { 'x-api-key': 'wrong' }), 401, 'authentication_error');
    anthropicError(await post(body, {}), 401, 'authentication_error');
    const bad = new Anthropic({ baseURL: srv.base, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.messages.create(body), (e) => e.status === 401 && e.error?.error?.type === 'authentication_error');
  });

  test('the SDK surfaces a 400 as BadRequestError with Anthropic\'s body', async () => {
    await assert.rejects(client.messages.create({ model: 'pattern', messages: hello }),
      (e) => e instanceof Anthropic.BadRequestError && e.error.type === 'error' && e.error.error.type === 'invalid_request_error'
        && /max_tokens/.test(e.error.error.message));
  });

  const ok = { model: 'pattern', max_tokens: 10 };
  for (const [label, body, status, type] of [
    ['no max_tokens', { model: 'pattern', messages: hello }, 400, 'invalid_request_error'],
    ['no model', { max_tokens: 5, messages: hello }, 400, 'invalid_request_error'],
    ['no messages', { ...ok }, 400, 'invalid_request_error'],
    ['messages not a list', { ...ok, messages: 'hi' }, 400, 'invalid_request_error'],
    ['system role in messages', { ...ok, messages: [{ role: 'system', content: 'x' }] }, 400, 'invalid_request_error'],
    ['unknown block type', { ...ok, messages: [{ role: 'user', content: [{ type: 'hologram' }] }] }, 400, 'invalid_request_error'],
    ['image block', { ...ok, messages: [{ role: 'user', content: [{ type: 'image', source: {} }] }] }, 400, 'invalid_request_error'],
    ['block without type', { ...ok, messages: [{ role: 'user', content: [{ text: 'x' }] }] }, 400, 'invalid_request_error'],
    ['tool_use in a user message', { ...ok, messages: [{ role: 'user', content: [{ type: 'tool_use', id: 'a', name: 'f', input: {} }] }] }, 400, 'invalid_request_error'],
    ['tool_use input not an object', { ...ok, messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: [{ type: 'tool_use', id: 'a', name: 'f', input: 'x' }] }] }, 400, 'invalid_request_error'],
    ['tool_result without id', { ...ok, messages: [{ role: 'user', content: [{ type: 'tool_result', content: 'x' }] }] }, 400, 'invalid_request_error'],
    ['server tool', { ...ok, messages: hello, tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 400, 'invalid_request_error'],
    ['tool without schema', { ...ok, messages: hello, tools: [{ name: 'f' }] }, 400, 'invalid_request_error'],
    ['bad tool_choice', { ...ok, messages: hello, tools, tool_choice: { type: 'some' } }, 400, 'invalid_request_error'],
    ['tool_choice names an unknown tool', { ...ok, messages: hello, tools, tool_choice: { type: 'tool', name: 'nope' } }, 400, 'invalid_request_error'],
    ['thinking without budget', { ...ok, messages: hello, thinking: { type: 'enabled' } }, 400, 'invalid_request_error'],
    ['bad thinking type', { ...ok, messages: hello, thinking: { type: 'maybe' } }, 400, 'invalid_request_error'],
    ['stop_sequences a string', { ...ok, messages: hello, stop_sequences: 'x' }, 400, 'invalid_request_error'],
    ['max_tokens zero', { ...ok, max_tokens: 0, messages: hello }, 400, 'invalid_request_error'],
    ['temperature a string', { ...ok, messages: hello, temperature: 'hot' }, 400, 'invalid_request_error'],
    ['system a number', { ...ok, messages: hello, system: 5 }, 400, 'invalid_request_error'],
    ['unknown model', { ...ok, model: 'claude-opus-4', messages: hello }, 404, 'not_found_error'],
    ['too many messages', { ...ok, messages: Array.from({ length: 5000 }, () => ({ role: 'user', content: 'x' })) }, 400, 'invalid_request_error'],
    ['a prompt past the context', { ...ok, messages: [{ role: 'user', content: 'Hello! '.repeat(40000) }] }, 400, 'invalid_request_error'],
  ]) {
    test(`bad request (${label}) -> ${status} ${type}`, async () => anthropicError(await post(body), status, type));
  }

  test('an error the shared chat path finds names the Messages field', async () => {
    const r = await post({ ...ok, messages: hello, stop_sequences: Array(17).fill('x') });
    anthropicError(r, 400, 'invalid_request_error');
    assert.match(r.json.error.message, /stop_sequences/);
    assert.doesNotMatch(r.json.error.message, /'stop'/, 'the chat spelling is not shown');
  });

  test('malformed bodies, count_tokens errors, unknown routes', async () => {
    for (const body of ['{"model": ', '{"model": "a\\u0000b"}', '[]', '"x"'])
      anthropicError(await post(body), 400, 'invalid_request_error');
    const ct = await postJSON(srv.base, '/v1/messages/count_tokens', { model: 'pattern', messages: [{ role: 'user', content: [{ type: 'video' }] }] },
      { headers: { 'x-api-key': KEY } });
    anthropicError(ct, 400, 'invalid_request_error');
    const g = await request(srv.base, 'GET', '/v1/messages', { headers: { 'x-api-key': KEY } });
    anthropicError({ ...g, json: JSON.parse(g.body) }, 405, 'invalid_request_error');
  });
});

describe('/v1/messages: a generation that fails', { skip }, () => {
  let srv, client;
  before(async () => {
    srv = await startServer({ model: patternModel(), args: ['--served-model-name', 'pattern'],
      env: { MOESERVE_TEST_FAIL_AFTER_TOKENS: '3' } });
    client = new Anthropic({ baseURL: srv.base, apiKey: 'x', maxRetries: 0 });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('not streamed: 500 api_error; streamed: an error event the SDK raises', async () => {
    const body = { model: 'pattern', max_tokens: 50, messages: hello };
    const r = await postJSON(srv.base, '/v1/messages', body);
    anthropicError(r, 500, 'api_error');
    assert.match(r.json.error.message, /injected failure/);
    const s = client.messages.stream(body);
    await assert.rejects(s.finalMessage(), (e) => e instanceof Anthropic.APIError && e.error?.error?.type === 'api_error'
      && /injected failure/.test(e.error.error.message));
  });
});
