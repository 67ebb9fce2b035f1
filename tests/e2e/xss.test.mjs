// A reply is untrusted text: markup in it (the mock echoes the user's words)
// shows as text and never runs.
import { scenario, assert, sendText, replies, waitReplyDone, uniqueUser } from './lib/harness.mjs';

await scenario('e2e_xss', async ({ service, openChat, pageErrors }) => {
  const page = await openChat(service.token(uniqueUser()));
  const evil = '<img src=x onerror=window.__xss=1> <script>window.__xss=2</script> **bold** `<b>code</b>`';
  await sendText(page, evil + ' [[mock tokens=12 delay_ms=20]]');
  await waitReplyDone(page, 1);
  const [r] = await replies(page);
  assert.ok(r.text.includes('<img src=x onerror=window.__xss=1>'), r.text);
  assert.ok(r.text.includes('<script>window.__xss=2</script>'), r.text);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('.messages img').count(), 0);
  assert.equal(await page.locator('.messages script').count(), 0);
  assert.equal(await page.locator('.messages b').count(), 0);
  // Markdown still renders, as elements holding text.
  assert.equal(await page.locator('.msg.assistant strong').textContent(), 'bold');
  assert.equal(await page.locator('.msg.assistant code').first().textContent(), '<b>code</b>');
  // The user's own message is text as well.
  assert.ok((await page.locator('.msg.user').textContent()).includes('<script>'));
  assert.deepEqual(pageErrors.filter((e) => e.startsWith('dialog')), []);
});
