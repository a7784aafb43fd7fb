// Issue 4 in a real browser: a page on ANOTHER origin (a node http server on a second
// 127.0.0.1 port) listens with EventSource and addEventListener('alpha' / 'beta'), and
// publishes with fetch + Authorization (so the browser sends a CORS preflight) to a worker
// whose ALLOWED_ORIGINS is that page's origin and which has a PUBLISH_SECRET.
// A third origin, not allowed, is refused by the browser.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { launchBrowser } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';
import { request, stats, waitForListeners, assertDecimalId } from '../support/http.mjs';

const PUBLISH_SECRET = 'browser-S3cret';

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>cross-origin listener</title></head>
<body>
<p id="status">starting</p>
<script>
  const q = new URLSearchParams(location.search);
  const worker = q.get('worker');
  const channel = q.get('channel');
  const url = worker + '/channels/' + encodeURIComponent(channel) + '/events';
  window.state = { open: false, errors: 0, readyState: null, alpha: [], beta: [], message: [], all: [] };
  const es = new EventSource(url);
  const record = (kind) => (e) => {
    const item = { type: e.type, data: e.data, id: e.lastEventId, origin: e.origin };
    state[kind].push(item);
    state.all.push({ kind, ...item });
  };
  es.addEventListener('alpha', record('alpha'));
  es.addEventListener('beta', record('beta'));
  es.addEventListener('message', record('message'));
  es.onopen = () => { state.open = true; state.readyState = es.readyState; document.getElementById('status').textContent = 'open'; };
  es.onerror = () => { state.errors += 1; state.readyState = es.readyState; };
  window.closeStream = () => es.close();
  // Publishes from the page: JSON with an Authorization header, so the browser preflights.
  window.publishFromPage = async (body, secret) => {
    try {
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + secret },
        body: JSON.stringify(body),
      });
      return { status: r.status, text: await r.text() };
    } catch (err) {
      return { error: String(err) };
    }
  };
