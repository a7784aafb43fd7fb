// Subscribing to the Mercure hub (GET /.well-known/mercure; docs/mercure.md §5,
// §6): which matchers route which updates (0.x templates, 1.0 exact and URL patterns), the
// refused queries, the stream's headers and bytes, private updates and the token's grants,
// one delivery per connection, replay from the hub-wide history, the end of a stream at the
// token's `exp`, and the heartbeat.
//
// One server: both keys, anonymous subscribing on, one issuer, HEARTBEAT_SECONDS 3.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { sleep } from '../support/http.mjs';
import {
  HUB_SECRETS,
  ISSUER,
  SUBSCRIBER_KEY,
  accessToken,
  assertBadRequest,
  assertChallenge,
  assertNothingMore,
  detail,
  epoch,
  freshTopic,
  mercureToken,
  nextUpdate,
  publishOk,
  rawRequest,
  rawBlockOf,
  subscribe,
  subscribeRequest,
  subscribeUrl,
  subscriberToken,
} from '../support/mercure.mjs';

const HEARTBEAT_SECONDS = 3;

const [server] = useServers({
  vars: { MERCURE_ANONYMOUS: '1', MERCURE_ISSUERS: ISSUER, HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS) },
  secrets: HUB_SECRETS,
});

let idCounter = 0;
const freshId = (what) => `urn:test:${what}:${process.pid}:${(idCounter += 1)}`;

/**
 * Opens one stream with `matchers` (query pairs), publishes one update per entry of
 * `updates` ({topics, private?}), and asserts that exactly the ones marked `match: true`
 * arrive, once each and in order. `subscribeOptions` (e.g. a token) go to subscribe().
 */
async function assertRouting(matchers, updates, subscribeOptions = {}) {
  const stream = await subscribe(server.url, matchers, subscribeOptions);
  const expected = [];
  for (const u of updates) {
    const id = freshId('route');
    const pairs = [...u.topics.map((t) => ['topic', t]), ['data', JSON.stringify(u.topics)], ['id', id]];
    if (u.private) pairs.push(['private', 'on']);
    await publishOk(server.url, pairs);
    if (u.match) expected.push(id);
  }
  const what = `matchers ${JSON.stringify(matchers)}`;
  for (const id of expected) {
    const e = await nextUpdate(stream);
    assert.equal(e.lastEventId, id, `${what}: expected ${id}, got ${e.lastEventId} (${e.data})`);
  }
  await assertNothingMore(stream, expected.length, what);
}

