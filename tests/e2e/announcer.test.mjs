// Issue 2, end to end against `wrangler dev`: the announcer (/listen + /ping) and how
// it treats listeners that leave or stop reading. See README.md.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openStream } from '../support/sse.mjs';
import {
  request,
  stats,
  waitForListeners,
  pollUntil,
  idLess,
  assertDecimalId,
  openRawListener,
} from '../support/http.mjs';

const RETRY_MS = 1500; // not the default (1000), to see the setting arrive
const HEARTBEAT_SECONDS = 1; // gone or stuck listeners are found within about a second

let server;
let base;
/** streams and sockets opened by the current test, closed after it */
let opened = [];

async function listen(path = '/listen', options = {}) {
  const stream = await openStream(`${base}${path}`, options);
  opened.push(stream);
  return stream;
}

async function ping(method = 'GET') {
  const r = await request(`${base}/ping`, { method });
  assert.equal(r.status, 200, `${method} /ping: ${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${method} /ping content-type`);
  assert.ok(r.json && typeof r.json === 'object', `${method} /ping body is not a JSON object: ${r.text}`);
  assertDecimalId(r.json.id, `${method} /ping id`);
  assert.equal(typeof r.json.listeners, 'number', `${method} /ping listeners: ${r.text}`);
  return r.json;
}

before(async () => {
  server = await startServer({
    vars: { HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS), RETRY_MS: String(RETRY_MS) },
  });
  base = server.url;
}, { timeout: 90_000 });

after(async () => {
  for (const s of opened) s.close?.() ?? s.destroy?.();
  await server?.stop();
}, { timeout: 30_000 });

afterEach(async () => {
  const all = opened;
  opened = [];
  await Promise.all(all.map((s) => (s.close ? s.close() : s.destroy())));
});

/** Before counting listeners: wait until the ones of earlier tests are gone. */
async function quiet(channel = 'default') {
  await waitForListeners(base, channel, 0, 10_000);
}

