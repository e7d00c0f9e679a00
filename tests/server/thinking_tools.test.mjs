// Thinking, thinking budgets and tools, with the openai SDK, against a model that really emits
// <think> and <tool_call>: the constructed checkpoint of tools/make_pattern_model.py (its
// pattern.json lists every request and the exact greedy completion). The model directory is
// MS_PATTERN_MODEL or $MS_MODELS/pattern (the model_pattern fixture), else $MS_MODELS/pattern_server,
// generated here when missing. Skipped, with a message, when tools/make_pattern_model.py does
// not exist.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { startServer, MODELS } from './helpers.mjs';
import { skip, patternModel } from './pattern.mjs';

if (skip) console.log(`# SKIP thinking/tools tests: ${skip}`);

const ANSWER = 'Hello! How can I help you today?';
const THOUGHT = 'The user wants a reply. I will greet them.';
const hello = [{ role: 'user', content: 'Hello!' }];
const weatherTool = [{ type: 'function', function: { name: 'get_weather', description: 'Get the current weather for a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
const ponder = [{ role: 'user', content: 'Please ponder this question carefully.' }];

let pattern, model;
function caseByName(name) { return pattern.cases.find((c) => c.name === name); }

async function collect(stream) {
  const out = { reasoning: '', reasoning2: '', content: '', finish: null, calls: [], usage: null, order: [], role: null, chunks: [] };
  for await (const ch of stream) {
    out.chunks.push(ch);
    if (ch.usage) out.usage = ch.usage;
    for (const c of ch.choices) {
      const d = c.delta;
      out.role = out.role || d.role;
      if (d.reasoning_content) { out.reasoning += d.reasoning_content; out.order.push('r'); }
      if (d.reasoning) out.reasoning2 += d.reasoning;
      if (d.content) { out.content += d.content; out.order.push('c'); }
      for (const tc of d.tool_calls || []) {
        const slot = out.calls[tc.index] || (out.calls[tc.index] = { id: '', name: '', arguments: '', deltas: 0 });
        slot.deltas++;
        if (tc.id) slot.id = tc.id;
        if (tc.function?.name) slot.name += tc.function.name;
        if (tc.function?.arguments) slot.arguments += tc.function.arguments;
      }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

describe('thinking and tools (pattern model)', { skip }, () => {
  let srv, client;
  before(async () => {
    model = patternModel();
    pattern = JSON.parse(fs.readFileSync(path.join(model, 'pattern.json'), 'utf8'));
    srv = await startServer({ model, args: ['--served-model-name', 'pattern'] });
    client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0 });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('thinking on: reasoning split from content, both field names, reasoning_tokens', async () => {
    const r = await client.chat.completions.create({ model: 'pattern', messages: hello, temperature: 0 });
    const m = r.choices[0].message;
    assert.equal(m.reasoning_content, THOUGHT);
    assert.equal(m.reasoning, THOUGHT);
    assert.equal(m.content, ANSWER);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const ids = caseByName('chat_think').completion_ids;
    assert.equal(r.usage.completion_tokens, ids.length - 1, 'every token but <|im_end|>');
    assert.equal(r.usage.completion_tokens_details.reasoning_tokens, ids.indexOf(151668) + 1, '<think> .. </think>');
  });

  test('thinking on, streamed: reasoning deltas first, then content', async () => {
    const s = await collect(await client.chat.completions.create({
      model: 'pattern', messages: hello, temperature: 0, stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.role, 'assistant');
    assert.equal(s.reasoning, THOUGHT);
    assert.equal(s.reasoning2, THOUGHT);
    assert.equal(s.content, ANSWER);
    assert.equal(s.order.join('').replace(/r+c+/, ''), '', 'all reasoning before any content');
    assert.equal(s.finish, 'stop');
    assert.ok(s.usage.completion_tokens_details.reasoning_tokens > 0);
  });

  for (const [label, extra] of [
    ['chat_template_kwargs.enable_thinking=false', { chat_template_kwargs: { enable_thinking: false } }],
    ['top-level enable_thinking=false', { enable_thinking: false }],
    ['reasoning_effort "none"', { reasoning_effort: 'none' }],
  ]) {
    test(`thinking off (${label}): no reasoning field, all text in content, streamed and not`, async () => {
      const r = await client.chat.completions.create({ model: 'pattern', messages: hello, temperature: 0, ...extra });
      const m = r.choices[0].message;
      assert.equal(m.content, ANSWER);
      assert.ok(!('reasoning_content' in m) && !('reasoning' in m), JSON.stringify(m));
      assert.equal(r.usage.completion_tokens_details.reasoning_tokens, 0);
      const s = await collect(await client.chat.completions.create({ model: 'pattern', messages: hello, temperature: 0, stream: true, ...extra }));
      assert.equal(s.content, ANSWER);
      for (const ch of s.chunks) for (const c of ch.choices) {
        assert.ok(!('reasoning_content' in c.delta) && !('reasoning' in c.delta), JSON.stringify(c.delta));
      }
    });
  }

  test('thinking budget: the early-stop text is forced and the answer follows', async () => {
    const budget = 40;
    const r = await client.chat.completions.create({ model: 'pattern', messages: ponder, temperature: 0, thinking_token_budget: budget });
    const m = r.choices[0].message;
    assert.match(m.reasoning_content, /^Let me count: one, two/);
    assert.match(m.reasoning_content, /Considering the limited time by the user, I have to give the solution based on the thinking directly now\.$/);
    assert.equal(m.content, ANSWER);
    const rt = r.usage.completion_tokens_details.reasoning_tokens;
    assert.ok(rt > budget && rt < budget + 40, `reasoning_tokens ${rt}`);
    // without a budget the model thinks its full 274 tokens
    const full = await client.chat.completions.create({ model: 'pattern', messages: ponder, temperature: 0 });
    assert.match(full.choices[0].message.reasoning_content, /ninety nine\.$/);
    assert.ok(full.usage.completion_tokens_details.reasoning_tokens > 270);
    // reasoning_effort low maps to a budget larger than this model's thinking
    const low = await client.chat.completions.create({ model: 'pattern', messages: ponder, temperature: 0, reasoning_effort: 'low' });
    assert.match(low.choices[0].message.reasoning_content, /ninety nine\.$/);
    // streamed, with max_tokens bounding the whole completion
    const s = await collect(await client.chat.completions.create({ model: 'pattern', messages: ponder, temperature: 0, stream: true,
      thinking_token_budget: budget }));
    assert.equal(s.reasoning, m.reasoning_content);
    assert.equal(s.content, ANSWER);
    const capped = await client.chat.completions.create({ model: 'pattern', messages: ponder, temperature: 0, thinking_token_budget: budget, max_tokens: 30 });
    assert.equal(capped.usage.completion_tokens, 30);
    assert.equal(capped.choices[0].finish_reason, 'length');
  });

  test('tools: a tool call comes back as message.tool_calls with finish_reason tool_calls', async () => {
    const r = await client.chat.completions.create({ model: 'pattern', temperature: 0, tools: weatherTool,
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }] });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.content, null);
    assert.equal(c.message.reasoning_content, 'The user wants the weather. I will call the tool.');
    assert.equal(c.message.tool_calls.length, 1);
    const tc = c.message.tool_calls[0];
    assert.match(tc.id, /^call_[0-9a-f]{24}$/);
    assert.equal(tc.type, 'function');
    assert.equal(tc.function.name, 'get_weather');
    assert.equal(typeof tc.function.arguments, 'string');
    assert.deepEqual(JSON.parse(tc.function.arguments), { city: 'Paris' });
  });

  test('tools, streamed: id and name first, then the arguments', async () => {
    const s = await collect(await client.chat.completions.create({ model: 'pattern', temperature: 0, tools: weatherTool, stream: true,
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }], chat_template_kwargs: { enable_thinking: false } }));
    assert.equal(s.finish, 'tool_calls');
    assert.equal(s.calls.length, 1);
    assert.equal(s.calls[0].name, 'get_weather');
    assert.match(s.calls[0].id, /^call_/);
    assert.ok(s.calls[0].deltas >= 2);
    assert.deepEqual(JSON.parse(s.calls[0].arguments), { city: 'Paris' });
    assert.equal(s.content, '');
  });

  test('two parallel tool calls', async () => {
    const msgs = [{ role: 'user', content: 'What is the weather in Paris and London?' }];
    const r = await client.chat.completions.create({ model: 'pattern', temperature: 0, tools: weatherTool, messages: msgs });
    const calls = r.choices[0].message.tool_calls;
    assert.equal(calls.length, 2);
    assert.deepEqual(calls.map((c) => JSON.parse(c.function.arguments).city), ['Paris', 'London']);
    assert.notEqual(calls[0].id, calls[1].id);
    const s = await collect(await client.chat.completions.create({ model: 'pattern', temperature: 0, tools: weatherTool, messages: msgs, stream: true }));
    assert.deepEqual(s.calls.map((c) => JSON.parse(c.arguments).city), ['Paris', 'London']);
    assert.equal(s.finish, 'tool_calls');
  });

  test('after a tool result the model answers; tool_choice none renders no tools', async () => {
    const req = caseByName('tool_result_think').request;
    const r = await client.chat.completions.create({ model: 'pattern', temperature: 0, ...req });
    assert.equal(r.choices[0].message.content, 'It is sunny in Paris.');
    assert.equal(r.choices[0].finish_reason, 'stop');
    const none = await client.chat.completions.create({ model: 'pattern', temperature: 0, tools: weatherTool, tool_choice: 'none',
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }] });
    assert.equal(none.choices[0].message.tool_calls, undefined);
    assert.equal(none.choices[0].finish_reason, 'stop');
    const named = await client.chat.completions.create({ model: 'pattern', temperature: 0, tools: weatherTool,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }] });
    assert.equal(named.choices[0].message.tool_calls[0].function.name, 'get_weather');
  });
});

