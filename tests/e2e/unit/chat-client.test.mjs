// Unit tests of web/chat-client.js: reconnect, resubscribe, resend and
// dedupe, with a fake WebSocket and fake timers (node --test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createChatClient, backoffDelay } from '../../../web/chat-client.js';
import { renderMarkdown } from '../../../web/markdown.js';

/// A fake WebSocket: every instance is recorded; the test opens, closes and
/// feeds it frames.
function fakeEnv() {
  const sockets = [];
  class FakeWS {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(data) {
      assert.equal(this.readyState, 1, 'send on a socket that is not open');
      this.sent.push(JSON.parse(data));
    }
    close() {
      this.readyState = 3;
    }
    // test side
    open() {
      this.readyState = 1;
      this.onopen && this.onopen({});
    }
    serverClose(code = 1006) {
      this.readyState = 3;
      this.onclose && this.onclose({ code });
    }
    frame(f) {
      this.onmessage && this.onmessage({ data: JSON.stringify(f) });
    }
  }
  const timers = [];
  let clock = 1000;
  const env = {
    sockets,
    timers,
    WebSocket: FakeWS,
    setTimeout: (fn, ms) => {
      const t = { fn, at: clock + ms, ms };
      timers.push(t);
      return t;
    },
    clearTimeout: (t) => {
      const i = timers.indexOf(t);
      if (i >= 0) timers.splice(i, 1);
    },
    now: () => clock,
    /// Runs the next timer due.
    tick() {
      timers.sort((a, b) => a.at - b.at);
      const t = timers.shift();
      assert.ok(t, 'no timer pending');
      clock = t.at;
      t.fn();
      return t;
    },
    last: () => sockets[sockets.length - 1],
  };
  return env;
}

function makeClient(env, extra = {}) {
  return createChatClient({
    url: 'ws://test/api/v1/chat/ws?token=t',
    WebSocket: env.WebSocket,
    setTimeout: env.setTimeout,
    clearTimeout: env.clearTimeout,
    now: env.now,
    random: () => 0.5,
    pingIntervalMs: 0,
    ...extra,
  });
}

const chunk = (messageId, index, delta, extra = {}) => ({
  type: 'chunk', conversationId: 'k1', messageId, replyTo: 'u1', seq: 2, index, delta, ...extra,
});

test('backoff grows exponentially, is capped, and is jittered', () => {
  const o = { initialDelayMs: 500, maxDelayMs: 8000, factor: 2 };
  assert.equal(backoffDelay(0, o, () => 0), 250);
  assert.equal(backoffDelay(0, o, () => 1), 500);
  assert.equal(backoffDelay(3, o, () => 1), 4000);
  assert.equal(backoffDelay(10, o, () => 1), 8000);
  assert.equal(backoffDelay(10, o, () => 0), 4000);
  assert.notEqual(backoffDelay(2, o, () => 0.1), backoffDelay(2, o, () => 0.9));
});

test('send streams a reply into state; ack moves a new conversation to its id', async () => {
  const env = fakeEnv();
  const c = makeClient(env);
  c.connect();
  env.last().open();
  const { clientMsgId, key, acked } = c.send({ content: 'hi there', model: 'm' });
  assert.match(clientMsgId, /^[A-Za-z0-9_-]{1,64}$/);
  assert.deepEqual(env.last().sent[0], { type: 'send', clientMsgId, content: 'hi there', model: 'm' });
  assert.equal(c.conversation(key).messages[0].status, 'sending');
  env.last().frame({ type: 'ack', clientMsgId, conversationId: 'k1', messageId: 'u1', seq: 1 });
  assert.equal((await acked).conversationId, 'k1');
  assert.equal(c.resolveId(key), 'k1');
  assert.equal(c.conversation(key).id, 'k1');
  env.last().frame(chunk('a1', 0, 'Echo:'));
  assert.equal(c.conversation('k1').generating, true);
  env.last().frame(chunk('a1', 1, ' hi'));
  const m = c.conversation('k1').messages[1];
  assert.equal(m.content, 'Echo: hi');
  assert.equal(m.status, 'streaming');
  env.last().frame({ type: 'done', conversationId: 'k1', messageId: 'a1', replyTo: 'u1', seq: 2, chunks: 2, finishReason: 'stop' });
  assert.equal(c.conversation('k1').messages[1].status, 'done');
  assert.equal(c.conversation('k1').generating, false);
  assert.equal(c.lastCompletedSeq('k1'), 2);
});

