// Streams that end (README "Streams that end"): `POST /channels/{name}/end` ends a
// channel after its last events; every listener gets `end` (the last id) and its stream
// closes; later listens get what they missed and `end`, or 204 when they have it all;
// publishing or ending again is a 409; the ending survives the object's restart; on a
// tree every node ends its listeners' streams. After ENDED_TTL_SECONDS the channel's
// objects keep nothing and its name answers 410; IDLE_END_SECONDS ends a channel left
// without publishes.
//
// Four servers: one object per channel; a tree (one listener per object, fan-out 2);
// short lifetimes over a tree, used by the lifetime test alone (it reads every channel
// object's storage); and channels that end when idle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { assertError, closeLater, freshChannel, pollUntil, publish, publishEvent, sleep, stats } from '../support/http.mjs';
import { openStream } from '../support/sse.mjs';
import { objectDatabases, storedRows as storedRowsOf } from '../support/storage.mjs';

const TREE = { LISTENERS_PER_OBJECT: '1', FANOUT: '2' };
const SHORT = { ENDED_TTL_SECONDS: '2', GRAVE_SECONDS: '3600' };
const [server, tree, short, idling] = useServers({}, { vars: TREE }, { vars: { ...TREE, ...SHORT } }, {
  vars: { ...SHORT, IDLE_END_SECONDS: '2' },
});

const WAIT_MS = 5_000;

const endChannel = (baseUrl, channel, { body, contentType, headers } = {}) =>
  publish(baseUrl, channel, { body, contentType, headers, path: 'end' });

/** A listener on `channel` whose stream has started (200). */
async function listen(baseUrl, channel, headers = {}) {
  const stream = closeLater(await openStream(`${baseUrl}/channels/${channel}/events`, { headers }));
  assert.equal(stream.status, 200, `listen: ${stream.status}`);
  return stream;
}

/** [id, type, data] of each event a stream got. */
const triples = (stream) => stream.events.map((e) => [e.lastEventId, e.type, e.data]);

const endEvent = (last) => [last, 'end', JSON.stringify({ lastEventId: last })];

test('ending sends the last events then `end` to every listener, and closes their streams', async () => {
  const channel = freshChannel('end');
  const listeners = [await listen(server.url, channel), await listen(server.url, channel)];
  await publishEvent(server.url, channel, { data: 'first' });
  const r = await endChannel(server.url, channel, {
    body: `${JSON.stringify({ data: 'last', event: 'token' })}\n${JSON.stringify({ data: 'really last' })}\n`,
    contentType: 'application/x-ndjson',
  });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { ended: true, firstId: '2', lastId: '3', count: 2, listeners: 2 });
  for (const stream of listeners) {
    await stream.waitForEnd(WAIT_MS);
    assert.equal(stream.endReason, 'end', 'the service closed the stream');
    assert.deepEqual(triples(stream), [
      ['1', 'message', 'first'],
      ['2', 'token', 'last'],
      ['3', 'message', 'really last'],
      endEvent('3'),
    ]);
  }
  assert.equal((await stats(server.url, channel)).listeners, 0);
});

test('after the end: the whole answer and `end`, the rest from a Last-Event-ID, or 204 with everything', async () => {
  const channel = freshChannel('after-end');
  for (const data of ['a', 'b', 'c']) await publishEvent(server.url, channel, { data });
  const r = await endChannel(server.url, channel);
  assert.deepEqual(r.json, { ended: true, lastId: '3', count: 0, listeners: 0 });

  const whole = await listen(server.url, channel);
  await whole.waitForEnd(WAIT_MS);
  assert.equal(whole.headers.get('content-type'), 'text/event-stream');
  assert.deepEqual(whole.retries, [1000]);
  assert.deepEqual(triples(whole), [['1', 'message', 'a'], ['2', 'message', 'b'], ['3', 'message', 'c'], endEvent('3')]);

  const rest = await listen(server.url, channel, { 'last-event-id': '1' });
  await rest.waitForEnd(WAIT_MS);
  assert.deepEqual(triples(rest), [['2', 'message', 'b'], ['3', 'message', 'c'], endEvent('3')]);

  const byQuery = await fetch(`${server.url}/channels/${channel}/events?lastEventId=3`);
  assert.equal(byQuery.status, 204, 'everything seen: EventSource stops on 204');
  assert.equal(await byQuery.text(), '');
  const byHeader = await fetch(`${server.url}/channels/${channel}/events`, { headers: { 'last-event-id': '3' } });
  assert.equal(byHeader.status, 204);
});

