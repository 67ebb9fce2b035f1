// The browser-test harness: starts the bundled mock LLM and the real chatd
// (against the CTest fixture's PostgreSQL), headless Debian chromium through
// playwright-core, and cleans everything up, even on failure. A failing
// scenario saves a screenshot of every page (and the server logs) to the
// artifacts directory.
//
//   node tests/e2e/<scenario>.test.mjs BIN_DIR ARTIFACTS_DIR
//   env: CHAT_TEST_DATABASE_URL (set by CTest)

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import assert from 'node:assert/strict';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  console.error('playwright-core is missing: run `npm ci --no-audit --no-fund` in tests/e2e (deploy/test.sh does)');
  process.exit(1);
}

export { assert };

const binDir = process.argv[2] || process.env.CHAT_BIN_DIR || 'build/bin';
const artifacts = process.argv[3] || 'build/tests/e2e-artifacts';
const CHROMIUM = process.env.CHAT_CHROMIUM || '/usr/bin/chromium';
const children = new Set();

process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// A child process whose stdout+stderr are kept, with a wait for a line.
class Proc {
  constructor(name, program, args, env) {
    this.name = name;
    this.out = '';
    this.waiters = [];
    this.child = spawn(program, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      children.delete(this.child);
      this.exitCode = code ?? signal;
      resolve(this.exitCode);
      this.poll();
    }));
    const onData = (d) => { this.out += d.toString(); this.poll(); };
    this.child.stdout.on('data', onData);
    this.child.stderr.on('data', onData);
  }
  poll() {
    for (const w of [...this.waiters]) {
      const line = this.out.split('\n').find((l) => l.includes(w.needle));
      if (line !== undefined) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(line);
      } else if (this.exitCode !== undefined) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.reject(new Error(`${this.name} exited (${this.exitCode}) before printing '${w.needle}':\n${this.out}`));
      }
    }
  }
  waitForLine(needle, timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const w = { needle, resolve, reject };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          reject(new Error(`no line with '${needle}' from ${this.name} in ${timeoutMs} ms:\n${this.out}`));
        }
      }, timeoutMs);
      this.poll();
    });
  }
  async stop(signal = 'SIGTERM') {
    if (this.exitCode !== undefined) return this.exitCode;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

/// mock_llm + chatd on free loopback ports; `restart()` brings chatd back on
/// the same port.
export class Service {
  async start() {
    const dbUrl = process.env.CHAT_TEST_DATABASE_URL;
    assert.ok(dbUrl, 'CHAT_TEST_DATABASE_URL is not set (run through ctest)');
    this.secret = 'e2e-secret-' + randomUUID() + '-0123456789';
    this.mock = new Proc('mock_llm', path.join(binDir, 'mock_llm'),
      ['--listen', '127.0.0.1:0', '--ttft-ms', '20', '--token-delay-ms', '30'], {});
    const line = await this.mock.waitForLine('listening on');
    this.mockPort = Number(/127\.0\.0\.1:(\d+)/.exec(line)[1]);
    this.env = {
      DATABASE_URL: dbUrl,
      CHAT_JWT_SECRET: this.secret,
      OPENAI_BASE_URL: `http://127.0.0.1:${this.mockPort}/v1`,
      OPENAI_API_KEY: 'sk-e2e-never-logged',
      CHAT_MODELS: 'gpt-4o-mini,mock-2',
      CHAT_THREADS: '2',
      CHAT_USER_SENDS_PER_MIN: '0',
    };
    await this.startChatd('127.0.0.1:0');
    return this;
  }
  async startChatd(listen) {
    this.chatd = new Proc('chatd', path.join(binDir, 'chatd'), [], { ...this.env, CHAT_LISTEN: listen });
    const line = await this.chatd.waitForLine('"event":"listening"');
    this.port = Number(/127\.0\.0\.1:(\d+)/.exec(line)[1]);
    this.logs = (this.logs || '');
  }
  /// Stops chatd (SIGKILL by default: a crash) and starts a new one on the same port.
  async restart(signal = 'SIGKILL', downMs = 0) {
    await this.stopChatd(signal);
    if (downMs) await sleep(downMs);
    await this.startChatd(`127.0.0.1:${this.port}`);
  }
  async stopChatd(signal = 'SIGKILL') {
    this.logs = (this.logs || '') + this.chatd.out;
    await this.chatd.stop(signal);
  }
  token(user, ttl = 3600) {
    return execFileSync(path.join(binDir, 'chatd'), ['token', '--user', user, '--ttl', String(ttl)],
      { env: { ...process.env, ...this.env } }).toString().trim();
  }
  get url() {
    return `http://127.0.0.1:${this.port}`;
  }
  allLogs() {
    return `--- chatd ---\n${(this.logs || '') + (this.chatd ? this.chatd.out : '')}\n--- mock_llm ---\n${this.mock ? this.mock.out : ''}`;
  }
  async stop() {
    if (this.chatd) await this.chatd.stop('SIGTERM');
    if (this.mock) await this.mock.stop('SIGTERM');
  }
}

export function uniqueUser() {
  return 'e2e-' + randomUUID().slice(0, 13);
}

/// Runs one scenario: fn({ service, browser, newPage, openChat }).
export async function scenario(name, fn, { timeoutMs = 120000 } = {}) {
  const service = new Service();
  let browser;
  const pages = [];
  const pageErrors = [];
  const timer = setTimeout(() => {
    console.error(`${name}: timed out after ${timeoutMs} ms`);
    failed(new Error('timeout')).finally(() => process.exit(1));
  }, timeoutMs);
  let done = false;

  async function failed(err) {
    if (done) return;
    done = true;
    console.error(`FAIL ${name}: ${err && err.stack || err}`);
    try {
      mkdirSync(artifacts, { recursive: true });
      let i = 0;
      for (const p of pages) {
        const file = path.join(artifacts, `${name}-${i++}.png`);
        await p.screenshot({ path: file, fullPage: true, timeout: 5000 }).catch(() => {});
        console.error(`screenshot: ${file}`);
      }
      writeFileSync(path.join(artifacts, `${name}.log`), service.allLogs());
      console.error(`logs: ${path.join(artifacts, name + '.log')}`);
    } catch (e) {
      console.error('could not save artifacts:', e);
    }
    if (pageErrors.length) console.error('page errors:\n' + pageErrors.join('\n'));
  }

  let ok = false;
  try {
    await service.start();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const newPage = async (viewport = { width: 1100, height: 760 }) => {
      const context = await browser.newContext({ viewport });
      const page = await context.newPage();
      page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
      });
      page.on('dialog', (d) => {
        pageErrors.push(`dialog: ${d.message()}`);
        d.dismiss().catch(() => {});
      });
      pages.push(page);
      return page;
    };
    /// A signed-in page, connected; hash extra like 'c=<id>'.
    const openChat = async (token, { page, extra = '' } = {}) => {
      page = page || await newPage();
      await page.goto(`${service.url}/#token=${encodeURIComponent(token)}${extra ? '&' + extra : ''}`);
      await page.waitForSelector('#app[data-ready="true"]');
      await page.waitForSelector('#connection[data-state="open"]', { timeout: 15000 });
      return page;
    };
    await fn({ service, browser, newPage, openChat, pageErrors });
    ok = true;
    console.log(`PASS ${name}`);
  } catch (err) {
    await failed(err);
  } finally {
    clearTimeout(timer);
    if (browser) await browser.close().catch(() => {});
    await service.stop().catch(() => {});
  }
  process.exit(ok ? 0 : 1);
}

// -- page helpers ------------------------------------------------------------------

export async function sendText(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

/// The assistant replies on the page: [{ text, status, finish, messageId }].
export function replies(page) {
  return page.$$eval('.msg.assistant', (els) => els.map((e) => ({
    text: e.querySelector('.body').textContent,
    status: e.dataset.status,
    finish: e.dataset.finish,
    messageId: e.dataset.messageId,
  })));
}

/// Waits until the page has `n` assistant replies and the last is done.
export async function waitReplyDone(page, n = 1, timeout = 30000) {
  await page.waitForFunction((count) => {
    const els = document.querySelectorAll('.msg.assistant');
    return els.length >= count && els[count - 1].dataset.status === 'done';
  }, n, { timeout });
}

/// The text the mock LLM streams for `words` (whitespace-split user words,
/// the directive removed) in `tokens` tokens.
export function mockReply(words, tokens) {
  const parts = ['Echo:'];
  for (let i = 1; i < tokens; i++) parts.push(' ' + (i - 1 < words.length ? words[i - 1] : `w${i}`));
  return parts.join('');
}
