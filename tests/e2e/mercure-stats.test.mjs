// The hub's stats (README "Mercure hub"; docs/mercure.md §2.4): `GET /.well-known/mercure/stats`, behind the
// publisher credential, sums the hub's counters over every object of its tree, as a
// channel's stats do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { request } from '../support/http.mjs';
import {
  HUB_PATH, HUB_SECRETS, SUBSCRIBER_KEY, assertChallenge, freshTopic, mercureToken, nextUpdate,
  publishOk, publisherToken, subscribe,
} from '../support/mercure.mjs';

const [server] = useServers({
  vars: { MERCURE_ANONYMOUS: '1', LISTENERS_PER_OBJECT: '2', FANOUT: '2' },
  secrets: HUB_SECRETS,
});

const statsOf = (token) => request(`${server.url}${HUB_PATH}/stats`, {
  headers: token ? { authorization: `Bearer ${token}` } : {},
});

test('the hub stats need the publisher credential', async () => {
  assertChallenge(await statsOf(), 401, null, 'no token');
  // A valid token, but signed with the subscriber key: not the publisher's credential.
  const subscriberSigned = mercureToken(SUBSCRIBER_KEY, { publish: ['*'] });
  assertChallenge(await statsOf(subscriberSigned), 401, 'invalid_token', 'a subscriber-key token');
  const post = await request(`${server.url}${HUB_PATH}/stats`, { method: 'POST', headers: { authorization: `Bearer ${publisherToken()}` } });
  assert.equal(post.status, 405, post.text);
});

test('the hub stats count subscribers, deliveries and objects over the whole tree', { timeout: 30_000 }, async () => {
  const before = await statsOf(publisherToken());
  assert.equal(before.status, 200, before.text);
  const start = before.json;
  for (const field of ['subscribers', 'published', 'delivered', 'droppedSlow', 'droppedGone', 'historyLength', 'objects']) {
    assert.equal(typeof start[field], 'number', `${field} in ${before.text}`);
  }

  const topic = freshTopic('stats');
  const streams = [];
  for (let i = 0; i < 7; i += 1) streams.push(await subscribe(server.url, [['topic', topic]]));
  const nodes = new Set(streams.map((s) => s.headers.get('sse-node')));
  assert.ok(nodes.size >= 3, `7 subscribers, 2 per object, on ${[...nodes]}`);

  await publishOk(server.url, [['topic', topic], ['data', 'one']]);
  await publishOk(server.url, [['topic', freshTopic('nobody')], ['data', 'two']]);
  for (const s of streams) assert.equal((await nextUpdate(s)).data, 'one');

  const after = (await statsOf(publisherToken())).json;
  assert.equal(after.subscribers, start.subscribers + 7, JSON.stringify(after));
  assert.equal(after.published, start.published + 2, JSON.stringify(after));
  assert.equal(after.delivered, start.delivered + 7, 'one delivery per subscriber that admits it, none for the other');
  assert.ok(after.objects >= nodes.size, `objects ${after.objects}, streams served by ${nodes.size}`);
  assert.ok(after.historyLength >= start.historyLength + 2, JSON.stringify(after));
  assert.equal(after.lastId, undefined, 'the sequence numbers are not shown');
});
