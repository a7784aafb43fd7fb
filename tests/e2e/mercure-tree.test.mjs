// The Mercure hub over a fan-out tree of Durable Objects (README "One channel, many
// objects"; docs/mercure.md §5, §6, §7): with LISTENERS_PER_OBJECT 5 and FANOUT 3, a few
// hundred subscribers spread over dozens of hub objects (each stream names its node in
// `Sse-Node`). The root keeps the hub-wide order and history; nodes relay every update
// (private ones too, between objects) and filter per subscriber.
//
// The test keeps its own model: every update it publishes, in publish order, and for each
// connection its matchers and grants, from which it computes, independently of the hub,
// exactly which updates that connection may receive (§6.6: a matcher matches a topic; a
// private update needs a grant on one of its topics; no token, no private update), and
// after which cursor (§6.9). Every connection must get exactly those, once, in order.
//
// One server (both keys, anonymous subscribing, subscriptions on) for the first four
// tests, which build on one another: 60 then 300 subscribers; some leave and resume
// elsewhere in the tree; the subscriptions API and subscription events over the whole
// tree; the API's ETag against its listing when one subscriber leaves (on the root, and on
// a node). A second server, stopped and started again on the same state, for the restart.
//
// Each connection carries one extra `topic` selector of its own, a "tag" that no update is
// ever published to: it changes nothing it receives, and lets the test tell which
// subscriber id (subscriptions API, subscription events) belongs to which connection.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, useServers } from '../support/server.mjs';
import { openStream } from '../support/sse.mjs';
import { request, sleep } from '../support/http.mjs';
import {
  HUB_PATH,
  HUB_SECRETS,
  ISSUER,
  SUBSCRIBER_KEY,
  accessToken,
  detail,
  publishOk,
  subscriberToken,
} from '../support/mercure.mjs';

const PER_OBJECT = 5;
const FANOUT = 3;
/** How long a Worker goes straight to the region head the root sent it to (contract/walk.rs). */
const HEAD_MEMORY_MS = 10_000;
const HEARTBEAT_SECONDS = 2;
const TREE_VARS = {
  LISTENERS_PER_OBJECT: String(PER_OBJECT),
  FANOUT: String(FANOUT),
  HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS),
  // Subscription events are updates of the hub's history too: room for all of them.
  HISTORY_SIZE: '20000',
  MERCURE_ANONYMOUS: '1',
  MERCURE_ISSUERS: ISSUER,
};
const SUBSCRIPTIONS = `${HUB_PATH}/subscriptions`;
const SUBS_0X = `${SUBSCRIPTIONS}{/topic}{/subscriber}`;
const SUBS_10 = `${SUBSCRIPTIONS}{/match_type}{/match}{/subscriber}`;
const WAIT_MS = 15_000;
const AT_ONCE = 10;

const [server] = useServers({ vars: { ...TREE_VARS, MERCURE_SUBSCRIPTIONS: '1' }, secrets: HUB_SECRETS });

const depthOf = (node) => (node === 'root' ? 0 : node.split('.').length);

// ---------------------------------------------------------------------------------------
// The model: matchers and grants, computed here, not by the hub

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const UNRESERVED = "(?:[A-Za-z0-9\\-._~,]|%[0-9A-Fa-f]{2})";
const RESERVED_TOO = "(?:[A-Za-z0-9\\-._~,:/?#\\[\\]@!$&'()*+;=]|%[0-9A-Fa-f]{2})";

/** An RFC 6570 template (the forms this test uses: {v}, {+v}, {/v}) as an anchored RegExp (§5.1). */
function templateRegex(template) {
  let re = '^';
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    if (open < 0) {
      re += escapeRe(template.slice(i));
      break;
    }
    re += escapeRe(template.slice(i, open));
    const close = template.indexOf('}', open);
    const expr = template.slice(open + 1, close);
    if (/^[A-Za-z_]+$/.test(expr)) re += `${UNRESERVED}*`;
    else if (/^\+[A-Za-z_]+$/.test(expr)) re += `${RESERVED_TOO}*`;
    else if (/^\/[A-Za-z_]+$/.test(expr)) re += `(?:/${UNRESERVED}*)?`;
    else throw new Error(`the test's template model does not know {${expr}}`);
    i = close + 1;
  }
  return new RegExp(`${re}$`);
}

/** A 0.x selector (a `topic` parameter, or an entry of a 0.x token's `subscribe`). */
function selector0x(sel) {
  if (sel === '*') return () => true;
  const re = sel.includes('{') ? templateRegex(sel) : null;
  return (topic) => topic === sel || (re !== null && re.test(topic));
}

