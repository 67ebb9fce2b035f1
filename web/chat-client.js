// chat-client.js: the browser side of the chat wire protocol v1
// (../shared/PROTOCOL.md), as a small ES module with no dependencies.
//
//   import { createChatClient } from '/chat-client.js';
//   const chat = createChatClient({ token });
//   const off = chat.subscribe((state) => render(state));   // like a useChat hook
//   chat.open(conversationId);                              // history + live
//   const { key, acked } = chat.send({ content: 'Hello' }); // new conversation
//   chat.cancel(conversationId);                            // Stop
//
// The client keeps the conversations it has seen as plain state that changes
// as frames arrive (a new object on every change, so that frameworks can
// compare by identity). It reconnects by itself with exponential backoff and
// jitter, resubscribes each open conversation with the last seq it completed,
// resends every send not yet acked with the same clientMsgId (the server's
// idempotency key), and drops chunks it already has (messageId, index).
//
// state = {
//   connection: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed',
//   attempt,            // failed connection attempts since the last open
//   retryAt,            // when the next attempt starts (ms since epoch) or null
//   error,              // the last {code, message} (protocol or connection), or null
//   conversations: { [idOrKey]: {
//     id,               // server conversationId, or null until the first ack
//     key,              // the key it is stored under (a new conversation is
//                       // stored under 'new:<clientMsgId>' until its ack)
//     messages: [ { key, messageId, seq, role, content, status, clientMsgId,
//                   replyTo, finishReason, model, usage, error } ],
//     // status: 'sending' (no ack yet), 'sent', 'streaming', 'done', 'failed'
//     generating,       // a reply is being generated or awaited
//     error,            // the last error about this conversation, or null
//   } },
//   aliases: { 'new:<clientMsgId>': conversationId },
// }

const DEFAULTS = {
  initialDelayMs: 500,
  maxDelayMs: 15000,
  factor: 2,
  pingIntervalMs: 25000,
};

/// The delay before reconnect attempt `attempt` (0-based): exponential,
/// capped, with "equal jitter" (half fixed, half random) so that many clients
/// dropped at once by a restart do not come back in lockstep.
export function backoffDelay(attempt, opts = {}, random = Math.random) {
  const o = { ...DEFAULTS, ...opts };
  const base = Math.min(o.maxDelayMs, o.initialDelayMs * Math.pow(o.factor, attempt));
  return Math.round(base / 2 + random() * (base / 2));
}

