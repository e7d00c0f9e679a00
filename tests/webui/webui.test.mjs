// The chat page at / end to end in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core) against real `moeserve serve` processes:
//   * the pattern model (tests/pattern_model.cmake), whose exact greedy completions pattern.json
//     lists: the thinking and the answer stream into their own blocks, thinking off, a thinking
//     budget, a tool call, the stats line, reload, export;
//   * the tiny random model with --api-key and no prefix caching: the key prompt, and the stop
//     button (the server counts the disconnect and the KV blocks go back to the pool);
//   * --no-webui: GET / is a 404;
//   * hostile text: `<img src=x onerror=...>` typed by the user and sent by the "model" (a
//     stream the test serves through page.route) renders as text and runs nothing, in a context
//     that bypasses the page's Content-Security-Policy so that only the renderer stands between
//     the text and the DOM (a control shows that this context would run such markup).
// MS_WEBUI_SCREENSHOT, when set, is where the screenshot goes (docs/webui.png is made so).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, request, metrics, waitFor, MODELS, TINY, haveFile, scaled } from '../server/helpers.mjs';

const CHROMIUM = process.env.MS_CHROMIUM || '/usr/bin/chromium';
const PATTERN = process.env.MS_PATTERN_MODEL || path.join(MODELS, 'pattern');
const skip = !haveFile(CHROMIUM) ? `${CHROMIUM} is missing (apt-get install chromium)`
  : !haveFile(path.join(PATTERN, 'pattern.json')) ? `no pattern model at ${PATTERN}` : false;