/** A 1.0 exact matcher (`*` matches every topic, §5.2). */
const exact10 = (m) => (m === '*' ? () => true : (topic) => topic === m);

/** A URL pattern of the forms this test uses (literal text, `:name`, `*`), on topics with no query or hash. */
function urlPattern(p) {
  let re = '^';
  for (const part of p.split(/(:[A-Za-z_]+|\*)/)) {
    if (part === '*') re += '.*';
    else if (part.startsWith(':')) re += '[^/?#]+';
    else re += escapeRe(part);
  }
  const regex = new RegExp(`${re}$`);
  return (topic) => {
    try {
      new URL(topic); // eslint-disable-line no-new
    } catch {
      return false; // a topic that is not a URL never matches a URL pattern
    }
    return regex.test(topic);
  };
}

/** The matcher of one query parameter (§6.1), and how the hub names its subscription (§7.2). */
function queryMatcher([name, value]) {
  switch (name) {
    case 'topic': return { match: selector0x(value), desc: `topic ${value}` };
    case 'match':
    case 'match_exact': return { match: exact10(value), desc: `exact ${value}` };
    case 'match_urlpattern': return { match: urlPattern(value), desc: `urlpattern ${value}` };
    default: throw new Error(`not a matcher: ${name}`);
  }
}

/** The description of a subscription document (the API's or an event's). */
const descOf = (doc) => (doc.type === 'Subscription' || doc.topic !== undefined
  ? `topic ${doc.topic}`
  : `${doc.match_type} ${doc.match}`);

/**
 * The kinds of subscribers, over the topics under `base`: their query matchers, their
 * grants (null: no token, anonymous) and the token that carries those grants.
 */
function topicsUnder(base, tag) {
  return {
    base,
    tag,
    P1: `${base}/private/1`,
    P2: `${base}/private/2`,
    K1: `${base}/books/1`,
    K2: `${base}/books/2`,
    K1R: `${base}/books/1/reviews`,
    A7: `${base}/authors/7`,
    OTHER: `${base}/other/x`,
    NEWS: `urn:example:${tag}:news`,
    SECRET: `urn:example:${tag}:secret`,
  };
}

function kindsFor(url, T) {
  const v0 = (subscribe) => ({ grants: subscribe.map(selector0x), token: () => subscriberToken(subscribe) });
  const v1 = (topics) => ({
    grants: topics.map((t) => (t.match_type === 'urlpattern' ? urlPattern(t.match) : exact10(t.match))),
    token: () => accessToken(url, SUBSCRIBER_KEY, { details: [detail(['subscribe'], topics)] }),
  });
  const anonymous = { grants: null, token: () => null };
  return [
    { kind: 'anonymous *', pairs: [['topic', '*']], ...anonymous },
    { kind: 'anonymous on a private topic', pairs: [['topic', T.P1]], ...anonymous },
    { kind: 'anonymous URL pattern on private topics', pairs: [['match_urlpattern', `${T.base}/private/:id`]], ...anonymous },
    { kind: 'template, granted the template', pairs: [['topic', `${T.base}/private/{id}`]], ...v0([`${T.base}/private/{id}`]) },
    { kind: '*, granted P1', pairs: [['topic', '*']], ...v0([T.P1]) },
    { kind: '1.0 exact P2, granted by a 1.0 URL pattern', pairs: [['match', T.P2]], ...v1([{ match: `${T.base}/private/:id`, match_type: 'urlpattern' }]) },
    { kind: 'anonymous books template', pairs: [['topic', `${T.base}/books/{id}`]], ...anonymous },
    { kind: 'anonymous books URL pattern', pairs: [['match_urlpattern', `${T.base}/books/*`]], ...anonymous },
    { kind: 'anonymous, two matchers', pairs: [['match', T.A7], ['topic', T.K2]], ...anonymous },
    { kind: '*, granted {+rest} under the base', pairs: [['topic', '*']], ...v0([`${T.base}/{+rest}`]) },
    { kind: 'urn template, 1.0 exact grant on the secret', pairs: [['topic', `urn:example:${T.tag}:{name}`]], ...v1([{ match: T.SECRET }]) },
    { kind: 'private template, granted only books/1', pairs: [['topic', `${T.base}/private/{id}`]], ...v0([T.K1]) },
    { kind: 'P1 and exact books/1, granted P2 only', pairs: [['topic', T.P1], ['match_exact', T.K1]], ...v0([T.P2]) },
    { kind: '1.0 *, granted exact P1', pairs: [['match', '*']], ...v1([{ match: T.P1 }]) },
  ];
}

