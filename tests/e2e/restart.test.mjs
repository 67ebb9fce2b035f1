// chatd crashes (SIGKILL) and comes back on the same port: the page shows
// it is reconnecting, reconnects by itself and carries on; a message typed
// while the server is down is sent once it is back.
import { scenario, assert, sendText, replies, waitReplyDone, mockReply, uniqueUser, sleep } from './lib/harness.mjs';

await scenario('e2e_restart', async ({ service, openChat }) => {
  const page = await openChat(service.token(uniqueUser()));
  await sendText(page, 'before restart [[mock tokens=6 delay_ms=10]]');
  await waitReplyDone(page, 1);

  await service.stopChatd('SIGKILL');
  await page.waitForSelector('#connection[data-state="reconnecting"]', { timeout: 10000 });
  assert.match(await page.textContent('#connection'), /Reconnecting/);
  await sendText(page, 'while down [[mock tokens=6 delay_ms=10]]');
  await page.waitForSelector('.msg.user[data-status="sending"]');
  await sleep(500);
  await service.startChatd(`127.0.0.1:${service.port}`);

  await page.waitForSelector('#connection[data-state="open"]', { timeout: 30000 });
  await waitReplyDone(page, 2);
  await sendText(page, 'after restart [[mock tokens=6 delay_ms=10]]');
  await waitReplyDone(page, 3);
  const rs = await replies(page);
  assert.deepEqual(rs.map((r) => r.text), [
    mockReply(['before', 'restart'], 6),
    mockReply(['while', 'down'], 6),
    mockReply(['after', 'restart'], 6),
  ]);
  assert.equal(await page.locator('.msg.user').count(), 3);
  assert.equal(await page.locator('.msg.user[data-status="sent"]').count(), 3);
});
