// Objects that sleep between events (HIBERNATE=1): the entry Worker
// holds each listener's stream and is fed by the object over a WebSocket the object
// accepted with the hibernation API. workerd evicts an object from memory after about
// 10 s without work while its listeners stay connected; the next publish (or alarm)
// starts a fresh instance, which rebuilds its seats from its sockets and delivers.
// Here the Worker, not the object, writes the keep-alives, judges the bounded queue and
// cuts clients that stopped reading or went away (closing the socket with 4000 slow or
// 4001 gone, after which the object lets the seat go).
//
// Servers (every one sets HIBERNATE=1; at most two run at a time):
//   MAIN  HEARTBEAT_SECONDS 1, RETRY_MS 1500, big bodies for the slow reader, the hub with
//         anonymous subscribers and the subscriptions API; eviction, slow and vanished
//         listeners, a token that expires while the hub sleeps. One object per channel
//         (LISTENERS_PER_OBJECT pinned), so that `starts` says whether THAT object slept.
//   TREE  LISTENERS_PER_OBJECT 2, FANOUT 2, MAX_LISTENERS 7: started by its test, which
//         runs beside MAIN's two waiting tests and stops it again.
//   RESTART  started, stopped and started again on the same port and state by its test,
//         once the others are done. Its tree is what the run's settings make it
//         (SSE_EDGE_TEST_VARS may force one).
//
// No server here reloads when files change under it (wrangler watches src/ and web/):
// chokidar polls every 10 min instead, so that an edit elsewhere does not cut the streams
// these tests keep open for a long time.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { IDLE_MS, NO_RELOAD, startServer } from '../support/server.mjs';
import { listen, openStream, parseAll, ResumingListener } from '../support/sse.mjs';
import {
  assertError,
  closeLater,
  closeOpened,
  freshChannel,
  openRawListener,
  pollUntil,
  publish,
  publishEvent,
  request,
  sleep,
  stats,
  waitForListeners,
} from '../support/http.mjs';
import {
  HUB_PATH,
  HUB_SECRETS,
  epoch,
  freshTopic,
  publisherToken,
  subscribe,
  subscriberToken,
} from '../support/mercure.mjs';

const RETRY_MS = 1500;
const BIG_BODY = 300_000;
/** How long a Worker goes straight to the region head the root sent it to (contract/walk.rs). */
const HEAD_MEMORY_MS = 10_000;

/** MAIN's MAX_LISTENERS: no test there needs more listeners (subscribers) on one channel (the hub). */
const MAIN_MAX_LISTENERS = 5;
const MAIN_VARS = {
  HIBERNATE: '1',
  HEARTBEAT_SECONDS: '1',
  RETRY_MS: String(RETRY_MS),
  QUEUE_CAPACITY: '5',
  MAX_BODY_BYTES: String(BIG_BODY),
  LISTENERS_PER_OBJECT: '1000',
  FANOUT: '32',
  MAX_LISTENERS: String(MAIN_MAX_LISTENERS),
  MERCURE_ANONYMOUS: '1',
  MERCURE_SUBSCRIPTIONS: '1',
};

let main;
before(async () => {
  main = await startServer({ vars: MAIN_VARS, secrets: HUB_SECRETS, env: NO_RELOAD });
}, { timeout: 120_000 });
after(async () => {
  await closeOpened();
  await main?.stop();
}, { timeout: 30_000 });

/** Closes what a test opened (tests here may run side by side, so no global afterEach). */
async function closeAll(things) {
  await Promise.all(things.map(async (x) => {
    try {
      await (x.close ? x.close() : x.destroy());
    } catch {
      // already closed
    }
  }));
}

/**
 * Notes what in the server's log would explain a failure without being the test's subject:
 * wrangler reloading the Worker (which cuts every stream), uncaught errors in the Worker or
 * an object.
 */
function noteServerLog(t, server, what = 'server') {
  const log = server.output();
  const reloads = (log.match(/Reloading local server|Local server updated/g) ?? []).length;
  if (reloads > 0) t.diagnostic(`${what}: wrangler reloaded the Worker ${reloads} time(s) so far: streams cut by that are not the product's doing`);
  const uncaught = log.split('\n').filter((line) => /Uncaught|panicked/.test(line));
  if (uncaught.length > 0) t.diagnostic(`${what}: ${uncaught.length} uncaught error(s) in the log so far, the last: ${uncaught.at(-1).trim()}`);
}

