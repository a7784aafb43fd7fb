// Listening and resuming (README "Listen" and "Ids, history and resume"): what every
// stream starts with, event ids, durable history in SQLite, resuming with Last-Event-ID
// (header or `lastEventId` query parameter), the gap event, the history bound, and a
// restart that loses nothing.
//
// Two wrangler dev servers share ONE persist directory and port, one after the other:
//   FIRST  (defaults: HISTORY_SIZE 1000, HEARTBEAT_SECONDS 15, RETRY_MS 1000)
//          resume, concurrent publishing, the slow reader, the first half of the restart;
//   SECOND (HISTORY_SIZE 20, HEARTBEAT_SECONDS 1, RETRY_MS 1234)
//          the second half of the restart, the stream's contract, gap, history bound, retry.
// Switching from FIRST to SECOND is the restart under test. Each test asks for the
// server it needs (serverFor), so any single test also runs alone.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../support/server.mjs';
import { listen, parseAll, ResumingListener } from '../support/sse.mjs';
import {
  assertIdsIncrease,
  closeOpened,
  openRawListener,
  ping,
  pollUntil,
  publishAll,
  publishEvent,
  sleep,
  stats,
  waitForListeners,
} from '../support/http.mjs';

const BIG_BODY = 300_000; // MAX_BODY_BYTES, so the slow-reader test can send 250 kB events

const FIRST = {
  name: 'FIRST',
  retryMs: 1000, // the documented default
  vars: { QUEUE_CAPACITY: '5', MAX_BODY_BYTES: String(BIG_BODY) },
};
const SECOND = {
  name: 'SECOND',
  retryMs: 1234,
  heartbeatSeconds: 1,
  vars: {
    QUEUE_CAPACITY: '5',
    MAX_BODY_BYTES: String(BIG_BODY),
    HISTORY_SIZE: '20',
    HEARTBEAT_SECONDS: '1',
    RETRY_MS: '1234',
  },
};

let persistDir;
/** @type {{config: object, server: Awaited<ReturnType<typeof startServer>>} | null} */
let current = null;
let lastPort;
const timings = [];

/** The running server with `config`; stops the other one first (same port and state). */
async function serverFor(config) {
  if (current?.config === config) return current.server;
  if (current) {
    const t = Date.now();
    await current.server.stop();
    timings.push(`stop ${current.config.name}: ${Date.now() - t} ms`);
    current = null;
  }
  const t = Date.now();
  const server = await startServer({ vars: config.vars, persistDir, port: lastPort });
  timings.push(`start ${config.name}: ${Date.now() - t} ms`);
  lastPort = server.port;
  current = { config, server };
  return server;
}

before(async () => {
  persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-resume-'));
});

after(async () => {
  await closeOpened();
  await current?.server.stop();
  current = null;
  if (persistDir) await rm(persistDir, { recursive: true, force: true }).catch(() => {});
  if (timings.length) console.log(`# servers: ${timings.join(', ')}`);
});

afterEach(closeOpened);

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const ids = (events) => events.map((e) => e.lastEventId);
const strIds = (nums) => nums.map(String);

// ---------------------------------------------------------------------------------------
// FIRST server

for (const how of ['header', 'query']) {
  test(`resume with ${how === 'header' ? 'the Last-Event-ID header' : 'the lastEventId query parameter'}: ` +
    'exactly the 50 missed events, in order, then live ones', { timeout: 90_000 }, async () => {
    const server = await serverFor(FIRST);
    const channel = `resume-${how}`;
    const first = await listen(server.url, `/channels/${channel}/events`, { retryMs: FIRST.retryMs });
    const before = await publishAll(server.url, channel, range(1, 5).map((i) => `before-${i}`));
    await first.waitFor(5);
    assert.deepEqual(first.events.map((e) => [e.lastEventId, e.data]), before.map((p) => [p.id, p.data]));
    const lastSeen = first.lastEventId;
    assert.equal(lastSeen, before.at(-1).id);
    await first.close();

    const missed = await publishAll(server.url, channel, range(1, 50).map((i) => `missed-${i}`));
    assertIdsIncrease([lastSeen, ...missed.map((p) => p.id)], 'publish ids');

    const resumed = how === 'header'
      ? await listen(server.url, `/channels/${channel}/events`, { retryMs: FIRST.retryMs, headers: { 'Last-Event-ID': lastSeen } })
      : await listen(server.url, `/channels/${channel}/events?lastEventId=${lastSeen}`, { retryMs: FIRST.retryMs });
    await resumed.waitFor(50);
    await sleep(200); // would a surplus event arrive?
    assert.deepEqual(resumed.events.map((e) => [e.lastEventId, e.data]), missed.map((p) => [p.id, p.data]),
      'exactly the missed events, in order');
    assert.ok(resumed.events.every((e) => e.type === 'message' && e.idField === e.lastEventId), 'each with its own id');

    const live = await publishAll(server.url, channel, ['live-1', 'live-2', 'live-3']);
    await resumed.waitFor(53);
    await sleep(200);
    assert.deepEqual(resumed.events.slice(50).map((e) => [e.lastEventId, e.data]), live.map((p) => [p.id, p.data]));
    assert.equal(resumed.events.length, 53);
    assert.equal(resumed.ended, false, 'still open');
    await resumed.close();
  });
}

