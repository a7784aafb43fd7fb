// HIBERNATE=1: when an object restarts alone under live listeners (its seats' sockets
// close), the entry Worker that holds each stream attaches again after the last id it
// passed on: the client's stream goes on, with no reconnect, and misses nothing.
//
// The restart is the test build's (SSE_EDGE_TEST_BUILD=1 sh scripts/build.sh, which
// `npm test` makes): a publish whose data is `sse-edge-test:restart` makes the object
// forget its state and close its sockets, as a restart of that object alone does.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE_MS, useServers } from '../support/server.mjs';
import { objectDatabases, readDatabase } from '../support/storage.mjs';
import { freshChannel, publishEvent, request, sleep, stats, pollUntil } from '../support/http.mjs';
import { ResumingListener } from '../support/sse.mjs';
import { HUB_PATH, HUB_SECRETS, freshTopic, publishOk, publisherToken } from '../support/mercure.mjs';

const RESTART = 'sse-edge-test:restart';
const RETRY_MS = 1000;

/** Rows of the hub's objects' `seat_specs` (specs kept in storage), read from their files. */
const keptSpecs = (persistDir) => objectDatabases(persistDir, 'Hub').reduce((sum, file) => sum + Number(readDatabase(file,
  'ok=c.execute("SELECT count(*) FROM sqlite_master WHERE name=\'seat_specs\'").fetchone()[0]\n' +
  'print(c.execute("SELECT count(*) FROM seat_specs").fetchone()[0] if ok else 0)')), 0);

const hubStats = (base) => request(`${base}${HUB_PATH}/stats`, { headers: { authorization: `Bearer ${publisherToken()}` } })
  .then((r) => r.json);

const [server] = useServers({
  vars: { HIBERNATE: '1', HEARTBEAT_SECONDS: '2', MERCURE_ANONYMOUS: '1', RETRY_MS: String(RETRY_MS) },
  secrets: HUB_SECRETS,
});

/** Asks the object to restart alone; it answers 503 (a 2xx: the build has no such fault). */
async function restartObject(url, headers, body) {
  const r = await request(url, { method: 'POST', headers, body });
  assert.equal(r.status, 503, `the restart fault must answer 503 (is build/ a test build?): ${r.status} ${r.text}`);
}

