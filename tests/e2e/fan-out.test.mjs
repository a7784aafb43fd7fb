// Fan-out (README "Publish", "Batching and acknowledgement", the stats in "Routes"): one
// publish reaches every listener of its channel, once and in order, and no other
// channel; events published together go out as one write, so a burst cuts nobody; the
// channel's counters agree with what the listeners got.
//
// Two servers, started once for the whole file:
// - `plain`: default settings (PUBLISH_ACK stored, BATCH_WINDOW_MS 0, QUEUE_CAPACITY 5,
//   HEARTBEAT_SECONDS 15) but HISTORY_SIZE 5, so that the stats show the history bound;
// - `accepted`: PUBLISH_ACK accepted.
// With HEARTBEAT_SECONDS 15 a listener that closed is counted for up to 15 s, so the two
// tests that count the `default` channel's listeners (/ping publishes there) come first;
// the later ones that listen on `default` do not count it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { listen, listenOn } from '../support/sse.mjs';
import {
  assertPublished,
  freshChannel,
  idLess,
  openRawListener,
  ping,
  publish,
  publishBurst,
  publishJson,
  request,
  stats,
  waitForListeners,
} from '../support/http.mjs';

const HISTORY_SIZE = 5;

const [plain, accepted] = useServers(
  { vars: { HISTORY_SIZE: String(HISTORY_SIZE) } },
  { vars: { PUBLISH_ACK: 'accepted' } },
);