/** The fixed set of updates of one batch (label: which batch), public and private, over several topics. */
function batchOf(T, label) {
  return [
    { topics: [T.K1], type: 'book', id: `urn:test:tree:${label}:1` },
    { topics: [T.K1R] },
    { topics: [T.P1], private: true, id: `urn:test:tree:${label}:3` },
    { topics: [T.P2], private: true },
    { topics: [T.P1] }, // public, on a topic the private updates use too
    { topics: [T.P1, T.K1], private: true }, // granted by books/1 as well
    { topics: [T.K2, T.P2], private: true, type: 'pair' },
    { topics: [T.A7, T.K2] }, // both of one connection's matchers: still once
    { topics: [T.NEWS] },
    { topics: [T.SECRET], private: true, id: `urn:test:tree:${label}:10` },
    { topics: [T.K2], private: true, multiline: true },
    { topics: [T.OTHER], id: `urn:test:tree:${label}:12` },
    { topics: [T.K1], private: true },
  ].map((u, i) => ({ ...u, data: u.multiline ? `${label}-${i + 1}\nsecond line\n  third` : `${label}-${i + 1}` }));
}

/** A hub under test: its URL, its topics, its kinds, every update published (in order) and every connection. */
function hubModel(url, tag) {
  const T = topicsUnder(`https://example.com/${tag}`, tag);
  return { url, T, kinds: kindsFor(url, T), log: [], conns: [], nextTag: 0 };
}

async function publishBatch(hub, label) {
  const sent = [];
  for (const u of batchOf(hub.T, label)) {
    const pairs = [...u.topics.map((t) => ['topic', t]), ['data', u.data]];
    if (u.private) pairs.push(['private', 'on']);
    if (u.id) pairs.push(['id', u.id]);
    if (u.type) pairs.push(['type', u.type]);
    const id = await publishOk(hub.url, pairs);
    const update = { id, topics: u.topics, private: Boolean(u.private), data: u.data, type: u.type ?? 'message' };
    hub.log.push(update);
    sent.push(update);
  }
  return sent;
}

/** Does this connection receive this update (§6.6)? */
function admits(conn, u) {
  if (!conn.matchers.some((m) => u.topics.some((t) => m(t)))) return false;
  if (!u.private) return true;
  return conn.grants !== null && conn.grants.some((g) => u.topics.some((t) => g(t)));
}

/** What a connection must have received: the updates it admits from its start, in the hub's order (§6.9). */
function expectedOf(hub, conn) {
  return hub.log.slice(conn.from, conn.closedAt ?? hub.log.length).filter((u) => admits(conn, u))
    .map(({ id, type, data }) => ({ id, type, data }));
}

// ---------------------------------------------------------------------------------------
// Connections

const everyStream = new Set();
after(async () => {
  await Promise.all([...everyStream].map((s) => s.close().catch(() => {})));
});

/**
 * Opens one hub connection of `spec` (a kind), with its tag, and `cursor`
 * ({how: 'header'|'query', id}) when it resumes. Asserts the stream; records its node.
 */
async function openConn(hub, spec, { cursor = null } = {}) {
  const n = hub.nextTag++;
  const tagTopic = `${hub.T.base}/tag/${n}`;
  const pairs = [...spec.pairs, ['topic', tagTopic]];
  const query = [...pairs];
  const headers = {};
  const token = spec.token();
  if (token) headers.authorization = `Bearer ${token}`;
  if (cursor?.how === 'header') headers['last-event-id'] = cursor.id;
  if (cursor?.how === 'query') query.push(['lastEventID', cursor.id]);
  const from = cursor === null
    ? hub.log.length
    : cursor.id === 'earliest' ? 0 : hub.log.findIndex((u) => u.id === cursor.id) + 1;
  assert.ok(cursor === null || from > 0 || cursor.id === 'earliest', `the test resumes only after ids it published: ${cursor?.id}`);
  const url = `${hub.url}${HUB_PATH}?${new URLSearchParams(query)}`;
  const stream = await openStream(url, { headers });
  everyStream.add(stream);
  const what = `${spec.kind} #${n}${cursor ? ` after ${cursor.id} (${cursor.how})` : ''}`;
  if (stream.status !== 200) await stream.waitForEnd(5_000).catch(() => {});
  assert.equal(stream.status, 200, `${what}: ${stream.status} ${stream.text.trim()}`);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/, `${what}: content-type`);
  const node = stream.headers.get('sse-node');
  assert.match(node ?? '', /^(root|[a-z]+(\.[0-9]+)*)$/, `${what}: Sse-Node`);
  await stream.waitUntil(() => stream.chunks > 0, 5_000, `the first chunk of ${what}`);
  const conn = {
    n,
    spec,
    what: `${what} on ${node}`,
    tagTopic,
    stream,
    node,
    from,
    cursor,
    closedAt: null,
    matchers: pairs.map((p) => queryMatcher(p).match),
    subscriptions: pairs.map((p) => queryMatcher(p).desc).sort(),
    grants: spec.grants,
  };
  hub.conns.push(conn);
  return conn;
}