if (skip) console.log(`# SKIP webui tests: ${skip}`);

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const KEY = 'sk-webui-test';
const weatherTool = [{ type: 'function', function: { name: 'get_weather', description: 'Get the current weather for a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

// The reasoning and the answer of a pattern case, cut from its completion text as the server's
// parser is documented to (docs/API.md: no tags, no newlines around the thinking).
function split(c) {
  const t = c.completion_text.replace(/<\|im_end\|>$/, '');
  const m = t.match(/^<think>\n([\s\S]*?)\n<\/think>\n\n([\s\S]*)$/);
  return m ? { reasoning: m[1], answer: m[2], tokens: c.completion_ids.length - 1 } : { reasoning: null, answer: t, tokens: c.completion_ids.length - 1 };
}

async function launch(bypassCSP) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ms-webui-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: true, args: ARGS, bypassCSP, viewport: { width: 1280, height: 800 }, acceptDownloads: true,
  });
  return { ctx, close: async () => { await ctx.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

// Records, on every DOM change, the last assistant message's reasoning and answer text.
function recordStates(page) {
  return page.evaluate(() => {
    window.__states = [];
    const box = document.getElementById('messages');
    new MutationObserver(() => {
      const m = [...box.querySelectorAll('.msg.assistant')].pop();
      if (!m) return;
      const r = m.querySelector('.reasoning-body')?.textContent ?? '';
      const c = m.querySelector('.content')?.textContent ?? '';
      const last = window.__states[window.__states.length - 1];
      if (!last || last.r !== r || last.c !== c) window.__states.push({ r, c });
    }).observe(box, { childList: true, subtree: true, characterData: true });
  });
}

async function sendMessage(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

// Waits until the running answer is finished (the Send button is back) and returns the last
// assistant message's parts.
async function lastAnswer(page) {
  await page.waitForSelector('#stop', { state: 'hidden', timeout: scaled(30000) });
  return page.evaluate(() => {
    const m = [...document.querySelectorAll('#messages .msg.assistant')].pop();
    return {
      reasoning: m.querySelector('.reasoning-body')?.textContent ?? null,
      content: m.querySelector('.content').textContent,
      meta: m.querySelector('.meta').textContent,
      calls: [...m.querySelectorAll('.tool-call')].map((d) => ({ name: d.querySelector('.tool-name').textContent, args: d.querySelector('pre').textContent })),
      error: m.querySelector('.error')?.textContent ?? null,
    };
  });
}

describe('chat page', { skip }, () => {
  let pat, tiny, browser, page, cases;
  const requests = [], bodies = [], consoleErrors = [];
  before(async () => {
    const p = JSON.parse(fs.readFileSync(path.join(PATTERN, 'pattern.json'), 'utf8'));
    cases = Object.fromEntries(p.cases.map((c) => [c.name, split(c)]));
    pat = await startServer({ model: PATTERN, args: ['--served-model-name', 'pattern'] });
    tiny = await startServer({ model: TINY, args: ['--api-key', KEY, '--no-prefix-caching'] });
    browser = await launch(false);
    page = browser.ctx.pages()[0] || await browser.ctx.newPage();
    browser.ctx.on('request', (r) => {
      requests.push(r.url());
      if (r.url().endsWith('/v1/chat/completions')) bodies.push(JSON.parse(r.postData()));
    });
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
  });
  after(async () => {
    if (browser) await browser.close();
    if (pat) await pat.stop();
    if (tiny) await tiny.stop();
  });

  test('the page and its files: types, ETag revalidation, CSP', async () => {
    const r = await request(pat.base, 'GET', '/');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(r.headers['content-security-policy'], /default-src 'none'.*connect-src 'self'/);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.match(r.headers.etag, /^"[0-9a-f]{20}"$/);
    const again = await request(pat.base, 'GET', '/', { headers: { 'If-None-Match': r.headers.etag } });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    for (const [f, type] of [['app.js', 'text/javascript'], ['md.js', 'text/javascript'], ['style.css', 'text/css']]) {
      const a = await request(pat.base, 'GET', `/webui/${f}`);
      assert.equal(a.status, 200, f);
      assert.equal(a.headers['content-type'], `${type}; charset=utf-8`);
      assert.equal(a.body, fs.readFileSync(path.join(process.env.MS_SOURCE_DIR || '.', 'server', 'webui', f), 'utf8'), `${f} as in the source`);
    }
    assert.equal((await request(pat.base, 'GET', '/webui/none.js')).status, 404);
  });

  test('send a message: the thinking and the answer stream into their own blocks', async () => {
    const want = cases.long_think;
    await page.goto(pat.base + '/');
    await waitFor(() => page.textContent('#model-name').then((t) => t === 'pattern'), 10000, 'the model name');
    await recordStates(page);
    await sendMessage(page, 'Please ponder this question carefully.');
    const got = await lastAnswer(page);
    assert.equal(got.reasoning, want.reasoning);
    assert.equal(got.content, want.answer);
    assert.equal(got.error, null);
    const states = await page.evaluate(() => window.__states);
    const partialThinking = states.filter((s) => s.r && s.r.length < want.reasoning.length && !s.c);
    assert.ok(partialThinking.length >= 3, `the thinking grew in steps with no answer yet (${partialThinking.length} states)`);
    const firstAnswer = states.findIndex((s) => s.c);
    // Chunks that arrive together are rendered (and observed) together, so the state just before
    // the first answer may still hold partial thinking; what must never be seen is answer text
    // beside unfinished thinking.
    assert.ok(firstAnswer > 0 && states.every((s) => !s.c || s.r === want.reasoning), 'the answer starts after the whole thinking');
    // TTFT, rate and the server's token count (completion_tokens: every token but <|im_end|>)
    const m = got.meta.match(/^TTFT (\d+\.\d\d) s · (\d+\.\d) tokens\/s · (\d+) tokens \((\d+) thinking\) · stop$/);
    assert.ok(m, got.meta);
    assert.equal(Number(m[3]), want.tokens);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) < scaled(10) && Number(m[2]) > 0, got.meta);
    const body = bodies[bodies.length - 1];
    assert.equal(body.stream, true);
    assert.equal(body.enable_thinking, true);
    assert.equal(body.model, 'pattern');
  });

  test('thinking off, then a thinking budget, per message', async () => {
    await page.click('#new-chat');
    await page.uncheck('#thinking');
    await sendMessage(page, 'Hello!');
    let got = await lastAnswer(page);
    assert.equal(got.reasoning, null, 'no thinking block');
    assert.equal(got.content, cases.chat_nothink.answer);
    assert.equal(bodies[bodies.length - 1].enable_thinking, false);

    await page.click('#new-chat');
    await page.check('#thinking');
    await page.fill('#budget', '40');
    await sendMessage(page, 'Please ponder this question carefully.');
    got = await lastAnswer(page);
    assert.equal(bodies[bodies.length - 1].thinking_token_budget, 40);
    assert.ok(cases.long_think.reasoning.startsWith(got.reasoning.split('\n\nConsidering')[0]), got.reasoning);
    assert.match(got.reasoning, /Considering the limited time by the user, I have to give the solution based on the thinking directly now\.$/);
    assert.ok(got.reasoning.length < cases.long_think.reasoning.length);
    assert.equal(got.content, cases.long_think.answer);
    await page.fill('#budget', '');
    await page.dispatchEvent('#budget', 'change');
  });

  test('a tool call is shown', async () => {
    await page.click('#new-chat');
    await page.click('#settings summary');
    await page.fill('#tools', JSON.stringify(weatherTool));
    await sendMessage(page, 'What is the weather in Paris?');
    const got = await lastAnswer(page);
    assert.equal(got.reasoning, cases.tool_think.reasoning);
    assert.equal(got.content, '');
    assert.equal(got.calls.length, 1);
    assert.equal(got.calls[0].name, 'tool call: get_weather');
    const want = JSON.parse(cases.tool_think.answer.match(/<tool_call>\n(.*)\n<\/tool_call>/)[1]);
    assert.deepEqual(JSON.parse(got.calls[0].args), want.arguments);
    assert.match(got.meta, / · tool_calls$/);
    assert.deepEqual(bodies[bodies.length - 1].tools, weatherTool);
    await page.fill('#tools', '');
    await page.dispatchEvent('#tools', 'change');
    await page.click('#settings summary');
  });

  test('reload: the conversations are still there; export as JSON', async () => {
    await page.reload();
    const titles = await page.$$eval('#conversations li', (l) => l.map((x) => x.textContent));
    assert.deepEqual(titles, ['What is the weather in Paris?', 'Please ponder this question carefully.', 'Hello!',
      'Please ponder this question carefully.']);
    await page.click('#conversations li:nth-child(3)');
    const texts = await page.$$eval('#messages .msg .content', (l) => l.map((x) => x.textContent));
    assert.deepEqual(texts, ['Hello!', cases.chat_nothink.answer]);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    const file = await dl.path();
    const data = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(data.model, 'pattern');
    assert.equal(data.conversations.length, 4);
    const first = data.conversations[3];
    assert.equal(first.messages[1].reasoning, cases.long_think.reasoning);
    assert.equal(first.messages[1].content, cases.long_think.answer);
    assert.equal(first.messages[1].stats.tokens, cases.long_think.tokens);
  });

  test('screenshot', async () => {
    await page.click('#conversations li:nth-child(1)');
    await page.click('#messages details.reasoning summary');
    const out = process.env.MS_WEBUI_SCREENSHOT || path.join(os.tmpdir(), `ms-webui-${process.pid}.png`);
    await page.screenshot({ path: out });
    assert.ok(fs.statSync(out).size > 10000);
    if (!process.env.MS_WEBUI_SCREENSHOT) fs.rmSync(out);
  });

  test('API key prompt on 401, then stop mid-stream frees the request', async () => {
    const p2 = await browser.ctx.newPage();
    p2.on('pageerror', (e) => consoleErrors.push(String(e)));
    await p2.goto(tiny.base + '/');
    await p2.waitForSelector('#key-dialog[open]');
    await p2.fill('#key-input', KEY);
    await p2.click('#key-ok');
    await waitFor(() => p2.textContent('#model-name').then((t) => t === 'tiny'), 10000, 'the model name after the key');
    const before = await metrics(tiny.base);
    await p2.click('#settings summary');
    await p2.fill('#max_tokens', '8000');
    // greedy: on the tiny model this prompt runs the whole 8,000 tokens (checked with `moeserve
    // generate`), so the answer cannot end by itself between the check below and the click, as
    // it once did at temperature 1
    await p2.fill('#temperature', '0');
    await sendMessage(p2, 'Write a very long story.');
    // streaming: text is arriving and the request holds KV blocks
    await p2.waitForFunction(() => {
      const m = document.querySelector('#messages .msg.assistant');
      return m && ((m.querySelector('.content')?.textContent.length || 0) + (m.querySelector('.reasoning-body')?.textContent.length || 0)) > 20;
    }, null, { timeout: scaled(20000) });
    const mid = await metrics(tiny.base);
    assert.equal(mid['moeserve:num_requests_running'], 1);
    assert.ok(mid['moeserve:kv_cache_usage_perc'] > 0);
    await p2.click('#stop');
    const got = await lastAnswer(p2);
    assert.match(got.meta, / · stopped$/);
    const n = Number(got.meta.match(/· (\d+) tokens ·/)[1]);
    assert.ok(n > 0 && n < 8000, got.meta);
    const after = await waitFor(async () => {
      const m = await metrics(tiny.base);
      return m['moeserve:client_disconnect_aborts_total'] === before['moeserve:client_disconnect_aborts_total'] + 1 &&
        m['moeserve:num_requests_running'] === 0 && m;
    }, 10000, 'the aborted request to end');
    assert.equal(after['moeserve:kv_cache_usage_perc'], 0, 'every KV block back in the pool');
    await waitFor(() => /POST \/v1\/chat\/completions 499/.test(tiny.log()), 5000, 'the access log line of the aborted request');
    const sent = bodies[bodies.length - 1];
    assert.equal(sent.max_tokens, 8000);
    assert.equal(sent.temperature, 0);
    await p2.close();
  });

  test('the page asked nothing of any other host, and logged no errors', () => {
    const foreign = requests.filter((u) => !u.startsWith(pat.base + '/') && !u.startsWith(tiny.base + '/') && !u.startsWith('blob:'));
    assert.deepEqual(foreign, []);
    assert.deepEqual(consoleErrors.filter((e) => !/401 \(Unauthorized\)/.test(e)), []);
  });
});

describe('hostile text is shown, never run', { skip }, () => {
  let srv, browser, page;
  const PAYLOAD = '<img src=x onerror="window.__xss=(window.__xss||0)+1"> <script>window.__xss=99</script> ' +
    '[click](javascript:window.__xss=7) <svg onload="window.__xss=5"></svg>';
  before(async () => {
    srv = await startServer({ model: PATTERN, args: ['--served-model-name', 'pattern'] });
    browser = await launch(true); // no CSP: only the renderer protects the page
    page = browser.ctx.pages()[0] || await browser.ctx.newPage();
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  test('control: this browser context runs an onerror handler put in with innerHTML', async () => {
    await page.goto(srv.base + '/');
    await page.evaluate((p) => { const d = document.createElement('div'); d.innerHTML = p; document.body.append(d); }, PAYLOAD);
    await page.waitForFunction(() => window.__xss >= 1, null, { timeout: 5000 });
  });

  test('<img onerror> in the user text and in the model output (reasoning, answer, tool call)', async () => {
    await page.goto(srv.base + '/');
    const chunk = (delta, finish = null) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'pattern',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
    await page.route('**/v1/chat/completions', (route) => route.fulfill({
      status: 200, contentType: 'text/event-stream',
      body: chunk({ role: 'assistant', content: '' }) + chunk({ reasoning_content: `thinking ${PAYLOAD}` }) +
        chunk({ content: `answer ${PAYLOAD}\n\n\`\`\`html\n${PAYLOAD}\n\`\`\`\n**${PAYLOAD}**` }) +
        chunk({ tool_calls: [{ index: 0, id: 'c1', type: 'function', function: { name: PAYLOAD, arguments: JSON.stringify({ html: PAYLOAD }) } }] }) +
        chunk({}, 'tool_calls') + 'data: [DONE]\n\n',
    }));
    await sendMessage(page, `user ${PAYLOAD}`);
    const got = await lastAnswer(page);
    await page.click('#messages details.reasoning summary');
    await page.waitForTimeout(500); // time for any handler to fire
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'no handler ran');
    assert.equal(await page.$$eval('#messages img, #messages script, #messages svg, #messages a[href^="javascript"]', (l) => l.length), 0);
    const user = await page.textContent('#messages .msg.user .content');
    assert.equal(user, `user ${PAYLOAD}`);
    assert.ok(got.reasoning.includes(PAYLOAD));
    assert.ok(got.content.startsWith(`answer ${PAYLOAD}`), got.content);
    assert.equal(await page.textContent('#messages pre.code code'), PAYLOAD, 'the code block shows the text as written');
    assert.equal(got.calls[0].name, `tool call: ${PAYLOAD}`);
    // after a reload the stored conversation is rendered again, still as text
    await page.unroute('**/v1/chat/completions');
    await page.reload();
    await page.waitForSelector('#messages .msg.assistant');
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.$$eval('#messages img, #messages script, #messages svg', (l) => l.length), 0);
  });
});

test('--no-webui: GET / is a 404 and the API still answers', { skip }, async () => {
  const srv = await startServer({ args: ['--no-webui'] });
  try {
    for (const p of ['/', '/index.html', '/webui/app.js']) {
      const r = await request(srv.base, 'GET', p);
      assert.equal(r.status, 404, p);
      assert.equal(JSON.parse(r.body).error.code, 'not_found');
    }
    assert.equal((await request(srv.base, 'GET', '/v1/models')).status, 200);
  } finally {
    await srv.stop();
  }
});
