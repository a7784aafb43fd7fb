// Active subscriptions on the Mercure hub (MERCURE_SUBSCRIPTIONS=1;
// docs/mercure.md §7): each matcher of a connection is a subscription, its
// start and end are announced as private updates, and the subscriptions API lists the
// active ones, in the family of the path (or of the token, for the whole list).
//
// Two servers: the hub with subscriptions on (anonymous subscribing, both keys,
// HEARTBEAT_SECONDS 3), and one with them off.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { pollUntil, request } from '../support/http.mjs';
import {
  HUB_SECRETS,
  assertChallenge,
  assertNothingMore,
  freshTopic,
  mercureToken,
  subscribe,
  subscriberToken,
  SUBSCRIBER_KEY,
} from '../support/mercure.mjs';

const HEARTBEAT_SECONDS = 3;
const SUBSCRIPTIONS = '/.well-known/mercure/subscriptions';
/** enc(s) of §Terms: every byte but A–Z a–z 0–9 - . _ ~ percent-encoded. */
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const [server, off] = useServers(
  {
    vars: { MERCURE_ANONYMOUS: '1', MERCURE_SUBSCRIPTIONS: '1', HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS) },
    secrets: HUB_SECRETS,
  },
  { vars: { MERCURE_ANONYMOUS: '1' }, secrets: HUB_SECRETS },
);

/** A token that may read every subscription (and receive their private updates). */
const adminToken = () => subscriberToken(['*']);