/// A fresh clientMsgId: 1..64 of [A-Za-z0-9_-].
export function newClientMsgId(random = Math.random) {
  const bytes = new Uint8Array(12);
  if (globalThis.crypto && globalThis.crypto.getRandomValues) {
    globalThis.crypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
  }
  let s = 'c';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function defaultUrl(token) {
  const loc = globalThis.location;
  const proto = loc && loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const host = loc ? loc.host : '127.0.0.1:8080';
  return `${proto}//${host}/api/v1/chat/ws?token=${encodeURIComponent(token)}`;
}

export function createChatClient(options = {}) {
  const opts = { ...DEFAULTS, ...options };
  const WS = opts.WebSocket || globalThis.WebSocket;
  const setTimer = opts.setTimeout || ((f, ms) => globalThis.setTimeout(f, ms));
  const clearTimer = opts.clearTimeout || ((t) => globalThis.clearTimeout(t));
  const random = opts.random || Math.random;
  const now = opts.now || (() => Date.now());
  const url = opts.url || defaultUrl(opts.token);

  let state = {
    connection: 'idle',
    attempt: 0,
    retryAt: null,
    error: null,
    conversations: {},
    aliases: {},
  };
  const listeners = new Set();
  const opened = new Set(); // conversation ids this client follows
  const outbox = new Map(); // clientMsgId -> { frame, resolve, reject }
  const pendingCancel = new Set(); // conversation ids whose reply to stop on its first chunk
  let ws = null;
  let retryTimer = null;
  let pingTimer = null;
  let pingNonce = 0;
  let awaitingPong = false;
  let stopped = false;
  let duplicates = 0;

  // -- state ------------------------------------------------------------------

  function emit() {
    for (const l of [...listeners]) {
      try {
        l(state);
      } catch (e) {
        // A listener's bug must not break the protocol.
        setTimer(() => { throw e; }, 0);
      }
    }
  }
  function set(patch) {
    state = { ...state, ...patch };
    emit();
  }
  function resolveKey(idOrKey) {
    return state.aliases[idOrKey] || idOrKey;
  }
  function conv(id) {
    return state.conversations[resolveKey(id)];
  }
  function emptyConv(id, key) {
    return { id, key, messages: [], generating: false, error: null };
  }
  /// Replaces conversation `key` by `fn(old)` (immutably) and emits.
  function updateConv(key, fn, quiet) {
    const old = state.conversations[key] || emptyConv(key.startsWith('new:') ? null : key, key);
    const next = fn(old);
    if (next === old) return;
    next.generating = next.messages.some(
      (m) => m.role === 'assistant' && m.status === 'streaming') ||
      (next.messages.length > 0 && next.messages[next.messages.length - 1].role === 'user' &&
       next.messages[next.messages.length - 1].status === 'sent');
    state = { ...state, conversations: { ...state.conversations, [key]: next } };
    if (!quiet) emit();
  }
  function sortMessages(messages) {
    // Messages with a seq in seq order; those still waiting for their ack last.
    return messages.slice().sort((a, b) => {
      if (a.seq == null && b.seq == null) return 0;
      if (a.seq == null) return 1;
      if (b.seq == null) return -1;
      return a.seq - b.seq;
    });
  }
  function upsert(c, match, make) {
    const i = c.messages.findIndex(match);
    const messages = c.messages.slice();
    if (i >= 0) messages[i] = make(messages[i]);
    else messages.push(make(null));
    return { ...c, messages: sortMessages(messages) };
  }

  /// The highest seq s such that every message 1..s is here and finished:
  /// what a resubscribe passes as afterSeq so that nothing is missed.
  function lastCompletedSeq(c) {
    if (!c) return 0;
    const bySeq = new Map();
    for (const m of c.messages) if (m.seq != null) bySeq.set(m.seq, m);
    let s = 0;
    for (;;) {
      const m = bySeq.get(s + 1);
      if (!m) break;
      if (m.role === 'assistant' && m.status !== 'done') break;
      s += 1;
    }
    return s;
  }

  // -- connection -----------------------------------------------------------------

  function rawSend(frame) {
    if (ws && ws.readyState === 1) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    stopped = false;
    if (ws) return;
    clearTimer(retryTimer);
    retryTimer = null;
    set({ connection: state.attempt > 0 ? 'reconnecting' : 'connecting', retryAt: null });
    let sock;
    try {
      sock = new WS(url);
    } catch (e) {
      scheduleReconnect({ code: 'connect_failed', message: String(e && e.message || e) });
      return;
    }
    ws = sock;
    let wasOpen = false;
    sock.onopen = () => {
      if (ws !== sock) return;
      wasOpen = true;
      set({ connection: 'open', attempt: 0, error: state.error && state.error.code === 'disconnected' ? null : state.error });
      // Resubscribe first, then resend what was never acked, in order.
      for (const id of opened) {
        rawSend({ type: 'subscribe', conversationId: id, afterSeq: lastCompletedSeq(conv(id)) });
      }
      for (const entry of outbox.values()) rawSend(entry.frame);
      startPing();
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      awaitingPong = false;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame && typeof frame === 'object') handleFrame(frame);
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      stopPing();
      if (stopped) {
        set({ connection: 'closed' });
        return;
      }
      const code = ev && ev.code;
      if (code === 1008) {
        // The token expired while connected: retrying with it cannot work.
        stopped = true;
        set({ connection: 'closed', error: { code: 'unauthorized', message: 'Your sign-in expired. Get a new link.' } });
        return;
      }
      scheduleReconnect({
        code: 'disconnected',
        message: wasOpen ? 'Connection lost. Reconnecting…' : 'Cannot reach the server. Retrying…',
      });
    };
    sock.onerror = () => {};
  }

  function scheduleReconnect(error) {
    const delay = backoffDelay(state.attempt, opts, random);
    set({ connection: 'reconnecting', attempt: state.attempt + 1, retryAt: now() + delay, error });
    clearTimer(retryTimer);
    retryTimer = setTimer(() => {
      retryTimer = null;
      if (!stopped) connect();
    }, delay);
  }

  function startPing() {
    stopPing();
    if (!opts.pingIntervalMs) return;
    awaitingPong = false;
    const tick = () => {
      if (!ws) return;
      if (awaitingPong) {
        // Nothing at all came back for a whole interval: the link is dead
        // even if the socket does not know it yet.
        const sock = ws;
        try { sock.close(); } catch { /* ignore */ }
        if (sock.onclose) sock.onclose({ code: 1006 });
        return;
      }
      awaitingPong = true;
      rawSend({ type: 'ping', nonce: ++pingNonce });
      pingTimer = setTimer(tick, opts.pingIntervalMs);
    };
    pingTimer = setTimer(tick, opts.pingIntervalMs);
  }
  function stopPing() {
    clearTimer(pingTimer);
    pingTimer = null;
  }

  function close() {
    stopped = true;
    clearTimer(retryTimer);
    retryTimer = null;
    stopPing();
    const sock = ws;
    ws = null;
    if (sock) {
      try { sock.close(1000); } catch { /* ignore */ }
    }
    set({ connection: 'closed', retryAt: null });
  }

  // -- frames from the server -----------------------------------------------------

  function handleFrame(f) {
    switch (f.type) {
      case 'ack': return onAck(f);
      case 'message': return onMessage(f);
      case 'chunk': return onChunk(f);
      case 'done': return onDone(f);
      case 'error': return onError(f);
      default: return undefined; // pong and frames of newer servers
    }
  }

  function onAck(f) {
    const entry = outbox.get(f.clientMsgId);
    outbox.delete(f.clientMsgId);
    let key = f.conversationId;
    const tmpKey = 'new:' + f.clientMsgId;
    if (state.conversations[tmpKey] && !state.conversations[key]) {
      // A new conversation: move it under its real id.
      const c = { ...state.conversations[tmpKey], id: key, key };
      const conversations = { ...state.conversations, [key]: c };
      delete conversations[tmpKey];
      state = { ...state, conversations, aliases: { ...state.aliases, [tmpKey]: key } };
    } else if (state.conversations[tmpKey]) {
      const conversations = { ...state.conversations };
      const moved = conversations[tmpKey].messages;
      delete conversations[tmpKey];
      state = { ...state, conversations, aliases: { ...state.aliases, [tmpKey]: key } };
      updateConv(key, (c) => ({ ...c, messages: sortMessages([...c.messages, ...moved]) }), true);
    }
    opened.add(key);
    updateConv(key, (c) => upsert(c,
      (m) => m.clientMsgId === f.clientMsgId || m.messageId === f.messageId,
      (m) => ({
        ...(m || { key: f.messageId, role: 'user', content: entry ? entry.frame.content : '' }),
        clientMsgId: f.clientMsgId, messageId: f.messageId, seq: f.seq, status: 'sent',
      })));
    if (entry) entry.resolve(f);
  }

  function onMessage(f) {
    const key = resolveKey(f.conversationId);
    if (f.role === 'user' && f.clientMsgId && outbox.has(f.clientMsgId)) {
      // Our own send, committed on a connection whose ack we never saw.
      onAck({ clientMsgId: f.clientMsgId, conversationId: f.conversationId, messageId: f.messageId, seq: f.seq });
    }
    updateConv(key, (c) => upsert(c,
      (m) => m.messageId === f.messageId || (f.clientMsgId && m.clientMsgId === f.clientMsgId && m.role === f.role),
      (m) => ({
        ...(m || { key: f.messageId }),
        messageId: f.messageId,
        seq: f.seq,
        role: f.role,
        content: f.content,
        clientMsgId: f.clientMsgId,
        replyTo: f.replyTo,
        finishReason: f.finishReason,
        model: f.model,
        createdAt: f.createdAt,
        chunks: undefined,
        // A finished message: user messages are committed, replies ended.
        status: f.role === 'assistant' ? 'done' : 'sent',
      })));
  }

  function onChunk(f) {
    const key = resolveKey(f.conversationId);
    const c = state.conversations[key];
    const existing = c && c.messages.find((m) => m.messageId === f.messageId);
    if (existing && (existing.status === 'done' || (existing.chunks && existing.chunks[f.index] !== undefined))) {
      duplicates += 1; // already have it (a resend after subscribe)
      return;
    }
    updateConv(key, (c2) => upsert(c2, (m) => m.messageId === f.messageId, (m) => {
      const chunks = m && m.chunks ? m.chunks.slice() : [];
      chunks[f.index] = f.delta;
      let content = '';
      for (let i = 0; i < chunks.length && chunks[i] !== undefined; i++) content += chunks[i];
      return {
        ...(m || { key: f.messageId, role: 'assistant' }),
        messageId: f.messageId, seq: f.seq, replyTo: f.replyTo,
        chunks, content, status: 'streaming',
      };
    }));
    if (pendingCancel.has(key)) {
      pendingCancel.delete(key);
      rawSend({ type: 'cancel', conversationId: key, messageId: f.messageId });
    }
  }

  function onDone(f) {
    const key = resolveKey(f.conversationId);
    pendingCancel.delete(key);
    updateConv(key, (c) => upsert(c, (m) => m.messageId === f.messageId, (m) => ({
      ...(m || { key: f.messageId, role: 'assistant', content: '' }),
      messageId: f.messageId, seq: f.seq, replyTo: f.replyTo,
      status: 'done', finishReason: f.finishReason, usage: f.usage,
    })));
  }

  function onError(f) {
    const error = { code: f.code || 'internal', message: f.message || 'Something went wrong.' };
    if (f.clientMsgId && outbox.has(f.clientMsgId)) {
      // Refused: the clientMsgId is not used up, but this send is over.
      const entry = outbox.get(f.clientMsgId);
      outbox.delete(f.clientMsgId);
      const key = entry.key;
      updateConv(resolveKey(key), (c) => upsert(c, (m) => m.clientMsgId === f.clientMsgId,
        (m) => ({ ...(m || { key: f.clientMsgId, role: 'user', content: entry.frame.content }), status: 'failed', error })), true);
      entry.reject(Object.assign(new Error(error.message), error));
    }
    if (f.conversationId) {
      updateConv(resolveKey(f.conversationId), (c) => ({ ...c, error }), true);
    }
    set({ error });
  }

  // -- the API ------------------------------------------------------------------------

  /// Follows a conversation: its finished messages after the ones we have,
  /// then the reply being generated, then live events.
  function open(conversationId) {
    const id = resolveKey(conversationId);
    if (id.startsWith('new:')) return;
    const first = !opened.has(id);
    opened.add(id);
    if (!state.conversations[id]) updateConv(id, (c) => c);
    if (first) rawSend({ type: 'subscribe', conversationId: id, afterSeq: lastCompletedSeq(conv(id)) });
  }

  function unsubscribe(conversationId) {
    const id = resolveKey(conversationId);
    if (opened.delete(id)) rawSend({ type: 'unsubscribe', conversationId: id });
  }

  /// Sends a user message; without conversationId it starts a new one,
  /// stored under `key` ('new:<clientMsgId>') until acked. Returns
  /// { clientMsgId, key, acked } where acked resolves with the ack.
  function send({ conversationId, content, model, clientMsgId } = {}) {
    const id = clientMsgId || newClientMsgId(random);
    const realId = conversationId ? resolveKey(conversationId) : undefined;
    const frame = { type: 'send', clientMsgId: id, content };
    if (realId && !realId.startsWith('new:')) frame.conversationId = realId;
    if (model) frame.model = model;
    const key = frame.conversationId || realId || 'new:' + id;
    let resolve, reject;
    const acked = new Promise((res, rej) => { resolve = res; reject = rej; });
    acked.catch(() => {}); // callers may ignore it; errors are in state too
    outbox.set(id, { frame, key, resolve, reject });
    updateConv(key, (c) => ({
      ...c,
      error: null,
      messages: sortMessages([...c.messages, { key: id, clientMsgId: id, role: 'user', content, status: 'sending' }]),
    }));
    if (state.connection === 'idle') connect();
    else rawSend(frame);
    return { clientMsgId: id, key, acked };
  }

  /// Stops the reply being generated in a conversation (or the next one,
  /// if its first chunk has not arrived yet).
  function cancel(conversationId) {
    const key = resolveKey(conversationId);
    const c = state.conversations[key];
    if (!c) return false;
    const streaming = c.messages.find((m) => m.role === 'assistant' && m.status === 'streaming');
    if (streaming) return rawSend({ type: 'cancel', conversationId: key, messageId: streaming.messageId });
    if (c.generating) pendingCancel.add(key);
    return c.generating;
  }

  function clearError() {
    set({ error: null });
  }

  return {
    connect,
    close,
    open,
    unsubscribe,
    send,
    cancel,
    clearError,
    getState: () => state,
    conversation: (idOrKey) => conv(idOrKey),
    resolveId: resolveKey,
    lastCompletedSeq: (id) => lastCompletedSeq(conv(id)),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    stats: () => ({ duplicateChunks: duplicates, unacked: outbox.size }),
    /// Test hook: the frame handler, as if the server had sent `frame`.
    _handleFrame: handleFrame,
  };
}