describe('/ping fan-out', () => {
  const LISTENERS = 5;
  const PINGS = 20;

  test('/ping with nobody listening still answers 200 with listeners 0', async () => {
    await waitForListeners(plain.url, 'default', 0, 10_000);
    await ping(plain.url, { method: 'POST', listeners: 0 });
  });

  test(`${LISTENERS} concurrent listeners each receive all ${PINGS} pings, in order`, async () => {
    await waitForListeners(plain.url, 'default', 0, 10_000); // nobody else is counted on default
    const streams = await Promise.all(Array.from({ length: LISTENERS }, () => listen(plain.url, '/listen')));
    for (const s of streams) assert.equal(s.status, 200);
    await waitForListeners(plain.url, 'default', LISTENERS);

    const before = await stats(plain.url, 'default');
    const ids = [];
    for (let i = 0; i < PINGS; i += 1) {
      const method = i % 2 === 0 ? 'GET' : 'POST';
      const r = await ping(plain.url, { method });
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

    const after = await stats(plain.url, 'default');
    assert.equal(after.channel, 'default');
    assert.equal(after.listeners, LISTENERS);
    assert.equal(after.published - before.published, PINGS, 'published counter');
    assert.equal(after.delivered - before.delivered, PINGS * LISTENERS, 'delivered counter');
    assert.equal(after.lastId, ids.at(-1), 'lastId');
  });
});

describe('channels', () => {
  test('two channels do not see each other\'s events (nor does /listen)', async () => {
    const a = freshChannel('iso-a');
    const b = freshChannel('iso-b');
    const onA = await listenOn(plain.url, a);
    const onB = await listenOn(plain.url, b);
    const onDefault = await listen(plain.url, '/listen');
    assert.equal(onDefault.status, 200);

    const sentA = [];
    const sentB = [];
    for (let i = 0; i < 4; i += 1) {
      const ra = assertPublished(await publishJson(plain.url, a, { data: `for-a-${i}` }), 1, `publish ${i} on a`);
      sentA.push([ra.id, `for-a-${i}`]);
      const rb = assertPublished(await publishJson(plain.url, b, { data: `for-b-${i}`, event: 'x' }), 1, `publish ${i} on b`);
      sentB.push([rb.id, `for-b-${i}`]);
    }
    await onA.waitFor(4);
    await onB.waitFor(4);
    // A little longer, so that a misrouted event would have had time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(onA.events.map((e) => [e.idField, e.data]), sentA);
    assert.deepEqual(onB.events.map((e) => [e.idField, e.data]), sentB);
    assert.ok(onA.events.every((e) => e.type === 'message'));
    assert.ok(onB.events.every((e) => e.type === 'x'));
    assert.deepEqual(onDefault.events, [], '/listen (channel default) got events of other channels');

    // Ids are per channel: each channel counts its own.
    const sa = await stats(plain.url, a);
    const sb = await stats(plain.url, b);
    assert.equal(sa.published, 4);
    assert.equal(sb.published, 4);
    assert.equal(sa.lastId, sentA.at(-1)[0]);
    assert.equal(sb.lastId, sentB.at(-1)[0]);
  });

  test('the answer counts the listeners the event was written to', async () => {
    const channel = freshChannel('count');
    assertPublished(await publishJson(plain.url, channel, { data: 'nobody' }), 0, 'no listener');
    const one = await listenOn(plain.url, channel, 1);
    const two = await listenOn(plain.url, channel, 2);
    const { id } = assertPublished(await publish(plain.url, channel, { body: 'both', contentType: 'text/plain' }), 2, 'two listeners');
    for (const s of [one, two]) {
      const e = await s.nextEvent(5000);
      assert.deepEqual([e.data, e.idField], ['both', id]);
    }
  });
});

describe('batching', () => {
  const LISTENERS = 5;
  const EVENTS = 200;
  const IN_FLIGHT = 16;

  /** What a listener must see for a burst: [id, data] of every event, in id order. */
  const expectedStream = (ids) => ids.map((id, i) => [id, `e${i + 1}`]).sort((a, b) => Number(a[0]) - Number(b[0]));
  const seen = (events) => events.map((e) => [e.idField, e.data]);

  test(`a burst of ${EVENTS} publishes, ${IN_FLIGHT} in flight, cuts none of ${LISTENERS} listeners`, { timeout: 60_000 }, async () => {
    const channel = freshChannel('burst');
    const listeners = [];
    for (let i = 0; i < LISTENERS; i += 1) listeners.push(await listen(plain.url, `/channels/${channel}/events`));
    await waitForListeners(plain.url, channel, LISTENERS);

    const expected = expectedStream(await publishBurst(plain.url, channel, EVENTS, IN_FLIGHT));
    for (const [n, l] of listeners.entries()) {
      const events = await l.waitFor(EVENTS, 15_000);
      assert.deepEqual(seen(events), expected, `listener ${n}: every event once, in id order`);
      assert.equal(l.ended, false, `listener ${n} was cut`);
    }
    const s = await stats(plain.url, channel);
    assert.equal(s.droppedSlow, 0, JSON.stringify(s));
    assert.equal(s.listeners, LISTENERS);
    assert.equal(s.delivered, LISTENERS * EVENTS);
  });

  test('PUBLISH_ACK=accepted: answers carry ids, and a resume finds every accepted event in history', { timeout: 60_000 }, async () => {
    const channel = freshChannel('accepted');
    const live = await listen(accepted.url, `/channels/${channel}/events`);
    await waitForListeners(accepted.url, channel, 1);
    const expected = expectedStream(await publishBurst(accepted.url, channel, 50, 4));
    assert.deepEqual(seen(await live.waitFor(50, 10_000)), expected);
    // Right after the last answer, a resume from the start gets all 50 from history.
    const resumed = await listen(accepted.url, `/channels/${channel}/events`, { headers: { 'last-event-id': '0' } });
    assert.deepEqual(seen(await resumed.waitFor(50, 10_000)), expected);
    assert.equal((await stats(accepted.url, channel)).historyLength, 50);
  });
});

describe('stats', () => {
  test('stats add up after a known sequence', async (t) => {
    const channel = freshChannel('stats');
    const expectStats = async (want, what) => {
      const r = await request(`${plain.url}/channels/${channel}`);
      assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
      const s = r.json;
      const got = Object.fromEntries(Object.keys(want).map((k) => [k, s[k]]));
      assert.deepEqual(got, want, `${what}: ${r.text}`);
      return s;
    };
    const zero = { channel, listeners: 0, published: 0, delivered: 0, droppedSlow: 0, lastId: null, historyLength: 0 };
    await expectStats(zero, 'a channel never used');

    // Two events with nobody listening.
    const ids = [];
    for (const data of ['p1', 'p2']) ids.push(assertPublished(await publishJson(plain.url, channel, { data }), 0, data).id);
    await expectStats({ ...zero, published: 2, lastId: ids[1], historyLength: 2 }, 'after 2 publishes, no listener');

    // Two listeners, four events: history is capped at HISTORY_SIZE.
    const fast = [await listenOn(plain.url, channel, 1), await listenOn(plain.url, channel, 2)];
    for (const data of ['q1', 'q2', 'q3', 'q4']) ids.push(assertPublished(await publishJson(plain.url, channel, { data }), 2, data).id);
    let published = 6;
    let delivered = 8;
    await expectStats({ ...zero, listeners: 2, published, delivered, lastId: ids.at(-1), historyLength: HISTORY_SIZE },
      'after 4 publishes to 2 listeners');

    // A third listener that stops reading: 32 KiB events until its queue is full and it is
    // dropped as slow (the two others read everything).
    const slow = await openRawListener(plain.url, `/channels/${channel}/events`);
    assert.match(slow.statusLine, /^HTTP\/1\.1 200/, slow.statusLine);
    await waitForListeners(plain.url, channel, 3);
    const EVENT_BYTES = 32 * 1024;
    const MAX_EVENTS = 600; // bounded (~20 MB)
    // One event per flush: the next is published once the fast listeners have the last,
    // so the write that finds the stuck queue full holds exactly one event (with two in
    // one flush, both would count as not delivered to it).
    const BATCH = 1;
    let big = 0;
    let dropped = false;
    while (!dropped && big < MAX_EVENTS) {
      for (let i = 0; i < BATCH && !dropped; i += 1) {
        big += 1;
        const r = await publish(plain.url, channel, { body: `${big}:`.padEnd(EVENT_BYTES, 'x'), contentType: 'text/plain' });
        assert.equal(r.status, 200, `big publish #${big}: ${r.status} ${r.text}`);
        assert.ok(r.json.listeners === 3 || r.json.listeners === 2, `big publish #${big}: ${r.text}`);
        ids.push(r.json.id);
        published += 1;
        delivered += r.json.listeners;
        dropped = r.json.listeners === 2;
      }
      for (const s of fast) await s.waitFor(published - 2, 15_000);
    }
    assert.ok(dropped, `the listener that does not read was still counted after ${big} events of ${EVENT_BYTES} bytes`);
    t.diagnostic(`the stuck listener was dropped after ${big} events of ${EVENT_BYTES} bytes`);
    // A publish answers how many listeners its event is going to; the flush that follows
    // found the stuck listener's queue full and cut it instead of writing: that one event
    // reached one listener fewer than its answer said (the cut one gets it from history).
    delivered -= 1;

    // One more after the drop.
    ids.push(assertPublished(await publishJson(plain.url, channel, { data: 'last' }), 2, 'last').id);
    published += 1;
    delivered += 2;
    await expectStats({ ...zero, listeners: 2, published, delivered, droppedSlow: 1, lastId: ids.at(-1), historyLength: HISTORY_SIZE },
      'after the slow listener was dropped');

    // What the fast listeners got agrees with the counters.
    for (const [n, s] of fast.entries()) {
      const events = await s.waitFor(published - 2, 15_000);
      assert.deepEqual(events.map((e) => e.idField), ids.slice(2), `fast listener ${n}: every id, in order`);
    }
    for (let i = 1; i < ids.length; i += 1) assert.ok(idLess(ids[i - 1], ids[i]), `ids increase: ${ids[i - 1]} then ${ids[i]}`);
  });
});