test('publishing to or ending an ended channel is a 409 that says why; a bad ending ends nothing', async () => {
  const channel = freshChannel('409');
  const bad = await endChannel(server.url, channel, { body: '{"data": 1, "event": "end"}', contentType: 'application/json' });
  assertError(bad, 400, /event type "end" is reserved/, 'a last event typed end');
  const stillOpen = await publishEvent(server.url, channel, { data: 'on' });
  assert.equal(stillOpen.id, '1', 'the refused ending ended nothing');

  assert.equal((await endChannel(server.url, channel, { body: 'bye', contentType: 'text/plain' })).status, 200);
  for (const [what, r] of [
    ['a publish', await publish(server.url, channel, { body: 'late', contentType: 'text/plain' })],
    ['a batch', await publish(server.url, channel, { body: '{"data":"a"}\n', contentType: 'application/x-ndjson' })],
    ['a second ending', await endChannel(server.url, channel)],
  ]) {
    assertError(r, 409, /the channel has ended/, what);
  }
  const published = await publish(server.url, 'default', { body: 'x', contentType: 'text/plain' });
  assert.equal(published.status, 200, 'other channels go on');
  assert.equal((await stats(server.url, channel)).lastId, '2');
});

test('the ending is stored: it survives the object restarting', async () => {
  const channel = freshChannel('end-kept');
  await publishEvent(server.url, channel, { data: 'only' });
  assert.equal((await endChannel(server.url, channel)).status, 200);
  const restart = await publish(server.url, channel, { body: 'sse-edge-test:restart', contentType: 'text/plain' });
  assert.equal(restart.status, 503, 'the object restarted');
  const after = await listen(server.url, channel);
  await after.waitForEnd(WAIT_MS);
  assert.deepEqual(triples(after), [['1', 'message', 'only'], endEvent('1')]);
  assertError(await publish(server.url, channel, { body: 'late', contentType: 'text/plain' }), 409, /ended/, 'after the restart');
});

test('on a tree every node ends its listeners, and later listens are answered as the root answers them', { timeout: 60_000 }, async () => {
  const channel = freshChannel('end-tree');
  const listeners = [];
  for (let i = 0; i < 4; i += 1) listeners.push(await listen(tree.url, channel));
  const nodes = new Set(listeners.map((s) => s.headers.get('sse-node')));
  assert.ok(nodes.size >= 3, `spread over the tree: ${[...nodes]}`);
  await publishEvent(tree.url, channel, { data: 'x' });
  assert.equal((await endChannel(tree.url, channel, { body: 'y', contentType: 'text/plain' })).json.lastId, '2');
  for (const stream of listeners) {
    await stream.waitForEnd(WAIT_MS);
    assert.deepEqual(triples(stream), [['1', 'message', 'x'], ['2', 'message', 'y'], endEvent('2')],
      `the listener on ${stream.headers.get('sse-node')}`);
  }
  // The Worker still remembers the region's head: the walk goes there, and on to the root.
  const late = await listen(tree.url, channel, { 'last-event-id': '1' });
  await late.waitForEnd(WAIT_MS);
  assert.deepEqual(triples(late), [['2', 'message', 'y'], endEvent('2')]);
  const done = await fetch(`${tree.url}/channels/${channel}/events`, { headers: { 'last-event-id': '2' } });
  assert.equal(done.status, 204);
});

/** What the objects of `className` on the short-lived server keep (rows, keys, alarms). */
const storedRows = (className) => objectDatabases(short.persistDir, className)
  .reduce((sum, file) => sum + storedRowsOf(file), 0);

