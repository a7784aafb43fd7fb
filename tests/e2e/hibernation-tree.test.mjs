// A channel spread over a tree of objects, with objects that sleep (HIBERNATE=1): a node
// takes its events from its parent over a socket the parent opens to it and the node
// accepts with the hibernation API, so a node whose listeners' seats all sleep (the
// entry Worker holds their streams) sleeps too, between events. Only the objects that
// feed children stay awake, holding those sockets' other ends.
//
// One server: LISTENERS_PER_OBJECT 2 and FANOUT 2, so that a few listeners spread over
// the root, a region head and the nodes below it. No reload while the test waits.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE_MS, NO_RELOAD, startServer } from '../support/server.mjs';
import { listen } from '../support/sse.mjs';
import {
  closeOpened,
  freshChannel,
  publishEvent,
  request,
  sleep,
  stats,
  waitForListeners,
} from '../support/http.mjs';

const RETRY_MS = 1500;

let server;
before(async () => {
  server = await startServer({
    vars: {
      HIBERNATE: '1',
      HEARTBEAT_SECONDS: '1',
      RETRY_MS: String(RETRY_MS),
      LISTENERS_PER_OBJECT: '2',
      FANOUT: '2',
    },
    env: NO_RELOAD,
  });
}, { timeout: 120_000 });
after(async () => {
  await closeOpened();
  await server?.stop();
}, { timeout: 30_000 });

test('idle nodes of a tree sleep while their listeners stay connected; the next event wakes them and reaches everyone once',
  { timeout: 90_000 }, async (t) => {
    const base = server.url;
    const channel = freshChannel('sleepy-tree');
    const N = 8;
    const listeners = [];
    for (let i = 0; i < N; i += 1) {
      const stream = await listen(base, `/channels/${channel}/events`, { retryMs: RETRY_MS });
      listeners.push({ stream, node: stream.headers.get('sse-node') });
    }
    const nodes = [...new Set(listeners.map((l) => l.node))];
    const s0 = await waitForListeners(base, channel, N);
    t.diagnostic(`${N} listeners on ${nodes.join(' ')}; ${JSON.stringify(s0)}`);
    assert.ok(nodes.length >= 3, `spread over the root and nodes below it: ${nodes}`);
    assert.equal(s0.sleeping, N, `every seat is on a socket: ${JSON.stringify(s0)}`);

    // One event while everything is awake.
    const first = await publishEvent(base, channel, { data: 'first' });
    for (const { stream } of listeners) await stream.waitFor(1, 10_000);
    const before = await stats(base, channel);

    // Nothing is sent to the channel for a while; the Worker keeps the streams alive.
    await sleep(IDLE_MS);
    for (const [i, { stream }] of listeners.entries()) {
      assert.equal(stream.ended, false, `listener ${i} on ${listeners[i].node} ended meanwhile (${stream.endReason})`);
    }

    // The next event wakes the objects that slept: each counts a start.
    const second = await publishEvent(base, channel, { data: 'second' });
    for (const { stream } of listeners) await stream.waitFor(2, 10_000);
    await sleep(300); // would a duplicate arrive?
    const afterIdle = await stats(base, channel);
    t.diagnostic(`starts ${before.starts} -> ${afterIdle.starts} over ${afterIdle.objects} objects`);
    const woke = afterIdle.starts - before.starts;
    // The root feeds a child (it holds that socket's end): it stays awake; the nodes that
    // only hold listeners sleep and wake.
    const leaves = nodes.filter((n) => n !== 'root' && !nodes.some((m) => m.startsWith(`${n}.`)));
    t.diagnostic(`nodes serving only listeners: ${leaves.join(' ')}; objects that woke: ${woke}`);
    assert.ok(leaves.length >= 1, `a node below serves only listeners: ${nodes}`);
    assert.ok(woke >= leaves.length,
      `every node serving only listeners slept and woke for the next event (${leaves.join(' ')}; starts ${before.starts} -> ${afterIdle.starts})`);
    assert.ok(woke <= afterIdle.objects, `at most every object woke once: ${woke}`);

    for (const [i, { stream, node }] of listeners.entries()) {
      assert.deepEqual(stream.events.map((e) => [e.idField, e.data]),
        [[first.id, 'first'], [second.id, 'second']], `listener ${i} on ${node}: each event once`);
      assert.equal(stream.retries.length, 1, `listener ${i}: one stream, no reconnect`);
    }
    assert.equal(afterIdle.listeners, N);
    assert.equal(afterIdle.sleeping, N);
    assert.equal(afterIdle.objects, before.objects, 'the same objects serve the channel');
    assert.equal(afterIdle.delivered, 2 * N, `every delivery counted once, across the sleep: ${JSON.stringify(afterIdle)}`);

    // A listener that leaves a sleeping node is let go there, and counted.
    await sleep(IDLE_MS);
    await listeners[N - 1].stream.close();
    const s2 = await waitForListeners(base, channel, N - 1);
    assert.equal(s2.droppedGone, 1, JSON.stringify(s2));
    const third = await publishEvent(base, channel, { data: 'third' });
    const staying = listeners.slice(0, N - 1);
    for (const { stream } of staying) {
      await stream.waitFor(3, 10_000);
      assert.equal(stream.events.at(-1).idField, third.id);
    }
    const s3 = await stats(base, channel);
    assert.equal(s3.delivered, 2 * N + (N - 1), `deliveries counted once across the sleeps: ${JSON.stringify(s3)}`);

    // The root restarts alone (the test build's fault) while the nodes below sleep: the
    // children it fed ask to be fed again, its own listeners' streams attach again, and
    // every stream goes on over the same connection.
    const restart = await request(`${base}/channels/${channel}/events`, {
      method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'sse-edge-test:restart',
    });
    assert.equal(restart.status, 503, `the restart fault answers 503 (is build/ a test build?): ${restart.status}`);
    const fourth = await publishEvent(base, channel, { data: 'fourth' });
    for (const [i, { stream, node }] of staying.entries()) {
      await stream.waitFor(4, 10_000);
      await sleep(100);
      assert.deepEqual(stream.events.map((e) => e.data), ['first', 'second', 'third', 'fourth'],
        `listener ${i} on ${node}: every event once, in order, across the root's restart`);
      assert.equal(stream.events.at(-1).idField, fourth.id);
      assert.equal(stream.ended, false, `listener ${i}: the same stream`);
    }
  });
