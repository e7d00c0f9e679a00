// Raw HTTP/1.1 over node:net for the hardening tests: the bytes sent are exactly the bytes given
// (no client-side normalisation of methods, paths, headers or bodies).
import net from 'node:net';

// Parses one HTTP response (Content-Length, chunked, or up to the close).
export function parseResponse(buf) {
  const at = buf.indexOf('\r\n\r\n');
  if (at < 0) return null;
  const head = buf.subarray(0, at).toString('latin1').split('\r\n');
  const m = head[0].match(/^HTTP\/1\.[01] (\d{3})/);
  if (!m) return null;
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  let rest = buf.subarray(at + 4), body;
  if (headers['transfer-encoding'] === 'chunked') {
    const parts = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) return null;
      const size = parseInt(rest.subarray(0, nl).toString(), 16);
      if (!size) break;
      if (rest.length < nl + 2 + size + 2) return null;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  } else if ('content-length' in headers) {
    const n = Number(headers['content-length']);
    if (rest.length < n) return null;
    body = rest.subarray(0, n);
  } else {
    body = rest;
  }
  let json;
  try { json = JSON.parse(body.toString()); } catch { json = undefined; }
  return { status: Number(m[1]), headers, body: body.toString(), json };
}

// Sends `bytes` on a fresh connection and resolves with the parsed response once it is complete
// (or the server closes): { status, headers, body, json, closed, ms } or { status: 0, error }.
// timeoutMs is a deadline, scaled by MS_TEST_TIME_SCALE (tests/server/helpers.mjs).
export function rawHttp(port, bytes, { timeoutMs = 15000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0), done = false;
    const finish = (extra) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const r = parseResponse(buf) || { status: 0, raw: buf.toString('latin1').slice(0, 300) };
      resolve({ ...r, ...extra, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish({ error: 'timeout' }), scaled(timeoutMs));
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); if (parseResponse(buf)) finish({}); });
    sock.on('error', (e) => finish({ error: e.code }));
    sock.on('close', () => finish({ closed: true }));
  });
}

// A request's bytes. body: string or Buffer; headers: extra header lines (object or raw string).
export function httpBytes(method, path, { body, headers = {}, contentType = 'application/json', close = true } = {}) {
  let h = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  if (close) h += 'Connection: close\r\n';
  if (typeof headers === 'string') h += headers;
  else for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  const b = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
  if (b) {
    if (contentType) h += `Content-Type: ${contentType}\r\n`;
    h += `Content-Length: ${b.length}\r\n`;
  }
  return Buffer.concat([Buffer.from(h + '\r\n', 'latin1'), b || Buffer.alloc(0)]);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts `moeserve serve` like tests/server/helpers.mjs, with the open-file limit raised to
// `nofile` first (through sh's ulimit; fails the start if the hard limit is lower).
import { spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { after } from 'node:test';

// Servers a failed test did not stop: killed when the file's tests are over, so the test
// process ends (with the failure) instead of waiting on its children until CTest's timeout.
const liveServers = new Set();
after(() => { for (const c of liveServers) c.kill('SIGKILL'); });
import { BIN, TINY, scaled } from '../server/helpers.mjs';

export function hardNofile() {
  return Number(spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()) || Infinity;
}

export async function startServerN(opts = {}) {
  const args = ['serve', '--model', TINY, '--port', '0', '--threads', '2', ...(opts.args || [])];
  const nofile = opts.nofile || 1024;
  const child = spawn('sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, BIN, ...args], {
    env: { ...process.env, ...(opts.env || {}) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  liveServers.add(child);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { liveServers.delete(child); resolve({ code, signal }); }));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), scaled(30000));
    child.stderr.on('data', () => {
      const m = log.match(/ready: .* on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', () => { clearTimeout(timer); reject(new Error('server exited:\n' + log)); });
  });
  return {
    port, base: `http://127.0.0.1:${port}`, child, exited, log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const r = await exited;
      assert.equal(r.code, 0, 'server exit code after SIGTERM; log:\n' + log.slice(-3000));
      assert.doesNotMatch(log, /AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:/, 'sanitizer report in the server log');
      return r;
    },
  };
}

// A streamed request on its own socket. Returns { sock, text(), tokens(), done } where done
// resolves when the server ends the response or the socket closes; tokens() counts data events.
export function openStream(port, path, body, { onData } = {}) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  const data = JSON.stringify(body);
  sock.on('connect', () => sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(data)}\r\nConnection: close\r\n\r\n${data}`));
  const done = new Promise((resolve) => {
    sock.on('data', (d) => { buf += d; if (onData) onData(buf, sock); });
    sock.on('error', () => resolve(buf));
    sock.on('close', () => resolve(buf));
  });
  return { sock, done, text: () => buf, tokens: () => (buf.match(/data: \{/g) || []).length };
}