/** Waits until a listen resuming after 1 on `channel` is refused as deleted; checks the
 * refusals of a fresh listen and a publish too. */
async function assertGone(baseUrl, channel) {
  const gone = await pollUntil(() => fetch(`${baseUrl}/channels/${channel}/events`, { headers: { 'last-event-id': '1' } }),
    (r) => r.status === 410, { timeoutMs: 15_000, what: `${channel} gone` });
  assert.match(await gone.text(), /ended \(its last id was \d+\) and its history was deleted/);
  assert.equal((await fetch(`${baseUrl}/channels/${channel}/events`)).status, 410, 'a listen from scratch too');
  assertError(await publish(baseUrl, channel, { body: 'again', contentType: 'text/plain' }), 410, /deleted/, 'a publish');
}

test("ENDED_TTL_SECONDS after the end, an ended channel's objects keep nothing and its name says so", { timeout: 60_000 }, async () => {
  // One ended by its publisher, spread over a tree; one ended by the streaming publish
  // that filled it, with no one listening.
  const ended = freshChannel('ttl');
  const listeners = [];
  for (let i = 0; i < 3; i += 1) listeners.push(await listen(short.url, ended));
  await publishEvent(short.url, ended, { data: 'a' });
  assert.equal((await endChannel(short.url, ended)).status, 200);
  const streamed = freshChannel('ttl-streamed');
  const lines = ['x', 'y'].map((data) => `${JSON.stringify({ data })}\n`).join('');
  const r = await publish(short.url, streamed, { body: lines, contentType: 'application/x-ndjson', query: '?stream=1&end=1' });
  assert.deepEqual(r.json, { firstId: '1', lastId: '2', count: 2, listeners: 0, ended: true });
  for (const stream of listeners) await stream.waitForEnd(WAIT_MS);
  assert.ok(storedRows('Channel') > 0, 'kept while the history lives');

  for (const channel of [ended, streamed]) await assertGone(short.url, channel);
  await pollUntil(async () => storedRows('Channel'), (n) => n === 0, { timeoutMs: 10_000, what: 'no rows left in any channel object' });
  assert.equal(storedRows('Graves'), 2, 'what is kept is their graves, elsewhere');
});

test('IDLE_END_SECONDS ends a channel left without publishes; it is deleted ENDED_TTL_SECONDS later', { timeout: 60_000 }, async () => {
  const idle = freshChannel('idle');
  const waiting = await listen(idling.url, idle);
  await publishEvent(idling.url, idle, { data: 'only' });
  // Ended on its own, two seconds after its publish: its listener gets `end`.
  await waiting.waitForEnd(10_000);
  assert.deepEqual(triples(waiting), [['1', 'message', 'only'], endEvent('1')]);
  assertError(await publish(idling.url, idle, { body: 'late', contentType: 'text/plain' }), 409, /ended/, 'after its idle end');
  await assertGone(idling.url, idle);
});

test('a streaming publish holds an idle end back while it is open, however quiet its body', { timeout: 60_000 }, async () => {
  const channel = freshChannel('idle-stream');
  const listener = await listen(idling.url, channel);
  let controller;
  const body = new ReadableStream({ start: (c) => { controller = c; } });
  const line = (data) => new TextEncoder().encode(`${JSON.stringify({ data })}\n`);
  const answer = publish(idling.url, channel, { body, contentType: 'application/x-ndjson', query: '?stream=1' });
  controller.enqueue(line('first'));
  await listener.waitUntil(() => listener.events.length === 1, WAIT_MS, 'the first line');
  await sleep(3_500); // longer than IDLE_END_SECONDS, shorter than STREAM_STALL_SECONDS
  controller.enqueue(line('after a quiet spell'));
  controller.close();
  const r = await answer;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.count, 2);
  await listener.waitUntil(() => listener.events.length >= 2, WAIT_MS, 'the second line');
  assert.deepEqual(listener.events.slice(0, 2).map((e) => e.data), ['first', 'after a quiet spell']);
  // Closed, the channel is idle again: it ends on its own.
  await listener.waitForEnd(10_000);
  assert.equal(listener.events.at(-1).type, 'end');
});