describe('--reasoning-field reasoning and --thinking-budget (pattern model)', { skip }, () => {
  let srv, client;
  before(async () => {
    srv = await startServer({ model: patternModel(), args: ['--reasoning-field', 'reasoning', '--thinking-budget', '20'] });
    client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0 });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('only `reasoning` is sent; the server budget applies unless the request sets one', async () => {
    const r = await client.chat.completions.create({ messages: ponder, temperature: 0 }); // no model: the served one
    const m = r.choices[0].message;
    assert.ok(!('reasoning_content' in m));
    assert.match(m.reasoning, /Considering the limited time/);
    assert.equal(m.content, ANSWER);
    const own = await client.chat.completions.create({ messages: ponder, temperature: 0, thinking_token_budget: 1000 });
    assert.match(own.choices[0].message.reasoning, /ninety nine\.$/);
  });
});

// A template that opens <think> itself (as Qwen3's thinking-only checkpoints do): the output starts
// inside the thinking, with no <think> from the model. Made from the pattern model by changing its
// template to end the generation prompt with "<think>\n" when thinking is on.
describe('template that opens <think> itself (pattern model, modified template)', { skip }, () => {
  let srv, client;
  before(async () => {
    const src = patternModel();
    const dir = fs.mkdtempSync(path.join(MODELS, 'pattern_open_think.'));
    for (const f of fs.readdirSync(src)) if (f !== 'tokenizer_config.json') fs.symlinkSync(path.resolve(src, f), path.join(dir, f));
    const tc = JSON.parse(fs.readFileSync(path.join(src, 'tokenizer_config.json'), 'utf8'));
    const closed = "{{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}";
    assert.ok(tc.chat_template.includes(closed), 'the template has the usual enable_thinking block');
    tc.chat_template = tc.chat_template.replace(closed, "{{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- else %}\n        {{- '<think>\\n' }}\n    {%- endif %}");
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
    srv = await startServer({ model: dir });
    srv.dir = dir;
    client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0 });
  });
  after(async () => { if (srv) { await srv.stop(); fs.rmSync(srv.dir, { recursive: true, force: true }); } });

  test('the reasoning is split although the model never emits <think>', async () => {
    const tok = await fetch(srv.base + '/tokenize', { method: 'POST', body: JSON.stringify({ messages: hello }) }).then((r) => r.json());
    assert.equal(tok.tokens.at(-2), 151667, 'the prompt ends with <think>\\n');
    const r = await client.chat.completions.create({ messages: hello, temperature: 0 });
    assert.equal(r.choices[0].message.reasoning_content, THOUGHT);
    assert.equal(r.choices[0].message.content, ANSWER);
    assert.ok(r.usage.completion_tokens_details.reasoning_tokens > 5);
    const s = await collect(await client.chat.completions.create({ messages: hello, temperature: 0, stream: true }));
    assert.equal(s.reasoning, THOUGHT);
    assert.equal(s.content, ANSWER);
    // the budget counts from the start of the output
    const b = await client.chat.completions.create({ messages: ponder, temperature: 0, thinking_token_budget: 10 });
    assert.match(b.choices[0].message.reasoning_content, /Considering the limited time/);
    assert.equal(b.choices[0].message.content, ANSWER);
  });
});