function api(base, path, { token = adminToken(), headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  return request(`${base}${SUBSCRIPTIONS}${path}`, { headers: h });
}

/** The subscriber id a watcher learns from the active event of `topic`'s subscription. */
async function announced(watcher, predicate, what) {
  const event = await watcher.waitForEvent((e) => {
    try {
      return predicate(JSON.parse(e.data), e);
    } catch {
      return false;
    }
  }, 5_000, what);
  return { event, doc: JSON.parse(event.data) };
}

describe('subscription events', () => {
  test('a connection announces each of its subscriptions, privately, in its family\'s shape', async () => {
    const watcher = await subscribe(server.url, [['topic', '*']], { token: adminToken() });
    const anonymous = await subscribe(server.url, [['topic', '*']]);
    const seenByAnonymous = anonymous.events.length;
    const t0 = freshTopic('v0-sub');
    const t1 = freshTopic('v1-sub');
    const token = mercureToken(SUBSCRIBER_KEY, { subscribe: [t0], payload: { user: 'ada' } });
    await subscribe(server.url, [['topic', t0], ['match', t1]], { token });

    const v0 = await announced(watcher, (d) => d.topic === t0, `the 0.x subscription of ${t0}`);
    assert.equal(v0.event.type, 'message', '0.x subscription events have no event: field');
    assert.deepEqual(Object.keys(v0.doc), ['@context', 'id', 'type', 'topic', 'subscriber', 'active', 'payload']);
    assert.equal(v0.doc['@context'], 'https://mercure.rocks/');
    assert.equal(v0.doc.type, 'Subscription');
    assert.equal(v0.doc.active, true);
    assert.deepEqual(v0.doc.payload, { user: 'ada' });
    assert.match(v0.doc.subscriber, /^urn:uuid:[0-9a-f-]{36}$/);
    assert.equal(v0.doc.id, `${SUBSCRIPTIONS}/${enc(t0)}/${enc(v0.doc.subscriber)}`);

    const v1 = await announced(watcher, (d) => d.match === t1, `the 1.0 subscription of ${t1}`);
    assert.equal(v1.event.type, 'mercure', '1.0 subscription events are event: mercure');
    assert.deepEqual(v1.doc, {
      id: `${SUBSCRIPTIONS}/exact/${enc(t1)}/${enc(v0.doc.subscriber)}`,
      type: 'subscription',
      match_type: 'exact',
      match: t1,
      subscriber: v0.doc.subscriber,
      active: true,
      payload: { user: 'ada' },
    }, 'the 1.0 document, with the 0.x token\'s payload (§7.2)');
    assert.notEqual(v0.event.lastEventId, v1.event.lastEventId, 'each event has an id of its own');
    await assertNothingMore(anonymous, seenByAnonymous, 'a tokenless subscriber sees no subscription event');
  });

  test('when a subscriber leaves, the end of its subscription is announced within HEARTBEAT_SECONDS', async () => {
    const watcher = await subscribe(server.url, [['topic', '*']], { token: adminToken() });
    const topic = freshTopic('leaving');
    const leaving = await subscribe(server.url, [['topic', topic]]);
    const { doc } = await announced(watcher, (d) => d.topic === topic && d.active, 'the active event');
    const left = Date.now();
    await leaving.close();
    const ended = await announced(watcher, (d) => d.topic === topic && d.active === false, 'the inactive event');
    const took = Date.now() - left;
    assert.ok(took <= HEARTBEAT_SECONDS * 1000, `the end was announced ${took} ms after the client left`);
    assert.equal(ended.doc.subscriber, doc.subscriber);
    assert.equal(ended.doc.id, doc.id);
  });
});

describe('the subscriptions API', () => {
  test('lists the active subscriptions: everything, a collection, one, in each family', async () => {
    const t0 = freshTopic('api-v0');
    const t1 = freshTopic('api-v1');
    await subscribe(server.url, [['topic', t0], ['match', t1]]);
    // The subscriber's id, from the whole list.
    const all = await api(server.url, '');
    assert.equal(all.status, 200, all.text);
    assert.match(all.headers.get('content-type'), /^application\/ld\+json/, 'a 0.x token: the 0.x family');
    const list = JSON.parse(all.text);
    assert.equal(list['@context'], 'https://mercure.rocks/');
    assert.equal(list.type, 'Subscriptions');
    assert.equal(list.id, SUBSCRIPTIONS);
    const mine0 = list.subscriptions.find((s) => s.topic === t0);
    const mine1 = list.subscriptions.find((s) => s.match === t1);
    assert.ok(mine0 && mine1, `both subscriptions listed: ${all.text.slice(0, 300)}`);
    assert.equal(mine0['@context'], undefined, 'documents inside a 0.x collection carry no @context');
    assert.equal(mine1.type, 'subscription', 'each document in its own shape');
    const subscriber = mine0.subscriber;

    const collection = await api(server.url, `/${enc(t0)}`);
    assert.equal(collection.status, 200, collection.text);
    const c = JSON.parse(collection.text);
    assert.deepEqual(c.subscriptions.map((s) => s.subscriber), [subscriber]);
    assert.equal(c.lastEventID, list.lastEventID);

    // The URL some clients build: percent-encoded with "/" left as is.
    const lenient = await api(server.url, `/${encodeURIComponent(t0).replace(/%2F/g, '/')}`);
    assert.equal(lenient.status, 200, lenient.text);
    assert.deepEqual(JSON.parse(lenient.text).subscriptions.map((s) => s.topic), [t0]);

    const one = await api(server.url, `/${enc(t0)}/${enc(subscriber)}`);
    assert.equal(one.status, 200, one.text);
    const single = JSON.parse(one.text);
    assert.equal(single['@context'], 'https://mercure.rocks/');
    assert.equal(single.topic, t0);
    assert.equal(single.lastEventID, list.lastEventID);

    const v1 = await api(server.url, `/exact/${enc(t1)}`);
    assert.equal(v1.status, 200, v1.text);
    assert.match(v1.headers.get('content-type'), /^application\/json/);
    const v1List = JSON.parse(v1.text);
    assert.equal(v1List.type, 'subscriptions');
    assert.deepEqual(v1List.subscriptions.map((s) => [s.match_type, s.match, s.subscriber]), [['exact', t1, subscriber]]);
    const v1One = await api(server.url, `/exact/${enc(t1)}/${enc(subscriber)}`);
    assert.equal(v1One.status, 200, v1One.text);
    assert.equal(JSON.parse(v1One.text).match, t1);
    assert.equal(v1One.headers.get('content-type').split(';')[0], 'application/json');
  });

  test('an empty collection is 200 with no subscriptions; an unknown single one is 404', async () => {
    const nobody = freshTopic('nobody');
    const empty = await api(server.url, `/${enc(nobody)}`);
    assert.equal(empty.status, 200, empty.text);
    assert.deepEqual(JSON.parse(empty.text).subscriptions, []);
    const missing = await api(server.url, `/${enc(nobody)}/${enc('urn:uuid:00000000-0000-4000-8000-000000000000')}`);
    assert.equal(missing.status, 200, 'an unknown subscriber id is part of the selector (§7.3)');
    assert.deepEqual(JSON.parse(missing.text).subscriptions, []);
    // A known subscriber, but not of that topic: no such subscription.
    const topic = freshTopic('known');
    await subscribe(server.url, [['topic', topic]]);
    const all = JSON.parse((await api(server.url, '')).text);
    const subscriber = all.subscriptions.find((s) => s.topic === topic).subscriber;
    const wrong = await api(server.url, `/${enc(nobody)}/${enc(subscriber)}`);
    assert.equal(wrong.status, 404, wrong.text);
  });

  test('answers carry Link, ETag and Cache-Control, and a matching If-None-Match is 304', async () => {
    const r = await api(server.url, '');
    assert.equal(r.status, 200);
    const etag = r.headers.get('etag');
    assert.match(etag, /^".+"$/);
    assert.equal(r.headers.get('cache-control'), 'must-revalidate');
    const link = r.headers.get('link');
    assert.ok(link.startsWith(`<${server.url}/.well-known/mercure>; rel="mercure"; last-event-id="`), link);
    assert.match(link, /type="mercure"; content-type="application\/json"$/);
    const again = await api(server.url, '', { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
  });

  test('needs a subscriber token that grants the path, raw or canonical, even on an anonymous hub', async () => {
    assertChallenge(await api(server.url, '', { token: null }), 401, null, 'no token');
    assertChallenge(await api(server.url, '', { token: mercureToken('wrong-key', { subscribe: ['*'] }) }), 401, 'invalid_token', 'wrong key');
    const topic = freshTopic('granted');
    assertChallenge(await api(server.url, '', { token: subscriberToken([topic]) }), 403, 'insufficient_scope', 'no grant on the path');
    const raw = `${SUBSCRIPTIONS}/${encodeURIComponent(topic).replace(/%2F/g, '/')}`;
    const byRaw = await api(server.url, raw.slice(SUBSCRIPTIONS.length), { token: subscriberToken([raw]) });
    assert.equal(byRaw.status, 200, `a grant on the raw path: ${byRaw.text}`);
    const canonical = `${SUBSCRIPTIONS}/${enc(topic)}`;
    const byCanonical = await api(server.url, raw.slice(SUBSCRIPTIONS.length), { token: subscriberToken([canonical]) });
    assert.equal(byCanonical.status, 200, `a grant on the canonical path: ${byCanonical.text}`);
  });

  test('a subscriber is listed while connected and not within HEARTBEAT_SECONDS after it leaves', async () => {
    const topic = freshTopic('listed');
    const stream = await subscribe(server.url, [['topic', topic]]);
    const listed = async () => JSON.parse((await api(server.url, `/${enc(topic)}`)).text).subscriptions.length;
    assert.equal(await listed(), 1);
    const left = Date.now();
    await stream.close();
    await pollUntil(listed, (n) => n === 0, { timeoutMs: HEARTBEAT_SECONDS * 1000, intervalMs: 100, what: 'the subscription to end' });
    assert.ok(Date.now() - left <= HEARTBEAT_SECONDS * 1000 + 100);
  });

  test('with MERCURE_SUBSCRIPTIONS off, the API paths answer 404 and no subscription event is published', async () => {
    for (const path of ['', `/${enc(freshTopic('off'))}`]) {
      const r = await api(off.url, path);
      assert.equal(r.status, 404, `${path}: ${r.text}`);
    }
    const watcher = await subscribe(off.url, [['topic', '*']], { token: adminToken() });
    const seen = watcher.events.length;
    await subscribe(off.url, [['topic', freshTopic('quiet')]]);
    await assertNothingMore(watcher, seen, 'no subscription events when they are off');
  });
});
