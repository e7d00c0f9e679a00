// Engine trouble, through the server's test hooks (MOESERVE_TEST_*, read once at start):
// a wedged engine thread turns /health 503 "engine stalled" and back to 200 once it moves again;
// an engine failure inside a stream ends it with `data: {"error":...}` then `data: [DONE]`,
// and a non-streamed request with a 500 server_error; an engine thread that dies (exits) fails its
// requests (500, or an error event in a stream), refuses new ones with 503, and /health turns 503.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { metrics, waitFor, sseData } from '../server/helpers.mjs';
import { rawHttp, httpBytes, sleep, startServerN, openStream, parseResponse } from './raw.mjs';

const note = (s) => console.log('# ' + s);

test('a stalled engine thread: /health 503 "engine stalled", then 200 again; the request still completes', async () => {
  const srv = await startServerN({ args: ['--engine-stall-timeout', '0.5'], env: { MOESERVE_TEST_STALL_ENGINE_MS: '4000' } });
  try {
    assert.equal((await rawHttp(srv.port, httpBytes('GET', '/health'))).status, 200);
    // idle for longer than the stall timeout is not a stall (the idle engine loop still ticks)
    await sleep(1500);
    assert.equal((await rawHttp(srv.port, httpBytes('GET', '/health'))).status, 200);
    const t0 = performance.now();
    const s = openStream(srv.port, '/v1/completions', { prompt: 'Hi', max_tokens: 5, ignore_eos: true, stream: true });
    let h;
    await waitFor(async () => (h = await rawHttp(srv.port, httpBytes('GET', '/health'))).status === 503, 3500, '/health 503');
    const t503 = performance.now() - t0;
    assert.deepEqual(h.json, { status: 'unavailable', reason: 'engine stalled' });
    await waitFor(async () => (await rawHttp(srv.port, httpBytes('GET', '/health'))).status === 200, 10000, '/health 200 again');
    const t200 = performance.now() - t0;
    note(`engine wedged for 4 s (stall timeout 0.5 s): /health 503 after ${t503.toFixed(0)} ms, 200 again after ${t200.toFixed(0)} ms`);
    assert.ok(t503 >= 450, `503 after ${t503} ms: before the stall timeout`);
    assert.ok(t200 > 3000, `${t200}`);
    const events = sseData(parseResponse(Buffer.from(await s.done)).body);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(JSON.parse(events.at(-2)).choices[0].finish_reason, 'length');
  } finally {
    await srv.stop();
  }
});