describe('routing: which subscriptions receive an update (§5, §6.1, §6.6)', () => {
  test('an exact topic selector receives that topic only', async () => {
    const t = freshTopic('exact');
    await assertRouting([['topic', t]], [
      { topics: [t], match: true },
      { topics: [`${t}/child`] },
      { topics: [t.toUpperCase()] },
      { topics: [`${t}x`] },
      { topics: [`${freshTopic('other')}`, t], match: true },
    ]);
  });

  test('the * selector receives every topic', async () => {
    await assertRouting([['topic', '*']], [
      { topics: [freshTopic('any')], match: true },
      { topics: ['urn:isbn:0-441-17271-7'], match: true },
      { topics: ['plain string'], match: true },
    ]);
  });

  test('a {var} template receives its expansions and nothing else', async () => {
    const b = freshTopic('template');
    await assertRouting([['topic', `${b}/books/{id}`]], [
      { topics: [`${b}/books/ab12`], match: true },
      { topics: [`${b}/books/a%20b`], match: true },
      { topics: [`${b}/books/a/b`] },
      { topics: [`${b}/bar/ab12`] },
      { topics: [`${b}/books/ab12/reviews`] },
      { topics: [`${b}/books/a?b`] },
      { topics: [`${b}/books/{id}`], match: true }, // identical to the selector
    ]);
  });

  test('{+var}, {/var} and {?var} templates follow RFC 6570', async () => {
    const b = freshTopic('operators');
    await assertRouting([['topic', `${b}/files{+path}`]], [
      { topics: [`${b}/files/a/b/c`], match: true },
      { topics: [`${b}/other/a`] },
    ]);
    await assertRouting([['topic', `${b}/users{/id}`]], [
      { topics: [`${b}/users/42`], match: true },
      { topics: [`${b}/users/42/43`] },
      { topics: [`${b}/users42`] },
    ]);
    await assertRouting([['topic', `${b}/search{?q}`]], [
      { topics: [`${b}/search?q=dune`], match: true },
      { topics: [`${b}/search?r=dune`] },
    ]);
  });

  test('match and match_exact compare byte for byte, with no template reading', async () => {
    const b = freshTopic('match-exact');
    for (const name of ['match', 'match_exact']) {
      await assertRouting([[name, `${b}/books/{id}`]], [
        { topics: [`${b}/books/1`] },
        { topics: [`${b}/books/{id}`], match: true },
      ]);
    }
    await assertRouting([['match', '*']], [{ topics: [freshTopic('star')], match: true }]);
  });

  test('match_urlpattern matches WHATWG URL patterns, case-sensitively, relative ones against R', async () => {
    const b = freshTopic('urlpattern');
    await assertRouting([['match_urlpattern', `${b}/books/:id`]], [
      { topics: [`${b}/books/ab12`], match: true },
      { topics: [`${b}/BOOKS/ab12`] },
      { topics: [`${b}/books/a/b`] },
      { topics: [`${b}/bar/ab12`] },
      { topics: ['urn:not-a-url-of-that-kind'] },
    ]);
    const rel = `/relative-${process.pid}-${Date.now()}`;
    await assertRouting([['match_urlpattern', `${rel}/:id`]], [
      { topics: [`${server.url}${rel}/x`], match: true },
      { topics: [`${rel}/y`], match: true },
      { topics: [`https://example.com${rel}/z`] },
    ]);
  });

  test('a connection with several matching subscriptions receives a multi-topic update once', async () => {
    const t1 = freshTopic('once-a');
    const t2 = freshTopic('once-b');
    await assertRouting([
      ['topic', t1], ['topic', t2], ['topic', '*'], ['match', t1], ['match_exact', t2],
      ['match_urlpattern', `${t1.replace(/[^/]+$/, '')}*`],
    ], [{ topics: [t1, t2], match: true }, { topics: [t2, t1, freshTopic('once-c')], match: true }]);
  });

  test('query values are form-decoded: + is a space', async () => {
    const t = `urn:test:${process.pid}: a topic with spaces`;
    await assertRouting([['topic', t]], [{ topics: [t], match: true }]);
    const stream = await subscribe(server.url, [['topic', t.replaceAll(' ', '%20')]]); // sent as %2520: no match
    await publishOk(server.url, [['topic', t]]);
    await assertNothingMore(stream, 0, 'a selector with a literal %20');
  });
});

describe('refused subscriptions (§6.1–6.3)', () => {
  const t = () => freshTopic('refused');

  test('an unknown parameter in the match namespace is 400, even beside valid matchers', async () => {
    for (const name of ['match_regex', 'Match', 'MATCH_EXACT', 'matchx', 'match_', 'match_urlpatterns']) {
      assertBadRequest(await subscribeRequest(server.url, [['topic', t()], [name, 'x']]), undefined, `parameter ${name}`);
    }
  });

  test('other unknown parameters are ignored', async () => {
    const topic = t();
    await assertRouting([['topic', topic], ['foo', 'bar'], ['access_token', 'x']], [{ topics: [topic], match: true }]);
  });

  test('a query with no matcher is 400', async () => {
    for (const pairs of [[], [['foo', 'bar']], [['lastEventID', 'earliest']]]) {
      assertBadRequest(await subscribeRequest(server.url, pairs), undefined, `query ${JSON.stringify(pairs)}`);
    }
  });

  test('more than 100 matchers, one over 4096 bytes, a control character or a bad URL pattern is 400', async () => {
    const many = Array.from({ length: 101 }, (_, i) => ['topic', `t${i}`]);
    const cases = [
      ['101 matchers', many],
      ['a 4097-byte matcher', [['topic', `https://example.com/${'a'.repeat(4097 - 20)}`]]],
      ['a 4097-byte match', [['match', 'é'.repeat(2048) + 'a']]],
      ['a control character', [['topic', 'https://example.com/a\u0001b']]],
      ['a C1 control character', [['match', 'https://example.com/a\u0090b']]],
      ['an unparsable URL pattern', [['match_urlpattern', 'https://example.com/(']]],
    ];
    for (const [name, pairs] of cases) assertBadRequest(await subscribeRequest(server.url, pairs), undefined, name);
    const hundred = await subscribe(server.url, many.slice(0, 100));
    assert.equal(hundred.status, 200, '100 matchers are fine');
  });

  test('an invalid token is 401 invalid_token even though anonymous subscribing is allowed', async () => {
    const cases = [
      ['wrong key', mercureToken('wrong', { subscribe: ['*'] })],
      ['expired', subscriberToken(['*'], { exp: epoch(-10) })],
      ['1.0 with a wrong aud', accessToken(server.url, SUBSCRIBER_KEY, { aud: 'https://elsewhere.test/.well-known/mercure' })],
      ['1.0 with an unknown iss', accessToken(server.url, SUBSCRIBER_KEY, { iss: 'https://nobody.test' })],
    ];
    for (const [name, token] of cases) {
      assertChallenge(await subscribeRequest(server.url, [['topic', '*']], { authorization: `Bearer ${token}` }), 401, 'invalid_token', name);
      assertChallenge(await subscribeRequest(server.url, [['topic', '*'], ['authorization', token]]), 401, 'invalid_token', `${name} (query)`);
    }
  });
});