/** Opens one connection per spec, AT_ONCE at a time. */
async function openMany(hub, specs, options = () => ({})) {
  const out = [];
  for (let i = 0; i < specs.length; i += AT_ONCE) {
    const batch = specs.slice(i, i + AT_ONCE);
    out.push(...await Promise.all(batch.map((spec, j) => openConn(hub, spec, options(i + j)))));
  }
  return out;
}

/** `count` specs cycling over the kinds, starting at `offset`. */
const cycle = (hub, count, offset = 0) => Array.from({ length: count }, (_, i) => hub.kinds[(i + offset) % hub.kinds.length]);

async function closeConn(hub, conn) {
  await conn.stream.close();
  conn.closedAt = hub.log.length;
}

const open = (hub) => hub.conns.filter((c) => c.closedAt === null && !c.watcher);

/**
 * Every connection (open, or closed and already checked) has exactly what it may
 * receive, once, in the hub's order; then nothing more arrives.
 */
async function verifyAll(hub, conns, what) {
  for (const conn of conns) {
    const want = expectedOf(hub, conn);
    const { stream } = conn;
    await stream.waitUntil(() => stream.events.length >= want.length, WAIT_MS, `${want.length} updates on ${conn.what}`)
      .catch(() => {}); // the comparison below says what is missing
    const got = stream.events.map((e) => ({ id: e.idField, type: e.type, data: e.data }));
    assert.deepEqual(got, want, `${what}: ${conn.what} (${conn.spec.kind})`);
    if (conn.grants === null) {
      const privateIds = new Set(hub.log.filter((u) => u.private).map((u) => u.id));
      assert.deepEqual(got.filter((e) => privateIds.has(e.id)), [], `${what}: anonymous ${conn.what} got private updates`);
    }
  }
  await sleep(400);
  for (const conn of conns) {
    assert.equal(conn.stream.events.length, expectedOf(hub, conn).length, `${what}: ${conn.what} got more afterwards`);
    if (conn.closedAt === null) assert.equal(conn.stream.ended, false, `${what}: ${conn.what} ended (${conn.stream.endReason})`);
  }
}

/** Per node, the open connections it serves; asserts none holds more than its share. */
function assertSpread(conns, what) {
  const perNode = new Map();
  for (const c of conns) perNode.set(c.node, [...(perNode.get(c.node) ?? []), c]);
  for (const [node, held] of perNode) {
    assert.ok(held.length <= PER_OBJECT, `${what}: ${node} serves ${held.length} subscribers: ${held.map((c) => c.what).join(', ')}`);
  }
  assert.ok(perNode.size >= Math.ceil(conns.length / PER_OBJECT), `${what}: ${perNode.size} nodes`);
  return perNode;
}

// ---------------------------------------------------------------------------------------
// The subscriptions API

const apiToken = () => subscriberToken([SUBSCRIPTIONS, SUBS_0X, SUBS_10]);

function api(url, headers = {}) {
  return request(`${url}${SUBSCRIPTIONS}`, { headers: { authorization: `Bearer ${apiToken()}`, ...headers } });
}

/** The API's list grouped by subscriber: tag topic -> {subscriber, subscriptions (sorted)}. */
function listedByTag(list, what) {
  const bySubscriber = new Map();
  for (const doc of list.subscriptions) {
    bySubscriber.set(doc.subscriber, [...(bySubscriber.get(doc.subscriber) ?? []), doc]);
  }
  const byTag = new Map();
  for (const [subscriber, docs] of bySubscriber) {
    const tags = docs.filter((d) => d.topic?.includes('/tag/')).map((d) => d.topic);
    assert.equal(tags.length, 1, `${what}: subscriber ${subscriber} has ${tags.length} tags: ${JSON.stringify(docs)}`);
    byTag.set(tags[0], { subscriber, subscriptions: docs.map(descOf).sort() });
  }
  return byTag;
}