describe('GET /listen', () => {
  test('answers an event stream with the contract headers, a retry preamble and heartbeats', async () => {
    const stream = await listen('/listen', { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    assert.equal(stream.status, 200);
    const h = stream.headers;
    assert.match(h.get('content-type') ?? '', /^text\/event-stream(;|$)/, 'content-type');
    const cacheControl = (h.get('cache-control') ?? '').split(',').map((s) => s.trim().toLowerCase());
    assert.ok(cacheControl.includes('no-cache'), `cache-control: ${h.get('cache-control')}`);
    assert.equal(h.get('x-accel-buffering'), 'no');
    assert.equal(h.get('content-encoding'), null, 'an event stream must not be compressed');

    // The very first thing on the stream: "retry: <RETRY_MS>" and a blank line.
    await stream.waitUntil(() => /\r?\n\r?\n/.test(stream.text), 5000, 'the first blank line');
    assert.match(stream.text, new RegExp(`^retry: ${RETRY_MS}\\r?\\n\\r?\\n`), `stream starts with: ${JSON.stringify(stream.text.slice(0, 80))}`);
    assert.equal(stream.parser.reconnectionTime, RETRY_MS);

    // Heartbeat comments, every HEARTBEAT_SECONDS.
    const started = Date.now();
    await stream.waitForComments(2, 5000 * HEARTBEAT_SECONDS);
    assert.equal(stream.commentLines[0], ' keep-alive');
    assert.ok(Date.now() - started <= 4000 * HEARTBEAT_SECONDS, 'two heartbeats took too long');
    assert.equal(stream.events.length, 0, 'no events were published, none should arrive');
  });

  test('/channels/default/events is the same stream as /listen', async () => {
    await quiet();
    const a = await listen('/listen');
    const b = await listen('/channels/default/events');
    await waitForListeners(base, 'default', 2);
    const { id } = await ping();
    for (const s of [a, b]) {
      const e = await s.nextEvent(5000);
      assert.deepEqual([e.type, e.data, e.idField], ['message', 'pong', id]);
    }
  });
});

describe('/ping fan-out', () => {
  const LISTENERS = 5;
  const PINGS = 20;

  test(`${LISTENERS} concurrent listeners each receive all ${PINGS} pings, in order`, async () => {
    await quiet();
    const streams = await Promise.all(Array.from({ length: LISTENERS }, () => listen('/listen')));
    for (const s of streams) assert.equal(s.status, 200);
    await waitForListeners(base, 'default', LISTENERS);

    const before = await stats(base, 'default');
    const ids = [];
    for (let i = 0; i < PINGS; i += 1) {
      const method = i % 2 === 0 ? 'GET' : 'POST';
      const r = await ping(method);
      assert.equal(r.listeners, LISTENERS, `${method} /ping #${i + 1} listeners`);
      if (ids.length > 0) assert.ok(idLess(ids.at(-1), r.id), `ping ids must increase: ${ids.at(-1)} then ${r.id}`);
      ids.push(r.id);
    }

    for (const [n, s] of streams.entries()) {
      const events = await s.waitFor(PINGS, 10_000);
      assert.equal(events.length, PINGS, `listener ${n}: exactly ${PINGS} events`);
      for (const [i, e] of events.entries()) {
        assert.equal(e.type, 'message', `listener ${n} event ${i}: type`);
        assert.equal(e.data, 'pong', `listener ${n} event ${i}: data`);
        assert.equal(e.idField, ids[i], `listener ${n} event ${i}: id (events in order, each with its own id)`);
      }
      assert.equal(s.lastEventId, ids.at(-1));
    }

    const after = await stats(base, 'default');
    assert.equal(after.channel, 'default');
    assert.equal(after.listeners, LISTENERS);
    assert.equal(after.published - before.published, PINGS, 'published counter');
    assert.equal(after.delivered - before.delivered, PINGS * LISTENERS, 'delivered counter');
    assert.equal(after.lastId, ids.at(-1), 'lastId');
  });

  test('/ping with nobody listening still answers 200 with listeners 0', async () => {
    await quiet();
    const r = await ping('POST');
    assert.equal(r.listeners, 0);
  });
});

describe('listeners that leave', () => {
  test('a listener that disconnects stops being counted (found by heartbeats, no publishing)', async () => {
    await quiet();
    const stay = await listen('/listen');
    const leave = await listen('/listen');
    await waitForListeners(base, 'default', 2);

    await leave.close();
    // Only read-only polling here: the heartbeat must expose the gone client.
    const started = Date.now();
    await waitForListeners(base, 'default', 1, 10_000);
    const took = Date.now() - started;
    assert.ok(took <= 10_000, `took ${took} ms`);

    // The one that stayed is unaffected.
    const { id, listeners } = await ping();
    assert.equal(listeners, 1);
    const e = await stay.nextEvent(5000);
    assert.deepEqual([e.data, e.idField], ['pong', id]);
    assert.equal(stay.ended, false);
  });

  test('a listener that stops reading is dropped; the others still get every event', async (t) => {
    const channel = `slow-${process.pid}-${Date.now()}`;
    const FAST = 3;
    const EVENT_BYTES = 32 * 1024; // under MAX_BODY_BYTES (64 KiB)
    const MAX_EVENTS = 600; // ~20 MB in all: bounded; ~250 (8 MB) were needed here
    const BATCH = 4; // below QUEUE_CAPACITY (5), so the fast listeners never fall behind

    const fast = await Promise.all(Array.from({ length: FAST }, () => listen(`/channels/${channel}/events`)));
    const slow = await openRawListener(base, `/channels/${channel}/events`);
    opened.push(slow);
    assert.match(slow.statusLine, /^HTTP\/1\.1 200/, slow.statusLine);
    await waitForListeners(base, channel, FAST + 1);

    const ids = [];
    let dropped = false;
    let published = 0;
    while (published < MAX_EVENTS && !dropped) {
      for (let i = 0; i < BATCH; i += 1) {
        const n = published + 1;
        const body = `${String(n).padStart(6, '0')}:${'x'.repeat(EVENT_BYTES - 7)}`;
        const r = await request(`${base}/channels/${channel}/events`, {
          method: 'POST',
          headers: { 'content-type': 'text/plain' },
          body,
        });
        assert.equal(r.status, 200, `publish #${n}: ${r.status} ${r.text}`);
        assertDecimalId(r.json?.id, `publish #${n} id`);
        ids.push(r.json.id);
        published = n;
        if (r.json.listeners === FAST) dropped = true;
      }
      // Let the fast listeners catch up before the next batch.
      for (const s of fast) await s.waitFor(published, 15_000);
      if (!dropped) dropped = (await stats(base, channel)).listeners === FAST;
    }
    assert.ok(dropped, `the listener that does not read was still counted after ${published} events of ${EVENT_BYTES} bytes`);
    t.diagnostic(`the stuck listener was dropped after ${published} events of ${EVENT_BYTES} bytes`);

    // The stuck listener is gone from the count (and stays gone) ...
    const s1 = await waitForListeners(base, channel, FAST, 10_000);
    assert.ok(s1.droppedSlow >= 1, `droppedSlow: ${JSON.stringify(s1)}`);

    // ... while the others keep receiving everything, in order.
    for (let i = 0; i < 3; i += 1) {
      const r = await request(`${base}/channels/${channel}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: `after-${i}` }),
      });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.listeners, FAST);
      ids.push(r.json.id);
      published += 1;
    }
    for (const [n, s] of fast.entries()) {
      const events = await s.waitFor(published, 15_000);
      assert.equal(events.length, published, `fast listener ${n}: event count`);
      assert.deepEqual(events.map((e) => e.idField), ids, `fast listener ${n}: ids in order`);
      for (let i = 0; i < published - 3; i += 1) {
        assert.equal(events[i].data.slice(0, 7), `${String(i + 1).padStart(6, '0')}:`, `fast listener ${n} event ${i}`);
        assert.equal(events[i].data.length, EVENT_BYTES, `fast listener ${n} event ${i} length`);
      }
      assert.deepEqual(events.slice(-3).map((e) => e.data), ['after-0', 'after-1', 'after-2']);
      assert.equal(s.ended, false, `fast listener ${n} must stay connected`);
    }

    // The stuck listener's stream was ended by the server: once it reads again it
    // gets what was queued and then the end of the stream.
    const { how } = await slow.drainUntilEnd(15_000);
    assert.notEqual(how, 'timeout', 'the dropped listener\'s stream should end');
  });
});

describe('errors', () => {
  test('unknown path: 404 with a one-line text body', async () => {
    for (const path of ['/nope', '/listen/extra', '/channels']) {
      const r = await request(`${base}${path}`);
      assert.equal(r.status, 404, `GET ${path}`);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, `GET ${path} content-type`);
      assert.ok(r.text.trim().length > 0, `GET ${path}: empty body`);
      assert.ok(!r.text.trim().includes('\n'), `GET ${path}: body should be one line: ${JSON.stringify(r.text)}`);
    }
  });

  test('known path, wrong method: 405 with Allow', async () => {
    const cases = [
      ['DELETE', '/ping', ['GET', 'POST']],
      ['PUT', '/ping', ['GET', 'POST']],
      ['PUT', '/listen', ['GET']],
      ['POST', '/listen', ['GET']],
      ['DELETE', '/channels/default/events', ['GET', 'POST']],
    ];
    for (const [method, path, mustAllow] of cases) {
      const r = await request(`${base}${path}`, { method });
      assert.equal(r.status, 405, `${method} ${path}: ${r.status} ${r.text}`);
      const allow = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim().toUpperCase());
      for (const m of mustAllow) assert.ok(allow.includes(m), `${method} ${path}: Allow "${r.headers.get('allow')}" lacks ${m}`);
      assert.ok(!allow.includes(method), `${method} ${path}: Allow must not list ${method}`);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, `${method} ${path} content-type`);
      assert.ok(r.text.trim().length > 0 && !r.text.trim().includes('\n'), `${method} ${path} body: ${JSON.stringify(r.text)}`);
    }
  });

  test('the server is still healthy after all of the above', async () => {
    const r = await request(`${base}/ping`);
    assert.equal(r.status, 200);
    await pollUntil(() => stats(base, 'default'), (s) => typeof s.listeners === 'number', { timeoutMs: 5000, what: 'stats' });
  });
});
