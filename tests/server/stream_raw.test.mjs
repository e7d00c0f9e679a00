// Raw HTTP (node's net module, no SDK): the SSE bytes and headers exactly; ": ping" comments
// while a request waits; a client that disconnects mid-stream aborts its request at once (the
// KV blocks are freed and the abort counter counts it, both seen in /metrics).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, metrics, waitFor, request } from './helpers.mjs';

let srv;
before(async () => { srv = await startServer({ args: ['--max-num-seqs', '1', '--sse-ping-interval', '0.1'] }); });
after(async () => { await srv.stop(); });

// Sends a raw HTTP/1.1 request and collects the whole response (Connection: close).
function rawRequest(port, path, body, onData) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    sock.on('connect', () => {
      const data = JSON.stringify(body);
      sock.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(data)}\r\nConnection: close\r\n\r\n${data}`);
    });
    sock.on('data', (d) => { chunks.push(d); if (onData) onData(Buffer.concat(chunks).toString(), sock); });
    sock.on('end', () => resolve(Buffer.concat(chunks).toString()));
    sock.on('close', () => resolve(Buffer.concat(chunks).toString()));
    sock.on('error', reject);
  });
}

function splitResponse(raw) {
  const at = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, at).split('\r\n');
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = raw.slice(at + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    let out = '', rest = Buffer.from(body);
    for (;;) {
      const nl = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, nl).toString(), 16);
      if (!size) break;
      out += rest.slice(nl + 2, nl + 2 + size).toString();
      rest = rest.slice(nl + 2 + size + 2);
    }
    body = out;
  }
  return { status: head[0], headers, body };
}

test('SSE bytes and headers, chat', async () => {
  const raw = await rawRequest(srv.port, '/v1/chat/completions', {
    messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, temperature: 0, ignore_eos: true,
    stream: true, stream_options: { include_usage: true },
  });
  const r = splitResponse(raw);
  assert.equal(r.status, 'HTTP/1.1 200 OK');
  assert.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8');
  assert.equal(r.headers['cache-control'], 'no-cache');
  assert.equal(r.headers['x-accel-buffering'], 'no');
  assert.ok(r.headers['x-request-id']);
  const body = r.body.replace(/^: ping\n\n/gm, '');
  // exactly: one "data: <json>\n\n" per event, then "data: [DONE]\n\n", nothing else
  assert.match(body, /^(data: \{[^\n]*\}\n\n)+data: \[DONE\]\n\n$/);
  const events = body.split('\n\n').filter(Boolean).map((e) => e.slice(6));
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const ids = new Set(chunks.map((c) => c.id));
  assert.equal(ids.size, 1, 'one id for the whole stream');
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  assert.equal(chunks[0].choices[0].finish_reason, null);
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, 5);
  const content = chunks.slice(1, -1);
  // one chunk per token, except that tokens already waiting when the connection wakes up are
  // sent together
  assert.ok(content.length >= 1 && content.length <= 5, `${content.length} content chunks`);
  for (const c of content.slice(0, -1)) {
    assert.equal(c.choices[0].finish_reason, null);
    assert.equal(c.usage, null);
    assert.equal(c.object, 'chat.completion.chunk');
  }
  assert.equal(content.at(-1).choices[0].finish_reason, 'length', 'the last content chunk carries finish_reason');
  assert.equal(typeof content.at(-1).choices[0].delta.content, 'string');
});

test('SSE, completions without usage', async () => {
  const raw = await rawRequest(srv.port, '/v1/completions', { prompt: 'Hi', max_tokens: 3, temperature: 0, ignore_eos: true, stream: true });
  const r = splitResponse(raw);
  const body = r.body.replace(/^: ping\n\n/gm, '');
  assert.match(body, /^(data: \{[^\n]*\}\n\n){1,3}data: \[DONE\]\n\n$/);
  const chunks = body.split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
  assert.ok(chunks.every((c) => c.object === 'text_completion' && !('usage' in c)));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
});

test('": ping" comments while a request waits in the queue', async () => {
  // One running slot: a long request occupies it while the streamed one waits; once a ping has
  // arrived the long one is cut off (its client disconnects) and the waiting one runs.
  let longSock = null;
  const long = rawRequest(srv.port, '/v1/completions', { prompt: 'Hi', max_tokens: 6000, ignore_eos: true, stream: true },
    (text, sock) => { longSock = sock; });
  await waitFor(() => longSock, 5000, 'the long request to start');
  const raw = await rawRequest(srv.port, '/v1/completions', { prompt: 'Hello', max_tokens: 2, stream: true },
    (text) => { if (text.includes(': ping\n\n')) longSock.destroy(); });
  const r = splitResponse(raw);
  assert.match(r.body, /^: ping\n\n/m, 'a ping comment');
  assert.match(r.body, /data: \[DONE\]\n\n$/);
  await long;
});

test('client disconnect mid-stream aborts the request and frees its KV blocks', async () => {
  const before = await metrics(srv.base);
  let got = 0;
  await rawRequest(srv.port, '/v1/completions', { prompt: 'Once upon a time', max_tokens: 8000, ignore_eos: true, stream: true },
    (text, sock) => {
      got = (text.match(/data: \{/g) || []).length;
      if (got >= 5) sock.destroy();
    });
  assert.ok(got >= 5);
  const m = await waitFor(async () => {
    const x = await metrics(srv.base);
    const abort = 'moeserve:request_success_total{finished_reason="abort",model_name="tiny"}';
    return x['moeserve:kv_cache_usage_perc'] === 0 && x['moeserve:num_requests_running'] === 0 &&
      x['moeserve:client_disconnect_aborts_total'] === before['moeserve:client_disconnect_aborts_total'] + 1 &&
      x[abort] === before[abort] + 1 ? x : null;
  }, 5000, 'KV freed and the abort counted');
  const generated = m['moeserve:generation_tokens_total'] - before['moeserve:generation_tokens_total'];
  assert.ok(generated < 4000, `aborted at once (${generated} tokens generated)`);
  // the server is fine afterwards
  assert.equal((await request(srv.base, 'GET', '/health')).status, 200);
});

test('client disconnect of a non-streamed request aborts it too', async () => {
  const before = await metrics(srv.base);
  const sock = net.connect(srv.port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  const data = JSON.stringify({ prompt: 'Hi', max_tokens: 8000, ignore_eos: true });
  sock.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${data.length}\r\n\r\n${data}`);
  await waitFor(async () => (await metrics(srv.base))['moeserve:num_requests_running'] === 1, 5000, 'the request to run');
  sock.destroy();
  await waitFor(async () => {
    const x = await metrics(srv.base);
    return x['moeserve:kv_cache_usage_perc'] === 0 && x['moeserve:num_requests_running'] === 0 &&
      x['moeserve:client_disconnect_aborts_total'] === before['moeserve:client_disconnect_aborts_total'] + 1;
  }, 5000, 'KV freed and the abort counted');
});