describe('the stream (§6.4, §6.5, §6.7)', () => {
  test('the answer is 200 with the event-stream headers, and a first chunk at once', async () => {
    const started = Date.now();
    const stream = await subscribe(server.url, [['topic', freshTopic('headers')]]);
    assert.ok(Date.now() - started < 3000, 'headers and the first chunk within 3 s');
    assert.match(stream.headers.get('content-type'), /^text\/event-stream/);
    assert.equal(stream.headers.get('cache-control'), 'private, no-cache, no-store, must-revalidate, max-age=0');
    assert.equal(stream.headers.get('x-accel-buffering'), 'no');
    assert.match(stream.text, /^(:|retry: \d+\r?\n)/, `first bytes ${JSON.stringify(stream.text.slice(0, 40))}`);
  });

  test('HEAD subscribes too: 200 with the event-stream headers at once', async () => {
    const r = await rawRequest(subscribeUrl(server.url, [['topic', freshTopic('head')]]), { method: 'HEAD', timeoutMs: 3000 });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] ?? '', /^text\/event-stream/);
    assert.equal(r.headers['cache-control'], 'private, no-cache, no-store, must-revalidate, max-age=0');
  });

  test('an update without type or retry is its id verbatim and one data line per line of its data', async () => {
    const topic = freshTopic('format');
    const stream = await subscribe(server.url, [['topic', topic]]);
    const plainId = 'urn:x:"quoted",[1],{a}}';
    const data = 'line one\n        eight spaces\r\nthird\rfourth\n\nlast ';
    await publishOk(server.url, [['topic', topic], ['data', data], ['id', plainId]]);
    assert.deepEqual(await rawBlockOf(stream, plainId), [
      `id: ${plainId}`,
      'data: line one',
      'data:         eight spaces',
      'data: third',
      'data: fourth',
      'data: ',
      'data: last ',
    ]);
    const e = await nextUpdate(stream);
    assert.deepEqual([e.type, e.lastEventId, e.data], ['message', plainId, 'line one\n        eight spaces\nthird\nfourth\n\nlast ']);

    const emptyId = freshId('empty');
    await publishOk(server.url, [['topic', topic], ['id', emptyId]]);
    assert.deepEqual(await rawBlockOf(stream, emptyId), [`id: ${emptyId}`, 'data: ']);

    const generated = await publishOk(server.url, [['topic', topic], ['data', ' leading space']]);
    assert.deepEqual(await rawBlockOf(stream, generated), [`id: ${generated}`, 'data:  leading space']);
    assert.equal((await stream.waitFor(3))[2].data, ' leading space');
  });

  test('a published type and retry come as event and retry lines, in the order event, retry, id, data', async () => {
    const topic = freshTopic('typed');
    const stream = await subscribe(server.url, [['topic', topic]]);
    const typedId = freshId('typed');
    await publishOk(server.url, [['topic', topic], ['data', 'typed'], ['id', typedId], ['type', 'book'], ['retry', '1500']]);
    const typed = await nextUpdate(stream);
    assert.deepEqual([typed.type, typed.data, typed.lastEventId], ['book', 'typed', typedId]);
    assert.equal(stream.parser.reconnectionTime, 1500, 'the retry field');
    const onlyType = await publishOk(server.url, [['topic', topic], ['type', 'only-type']]);
    const onlyRetry = await publishOk(server.url, [['topic', topic], ['retry', '700']]);
    assert.deepEqual(await rawBlockOf(stream, onlyType), ['event: only-type', `id: ${onlyType}`, 'data: ']);
    assert.deepEqual(await rawBlockOf(stream, onlyRetry), ['retry: 700', `id: ${onlyRetry}`, 'data: ']);
    assert.deepEqual(await rawBlockOf(stream, typedId), ['event: book', 'retry: 1500', `id: ${typedId}`, 'data: typed']);
  });

  test('a form body decodes + as a space, then %XX', async () => {
    const topic = freshTopic('plus');
    const stream = await subscribe(server.url, [['topic', topic]]);
    await publishOk(server.url, [], { body: `topic=${encodeURIComponent(topic)}&data=a+b%2Bc%20d&id=plus-${(idCounter += 1)}` });
    assert.equal((await nextUpdate(stream)).data, 'a b+c d');
  });

  test('an idle stream carries a keep-alive comment at least every HEARTBEAT_SECONDS/3', async () => {
    const stream = await subscribe(server.url, [['topic', freshTopic('heartbeat')]]);
    const before = stream.commentLines.length;
    await stream.waitForComments(before + 2, (2 * HEARTBEAT_SECONDS * 1000) / 3 + 1500);
    assert.ok(stream.commentLines.slice(before).every((c) => c.trim() === 'keep-alive'), `comments ${JSON.stringify(stream.commentLines)}`);
    assert.equal(stream.events.length, 0, 'nothing but comments on an idle stream');
  });

  test('a token with exp ends the stream cleanly no later than exp', async () => {
    const topic = freshTopic('exp');
    const exp = epoch(3);
    const stream = await subscribe(server.url, [['topic', topic]], { token: subscriberToken([topic], { exp }) });
    await publishOk(server.url, [['topic', topic], ['data', 'before exp'], ['private', 'on']]);
    assert.equal((await nextUpdate(stream)).data, 'before exp');
    const reason = await stream.waitForEnd(exp * 1000 - Date.now() + 1500);
    const endedAt = Date.now();
    assert.equal(reason, 'end', `the stream should end cleanly, ended by ${reason} ${stream.error?.message ?? ''}`);
    assert.ok(endedAt <= exp * 1000 + 1000, `ended ${endedAt - exp * 1000} ms after exp`);
  });
});

