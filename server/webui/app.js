// The chat page: conversations in localStorage, streamed chat completions from this server
// (POST /v1/chat/completions with stream: true), thinking shown apart from the answer. Talks
// to no other host. Every text reaches the DOM through md.js (escaped) or textContent.
import { renderMarkdown } from './md.js';

const STORE_KEY = 'moeserve.conversations';
const SETTINGS_KEY = 'moeserve.settings';
const API_KEY_KEY = 'moeserve.apiKey';
const $ = (id) => document.getElementById(id);

const state = {
  conversations: [], // [{id, title, created, messages: [{role, content, reasoning, tool_calls, stats, error}]}]
  current: null,     // id of the open conversation
  model: null,       // the served model's id (GET /v1/models)
  controller: null,  // AbortController of the running request
};

// ---- storage ----

function load() {
  try {
    const c = JSON.parse(localStorage.getItem(STORE_KEY) || '[]');
    state.conversations = Array.isArray(c) ? c.filter((x) => x && Array.isArray(x.messages)) : [];
  } catch {
    state.conversations = [];
  }
  try {
    const s = JSON.parse(localStorage.getItem(SETTINGS_KEY) || '{}');
    for (const id of ['system', 'temperature', 'top_p', 'max_tokens', 'tools', 'budget']) if (typeof s[id] === 'string') $(id).value = s[id];
    if (typeof s.thinking === 'boolean') $('thinking').checked = s.thinking;
  } catch { /* defaults */ }
  $('api-key').value = localStorage.getItem(API_KEY_KEY) || '';
}

function save() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(state.conversations));
  } catch (e) {
    setStatus(`could not save the conversations: ${e.message}`);
  }
}

function saveSettings() {
  const s = { thinking: $('thinking').checked };
  for (const id of ['system', 'temperature', 'top_p', 'max_tokens', 'tools', 'budget']) s[id] = $(id).value;
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
  const key = $('api-key').value;
  if (key) localStorage.setItem(API_KEY_KEY, key);
  else localStorage.removeItem(API_KEY_KEY);
}

function conversation() {
  return state.conversations.find((c) => c.id === state.current) || null;
}

function newConversation() {
  const c = { id: `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`, title: 'New chat', created: Date.now(), messages: [] };
  state.conversations.unshift(c);
  state.current = c.id;
  return c;
}

// ---- rendering ----

function setStatus(text) {
  $('status').textContent = text;
}

function renderList() {
  const ul = $('conversations');
  ul.replaceChildren();
  for (const c of state.conversations) {
    const li = document.createElement('li');
    li.textContent = c.title;
    li.dataset.id = c.id;
    li.title = new Date(c.created).toLocaleString();
    if (c.id === state.current) li.classList.add('current');
    li.addEventListener('click', () => {
      if (state.controller) return;
      state.current = c.id;
      renderAll();
    });
    ul.append(li);
  }
}

function statsText(st) {
  if (!st) return '';
  const parts = [];
  if (st.ttft != null) parts.push(`TTFT ${st.ttft.toFixed(2)} s`);
  if (st.tps != null) parts.push(`${st.tps.toFixed(1)} tokens/s`);
  if (st.tokens != null) parts.push(`${st.tokens} tokens${st.reasoning_tokens ? ` (${st.reasoning_tokens} thinking)` : ''}`);
  if (st.finish) parts.push(st.finish);
  return parts.join(' · ');
}

function toolCallsNode(calls) {
  const box = document.createElement('div');
  box.className = 'tool-calls';
  for (const tc of calls) {
    const d = document.createElement('div');
    d.className = 'tool-call';
    const name = document.createElement('span');
    name.className = 'tool-name';
    name.textContent = `tool call: ${tc.name || '?'}`;
    const args = document.createElement('pre');
    let text = tc.arguments || '';
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* still streaming: as is */ }
    args.textContent = text;
    d.append(name, args);
    box.append(d);
  }
  return box;
}

