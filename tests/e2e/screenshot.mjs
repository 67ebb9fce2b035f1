// Takes web/screenshot.png (the README's picture) of a conversation with a
// streamed reply that holds a code block. Not a test; run by hand:
//   CHAT_TEST_DATABASE_URL=... node tests/e2e/screenshot.mjs build/bin OUT.png
import { scenario, sendText, waitReplyDone, uniqueUser } from './lib/harness.mjs';

const out = process.argv[3];
process.argv[3] = '/tmp/chat-screenshot-artifacts';
await scenario('screenshot', async ({ service, openChat, newPage }) => {
  const token = service.token(uniqueUser());
  const page = await openChat(token, { page: await newPage({ width: 1100, height: 700 }) });
  await sendText(page, 'What is a WebSocket?');
  await waitReplyDone(page, 1);
  await sendText(page, 'Print one in **JavaScript**: ```js\nconsole.log(1)\n```');
  await waitReplyDone(page, 2);
  await sendText(page, 'And a longer answer, please [[mock tokens=400 delay_ms=40]]');
  await page.waitForFunction(() => {
    const e = document.querySelectorAll('.msg.assistant')[2];
    return e && e.textContent.includes('w30');
  });
  await page.screenshot({ path: out });
});
