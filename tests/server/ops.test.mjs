// Operations: graceful shutdown on SIGTERM (running requests finish, /health turns 503, new
// requests get 503, exit 0), the shutdown timeout (what still runs is
// aborted, the stream still ends properly), and --help listing every flag with its variable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { startServer, request, postJSON, BIN, sseData, scaled } from './helpers.mjs';

function streamRequest(base, body, onFirst) {
  return new Promise((resolve, reject) => {
    const u = new URL('/v1/completions', base);
    const data = JSON.stringify(body);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let text = '', first = true;
      res.on('data', (c) => { text += c; if (first && text.includes('data: {')) { first = false; onFirst(); } });
      res.on('end', () => resolve({ status: res.statusCode, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

test('SIGTERM: running streams finish, /health 503, new requests 503, exit 0', async () => {
  const srv = await startServer({ args: ['--shutdown-timeout', String(scaled(30000) / 1000)] });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await request(srv.base, 'GET', '/health', { agent })).status, 200);
  let signalled;
  const sigDone = new Promise((r) => { signalled = r; });
  // long enough to still run after the checks below (a few seconds on a loaded machine)
  const stream = streamRequest(srv.base, { prompt: 'Hi', max_tokens: 3000, ignore_eos: true, stream: true }, () => {
    srv.child.kill('SIGTERM');
    signalled();
  });
  await sigDone;
  // the open keep-alive connection still answers, now 503
  const until = Date.now() + scaled(5000);
  let h;
  while (Date.now() < until && (h = await request(srv.base, 'GET', '/health', { agent })).status === 200)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(h.status, 503);
  assert.equal(JSON.parse(h.body).status, 'unavailable');
  // new connections too: health checks read 503, new requests are refused with 503 (a load
  // balancer retries them on another replica)
  assert.equal((await request(srv.base, 'GET', '/health', { agent: false })).status, 503);
  const refused = await postJSON(srv.base, '/v1/completions', { prompt: 'Hi', max_tokens: 2 }, { agent: false });
  assert.equal(refused.status, 503);
  assert.equal(refused.json.error.code, 'shutting_down');
  const r = await stream;
  assert.equal(r.status, 200);
  const events = sseData(r.text);
  assert.equal(events.at(-1), '[DONE]');
  assert.equal(JSON.parse(events.at(-2)).choices[0].finish_reason, 'length', 'the running request finished');
  agent.destroy();
  const ex = await srv.exited;
  assert.equal(ex.code, 0, srv.log());
  assert.match(srv.log(), /shutting down/);
});

test('shutdown timeout: what still runs is aborted, the stream ends with [DONE], exit 0', async () => {
  const srv = await startServer({ args: ['--shutdown-timeout', '0.3'] });
  const t0 = Date.now();
  const stream = streamRequest(srv.base, { prompt: 'Hi', max_tokens: 5000, ignore_eos: true, stream: true },
    () => srv.child.kill('SIGINT'));
  const r = await stream;
  const events = sseData(r.text);
  assert.equal(events.at(-1), '[DONE]');
  assert.equal(JSON.parse(events.at(-2)).choices[0].finish_reason, 'abort');
  const ex = await srv.exited;
  assert.equal(ex.code, 0, srv.log());
  assert.ok(Date.now() - t0 < scaled(10000));
});

test('serve --help lists every flag and its environment variable', () => {
  const help = execFileSync(BIN, ['serve', '--help']).toString();
  for (const [flag, env] of [['--host', 'MOESERVE_HOST'], ['--port', 'MOESERVE_PORT'], ['--api-key', 'MOESERVE_API_KEY'],
    ['--served-model-name', 'MOESERVE_SERVED_MODEL_NAME'], ['--max-body-size', 'MOESERVE_MAX_BODY_SIZE'],
    ['--max-queued-requests', 'MOESERVE_MAX_QUEUED_REQUESTS'], ['--sse-ping-interval', 'MOESERVE_SSE_PING_INTERVAL'],
    ['--thinking-budget', 'MOESERVE_THINKING_BUDGET'], ['--reasoning-field', 'MOESERVE_REASONING_FIELD'],
    ['--shutdown-timeout', 'MOESERVE_SHUTDOWN_TIMEOUT'], ['--max-num-seqs', 'MOESERVE_MAX_NUM_SEQS']]) {
    assert.ok(help.includes(flag), flag);
    assert.ok(help.includes(env), env);
  }
});

test('a bad flag value is a usage error (exit 2)', () => {
  assert.throws(() => execFileSync(BIN, ['serve', '--model', 'x', '--reasoning-field', 'nope'], { stdio: 'pipe' }),
    (e) => e.status === 2);
});