// Fills el (a .msg) from m; keeps an open reasoning block open while it streams.
function fillMessage(el, m) {
  el.className = `msg ${m.role}`;
  let details = el.querySelector(':scope > details.reasoning');
  const wasOpen = details ? details.open : m.streaming;
  el.replaceChildren();
  if (m.role === 'assistant' && m.reasoning) {
    details = document.createElement('details');
    details.className = 'reasoning';
    details.open = wasOpen;
    const sum = document.createElement('summary');
    sum.textContent = m.streaming && !m.content && !(m.tool_calls || []).length ? 'Thinking…' : 'Thought';
    const body = document.createElement('div');
    body.className = 'reasoning-body';
    body.textContent = m.reasoning; // plain text: thinking is shown as written
    details.append(sum, body);
    el.append(details);
  }
  const content = document.createElement('div');
  content.className = 'content';
  content.innerHTML = renderMarkdown(m.content || ''); // renderMarkdown escapes everything
  el.append(content);
  if (m.tool_calls && m.tool_calls.length) el.append(toolCallsNode(m.tool_calls));
  if (m.error) {
    const err = document.createElement('div');
    err.className = 'error';
    err.textContent = m.error;
    el.append(err);
  }
  if (m.role === 'assistant') {
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = statsText(m.stats);
    el.append(meta);
  }
}

function renderMessages() {
  const box = $('messages');
  box.replaceChildren();
  const c = conversation();
  if (!c) return;
  for (const m of c.messages) {
    const el = document.createElement('div');
    fillMessage(el, m);
    box.append(el);
  }
  box.scrollTop = box.scrollHeight;
}

function renderAll() {
  renderList();
  renderMessages();
}

function setBusy(busy) {
  $('send').hidden = busy;
  $('stop').hidden = !busy;
  $('input').disabled = false;
}

// ---- the API ----

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = $('api-key').value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// Shows the key dialog; resolves true when a key was entered.
function askKey() {
  return new Promise((resolve) => {
    const dlg = $('key-dialog');
    $('key-input').value = '';
    const done = (ok) => {
      $('key-ok').onclick = $('key-cancel').onclick = null;
      dlg.close();
      if (ok) {
        $('api-key').value = $('key-input').value.trim();
        saveSettings();
      }
      resolve(ok && !!$('api-key').value);
    };
    $('key-ok').onclick = (e) => { e.preventDefault(); done(true); };
    $('key-cancel').onclick = (e) => { e.preventDefault(); done(false); };
    dlg.showModal();
    $('key-input').focus();
  });
}

async function apiFetch(path, init = {}) {
  for (;;) {
    const r = await fetch(path, { ...init, headers: headers() });
    if (r.status !== 401) return r;
    if (!(await askKey())) return r;
  }
}

async function loadModel() {
  try {
    const r = await apiFetch('/v1/models');
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const j = await r.json();
    state.model = j.data && j.data[0] ? j.data[0].id : null;
    $('model-name').textContent = state.model || '';
  } catch (e) {
    setStatus(`could not list the models: ${e.message}`);
  }
}

function numberField(id) {
  const v = $(id).value.trim();
  if (v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

// The chat request for conversation c (its messages up to the assistant message being written).
function buildRequest(c) {
  const messages = [];
  const system = $('system').value.trim();
  if (system) messages.push({ role: 'system', content: system });
  for (const m of c.messages) {
    if (m.streaming) break;
    if (m.role === 'user') messages.push({ role: 'user', content: m.content });
    else if (m.role === 'assistant' && !m.error) {
      const a = { role: 'assistant', content: m.content || '' };
      if (m.tool_calls && m.tool_calls.length) {
        a.tool_calls = m.tool_calls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
      }
      messages.push(a);
    }
  }
  const body = { messages, stream: true, stream_options: { include_usage: true } };
  if (state.model) body.model = state.model;
  for (const [id, field] of [['temperature', 'temperature'], ['top_p', 'top_p'], ['max_tokens', 'max_tokens']]) {
    const v = numberField(id);
    if (v !== undefined) body[field] = v;
  }
  const thinking = $('thinking').checked;
  body.enable_thinking = thinking;
  const budget = numberField('budget');
  if (thinking && budget !== undefined) body.thinking_token_budget = Math.trunc(budget);
  const tools = $('tools').value.trim();
  if (tools) {
    const parsed = JSON.parse(tools); // a syntax error is reported by send()
    if (!Array.isArray(parsed)) throw new Error('Tools must be a JSON array');
    if (parsed.length) body.tools = parsed;
  }
  return body;
}

// Reads an SSE body, calling onData with each event's parsed JSON until [DONE].
async function readEvents(body, onData) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (!data) continue; // a comment (": ping")
      if (data === '[DONE]') return;
      onData(JSON.parse(data));
    }
  }
}