test('duplicate chunks are dropped', () => {
  const env = fakeEnv();
  const c = makeClient(env);
  c.connect();
  env.last().open();
  c.open('k1');
  const ws = env.last();
  ws.frame(chunk('a1', 0, 'A'));
  ws.frame(chunk('a1', 1, 'B'));
  ws.frame(chunk('a1', 0, 'A'));
  ws.frame(chunk('a1', 1, 'B'));
  ws.frame(chunk('a1', 2, 'C'));
  assert.equal(c.conversation('k1').messages[0].content, 'ABC');
  assert.equal(c.stats().duplicateChunks, 2);
  ws.frame({ type: 'done', conversationId: 'k1', messageId: 'a1', seq: 2, chunks: 3, finishReason: 'stop' });
  ws.frame(chunk('a1', 2, 'C'));
  assert.equal(c.conversation('k1').messages[0].content, 'ABC');
});

test('reconnects with backoff, resubscribes with the last completed seq, resends unacked sends', () => {
  const env = fakeEnv();
  const states = [];
  const c = makeClient(env);
  c.subscribe((s) => states.push(s.connection));
  c.connect();
  const ws1 = env.last();
  ws1.open();
  c.open('k1');
  assert.deepEqual(ws1.sent[0], { type: 'subscribe', conversationId: 'k1', afterSeq: 0 });
  ws1.frame({ type: 'message', conversationId: 'k1', messageId: 'u1', seq: 1, role: 'user', content: 'q', clientMsgId: 'x' });
  ws1.frame({ type: 'message', conversationId: 'k1', messageId: 'a1', seq: 2, role: 'assistant', content: 'r', finishReason: 'stop' });
  ws1.frame({ type: 'message', conversationId: 'k1', messageId: 'u2', seq: 3, role: 'user', content: 'q2' });
  ws1.frame(chunk('a2', 0, 'half', { seq: 4, replyTo: 'u2' }));
  // A send that will not be acked before the drop.
  const { clientMsgId } = c.send({ conversationId: 'k1', content: 'later' });
  assert.equal(ws1.sent[1].clientMsgId, clientMsgId);

  ws1.serverClose(1006);
  assert.equal(c.getState().connection, 'reconnecting');
  assert.equal(c.getState().error.code, 'disconnected');
  // First retry after 375 ms (500 * (0.5 + 0.5*0.5)); it fails too.
  assert.equal(env.tick().ms, 375);
  env.last().serverClose(1006);
  assert.equal(env.tick().ms, 750); // the delay doubled
  const ws3 = env.last();
  ws3.open();
  assert.equal(c.getState().connection, 'open');
  assert.equal(c.getState().error, null);
  // Subscribe with the last completed seq (3: reply 4 is unfinished), then the resend.
  assert.deepEqual(ws3.sent[0], { type: 'subscribe', conversationId: 'k1', afterSeq: 3 });
  assert.deepEqual(ws3.sent[1], { type: 'send', clientMsgId, conversationId: 'k1', content: 'later' });
  // The server resends the reply's chunks so far: no duplicates in state.
  ws3.frame(chunk('a2', 0, 'half', { seq: 4, replyTo: 'u2' }));
  ws3.frame(chunk('a2', 1, ' more', { seq: 4, replyTo: 'u2' }));
  ws3.frame({ type: 'ack', clientMsgId, conversationId: 'k1', messageId: 'u3', seq: 5 });
  const msgs = c.conversation('k1').messages;
  assert.deepEqual(msgs.map((m) => m.seq), [1, 2, 3, 4, 5]);
  assert.equal(msgs[3].content, 'half more');
  assert.equal(msgs.filter((m) => m.content === 'later').length, 1);
  assert.ok(states.includes('reconnecting') && states.at(-1) === 'open');
  // After a successful open, the backoff starts over.
  ws3.serverClose(1001);
  assert.equal(env.tick().ms, 375);
});

