// Structured outputs against a real server with the random-weight tiny model (which writes
// noise unless constrained): every answer under a JSON Schema must parse and validate with ajv
// (an independent validator), the model must be able to end (finish_reason "stop"; "length" is
// counted and reported honestly, never validated), forced tool calls must carry schema-valid
// arguments, bad schemas are 400s naming the keyword, and the openai SDK's parse() helpers with
// zod return parsed values.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { zodResponseFormat, zodFunction, zodTextFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { startServer } from './helpers.mjs';

let srv, client;
before(async () => {
  srv = await startServer();
  client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0 });
});
after(async () => { if (srv) await srv.stop(); });

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);

const obj = (properties, required = Object.keys(properties), extra = {}) =>
  ({ type: 'object', properties, required, additionalProperties: false, ...extra });

// One schema per keyword (and combinations), as clients send them.
const SCHEMAS = [
  obj({ name: { type: 'string' }, age: { type: 'integer' } }),
  obj({ ok: { type: 'boolean' }, nothing: { type: 'null' }, x: { type: 'number' } }),
  obj({ color: { enum: ['red', 'green', 'blue'] } }),
  obj({ kind: { const: 'fixed' }, n: { type: 'integer', minimum: 0, maximum: 9 } }),
  obj({ v: { anyOf: [{ type: 'string', maxLength: 4 }, { type: 'integer' }, { type: 'null' }] } }),
  obj({ tags: { type: 'array', items: { type: 'string', maxLength: 6 }, maxItems: 3 } }),
  obj({ pts: { type: 'array', items: obj({ x: { type: 'integer' }, y: { type: 'integer' } }), minItems: 1, maxItems: 2 } }),
  obj({ inner: obj({ deeper: obj({ leaf: { type: 'boolean' } }) }) }),
  obj({ short: { type: 'string', minLength: 2, maxLength: 5 } }),
  obj({ a: { type: 'integer' }, b: { type: 'string', maxLength: 3 } }, ['b']),
  { type: 'object', properties: { id: { type: 'integer' } }, required: ['id'], additionalProperties: { type: 'integer' } },
  { type: 'object', properties: { id: { type: 'integer', minimum: -3, maximum: 3 } }, required: ['id'], additionalProperties: true },
  obj({ d: { type: 'string', format: 'date' }, u: { type: 'string', format: 'uuid' } }),
  obj({ t: { type: 'string', format: 'date-time' }, e: { type: 'string', format: 'email' } }),
  { $schema: 'http://json-schema.org/draft-07/schema#', $ref: '#/definitions/Node',
    definitions: { Node: obj({ v: { type: 'integer', minimum: 0, maximum: 99 },
                                next: { anyOf: [{ $ref: '#/definitions/Node' }, { type: 'null' }] } }) } },
  { $defs: { P: obj({ q: { type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 5 } }) },
    type: 'object', properties: { p: { $ref: '#/$defs/P' }, list: { type: 'array', items: { $ref: '#/$defs/P' }, maxItems: 2 } },
    required: ['p', 'list'], additionalProperties: false },
  obj({ when: { type: ['string', 'null'], maxLength: 8, description: 'ignored', title: 'ignored', default: null } }),
  { type: 'array', items: { type: 'integer', minimum: 1, maximum: 5 }, minItems: 2, maxItems: 4 },
  { type: 'string', enum: ['yes', 'no'] },
  obj({ price: { type: 'number', minimum: 0, maximum: 1000 }, qty: { type: 'integer', minimum: 1 } }),
];

async function chat(body) {
  const r = await fetch(srv.base + '/v1/chat/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Give me data.' }], enable_thinking: false, ...body }),
  });
  return { status: r.status, json: await r.json() };
}

test('every constrained answer validates with ajv, and most runs end by themselves', async () => {
  const seeds = Number(process.env.MS_STRUCTURED_SEEDS || 10);
  let stopped = 0, cut = 0;
  for (const [i, schema] of SCHEMAS.entries()) {
    const validate = ajv.compile(schema);
    for (let seed = 0; seed < seeds; seed++) {
      const { status, json } = await chat({
        response_format: { type: 'json_schema', json_schema: { name: `s${i}`, schema, strict: true } },
        temperature: 1, seed, max_tokens: 300,
      });
      assert.equal(status, 200, JSON.stringify(json));
      const ch = json.choices[0];
      if (ch.finish_reason === 'length') { cut++; continue; }
      assert.equal(ch.finish_reason, 'stop');
      stopped++;
      let value;
      assert.doesNotThrow(() => { value = JSON.parse(ch.message.content); }, `schema ${i} seed ${seed}: not JSON: ${ch.message.content}`);
      assert.ok(validate(value), `schema ${i} seed ${seed}: ${ch.message.content}\n${ajv.errorsText(validate.errors)}`);
    }
  }
  console.log(`structured: ${stopped} answers validated, ${cut} cut by max_tokens (finish_reason length)`);
  assert.ok(stopped >= cut, `${stopped} stopped vs ${cut} cut: the grammar should let the model end`);
});

