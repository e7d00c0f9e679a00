// Shared helpers of the server tests: start a real `moeserve serve` on a free loopback port
// (--port 0; the port is read from its "ready" log line), talk to it, stop it.
import { spawn } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import http from 'node:http';
import assert from 'node:assert/strict';

export const BIN = process.env.MOESERVE_BIN || path.resolve('build/moeserve');
export const MODELS = process.env.MS_MODELS || path.resolve('build/models');
export const SOURCE_DIR = process.env.MS_SOURCE_DIR || path.resolve('.');
export const TINY = path.join(MODELS, 'tiny');

// Sanitized builds (docs/SANITIZERS.md) run many times slower: every deadline a test sets (a wait,
// a timeout, an upper bound on a latency) is multiplied by MS_TEST_TIME_SCALE, which
// tests/CMakeLists.txt sets to 1 in the normal build.
export const TIME_SCALE = Math.max(1, Number(process.env.MS_TEST_TIME_SCALE) || 1);
export const scaled = (ms) => ms * TIME_SCALE;

// Starts a server; resolves once it logs "ready". opts.args are extra flags, opts.env extra
// environment variables, opts.model a model directory (default: the tiny test model).
export async function startServer(opts = {}) {
  const args = ['serve', '--model', opts.model || TINY, '--port', '0', '--threads', '2', ...(opts.args || [])];
  const child = spawn(BIN, args, {
    env: { ...process.env, ...(opts.env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const onData = (d) => { log += d.toString(); };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), scaled(30000));
    const check = () => {
      const m = log.match(/ready: .* on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    };
    child.stderr.on('data', check);
    child.on('exit', () => { clearTimeout(timer); reject(new Error('server exited:\n' + log)); });
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    port, base, child, exited,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const r = await exited;
      assert.equal(r.code, 0, 'server exit code after SIGTERM; log:\n' + log.slice(-3000));
      assert.doesNotMatch(log, /AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:/, 'sanitizer report in the server log');
      return r;
    },
  };
}

// One HTTP request with node's http module (no client-side cleverness). Resolves with
// { status, headers, body } (body as a string).
export function request(base, method, p, { headers = {}, body, agent } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, base);
    const data = body === undefined ? undefined : (typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method, agent,
      headers: { ...(data !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {}), ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

export async function getJSON(base, p, opts) {
  const r = await request(base, 'GET', p, opts);
  return { ...r, json: JSON.parse(r.body) };
}

export async function postJSON(base, p, body, opts = {}) {
  const r = await request(base, 'POST', p, { ...opts, body });
  let json;
  try { json = JSON.parse(r.body); } catch { json = undefined; }
  return { ...r, json };
}

// Parses Prometheus text into { 'name{labels}': value } and { name: value } (first series).
export async function metrics(base) {
  const r = await request(base, 'GET', '/metrics');
  assert.equal(r.status, 200);
  const out = {};
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([^{ ]+)(\{[^}]*\})? (.+)$/);
    if (!m) continue;
    out[m[1] + (m[2] || '')] = Number(m[3]);
    if (!(m[1] in out)) out[m[1]] = Number(m[3]);
  }
  return out;
}

// Polls fn until it returns something truthy; the deadline is scaled by TIME_SCALE.
export async function waitFor(fn, timeoutMs = 10000, what = 'condition') {
  const until = Date.now() + scaled(timeoutMs);
  let last;
  while (Date.now() < until) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function haveFile(p) {
  try { fs.accessSync(p); return true; } catch { return false; }
}

// Splits an SSE body into events' data payloads (comments dropped).
export function sseData(body) {
  return body.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
}
