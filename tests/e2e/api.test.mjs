// Issue 4, end to end against `wrangler dev`: channels, publishing, authorization,
// CORS, limits and stats. See README.md.
//
// Two servers, started once for the whole file:
// - `open`: no secrets, ALLOWED_ORIGINS `*`, small MAX_LISTENERS / HISTORY_SIZE /
//   MAX_EVENT_TYPE_BYTES (default MAX_BODY_BYTES, so that 32 KiB events can fill a
//   stuck listener's queue for the droppedSlow counter);
// - `locked`: PUBLISH_SECRET and LISTEN_SECRET given as secrets (the harness's env
//   file), ALLOWED_ORIGINS a list, a small MAX_BODY_BYTES.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openStream } from '../support/sse.mjs';
import {
  request,
  stats,
  waitForListeners,
  idLess,
  assertDecimalId,
  openRawListener,
} from '../support/http.mjs';

const MAX_LISTENERS = 3;
const HISTORY_SIZE = 5;
const MAX_EVENT_TYPE_BYTES = 16;
const RETRY_MS = 1500;
const OPEN_VARS = {
  MAX_LISTENERS: String(MAX_LISTENERS),
  HISTORY_SIZE: String(HISTORY_SIZE),
  MAX_EVENT_TYPE_BYTES: String(MAX_EVENT_TYPE_BYTES),
  RETRY_MS: String(RETRY_MS),
  ALLOWED_ORIGINS: '*',
};

const MAX_BODY_BYTES = 300;
const ALLOWED = ['http://allowed.test', 'https://also-allowed.test:8443'];
const FOREIGN = 'http://evil.test';
const PUBLISH_SECRET = 'pub-S3cret_value.1';
const LISTEN_SECRET = 'listen-S3cret_value.2';
const LOCKED_VARS = {
  MAX_BODY_BYTES: String(MAX_BODY_BYTES),
  ALLOWED_ORIGINS: ALLOWED.join(', '),
};

let open; // base URL of the open server
let locked; // base URL of the locked server
const servers = [];
/** streams and raw sockets opened by the current test, closed after it */
let opened = [];

before(async () => {
  const results = await Promise.allSettled([
    startServer({ vars: OPEN_VARS }),
    startServer({ vars: LOCKED_VARS, secrets: { PUBLISH_SECRET, LISTEN_SECRET } }),
  ]);
  for (const r of results) if (r.status === 'fulfilled') servers.push(r.value);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  [open, locked] = results.map((r) => r.value.url);
}, { timeout: 120_000 });

after(async () => {
  await closeOpened();
  await Promise.all(servers.map((s) => s.stop()));
}, { timeout: 30_000 });

afterEach(closeOpened);

async function closeOpened() {
  const all = opened;
  opened = [];
  await Promise.all(all.map((s) => (s.close ? s.close() : s.destroy())));
}

let channelCounter = 0;
/** A channel name no other test uses. */
const fresh = (what) => `${what}-${process.pid}-${(channelCounter += 1)}`;

async function listen(base, path, options = {}) {
  const stream = await openStream(`${base}${path}`, options);
  opened.push(stream);
  return stream;
}

/** Opens a listener on a channel and waits until the channel counts it. */
async function listenOn(base, channel, expectedListeners = 1, query = '') {
  const stream = await listen(base, `/channels/${channel}/events${query}`);
  assert.equal(stream.status, 200, `listen on ${channel}: ${stream.status}`);
  await waitForListeners(base, channel, expectedListeners);
  return stream;
}

function publish(base, channel, { body, contentType, query = '', headers = {} } = {}) {
  const h = { ...headers };
  if (contentType !== undefined) h['content-type'] = contentType;
  return request(`${base}/channels/${channel}/events${query}`, { method: 'POST', headers: h, body });
}

const publishJson = (base, channel, value, options = {}) =>
  publish(base, channel, { body: JSON.stringify(value), contentType: 'application/json', ...options });

/** The publish answer: 200 JSON {"id": "<decimal>", "listeners": N} and nothing else. */
function assertPublished(r, listeners, what = 'publish') {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${what}: content-type`);
  assert.ok(r.json && typeof r.json === 'object', `${what}: body is not JSON: ${r.text}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['id', 'listeners'], `${what}: ${r.text}`);
  assertDecimalId(r.json.id, `${what} id`);
  assert.equal(r.json.listeners, listeners, `${what}: listeners in ${r.text}`);
  return r.json;
}

