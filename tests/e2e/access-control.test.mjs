// Access control (README "Publish" and "Configuration"): who may publish and listen
// (PUBLISH_SECRET, LISTEN_SECRET) and which web origins may read the answers (CORS,
// ALLOWED_ORIGINS), with fetch and in a real browser (headless Chromium driven by
// playwright-core). In the browser a page on ANOTHER origin (a node http server on a
// second 127.0.0.1 port) listens with EventSource and addEventListener('alpha' / 'beta'),
// and publishes with fetch + Authorization (so the browser sends a CORS preflight); a
// third origin, not allowed, is refused by the browser.
//
// Two servers, started once for the whole file:
// - `locked`: PUBLISH_SECRET and LISTEN_SECRET given as secrets (the harness's env
//   file), ALLOWED_ORIGINS a list: two made-up origins and the allowed page's;
// - `open`: no secrets, ALLOWED_ORIGINS `*`.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { launchBrowser, openPage } from '../support/browser.mjs';
import { startServers } from '../support/server.mjs';
import { listen, listenOn } from '../support/sse.mjs';
import {
  assertDecimalId,
  assertError,
  assertPublished,
  closeOpened,
  freshChannel,
  ping,
  publish,
  publishEvent,
  publishJson,
  request,
  stats,
  waitForListeners,
} from '../support/http.mjs';

const ALLOWED = ['http://allowed.test', 'https://also-allowed.test:8443'];
const FOREIGN = 'http://evil.test';
const PUBLISH_SECRET = 'pub-S3cret_value.1';
const LISTEN_SECRET = 'listen-S3cret_value.2';
/** Headers of a publisher that has the secret. */
const publisher = { authorization: `Bearer ${PUBLISH_SECRET}` };

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>cross-origin listener</title></head>
<body>
<p id="status">starting</p>
<script>
  const q = new URLSearchParams(location.search);
  const worker = q.get('worker');
  const channel = q.get('channel');
  const token = q.get('token');
  const url = worker + '/channels/' + encodeURIComponent(channel) + '/events';
  window.state = { open: false, errors: 0, readyState: null, alpha: [], beta: [], message: [], all: [] };
  const es = new EventSource(token ? url + '?token=' + encodeURIComponent(token) : url);
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

let lockedServer;
let openServer;
let locked; // base URL of the locked server
let open; // base URL of the open server
let allowedPage; // a page server whose origin `locked` allows
let foreignPage; // a page server whose origin it does not
let browser;

before(async () => {
  allowedPage = await startPageServer();
  foreignPage = await startPageServer();
  [lockedServer, openServer] = await startServers([
    { vars: { ALLOWED_ORIGINS: [...ALLOWED, allowedPage.origin].join(', ') }, secrets: { PUBLISH_SECRET, LISTEN_SECRET } },
    { vars: { ALLOWED_ORIGINS: '*' } },
  ]);
  [locked, open] = [lockedServer.url, openServer.url];
  browser = await launchBrowser();
}, { timeout: 120_000 });

after(async () => {
  await closeOpened();
  await browser?.close();
  await Promise.all([lockedServer?.stop(), openServer?.stop()]);
  await allowedPage?.close();
  await foreignPage?.close();
}, { timeout: 30_000 });

afterEach(closeOpened);

/** The test page, served by `pageServer`, listening on `channel` of the locked server (with its token). */
function openListeningPage(pageServer, channel) {
  const query = new URLSearchParams({ worker: locked, channel, token: LISTEN_SECRET });
  return openPage(browser.context, `${pageServer.origin}/?${query}`);
}

const pageState = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.state)));

