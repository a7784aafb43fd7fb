// An object that loses its in-memory state (a panic, running out of memory, a reset) ends
// every stream it was feeding, so that clients reconnect and resume from history instead
// of staying connected to a stream nobody writes to any more.
//
// The failure is real: a test build (SSE_EDGE_TEST_BUILD=1 sh scripts/build.sh, which
// `npm test` makes) panics in the object that takes a publish whose data is
// `sse-edge-test:panic`; the runtime then resets the wasm instance, as it does after any
// panic or out-of-memory. Listeners here reconnect as EventSource does.
//
// With HIBERNATE=1 (npm test runs this file both ways) the entry Worker holds the
// streams. Locally the Worker runs in the same wasm instance as the objects, so the
// panic's reset takes the Worker's state too and its streams end like the objects' do;
// where the Worker runs apart, it attaches again after its last id without a reconnect
// (hibernation.test.mjs shows that path). Either way nothing is missed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { forcedVars, useServers } from '../support/server.mjs';
import { closeOpened, freshChannel, publishEvent, request, stats, pollUntil } from '../support/http.mjs';
import { ResumingListener } from '../support/sse.mjs';
import { HUB_PATH, HUB_SECRETS, freshTopic, publishOk, publisherToken } from '../support/mercure.mjs';

const PANIC = 'sse-edge-test:panic';
/** Whether the Worker holds the streams (see above). */
const HELD = forcedVars().HIBERNATE === '1';
/** How many times a listener may have connected once the failure was dealt with. */
const CONNECTIONS_AFTER = HELD ? [1, 2] : [2];
const RETRY_MS = 1000;

const [server] = useServers({
  // Keep-alives every 200 ms: each object's alarm is its next call after a reset.
  vars: { HEARTBEAT_SECONDS: '1', MERCURE_ANONYMOUS: '1' },
  secrets: HUB_SECRETS,
});

/**
 * Publishes the fault: the object panics, so the publish fails (a 5xx) or never gets an
 * answer (the Worker's own call is lost with the instance); a 2xx means the build has no
 * such fault.
 */
async function injectFault(url, headers, body) {
  const answer = await request(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(3_000) })
    .catch((err) => ({ status: 'no answer', text: err.name }));
  assert.ok(answer.status === 'no answer' || answer.status >= 500,
    `the injected fault must fail the publish (is build/ a test build? SSE_EDGE_TEST_BUILD=1 sh scripts/build.sh): ${answer.status} ${answer.text}`);
}

/** Waits until every listener has connected `n` times. */
const connectedTimes = (listeners, n, what) =>
  Promise.all(listeners.map((l) => l.waitUntil(() => l.connections >= n, 10_000, `${what}: connection ${n}`)));

describe('an object that loses its state', () => {
  test('a channel object that panics ends its listeners\' streams; they resume from history and lose nothing', async () => {
    const base = server.url;
    const channel = freshChannel('panics');
    const listeners = Array.from({ length: 3 }, () => new ResumingListener(base, `/channels/${channel}/events`, { retryMs: RETRY_MS }));
    await connectedTimes(listeners, 1, 'before');
    await pollUntil(() => stats(base, channel), (s) => s.listeners === 3, { what: '3 listeners' });
    const before = [];
    for (let i = 1; i <= 5; i += 1) before.push((await publishEvent(base, channel, { data: `before ${i}` })).id);
    await Promise.all(listeners.map((l) => l.waitForEvents(5)));

    await injectFault(`${base}/channels/${channel}/events`, { 'content-type': 'application/json' }, JSON.stringify({ data: PANIC }));

    // Every stream ends and is resumed (held by the Worker: the next call finds the lost
    // state, and the Worker attaches again).
    if (!HELD) await connectedTimes(listeners, 2, 'after the panic');
    await pollUntil(() => stats(base, channel), (s) => s.listeners === 3, { what: '3 listeners again' });
    const after = [];
    for (let i = 1; i <= 5; i += 1) after.push((await publishEvent(base, channel, { data: `after ${i}` })).id);
    await Promise.all(listeners.map((l) => l.waitForEvents(10)));
    for (const l of listeners) {
      assert.ok(CONNECTIONS_AFTER.includes(l.connections), l.describe());
      assert.deepEqual(l.events.map((e) => e.lastEventId), [...before, ...after], l.describe());
      assert.deepEqual(l.events.map((e) => e.data), [1, 2, 3, 4, 5].map((i) => `before ${i}`).concat([1, 2, 3, 4, 5].map((i) => `after ${i}`)));
      assert.deepEqual(l.retryFailures(), []);
    }
    await closeOpened();
  });

  test('the hub\'s object that panics ends its subscribers\' streams; they resume with Last-Event-ID and lose nothing', async () => {
    const base = server.url;
    const topic = freshTopic('panics');
    const path = `${HUB_PATH}?${new URLSearchParams([['topic', topic]])}`;
    const subscribers = Array.from({ length: 2 }, () => new ResumingListener(base, path, { retryMs: RETRY_MS }));
    await connectedTimes(subscribers, 1, 'before');
    const ids = [];
    for (let i = 1; i <= 3; i += 1) ids.push(await publishOk(base, [['topic', topic], ['data', `before ${i}`]]));
    await Promise.all(subscribers.map((s) => s.waitForEvents(3)));

    await injectFault(`${base}${HUB_PATH}`, {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Bearer ${publisherToken()}`,
    }, new URLSearchParams([['topic', topic], ['data', PANIC]]).toString());

    if (!HELD) await connectedTimes(subscribers, 2, 'after the panic');
    // Both subscribers seated again before the next updates (as the channel's test waits
    // for its listeners): the hub counts them.
    const hubStats = () => request(`${base}${HUB_PATH}/stats`, { headers: { authorization: `Bearer ${publisherToken()}` } })
      .then((r) => r.json ?? {});
    await pollUntil(hubStats, (s) => s.subscribers === 2, { what: '2 subscribers again' });
    for (let i = 1; i <= 3; i += 1) ids.push(await publishOk(base, [['topic', topic], ['data', `after ${i}`]]));
    await Promise.all(subscribers.map((s) => s.waitForEvents(6)));
    for (const s of subscribers) {
      assert.ok(CONNECTIONS_AFTER.includes(s.connections), s.describe());
      assert.deepEqual(s.events.map((e) => e.lastEventId), ids, s.describe());
    }
    await closeOpened();
  });
});