/** What the API should list: every open connection (the watcher too), by tag. */
function expectedListing(hub) {
  return new Map(hub.conns.filter((c) => c.closedAt === null).map((c) => [c.tagTopic, c.subscriptions]));
}

/** Polls the API (bounded) until it lists exactly the open connections; asserts it does. */
async function assertListsOpen(hub, what) {
  const want = expectedListing(hub);
  const deadline = Date.now() + 10_000;
  let got;
  let r;
  for (;;) {
    r = await api(hub.url);
    assert.equal(r.status, 200, `${what}: ${r.status} ${r.text.slice(0, 200)}`);
    const list = JSON.parse(r.text);
    got = new Map([...listedByTag(list, what)].map(([tag, { subscriptions }]) => [tag, subscriptions]));
    const same = got.size === want.size && [...want].every(([tag, subs]) => JSON.stringify(got.get(tag)) === JSON.stringify(subs));
    if (same || Date.now() > deadline) break;
    await sleep(250);
  }
  const missing = [...want.keys()].filter((t) => !got.has(t));
  const extra = [...got.keys()].filter((t) => !want.has(t));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] },
    `${what}: the API lists ${got.size} subscribers, the test has ${want.size} open`);
  for (const [tag, subs] of want) assert.deepEqual(got.get(tag), subs, `${what}: the subscriptions of ${tag}`);
  return r;
}

// ---------------------------------------------------------------------------------------
// The tests

const hub = { ready: false };
let watcher = null;

test('60, then 300 subscribers with mixed matchers and grants over dozens of hub objects: each gets exactly what it may, once, in order', { timeout: 90_000 }, async (t) => {
  Object.assign(hub, hubModel(server.url, `tree-${process.pid}-${Date.now()}`));
  // The watcher of test 3: every subscription event of the run, from the start.
  watcher = await openConn(hub, {
    kind: 'watcher of subscription events',
    pairs: [['topic', SUBS_0X], ['topic', SUBS_10]],
    grants: [selector0x(SUBS_0X), selector0x(SUBS_10)],
    token: () => subscriberToken([SUBS_0X, SUBS_10]),
  });
  watcher.watcher = true;
  const started = Date.now();

  const first = await openMany(hub, cycle(hub, 60));
  let perNode = assertSpread([watcher, ...first], '61 subscribers');
  assert.ok(perNode.size >= 13, `${perNode.size} nodes for 61 subscribers`);
  const a = await publishBatch(hub, 'a');
  assert.equal(a.length, 13);
  await verifyAll(hub, first, 'batch a, 60 subscribers');

  const more = await openMany(hub, cycle(hub, 240, 60 % hub.kinds.length));
  const all = [watcher, ...first, ...more];
  perNode = assertSpread(all, '301 subscribers');
  const deepest = Math.max(...[...perNode.keys()].map(depthOf));
  assert.ok(perNode.size >= 61, `${perNode.size} nodes for 301 subscribers`);
  assert.ok(deepest >= 3, `the tree is only ${deepest} levels deep: ${[...perNode.keys()].join(' ')}`);
  await publishBatch(hub, 'b');
  await verifyAll(hub, [...first, ...more], 'batches a and b, 300 subscribers');
  for (const kind of hub.kinds) {
    const ofKind = [...first, ...more].filter((c) => c.spec === kind);
    const nodes = new Set(ofKind.map((c) => c.node));
    assert.ok(nodes.size >= 5, `${kind.kind}: its ${ofKind.length} subscribers are on ${nodes.size} nodes only`);
    assert.ok(expectedOf(hub, ofKind[0]).length > 0, `${kind.kind} receives nothing: the test proves little`);
  }
  hub.ready = true;
  t.diagnostic(`301 subscribers on ${perNode.size} objects, ${deepest} levels below the root; opened and checked in ${Date.now() - started} ms`);
});

