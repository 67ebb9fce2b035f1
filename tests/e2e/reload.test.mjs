// Reload the page in the middle of a reply: it resubscribes and the reply
// finishes exactly once, with every chunk once.
import { scenario, assert, sendText, replies, waitReplyDone, mockReply, uniqueUser } from './lib/harness.mjs';

await scenario('e2e_reload', async ({ service, openChat }) => {
  const page = await openChat(service.token(uniqueUser()));
  await sendText(page, 'reload me please [[mock tokens=50 delay_ms=60]]');
  await page.waitForFunction(() => {
    const e = document.querySelector('.msg.assistant[data-status="streaming"]');
    return e && e.textContent.includes('w6');
  });
  assert.ok(page.url().includes('#c='), 'the open conversation is in the URL');
  await page.reload();
  await page.waitForSelector('#connection[data-state="open"]');
  // Still signed in (sessionStorage), same conversation, the reply goes on.
  await page.waitForSelector('.msg.assistant[data-status="streaming"]', { timeout: 10000 });
  await waitReplyDone(page, 1);
  const rs = await replies(page);
  assert.equal(rs.length, 1, 'one reply');
  assert.equal(rs[0].text, mockReply(['reload', 'me', 'please'], 50));
  assert.equal(await page.locator('.msg.user').count(), 1);
});