test('json_object gives an object; /v1/completions takes response_format too', async () => {
  for (let seed = 0; seed < 5; seed++) {
    const { json } = await chat({ response_format: { type: 'json_object' }, temperature: 1, seed, max_tokens: 200 });
    const ch = json.choices[0];
    if (ch.finish_reason === 'stop') {
      const v = JSON.parse(ch.message.content);
      assert.ok(v && typeof v === 'object' && !Array.isArray(v), ch.message.content);
    } else assert.equal(ch.finish_reason, 'length');
  }
  const schema = obj({ n: { type: 'integer', minimum: 0, maximum: 50 } });
  const r = await fetch(srv.base + '/v1/completions', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'JSON:', max_tokens: 100, temperature: 1, seed: 3,
                           response_format: { type: 'json_schema', json_schema: { name: 'n', schema } } }),
  });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  assert.equal(j.choices[0].finish_reason, 'stop', JSON.stringify(j));
  assert.ok(ajv.validate(schema, JSON.parse(j.choices[0].text)), j.choices[0].text);
});

test('streaming carries the same constrained text', async () => {
  const schema = obj({ word: { enum: ['alpha', 'beta'] }, n: { type: 'integer', minimum: 0, maximum: 9 } });
  const body = { messages: [{ role: 'user', content: 'x' }], enable_thinking: false, temperature: 1, seed: 7, max_tokens: 100,
                 response_format: { type: 'json_schema', json_schema: { name: 'w', schema } } };
  const full = (await chat(body)).json.choices[0].message.content;
  const stream = await client.chat.completions.create({ ...body, model: 'tiny', stream: true });
  let text = '';
  for await (const c of stream) text += c.choices[0]?.delta?.content || '';
  assert.equal(text, full);
  assert.ok(ajv.validate(schema, JSON.parse(text)), text);
});

const WEATHER = { type: 'function', function: { name: 'get_weather', strict: true,
  parameters: obj({ city: { type: 'string', maxLength: 12 }, unit: { enum: ['C', 'F'] } }) } };
const TIME = { type: 'function', function: { name: 'get_time', parameters: obj({ tz: { type: 'string', maxLength: 8 } }) } };

test('tool_choice required / named force one schema-valid call', async () => {
  for (const [choice, names] of [['required', ['get_weather', 'get_time']],
                                 [{ type: 'function', function: { name: 'get_time' } }, ['get_time']]]) {
    for (let seed = 0; seed < 4; seed++) {
      const { status, json } = await chat({ tools: [WEATHER, TIME], tool_choice: choice, parallel_tool_calls: false,
                                            temperature: 1, seed, max_tokens: 200 });
      assert.equal(status, 200, JSON.stringify(json));
      const ch = json.choices[0];
      if (ch.finish_reason === 'length') continue;
      assert.equal(ch.finish_reason, 'tool_calls', JSON.stringify(ch));
      assert.equal(ch.message.tool_calls.length, 1);
      const call = ch.message.tool_calls[0].function;
      assert.ok(names.includes(call.name), call.name);
      const params = (call.name === 'get_weather' ? WEATHER : TIME).function.parameters;
      assert.ok(ajv.validate(params, JSON.parse(call.arguments)), call.arguments);
    }
  }
});

test('a schema that cannot be enforced is a 400 naming the keyword', async () => {
  const cases = [
    [{ type: 'string', pattern: '^a(?=b)' }, /pattern.*lookahead/],
    [{ type: 'string', pattern: '^a+$', format: 'date' }, /pattern/],
    [{ type: 'string', pattern: '^a{5}$', maxLength: 4 }, /matches no text/],
    [{ type: 'object', properties: { a: { oneOf: [{ type: 'string' }] } } }, /oneOf/],
    [{ $ref: '#/$defs/nope' }, /does not resolve/],
    [{ $ref: '#/$defs/a', $defs: { a: obj({ a: { $ref: '#/$defs/a' } }) } }, /no finite instance/],
    [{ type: 'string', format: 'hostname' }, /hostname/],
  ];
  for (const [schema, re] of cases) {
    const { status, json } = await chat({ response_format: { type: 'json_schema', json_schema: { name: 'bad', schema } } });
    assert.equal(status, 400, JSON.stringify(json));
    assert.equal(json.error.type, 'invalid_request_error');
    assert.equal(json.error.param, 'response_format');
    assert.match(json.error.message, re);
  }
  const { status, json } = await chat({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'string', pattern: '(x)\\1' } } } } }],
                                        tool_choice: 'required' });
  assert.equal(status, 400);
  assert.equal(json.error.param, 'tools');
  assert.match(json.error.message, /pattern.*backreferences/);
});

