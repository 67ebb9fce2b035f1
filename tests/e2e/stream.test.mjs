// Send a message and watch the reply stream in; the conversation list and
// the model picker come from REST.
import { scenario, assert, sendText, replies, waitReplyDone, mockReply, uniqueUser } from './lib/harness.mjs';

await scenario('e2e_stream', async ({ service, openChat, pageErrors }) => {
  const page = await openChat(service.token(uniqueUser()));
  // The token is gone from the address bar at once.
  assert.ok(!page.url().includes('token='), `token left in the URL: ${page.url()}`);
  assert.deepEqual(await page.$$eval('#model option', (os) => os.map((o) => o.value)), ['gpt-4o-mini', 'mock-2']);

  await sendText(page, 'hello streaming world [[mock tokens=30 delay_ms=60]]');
  await page.waitForSelector('.msg.user[data-status="sent"]');
  // Streaming: some text, not all of it yet.
  await page.waitForSelector('.msg.assistant[data-status="streaming"]');
  await page.waitForFunction(() => {
    const e = document.querySelector('.msg.assistant');
    return e && e.textContent.includes('world');
  });
  const partial = (await replies(page))[0];
  assert.equal(partial.status, 'streaming');
  assert.ok(await page.isVisible('#stop'), 'Stop is shown while a reply streams');

  await waitReplyDone(page, 1);
  const [r] = await replies(page);
  assert.equal(r.text, mockReply(['hello', 'streaming', 'world'], 30));
  assert.ok(partial.text.length < r.text.length, 'the reply grew while it streamed');
  assert.equal(r.finish, 'stop');
  assert.ok(await page.isHidden('#stop'));
  // The new conversation is in the list and open.
  await page.waitForSelector('.conversation.active');
  assert.ok(page.url().includes('#c='));

  // Shift+Enter is a new line, not a send.
  await page.fill('#input', 'line one');
  await page.press('#input', 'Shift+Enter');
  await page.type('#input', 'line two');
  assert.equal(await page.inputValue('#input'), 'line one\nline two');
  assert.equal(await page.locator('.msg.user').count(), 1);
  // The page runs under its CSP without a violation or a script error.
  assert.deepEqual(pageErrors, []);
});