test('subscribers that leave come back with Last-Event-ID (header or lastEventID) on other nodes and get exactly what they missed; earliest replays all they may see', { timeout: 90_000 }, async (t) => {
  assert.ok(hub.ready, 'needs the 300 subscribers of the first test');
  const stayed = open(hub);
  // Two groups leave at different points, spread over the tree; the kinds all come by.
  const leaving1 = stayed.filter((_, i) => i % 20 === 3);
  const leaving2 = stayed.filter((_, i) => i % 20 === 11);
  for (const c of leaving1) await closeConn(hub, c);
  await publishBatch(hub, 'c');
  await verifyAll(hub, leaving2, 'batch c, before the second group leaves');
  for (const c of leaving2) await closeConn(hub, c);
  await publishBatch(hub, 'd');
  const leaving = [...leaving1, ...leaving2];

  // Their departures noticed, newcomers take the room they left (the nodes fill again).
  await assertListsOpen(hub, 'after the departures');
  const fillers = await openMany(hub, cycle(hub, leaving.length, 5));

  const resumed = await openMany(hub, leaving.map((c) => c.spec), (i) => {
    const id = leaving[i].stream.lastEventId;
    assert.ok(id, `${leaving[i].what} left without an id`);
    return { cursor: { how: i % 2 === 0 ? 'header' : 'query', id } };
  });
  const fromEarliest = await openMany(hub, hub.kinds, (i) => ({ cursor: { how: i % 2 === 0 ? 'header' : 'query', id: 'earliest' } }));
  for (const c of [...resumed, ...fromEarliest]) {
    assert.equal(c.stream.headers.get('last-event-id'), c.cursor.id, `${c.what}: the response's Last-Event-ID`);
    assert.equal(c.stream.headers.get('mercure-last-event-id'), c.cursor.id, `${c.what}: the response's Mercure-Last-Event-ID`);
  }
  assertSpread(open(hub).concat(watcher), 'after the resumes');
  const moved = resumed.filter((c, i) => c.node !== leaving[i].node);
  t.diagnostic(`${moved.length} of ${resumed.length} resumed on another node; ${fillers.length} newcomers on ${new Set(fillers.map((c) => c.node)).size} nodes`);
  assert.ok(moved.length >= resumed.length / 2, `only ${moved.length} of ${resumed.length} resumed on another node: `
    + resumed.map((c, i) => `${leaving[i].node}->${c.node}`).join(' '));

  // Replay first (what they missed, or everything), then live updates.
  await verifyAll(hub, [...resumed, ...fromEarliest], 'the replays');
  const firstBatch = new Set(hub.log.slice(0, 13).map((u) => u.id));
  for (const c of fromEarliest) {
    assert.ok(firstBatch.has(expectedOf(hub, c)[0]?.id), `${c.what}: earliest must start in the first batch`);
  }
  await publishBatch(hub, 'e');
  await verifyAll(hub, open(hub), 'batch e, live after the replays, on every node');
  for (const [i, c] of resumed.entries()) {
    assert.ok(expectedOf(hub, c).length > 0, `${leaving[i].what} -> ${c.what} had nothing to receive`);
  }
});

