// A resume from ahead of a channel's head, below the root of its tree (README "Ids,
// history and resume" and "One channel, many objects"): an id the channel never gave
// (its storage was reset, or the client made it up) lands on a fresh node, which answers
// exactly as the root would, with `gap` and the kept events; that stream, and every later
// one on that part of the tree, then carries the live events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { openStream } from '../support/sse.mjs';
import { closeLater, freshChannel, publishJson } from '../support/http.mjs';

const [server] = useServers({ vars: { LISTENERS_PER_OBJECT: '2', FANOUT: '2' } });

const WAIT_MS = 5_000;

/** A listener on `channel`, asserted to be a stream; `where`: the node serving it. */
async function listen(channel, headers = {}) {
  const stream = closeLater(await openStream(`${server.url}/channels/${channel}/events`, { headers }));
  if (stream.status !== 200) await stream.waitForEnd(WAIT_MS);
  assert.equal(stream.status, 200, `listen ${JSON.stringify(headers)}: ${stream.status} ${stream.text.trim()}`);
  return { stream, where: stream.headers.get('sse-node') };
}

async function publishAll(channel, datas) {
  const sent = [];
  for (const data of datas) {
    const r = await publishJson(server.url, channel, { data });
    assert.equal(r.status, 200, r.text);
    sent.push({ type: 'message', id: r.json.id, data });
  }
  return sent;
}

/** A stream's events as {type, id, data} once it has `n`; a gap's data parsed, without id. */
async function eventsOf({ stream, where }, n, what) {
  await stream.waitUntil(() => stream.events.length >= n, WAIT_MS, `${n} events on ${what} (${where})`);
  return stream.events.map((e) => (e.type === 'gap'
    ? { type: e.type, data: JSON.parse(e.data) }
    : { type: e.type, id: e.lastEventId, data: e.data }));
}

const gapAfter = (lastEventId, firstAvailableId) => ({ type: 'gap', data: { lastEventId, firstAvailableId } });

test('a resume from ahead of the head lands on a node: gap and replay as on the root, then live events there and below', { timeout: 60_000 }, async () => {
  const channel = freshChannel('tree-ahead');
  const onRoot = [await listen(channel), await listen(channel)];
  assert.deepEqual(onRoot.map((l) => l.where), ['root', 'root']);
  const first = await publishAll(channel, ['a', 'b', 'c']);
  assert.deepEqual(first.map((e) => e.id), ['1', '2', '3']);

  // The root is full: the resume goes to a fresh node, which asks its parent from before it.
  const ahead = await listen(channel, { 'last-event-id': '1000' });
  assert.notEqual(ahead.where, 'root');
  const replayed = [gapAfter('1000', '1'), ...first];
  assert.deepEqual(await eventsOf(ahead, replayed.length, 'the resume from 1000'), replayed);

  // Later listeners on that part of the tree: another resume from the same id (on the
  // same node), and one from now (on a node below it, fed from it).
  const again = await listen(channel, { 'last-event-id': '1000' });
  const fresh = await listen(channel);
  assert.notEqual(again.where, 'root');
  assert.notEqual(fresh.where, 'root');
  assert.notEqual(fresh.where, ahead.where, 'the node holds two listeners');

  const live = await publishAll(channel, ['d', 'e']);
  assert.deepEqual(live.map((e) => e.id), ['4', '5']);
  assert.deepEqual(await eventsOf(ahead, replayed.length + 2, 'the resume from 1000'), [...replayed, ...live]);
  assert.deepEqual(await eventsOf(again, replayed.length + 2, 'the second resume from 1000'), [...replayed, ...live]);
  assert.deepEqual(await eventsOf(fresh, 2, 'a listener from now'), live);
  for (const { stream } of onRoot) assert.equal((await stream.waitFor(5, WAIT_MS)).length, 5);
});