test('an engine failure inside a stream: data: {"error":...} then [DONE]; not streamed: 500', async () => {
  const srv = await startServerN({ env: { MOESERVE_TEST_FAIL_AFTER_TOKENS: '3' } });
  try {
    const before = await metrics(srv.base);
    for (const [path, body] of [['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }], ['/v1/completions', { prompt: 'hi' }]]) {
      const s = openStream(srv.port, path, { ...body, max_tokens: 20, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
      const text = await s.done;
      assert.match(text, /^HTTP\/1\.1 200/);
      const events = sseData(parseResponse(Buffer.from(text)).body);
      assert.equal(events.at(-1), '[DONE]', text.slice(-300));
      const errs = events.filter((e) => e.startsWith('{"error"'));
      assert.equal(errs.length, 1, text.slice(-500));
      const err = JSON.parse(errs[0]).error;
      assert.equal(err.type, 'server_error');
      assert.match(err.message, /generation failed: injected failure/);
      // nothing after the error but the usage chunk and [DONE]
      const after = events.slice(events.indexOf(errs[0]) + 1, -1).map((e) => JSON.parse(e));
      assert.ok(after.every((c) => c.choices.length === 0 && c.usage), JSON.stringify(after));
    }
    const r = await rawHttp(srv.port, httpBytes('POST', '/v1/completions', { body: JSON.stringify({ prompt: 'hi', max_tokens: 20, ignore_eos: true }) }));
    assert.equal(r.status, 500);
    assert.equal(r.json.error.type, 'server_error');
    // a request that ends before the failure point is fine, and the engine holds nothing
    const ok = await rawHttp(srv.port, httpBytes('POST', '/v1/completions', { body: JSON.stringify({ prompt: 'hi', max_tokens: 2, ignore_eos: true }) }));
    assert.equal(ok.status, 200, ok.body);
    const m = await waitFor(async () => {
      const x = await metrics(srv.base);
      return x['moeserve:kv_cache_usage_perc'] === 0 && x['moeserve:num_requests_running'] === 0 ? x : null;
    }, 5000, 'the KV pool to empty');
    const key = 'moeserve:request_success_total{finished_reason="error",model_name="tiny"}';
    assert.equal(m[key] - before[key], 3);
    assert.equal((await rawHttp(srv.port, httpBytes('GET', '/health'))).status, 200);
  } finally {
    await srv.stop();
  }
});

// Resolves with p's value, or rejects after ms (scaled for slow, e.g. sanitized, builds): a
// request that never ends fails the test instead of hanging it.
function within(p, ms, what) {
  const scaled = ms * Number(process.env.MS_TEST_TIME_SCALE || 1);
  let t;
  return Promise.race([p, new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no end after ${scaled} ms`)), scaled); })])
    .finally(() => clearTimeout(t));
}

test('the engine thread dies: requests in flight end with an error, new ones get 503, /health 503, SIGTERM exits 0', async () => {
  // the hook makes the engine thread pthread_exit after 400 steps, its requests still queued
  const srv = await startServerN({ env: { MOESERVE_TEST_KILL_ENGINE_AFTER_STEPS: '400' } });
  try {
    assert.equal((await rawHttp(srv.port, httpBytes('GET', '/health'))).status, 200);
    const before = await metrics(srv.base);
    // in flight when it dies (each needs 2,000 steps): a completions stream, a chat stream and a
    // non-streamed request with two choices
    const long = { max_tokens: 2000, ignore_eos: true };
    const streams = [['/v1/completions', { prompt: 'Hi', ...long }], ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], ...long }]]
      .map(([p, b]) => openStream(srv.port, p, { ...b, stream: true }));
    const plain = rawHttp(srv.port, httpBytes('POST', '/v1/completions', { body: JSON.stringify({ prompt: 'Hello', n: 2, ...long }) }), { timeoutMs: 60000 });
    const texts = await within(Promise.all(streams.map((s) => s.done)), 30000, 'the in-flight streams');
    for (const text of texts) {
      assert.match(text, /^HTTP\/1\.1 200/);
      const events = sseData(parseResponse(Buffer.from(text)).body);
      assert.equal(events.at(-1), '[DONE]', text.slice(-300));
      const errs = events.filter((e) => e.startsWith('{"error"'));
      assert.equal(errs.length, 1, text.slice(-500));
      assert.equal(events.indexOf(errs[0]), events.length - 2, 'the error is the last event before [DONE]');
      assert.deepEqual(JSON.parse(errs[0]).error, { message: 'generation failed: the engine stopped unexpectedly', type: 'server_error', param: null, code: 500 });
      const tokens = events.slice(0, -2).map((e) => JSON.parse(e).choices[0]).filter((c) => (c.text ?? c.delta?.content ?? c.delta?.reasoning_content ?? '') !== '');
      assert.ok(tokens.length > 0, 'the stream had produced tokens: it was in flight, not refused');
    }
    const r = await within(plain, 30000, 'the in-flight non-streamed request');
    assert.equal(r.status, 500, r.body);
    assert.deepEqual(r.json.error, { message: 'generation failed: the engine stopped unexpectedly', type: 'server_error', param: null, code: 500 });
    // alive is published false before any request hears of the death: /health is 503 already
    const h = await rawHttp(srv.port, httpBytes('GET', '/health'));
    assert.equal(h.status, 503);
    assert.deepEqual(h.json, { status: 'unavailable', reason: 'engine thread is not running' });
    // new requests, streamed or not, are refused at once with 503 (before any stream starts)
    for (const [p, b] of [['/v1/completions', { prompt: 'x', max_tokens: 3 }], ['/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], max_tokens: 3 }]]) {
      for (const stream of [false, true]) {
        const x = await rawHttp(srv.port, httpBytes('POST', p, { body: JSON.stringify({ ...b, stream }) }), { timeoutMs: 10000 });
        assert.equal(x.status, 503, `${p} stream=${stream}: ${x.body}`);
        assert.equal(x.headers['content-type'], 'application/json');
        assert.deepEqual(x.json.error, { message: 'the engine is not running (it stopped unexpectedly)', type: 'server_error', param: null, code: 'engine_unavailable' });
      }
    }
    // everything the engine held is released, and the metrics say so
    const m = await metrics(srv.base);
    assert.equal(m['moeserve:engine_alive'], 0);
    assert.equal(m['moeserve:num_requests_running'], 0);
    assert.equal(m['moeserve:num_requests_waiting'], 0);
    assert.equal(m['moeserve:kv_cache_usage_perc'], 0);
    const key = 'moeserve:request_success_total{finished_reason="error",model_name="tiny"}';
    assert.equal(m[key] - before[key], 4, 'the four in-flight choices ended as errors');
    assert.match(srv.log(), /engine thread exited unexpectedly after 400 steps; failing 4 queued request\(s\)/);
    // the other routes still answer
    assert.equal((await rawHttp(srv.port, httpBytes('POST', '/tokenize', { body: '{"prompt":"hi"}' }))).status, 200);
  } finally {
    await srv.stop(); // SIGTERM: exit 0 within the test's time
  }
});
