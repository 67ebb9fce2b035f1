// app.js: the chat page. State lives in the chat client (chat-client.js);
// this file only renders it and turns clicks and keys into client calls.
// Reply text is untrusted: it reaches the DOM only as text nodes
// (markdown.js builds elements; nothing here uses innerHTML).

import { createChatClient } from './chat-client.js';
import { renderMarkdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'chat.token';
const CONV_KEY = 'chat.conversation';
const MODEL_KEY = 'chat.model';

// -- sign-in: the token comes in the URL fragment and stays in this tab -------

function takeToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromUrl = params.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    params.delete('token');
    const rest = params.toString();
    // At once, so that the token is not left in the address bar or history.
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

const token = takeToken();
const initialConversation = new URLSearchParams(location.hash.slice(1)).get('c') ||
  sessionStorage.getItem(CONV_KEY);

// -- REST ------------------------------------------------------------------------

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: 'Bearer ' + token } });
  if (!res.ok) {
    let message = `The server answered ${res.status}.`;
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch { /* not JSON */ }
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return res.json();
}

// -- page state --------------------------------------------------------------------

let current = null; // conversation id or 'new:<clientMsgId>' key; null: a new chat
let conversations = []; // from REST
let localError = null;
const rendered = new Map(); // message key -> { el, body, content, status }

const client = token ? createChatClient({ token }) : null;

function setCurrent(idOrKey) {
  current = idOrKey;
  const id = current && !current.startsWith('new:') ? current : null;
  if (id) {
    sessionStorage.setItem(CONV_KEY, id);
    history.replaceState(null, '', location.pathname + location.search + '#c=' + encodeURIComponent(id));
    client.open(id);
  } else {
    sessionStorage.removeItem(CONV_KEY);
    history.replaceState(null, '', location.pathname + location.search);
  }
  $('messages').replaceChildren($('empty'));
  rendered.clear();
  document.body.classList.remove('sidebar-open');
  render();
}

async function loadConversations() {
  try {
    const body = await api('/api/v1/conversations?limit=100');
    conversations = body.conversations || [];
    renderConversations();
  } catch (e) {
    showError(e.status === 401 ? 'Your sign-in was refused (expired or wrong token). Get a new link.' : 'Could not load conversations: ' + e.message);
  }
}

async function loadModels() {
  try {
    const body = await api('/api/v1/models');
    const select = $('model');
    const saved = localStorage.getItem(MODEL_KEY);
    select.replaceChildren();
    for (const m of body.models || []) {
      const opt = document.createElement('option');
      opt.value = m.id;
      opt.textContent = m.id;
      select.appendChild(opt);
    }
    const ids = (body.models || []).map((m) => m.id);
    select.value = saved && ids.includes(saved) ? saved : body.default || ids[0] || '';
  } catch (e) {
    if (e.status === 401) showError('Your sign-in was refused (expired or wrong token). Get a new link.');
  }
}

function showError(text) {
  localError = text;
  render();
}

// -- rendering ---------------------------------------------------------------------

const CONNECTION_TEXT = {
  idle: 'Offline',
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected',
};

function renderConversations() {
  const list = $('conversations');
  list.replaceChildren();
  const id = current && client.resolveId(current);
  for (const c of conversations) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'conversation' + (c.id === id ? ' active' : '');
    b.dataset.id = c.id;
    b.textContent = c.title || 'Untitled';
    b.title = c.title || '';
    b.addEventListener('click', () => setCurrent(c.id));
    li.appendChild(b);
    list.appendChild(li);
  }
  $('conversations-empty').hidden = conversations.length > 0;
}

