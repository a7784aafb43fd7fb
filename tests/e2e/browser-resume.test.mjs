// The demo page's EventSource across a server restart (headless Chromium driven by
// playwright-core): messages published before the restart, while the page is
// reconnecting, and after it, each show up exactly once. The server restarts on the
// same port and persist directory, so the browser's automatic reconnection (with
// Last-Event-ID, after RETRY_MS) is what catches up. While the server is down the
// page's attempts fail (connection refused); once that has been seen, its attempts are
// held back (page.route) until the messages published right after the restart are in,
// so those can only reach it from history.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';
import { request, sleep, pollUntil, waitForListeners } from '../support/http.mjs';

const VARS = { RETRY_MS: '200', HEARTBEAT_SECONDS: '2' };

let server;
let context;
let browser;
let persistDir;

before(async () => {
  persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-browser-resume-state-'));
  server = await startServer({ vars: VARS, persistDir });
  browser = await launchBrowser();
  context = browser.context;
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
  if (persistDir) await rm(persistDir, { recursive: true, force: true }).catch(() => {});
}, { timeout: 30_000 });

/** The page's list, oldest first: [{meta, data}] (the page prepends new items). */
const pageMessages = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => ({
  meta: li.querySelector('.meta')?.textContent ?? '',
  data: li.querySelector('.data')?.textContent ?? '',
})).reverse());

/** Waits (bounded) until the list has at least n items, then a little more for surplus ones. */
async function waitForMessages(page, n, timeoutMs = 20_000) {
  try {
    await page.waitForFunction((count) => document.querySelectorAll('#messages li').length >= count, n,
      { timeout: timeoutMs, polling: 50 });
  } catch (err) {
    err.message += `\nmessages so far: ${JSON.stringify(await pageMessages(page))}; ` +
      `status ${await page.textContent('#status').catch(() => '?')}`;
    throw err;
  }
  await sleep(500); // would a duplicate arrive?
  return pageMessages(page);
}

/** "a -> b x3 -> c": consecutive repeats counted. */
function collapse(list) {
  const out = [];
  for (const x of list) {
    if (out.length && out.at(-1)[0] === x) out.at(-1)[1] += 1;
    else out.push([x, 1]);
  }
  return out.map(([x, n]) => (n > 1 ? `${x} x${n}` : x)).join(' -> ');
}

const waitForStatus = (page, status, timeoutMs) => page.waitForFunction(
  (s) => document.querySelector('#status')?.textContent.trim() === s, status, { timeout: timeoutMs, polling: 50 });

test('the demo page shows every message exactly once across a server restart', { timeout: 180_000 }, async (t) => {
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  const statuses = [];
  await page.exposeFunction('reportStatus', (s) => statuses.push(`${Date.now()} ${s}`));
  await page.addInitScript(() => {
    const observe = () => {
      const el = document.getElementById('status');
      if (!el) return;
      new MutationObserver(() => window.reportStatus(el.textContent))
        .observe(el, { childList: true, characterData: true, subtree: true });
    };
    document.addEventListener('DOMContentLoaded', observe);
  });
  // While `hold` is set, the page's /listen requests wait here before going to the
  // network, so messages published meanwhile can only reach it from history.
  let hold = null;
  let listenRequests = 0;
  await page.route('**/listen', async (route) => {
    listenRequests += 1;
    if (hold) await hold;
    await route.continue().catch(() => {});
  });
  const published = []; // [{id, data, listeners}]
  const pub = async (data) => {
    const r = await request(`${server.url}/channels/default/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ data }),
    });
    assert.equal(r.status, 200, `publish ${data}: ${r.status} ${r.text}`);
    published.push({ id: r.json.id, data, listeners: r.json.listeners });
  };
  try {
    const response = await page.goto(`${server.url}/`, { waitUntil: 'load', timeout: 20_000 });
    assert.equal(response.status(), 200);
    await waitForStatus(page, 'open', 15_000);
    await waitForListeners(server.url, 'default', 1);

    // Before the restart.
    for (let i = 0; i < 5; i += 1) await pub(`m${i}`);
    let shown = await waitForMessages(page, 5);
    assert.deepEqual(shown.map((m) => m.data), ['m0', 'm1', 'm2', 'm3', 'm4']);

    // Stop the server: the page loses its stream and its reconnection attempts fail
    // (connection refused) until the server is back.
    const port = server.port;
    const stoppedAt = Date.now();
    await server.stop();
    await waitForStatus(page, 'error', 10_000);
    const requestsBeforeStop = listenRequests;
    await pollUntil(() => listenRequests, (n) => n >= requestsBeforeStop + 3, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'three failed reconnection attempts',
    });
    const failedAttempts = listenRequests - 1;

    // From now on the page's attempts are held back until the messages below are
    // published; then start again on the same port and state and publish while nobody
    // listens: the page can only get these from history, with Last-Event-ID.
    let release;
    hold = new Promise((resolve) => {
      release = resolve;
    });
    server = await startServer({ vars: VARS, persistDir, port });
    const restartedMs = Date.now() - stoppedAt;
    for (let i = 5; i < 10; i += 1) await pub(`m${i}`);
    assert.deepEqual(published.slice(5).map((p) => p.listeners), [0, 0, 0, 0, 0], 'published with nobody listening');
    const held = listenRequests;
    hold = null;
    release();
    shown = await waitForMessages(page, 10, 30_000);
    await waitForStatus(page, 'open', 10_000);
    const reconnectedMs = Date.now() - stoppedAt;

    // After it reconnected: live again.
    for (let i = 10; i < 15; i += 1) await pub(`m${i}`);
    shown = await waitForMessages(page, 15);

    t.diagnostic(`server down and up in ${restartedMs} ms; page had m0..m9 after ${reconnectedMs} ms; ` +
      `status changes: ${collapse(statuses.map((s) => s.split(' ')[1]))}; ` +
      `${failedAttempts}+ failed reconnection attempts while down; ${listenRequests} /listen requests in all ` +
      `(${held} before the release)`);
    // m5..m9 were published while nobody listened (and the page's requests were held
    // back): it can only have them from history, through the Last-Event-ID its
    // EventSource sent when it reconnected. (Playwright does not show that header:
    // the network stack adds it after interception.)
    assert.deepEqual(shown.map((m) => m.data), published.map((p) => p.data), 'every message exactly once, in order');
    assert.deepEqual(shown.map((m) => m.meta), published.map((p) => `#${p.id}`), 'with the ids the server gave them');
    for (let i = 1; i < published.length; i += 1) {
      assert.ok(BigInt(published[i - 1].id) < BigInt(published[i].id), 'ids keep increasing across the restart');
    }
    assert.equal(await page.textContent('#status'), 'open');
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});