describe('private updates and grants (§5.3, §6.6)', () => {
  test('a tokenless subscriber never receives private updates, whatever the private field says', async () => {
    const t = freshTopic('tokenless');
    const stream = await subscribe(server.url, [['topic', t]]);
    for (const value of ['on', '', 'false', '0']) {
      await publishOk(server.url, [['topic', t], ['data', `private=${value}`], ['private', value]]);
    }
    await publishOk(server.url, [['topic', t], ['data', 'public']]);
    assert.equal((await nextUpdate(stream)).data, 'public');
    await assertNothingMore(stream, 1, 'private updates to a tokenless subscriber');
  });

  test('a token that grants subscribe on one of the update\'s topics receives it; others do not', async () => {
    const t1 = freshTopic('private-a');
    const t2 = freshTopic('private-b');
    const b = t1.replace(/\/[^/]+$/, '');
    const cases = [
      ['exact grant on the topic', subscriberToken([t1]), true],
      ['grant on the alternate topic only', subscriberToken([t2]), true],
      ['template grant', subscriberToken([`${b}/{x}`]), true],
      ['* grant', subscriberToken(['*']), true],
      ['grant on another topic', subscriberToken([freshTopic('elsewhere')]), false],
      ['publish grant only', mercureToken(SUBSCRIBER_KEY, { publish: ['*'] }), false],
      ['1.0 subscribe on the topic', accessToken(server.url, SUBSCRIBER_KEY, { details: [detail(['subscribe'], [t1])] }), true],
      ['1.0 urlpattern subscribe', accessToken(server.url, SUBSCRIBER_KEY, {
        details: [detail(['subscribe'], [{ match: `${t2.replace(/[^/]+$/, '')}:id`, match_type: 'urlpattern' }])],
      }), true],
      ['1.0 publish only', accessToken(server.url, SUBSCRIBER_KEY, { details: [detail(['publish'], ['*'])] }), false],
    ];
    for (const [name, token, receives] of cases) {
      const stream = await subscribe(server.url, [['topic', t1]], { token });
      const id = freshId('private');
      await publishOk(server.url, [['topic', t1], ['topic', t2], ['data', name], ['private', 'on'], ['id', id]]);
      await publishOk(server.url, [['topic', t1], ['data', 'public after']]);
      const first = await nextUpdate(stream);
      if (receives) {
        assert.equal(first.lastEventId, id, `${name}: the private update`);
        assert.equal((await nextUpdate(stream)).data, 'public after', `${name}: then the public one`);
      } else {
        assert.equal(first.data, 'public after', `${name}: only the public update`);
      }
      await stream.close();
    }
  });

  test('routing stays the query\'s: a * grant does not widen what the subscriber listens to', async () => {
    const t = freshTopic('routing');
    await assertRouting([['topic', t]], [
      { topics: [freshTopic('not-listened')], private: true },
      { topics: [freshTopic('not-listened')] },
      { topics: [t], private: true, match: true },
    ], { token: subscriberToken(['*']) });
  });

  test('the token may come in the authorization query parameter or a cookie', async () => {
    const t = freshTopic('token-carriers');
    const token = subscriberToken([t]);
    const carriers = [
      { name: 'authorization query parameter', pairs: [['topic', t], ['authorization', token]], headers: {} },
      { name: 'mercureAuthorization cookie', pairs: [['topic', t]], headers: { cookie: `mercureAuthorization=${token}` } },
      { name: '__Secure-mercure_access_token cookie', pairs: [['topic', t]], headers: { cookie: `__Secure-mercure_access_token=${token}` } },
      { name: '1.0 token in the query', pairs: [['match', t], ['authorization', accessToken(server.url, SUBSCRIBER_KEY)]], headers: {} },
    ];
    for (const c of carriers) {
      const stream = await subscribe(server.url, c.pairs, { headers: c.headers });
      const id = freshId('carrier');
      await publishOk(server.url, [['topic', t], ['private', 'on'], ['data', c.name], ['id', id]]);
      assert.equal((await nextUpdate(stream)).lastEventId, id, c.name);
      await stream.close();
    }
  });
});

