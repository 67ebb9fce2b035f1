// Stop ends the reply: done with finishReason cancelled, what streamed stays.
import { scenario, assert, sendText, replies, waitReplyDone, sleep, uniqueUser } from './lib/harness.mjs';

await scenario('e2e_stop', async ({ service, openChat }) => {
  const page = await openChat(service.token(uniqueUser()));
  await sendText(page, 'a long one [[mock tokens=400 delay_ms=50]]');
  await page.waitForFunction(() => {
    const e = document.querySelector('.msg.assistant[data-status="streaming"]');
    return e && e.textContent.includes('w5');
  });
  await page.click('#stop');
  await waitReplyDone(page, 1, 10000);
  const [r] = await replies(page);
  assert.equal(r.finish, 'cancelled');
  assert.ok(r.text.startsWith('Echo: a long one'));
  assert.ok(!r.text.includes('w399'));
  await sleep(500);
  assert.equal((await replies(page))[0].text, r.text, 'nothing more arrives');
  assert.match(await page.textContent('.msg.assistant .meta'), /Stopped/);
  assert.ok(await page.isHidden('#stop'));
});