test('the subscriptions API lists the whole tree\'s subscribers; its ETag answers 304 until one leaves; subscription events: one active and one inactive per subscription, wherever it was', { timeout: 90_000 }, async (t) => {
  assert.ok(hub.ready && watcher, 'needs the subscribers of the first test');
  try {
    const listed = await assertListsOpen(hub, 'the whole tree');
    const list = JSON.parse(listed.text);
    const etag = listed.headers.get('etag');
    assert.match(listed.headers.get('content-type') ?? '', /^application\/ld\+json/);
    assert.equal(etag, `"${list.lastEventID}"`, 'the ETag is the last id');
    const openNow = hub.conns.filter((c) => c.closedAt === null);
    assert.equal(new Set(list.subscriptions.map((s) => s.subscriber)).size, openNow.length, 'subscribers');
    assert.equal(list.subscriptions.length, openNow.reduce((n, c) => n + c.subscriptions.length, 0), 'subscriptions');
    t.diagnostic(`the API lists ${list.subscriptions.length} subscriptions of ${openNow.length} subscribers on ${new Set(openNow.map((c) => c.node)).size} nodes`);

    const same = await api(hub.url, { 'if-none-match': etag });
    assert.equal(same.status, 304, `nothing changed: ${same.status}`);
    assert.equal(same.text, '');

    // Subscribers on deep nodes and near the top leave.
    const byDepth = open(hub).sort((x, y) => depthOf(y.node) - depthOf(x.node));
    const leaving = [...byDepth.slice(0, 4), ...byDepth.slice(-2)];
    for (const c of leaving) await closeConn(hub, c);
    await assertListsOpen(hub, 'after six left');
    // The events: for every connection of the run, one active event per subscription;
    // for each that ended, one inactive event per subscription.
    const ev = () => watcher.stream.events.map((e) => ({ e, doc: JSON.parse(e.data) }));
    const wantActive = hub.conns.reduce((n, c) => n + c.subscriptions.length, 0);
    const wantInactive = hub.conns.filter((c) => c.closedAt !== null).reduce((n, c) => n + c.subscriptions.length, 0);
    await watcher.stream.waitUntil(() => {
      const docs = ev().map((x) => x.doc);
      return docs.filter((d) => d.active).length >= wantActive && docs.filter((d) => !d.active).length >= wantInactive;
    }, 10_000, `${wantActive} active and ${wantInactive} inactive events`).catch(() => {});
    await sleep(500);
    const events = ev();
    assert.equal(watcher.stream.ended, false, `the watcher's stream ended (${watcher.stream.endReason}) on ${watcher.node}`);
    for (const { e, doc } of events) {
      const v0 = doc.type === 'Subscription';
      assert.equal(e.type, v0 ? 'message' : 'mercure', `event type of ${e.data}`);
      assert.match(doc.subscriber, /^urn:uuid:/);
    }
    const subscriberOf = new Map(); // tag -> subscriber id
    for (const { doc } of events) if (doc.active && doc.topic?.includes('/tag/')) subscriberOf.set(doc.topic, doc.subscriber);
    const bySubscriber = new Map();
    for (const { doc } of events) {
      const entry = bySubscriber.get(doc.subscriber) ?? { active: [], inactive: [] };
      entry[doc.active ? 'active' : 'inactive'].push(descOf(doc));
      bySubscriber.set(doc.subscriber, entry);
    }
    const known = new Set();
    for (const c of hub.conns) {
      const subscriber = subscriberOf.get(c.tagTopic);
      assert.ok(subscriber, `no active event for ${c.what}'s tag`);
      known.add(subscriber);
      const { active, inactive } = bySubscriber.get(subscriber);
      assert.deepEqual(active.sort(), c.subscriptions, `active events of ${c.what}`);
      assert.deepEqual(inactive.sort(), c.closedAt === null ? [] : c.subscriptions, `inactive events of ${c.what}`);
    }
    assert.deepEqual([...bySubscriber.keys()].filter((s) => !known.has(s)), [], 'events for subscribers the test never opened');
    assert.equal(events.filter((x) => x.doc.active).length, wantActive);
    assert.equal(events.filter((x) => !x.doc.active).length, wantInactive);
    t.diagnostic(`the watcher on ${watcher.node} got ${wantActive} active and ${wantInactive} inactive events of ${hub.conns.length} connections`);

    // Once the inactive events are all published (the watcher has them), the ETag is the
    // hub's new last id: that of the last event the watcher got.
    const latest = await assertListsOpen(hub, 'once the inactive events are out');
    const newEtag = latest.headers.get('etag');
    assert.notEqual(newEtag, etag, 'the ETag changes when subscribers leave');
    assert.equal(newEtag, `"${watcher.stream.lastEventId}"`, 'the ETag is the last id, that of the last subscription event');
    const stale = await api(hub.url, { 'if-none-match': etag });
    assert.equal(stale.status, 200, `a stale If-None-Match: ${stale.status}`);
    const fresh = await api(hub.url, { 'if-none-match': newEtag });
    assert.equal(fresh.status, 304, `the new ETag, nothing changed since: ${fresh.status}`);

  } finally {
    // The tree shrinks for the next test (and the one after runs a server of its own).
    await Promise.all(hub.conns.filter((c) => c.closedAt === null).map((c) => closeConn(hub, c)));
  }
});