test('the openai SDK: parse() with zodResponseFormat and zodFunction', async () => {
  const Item = z.object({ label: z.string().max(8), done: z.boolean(), note: z.string().max(5).nullable() });
  const Todo = z.object({ title: z.string().max(10), priority: z.enum(['low', 'high']), items: z.array(Item).max(2) });
  let parsed = 0;
  for (let seed = 0; seed < 4; seed++) {
    try {
      const r = await client.chat.completions.parse({
        model: 'tiny', messages: [{ role: 'user', content: 'todo' }], temperature: 1, seed, max_tokens: 300,
        response_format: zodResponseFormat(Todo, 'todo'), enable_thinking: false,
      });
      const m = r.choices[0].message;
      assert.equal(m.refusal ?? null, null);
      assert.ok(Todo.safeParse(m.parsed).success, JSON.stringify(m.parsed));
      parsed++;
    } catch (err) {
      assert.match(String(err), /length/i, 'only a max_tokens cut may fail parse()'); // SDK throws on "length"
    }
  }
  assert.ok(parsed >= 1, 'at least one parse() returned a value');
  const Args = z.object({ city: z.string().max(10), days: z.number().int().min(1).max(7) });
  const r = await client.chat.completions.parse({
    model: 'tiny', messages: [{ role: 'user', content: 'weather?' }], temperature: 1, seed: 1, max_tokens: 200,
    tools: [zodFunction({ name: 'forecast', parameters: Args })], tool_choice: 'required', enable_thinking: false,
  });
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'forecast');
  assert.ok(Args.safeParse(call.function.parsed_arguments).success, JSON.stringify(call.function.parsed_arguments));
});

test('the Responses API: text.format json_schema through responses.parse(), streamed, json_object, and its errors', async () => {
  // ASCII by pattern: zod's .max() counts UTF-16 units where JSON Schema's maxLength (and the
  // grammar) counts code points, so a 10-character string with an emoji fails zod's own check
  const Todo = z.object({ title: z.string().regex(/^[a-z ]{1,10}$/), priority: z.enum(['low', 'high']),
                          n: z.number().int().min(0).max(9) });
  let parsed = 0;
  for (let seed = 0; seed < 4; seed++) {
    const r = await client.responses.parse({
      model: 'tiny', input: 'todo', temperature: 1, seed, max_output_tokens: 200, reasoning: { effort: 'none' },
      text: { format: zodTextFormat(Todo, 'todo') },
    });
    assert.equal(r.text.format.type, 'json_schema', 'the response repeats the format asked for');
    assert.equal(r.text.format.name, 'todo');
    if (r.status === 'incomplete') continue; // cut by max_output_tokens: reported, not validated
    assert.equal(r.status, 'completed');
    assert.ok(Todo.safeParse(r.output_parsed).success, r.output_text);
    parsed++;
  }
  assert.ok(parsed >= 1, 'at least one responses.parse() returned a value');

  const schema = { type: 'object', properties: { k: { type: 'integer', minimum: 1, maximum: 3 } }, required: ['k'],
                   additionalProperties: false };
  const post = (body) => fetch(srv.base + '/v1/responses', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', input: 'data', reasoning: { effort: 'none' }, max_output_tokens: 120, ...body }),
  });
  const sse = await (await post({ stream: true, seed: 3, temperature: 1,
                                  text: { format: { type: 'json_schema', name: 'k', schema, strict: true } } })).text();
  const events = sse.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  const deltas = events.filter((ev) => ev.type === 'response.output_text.delta').map((ev) => ev.delta).join('');
  const done = events.find((ev) => ev.type === 'response.completed' || ev.type === 'response.incomplete');
  assert.ok(done, sse.slice(-500));
  if (done.type === 'response.completed') assert.ok(ajv.validate(schema, JSON.parse(deltas)), deltas);

  const jo = await (await post({ seed: 1, temperature: 1, text: { format: { type: 'json_object' } } })).json();
  if (jo.status === 'completed') {
    const v = JSON.parse(jo.output.find((it) => it.type === 'message').content[0].text);
    assert.equal(typeof v, 'object');
    assert.ok(v !== null && !Array.isArray(v));
  }

  for (const [format, re] of [
    [{ type: 'json_schema', name: 'x', schema: { type: 'object', properties: { a: { not: {} } } } }, /text\.format.*not/],
    [{ type: 'json_schema', schema: {} }, /text\.format\.name/],
    [{ type: 'json_schema', name: 'x', schema: 3 }, /text\.format\.schema/],
    [{ type: 'grammar' }, /text\.format\.type/],
  ]) {
    const r = await post({ text: { format } });
    const j = await r.json();
    assert.equal(r.status, 400, JSON.stringify(j));
    assert.equal(j.error.param, 'text.format');
    assert.match(j.error.message, re);
    assert.doesNotMatch(j.error.message, /response_format/, 'the error names the Responses field');
  }
});