const hubStats = async (base) => {
  const r = await request(`${base}${HUB_PATH}/stats`, { headers: { authorization: `Bearer ${publisherToken()}` } });
  assert.equal(r.status, 200, `hub stats: ${r.status} ${r.text}`);
  return r.json;
};

const next = (id, by = 1n) => String(BigInt(id) + by);

// ---------------------------------------------------------------------------------------
// Three tests that wait share the wait, side by side: the first two need their objects
// left alone for a while (the channels' objects and the hub's are different objects, and
// neither test touches the other's), the third runs on a server of its own.

describe('tests that wait, side by side', { concurrency: 3 }, () => {
  test('20 listeners over 4 channels: every object is evicted, the next publish wakes a fresh one that delivers to all, exactly once',
    { timeout: 90_000 }, async (t) => {
      const base = main.url;
      const CHANNELS = 4;
      const PER_CHANNEL = 5;
      const owned = [];
      try {
        const channels = Array.from({ length: CHANNELS }, () => freshChannel('sleepy'));
        const streams = new Map();
        for (const channel of channels) {
          const list = [];
          for (let i = 0; i < PER_CHANNEL; i += 1) {
            const s = await listen(base, `/channels/${channel}/events`, { retryMs: RETRY_MS });
            owned.push(s);
            list.push(s);
          }
          streams.set(channel, list);
        }
        for (const channel of channels) {
          const s = await waitForListeners(base, channel, PER_CHANNEL);
          assert.equal(s.sleeping, PER_CHANNEL, `every seat is on a hibernatable socket: ${JSON.stringify(s)}`);
        }

        // One event each, while the objects are awake.
        const first = new Map();
        for (const channel of channels) {
          const p = await publishEvent(base, channel, { data: `first ${channel}` }, { listeners: PER_CHANNEL });
          first.set(channel, p.id);
        }
        for (const channel of channels) {
          for (const s of streams.get(channel)) await s.waitFor(1, 10_000);
        }
        const startsBefore = new Map();
        for (const channel of channels) {
          const s = await stats(base, channel);
          assert.equal(s.listeners, PER_CHANNEL);
          assert.equal(s.sleeping, PER_CHANNEL, JSON.stringify(s));
          assert.equal(s.objects, 1, `one object per channel here: ${JSON.stringify(s)}`);
          assert.ok(Number.isInteger(s.starts) && s.starts >= 1, `starts: ${JSON.stringify(s)}`);
          startsBefore.set(channel, s.starts);
        }

        // Leave every channel's object alone: nothing is sent to any of them.
        const commentsBefore = [...streams.values()].flat().map((s) => s.comments);
        const idleFrom = Date.now();
        await sleep(IDLE_MS);
        t.diagnostic(`left the channels' objects alone for ${Date.now() - idleFrom} ms`);

        // The Worker kept every stream alive meanwhile, with its own keep-alives.
        [...streams.values()].flat().forEach((s, i) => {
          assert.equal(s.ended, false, `listener ${i} ended while its object slept (${s.endReason})`);
          const during = s.comments - commentsBefore[i];
          assert.ok(during >= IDLE_MS / 1000 / 2, `listener ${i}: ${during} keep-alives in ${IDLE_MS} ms with HEARTBEAT_SECONDS 1`);
          assert.ok(s.commentLines.every((c) => c === ' keep-alive'), `listener ${i}: ${JSON.stringify(s.commentLines.slice(-3))}`);
        });

        // The next publish wakes each object; the fresh instance knows all five seats.
        const second = new Map();
        for (const channel of channels) {
          const p = await publishEvent(base, channel, { data: `second ${channel}` });
          assert.equal(p.listeners, PER_CHANNEL, `${channel}: the woken object counts the seats it rebuilt from its sockets`);
          assert.equal(p.id, next(first.get(channel)), `${channel}: ids go on from the stored last id`);
          second.set(channel, p.id);
        }
        for (const channel of channels) {
          for (const s of streams.get(channel)) await s.waitFor(2, 10_000);
        }
        await sleep(300); // would a duplicate arrive?
        for (const channel of channels) {
          for (const [i, s] of streams.get(channel).entries()) {
            assert.deepEqual(s.events.map((e) => [e.idField, e.data]),
              [[first.get(channel), `first ${channel}`], [second.get(channel), `second ${channel}`]],
              `${channel} listener ${i}: each event once, ids consecutive`);
            assert.equal(s.ended, false, `${channel} listener ${i}: still the same stream`);
            assert.equal(s.retries.length, 1, `${channel} listener ${i}: one retry line, at the start (no second stream)`);
          }
          const s = await stats(base, channel);
          t.diagnostic(`${channel}: starts ${startsBefore.get(channel)} -> ${s.starts}; ${JSON.stringify(s)}`);
          assert.ok(s.starts > startsBefore.get(channel),
            `${channel}: the object should have been evicted and started again: starts ${startsBefore.get(channel)} -> ${s.starts}`);
          assert.equal(s.listeners, PER_CHANNEL, JSON.stringify(s));
          assert.equal(s.sleeping, PER_CHANNEL, JSON.stringify(s));
          assert.equal(s.lastId, second.get(channel));
          // The fresh instance goes on counting from what the one that slept counted.
          assert.equal(s.published, 2, `published across the sleep: ${JSON.stringify(s)}`);
          assert.equal(s.delivered, 2 * PER_CHANNEL, `delivered across the sleep: ${JSON.stringify(s)}`);
        }
      } finally {
        await closeAll(owned);
        noteServerLog(t, main, 'MAIN');
      }
    });

  test('a hub subscriber\'s token expires while the hub\'s object sleeps: the alarm ends its stream on time',
    { timeout: 90_000 }, async (t) => {
      const base = main.url;
      const topic = freshTopic('expiring');
      const exp = epoch(18);
      const stream = await subscribe(base, [['topic', topic]], { token: subscriberToken([topic], { exp }) });
      const subscribedAt = Date.now();
      try {
        assert.equal(stream.status, 200);
        const before = await hubStats(base);
        t.diagnostic(`hub stats after subscribing: ${JSON.stringify(before)}`);
        assert.ok(Number.isInteger(before.starts) && before.starts >= 1, `starts: ${JSON.stringify(before)}`);
        assert.ok(before.subscribers >= 1, JSON.stringify(before));

        // Nothing is sent to the hub from here on; the stream must end at `exp`.
        const reason = await stream.waitForEnd(exp * 1000 - Date.now() + 10_000);
        const endedAt = Date.now();
        const late = endedAt - exp * 1000;
        t.diagnostic(`the stream ended ${late} ms after exp (${endedAt - subscribedAt} ms after subscribing), ${reason}; ` +
          `${stream.comments} keep-alives meanwhile`);
        assert.equal(reason, 'end', `the stream should end cleanly: ${stream.error?.message}`);
        assert.ok(late >= -1000, `the stream ended ${-late} ms before the token expired`);
        assert.ok(late <= 5000, `the stream ended ${late} ms after the token expired`);
        assert.deepEqual(stream.events, [], 'nothing was published');
        assert.ok(stream.comments >= 5, `the Worker kept the stream alive: ${stream.comments} keep-alives`);

        const after = await hubStats(base);
        t.diagnostic(`hub stats after the end: ${JSON.stringify(after)}`);
        assert.ok(after.starts > before.starts,
          `the hub's object should have slept before the expiry and been woken by its alarm: starts ${before.starts} -> ${after.starts}`);
        assert.equal(after.subscribers, before.subscribers - 1, `the expired subscriber is no longer counted: ${JSON.stringify(after)}`);
      } finally {
        await stream.close();
        noteServerLog(t, main, 'MAIN');
      }
    });

  test('a tree of objects, unchanged: 7 listeners over several objects get every event once; MAX_LISTENERS 7 over the tree refuses the 8th with 503',
    { timeout: 120_000 }, async (t) => {
      const MAX = 7;
      const tree = await startServer({
        vars: {
          HIBERNATE: '1',
          HEARTBEAT_SECONDS: '1',
          RETRY_MS: String(RETRY_MS),
          LISTENERS_PER_OBJECT: '2',
          FANOUT: '2',
          MAX_LISTENERS: String(MAX),
        },
        env: NO_RELOAD,
      });
      const owned = [];
      try {
        const base = tree.url;
        const channel = freshChannel('tree');
        const listeners = [];
        for (let i = 0; i < MAX; i += 1) {
          const s = await listen(base, `/channels/${channel}/events`, { retryMs: RETRY_MS });
          owned.push(s);
          listeners.push({ stream: s, node: s.headers.get('sse-node') });
        }
        const lastOpenedAt = Date.now();
        const nodes = new Set(listeners.map((l) => l.node));
        const s0 = await waitForListeners(base, channel, MAX);
        t.diagnostic(`${MAX} listeners on nodes ${[...nodes].join(' ')}; ${JSON.stringify(s0)}`);
        assert.ok(s0.objects > 1, `spread over several objects: ${JSON.stringify(s0)}`);
        assert.ok(nodes.size > 1, `served by several nodes: ${[...nodes]}`);
        assert.equal(s0.sleeping, MAX, `every seat, over the tree, is on a socket: ${JSON.stringify(s0)}`);

        // Events, one by one and as a batch. (The publish answer's count is the root's,
        // from what its children report at their keep-alives: it may lag the joins by one,
        // with or without hibernation; it is checked further down.)
        const sent = [];
        for (let i = 0; i < 3; i += 1) {
          const data = `single-${i}`;
          sent.push({ id: (await publishEvent(base, channel, { data })).id, data });
        }
        const datas = ['b0', 'b1', 'b2'];
        const r = await publish(base, channel, { body: datas.map((data) => JSON.stringify({ data })).join('\n'), contentType: 'application/x-ndjson' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.count, 3);
        datas.forEach((data, i) => sent.push({ id: next(r.json.firstId, BigInt(i)), data }));
        for (let i = 1; i < sent.length; i += 1) assert.equal(sent[i].id, next(sent[i - 1].id), 'consecutive ids');
        for (const { stream } of listeners) await stream.waitFor(sent.length, 10_000);
        await sleep(300);
        for (const [i, { stream, node }] of listeners.entries()) {
          assert.deepEqual(stream.events.map((e) => ({ id: e.idField, data: e.data })), sent, `listener ${i} on ${node}`);
          assert.equal(stream.ended, false);
        }

        // The 8th is refused, as without hibernation. The root counts what its children
        // report, and a Worker goes straight to the region head the root named for
        // HEAD_MEMORY (10 s; README "MAX_LISTENERS"): past that, the newcomer is the root's.
        await sleep(Math.max(0, lastOpenedAt + HEAD_MEMORY_MS + 500 - Date.now()));
        // (openStream: an accepted stream would not end, so its status is read without the body.)
        const refused = closeLater(await openStream(`${base}/channels/${channel}/events`));
        owned.push(refused);
        if (refused.status !== 503) {
          await sleep(500);
          t.diagnostic(`listener #${MAX + 1}: ${refused.status} from ${refused.headers.get('sse-node')}; ` +
            `stats then ${JSON.stringify(await stats(base, channel))}`);
        }
        assert.equal(refused.status, 503, `listener #${MAX + 1} should be refused: ${refused.status} ${refused.text.slice(0, 100)}`);
        assert.match(refused.headers.get('content-type') ?? '', /^text\/plain/);
        await refused.waitForEnd(5_000);
        assert.match(refused.text, /listeners/i);
        assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After');
        assert.equal((await stats(base, channel)).listeners, MAX);

        // One leaves: a place is free again.
        await listeners[MAX - 1].stream.close();
        await waitForListeners(base, channel, MAX - 1);
        // (The root frees the place once the child that held the seat reports: bounded retries.)
        const leftAt = Date.now();
        let newcomer = null;
        const tries = [];
        while (newcomer === null && Date.now() - leftAt < 12_000) {
          const s = closeLater(await openStream(`${base}/channels/${channel}/events`));
          owned.push(s);
          tries.push(s.status);
          if (s.status === 200) newcomer = s;
          else await s.close().then(() => sleep(500));
        }
        t.diagnostic(`after one left, the newcomer's tries: ${tries.join(' ')} (${Date.now() - leftAt} ms)`);
        assert.ok(newcomer, `a place is free again after one left: ${tries.join(' ')}`);
        await waitForListeners(base, channel, MAX);
        const last = await publishEvent(base, channel, { data: 'last' }, { listeners: MAX });
        const e = await newcomer.nextEvent(10_000);
        assert.deepEqual([e.idField, e.data], [last.id, 'last']);
        for (const { stream } of listeners.slice(0, MAX - 1)) {
          await stream.waitFor(sent.length + 1, 10_000);
          assert.equal(stream.events.at(-1).idField, last.id);
        }
      } finally {
        await closeAll(owned);
        noteServerLog(t, tree, 'TREE');
        await tree.stop();
      }
    });
});

// ---------------------------------------------------------------------------------------

test('a listener that stops reading is cut by the Worker; the others get everything; it resumes from history and ends with every id once',
  { timeout: 120_000 }, async (t) => {
    const base = main.url;
    const channel = freshChannel('stuck');
    const SIZE = 250_000;
    const MAX_EVENTS = 100; // 25 MB at most
    const BATCH = 4; // below QUEUE_CAPACITY (5): the fast listeners never fall behind
    const owned = [];
    try {
      const fast = [];
      for (let i = 0; i < 2; i += 1) fast.push(await listen(base, `/channels/${channel}/events`, { retryMs: RETRY_MS }));
      owned.push(...fast);
      const slow = await openRawListener(base, `/channels/${channel}/events`);
      owned.push(slow);
      assert.match(slow.statusLine, /^HTTP\/1\.1 200/, slow.statusLine);
      const s0 = await waitForListeners(base, channel, 3);
      assert.equal(s0.sleeping, 3, JSON.stringify(s0));

      const published = [];
      let cut = false;
      while (published.length < MAX_EVENTS && !cut) {
        for (let i = 0; i < BATCH; i += 1) {
          const n = published.length + 1;
          const data = `${String(n).padStart(4, '0')}:${'x'.repeat(SIZE)}`;
          const p = await publishEvent(base, channel, { data });
          published.push({ id: p.id, data });
          if (p.listeners === 2) cut = true;
        }
        for (const s of fast) await s.waitFor(published.length, 20_000);
        if (!cut) {
          const s = await stats(base, channel);
          cut = s.listeners === 2;
        }
      }
      assert.ok(cut, `the listener that does not read was still counted after ${published.length} events of ${SIZE} bytes`);

      const s1 = await waitForListeners(base, channel, 2, 10_000);
      t.diagnostic(`cut after ~${published.length} events of ${SIZE} B; stats ${JSON.stringify(s1)}`);
      assert.ok(s1.droppedSlow + s1.droppedGone >= 1, `the cut is counted (droppedSlow or droppedGone): ${JSON.stringify(s1)}`);
      assert.equal(s1.droppedSlow + s1.droppedGone, 1, `only the stuck one was cut: ${JSON.stringify(s1)}`);
      assert.equal(s1.sleeping, 2, JSON.stringify(s1));

      // The others go on receiving everything, in order, on their first stream.
      for (let i = 0; i < 3; i += 1) {
        const data = `after-${i}`;
        const p = await publishEvent(base, channel, { data }, { listeners: 2 });
        published.push({ id: p.id, data });
      }
      for (const [i, s] of fast.entries()) {
        await s.waitFor(published.length, 20_000);
        assert.deepEqual(s.events.map((e) => e.idField), published.map((p) => p.id), `fast listener ${i}: every id once, in order`);
        assert.ok(s.events.every((e, k) => e.data === published[k].data), `fast listener ${i}: data intact`);
        assert.equal(s.ended, false, `fast listener ${i} was never cut`);
      }

      // The stuck one reads again: what was queued before the cut, then the end of its stream.
      const { how } = await slow.drainUntilEnd(30_000);
      const got = parseAll([new Uint8Array(slow.body())]);
      slow.destroy();
      t.diagnostic(`the stuck listener's stream ended by ${how} after ${got.events.length} events (last id ${got.lastEventId})`);
      assert.notEqual(how, 'timeout', `the cut listener's stream must end; it had ${got.events.length} events`);
      assert.equal(got.retries[0], RETRY_MS, 'the Worker writes the retry line first');
      assert.ok(got.events.length < published.length - 3, `it was cut before the end (${got.events.length} events)`);
      assert.deepEqual(got.events.map((e) => e.idField), published.slice(0, got.events.length).map((p) => p.id),
        'before the cut: a prefix, in order');
      assert.ok(got.events.every((e, k) => e.data === published[k].data));

      // It comes back as an EventSource does, with its last id, and catches up from history.
      const again = new ResumingListener(base, `/channels/${channel}/events`,
        { retryMs: RETRY_MS, lastEventId: got.lastEventId || '0' });
      owned.push(again);
      await again.waitForEvents(published.length - got.events.length, 30_000);
      await sleep(300);
      const joined = [...got.events, ...again.events];
      assert.deepEqual(joined.map((e) => e.lastEventId), published.map((p) => p.id), `every id exactly once, in order (${again.describe()})`);
      assert.ok(joined.every((e, k) => e.data === published[k].data));
      assert.deepEqual(again.retryFailures(), []);
      assert.equal(again.connections, 1, again.describe());
      await waitForListeners(base, channel, 3);
    } finally {
      await closeAll(owned);
      noteServerLog(t, main, 'MAIN');
    }
  });

test('a vanished client\'s seat is let go (a channel\'s, and a hub subscriber\'s, whose end is announced)',
  { timeout: 60_000 }, async (t) => {
    const base = main.url;
    const owned = [];
    try {
      // A channel: one stays, one aborts its request, one's socket is destroyed.
      const channel = freshChannel('vanish');
      const stay = await listen(base, `/channels/${channel}/events`, { retryMs: RETRY_MS });
      const aborting = await listen(base, `/channels/${channel}/events`, { retryMs: RETRY_MS });
      const raw = await openRawListener(base, `/channels/${channel}/events`);
      owned.push(stay, aborting, raw);
      raw.drainUntilEnd(60_000); // reads, until destroyed below
      const s0 = await waitForListeners(base, channel, 3);
      assert.equal(s0.sleeping, 3, JSON.stringify(s0));

      const left = Date.now();
      await aborting.close();
      raw.destroy();
      const s1 = await pollUntil(() => stats(base, channel), (s) => s.listeners === 1,
        { timeoutMs: 10_000, intervalMs: 200, what: 'the two vanished listeners to be let go' });
      t.diagnostic(`listeners 3 -> 1 in ${Date.now() - left} ms; ${JSON.stringify(s1)}`);
      assert.equal(s1.droppedGone - s0.droppedGone, 2, `both counted as gone: ${JSON.stringify(s0)} -> ${JSON.stringify(s1)}`);
      assert.equal(s1.droppedSlow, s0.droppedSlow, 'neither counted as slow');
      assert.equal(s1.sleeping, 1, JSON.stringify(s1));

      const p = await publishEvent(base, channel, { data: 'still here' }, { listeners: 1 });
      const e = await stay.nextEvent(5_000);
      assert.deepEqual([e.idField, e.data], [p.id, 'still here']);
      assert.equal(stay.ended, false);

      // The hub, with the subscriptions API: the vanished subscriber's end is published.
      const watcher = await subscribe(base, [['topic', '*']], { token: subscriberToken(['*']) });
      owned.push(watcher);
      const topic = freshTopic('vanishing');
      const leaving = await subscribe(base, [['topic', topic]]);
      owned.push(leaving);
      const parsed = (e) => {
        try {
          return JSON.parse(e.data);
        } catch {
          return {};
        }
      };
      const active = await watcher.waitForEvent((e) => parsed(e).topic === topic && parsed(e).active === true, 5_000,
        'the subscription\'s active event');
      const subscriber = parsed(active).subscriber;
      assert.match(subscriber, /^urn:uuid:/);
      const hub0 = await hubStats(base);

      const gone = Date.now();
      await leaving.close();
      const inactive = await watcher.waitForEvent((e) => parsed(e).topic === topic && parsed(e).active === false, 10_000,
        'the subscription\'s inactive event');
      t.diagnostic(`the end of the vanished subscription was announced ${Date.now() - gone} ms after it left`);
      assert.equal(parsed(inactive).subscriber, subscriber);
      assert.equal(parsed(inactive).id, parsed(active).id);
      const hub1 = await pollUntil(() => hubStats(base), (s) => s.subscribers === hub0.subscribers - 1,
        { timeoutMs: 5_000, intervalMs: 200, what: 'the hub to count one subscriber less' });
      assert.ok(hub1.droppedGone >= hub0.droppedGone + 1, `counted as gone: ${JSON.stringify(hub0)} -> ${JSON.stringify(hub1)}`);
      assert.equal(watcher.ended, false);
    } finally {
      await closeAll(owned);
      noteServerLog(t, main, 'MAIN');
    }
  });

// ---------------------------------------------------------------------------------------

test('MAX_LISTENERS on one object: the 6th listener is refused with 503; the five get every event', async (t) => {
  const base = main.url;
  const channel = freshChannel('full');
  const owned = [];
  try {
    const five = [];
    for (let i = 1; i <= MAIN_MAX_LISTENERS; i += 1) {
      five.push(await listen(base, `/channels/${channel}/events`, { retryMs: RETRY_MS }));
      owned.push(five.at(-1));
    }
    await waitForListeners(base, channel, MAIN_MAX_LISTENERS);
    const r = await request(`${base}/channels/${channel}/events`);
    assertError(r, 503, /listeners/i, `listener #${MAIN_MAX_LISTENERS + 1}`);
    assert.match(r.headers.get('retry-after') ?? '', /^\d+$/, 'Retry-After');
    const s = await stats(base, channel);
    assert.equal(s.listeners, MAIN_MAX_LISTENERS, JSON.stringify(s));
    assert.equal(s.sleeping, MAIN_MAX_LISTENERS, JSON.stringify(s));
    const p = await publishEvent(base, channel, { data: 'full house' }, { listeners: MAIN_MAX_LISTENERS });
    for (const stream of five) {
      const e = await stream.nextEvent(5_000);
      assert.deepEqual([e.idField, e.data], [p.id, 'full house']);
    }
  } finally {
    await closeAll(owned);
    noteServerLog(t, main, 'MAIN');
  }
});

test('a server restart loses nothing: listeners resume with Last-Event-ID and end with every id once, in order',
  { timeout: 150_000 }, async (t) => {
    const RESTART_RETRY_MS = 500;
    const vars = { HIBERNATE: '1', HEARTBEAT_SECONDS: '1', RETRY_MS: String(RESTART_RETRY_MS) };
    const persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-hibernate-restart-'));
    let server = await startServer({ vars, persistDir, env: NO_RELOAD });
    const port = server.port;
    const owned = [];
    try {
      const channel = freshChannel('restart');
      const listeners = Array.from({ length: 3 },
        () => new ResumingListener(server.url, `/channels/${channel}/events`, { retryMs: RESTART_RETRY_MS, reconnectForMs: 60_000 }));
      owned.push(...listeners);
      await Promise.all(listeners.map((l) => l.opened));
      await waitForListeners(server.url, channel, 3);

      const sent = [];
      for (let i = 1; i <= 3; i += 1) sent.push((await publishEvent(server.url, channel, { data: `before ${i}` })).id);
      await Promise.all(listeners.map((l) => l.waitForEvents(3)));

      const stoppedAt = Date.now();
      await server.stop();
      server = await startServer({ vars, persistDir, port, env: NO_RELOAD });
      assert.equal(server.url, listeners[0].baseUrl, 'the same port');
      await pollUntil(() => stats(server.url, channel), (s) => s.listeners === 3,
        { timeoutMs: 30_000, intervalMs: 200, what: 'the three listeners to come back' });
      t.diagnostic(`restarted; the listeners were back ${Date.now() - stoppedAt} ms after the stop`);

      for (let i = 1; i <= 3; i += 1) sent.push((await publishEvent(server.url, channel, { data: `after ${i}` })).id);
      for (let i = 1; i < sent.length; i += 1) assert.equal(sent[i], next(sent[i - 1]), `ids go on across the restart: ${sent}`);
      await Promise.all(listeners.map((l) => l.waitForEvents(6, 15_000)));
      await sleep(300);
      const datas = [1, 2, 3].map((i) => `before ${i}`).concat([1, 2, 3].map((i) => `after ${i}`));
      for (const [i, l] of listeners.entries()) {
        assert.deepEqual(l.events.map((e) => e.lastEventId), sent, `listener ${i}: every id once, in order (${l.describe()})`);
        assert.deepEqual(l.events.map((e) => e.data), datas, `listener ${i}`);
        assert.ok(l.connections >= 2, `listener ${i} reconnected: ${l.describe()}`);
        assert.deepEqual(l.retryFailures(), [], `listener ${i}`);
      }
      const s = await stats(server.url, channel);
      assert.equal(s.lastId, sent.at(-1));
      assert.equal(s.sleeping, 3, JSON.stringify(s));
    } finally {
      await closeAll(owned);
      noteServerLog(t, server, 'RESTART');
      await server.stop();
      await rm(persistDir, { recursive: true, force: true }).catch(() => {});
    }
  });