test('the subscriptions API\'s ETag goes with its listing: no answer lists a departure under the earlier ETag, nor answers that ETag 304 after', { timeout: 60_000 }, async (t) => {
  assert.ok(hub.ready, 'needs the hub of the first test');
  await assertListsOpen(hub, 'everyone gone'); // the departures of the previous test noticed
  // A Worker the root sent to a region's head goes straight there for HEAD_MEMORY_MS
  // (src/platform/contract/walk.rs): past that, the walk starts at the root again, which
  // keeps the first newcomers itself, so that one of them is the root's.
  await sleep(HEAD_MEMORY_MS + 500);
  const few = await openMany(hub, cycle(hub, 12));
  assertSpread(few, '12 subscribers');
  const onRoot = few.find((c) => c.node === 'root');
  const below = few.findLast((c) => c.node !== 'root');
  assert.ok(onRoot && below, `12 subscribers on ${[...new Set(few.map((c) => c.node))].join(' ')}`);
  const problems = [];
  for (const leaving of [onRoot, below]) {
    const before = await assertListsOpen(hub, `before ${leaving.what} leaves`);
    const etag = before.headers.get('etag');
    await closeConn(hub, leaving);
    // Back to back (bounded), until an answer no longer lists it; then the earlier ETag.
    const leftAt = Date.now();
    let changed = null;
    while (changed === null && Date.now() - leftAt < 10_000) {
      const r = await api(hub.url);
      assert.equal(r.status, 200, r.text.slice(0, 200));
      if (!listedByTag(JSON.parse(r.text), 'after one left').has(leaving.tagTopic)) changed = r;
    }
    assert.ok(changed, `${leaving.what} is still listed 10 s after it left`);
    const conditional = await api(hub.url, { 'if-none-match': etag });
    const took = Date.now() - leftAt;
    if (changed.headers.get('etag') === etag) {
      problems.push(`GET ${SUBSCRIPTIONS} no longer listed ${leaving.what} (${took} ms after it left) but kept the ETag ${etag} of the listing that had it`);
    }
    if (conditional.status !== 200) {
      problems.push(`GET ${SUBSCRIPTIONS} with If-None-Match: ${etag}, right after an answer that no longer listed ${leaving.what}, answered ${conditional.status}`);
    }
    // Within a few seconds (its inactive events published) the ETag has changed.
    let settled = changed;
    while (settled.headers.get('etag') === etag && Date.now() - leftAt < 10_000) {
      await sleep(100);
      settled = await api(hub.url);
    }
    assert.notEqual(settled.headers.get('etag'), etag, `the ETag 10 s after ${leaving.what} left`);
    await assertListsOpen(hub, `after ${leaving.what} left`);
  }
  t.diagnostic(problems.length ? problems.join('\n') : 'ETags consistent');
  assert.deepEqual(problems, [], 'an answer with a changed listing must carry a new ETag (304 only when nothing changed)');
  await Promise.all(open(hub).map((c) => closeConn(hub, c)));
});

test('the whole server stops and starts again on its state: subscribers come back with their last ids and lose nothing', { timeout: 90_000 }, async (t) => {
  const persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-mercure-tree-restart-'));
  const options = { vars: TREE_VARS, secrets: HUB_SECRETS, persistDir };
  let own = await startServer(options);
  const port = own.port;
  try {
    const h = hubModel(own.url, `tree-restart-${process.pid}-${Date.now()}`);
    const conns = await openMany(h, cycle(h, 42));
    assertSpread(conns, '42 subscribers before the stop');
    await publishBatch(h, 'a');
    await verifyAll(h, conns, 'batch a');
    const leaving = conns.filter((_, i) => i % 3 === 1);
    for (const c of leaving) await closeConn(h, c);
    await publishBatch(h, 'b'); // stored before the stop: the root's history
    const stayed = conns.filter((c) => c.closedAt === null);
    await verifyAll(h, stayed, 'batch b');
    const lastIds = conns.map((c) => c.stream.lastEventId);
    const beforeStop = h.log.length;

    await own.stop(); // the root and every node with it
    for (const c of stayed) {
      await c.stream.waitForEnd(10_000).catch(() => {});
      c.closedAt = h.log.length;
    }
    own = await startServer({ ...options, port });

    const back = await openMany(h, conns.map((c) => c.spec), (i) => {
      assert.ok(lastIds[i], `${conns[i].what} had no id`);
      return { cursor: { how: i % 2 === 0 ? 'header' : 'query', id: lastIds[i] } };
    });
    const fromEarliest = await openMany(h, h.kinds.slice(0, 6), () => ({ cursor: { how: 'query', id: 'earliest' } }));
    for (const c of [...back, ...fromEarliest]) {
      assert.equal(c.stream.headers.get('last-event-id'), c.cursor.id, `${c.what}: the response's Last-Event-ID after the restart`);
    }
    const perNode = assertSpread([...back, ...fromEarliest], 'after the restart');
    assert.ok(perNode.size > 1, 'after the restart every subscriber is on one object');
    await verifyAll(h, [...back, ...fromEarliest], 'the replays after the restart');
    await publishBatch(h, 'c');
    await verifyAll(h, [...back, ...fromEarliest], 'batch c after the restart');
    for (const [i, c] of back.entries()) {
      const missed = h.log.slice(h.log.findIndex((u) => u.id === lastIds[i]) + 1, beforeStop).filter((u) => admits(c, u)).length;
      if (leaving.includes(conns[i])) assert.ok(missed > 0, `${c.what} missed nothing of batch b: the test proves little`);
      else assert.equal(missed, 0, `${c.what} was connected until the stop`);
    }
    t.diagnostic(`${back.length} subscribers came back on ${perNode.size} objects; ${leaving.length} of them had missed batch b`);
  } finally {
    await Promise.all(everyStream.size ? [...everyStream].map((s) => s.close().catch(() => {})) : []);
    await own.stop();
    await rm(persistDir, { recursive: true, force: true });
  }
});