test('events published while a replay is sent arrive exactly once each', { timeout: 120_000 }, async () => {
  const server = await serverFor(FIRST);
  const channel = 'concurrent';
  const published = await publishAll(server.url, channel, range(1, 200).map((i) => `old-${i}`));
  assert.equal(published[0].id, '1', 'a fresh channel starts at id 1');

  // 50 more, published one after the other, while three listeners resume from 0 at
  // different moments of it.
  const more = [];
  const publisher = (async () => {
    for (let i = 1; i <= 50; i += 1) more.push({ id: (await publishEvent(server.url, channel, { data: `new-${i}` })).id, data: `new-${i}` });
  })();
  const listeners = [];
  for (const startAfter of [0, 15, 35]) {
    await pollUntil(() => more.length, (n) => n >= startAfter, { timeoutMs: 30_000, intervalMs: 5, what: `${startAfter} publishes` });
    listeners.push(new ResumingListener(server.url, `/channels/${channel}/events`, { retryMs: FIRST.retryMs, lastEventId: '0' }));
  }
  await publisher;
  const all = [...published, ...more];
  assert.deepEqual(all.map((p) => p.id), strIds(range(1, 250)), 'ids 1..250');
  try {
    for (const l of listeners) {
      await l.waitForEvents(250, 20_000);
      await sleep(200);
      assert.deepEqual(l.events.map((e) => [e.lastEventId, e.data]), all.map((p) => [p.id, p.data]),
        `all 250 exactly once, in order (${l.describe()})`);
      assert.ok(!l.events.some((e) => e.type === 'gap'), 'no gap: everything is kept');
      assert.deepEqual(l.retryFailures(), []);
    }
  } finally {
    for (const l of listeners) await l.close();
  }
});

test('a reader that stops reading is cut, resumes with its last id and gets all 100; a fast one beside it gets all 100 without stalling',
  { timeout: 180_000 }, async (t) => {
    const server = await serverFor(FIRST);
    const channel = 'slow';
    const SIZE = 250_000;
    const fast = new ResumingListener(server.url, `/channels/${channel}/events`, { retryMs: FIRST.retryMs });
    await fast.opened;
    const slow = await openRawListener(server.url, `/channels/${channel}/events`);
    assert.match(slow.statusLine, /^HTTP\/1\.1 200/);
    await waitForListeners(server.url, channel, 2);

    const published = [];
    let cutAfter = null; // publishes done when stats first showed the slow one gone
    let maxLag = 0; // largest (published - received by the fast listener), sampled after each publish
    const started = Date.now();
    for (let i = 1; i <= 100; i += 1) {
      const data = `${i}:${'x'.repeat(SIZE)}`;
      published.push({ id: (await publishEvent(server.url, channel, { data })).id, data });
      maxLag = Math.max(maxLag, i - fast.events.length);
      if (cutAfter === null && i % 5 === 0) {
        const s = await stats(server.url, channel);
        if (s.droppedSlow > 0) cutAfter = i;
      }
    }
    const publishMs = Date.now() - started;
    await fast.waitForEvents(100, 30_000);
    const fastDoneMs = Date.now() - started;
    const s = await stats(server.url, channel);
    t.diagnostic(`100 x ${SIZE} B published in ${publishMs} ms; fast listener had all 100 after ${fastDoneMs} ms, ` +
      `max lag ${maxLag} events, ${fast.connections} connection(s); slow one cut by publish ~${cutAfter}; ` +
      `stats ${JSON.stringify(s)}`);

    assert.deepEqual(fast.events.map((e) => e.lastEventId), published.map((p) => p.id));
    assert.ok(fast.events.every((e, i) => e.data === published[i].data), 'fast listener: data intact');
    assert.equal(fast.connections, 1, `the fast listener was never cut: ${fast.describe()}`);
    assert.ok(s.droppedSlow >= 1, `the slow reader was cut as slow (no longer counted): ${JSON.stringify(s)}`);
    assert.equal(s.listeners, 1);

    // The slow reader reads again: what was queued before the cut, then the end of its stream.
    const { how } = await slow.drainUntilEnd(30_000);
    const body = slow.body();
    const got = { bytes: body.length, ...parseAll([new Uint8Array(body)]) };
    t.diagnostic(`slow reader: stream ended by ${how} after ${got.bytes} body bytes, ${got.events.length} events, ` +
      `last id ${got.lastEventId}`);
    assert.notEqual(how, 'timeout', `the slow reader's stream must end; got ${got.events.length} events`);
    slow.destroy();
    assert.equal(got.retries[0], FIRST.retryMs);
    assert.ok(got.events.length < 100, `the slow reader was cut before the end (${got.events.length} events)`);
    assert.deepEqual(got.events.map((e) => e.lastEventId), published.slice(0, got.events.length).map((p) => p.id),
      'before the cut: a prefix, in order');
    assert.ok(got.events.every((e, i) => e.data === published[i].data));

    // It reconnects with its last id, as an EventSource does, and catches up.
    const again = new ResumingListener(server.url, `/channels/${channel}/events`,
      { retryMs: FIRST.retryMs, lastEventId: got.lastEventId || null });
    try {
      await again.waitForEvents(100 - got.events.length, 30_000);
      await sleep(200);
      const joined = [...got.events, ...again.events];
      assert.deepEqual(joined.map((e) => e.lastEventId), published.map((p) => p.id), 'all 100 exactly once, in order');
      assert.ok(joined.every((e, i) => e.data === published[i].data));
      assert.deepEqual(again.retryFailures(), []);
      assert.deepEqual(fast.retryFailures(), []);
    } finally {
      await again.close();
      await fast.close();
    }
  });

