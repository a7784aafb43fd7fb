// Listeners that leave, stop reading or vanish (README "Slow and vanished listeners"):
// the channel stops counting them, and the others keep getting every event. How a cut
// listener catches up again is in listening-and-resume.test.mjs.
//
// One server, HEARTBEAT_SECONDS 1: gone or stuck listeners are found within about a second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { listen } from '../support/sse.mjs';
import {
  assertDecimalId,
  freshChannel,
  openRawListener,
  ping,
  pollUntil,
  publish,
  publishAll,
  publishJson,
  spawnListeners,
  stats,
  waitForListeners,
} from '../support/http.mjs';

const RETRY_MS = 1500;

const [server] = useServers({ vars: { HEARTBEAT_SECONDS: '1', RETRY_MS: String(RETRY_MS) } });

test('a listener that disconnects stops being counted (found by heartbeats, no publishing)', async () => {
  await waitForListeners(server.url, 'default', 0, 10_000); // the listeners of earlier tests are gone
  const stay = await listen(server.url, '/listen');
  const leave = await listen(server.url, '/listen');
  await waitForListeners(server.url, 'default', 2);

  await leave.close();
  // Only read-only polling here: the heartbeat must expose the gone client.
  const started = Date.now();
  await waitForListeners(server.url, 'default', 1, 10_000);
  const took = Date.now() - started;
  assert.ok(took <= 10_000, `took ${took} ms`);

  // The one that stayed is unaffected.
  const { id } = await ping(server.url, { listeners: 1 });
  const e = await stay.nextEvent(5000);
  assert.deepEqual([e.data, e.idField], ['pong', id]);
  assert.equal(stay.ended, false);
});

test('a listener that stops reading is dropped; the others still get every event', async (t) => {
  const channel = freshChannel('slow');
  const FAST = 3;
  const EVENT_BYTES = 32 * 1024; // under MAX_BODY_BYTES (64 KiB)
  const MAX_EVENTS = 600; // ~20 MB in all: bounded; ~250 (8 MB) were needed here
  const BATCH = 4; // below QUEUE_CAPACITY (5), so the fast listeners never fall behind

  const fast = await Promise.all(Array.from({ length: FAST }, () => listen(server.url, `/channels/${channel}/events`)));
  const slow = await openRawListener(server.url, `/channels/${channel}/events`);
  assert.match(slow.statusLine, /^HTTP\/1\.1 200/, slow.statusLine);
  await waitForListeners(server.url, channel, FAST + 1);

  const ids = [];
  let dropped = false;
  let published = 0;
  while (published < MAX_EVENTS && !dropped) {
    for (let i = 0; i < BATCH; i += 1) {
      const n = published + 1;
      const body = `${String(n).padStart(6, '0')}:${'x'.repeat(EVENT_BYTES - 7)}`;
      const r = await publish(server.url, channel, { body, contentType: 'text/plain' });
      assert.equal(r.status, 200, `publish #${n}: ${r.status} ${r.text}`);
      assertDecimalId(r.json?.id, `publish #${n} id`);
      ids.push(r.json.id);
      published = n;
      if (r.json.listeners === FAST) dropped = true;
    }
    // Let the fast listeners catch up before the next batch.
    for (const s of fast) await s.waitFor(published, 15_000);
    if (!dropped) dropped = (await stats(server.url, channel)).listeners === FAST;
  }
  assert.ok(dropped, `the listener that does not read was still counted after ${published} events of ${EVENT_BYTES} bytes`);
  t.diagnostic(`the stuck listener was dropped after ${published} events of ${EVENT_BYTES} bytes`);

  // The stuck listener is gone from the count (and stays gone) ...
  const s1 = await waitForListeners(server.url, channel, FAST, 10_000);
  assert.ok(s1.droppedSlow >= 1, `droppedSlow: ${JSON.stringify(s1)}`);

  // ... while the others keep receiving everything, in order.
  for (let i = 0; i < 3; i += 1) {
    const r = await publishJson(server.url, channel, { data: `after-${i}` });
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

test('vanished clients are dropped within one heartbeat interval; a live one gets heartbeats meanwhile', { timeout: 60_000 },
  async (t) => {
    const channel = freshChannel('vanish');
    const live = await listen(server.url, `/channels/${channel}/events`, { retryMs: RETRY_MS });
    const { child, ready } = spawnListeners(`${server.url}/channels/${channel}/events`, 3);
    const sockets = [];
    try {
      await ready;
      // Two more on raw sockets in this process: one reading, one that stopped reading.
      for (const pause of [false, true]) {
        const raw = await openRawListener(server.url, `/channels/${channel}/events`);
        if (!pause) raw.drainUntilEnd(60_000);
        sockets.push(raw);
      }
      await waitForListeners(server.url, channel, 6, 10_000);
      const commentsBefore = live.comments;

      // Vanish without a clean close: SIGKILL the child, reset the sockets.
      const killedAt = Date.now();
      child.kill('SIGKILL');
      for (const raw of sockets) raw.destroy();
      // One interval (1 s), plus 750 ms for the 100 ms polling and a loaded machine.
      const s = await pollUntil(() => stats(server.url, channel), (x) => x.listeners === 1, {
        timeoutMs: 1_750,
        intervalMs: 100,
        what: 'listeners to drop to 1 (the live one)',
      });
      const droppedMs = Date.now() - killedAt;
      t.diagnostic(`listeners 6 -> 1 in ${droppedMs} ms after the kill (heartbeat 1 s); stats ${JSON.stringify(s)}`);

      // The live listener is unharmed and got heartbeats all along.
      await live.waitForComments(commentsBefore + 2, 5_000);
      assert.ok(live.commentLines.every((c) => c === ' keep-alive'), JSON.stringify(live.commentLines));
      assert.match(live.text, /\n\n: keep-alive\n\n/);
      const [p] = await publishAll(server.url, channel, ['still-here']);
      const e = await live.waitForEvent((x) => x.data === 'still-here', 5_000);
      assert.equal(e.lastEventId, p.id);
      assert.equal(live.ended, false);
      assert.equal((await stats(server.url, channel)).listeners, 1);
    } finally {
      child.kill('SIGKILL');
      for (const raw of sockets) raw.destroy();
    }
  });
