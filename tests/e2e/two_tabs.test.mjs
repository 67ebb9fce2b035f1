// Two tabs on one conversation both show it live.
import { scenario, assert, sendText, replies, waitReplyDone, mockReply, uniqueUser } from './lib/harness.mjs';

await scenario('e2e_two_tabs', async ({ service, openChat }) => {
  const token = service.token(uniqueUser());
  const a = await openChat(token);
  await sendText(a, 'first [[mock tokens=5 delay_ms=10]]');
  await waitReplyDone(a, 1);
  const id = new URL(a.url()).hash.match(/c=([^&]+)/)[1];

  const b = await openChat(token, { extra: 'c=' + id });
  await waitReplyDone(b, 1); // history
  await sendText(a, 'second live message [[mock tokens=30 delay_ms=60]]');
  // B sees A's message and the reply streaming, live.
  await b.waitForFunction(() => [...document.querySelectorAll('.msg.user')].some((e) => e.textContent.startsWith('second live')));
  await b.waitForSelector('.msg.assistant:nth-of-type(4)[data-status="streaming"], .msg.assistant[data-status="streaming"]');
  await waitReplyDone(b, 2);
  await waitReplyDone(a, 2);
  const want = mockReply(['second', 'live', 'message'], 30);
  assert.equal((await replies(a))[1].text, want);
  assert.equal((await replies(b))[1].text, want);
  assert.equal((await replies(b)).length, 2);

  // And the other way round, from B; A's list has one conversation.
  await sendText(b, 'from b [[mock tokens=4 delay_ms=10]]');
  await waitReplyDone(a, 3);
  assert.equal((await replies(a))[2].text, mockReply(['from', 'b'], 4));
  assert.equal(await a.locator('.conversation').count(), 1);
});
