// markdown.js: a small, safe Markdown renderer for AI replies.
//
// A reply is untrusted text. This renderer never parses HTML: it builds DOM
// nodes and puts all text in with textContent (text nodes), so no reply can
// run script or inject markup. Supported: fenced code blocks (``` on their
// own lines, or inline ```lang code``` as a model echoing through a
// whitespace-joined stream produces), inline `code`, **bold**, *italic*,
// headings (#), bullet and numbered lists, paragraphs and line breaks, and
// http(s) links [text](url) (any other scheme stays text).

/// Renders `text` into a DocumentFragment built with `doc`.
export function renderMarkdown(text, doc = globalThis.document) {
  const frag = doc.createDocumentFragment();
  const lines = String(text).split('\n');
  let para = null; // lines of the current paragraph
  let list = null; // { el, ordered }

  const flushPara = () => {
    if (para) {
      const p = doc.createElement('p');
      para.forEach((l, i) => {
        if (i > 0) p.appendChild(doc.createElement('br'));
        appendInline(p, l, doc);
      });
      frag.appendChild(p);
      para = null;
    }
  };
  const flushList = () => {
    list = null;
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/.exec(line);
    if (fence) {
      flushPara();
      flushList();
      const body = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        if (lines[j].trim().startsWith(fence[1])) break;
        body.push(lines[j]);
      }
      frag.appendChild(codeBlock(body.join('\n'), fence[2], doc));
      i = j; // skip the closing fence (or run to the end while streaming)
      continue;
    }
    if (/^\s*$/.test(line)) {
      flushPara();
      flushList();
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      flushPara();
      flushList();
      const h = doc.createElement('h' + Math.min(6, heading[1].length + 2));
      appendInline(h, heading[2], doc);
      frag.appendChild(h);
      continue;
    }
    const item = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (item) {
      flushPara();
      const ordered = /\d/.test(item[1]);
      if (!list || list.ordered !== ordered) {
        list = { el: doc.createElement(ordered ? 'ol' : 'ul'), ordered };
        frag.appendChild(list.el);
      }
      const li = doc.createElement('li');
      appendInline(li, item[2], doc);
      list.el.appendChild(li);
      continue;
    }
    flushList();
    (para = para || []).push(line);
  }
  flushPara();
  return frag;
}

function codeBlock(code, lang, doc) {
  const wrap = doc.createElement('div');
  wrap.className = 'code';
  if (lang) {
    const label = doc.createElement('div');
    label.className = 'code-lang';
    label.textContent = lang;
    wrap.appendChild(label);
  }
  const pre = doc.createElement('pre');
  const el = doc.createElement('code');
  el.textContent = code;
  pre.appendChild(el);
  wrap.appendChild(pre);
  return wrap;
}

/// Appends the inline Markdown of one line to `parent`.
function appendInline(parent, text, doc) {
  let i = 0;
  let plain = '';
  const flush = () => {
    if (plain) parent.appendChild(doc.createTextNode(plain));
    plain = '';
  };
  while (i < text.length) {
    const ch = text[i];
    if (ch === '`') {
      let n = 0;
      while (text[i + n] === '`') n++;
      const run = '`'.repeat(n);
      const end = text.indexOf(run, i + n);
      if (end > 0 && text[end + n] !== '`') {
        flush();
        const inner = text.slice(i + n, end);
        if (n >= 3) {
          // ```lang code``` on one line: a code block as the model meant it.
          const m = /^([\w+#.-]+)\s+([\s\S]*)$/.exec(inner);
          parent.appendChild(m ? codeBlock(m[2].trim(), m[1], doc) : codeBlock(inner.trim(), '', doc));
        } else {
          const code = doc.createElement('code');
          code.textContent = inner.length > 2 && inner.startsWith(' ') && inner.endsWith(' ') ? inner.slice(1, -1) : inner;
          parent.appendChild(code);
        }
        i = end + n;
        continue;
      }
      plain += run;
      i += n;
      continue;
    }
    if (ch === '*') { // (not _: identifiers like __init__ are common in replies)
      const strong = text[i + 1] === ch;
      const mark = strong ? ch + ch : ch;
      const end = text.indexOf(mark, i + mark.length + 1);
      const inner = end > 0 ? text.slice(i + mark.length, end) : '';
      if (end > 0 && inner.trim() === inner && inner) {
        flush();
        const el = doc.createElement(strong ? 'strong' : 'em');
        appendInline(el, inner, doc);
        parent.appendChild(el);
        i = end + mark.length;
        continue;
      }
    }
    if (ch === '[') {
      const m = /^\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/.exec(text.slice(i));
      if (m) {
        flush();
        const a = doc.createElement('a');
        a.textContent = m[1];
        a.href = m[2];
        a.rel = 'noopener noreferrer nofollow';
        a.target = '_blank';
        parent.appendChild(a);
        i += m[0].length;
        continue;
      }
    }
    plain += ch;
    i++;
  }
  flush();
}