</script>
</body>
</html>`;

/** A tiny page server on its own port: its origin is http://127.0.0.1:<port>. */
async function startPageServer() {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && new URL(req.url, 'http://x').pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

let worker;
let allowedPage;
let foreignPage;
let context;
let browser;

before(async () => {
  allowedPage = await startPageServer();
  foreignPage = await startPageServer();
  worker = await startServer({
    vars: { ALLOWED_ORIGINS: allowedPage.origin },
    secrets: { PUBLISH_SECRET },
  });
  browser = await launchBrowser();
  context = browser.context;
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  await worker?.stop();
  await allowedPage?.close();
  await foreignPage?.close();
}, { timeout: 30_000 });

async function openPage(pageServer, channel) {
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  const url = `${pageServer.origin}/?worker=${encodeURIComponent(worker.url)}&channel=${encodeURIComponent(channel)}`;
  const response = await page.goto(url, { waitUntil: 'load', timeout: 20_000 });
  assert.equal(response.status(), 200);
  return { page, pageErrors };
}

const pageState = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.state)));

async function publishFromTest(channel, body) {
  const r = await request(`${worker.url}/channels/${channel}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${PUBLISH_SECRET}` },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 200, `publish ${JSON.stringify(body)} on ${channel}: ${r.status} ${r.text}`);
  assertDecimalId(r.json?.id);
  return r.json;
}

test('a cross-origin page: each addEventListener gets exactly its own events, in order; the page publishes after a preflight', async () => {
  const channel = `browser-${process.pid}`;
  const other = `browser-other-${process.pid}`;
  const { page, pageErrors } = await openPage(allowedPage, channel);
  try {
    assert.notEqual(new URL(allowedPage.origin).port, new URL(worker.url).port, 'the page must be on another origin');
    await page.waitForFunction(() => window.state?.open === true, null, { timeout: 15_000, polling: 50 });
    await waitForListeners(worker.url, channel, 1);

    // Published by the test: alpha, beta and untyped, interleaved, plus noise elsewhere.
    const sequence = [
      ['alpha', 'a1'], ['beta', 'b1'], [null, 'm1'], ['alpha', 'a2 with spaces  '],
      [null, 'm2 ünïcode 😀'], ['beta', 'b2\nsecond line'], ['alpha', 'a3'], ['gamma', 'nobody listens to gamma'],
      [null, 'm3'],
    ];
    const want = { alpha: [], beta: [], message: [] };
    const wantAll = [];
    for (const [i, [event, data]] of sequence.entries()) {
      const body = event ? { data, event } : { data };
      const { id, listeners } = await publishFromTest(channel, body);
      assert.equal(listeners, 1, `publish #${i}: the page is the one listener`);
      const kind = event ?? 'message';
      if (kind in want) {
        const item = { type: kind, data, id, origin: new URL(worker.url).origin };
        want[kind].push(item);
        wantAll.push({ kind, ...item });
      }
      if (i % 3 === 0) {
        // Noise on another channel: the page must not see it.
        const noise = await publishFromTest(other, i % 2 ? { data: `other-${i}`, event: 'alpha' } : { data: `other-${i}` });
        assert.equal(noise.listeners, 0);
      }
    }
    const total = wantAll.length;
    await page.waitForFunction((n) => window.state.all.length >= n, total, { timeout: 10_000, polling: 50 })
      .catch(async (err) => {
        err.message += `\npage state: ${JSON.stringify(await pageState(page))}`;
        throw err;
      });
    await new Promise((resolve) => setTimeout(resolve, 300)); // would a surplus event arrive?
    let state = await pageState(page);
    assert.deepEqual(state.alpha, want.alpha, 'the alpha listener');
    assert.deepEqual(state.beta, want.beta, 'the beta listener');
    assert.deepEqual(state.message, want.message, 'the message (untyped) listener');
    assert.deepEqual(state.all, wantAll, 'all events, in publishing order');
    assert.equal(state.errors, 0, 'the EventSource had errors');

    // The page publishes itself: fetch POST, JSON, Authorization -> preflight, then POST.
    const before = await stats(worker.url, channel);
    const published = await page.evaluate(
      ([secret]) => window.publishFromPage({ data: 'from the page', event: 'beta' }, secret),
      [PUBLISH_SECRET],
    );
    assert.equal(published.error, undefined, `the page's fetch failed: ${published.error}`);
    assert.equal(published.status, 200, `the page's publish: ${JSON.stringify(published)}`);
    const answer = JSON.parse(published.text);
    assertDecimalId(answer.id, 'the page\'s publish id');
    assert.equal(answer.listeners, 1);
    await page.waitForFunction(() => window.state.beta.length >= 3, null, { timeout: 10_000, polling: 50 });
    state = await pageState(page);
    assert.deepEqual(state.beta.at(-1), { type: 'beta', data: 'from the page', id: answer.id, origin: new URL(worker.url).origin });
    assert.equal(state.all.length, total + 1);

    // A wrong secret: the page can read the 403 (the error carries Allow-Origin too).
    const refused = await page.evaluate(() => window.publishFromPage({ data: 'nope' }, 'wrong-secret'));
    assert.equal(refused.error, undefined, `the page's fetch failed: ${refused.error}`);
    assert.equal(refused.status, 403, JSON.stringify(refused));
    const after = await stats(worker.url, channel);
    assert.equal(after.published, before.published + 1, 'only the authorized publish counted');

    // The browser did preflight: wrangler dev logs every request it serves
    // ("[wrangler:info] OPTIONS /channels/<name>/events 204 No Content (…ms)").
    const log = worker.output();
    assert.match(log, new RegExp(`OPTIONS /channels/${channel}/events 204`), `no preflight in wrangler's log:\n${log.slice(-3000)}`);
    assert.deepEqual(pageErrors, [], 'no errors in the page');
  } finally {
    await page.evaluate(() => window.closeStream?.()).catch(() => {});
    await page.close().catch(() => {});
  }
});

test('a page on an origin that is not allowed can neither listen nor publish', async () => {
  const channel = `browser-foreign-${process.pid}`;
  const { page } = await openPage(foreignPage, channel);
  try {
    // The stream's response has no Access-Control-Allow-Origin: the browser fails it.
    await page.waitForFunction(() => window.state.errors > 0 && window.state.readyState === 2, null, {
      timeout: 15_000,
      polling: 50,
    });
    let state = await pageState(page);
    assert.equal(state.open, false, 'the EventSource must not open');

    // The preflight is refused: fetch rejects, nothing is published.
    const published = await page.evaluate(
      ([secret]) => window.publishFromPage({ data: 'from a foreign page' }, secret),
      [PUBLISH_SECRET],
    );
    assert.ok(published.error, `a foreign page's publish should fail in the browser: ${JSON.stringify(published)}`);
    assert.equal((await stats(worker.url, channel)).published, 0);
    state = await pageState(page);
    assert.deepEqual(state.all, []);
  } finally {
    await page.close().catch(() => {});
  }
});