test('thinking on: the answer is still constrained (after </think> if the model thinks)', async () => {
  // The tiny model's template does not open <think>, so the constraint starts at the first token,
  // where the model may also choose <think> (then the reasoning is free until </think>, which
  // the thinking budget forces).
  const schema = obj({ ok: { type: 'boolean' }, n: { type: 'integer', minimum: 0, maximum: 9 } });
  let validated = 0;
  for (let seed = 0; seed < 4; seed++) {
    const { status, json } = await chat({ enable_thinking: true, thinking_token_budget: 8, temperature: 1, seed, max_tokens: 200,
                                          response_format: { type: 'json_schema', json_schema: { name: 't', schema } } });
    assert.equal(status, 200, JSON.stringify(json));
    const ch = json.choices[0];
    if (ch.finish_reason !== 'stop') continue;
    assert.ok(ajv.validate(schema, JSON.parse(ch.message.content)), JSON.stringify(ch.message));
    validated++;
  }
  assert.ok(validated >= 1, 'at least one thinking-mode answer ended and validated');
  // A forced think opening: <think> as the first token suspends the constraint until </think>.
  const think = await chat({ enable_thinking: true, thinking_token_budget: 6, temperature: 1, seed: 1, max_tokens: 200,
                             logit_bias: { 151667: 100 },
                             response_format: { type: 'json_schema', json_schema: { name: 't', schema } } });
  const tc = think.json.choices[0];
  const reasoning = tc.message.reasoning_content ?? tc.message.reasoning;
  assert.ok(reasoning && reasoning.length > 0, 'the model thought first: ' + JSON.stringify(tc.message));
  if (tc.finish_reason === 'stop') assert.ok(ajv.validate(schema, JSON.parse(tc.message.content)), JSON.stringify(tc.message));
});

test("vLLM's guided_json and structured_outputs.json", async () => {
  const schema = obj({ k: { enum: ['a', 'b'] } });
  for (const extra of [{ guided_json: schema }, { guided_json: JSON.stringify(schema) }, { structured_outputs: { json: schema } }]) {
    const { status, json } = await chat({ ...extra, temperature: 1, seed: 2, max_tokens: 50 });
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(json.choices[0].finish_reason, 'stop', JSON.stringify(json));
    assert.ok(ajv.validate(schema, JSON.parse(json.choices[0].message.content)), json.choices[0].message.content);
  }
  const bad = await chat({ structured_outputs: { grammar: 'root ::= "a"' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'structured_outputs');
});

test("vLLM's guided_choice and structured_outputs.choice: exactly one of the strings", async () => {
  const choices = ['positive', 'negative', 'neutral', 'mixed feelings'];
  const seen = new Set();
  for (const [i, extra] of [{ guided_choice: choices }, { structured_outputs: { choice: choices } }].entries()) {
    for (let seed = 0; seed < 6; seed++) {
      const { status, json } = await chat({ ...extra, temperature: 1, seed: seed + 10 * i, max_tokens: 20 });
      assert.equal(status, 200, JSON.stringify(json));
      assert.equal(json.choices[0].finish_reason, 'stop', JSON.stringify(json));
      assert.ok(choices.includes(json.choices[0].message.content), JSON.stringify(json.choices[0].message.content));
      seen.add(json.choices[0].message.content);
    }
  }
  assert.ok(seen.size >= 2, `sampling picks different choices: ${[...seen]}`);
  const r = await fetch(srv.base + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'The answer is', guided_choice: ['A', 'B'], max_tokens: 5, temperature: 0 }) });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  assert.ok(['A', 'B'].includes(j.choices[0].text), j.choices[0].text);
  for (const [body, param] of [[{ guided_choice: [] }, 'guided_choice'], [{ guided_choice: ['a', 1] }, 'guided_choice'],
    [{ guided_choice: ['a', ''] }, 'guided_choice'], [{ structured_outputs: { choice: 'a' } }, 'structured_outputs'],
    [{ guided_choice: ['a'], guided_json: { type: 'object' } }, 'guided_choice'],
    [{ guided_grammar: 'root ::= "a"' }, 'guided_grammar'],
    [{ grammar: 'root ::= "a"' }, 'grammar'],
    [{ guided_regex: 'a+', response_format: { type: 'json_object' } }, 'guided_regex'],
    [{ structured_outputs: { regex: 'a+' }, response_format: { type: 'json_object' } }, 'structured_outputs'],
    [{ guided_choice: ['a'], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } } }, 'guided_choice'],
    [{ structured_outputs: { choice: ['a'] }, guided_regex: 'a' }, 'guided_regex'],
    [{ guided_json: { type: 'object' }, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }], tool_choice: 'required' }, 'guided_json']]) {
    const bad = await chat(body);
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.equal(bad.json.error.param, param, JSON.stringify(bad.json));
  }
});

