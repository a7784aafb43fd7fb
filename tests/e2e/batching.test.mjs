// Fan-out batching (issue 5): events published together reach each listener as one
// write, so a burst of concurrent publishes fills no listener's queue (QUEUE_CAPACITY 5,
// as in the seed design), and PUBLISH_ACK=accepted still keeps every event a listener
// got in history.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openStream } from '../support/sse.mjs';
import { request, stats, waitForListeners } from '../support/http.mjs';

const LISTENERS = 5;
const EVENTS = 200;
const IN_FLIGHT = 16;

let stored; // default settings: PUBLISH_ACK stored, BATCH_WINDOW_MS 0, QUEUE_CAPACITY 5
let accepted; // PUBLISH_ACK accepted
const opened = [];

before(async () => {
  [stored, accepted] = await Promise.all([startServer(), startServer({ vars: { PUBLISH_ACK: 'accepted' } })]);
}, { timeout: 120_000 });

after(async () => {
  for (const s of opened) s.close();
  await Promise.all([stored?.stop(), accepted?.stop()]);
}, { timeout: 30_000 });

async function listen(server, channel, headers = {}) {
  const stream = await openStream(`${server.url}/channels/${channel}/events`, { headers });
  opened.push(stream);
  assert.equal(stream.status, 200);
  return stream;
}

/** Publishes `count` events ("e1", "e2", ...) with `inFlight` requests at a time; returns their ids in order. */
async function publishBurst(server, channel, count, inFlight) {
  const ids = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const r = await request(`${server.url}/channels/${channel}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ data: `e${i + 1}` }),
      });
      assert.equal(r.status, 200, r.text);
      ids[i] = r.json.id;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return ids;
}

/** What a listener must see for a burst: [id, data] of every event, in id order. */
function expectedStream(ids) {
  return ids.map((id, i) => [id, `e${i + 1}`]).sort((a, b) => Number(a[0]) - Number(b[0]));
}

const seen = (events) => events.map((e) => [e.idField, e.data]);

test(`a burst of ${EVENTS} publishes, ${IN_FLIGHT} in flight, cuts none of ${LISTENERS} listeners`, { timeout: 60_000 }, async () => {
  const channel = `burst-${process.pid}`;
  const listeners = [];
  for (let i = 0; i < LISTENERS; i += 1) listeners.push(await listen(stored, channel));
  await waitForListeners(stored.url, channel, LISTENERS);

  const expected = expectedStream(await publishBurst(stored, channel, EVENTS, IN_FLIGHT));
  for (const [n, l] of listeners.entries()) {
    const events = await l.waitFor(EVENTS, 15_000);
    assert.deepEqual(seen(events), expected, `listener ${n}: every event once, in id order`);
    assert.equal(l.ended, false, `listener ${n} was cut`);
  }
  const s = await stats(stored.url, channel);
  assert.equal(s.droppedSlow, 0, JSON.stringify(s));
  assert.equal(s.listeners, LISTENERS);
  assert.equal(s.delivered, LISTENERS * EVENTS);
});

test('PUBLISH_ACK=accepted: answers carry ids, and a resume finds every accepted event in history', { timeout: 60_000 }, async () => {
  const channel = `accepted-${process.pid}`;
  const live = await listen(accepted, channel);
  await waitForListeners(accepted.url, channel, 1);
  const expected = expectedStream(await publishBurst(accepted, channel, 50, 4));
  assert.deepEqual(seen(await live.waitFor(50, 10_000)), expected);
  // Right after the last answer, a resume from the start gets all 50 from history.
  const resumed = await listen(accepted, channel, { 'last-event-id': '0' });
  assert.deepEqual(seen(await resumed.waitFor(50, 10_000)), expected);
  assert.equal((await stats(accepted.url, channel)).historyLength, 50);
});