test('a send made while offline goes out once connected', () => {
  const env = fakeEnv();
  const c = makeClient(env);
  c.connect();
  const { clientMsgId } = c.send({ content: 'queued' });
  assert.equal(env.last().sent.length, 0);
  env.last().open();
  assert.equal(env.last().sent[0].clientMsgId, clientMsgId);
});

test('an error refusing a send marks it failed and reports it', async () => {
  const env = fakeEnv();
  const c = makeClient(env);
  c.connect();
  env.last().open();
  const { key, clientMsgId, acked } = c.send({ content: 'x' });
  env.last().frame({ type: 'error', code: 'rate_limited', message: 'slow down', clientMsgId });
  await assert.rejects(acked, /slow down/);
  assert.equal(c.conversation(key).messages[0].status, 'failed');
  assert.equal(c.getState().error.code, 'rate_limited');
  // Not resent after a reconnect.
  env.last().serverClose();
  env.tick();
  env.last().open();
  assert.equal(env.last().sent.length, 0);
});

test('cancel names the streaming reply; before its first chunk it waits for it', () => {
  const env = fakeEnv();
  const c = makeClient(env);
  c.connect();
  const ws = env.last();
  ws.open();
  const { clientMsgId } = c.send({ conversationId: 'k1', content: 'go' });
  ws.frame({ type: 'ack', clientMsgId, conversationId: 'k1', messageId: 'u1', seq: 1 });
  assert.equal(c.cancel('k1'), true);
  assert.equal(ws.sent.length, 1);
  ws.frame(chunk('a1', 0, 'E'));
  assert.deepEqual(ws.sent[1], { type: 'cancel', conversationId: 'k1', messageId: 'a1' });
  c.cancel('k1');
  assert.deepEqual(ws.sent[2], { type: 'cancel', conversationId: 'k1', messageId: 'a1' });
});

test('a token that expires while connected (1008) stops reconnecting', () => {
  const env = fakeEnv();
  const c = makeClient(env);
  c.connect();
  env.last().open();
  env.last().serverClose(1008);
  assert.equal(c.getState().connection, 'closed');
  assert.equal(c.getState().error.code, 'unauthorized');
  assert.equal(env.timers.length, 0);
});

test('a dead link (no pong) is closed and reconnected', () => {
  const env = fakeEnv();
  const c = makeClient(env, { pingIntervalMs: 1000 });
  c.connect();
  const ws = env.last();
  ws.open();
  env.tick();
  assert.equal(ws.sent[0].type, 'ping');
  env.tick(); // no answer for a whole interval
  assert.equal(c.getState().connection, 'reconnecting');
});

test('markdown builds elements and keeps markup as text', () => {
  // A tiny DOM, enough for the renderer.
  class Node {
    constructor(tag) { this.tag = tag; this.children = []; this.text = ''; }
    appendChild(c) { this.children.push(c); return c; }
    set textContent(t) { this.children = []; this.text = t; }
    get textContent() { return this.text + this.children.map((c) => c.textContent).join(''); }
  }
  const doc = {
    createDocumentFragment: () => new Node('#frag'),
    createElement: (t) => new Node(t),
    createTextNode: (t) => { const n = new Node('#text'); n.text = t; return n; },
  };
  const tags = (n) => [n.tag, ...n.children.flatMap(tags)];
  const f = renderMarkdown('Hi <img src=x onerror=alert(1)> **b**\n\n```js\n<script>x</script>\n```', doc);
  assert.ok(!tags(f).includes('img') && !tags(f).includes('script'));
  assert.ok(tags(f).includes('strong') && tags(f).includes('pre'));
  assert.ok(f.textContent.includes('<img src=x onerror=alert(1)>'));
  assert.ok(f.textContent.includes('<script>x</script>'));
  const inline = renderMarkdown('Echo: ```js console.log(1) ``` w4', doc);
  assert.ok(tags(inline).includes('pre'));
  assert.ok(inline.textContent.includes('console.log(1)'));
});