// ---------------------------------------------------------------------------------------
// FIRST -> SECOND: a restart on the same persisted state

test('restart: ids continue (never reused) and a listener resumes across it', { timeout: 120_000 }, async (t) => {
  let server = await serverFor(FIRST);
  const channel = 'restart';
  const before = await publishAll(server.url, channel, range(1, 5).map((i) => `before-${i}`));
  const listener = new ResumingListener(server.url, `/channels/${channel}/events`, { retryMs: FIRST.retryMs, reconnectForMs: 60_000 });
  try {
    await listener.opened;
    const more = await publishAll(server.url, channel, ['before-6']);
    await listener.waitForEvents(1, 10_000);
    const statsBefore = await stats(server.url, channel);
    assert.equal(statsBefore.lastId, more[0].id);

    // Stop FIRST, start SECOND on the same port and persist directory. The listener sees
    // its stream end and keeps reconnecting with its last id; its next stream comes from
    // SECOND, so it must start with SECOND's retry value.
    listener.retryMs = SECOND.retryMs;
    server = await serverFor(SECOND);
    const statsAfter = await stats(server.url, channel);
    assert.equal(statsAfter.lastId, more[0].id, `last id survives the restart: ${JSON.stringify(statsAfter)}`);
    assert.equal(statsAfter.historyLength, 6);

    const after = await publishAll(server.url, channel, range(1, 5).map((i) => `after-${i}`));
    const allIds = [...before, ...more, ...after].map((p) => p.id);
    assertIdsIncrease(allIds, 'ids across the restart');
    assert.equal(new Set(allIds).size, allIds.length, 'no id reused');

    // The listener from before the restart ends with everything after its last id.
    await listener.waitForEvents(6, 30_000);
    await sleep(200);
    assert.deepEqual(listener.events.map((e) => [e.lastEventId, e.data]), [...more, ...after].map((p) => [p.id, p.data]),
      listener.describe());
    t.diagnostic(`listener across the restart: ${listener.describe()}`);
    assert.ok(listener.connections >= 2, 'it did reconnect');
    assert.deepEqual(listener.retryFailures(), [], 'each of its streams started with its server\'s retry value');

    // A fresh resume from an id published before the restart.
    const resumed = await listen(server.url, `/channels/${channel}/events`, { retryMs: SECOND.retryMs, headers: { 'Last-Event-ID': before[1].id } });
    const expected = [...before.slice(2), ...more, ...after];
    await resumed.waitFor(expected.length);
    await sleep(200);
    assert.deepEqual(resumed.events.map((e) => [e.lastEventId, e.data]), expected.map((p) => [p.id, p.data]));
    await resumed.close();
  } finally {
    await listener.close();
  }
});

// ---------------------------------------------------------------------------------------
// SECOND server

