// The constructed pattern model (tools/make_pattern_model.py) for the API tests, and what its
// pattern.json says each case produces: reasoning, answer text and tool calls split out of the
// maker's completion text here, independently of the server's own parser.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { MODELS, SOURCE_DIR, haveFile } from './helpers.mjs';

const MAKER = path.join(SOURCE_DIR, 'tools', 'make_pattern_model.py');
const PYTHON = process.env.MS_PYTHON || '/usr/bin/python3';
export const skip = !process.env.MS_PATTERN_MODEL && !haveFile(MAKER)
  ? 'tools/make_pattern_model.py does not exist: no model that emits <think>/<tool_call>' : false;

export function patternModel() {
  for (const d of [process.env.MS_PATTERN_MODEL, path.join(MODELS, 'pattern')])
    if (d && haveFile(path.join(d, 'pattern.json'))) return d;
  const dir = path.join(MODELS, 'pattern_server');
  if (!haveFile(path.join(dir, 'pattern.json'))) {
    const tmp = `${dir}.tmp${process.pid}`;
    execFileSync(PYTHON, [MAKER, tmp], { stdio: 'inherit' });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }
  return dir;
}

export function loadPattern(dir) {
  const p = JSON.parse(fs.readFileSync(path.join(dir, 'pattern.json'), 'utf8'));
  const byName = (name) => {
    const c = p.cases.find((x) => x.name === name);
    if (!c) throw new Error(`pattern.json has no case ${name}`);
    return c;
  };
  // { reasoning, content, calls: [{ name, arguments }], promptTokens, completionTokens, reasoningTokens }
  const expected = (name) => {
    const c = byName(name);
    let t = c.completion_text.replace(/<\|im_end\|>$/, '');
    let reasoning = '';
    const m = t.match(/^<think>\n([\s\S]*?)\n<\/think>\n\n/);
    if (m) { reasoning = m[1]; t = t.slice(m[0].length); }
    const calls = [];
    t = t.replace(/<tool_call>\n([\s\S]*?)\n<\/tool_call>\n?/g, (_, j) => { calls.push(JSON.parse(j)); return ''; });
    const end = c.completion_ids.indexOf(151668); // </think>
    return { reasoning, content: t, calls, promptTokens: c.prompt_ids.length,
      completionTokens: c.completion_ids.length - 1, reasoningTokens: end < 0 ? 0 : end + 1 };
  };
  return { pattern: p, byName, expected };
}

export const WEATHER = { name: 'get_weather', description: 'Get the current weather for a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
export const PARIS_Q = 'What is the weather in Paris?';
export const TOOL_RESULT = '{"temperature": 22, "condition": "sunny"}';
