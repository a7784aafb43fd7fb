// The demo page (GET /) in a real browser (headless Chromium driven by playwright-core):
// its EventSource opens, and pings sent from the test and from the page's button show
// up as one "pong" each; across a server restart every message shows up exactly once.
//
// One server, RETRY_MS 200 (the page reconnects quickly) and HEARTBEAT_SECONDS 2, on a
// persist directory of its own so that the restart test can start it again on the same
// port and state.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { demoMessages, launchBrowser, openPage, waitForDemoMessages, waitForDemoStatus } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';
import { closeOpened, ping, pollUntil, publishEvent, waitForListeners } from '../support/http.mjs';

const VARS = { RETRY_MS: '200', HEARTBEAT_SECONDS: '2' };

let server;
let browser;
let persistDir;

before(async () => {
  persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-browser-demo-state-'));
  server = await startServer({ vars: VARS, persistDir });
  browser = await launchBrowser();
}, { timeout: 120_000 });

after(async () => {
  await closeOpened();
  await browser?.close();
  await server?.stop();
  if (persistDir) await rm(persistDir, { recursive: true, force: true }).catch(() => {});
}, { timeout: 30_000 });

afterEach(closeOpened);

test('the demo page receives pings from fetch and from its Ping button', async () => {
  const { page, pageErrors, response } = await openPage(browser.context, `${server.url}/`);
  try {
    assert.match(response.headers()['content-type'] ?? '', /^text\/html/);

    await waitForDemoStatus(page, 'open', 15_000);
    assert.equal(await page.textContent('#status'), 'open');
    assert.deepEqual(await demoMessages(page), [], 'no messages before any ping');
    await waitForListeners(server.url, 'default', 1); // the page is the one listener

    // Pings published by the test (GET and POST).
    const FROM_TEST = 3;
    for (let i = 0; i < FROM_TEST; i += 1) await ping(server.url, { method: i % 2 ? 'POST' : 'GET', listeners: 1 });
    let shown = await waitForDemoMessages(page, FROM_TEST);
    assert.equal(shown.length, FROM_TEST, `messages: ${JSON.stringify(shown)}`);
    for (const m of shown) assert.equal(m.data, 'pong', `message item without pong: ${JSON.stringify(m)}`);

    // Pings from the page's own button.
    const CLICKS = 2;
    for (let i = 0; i < CLICKS; i += 1) {
      const [pingResponse] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/ping', { timeout: 10_000 }),
        page.click('#ping'),
      ]);
      assert.equal(pingResponse.status(), 200);
    }
    shown = await waitForDemoMessages(page, FROM_TEST + CLICKS);
    assert.equal(shown.length, FROM_TEST + CLICKS, `messages: ${JSON.stringify(shown)}`);
    assert.equal(shown.filter((m) => m.data === 'pong').length, FROM_TEST + CLICKS);

    assert.equal(await page.textContent('#status'), 'open', 'the stream stayed open');
    assert.deepEqual(pageErrors, [], 'no errors in the page');
  } finally {
    await page.close().catch(() => {});
  }
});

/** "a -> b x3 -> c": consecutive repeats counted. */
function collapse(list) {
  const out = [];
  for (const x of list) {
    if (out.length && out.at(-1)[0] === x) out.at(-1)[1] += 1;
    else out.push([x, 1]);
  }
  return out.map(([x, n]) => (n > 1 ? `${x} x${n}` : x)).join(' -> ');
}

// The server restarts on the same port and persist directory, so the browser's automatic
// reconnection (with Last-Event-ID, after RETRY_MS) is what catches up. While the server
// is down the page's attempts fail (connection refused); once that has been seen, its
// attempts are held back (page.route) until the messages published right after the
// restart are in, so those can only reach it from history.
test('the demo page shows every message exactly once across a server restart', { timeout: 180_000 }, async (t) => {
  const statuses = [];
  // While `hold` is set, the page's /listen requests wait here before going to the
  // network, so messages published meanwhile can only reach it from history.
  let hold = null;
  let listenRequests = 0;
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`, {
    prepare: async (p) => {
      await p.exposeFunction('reportStatus', (s) => statuses.push(`${Date.now()} ${s}`));
      await p.addInitScript(() => {
        const observe = () => {
          const el = document.getElementById('status');
          if (!el) return;
          new MutationObserver(() => window.reportStatus(el.textContent))
            .observe(el, { childList: true, characterData: true, subtree: true });
        };
        document.addEventListener('DOMContentLoaded', observe);
      });
      await p.route('**/listen', async (route) => {
        listenRequests += 1;
        if (hold) await hold;
        await route.continue().catch(() => {});
      });
    },
  });
  const published = []; // [{id, data, listeners}]
  const pub = async (data) => {
    const { id, listeners } = await publishEvent(server.url, 'default', { data });
    published.push({ id, data, listeners });
  };
  try {
    await waitForDemoStatus(page, 'open', 15_000);
    await waitForListeners(server.url, 'default', 1);

    // Before the restart.
    for (let i = 0; i < 5; i += 1) await pub(`m${i}`);
    let shown = await waitForDemoMessages(page, 5, { timeoutMs: 20_000 });
    assert.deepEqual(shown.map((m) => m.data), ['m0', 'm1', 'm2', 'm3', 'm4']);

    // Stop the server: the page loses its stream and its reconnection attempts fail
    // (connection refused) until the server is back.
    const port = server.port;
    const stoppedAt = Date.now();
    await server.stop();
    await waitForDemoStatus(page, 'error', 10_000);
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
    shown = await waitForDemoMessages(page, 10, { timeoutMs: 30_000 });
    await waitForDemoStatus(page, 'open', 10_000);
    const reconnectedMs = Date.now() - stoppedAt;

    // After it reconnected: live again.
    for (let i = 10; i < 15; i += 1) await pub(`m${i}`);
    shown = await waitForDemoMessages(page, 15, { timeoutMs: 20_000 });

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