describe('HIBERNATE=1: an object that restarts alone', () => {
  test('a channel\'s listeners go on over the same connection, every event once, in order', async () => {
    const base = server.url;
    const channel = freshChannel('reattach');
    const listeners = Array.from({ length: 4 }, () => new ResumingListener(base, `/channels/${channel}/events`, { retryMs: RETRY_MS }));
    await Promise.all(listeners.map((l) => l.opened));
    await pollUntil(() => stats(base, channel), (s) => s.listeners === 4 && s.sleeping === 4, { what: '4 sleeping listeners' });
    const ids = [];
    for (let i = 1; i <= 3; i += 1) ids.push((await publishEvent(base, channel, { data: `before ${i}` })).id);
    await Promise.all(listeners.map((l) => l.waitForEvents(3)));

    await restartObject(`${base}/channels/${channel}/events`, { 'content-type': 'text/plain' }, RESTART);
    // Published while the Workers attach again: each gets them from history, once.
    for (let i = 1; i <= 3; i += 1) ids.push((await publishEvent(base, channel, { data: `during ${i}` })).id);
    await pollUntil(() => stats(base, channel), (s) => s.listeners === 4, { what: 'the 4 listeners seated again' });
    for (let i = 1; i <= 3; i += 1) ids.push((await publishEvent(base, channel, { data: `after ${i}` })).id);
    await Promise.all(listeners.map((l) => l.waitForEvents(9)));
    for (const l of listeners) {
      assert.deepEqual(l.events.map((e) => e.lastEventId), ids, l.describe());
      assert.equal(l.connections, 1, `the stream went on without a reconnect: ${l.describe()}`);
      assert.deepEqual(l.failures, []);
    }
  });

  test('the hub\'s subscribers go on over the same connection, every update once, in order', async () => {
    const base = server.url;
    const topic = freshTopic('reattach');
    const path = `${HUB_PATH}?${new URLSearchParams([['topic', topic]])}`;
    const subscribers = Array.from({ length: 3 }, () => new ResumingListener(base, path, { retryMs: RETRY_MS }));
    await Promise.all(subscribers.map((s) => s.opened));
    const ids = [];
    for (let i = 1; i <= 2; i += 1) ids.push(await publishOk(base, [['topic', topic], ['data', `before ${i}`]]));
    await Promise.all(subscribers.map((s) => s.waitForEvents(2)));

    await restartObject(`${base}${HUB_PATH}`, {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Bearer ${publisherToken()}`,
    }, new URLSearchParams([['topic', topic], ['data', RESTART]]).toString());
    for (let i = 1; i <= 3; i += 1) ids.push(await publishOk(base, [['topic', topic], ['data', `after ${i}`]]));
    await Promise.all(subscribers.map((s) => s.waitForEvents(5)));
    for (const s of subscribers) {
      assert.deepEqual(s.events.map((e) => e.lastEventId), ids, s.describe());
      assert.deepEqual(s.events.map((e) => e.data), ['before 1', 'before 2', 'after 1', 'after 2', 'after 3']);
      assert.equal(s.connections, 1, `the stream went on without a reconnect: ${s.describe()}`);
    }
  });

  test('a hub subscriber that has had no update yet goes on from where it started, not from the earliest kept', async () => {
    const base = server.url;
    const topic = freshTopic('reattach-live');
    // Kept in history before the subscriber comes: none of it is its.
    for (let i = 1; i <= 2; i += 1) await publishOk(base, [['topic', topic], ['data', `old ${i}`]]);
    const path = `${HUB_PATH}?${new URLSearchParams([['topic', topic]])}`;
    const subscriber = new ResumingListener(base, path, { retryMs: RETRY_MS });
    await subscriber.opened;
    await restartObject(`${base}${HUB_PATH}`, {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Bearer ${publisherToken()}`,
    }, new URLSearchParams([['topic', topic], ['data', RESTART]]).toString());
    const id = await publishOk(base, [['topic', topic], ['data', 'new']]);
    await subscriber.waitForEvents(1);
    await sleep(300); // anything else it would get comes with the same flush
    assert.deepEqual(subscriber.events.map((e) => [e.lastEventId, e.data]), [[id, 'new']], subscriber.describe());
    assert.equal(subscriber.connections, 1, subscriber.describe());
  });
});

describe('HIBERNATE=1: a subscriber too big for its socket\'s note', () => {
  test('is kept in storage while the hub\'s object sleeps, and seated again from there', { timeout: 60_000 }, async () => {
    const base = server.url;
    // Sixty URI templates: several KiB of spec, far past what a note carries.
    const topics = Array.from({ length: 60 }, (_, i) => `${freshTopic('big')}/${'segment/'.repeat(6)}${i}/{id}`);
    const path = `${HUB_PATH}?${new URLSearchParams(topics.map((t) => ['topic', t]))}`;
    const subscriber = new ResumingListener(base, path, { retryMs: RETRY_MS });
    await subscriber.opened;
    const target = topics[41].replace('{id}', 'x');
    const first = await publishOk(base, [['topic', target], ['data', 'before the sleep']]);
    await subscriber.waitForEvents(1);
    const before = await hubStats(base);
    assert.ok(before.sleeping >= 1, JSON.stringify(before));
    await sleep(IDLE_MS); // nothing asked of the hub: its object sleeps
    const second = await publishOk(base, [['topic', target], ['data', 'after the sleep']]);
    await subscriber.waitForEvents(2);
    const after = await hubStats(base);
    assert.ok(after.starts > before.starts, `the hub's object slept: starts ${before.starts} -> ${after.starts}`);
    assert.deepEqual(subscriber.events.map((e) => [e.lastEventId, e.data]),
      [[first, 'before the sleep'], [second, 'after the sleep']], subscriber.describe());
    assert.equal(subscriber.connections, 1, subscriber.describe());
    assert.equal(keptSpecs(server.persistDir), 1, 'its spec is kept in storage');
    await subscriber.close();
    await pollUntil(() => hubStats(base), (s) => s.subscribers === 0, { what: 'the subscriber gone' });
    assert.equal(keptSpecs(server.persistDir), 0, 'and let go with its seat');
  });
});
