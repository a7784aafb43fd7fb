// The demo page in a real browser (headless Chromium driven by playwright-core):
// its EventSource opens, pings sent from the test and from the page's button both
// show up as one "pong" list item each.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';
import { request, waitForListeners } from '../support/http.mjs';

let server;
let context;
let browser;

before(async () => {
  server = await startServer({ vars: { HEARTBEAT_SECONDS: '2' } });
  browser = await launchBrowser();
  context = browser.context;
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
}, { timeout: 30_000 });

/** The texts of the page's message list. */
const messageTexts = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => li.textContent.trim()));

/** Waits (bounded) until the list has exactly n items; returns their texts. */
async function waitForMessages(page, n, timeoutMs = 10_000) {
  try {
    await page.waitForFunction(
      (count) => document.querySelectorAll('#messages li').length >= count,
      n,
      { timeout: timeoutMs, polling: 50 },
    );
  } catch (err) {
    err.message += `\nmessages so far: ${JSON.stringify(await messageTexts(page))}`;
    throw err;
  }
  await new Promise((resolve) => setTimeout(resolve, 300)); // would a surplus item arrive?
  return messageTexts(page);
}

test('the demo page receives pings from fetch and from its Ping button', async () => {
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  try {
    const response = await page.goto(`${server.url}/`, { waitUntil: 'load', timeout: 20_000 });
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-type'] ?? '', /^text\/html/);

    await page.waitForFunction(() => document.querySelector('#status')?.textContent.trim() === 'open', null, {
      timeout: 15_000,
      polling: 50,
    });
    assert.equal(await page.textContent('#status'), 'open');
    assert.deepEqual(await messageTexts(page), [], 'no messages before any ping');
    await waitForListeners(server.url, 'default', 1);

    // Pings published by the test (GET and POST).
    const FROM_TEST = 3;
    for (let i = 0; i < FROM_TEST; i += 1) {
      const r = await request(`${server.url}/ping`, { method: i % 2 ? 'POST' : 'GET' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json?.listeners, 1, `the page is the one listener: ${r.text}`);
    }
    let texts = await waitForMessages(page, FROM_TEST);
    assert.equal(texts.length, FROM_TEST, `messages: ${JSON.stringify(texts)}`);
    for (const t of texts) assert.ok(t.includes('pong'), `message item without pong: ${JSON.stringify(t)}`);

    // Pings from the page's own button.
    const CLICKS = 2;
    for (let i = 0; i < CLICKS; i += 1) {
      const [pingResponse] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/ping', { timeout: 10_000 }),
        page.click('#ping'),
      ]);
      assert.equal(pingResponse.status(), 200);
    }
    texts = await waitForMessages(page, FROM_TEST + CLICKS);
    assert.equal(texts.length, FROM_TEST + CLICKS, `messages: ${JSON.stringify(texts)}`);
    assert.equal(texts.filter((t) => t.includes('pong')).length, FROM_TEST + CLICKS);

    assert.equal(await page.textContent('#status'), 'open', 'the stream stayed open');
    assert.deepEqual(pageErrors, [], 'no errors in the page');
  } finally {
    await page.close().catch(() => {});
  }
});
