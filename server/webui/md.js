// A small Markdown renderer for chat text. Safety rule: every piece of the input is HTML-escaped
// before it is placed in the output; the only markup in the result is the fixed tags written
// here, and the only attribute taken from the input is a link's href, which must be http(s) and
// is escaped too. So `<img src=x onerror=...>` in the input comes out as visible text.
// Supported: fenced code blocks (highlighted), `code`, **bold**, *italic*, ~~strike~~, links,
// headings, lists, block quotes, horizontal rules, paragraphs. Also imported by node tests.

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
}

// ---- code highlighting: the code is split into tokens, each escaped when written ----

const KEYWORDS = new Set(('if else elif for while do return function def class import from export const let var ' +
  'new delete try catch except finally throw raise switch case break continue default struct enum union typedef ' +
  'static extern void int char float double long short unsigned signed bool true false null None True False nil ' +
  'async await yield lambda in of is not and or with as pub fn impl trait use mod match loop mut self this super ' +
  'package func go type interface map chan select defer public private protected final abstract sizeof goto').split(' '));

// one regex, one alternative per token class; the order of the groups matches CLASSES
const TOKEN_RE = /(\/\/[^\n]*|#[^\n]*|\/\*[\s\S]*?(?:\*\/|$)|--[^\n]*)|("(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?|`(?:\\.|[^`\\])*`?)|(\b(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\b)|([A-Za-z_][A-Za-z0-9_]*)/g;
const CLASSES = ['tok-comment', 'tok-string', 'tok-number', 'tok-kw'];

export function highlight(code, lang = '') {
  // '#' starts a comment only in languages that use it; elsewhere it is plain text
  const hashComments = /^(py|python|sh|bash|shell|zsh|rb|ruby|yaml|yml|toml|perl|r|make|makefile|dockerfile|conf|ini)$/i.test(lang);
  const dashComments = /^(sql|lua|haskell|hs)$/i.test(lang);
  let out = '';
  let last = 0;
  for (const m of code.matchAll(TOKEN_RE)) {
    let cls = null;
    if (m[1] !== undefined) {
      const kind = m[1].slice(0, 2);
      if ((kind[0] === '#' && !hashComments) || (kind === '--' && !dashComments)) {
        continue; // not a comment here: left as plain text
      }
      cls = CLASSES[0];
    } else if (m[2] !== undefined) cls = CLASSES[1];
    else if (m[3] !== undefined) cls = CLASSES[2];
    else if (KEYWORDS.has(m[4])) cls = CLASSES[3];
    if (!cls) continue;
    out += escapeHtml(code.slice(last, m.index)) + `<span class="${cls}">` + escapeHtml(m[0]) + '</span>';
    last = m.index + m[0].length;
  }
  return out + escapeHtml(code.slice(last));
}

// ---- inline: escape first, then the patterns run on the escaped text ----

function safeHref(escapedUrl) {
  // the URL is already escaped (no quote or angle bracket can remain); only web links
  return /^https?:\/\//i.test(escapedUrl) ? escapedUrl : null;
}

export function renderInline(text) {
  let s = escapeHtml(text);
  const codes = [];
  // code spans first, kept away from the other patterns by placeholders (\u0000 cannot be in
  // the escaped text's markup, and is removed from input below)
  s = s.replace(/\u0000/g, '');
  s = s.replace(/`([^`\n]+)`/g, (_, c) => { codes.push(`<code>${c}</code>`); return `\u0000${codes.length - 1}\u0000`; });
  s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (all, label, url) => {
    const href = safeHref(url);
    return href ? `<a href="${href}" target="_blank" rel="noopener noreferrer">${label}</a>` : all;
  });
  s = s.replace(/\*\*([^*\n]+)\*\*/g, '<strong>$1</strong>');
  s = s.replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, '$1<em>$2</em>');
  s = s.replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, '$1<em>$2</em>');
  s = s.replace(/~~([^~\n]+)~~/g, '<del>$1</del>');
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => codes[Number(i)]);
}

// ---- blocks ----

function renderCode(lines, lang) {
  const cls = lang ? ` class="lang-${escapeHtml(lang)}"` : '';
  const label = lang ? `<span class="code-lang">${escapeHtml(lang)}</span>` : '';
  return `<pre class="code">${label}<code${cls}>${highlight(lines.join('\n'), lang)}</code></pre>`;
}

function renderList(items, ordered) {
  const tag = ordered ? 'ol' : 'ul';
  return `<${tag}>` + items.map((it) => `<li>${renderInline(it)}</li>`).join('') + `</${tag}>`;
}

// Renders Markdown text to an HTML string that is safe to assign to innerHTML. A fence left open
// (the model is still writing the block) renders as a code block up to the end.
export function renderMarkdown(text) {
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) out.push(`<p>${para.map(renderInline).join('<br>')}</p>`);
    para = [];
  };
  for (let i = 0; i < lines.length;) {
    const line = lines[i];
    const fence = line.match(/^\s*(```+|~~~+)\s*([\w+#.-]*)/);
    if (fence) {
      flush();
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (or past the end)
      out.push(renderCode(body, fence[2]));
      continue;
    }
    const h = line.match(/^(#{1,6})\s+(.*)$/);
    if (h) {
      flush();
      out.push(`<h${h[1].length}>${renderInline(h[2])}</h${h[1].length}>`);
      i++;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      flush();
      out.push('<hr>');
      i++;
      continue;
    }
    const ul = /^\s*[-*+]\s+(.*)$/, ol = /^\s*\d+[.)]\s+(.*)$/;
    if (ul.test(line) || ol.test(line)) {
      flush();
      const re = ul.test(line) ? ul : ol;
      const items = [];
      while (i < lines.length && re.test(lines[i])) items.push(lines[i++].match(re)[1]);
      out.push(renderList(items, re === ol));
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ''));
      out.push(`<blockquote>${renderMarkdown(quoted.join('\n'))}</blockquote>`);
      continue;
    }
    if (!line.trim()) flush();
    else para.push(line);
    i++;
  }
  flush();
  return out.join('');
}