describe('GET /listen', () => {
  test('answers an event stream with the contract headers, a retry preamble and heartbeats', async () => {
    const server = await serverFor(SECOND); // RETRY_MS 1234, HEARTBEAT_SECONDS 1
    const RETRY_MS = SECOND.retryMs;
    const HEARTBEAT_SECONDS = SECOND.heartbeatSeconds;
    const stream = await listen(server.url, '/listen', { headers: { 'accept-encoding': 'gzip, deflate, br' } });
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
    const server = await serverFor(SECOND);
    await waitForListeners(server.url, 'default', 0, 10_000); // the listeners of earlier tests are gone
    const a = await listen(server.url, '/listen');
    const b = await listen(server.url, '/channels/default/events');
    await waitForListeners(server.url, 'default', 2);
    const { id } = await ping(server.url);
    for (const s of [a, b]) {
      const e = await s.nextEvent(5000);
      assert.deepEqual([e.type, e.data, e.idField], ['message', 'pong', id]);
    }
  });
});

test('gap: resuming from an id no longer kept starts with an id-less gap event', { timeout: 60_000 }, async () => {
  const server = await serverFor(SECOND); // HISTORY_SIZE 20
  const channel = 'gap';
  const published = await publishAll(server.url, channel, range(1, 30).map((i) => `g${i}`));
  assert.deepEqual(published.map((p) => p.id), strIds(range(1, 30)));

  const resumed = await listen(server.url, `/channels/${channel}/events`, { retryMs: SECOND.retryMs, headers: { 'Last-Event-ID': '3' } });
  await resumed.waitFor(21);
  await sleep(200);
  const [gap, ...rest] = resumed.events;
  assert.equal(gap.type, 'gap');
  assert.deepEqual(JSON.parse(gap.data), { lastEventId: '3', firstAvailableId: '11' });
  assert.equal(gap.idField, null, 'the gap event has no id field');
  assert.equal(gap.lastEventId, '', 'and so leaves the last event id unchanged');
  const gapBlock = resumed.text.slice(`retry: ${SECOND.retryMs}\n\n`.length).split('\n\n')[0];
  assert.doesNotMatch(gapBlock, /^id:/m, `raw gap block: ${JSON.stringify(gapBlock)}`);
  assert.deepEqual(ids(rest), strIds(range(11, 30)));
  assert.deepEqual(rest.map((e) => e.data), range(11, 30).map((i) => `g${i}`));
  assert.equal(resumed.events.length, 21);
  await resumed.close();

  // The same through the query parameter; and from the edge (10 seen, 11 kept): no gap.
  const q = await listen(server.url, `/channels/${channel}/events?lastEventId=3`, { retryMs: SECOND.retryMs });
  await q.waitFor(21);
  assert.equal(q.events[0].type, 'gap');
  await q.close();
  const edge = await listen(server.url, `/channels/${channel}/events`, { retryMs: SECOND.retryMs, headers: { 'Last-Event-ID': '10' } });
  await edge.waitFor(20);
  await sleep(200);
  assert.deepEqual(ids(edge.events), strIds(range(11, 30)));
  await edge.close();
});

test('history is bounded: HISTORY_SIZE 20 keeps the last 20 of 200', { timeout: 90_000 }, async () => {
  const server = await serverFor(SECOND);
  const channel = 'bound';
  const published = await publishAll(server.url, channel, range(1, 200).map((i) => `b${i}`));
  const s = await stats(server.url, channel);
  assert.equal(s.historyLength, 20, JSON.stringify(s));
  assert.equal(s.lastId, '200');
  assert.equal(s.published, 200);

  const resumed = await listen(server.url, `/channels/${channel}/events`, { retryMs: SECOND.retryMs, headers: { 'Last-Event-ID': '0' } });
  await resumed.waitFor(21);
  await sleep(300);
  assert.equal(resumed.events.length, 21, `a gap then exactly 20: ${resumed.events.length}`);
  const [gap, ...rest] = resumed.events;
  assert.equal(gap.type, 'gap');
  assert.equal(gap.idField, null);
  assert.deepEqual(JSON.parse(gap.data), { lastEventId: '0', firstAvailableId: '181' });
  assert.deepEqual(rest.map((e) => [e.lastEventId, e.data]), published.slice(180).map((p) => [p.id, p.data]));
  await resumed.close();
});
test('every stream starts with retry: RETRY_MS (1234 here; the default 1000 was checked on FIRST)', { timeout: 60_000 },
  async () => {
    const server = await serverFor(SECOND);
    await publishAll(server.url, 'retry', ['r1', 'r2']);
    const cases = [
      ['/listen', {}],
      ['/channels/retry/events', {}],
      ['/channels/retry/events', { 'Last-Event-ID': '1' }],
      ['/channels/retry/events?lastEventId=0', {}],
      ['/channels/retry/events', { 'Last-Event-ID': '2' }],
      ['/channels/gap/events', { 'Last-Event-ID': '1' }], // starts with a gap event right after
    ];
    for (const [p, headers] of cases) {
      const stream = await listen(server.url, p, { retryMs: SECOND.retryMs, headers }); // asserts the first bytes
      assert.equal(stream.parser.reconnectionTime, 1234);
      await stream.close();
    }
  });