/** An error: its status, a text/plain body of one short line that matches `why`. */
function assertError(r, status, why, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${JSON.stringify(r.text)}`);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, `${what}: content-type ${r.headers.get('content-type')}`);
  const line = r.text.trim();
  assert.ok(line.length > 0, `${what}: empty error body`);
  assert.ok(!line.includes('\n') && !line.includes('\r'), `${what}: the body should be one line: ${JSON.stringify(r.text)}`);
  assert.ok(line.length <= 200, `${what}: the body should be short: ${JSON.stringify(r.text)}`);
  if (why) assert.match(line, why, `${what}: message ${JSON.stringify(line)}`);
}

/** What a spec-following parser reads back for `data`: every CRLF, CR and LF is one LF. */
const asReceived = (data) => data.replace(/\r\n|\r/g, '\n');

// ---------------------------------------------------------------------------------------

describe('authorization', () => {
  test('publishing with PUBLISH_SECRET: missing 401, wrong 403, right 200', async () => {
    const channel = fresh('auth-pub');
    const stream = await listenOn(locked, channel, 1, `?token=${encodeURIComponent(LISTEN_SECRET)}`);
    const body = { body: JSON.stringify({ data: 'secret news' }), contentType: 'application/json' };
    assertError(await publish(locked, channel, body), 401, null, 'no Authorization');
    assertError(await publish(locked, channel, { ...body, headers: { authorization: 'Bearer' } }), 401, null, 'Bearer without a token');
    for (const wrong of [`Bearer ${PUBLISH_SECRET}x`, `Bearer ${PUBLISH_SECRET.slice(0, -1)}`, `Bearer ${LISTEN_SECRET}`,
      'Bearer nope']) {
      assertError(await publish(locked, channel, { ...body, headers: { authorization: wrong } }), 403, null, `Authorization: ${wrong}`);
    }
    assert.deepEqual(stream.events, [], 'refused publishes must not reach listeners');
    assert.equal((await stats(locked, channel)).published, 0);

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
      const r = await request(`${locked}/ping`, { method, headers: { authorization: `Bearer ${PUBLISH_SECRET}` } });
      assert.equal(r.status, 200, `${method} /ping with the secret: ${r.status} ${r.text}`);
      assertDecimalId(r.json?.id, `${method} /ping id`);
      assert.equal(typeof r.json.listeners, 'number');
    }
  });

  test('listening with LISTEN_SECRET: ?token= missing 401, wrong 403, right 200', async () => {
    const channel = fresh('auth-listen');
    for (const path of [`/channels/${channel}/events`, '/listen']) {
      assertError(await request(`${locked}${path}`), 401, null, `${path} without token`);
      assertError(await request(`${locked}${path}?token=`), 401, null, `${path} with an empty token`);
      for (const wrong of ['nope', `${LISTEN_SECRET}x`, PUBLISH_SECRET]) {
        assertError(await request(`${locked}${path}?token=${encodeURIComponent(wrong)}`), 403, null, `${path}?token=${wrong}`);
      }
    }
    const stream = await listenOn(locked, channel, 1, `?token=${encodeURIComponent(LISTEN_SECRET)}`);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const r = await publish(locked, channel, { body: 'hi', contentType: 'text/plain', headers: { authorization: `Bearer ${PUBLISH_SECRET}` } });
    const { id } = assertPublished(r, 1, 'publish to an authorized listener');
    const e = await stream.nextEvent(5000);
    assert.deepEqual([e.data, e.idField], ['hi', id]);
    const def = await listen(locked, `/listen?token=${encodeURIComponent(LISTEN_SECRET)}`);
    assert.equal(def.status, 200);
  });

  test('without secrets everything is open', async () => {
    const channel = fresh('no-auth');
    const stream = await listenOn(open, channel);
    const withToken = await listen(open, `/channels/${channel}/events?token=anything`);
    assert.equal(withToken.status, 200, 'a token is ignored when LISTEN_SECRET is unset');
    await waitForListeners(open, channel, 2);
    assertPublished(await publishJson(open, channel, { data: 'a' }), 2, 'no Authorization');
    assertPublished(await publishJson(open, channel, { data: 'b' }, { headers: { authorization: 'Bearer whatever' } }), 2, 'any bearer');
    for (const method of ['GET', 'POST']) {
      const r = await request(`${open}/ping`, { method, headers: { authorization: 'Basic Zm9vOmJhcg==' } });
      assert.equal(r.status, 200, `${method} /ping: ${r.status} ${r.text}`);
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
    const channel = fresh('cors-list');
    const auth = { authorization: `Bearer ${PUBLISH_SECRET}` };
    const token = `?token=${encodeURIComponent(LISTEN_SECRET)}`;
    for (const origin of ALLOWED) {
      const s = await request(`${locked}/channels/${channel}`, { headers: { origin } });
      assert.equal(s.status, 200);
      assert.equal(s.headers.get('access-control-allow-origin'), origin, `stats from ${origin}`);
      const p = await publish(locked, channel, { body: 'x', contentType: 'text/plain', headers: { origin, ...auth } });
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
      const s = await request(`${locked}/channels/${channel}`, { headers });
      assert.equal(s.status, 200);
      assert.equal(s.headers.get('access-control-allow-origin'), null, `stats from ${origin}`);
      const p = await publish(locked, channel, { body: 'x', contentType: 'text/plain', headers: { ...headers, ...auth } });
      assert.equal(p.status, 200);
      assert.equal(p.headers.get('access-control-allow-origin'), null, `publish from ${origin}`);
      const stream = await listen(locked, `/channels/${channel}/events${token}`, { headers });
      assert.equal(stream.status, 200);
      assert.equal(stream.headers.get('access-control-allow-origin'), null, `event stream for ${origin}`);
    }
  });

  test('with *: any origin gets *', async () => {
    const channel = fresh('cors-any');
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