function render() {
  if (!client) return;
  const state = client.getState();
  const conn = $('connection');
  conn.dataset.state = state.connection;
  let text = CONNECTION_TEXT[state.connection] || state.connection;
  if (state.connection === 'reconnecting' && state.retryAt) {
    const s = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    if (s > 0) text = `Reconnecting in ${s} s…`;
  }
  conn.textContent = text;

  const c = current ? client.conversation(current) : null;
  const errText = localError || (state.error && state.error.code !== 'disconnected' ? describe(state.error) : null);
  $('error').hidden = !errText;
  $('error-text').textContent = errText || '';

  const messages = c ? c.messages : [];
  $('empty').hidden = messages.length > 0;
  const box = $('messages');
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  let prev = $('empty');
  for (const m of messages) {
    let r = rendered.get(m.key);
    if (!r) {
      const el = document.createElement('article');
      el.className = 'msg ' + m.role;
      const body = document.createElement('div');
      body.className = 'body';
      const meta = document.createElement('div');
      meta.className = 'meta';
      el.append(body, meta);
      r = { el, body, meta, content: null, status: null };
      rendered.set(m.key, r);
    }
    if (r.content !== m.content || r.status !== m.status) {
      if (m.role === 'assistant') {
        r.body.replaceChildren(renderMarkdown(m.content || '', document));
      } else {
        r.body.textContent = m.content;
      }
      r.el.dataset.status = m.status;
      r.el.dataset.role = m.role;
      if (m.seq != null) r.el.dataset.seq = m.seq;
      if (m.messageId) r.el.dataset.messageId = m.messageId;
      r.el.dataset.finish = m.finishReason || '';
      r.meta.textContent = metaText(m);
      r.content = m.content;
      r.status = m.status;
    }
    if (prev.nextSibling !== r.el) prev.after(r.el);
    prev = r.el;
  }
  // Drop elements of messages that moved away (a new conversation's key).
  while (prev.nextSibling) prev.nextSibling.remove();
  if (nearBottom) box.scrollTop = box.scrollHeight;

  const generating = !!(c && c.generating);
  $('stop').hidden = !generating;
  const title = c && c.id ? (conversations.find((x) => x.id === c.id) || {}).title : null;
  $('title').textContent = title || (c && c.messages[0] ? c.messages[0].content.slice(0, 60) : 'New chat');
}

function metaText(m) {
  if (m.status === 'sending') return 'Sending…';
  if (m.status === 'failed') return 'Not sent: ' + describe(m.error);
  if (m.role !== 'assistant') return '';
  if (m.status === 'streaming') return '';
  switch (m.finishReason) {
    case 'cancelled': return 'Stopped';
    case 'length': return 'Cut off at the length limit';
    case 'error': return 'The model failed; this reply is incomplete.';
    case 'interrupted': return 'Interrupted; this reply is incomplete.';
    default: return m.model || '';
  }
}

function describe(error) {
  if (!error) return '';
  switch (error.code) {
    case 'rate_limited': return 'You are sending too fast. Wait a moment and try again.';
    case 'too_large': return 'That message is too long.';
    case 'not_found': return 'That conversation does not exist (or is not yours).';
    case 'provider_error': return 'The AI provider failed: ' + error.message;
    case 'unavailable': return 'The service is unavailable right now. Try again soon.';
    default: return error.message || error.code;
  }
}

// -- actions -------------------------------------------------------------------------

function send() {
  const input = $('input');
  const content = input.value;
  if (!content.trim()) return;
  localError = null;
  const model = $('model').value || undefined;
  const { key, acked } = client.send({ conversationId: current || undefined, content, model });
  input.value = '';
  autosize();
  if (!current) setCurrent(key);
  acked.then((ack) => {
    if (current === key) setCurrent(ack.conversationId);
    loadConversations();
  }, () => {});
}

function autosize() {
  const input = $('input');
  input.style.height = 'auto';
  input.style.height = Math.min(input.scrollHeight, 200) + 'px';
}

function start() {
  if (!token) {
    $('signin').hidden = false;
    $('composer').hidden = true;
    $('messages').hidden = true;
    $('app').dataset.ready = 'true';
    return;
  }
  client.subscribe(() => render());
  let lastDone = 0;
  client.subscribe((state) => {
    // Refresh the list (titles, order) when a reply ends.
    const done = Object.values(state.conversations)
      .reduce((n, c) => n + c.messages.filter((m) => m.status === 'done').length, 0);
    if (done !== lastDone) {
      lastDone = done;
      loadConversations();
    }
  });
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('input').addEventListener('input', autosize);
  $('stop').addEventListener('click', () => current && client.cancel(current));
  $('new-chat').addEventListener('click', () => {
    setCurrent(null);
    $('input').focus();
  });
  $('model').addEventListener('change', () => localStorage.setItem(MODEL_KEY, $('model').value));
  $('error-close').addEventListener('click', () => {
    localError = null;
    client.clearError();
  });
  $('toggle-sidebar').addEventListener('click', () => document.body.classList.toggle('sidebar-open'));
  // The "reconnecting in N s" countdown.
  setInterval(() => {
    if (client.getState().connection === 'reconnecting') render();
  }, 1000);

  client.connect();
  loadModels();
  loadConversations();
  setCurrent(initialConversation || null);
  $('app').dataset.ready = 'true';
  $('input').focus();
}

start();
