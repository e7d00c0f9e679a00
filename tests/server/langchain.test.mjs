// LangChain's ChatOpenAI (@langchain/openai) against the server: invoke, stream, bindTools with a
// tool call parsed back, over chat completions and over the Responses API (useResponsesApi).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, SystemMessage, ToolMessage } from '@langchain/core/messages';
import { startServer } from './helpers.mjs';
import { skip, patternModel, loadPattern, WEATHER, PARIS_Q, TOOL_RESULT } from './pattern.mjs';

if (skip) console.log(`# SKIP LangChain tests: ${skip}`);

describe('LangChain ChatOpenAI', { skip }, () => {
  let srv, P;
  const chat = (opts = {}) => new ChatOpenAI({ model: 'pattern', apiKey: 'x', temperature: 0, maxRetries: 0,
    configuration: { baseURL: srv.base + '/v1' }, ...opts });
  before(async () => {
    const dir = patternModel();
    P = loadPattern(dir);
    srv = await startServer({ model: dir, args: ['--served-model-name', 'pattern'] });
  });
  after(async () => { if (srv) await srv.stop(); });

  for (const useResponsesApi of [false, true]) {
    const api = useResponsesApi ? 'Responses API' : 'chat completions';
    test(`invoke and stream (${api}): the answer without the thinking`, async () => {
      const x = P.expected('chat_think');
      const m = await chat({ useResponsesApi }).invoke([new SystemMessage('Be brief.'), new HumanMessage('Hello!')]);
      assert.equal(m.text, x.content);
      assert.ok(m.usage_metadata.output_tokens >= x.completionTokens - 1, JSON.stringify(m.usage_metadata));
      let text = '', n = 0;
      for await (const chunk of await chat({ useResponsesApi }).stream([new HumanMessage('Hello!')])) {
        text += chunk.text;
        n++;
      }
      assert.equal(text, x.content);
      assert.ok(n > 3, `${n} chunks`);
    });

    test(`bindTools (${api}): the tool call comes back parsed, and the answer after its result`, async () => {
      const call = P.expected('tool_think').calls[0];
      const model = chat({ useResponsesApi }).bindTools([{ type: 'function', function: WEATHER }]);
      const q = new HumanMessage(PARIS_Q);
      const m = await model.invoke([q]);
      assert.equal(m.tool_calls.length, 1, JSON.stringify(m));
      assert.equal(m.tool_calls[0].name, call.name);
      assert.deepEqual(m.tool_calls[0].args, call.arguments);
      const answer = await model.invoke([q, m, new ToolMessage({ content: TOOL_RESULT, tool_call_id: m.tool_calls[0].id })]);
      assert.equal(answer.text, P.expected('tool_result_think').content);
      // streamed: the tool-call chunks add up to the same call
      let acc;
      for await (const chunk of await model.stream([q])) acc = acc ? acc.concat(chunk) : chunk;
      assert.equal(acc.tool_calls[0].name, call.name);
      assert.deepEqual(acc.tool_calls[0].args, call.arguments);
    });
  }
});