describe('history and replay (§6.9)', () => {
  /** Publishes updates on a fresh topic; returns {topic, ids}. `spec`: [id | null, private?] */
  async function history(what, spec) {
    const topic = freshTopic(what);
    const ids = [];
    for (const [i, [id, priv]] of spec.entries()) {
      const pairs = [['topic', topic], ['data', `${what} ${i}`]];
      if (id) pairs.push(['id', id]);
      if (priv) pairs.push(['private', 'on']);
      ids.push(await publishOk(server.url, pairs));
    }
    return { topic, ids };
  }

  /**
   * Subscribes with a cursor and asserts exactly `expected` ids are replayed, then that a live
   * update comes next. The live update goes on a topic of its own (which the stream also
   * listens to), so that it is not part of what a later replay of `pairs` finds.
   */
  async function assertReplay(pairs, expected, { headers = {}, token, echoed } = {}) {
    const liveTopic = freshTopic('live');
    const stream = await subscribe(server.url, [...pairs, ['topic', liveTopic]], { headers, token });
    const what = `replay ${JSON.stringify(pairs)} ${JSON.stringify(headers)}`;
    if (echoed !== undefined) {
      assert.equal(stream.headers.get('last-event-id'), echoed, `${what}: Last-Event-ID response header`);
      assert.equal(stream.headers.get('mercure-last-event-id'), echoed, `${what}: Mercure-Last-Event-ID response header`);
    }
    for (const id of expected) assert.equal((await nextUpdate(stream)).lastEventId, id, what);
    const live = await publishOk(server.url, [['topic', liveTopic], ['data', 'live']]);
    const next = await nextUpdate(stream);
    assert.equal(next.lastEventId, live, `${what}: the live update comes right after the replay`);
    await assertNothingMore(stream, expected.length + 1, what, 300);
    await stream.close();
  }

  test('Last-Event-ID, lastEventID and last_event_id replay what came after that id', async () => {
    const { topic, ids } = await history('cursor', [[freshId('h')], [freshId('h')], [null]]);
    await assertReplay([['topic', topic]], ids.slice(1), { headers: { 'last-event-id': ids[0] }, echoed: ids[0] });
    await assertReplay([['topic', topic], ['lastEventID', ids[0]]], ids.slice(1), { echoed: ids[0] });
    await assertReplay([['match', topic], ['last_event_id', ids[1]]], ids.slice(2), { echoed: ids[1] });
  });

  test('the header wins over the query cursors, last_event_id over lastEventID, and an empty header counts as none', async () => {
    const { topic, ids } = await history('precedence', [[freshId('p')], [freshId('p')], [freshId('p')]]);
    await assertReplay([['topic', topic], ['lastEventID', ids[0]], ['last_event_id', ids[0]]], ids.slice(2),
      { headers: { 'last-event-id': ids[1] }, echoed: ids[1] });
    await assertReplay([['topic', topic], ['lastEventID', ids[0]], ['last_event_id', ids[1]]], ids.slice(2), { echoed: ids[1] });
    await assertReplay([['topic', topic], ['lastEventID', ids[1]]], ids.slice(2), { headers: { 'last-event-id': '' }, echoed: ids[1] });
  });

  test('earliest replays every kept update the connection may receive', async () => {
    const { topic, ids } = await history('earliest', [[freshId('e')], [null], [freshId('e')]]);
    await assertReplay([['topic', topic], ['lastEventID', 'earliest']], ids, { echoed: 'earliest' });
  });

  test('a Last-Event-ID header of earliest replays the whole kept history of the topic', async () => {
    const { topic, ids } = await history('earliest-header', [[null], [freshId('eh')]]);
    await assertReplay([['topic', topic]], ids, { headers: { 'last-event-id': 'earliest' }, echoed: 'earliest' });
  });

  test('an unknown id replays nothing and is echoed as earliest', async () => {
    const { topic } = await history('unknown', [[freshId('u')], [null]]);
    await assertReplay([['topic', topic]], [], { headers: { 'last-event-id': 'urn:never:published' }, echoed: 'earliest' });
  });

  test('a reused id resumes after its first occurrence', async () => {
    const dup = freshId('dup');
    const { topic, ids } = await history('reused', [[dup], [null], [dup], [null]]);
    assert.equal(ids[2], dup);
    await assertReplay([['topic', topic]], ids.slice(1), { headers: { 'last-event-id': dup }, echoed: dup });
  });

  test('ids are cursors into one hub-wide history, whatever their topic', async () => {
    const other = await history('elsewhere', [[freshId('w')]]);
    const { topic, ids } = await history('after-elsewhere', [[freshId('w')], [freshId('w')]]);
    await assertReplay([['topic', topic]], ids, { headers: { 'last-event-id': other.ids[0] }, echoed: other.ids[0] });
  });

  test('replayed private updates are filtered by the current token', async () => {
    const { topic, ids } = await history('private-replay', [[null], [null, true], [null]]);
    await assertReplay([['topic', topic], ['lastEventID', 'earliest']], [ids[0], ids[2]], { echoed: 'earliest' });
    await assertReplay([['topic', topic], ['lastEventID', 'earliest']], ids, { token: subscriberToken([topic]), echoed: 'earliest' });
    await assertReplay([['topic', topic], ['lastEventID', 'earliest']], [ids[0], ids[2]],
      { token: subscriberToken([freshTopic('unrelated')]), echoed: 'earliest' });
  });

  test('updates published while the replay is read are neither lost nor repeated', async () => {
    const spec = Array.from({ length: 20 }, () => [null]);
    const { topic, ids } = await history('no-gap', spec);
    const stream = await subscribe(server.url, [['topic', topic], ['lastEventID', 'earliest']]);
    const live = [];
    for (let i = 0; i < 5; i += 1) live.push(await publishOk(server.url, [['topic', topic], ['data', `live ${i}`]]));
    await stream.waitFor(ids.length + live.length, 5_000);
    await sleep(300);
    assert.deepEqual(stream.events.map((e) => e.lastEventId), [...ids, ...live]);
  });
});