test('guided_regex / structured_outputs.regex: the whole answer matches; pattern strings validate with ajv', async () => {
  // bounded regexes: the model must be able to end, and the answer must match from start to end
  const regexes = ['(yes|no|maybe), [a-z]{2,6}\\.', '\\d{3}-\\d{4}', '[A-Z][a-z]{1,8}( [A-Z][a-z]{1,8})?!?',
                   '(?:ab|cd){1,3}[0-9]?', 'é{1,3}日?', '\\{"k": (true|false|null)\\}'];
  for (const re of regexes) {
    const full = new RegExp('^(?:' + re + ')$', 'u');
    for (let seed = 0; seed < 2; seed++) {
      const extra = seed % 2 ? { structured_outputs: { regex: re } } : { guided_regex: re };
      const { status, json } = await chat({ ...extra, temperature: 1, seed, max_tokens: 60 });
      assert.equal(status, 200, JSON.stringify(json));
      assert.equal(json.choices[0].finish_reason, 'stop', JSON.stringify(json));
      assert.match(json.choices[0].message.content, full);
    }
  }
  const r = await fetch(srv.base + '/v1/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Phone:', guided_regex: '\\+?\\d{2,3} \\d{3}', max_tokens: 20, temperature: 1, seed: 4 }) });
  const j = await r.json();
  assert.equal(r.status, 200, JSON.stringify(j));
  assert.match(j.choices[0].text, /^\+?\d{2,3} \d{3}$/);
  // JSON Schema pattern (ECMAScript semantics, a search unless anchored), checked by ajv
  const schema = obj({ zip: { type: 'string', pattern: '^\\d{5}(-\\d{4})?$' }, code: { type: 'string', pattern: '^[A-Z]{2}\\d$' },
                       word: { type: 'string', pattern: '^[a-zé]{1,8}$' }, mood: { type: 'string', pattern: '^(?:ok|fine)!?$' },
                       tag: { type: 'string', pattern: '[a-z]', minLength: 2, maxLength: 6 } });
  const validate = ajv.compile(schema);
  let validated = 0;
  for (let seed = 0; seed < 4; seed++) {
    const { status, json } = await chat({ response_format: { type: 'json_schema', json_schema: { name: 'p', schema } },
                                          temperature: 1, seed, max_tokens: 200 });
    assert.equal(status, 200, JSON.stringify(json));
    const ch = json.choices[0];
    if (ch.finish_reason === 'length') continue;
    assert.equal(ch.finish_reason, 'stop');
    const v = JSON.parse(ch.message.content);
    assert.ok(validate(v), ch.message.content + '\n' + ajv.errorsText(validate.errors));
    validated++;
  }
  assert.ok(validated >= 2, `${validated} of 4 pattern answers ended`);
  // regexes we cannot compile: a 400 naming the problem
  for (const [body, param, re] of [[{ guided_regex: 'a(?=b)' }, 'guided_regex', /lookahead/],
    [{ guided_regex: '(a' }, 'guided_regex', /never closed/], [{ structured_outputs: { regex: '(a)\\1' } }, 'structured_outputs', /backreferences/],
    [{ guided_regex: 5 }, 'guided_regex', /string/], [{ guided_regex: '(a|b)*a(a|b){13}' }, 'guided_regex', /DFA states/],
    [{ guided_regex: '(\\w{0,100}){0,40}' }, 'guided_regex', /too costly/],
    [{ guided_regex: 'a', guided_choice: ['a'] }, 'guided_regex', /one of/]]) {
    const bad = await chat(body);
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.equal(bad.json.error.param, param, JSON.stringify(bad.json));
    assert.match(bad.json.error.message, re);
  }
});
