// Two moeserve replicas behind a real nginx on loopback, configured with docker/nginx.conf (the
// compose file's), replacing only the upstream addresses, the listen address and file paths.
// Checks: requests are spread over both replicas; SSE streams arrive chunk by chunk through
// nginx; a SIGTERM to one replica while streams run through it loses nothing (its streams
// complete, new requests go to the other one) and its /health answers 503 while it drains.
// usage: node test_nginx_lb.mjs MOESERVE MODEL_DIR NGINX_CONF WORK_DIR
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

const [moeserve, model, nginxConf, work] = process.argv.slice(2);
mkdirSync(work, { recursive: true });
let passed = 0, failed = 0;
const children = [];
function check(what, cond, detail = "") {
  if (cond) { passed++; console.log(`ok   ${what}`); }
  else { failed++; console.log(`FAIL ${what} ${detail}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Sanitized builds run many times slower: deadlines are multiplied by MS_TEST_TIME_SCALE
// (tests/CMakeLists.txt; 1 in the normal build).
const SCALE = Math.max(1, Number(process.env.MS_TEST_TIME_SCALE) || 1);
function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}
async function waitHealthy(url, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if ((await fetch(url)).status === 200) return true; } catch { /* not up yet */ }
    await sleep(100);
  }
  return false;
}
function startReplica(port, name) {
  const p = spawn(moeserve, ["serve", "--model", model, "--host", "127.0.0.1", "--port", String(port),
    "--shutdown-timeout", String(30 * SCALE), "--max-num-seqs", "8", "--served-model-name", "tiny"],
    { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  p.stderr.on("data", (d) => { log += d; });
  p.exitCode_ = new Promise((r) => p.on("exit", (code) => r(code)));
  p.log = () => log;
  p.name = name;
  children.push(p);
  return p;
}

function nginxConfig(upstreams, port) {
  let conf = readFileSync(nginxConf, "utf8");
  conf = conf.replace("server moeserve-1:8000", `server 127.0.0.1:${upstreams[0]}`)
    .replace("server moeserve-2:8000", `server 127.0.0.1:${upstreams[1]}`)
    .replace("listen 8080;", `listen 127.0.0.1:${port};`)
    .replace("pid /tmp/nginx.pid;", `pid ${work}/nginx.pid;`)
    .replace("access_log /dev/stdout;", `access_log ${work}/access.log;`)
    .replace("error_log /dev/stderr warn;", `error_log ${work}/error.log warn;`)
    .replace("http {", `http {\n    client_body_temp_path ${work}/body;\n    proxy_temp_path ${work}/proxy;\n` +
      `    fastcgi_temp_path ${work}/fcgi;\n    uwsgi_temp_path ${work}/uwsgi;\n    scgi_temp_path ${work}/scgi;`);
  const path = join(work, "nginx.conf");
  writeFileSync(path, conf);
  return path;
}

async function chat(base, body) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "Hello" }], ...body }),
  });
  return r;
}

/* Reads an SSE stream, noting when each network read arrived. */
async function readStream(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  const arrivals = [];
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    arrivals.push(Date.now());
    text += dec.decode(value, { stream: true });
  }
  const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
  return { arrivals, events, done: events[events.length - 1] === "[DONE]" };
}
function streamTokens(events) {
  let n = 0, finish = null;
  for (const e of events) {
    if (e === "[DONE]") continue;
    const c = JSON.parse(e);
    if (c.usage) n = c.usage.completion_tokens;
    for (const ch of c.choices || []) if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { n, finish };
}
async function requestsServed(port) {
  const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  for (const line of m.split("\n"))
    if (line.startsWith("moeserve:request_success_total")) total += Number(line.split(" ").pop());
  return total;
}

async function main() {
  const [p1, p2, pn] = [await freePort(), await freePort(), await freePort()];
  const r1 = startReplica(p1, "replica-1"), r2 = startReplica(p2, "replica-2");
  check("replica 1 healthy", await waitHealthy(`http://127.0.0.1:${p1}/health`, 60000 * SCALE), r1.log());
  check("replica 2 healthy", await waitHealthy(`http://127.0.0.1:${p2}/health`, 60000 * SCALE), r2.log());
  const conf = nginxConfig([p1, p2], pn);
  const t = spawnSync("nginx", ["-t", "-c", conf, "-p", work], { encoding: "utf8" });
  check("nginx accepts the compose configuration", t.status === 0, t.stderr);
  const nginx = spawn("nginx", ["-c", conf, "-p", work, "-g", "daemon off;"], { stdio: "ignore" });
  children.push(nginx);
  const base = `http://127.0.0.1:${pn}`;
  check("nginx proxies /health", await waitHealthy(`${base}/health`, 10000 * SCALE));

  // 1. spread: 16 requests, 4 at a time
  for (let i = 0; i < 4; i++)
    await Promise.all([0, 1, 2, 3].map(() => chat(base, { max_tokens: 4 }).then((r) => r.json())));
  const [s1, s2] = [await requestsServed(p1), await requestsServed(p2)];
  check(`requests spread over both replicas (${s1} + ${s2})`, s1 > 0 && s2 > 0 && s1 + s2 === 16);

  // 2. SSE passes through chunk by chunk
  const t0 = Date.now();
  const res = await chat(base, { stream: true, max_tokens: 400, ignore_eos: true, stream_options: { include_usage: true } });
  check("SSE content type through nginx", (res.headers.get("content-type") || "").startsWith("text/event-stream"));
  const st = await readStream(res);
  const total = Date.now() - t0, firstAt = st.arrivals[0] - t0;
  check(`stream arrived in many reads (${st.arrivals.length}), the first after ${firstAt} ms of ${total} ms`,
    st.arrivals.length >= 20 && firstAt < total / 2);
  check("stream complete with [DONE]", st.done && streamTokens(st.events).n === 400);

  // 3. SIGTERM to replica 1 while streams run through both
  const streams = [0, 1, 2, 3].map(() => chat(base, { stream: true, max_tokens: 600, ignore_eos: true,
    stream_options: { include_usage: true } }).then(readStream));
  await sleep(400);
  r1.kill("SIGTERM");
  await sleep(100);
  let drain503 = false;
  for (let i = 0; i < 20 * SCALE && !drain503; i++) {
    try { drain503 = (await fetch(`http://127.0.0.1:${p1}/health`)).status === 503; } catch { break; }
    await sleep(50);
  }
  check("draining replica's /health answers 503", drain503);
  const during = await Promise.all([0, 1, 2, 3].map(() => chat(base, { max_tokens: 4 }).then((r) => r.status)));
  check(`new requests during the drain succeed (${during})`, during.every((s) => s === 200));
  const results = await Promise.all(streams);
  const ok = results.filter((r) => r.done && streamTokens(r.events).n === 600 && streamTokens(r.events).finish === "length");
  check(`all in-flight streams completed (${ok.length}/4)`, ok.length === 4);
  const code = await Promise.race([r1.exitCode_, sleep(35000 * SCALE).then(() => "timeout")]);
  check(`drained replica exited 0 (${code})`, code === 0, r1.log().slice(-2000));
  const after = await chat(base, { max_tokens: 4 });
  check("the other replica still serves", after.status === 200);
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL ${e.stack || e}`);
} finally {
  // nginx's master gets SIGTERM and time to stop its workers: a SIGKILLed master leaves them
  // running (orphaned, still listening on the test's port)
  const exits = children.filter((c) => c.exitCode === null && c.signalCode === null)
    .map((c) => new Promise((r) => { c.once("exit", r); c.kill(c.spawnargs[0] === "nginx" ? "SIGTERM" : "SIGKILL"); }));
  await Promise.race([Promise.all(exits), sleep(5000)]);
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