describe('authorization', () => {
  test('publishing with PUBLISH_SECRET: missing 401, wrong 403, right 200', async () => {
    const channel = freshChannel('auth-pub');
    const stream = await listenOn(locked, channel, 1, { query: `?token=${encodeURIComponent(LISTEN_SECRET)}`, statsHeaders: publisher });
    const body = { body: JSON.stringify({ data: 'secret news' }), contentType: 'application/json' };
    assertError(await publish(locked, channel, body), 401, null, 'no Authorization');
    assertError(await publish(locked, channel, { ...body, headers: { authorization: 'Bearer' } }), 401, null, 'Bearer without a token');
    for (const wrong of [`Bearer ${PUBLISH_SECRET}x`, `Bearer ${PUBLISH_SECRET.slice(0, -1)}`, `Bearer ${LISTEN_SECRET}`,
      'Bearer nope']) {
      assertError(await publish(locked, channel, { ...body, headers: { authorization: wrong } }), 403, null, `Authorization: ${wrong}`);
    }
    assert.deepEqual(stream.events, [], 'refused publishes must not reach listeners');
    assert.equal((await stats(locked, channel, { headers: publisher })).published, 0);

    const r = await publish(locked, channel, { ...body, headers: { authorization: `Bearer ${PUBLISH_SECRET}` } });
    const { id } = assertPublished(r, 1, 'right secret');
    const e = await stream.nextEvent(5000);
    assert.deepEqual([e.data, e.idField], ['secret news', id]);
    // The scheme is case-insensitive (RFC 9110).
    assertPublished(await publish(locked, channel, { ...body, headers: { authorization: `bearer ${PUBLISH_SECRET}` } }), 1, 'lower-case scheme');
  });

  test('/ping with PUBLISH_SECRET: missing 401, wrong 403, right 200 (GET and POST)', async () => {
    for (const method of ['GET', 'POST']) {
      assertError(await request(`${locked}/ping`, { method }), 401, null, `${method} /ping without Authorization`);
      assertError(await request(`${locked}/ping`, { method, headers: { authorization: 'Bearer wrong' } }), 403, null,
        `${method} /ping with a wrong secret`);
      await ping(locked, { method, headers: { authorization: `Bearer ${PUBLISH_SECRET}` } });
    }
  });

  test('listening with LISTEN_SECRET: ?token= missing 401, wrong 403, right 200', async () => {
    const channel = freshChannel('auth-listen');
    for (const path of [`/channels/${channel}/events`, '/listen']) {
      assertError(await request(`${locked}${path}`), 401, null, `${path} without token`);
      assertError(await request(`${locked}${path}?token=`), 401, null, `${path} with an empty token`);
      for (const wrong of ['nope', `${LISTEN_SECRET}x`, PUBLISH_SECRET]) {
        assertError(await request(`${locked}${path}?token=${encodeURIComponent(wrong)}`), 403, null, `${path}?token=${wrong}`);
      }
    }
    const stream = await listenOn(locked, channel, 1, { query: `?token=${encodeURIComponent(LISTEN_SECRET)}`, statsHeaders: publisher });
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const r = await publish(locked, channel, { body: 'hi', contentType: 'text/plain', headers: { authorization: `Bearer ${PUBLISH_SECRET}` } });
    const { id } = assertPublished(r, 1, 'publish to an authorized listener');
    const e = await stream.nextEvent(5000);
    assert.deepEqual([e.data, e.idField], ['hi', id]);
    const def = await listen(locked, `/listen?token=${encodeURIComponent(LISTEN_SECRET)}`);
    assert.equal(def.status, 200);
  });

  test('without secrets everything is open', async () => {
    const channel = freshChannel('no-auth');
    const stream = await listenOn(open, channel);
    const withToken = await listen(open, `/channels/${channel}/events?token=anything`);
    assert.equal(withToken.status, 200, 'a token is ignored when LISTEN_SECRET is unset');
    await waitForListeners(open, channel, 2);
    assertPublished(await publishJson(open, channel, { data: 'a' }), 2, 'no Authorization');
    assertPublished(await publishJson(open, channel, { data: 'b' }, { headers: { authorization: 'Bearer whatever' } }), 2, 'any bearer');
    for (const method of ['GET', 'POST']) {
      await ping(open, { method, headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    }
    const l = await listen(open, '/listen');
    assert.equal(l.status, 200);
    await stream.waitFor(2);
    assert.deepEqual(stream.events.map((e) => e.data), ['a', 'b']);
  });
});

describe('CORS', () => {
  const preflight = (base, path, origin, method = 'POST') => request(`${base}${path}`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': 'authorization, content-type, last-event-id',
    },
  });
  const listOf = (v) => (v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

  test('with a list: a preflight from an allowed origin gets 204 with methods and headers; others 403', async () => {
    const paths = ['/channels/c1/events', '/channels/c1', '/ping', '/listen'];
    for (const path of paths) {
      for (const origin of ALLOWED) {
        const r = await preflight(locked, path, origin);
        assert.equal(r.status, 204, `OPTIONS ${path} from ${origin}: ${r.status} ${r.text}`);
        assert.equal(r.headers.get('access-control-allow-origin'), origin, `OPTIONS ${path} from ${origin}: Allow-Origin`);
        const methods = listOf(r.headers.get('access-control-allow-methods'));
        for (const m of ['get', 'post', 'options']) assert.ok(methods.includes(m), `Allow-Methods ${methods} lacks ${m}`);
        const headers = listOf(r.headers.get('access-control-allow-headers'));
        for (const h of ['authorization', 'content-type', 'last-event-id']) {
          assert.ok(headers.includes(h), `Allow-Headers ${headers} lacks ${h}`);
        }
        assert.equal(r.text, '', 'a 204 has no body');
      }
      for (const origin of [FOREIGN, 'http://allowed.test.evil.test', 'https://allowed.test', 'null']) {
        const r = await preflight(locked, path, origin);
        assertError(r, 403, null, `OPTIONS ${path} from ${origin}`);
        assert.equal(r.headers.get('access-control-allow-origin'), null, `OPTIONS ${path} from ${origin}: no Allow-Origin`);
      }
    }
  });

  test('with a list: simple requests get Access-Control-Allow-Origin only for allowed origins', async () => {
    const channel = freshChannel('cors-list');
    const token = `?token=${encodeURIComponent(LISTEN_SECRET)}`;
    for (const origin of ALLOWED) {
      const s = await request(`${locked}/channels/${channel}`, { headers: { origin, ...publisher } });
      assert.equal(s.status, 200);
      assert.equal(s.headers.get('access-control-allow-origin'), origin, `stats from ${origin}`);
      const p = await publish(locked, channel, { body: 'x', contentType: 'text/plain', headers: { origin, ...publisher } });
      assert.equal(p.status, 200, p.text);
      assert.equal(p.headers.get('access-control-allow-origin'), origin, `publish from ${origin}`);
      // An error is readable by the page too.
      const denied = await publish(locked, channel, { body: 'x', contentType: 'text/plain', headers: { origin } });
      assert.equal(denied.status, 401);
      assert.equal(denied.headers.get('access-control-allow-origin'), origin, `401 from ${origin}`);
      const stream = await listen(locked, `/channels/${channel}/events${token}`, { headers: { origin } });
      assert.equal(stream.status, 200);
      assert.equal(stream.headers.get('access-control-allow-origin'), origin, `event stream for ${origin}`);
      assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    }
    for (const origin of [FOREIGN, null]) {
      const headers = origin ? { origin } : {};
      const s = await request(`${locked}/channels/${channel}`, { headers: { ...headers, ...publisher } });
      assert.equal(s.status, 200);
      assert.equal(s.headers.get('access-control-allow-origin'), null, `stats from ${origin}`);
      const p = await publish(locked, channel, { body: 'x', contentType: 'text/plain', headers: { ...headers, ...publisher } });
      assert.equal(p.status, 200);
      assert.equal(p.headers.get('access-control-allow-origin'), null, `publish from ${origin}`);
      const stream = await listen(locked, `/channels/${channel}/events${token}`, { headers });
      assert.equal(stream.status, 200);
      assert.equal(stream.headers.get('access-control-allow-origin'), null, `event stream for ${origin}`);
    }
  });

  test('with *: any origin gets *', async () => {
    const channel = freshChannel('cors-any');
    for (const origin of [FOREIGN, 'https://anything.example:1234', 'null']) {
      const pre = await preflight(open, `/channels/${channel}/events`, origin);
      assert.equal(pre.status, 204, `OPTIONS from ${origin}: ${pre.status} ${pre.text}`);
      assert.equal(pre.headers.get('access-control-allow-origin'), '*');
      const methods = listOf(pre.headers.get('access-control-allow-methods'));
      for (const m of ['get', 'post', 'options']) assert.ok(methods.includes(m), `Allow-Methods ${methods} lacks ${m}`);
      const s = await request(`${open}/channels/${channel}`, { headers: { origin } });
      assert.equal(s.headers.get('access-control-allow-origin'), '*', `stats from ${origin}`);
      const p = await publishJson(open, channel, { data: 'x' }, { headers: { origin } });
      assert.equal(p.status, 200);
      assert.equal(p.headers.get('access-control-allow-origin'), '*', `publish from ${origin}`);
      const stream = await listen(open, `/channels/${channel}/events`, { headers: { origin } });
      assert.equal(stream.headers.get('access-control-allow-origin'), '*', `event stream for ${origin}`);
      const ping = await request(`${open}/ping`, { headers: { origin } });
      assert.equal(ping.headers.get('access-control-allow-origin'), '*', `/ping from ${origin}`);
    }
  });
});

describe('in a browser', () => {
  test('a cross-origin page: each addEventListener gets exactly its own events, in order; the page publishes after a preflight', async () => {
    const channel = freshChannel('browser');
    const other = freshChannel('browser-other');
    const { page, pageErrors } = await openListeningPage(allowedPage, channel);
    try {
      assert.notEqual(new URL(allowedPage.origin).port, new URL(locked).port, 'the page must be on another origin');
      await page.waitForFunction(() => window.state?.open === true, null, { timeout: 15_000, polling: 50 });
      await waitForListeners(locked, channel, 1, 10_000, { headers: publisher });

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
        const { id, listeners } = await publishEvent(locked, channel, body, { headers: publisher });
        assert.equal(listeners, 1, `publish #${i}: the page is the one listener`);
        const kind = event ?? 'message';
        if (kind in want) {
          const item = { type: kind, data, id, origin: new URL(locked).origin };
          want[kind].push(item);
          wantAll.push({ kind, ...item });
        }
        if (i % 3 === 0) {
          // Noise on another channel: the page must not see it.
          const noise = await publishEvent(locked, other, i % 2 ? { data: `other-${i}`, event: 'alpha' } : { data: `other-${i}` },
            { headers: publisher });
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
      const before = await stats(locked, channel, { headers: publisher });
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
      assert.deepEqual(state.beta.at(-1), { type: 'beta', data: 'from the page', id: answer.id, origin: new URL(locked).origin });
      assert.equal(state.all.length, total + 1);

      // A wrong secret: the page can read the 403 (the error carries Allow-Origin too).
      const refused = await page.evaluate(() => window.publishFromPage({ data: 'nope' }, 'wrong-secret'));
      assert.equal(refused.error, undefined, `the page's fetch failed: ${refused.error}`);
      assert.equal(refused.status, 403, JSON.stringify(refused));
      const after = await stats(locked, channel, { headers: publisher });
      assert.equal(after.published, before.published + 1, 'only the authorized publish counted');

      // The browser did preflight: wrangler dev logs every request it serves
      // ("[wrangler:info] OPTIONS /channels/<name>/events 204 No Content (…ms)").
      const log = lockedServer.output();
      assert.match(log, new RegExp(`OPTIONS /channels/${channel}/events 204`), `no preflight in wrangler's log:\n${log.slice(-3000)}`);
      assert.deepEqual(pageErrors, [], 'no errors in the page');
    } finally {
      await page.evaluate(() => window.closeStream?.()).catch(() => {});
      await page.close().catch(() => {});
    }
  });

  test('a page on an origin that is not allowed can neither listen nor publish', async () => {
    const channel = freshChannel('browser-foreign');
    const { page } = await openListeningPage(foreignPage, channel);
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
      assert.equal((await stats(locked, channel, { headers: publisher })).published, 0);
      state = await pageState(page);
      assert.deepEqual(state.all, []);
    } finally {
      await page.close().catch(() => {});
    }
  });
});