// Applies one chunk to the assistant message m; returns true when it carried generated text.
function applyChunk(m, chunk) {
  if (chunk.error) throw new Error(chunk.error.message || 'error');
  if (chunk.usage) m.usage = chunk.usage;
  let produced = false;
  for (const ch of chunk.choices || []) {
    const d = ch.delta || {};
    const r = d.reasoning_content ?? d.reasoning;
    if (r) { m.reasoning = (m.reasoning || '') + r; produced = true; }
    if (d.content) { m.content += d.content; produced = true; }
    for (const tc of d.tool_calls || []) {
      m.tool_calls = m.tool_calls || [];
      const slot = m.tool_calls[tc.index ?? 0] || (m.tool_calls[tc.index ?? 0] = { id: '', name: '', arguments: '' });
      if (tc.id) slot.id = tc.id;
      if (tc.function?.name) slot.name += tc.function.name;
      if (tc.function?.arguments) slot.arguments += tc.function.arguments;
      produced = true;
    }
    if (ch.finish_reason) m.finish = ch.finish_reason;
    if (produced) m.chunks = (m.chunks || 0) + 1;
  }
  return produced;
}

function finishStats(m, t0, tFirst, tEnd, stopped) {
  const u = m.usage;
  const tokens = u ? u.completion_tokens : m.chunks || 0;
  const st = { ttft: tFirst ? (tFirst - t0) / 1000 : null, tokens, finish: stopped ? 'stopped' : m.finish || null };
  if (u?.completion_tokens_details?.reasoning_tokens) st.reasoning_tokens = u.completion_tokens_details.reasoning_tokens;
  // tokens after the first, over the time after the first: the decode rate
  if (tFirst && tEnd > tFirst && tokens > 1) st.tps = (tokens - 1) / ((tEnd - tFirst) / 1000);
  m.stats = st;
  delete m.usage;
  delete m.chunks;
  delete m.finish;
}

async function send(text) {
  let c = conversation() || newConversation();
  const user = { role: 'user', content: text };
  c.messages.push(user);
  if (c.title === 'New chat') c.title = text.slice(0, 60) || 'New chat';
  const m = { role: 'assistant', content: '', reasoning: '', streaming: true };
  let body;
  try {
    body = buildRequest(c);
  } catch (e) {
    c.messages.pop();
    setStatus(`settings: ${e.message}`);
    return;
  }
  c.messages.push(m);
  save();
  renderAll();
  const el = $('messages').lastElementChild;
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  setStatus('');
  const t0 = performance.now();
  let tFirst = 0, stopped = false, pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fillMessage(el, m); $('messages').scrollTop = $('messages').scrollHeight; });
  };
  try {
    const r = await apiFetch('/v1/chat/completions', { method: 'POST', body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      let msg = `HTTP ${r.status}`;
      try { msg += `: ${(await r.json()).error.message}`; } catch { /* no JSON body */ }
      throw new Error(msg);
    }
    await readEvents(r.body, (chunk) => {
      if (applyChunk(m, chunk) && !tFirst) tFirst = performance.now();
      redraw();
    });
  } catch (e) {
    if (e.name === 'AbortError') stopped = true;
    else m.error = e.message;
  }
  delete m.streaming;
  finishStats(m, t0, tFirst, performance.now(), stopped);
  state.controller = null;
  setBusy(false);
  save();
  fillMessage(el, m);
}

function stop() {
  if (state.controller) state.controller.abort();
}

function exportAll() {
  const data = JSON.stringify({ exported: new Date().toISOString(), model: state.model, conversations: state.conversations }, null, 2);
  const url = URL.createObjectURL(new Blob([data], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `moeserve-chats-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- wiring ----

function init() {
  load();
  state.current = state.conversations[0]?.id || null;
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('input').value;
    if (!text.trim() || state.controller) return;
    $('input').value = '';
    send(text);
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
  $('stop').addEventListener('click', stop);
  $('new-chat').addEventListener('click', () => {
    if (state.controller) return;
    newConversation();
    save();
    renderAll();
    $('input').focus();
  });
  $('delete-chat').addEventListener('click', () => {
    if (state.controller || !state.current) return;
    state.conversations = state.conversations.filter((c) => c.id !== state.current);
    state.current = state.conversations[0]?.id || null;
    save();
    renderAll();
  });
  $('export').addEventListener('click', exportAll);
  for (const id of ['system', 'temperature', 'top_p', 'max_tokens', 'tools', 'budget', 'thinking', 'api-key']) {
    $(id).addEventListener('change', saveSettings);
  }
  renderAll();
  loadModel();
}

init();
