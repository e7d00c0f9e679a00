// Errors and their status codes and bodies, /health, /metrics, /v1/models, /tokenize,
// /detokenize, CORS preflight, API keys (401), the body limit (413) and the queue limit (429).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, request, getJSON, postJSON, metrics, waitFor, scaled } from './helpers.mjs';

function assertError(r, status, param) {
  assert.equal(r.status, status, r.body);
  assert.equal(typeof r.json.error.message, 'string');
  assert.equal(typeof r.json.error.type, 'string');
  assert.ok('param' in r.json.error && 'code' in r.json.error);
  if (param !== undefined) assert.equal(r.json.error.param, param, r.json.error.message);
}

describe('default server', () => {
  let srv, client;
  before(async () => {
    srv = await startServer({ args: ['--max-model-len', '256', '--served-model-name', 'tiny-test'] });
    client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0 });
  });
  after(async () => { await srv.stop(); });

  test('GET /health, /v1/models', async () => {
    const h = await getJSON(srv.base, '/health');
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok' });
    const m = await client.models.list();
    assert.equal(m.data.length, 1);
    assert.equal(m.data[0].id, 'tiny-test');
    assert.equal(m.data[0].object, 'model');
    assert.equal(m.data[0].max_model_len, 256);
    const one = await client.models.retrieve('tiny-test');
    assert.equal(one.id, 'tiny-test');
    await assert.rejects(client.models.retrieve('other'), (e) => e.status === 404);
  });

  test('X-Request-Id is echoed, or generated', async () => {
    const a = await request(srv.base, 'GET', '/health', { headers: { 'X-Request-Id': 'my-id-123' } });
    assert.equal(a.headers['x-request-id'], 'my-id-123');
    const b = await request(srv.base, 'GET', '/health');
    assert.match(b.headers['x-request-id'], /^[0-9a-f]{32}$/);
    await postJSON(srv.base, '/v1/completions', { prompt: 'hi', max_tokens: 2 }, { headers: { 'X-Request-Id': 'trace-me-42' } });
    // the access line is written when the connection has finished the response
    await waitFor(() => /\[trace-me-42\] POST \/v1\/completions 200 prompt_tokens=\d+ completion_tokens=2 ttft=[\d.]+s total=[\d.]+s/.test(srv.log()),
      5000, 'the access-log line');
  });

  test('/tokenize and /detokenize round-trip', async () => {
    const t = await postJSON(srv.base, '/tokenize', { prompt: 'Hello world' });
    assert.equal(t.status, 200);
    assert.deepEqual(t.json.tokens, [9707, 1879]);
    assert.equal(t.json.count, 2);
    assert.equal(t.json.max_model_len, 256);
    const d = await postJSON(srv.base, '/detokenize', { tokens: t.json.tokens });
    assert.deepEqual(d.json, { prompt: 'Hello world' });
    const chat = await postJSON(srv.base, '/tokenize', { messages: [{ role: 'user', content: 'Hi' }] });
    assert.equal(chat.status, 200);
    assert.ok(chat.json.count > 3);
    const bad = await postJSON(srv.base, '/detokenize', { tokens: ['a'] });
    assertError(bad, 400, 'tokens');
  });

  test('unknown model: 404 model_not_found', async () => {
    const r = await postJSON(srv.base, '/v1/chat/completions', { model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] });
    assertError(r, 404, 'model');
    assert.equal(r.json.error.code, 'model_not_found');
    await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e.status === 404);
  });

  test('wrong types and out-of-range values: 400 naming the field', async () => {
    const msgs = [{ role: 'user', content: 'x' }];
    const cases = [
      [{ messages: msgs, temperature: 'hot' }, 'temperature'],
      [{ messages: msgs, temperature: 5 }, 'temperature'],
      [{ messages: msgs, max_tokens: 0 }, 'max_tokens'],
      [{ messages: msgs, max_tokens: 1.5 }, 'max_tokens'],
      [{ messages: msgs, top_p: 0 }, 'top_p'],
      [{ messages: msgs, n: 100 }, 'n'],
      [{ messages: msgs, stop: 5 }, 'stop'],
      [{ messages: msgs, stream: 'yes' }, 'stream'],
      [{ messages: msgs, logit_bias: { abc: 1 } }, 'logit_bias'],
      [{ messages: msgs, top_logprobs: 3 }, 'top_logprobs'],
      [{ messages: msgs, tool_choice: 'sometimes' }, 'tool_choice'],
      [{ messages: 'hello' }, 'messages'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages'],
      [{}, 'messages'],
    ];
    for (const [body, param] of cases) assertError(await postJSON(srv.base, '/v1/chat/completions', body), 400, param);
    assertError(await postJSON(srv.base, '/v1/completions', { prompt: 42 }), 400, 'prompt');
    assertError(await postJSON(srv.base, '/v1/completions', { prompt: [-1] }), 400, 'prompt');
    assertError(await postJSON(srv.base, '/v1/completions', { prompt: [99999999] }), 400, 'prompt');
    assertError(await postJSON(srv.base, '/v1/completions', {}), 400, 'prompt');
    const notJson = await postJSON(srv.base, '/v1/chat/completions', '{"messages": [');
    assertError(notJson, 400);
    // unknown fields are ignored
    const ok = await postJSON(srv.base, '/v1/chat/completions', { messages: msgs, max_tokens: 2, frobnicate: true, user: 'u1', ignore_eos: true, priority: 1 });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.usage.completion_tokens, 2);
  });

  test('hostile bodies: never a crash, a hang or a 5xx', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const bodies = [
      '', 'null', '[]', '"x"', '{"messages":' + deep + '}', '{"messages":[{"role":"user","content":"\u0000"}],"max_tokens":1}',
      Buffer.from('{"prompt":"\xff\xfe","max_tokens":1}', 'latin1'),
      '{"messages":[{"role":"user","content":null}],"max_tokens":1}',
      '{"messages":[{"role":"user"}]}', '{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}',
      '{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"max_tokens":1}',
      '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}',
      '{"messages":[{"role":"user","content":"x"}],"tools":"no"}',
      '{"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"nope"}},"tools":[{"type":"function","function":{"name":"f"}}]}',
      '{"messages":[{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}],"max_tokens":1}',
      '{"messages":[{"role":"user","content":"x"}],"max_tokens":1e300}', '{"messages":[{"role":"user","content":"x"}],"seed":1e300}',
      '{"messages":[{"role":"user","content":"x"}],"logit_bias":{"1":1e9}}', '{"messages":[{"role":"user","content":"x"}],"stop":["",""],"max_tokens":2}',
      '{"messages":[{"role":"user","content":"x"}],"stop":["' + 'y'.repeat(300) + '"]}',
      '{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":[1]}', '{"messages":[{"role":"user","content":"x"}],"n":16,"max_tokens":2}',
      '{"prompt":[[]]}', '{"prompt":[]}', '{"prompt":""}', '{"prompt":[1,"a"]}', '{"prompt":[[1],[2.5]]}', '{"prompt":"x","logprobs":21}',
      '{"prompt":"x","stream":true,"max_tokens":1,"logprobs":20,"n":3,"stop":"a"}',
      // deep values where the template would walk them (tool-call arguments, kwargs)
      '{"max_tokens":1,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"","tool_calls":[{"type":"function",' +
        '"function":{"name":"f","arguments":' + '{"a":'.repeat(990) + '1' + '}'.repeat(990) + '}}]},{"role":"user","content":"x"}]}',
      '{"messages":[{"role":"user","content":"x"}],"chat_template_kwargs":{"k":' + '['.repeat(900) + ']'.repeat(900) + '}}',
    ];
    for (const [i, body] of bodies.entries()) {
      const route = String(body).includes('"prompt"') ? '/v1/completions' : '/v1/chat/completions';
      const r = await request(srv.base, 'POST', route, { body, headers: { 'Content-Type': 'application/json' } });
      assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `body ${i}: ${r.status} ${r.body.slice(0, 200)}`);
      if (r.status !== 200) assert.ok(JSON.parse(r.body).error.message, `body ${i}`);
    }
    for (const body of ['{"tokens":"x"}', '{"tokens":[1e20]}', '{}', '[', '{"prompt":5}', '{"messages":[]}'])
      for (const route of ['/tokenize', '/detokenize']) {
        const r = await request(srv.base, 'POST', route, { body });
        assert.ok(r.status >= 200 && r.status < 500, `${route} ${body}: ${r.status}`);
      }
    assert.equal((await request(srv.base, 'GET', '/health')).status, 200);
  });

  test('empty messages through the SDK: 400', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'tiny-test', messages: [] }), (e) => e.status === 400);
  });

  test('prompt longer than the context: 400 with both numbers', async () => {
    const long = 'hello '.repeat(400);
    const r = await postJSON(srv.base, '/v1/chat/completions', { messages: [{ role: 'user', content: long }] });
    assertError(r, 400, 'messages');
    assert.equal(r.json.error.code, 'context_length_exceeded');
    assert.match(r.json.error.message, /maximum context length is 256 tokens/);
    assert.match(r.json.error.message, /has \d{3} input tokens/);
    const r2 = await postJSON(srv.base, '/v1/completions', { prompt: 'hello', max_tokens: 300 });
    assertError(r2, 400, 'max_tokens');
    assert.match(r2.json.error.message, /256 tokens.*requested 301 tokens \(1 in the input, 300 for the completion\)/);
  });

  test('unknown route 404, wrong method 405', async () => {
    const r = await request(srv.base, 'GET', '/v1/nothing');
    assert.equal(r.status, 404);
    assert.ok(JSON.parse(r.body).error);
    const m = await request(srv.base, 'GET', '/v1/chat/completions');
    assert.equal(m.status, 405);
  });

  test('CORS preflight and headers', async () => {
    const r = await request(srv.base, 'OPTIONS', '/v1/chat/completions', {
      headers: { Origin: 'http://example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.match(r.headers['access-control-allow-methods'], /POST/);
    assert.match(r.headers['access-control-allow-headers'], /authorization/i);
    const g = await request(srv.base, 'GET', '/v1/models', { headers: { Origin: 'http://example.com' } });
    assert.equal(g.headers['access-control-allow-origin'], '*');
  });

  test('/metrics: vLLM names under moeserve:', async () => {
    await client.completions.create({ model: 'tiny-test', prompt: 'Hello there', max_tokens: 3, temperature: 0 });
    const m = await metrics(srv.base);
    for (const name of ['num_requests_running', 'num_requests_waiting', 'kv_cache_usage_perc', 'prefix_cache_queries_total',
      'prefix_cache_hits_total', 'num_preemptions_total', 'prompt_tokens_total', 'generation_tokens_total',
      'request_success_total', 'client_disconnect_aborts_total', 'time_to_first_token_seconds_count',
      'inter_token_latency_seconds_count', 'e2e_request_latency_seconds_count', 'request_queue_time_seconds_count']) {
      assert.ok(`moeserve:${name}` in m, name);
    }
    assert.ok(m['moeserve:prompt_tokens_total'] >= 2);
    assert.ok(m['moeserve:generation_tokens_total'] >= 3);
    assert.ok(m['moeserve:time_to_first_token_seconds_count'] >= 1);
    assert.ok(m['moeserve:request_success_total{finished_reason="length",model_name="tiny-test"}'] >= 1);
    const r = await request(srv.base, 'GET', '/metrics');
    assert.match(r.headers['content-type'], /^text\/plain/);
    assert.match(r.body, /# TYPE moeserve:time_to_first_token_seconds histogram/);
    assert.match(r.body, /moeserve:e2e_request_latency_seconds_bucket\{le="\+Inf",model_name="tiny-test"\} \d+/);
  });
});

describe('limits', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: ['--max-body-size', '2KiB', '--max-num-seqs', '1', '--max-queued-requests', '1'] });
  });
  after(async () => { await srv.stop(); });

  test('body over --max-body-size: 413', async () => {
    const big = JSON.stringify({ prompt: 'x'.repeat(5000), max_tokens: 1 });
    const r = await request(srv.base, 'POST', '/v1/completions', { body: big });
    assert.equal(r.status, 413);
    assert.equal(JSON.parse(r.body).error.code, 'request_too_large');
    const ok = await postJSON(srv.base, '/v1/completions', { prompt: 'x', max_tokens: 1 });
    assert.equal(ok.status, 200);
  });

  test('queue full: 429 with Retry-After', async () => {
    const body = { prompt: 'Once upon a time', max_tokens: 8000, ignore_eos: true, stream: true };
    const ctrl = new AbortController();
    // two long streams fill the one running slot and the one queue slot
    const open = [];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(srv.base + '/v1/completions', { method: 'POST', body: JSON.stringify(body), signal: ctrl.signal });
      assert.equal(res.status, 200);
      open.push(res);
    }
    const r = await postJSON(srv.base, '/v1/completions', { prompt: 'hi', max_tokens: 2 });
    assert.equal(r.status, 429, r.body);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.json.error.type, 'rate_limit_error');
    ctrl.abort();
    // once the streams are gone, requests are accepted again
    const until = Date.now() + scaled(10000);
    let st = 0;
    while (Date.now() < until && (st = (await postJSON(srv.base, '/v1/completions', { prompt: 'hi', max_tokens: 2 })).status) !== 200)
      await new Promise((res) => setTimeout(res, 50));
    assert.equal(st, 200);
  });
});

describe('API key', () => {
  let srv;
  before(async () => { srv = await startServer({ env: { MOESERVE_API_KEY: 's3cret' } }); });
  after(async () => { await srv.stop(); });

  test('401 without the key; 200 with it; /health and /metrics stay open', async () => {
    const r = await postJSON(srv.base, '/v1/completions', { prompt: 'hi', max_tokens: 1 });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.type, 'authentication_error');
    const wrong = await postJSON(srv.base, '/v1/completions', { prompt: 'hi', max_tokens: 1 }, { headers: { Authorization: 'Bearer s3cre' } });
    assert.equal(wrong.status, 401);
    const bad = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'nope', maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e.status === 401);
    const good = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 's3cret', maxRetries: 0 });
    const m = await good.models.list();
    assert.equal(m.data[0].id, 'tiny');
    assert.equal((await request(srv.base, 'GET', '/health')).status, 200);
    assert.equal((await request(srv.base, 'GET', '/metrics')).status, 200);
  });
});
