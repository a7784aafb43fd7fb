// Publishing to the Mercure hub (POST /.well-known/mercure; docs/mercure.md §3
// and §4): where the token is read and in which order, cookie-borne tokens and the request's
// origin, the answer, and every refusal — tokens that fail verification (0.x and 1.0), missing
// grants, bodies the hub does not take, and the field rules.
//
// One server: both keys, anonymous subscribing on, two issuers (the list has spaces to trim),
// one CORS origin, and MAX_BODY_BYTES 2048 for the 413 test.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { assertError } from '../support/http.mjs';
import {
  ISSUER,
  HUB_SECRETS,
  PUBLISHER_KEY,
  SECOND_ISSUER,
  SUBSCRIBER_KEY,
  URN_UUID,
  accessToken,
  assertBadRequest,
  assertChallenge,
  assertNothingMore,
  assertPublishedUpdate,
  detail,
  epoch,
  formBody,
  freshTopic,
  mercureToken,
  mintToken,
  nextUpdate,
  publishOk,
  publishUpdate,
  publisherToken,
  rawRequest,
  resourceOf,
  subscribe,
} from '../support/mercure.mjs';

const ALLOWED_ORIGIN = 'http://allowed.test';
const MAX_BODY_BYTES = 2048;

const [server] = useServers({
  vars: {
    MERCURE_ANONYMOUS: '1',
    MERCURE_ISSUERS: ` ${ISSUER} , ${SECOND_ISSUER} `,
    MERCURE_CORS_ORIGINS: ALLOWED_ORIGIN,
    MAX_BODY_BYTES: String(MAX_BODY_BYTES),
  },
  secrets: HUB_SECRETS,
});

const GOOD = () => publisherToken();
const BAD = () => mercureToken('not-the-publisher-key', { publish: ['*'] });
/** A publish form with a fresh topic and a publisher-chosen id. */
const update = (what) => [['topic', freshTopic(what)], ['data', what], ['id', `urn:test:${freshTopic(what)}`]];
const idOf = (pairs) => pairs.find(([k]) => k === 'id')[1];

describe('where the publish token is read (§3.1, §3.2)', () => {
  test('a token in the Authorization header publishes, whatever the case of "Bearer"', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const pairs = update('header');
      const r = await publishUpdate(server.url, pairs, { headers: { authorization: `${scheme} ${GOOD()}` } });
      assertPublishedUpdate(r, idOf(pairs), `${scheme} header`);
    }
  });

  test('a token in the authorization query parameter publishes', async () => {
    const pairs = update('query');
    const r = await publishUpdate(server.url, pairs, { query: `?authorization=${encodeURIComponent(GOOD())}` });
    assertPublishedUpdate(r, idOf(pairs), 'authorization query parameter');
  });

  test('a token in either cookie publishes when the Origin is the hub\'s own or an allowed one', async () => {
    for (const cookie of ['mercureAuthorization', '__Secure-mercure_access_token']) {
      for (const origin of [server.url, ALLOWED_ORIGIN]) {
        const pairs = update('cookie');
        const r = await publishUpdate(server.url, pairs, { headers: { cookie: `${cookie}=${GOOD()}`, origin } });
        assertPublishedUpdate(r, idOf(pairs), `${cookie} cookie from ${origin}`);
      }
    }
  });

  test('without an Origin, the origin of the Referer lets a cookie token publish', async () => {
    const pairs = update('referer');
    const r = await publishUpdate(server.url, pairs, {
      headers: { cookie: `mercureAuthorization=${GOOD()}`, referer: `${server.url}/some/page?x=1` },
    });
    assertPublishedUpdate(r, idOf(pairs), 'cookie with a same-origin Referer');
  });

  test('a cookie token from an unlisted origin, or with neither Origin nor Referer, is 400 invalid_request', async () => {
    const cases = [
      { cookie: `mercureAuthorization=${GOOD()}`, origin: 'http://evil.test' },
      { cookie: `mercureAuthorization=${GOOD()}`, referer: 'http://evil.test/page' },
      { cookie: `__Secure-mercure_access_token=${GOOD()}` },
    ];
    for (const headers of cases) {
      const r = await publishUpdate(server.url, update('cookie-origin'), { headers });
      assertChallenge(r, 400, 'invalid_request', `cookie publish with ${JSON.stringify(Object.keys(headers))} ${headers.origin ?? headers.referer ?? ''}`);
    }
  });

  test('an Origin header never causes the rejection of a header-borne token', async () => {
    const pairs = update('foreign-origin');
    const r = await publishUpdate(server.url, pairs, { token: GOOD(), headers: { origin: 'http://evil.test' } });
    assertPublishedUpdate(r, idOf(pairs), 'header token with a foreign Origin');
  });

  test('the first mechanism present is used and the others are ignored', async () => {
    const cases = [
      { name: 'good header, bad query', header: GOOD(), query: BAD(), ok: true },
      { name: 'bad header, good query', header: BAD(), query: GOOD(), ok: false },
      { name: 'good query, bad cookie', query: GOOD(), cookie: `mercureAuthorization=${BAD()}`, ok: true },
      { name: 'bad query, good cookie', query: BAD(), cookie: `mercureAuthorization=${GOOD()}`, ok: false },
      { name: 'bad __Secure- cookie, good mercureAuthorization cookie',
        cookie: `mercureAuthorization=${GOOD()}; __Secure-mercure_access_token=${BAD()}`, ok: false },
      { name: 'good __Secure- cookie, bad mercureAuthorization cookie',
        cookie: `mercureAuthorization=${BAD()}; __Secure-mercure_access_token=${GOOD()}`, ok: true },
    ];
    for (const c of cases) {
      const pairs = update('precedence');
      const headers = { origin: server.url };
      if (c.header) headers.authorization = `Bearer ${c.header}`;
      if (c.cookie) headers.cookie = c.cookie;
      const query = c.query ? `?authorization=${encodeURIComponent(c.query)}` : '';
      const r = await publishUpdate(server.url, pairs, { headers, query });
      if (c.ok) assertPublishedUpdate(r, idOf(pairs), c.name);
      else assertChallenge(r, 401, 'invalid_token', c.name);
    }
  });

  test('a malformed Authorization header is 400 invalid_request even with a good cookie or query token', async () => {
    for (const value of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', `Token ${GOOD()}`]) {
      const r = await publishUpdate(server.url, update('malformed'), {
        headers: { authorization: value, cookie: `mercureAuthorization=${GOOD()}`, origin: server.url },
        query: `?authorization=${encodeURIComponent(GOOD())}`,
      });
      assertChallenge(r, 400, 'invalid_request', `Authorization: ${JSON.stringify(value)}`);
    }
  });

  test('a repeated Authorization header is 400 invalid_request', async () => {
    const token = GOOD();
    const r = await rawRequest(`${server.url}/.well-known/mercure`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: [`Bearer ${token}`, `Bearer ${token}`],
      },
      body: formBody(update('repeated')),
    });
    assert.equal(r.status, 400, `two Authorization lines: ${r.status} ${r.text}`);
    assert.match(r.headers['www-authenticate'] ?? '', /^Bearer .*error="invalid_request"/, 'WWW-Authenticate');
  });

  test('the access_token query parameter is not a token source', async () => {
    const r = await publishUpdate(server.url, update('access-token'), { query: `?access_token=${encodeURIComponent(GOOD())}` });
    assertChallenge(r, 401, null, 'access_token query parameter only');
  });
});

describe('the publish answer (§4.6, §4.7)', () => {
  test('a publisher id comes back verbatim as the text/plain body, and may be reused', async () => {
    const id = 'urn:example:"quoted"[0],{x}, and spaces ünïcode';
    for (let i = 0; i < 2; i += 1) {
      const r = await publishUpdate(server.url, [['topic', freshTopic('verbatim')], ['id', id]], { token: GOOD() });
      assertPublishedUpdate(r, id, `publish #${i + 1} with a fixed id`);
    }
  });

  test('without an id the hub generates distinct urn:uuid ids', async () => {
    const ids = [];
    for (let i = 0; i < 3; i += 1) ids.push(await publishOk(server.url, [['topic', freshTopic('generated')], ['data', 'x']]));
    for (const id of ids) assert.match(id, URN_UUID, `generated id ${id}`);
    assert.equal(new Set(ids).size, ids.length, `ids should be distinct: ${ids}`);
  });

  test('a typical client library body (form with private, id, type, retry) publishes', async () => {
    const body = 'topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=%7B%22title%22%3A+%22Dune%22%7D&private=on' +
      '&id=urn%3Aexample%3Adune&type=book&retry=1500';
    const r = await publishUpdate(server.url, [], { body, token: publisherToken(['*'], { exp: epoch(600) }) });
    assertPublishedUpdate(r, 'urn:example:dune', 'the §4.8 body');
  });

  test('for a repeated field other than topic the first wins, and unknown fields are ignored', async () => {
    const topic = freshTopic('repeated-fields');
    const stream = await subscribe(server.url, [['topic', topic]]);
    const id = `urn:test:first:${topic}`;
    const r = await publishUpdate(server.url, [
      ['topic', topic], ['data', 'first'], ['data', 'second'], ['id', id], ['id', 'urn:test:second'],
      ['type', 'one'], ['type', 'mercure'], ['retry', '10'], ['retry', 'x'], ['target', 'ignored'], ['unknown', 'ignored'],
    ], { token: GOOD() });
    assertPublishedUpdate(r, id, 'repeated fields');
    const e = await nextUpdate(stream);
    assert.deepEqual([e.data, e.lastEventId, e.type], ['first', id, 'one']);
  });

  test('a form content type with a charset parameter is accepted', async () => {
    const pairs = update('charset');
    const r = await publishUpdate(server.url, pairs, { token: GOOD(), contentType: 'application/x-www-form-urlencoded; charset=UTF-8' });
    assertPublishedUpdate(r, idOf(pairs), 'charset parameter');
  });
});

describe('refusals of a publish request (§3.8, §4.1–4.5)', () => {
  test('no token is 401 with a bare Bearer challenge', async () => {
    const r = await publishUpdate(server.url, update('no-token'));
    const challenge = assertChallenge(r, 401, null, 'no token');
    assert.match(challenge, /resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/\.well-known\/mercure"/,
      `challenge ${challenge}`);
  });

  test('a token that lacks the publish grant is 403 insufficient_scope, and nothing is dispatched', async () => {
    const granted = freshTopic('granted');
    const stream = await subscribe(server.url, [['topic', granted]]);
    const token = publisherToken(['https://example.com/granted/{x}', granted]);
    const cases = [
      [['topic', freshTopic('not-granted')]],
      [['topic', granted], ['topic', freshTopic('not-granted')]],
      [['topic', granted], ['topic', freshTopic('not-granted')], ['private', 'on']],
    ];
    for (const pairs of cases) {
      const r = await publishUpdate(server.url, [...pairs, ['data', 'must not arrive']], { token });
      assertChallenge(r, 403, 'insufficient_scope', `publish ${formBody(pairs)}`);
    }
    const subscribeOnly = mercureToken(PUBLISHER_KEY, { subscribe: ['*'] });
    assertChallenge(await publishUpdate(server.url, [['topic', granted]], { token: subscribeOnly }), 403, 'insufficient_scope',
      'a token with subscribe but no publish');
    await assertNothingMore(stream, 0, 'refused updates');
    // and the grant does work for the granted topic
    await publishOk(server.url, [['topic', granted], ['data', 'allowed']], { token });
    assert.equal((await nextUpdate(stream)).data, 'allowed');
  });

  test('a body that is not a form is 415, checked after the token', async () => {
    for (const contentType of ['application/json', 'text/plain', 'multipart/form-data; boundary=x', null]) {
      const r = await publishUpdate(server.url, update('not-a-form'), { token: GOOD(), contentType });
      assertError(r, 415, undefined, `content type ${contentType}`);
    }
    const r = await publishUpdate(server.url, update('not-a-form'), { token: BAD(), contentType: 'application/json' });
    assertChallenge(r, 401, 'invalid_token', 'a bad token with a JSON body');
  });

  test('a body longer than MAX_BODY_BYTES is 413', async () => {
    const r = await publishUpdate(server.url, [['topic', freshTopic('big')], ['data', 'x'.repeat(MAX_BODY_BYTES + 1)]], { token: GOOD() });
    assertError(r, 413, undefined, 'a body over the limit');
  });

  test('a body without a topic is 400 Missing "topic" parameter, before the grants are checked', async () => {
    for (const token of [GOOD(), publisherToken(['https://example.com/only-this'])]) {
      const r = await publishUpdate(server.url, [['data', 'no topic'], ['id', 'urn:x:no-topic']], { token });
      assertBadRequest(r, /Missing "topic" parameter/, 'no topic');
    }
  });

  test('a body that is not UTF-8 once decoded is 400', async () => {
    const r = await publishUpdate(server.url, [], { token: GOOD(), body: `topic=${encodeURIComponent(freshTopic('utf8'))}&data=%FF%FE` });
    assertBadRequest(r, undefined, 'data %FF%FE');
  });

  test('reserved, wildcard and control-character topics are 400', async () => {
    const hub = resourceOf(server.url);
    const topics = [
      '*',
      '/.well-known/mercure',
      '/.well-known/mercure/subscriptions/x',
      `${hub}/subscriptions`,
      hub,
      '/.well-known/%6Dercure/x',
      '/a/../.well-known/mercure/x',
      'https://example.com/a\u0001b',
      'https://example.com/a\u007fb',
      'https://example.com/a\u0085b',
      'https://example.com/a\u200bb',
    ];
    for (const topic of topics) {
      const r = await publishUpdate(server.url, [['topic', topic], ['data', 'x']], { token: GOOD() });
      assertBadRequest(r, undefined, `topic ${JSON.stringify(topic)}`);
    }
  });

  test('a topic only resembling the hub path is not reserved', async () => {
    for (const topic of ['/.well-known/mercurex', '/.well-known/mercure-x/y', 'https://example.com/.well-known/mercurey']) {
      const pairs = [['topic', topic], ['id', `urn:x:${freshTopic('near')}`]];
      assertPublishedUpdate(await publishUpdate(server.url, pairs, { token: GOOD() }), idOf(pairs), `topic ${topic}`);
    }
  });

  test('an alternate topic that is reserved is refused too', async () => {
    const r = await publishUpdate(server.url, [['topic', freshTopic('canonical')], ['topic', '/.well-known/mercure/subscriptions']], { token: GOOD() });
    assertBadRequest(r, undefined, 'reserved alternate topic');
  });

  test('more than 100 topics are 400, 100 are fine', async () => {
    // short topics, so that 101 of them stay under MAX_BODY_BYTES
    const topics = (n) => Array.from({ length: n }, (_, i) => ['topic', `t${i}`]);
    assertPublishedUpdate(await publishUpdate(server.url, topics(100), { token: GOOD() }), undefined, '100 topics');
    assertBadRequest(await publishUpdate(server.url, topics(101), { token: GOOD() }), undefined, '101 topics');
  });

  test('ids starting with #, equal to earliest or with a control character are 400', async () => {
    for (const id of ['#1', '#', 'earliest', 'a\nb', 'a\rb', 'a\u0000b', 'a\u2028b\u200e']) {
      const r = await publishUpdate(server.url, [['topic', freshTopic('bad-id')], ['id', id]], { token: GOOD() });
      assertBadRequest(r, undefined, `id ${JSON.stringify(id)}`);
    }
  });

  test('a type equal to mercure or with a control character is 400', async () => {
    for (const type of ['mercure', 'a\nb', 'a\u0007b']) {
      const r = await publishUpdate(server.url, [['topic', freshTopic('bad-type')], ['type', type]], { token: GOOD() });
      assertBadRequest(r, undefined, `type ${JSON.stringify(type)}`);
    }
  });

  test('a retry that is not one or more ASCII digits is 400', async () => {
    for (const retry of ['', 'abc', '-1', '1.5', ' 10', '10 ', '+5', '١٢']) {
      const r = await publishUpdate(server.url, [['topic', freshTopic('bad-retry')], ['retry', retry]], { token: GOOD() });
      assertBadRequest(r, undefined, `retry ${JSON.stringify(retry)}`);
    }
    assertPublishedUpdate(await publishUpdate(server.url, [['topic', freshTopic('retry')], ['retry', '0015']], { token: GOOD() }),
      undefined, 'retry 0015');
  });
});

describe('tokens the hub refuses or takes (§3.3–3.7)', () => {
  /** Every refused token gets the same answer: 401, invalid_token, one body. */
  async function assertAllInvalid(cases) {
    const answers = [];
    for (const [name, token] of cases) {
      const r = await publishUpdate(server.url, update('invalid-token'), { token });
      const challenge = assertChallenge(r, 401, 'invalid_token', name);
      answers.push({ name, text: r.text, challenge });
    }
    for (const a of answers) {
      assert.equal(a.text, answers[0].text, `${a.name}: the body should not say why (vs ${answers[0].name})`);
      assert.equal(a.challenge, answers[0].challenge, `${a.name}: the challenge should not say why`);
    }
  }

  test('0.x tokens that fail verification are all 401 invalid_token, alike', async () => {
    const grants = { mercure: { publish: ['*'] } };
    await assertAllInvalid([
      ['wrong key', mintToken(grants, 'wrong-key')],
      ['the subscriber key', mintToken(grants, SUBSCRIBER_KEY)],
      ['alg none, no signature', mintToken(grants, PUBLISHER_KEY, { alg: 'none', typ: 'JWT' }, { hash: null })],
      ['alg none, HS256 signature', mintToken(grants, PUBLISHER_KEY, { alg: 'none', typ: 'JWT' })],
      ['HS512', mintToken(grants, PUBLISHER_KEY, { alg: 'HS512', typ: 'JWT' }, { hash: 'sha512' })],
      ['alg hs256 (lower case)', mintToken(grants, PUBLISHER_KEY, { alg: 'hs256', typ: 'JWT' })],
      ['expired', mintToken({ ...grants, exp: epoch(-60) }, PUBLISHER_KEY)],
      ['nbf in the future', mintToken({ ...grants, nbf: epoch(600) }, PUBLISHER_KEY)],
      ['not a JWS', 'not-a-token'],
      ['two segments', mintToken(grants, PUBLISHER_KEY).split('.').slice(0, 2).join('.')],
      ['tampered payload', (() => {
        const [h, , s] = mintToken({ mercure: { publish: ['https://example.com/x'] } }, PUBLISHER_KEY).split('.');
        return `${h}.${Buffer.from(JSON.stringify(grants)).toString('base64url')}.${s}`;
      })()],
    ]);
  });

  test('0.x tokens: no typ, kid and jku hints, past nbf, future exp and the mercure.rocks claim all publish', async () => {
    const jkuHeader = { alg: 'HS256', typ: 'JWT', kid: 'another-key', jku: 'http://127.0.0.1:9/keys' };
    const cases = [
      ['header {"alg":"HS256"} only', mintToken({ mercure: { publish: ['*'] } }, PUBLISHER_KEY, { alg: 'HS256' })],
      ['kid and jku ignored', mintToken({ mercure: { publish: ['*'] } }, PUBLISHER_KEY, jkuHeader)],
      ['nbf past, exp future, iat/aud/iss/sub unchecked', publisherToken(['*'], {
        nbf: epoch(-60), exp: epoch(60), iat: epoch(-60), aud: 'https://elsewhere.test', iss: 'nobody', sub: 'x',
      })],
      ['https://mercure.rocks/ claim', mintToken({ 'https://mercure.rocks/': { publish: ['*'] } }, PUBLISHER_KEY)],
      ['a 1.0 matcher object in a 0.x token', mintToken({ mercure: { publish: [{ match: '*' }] } }, PUBLISHER_KEY)],
    ];
    for (const [name, token] of cases) {
      const pairs = update('valid-0x');
      assertPublishedUpdate(await publishUpdate(server.url, pairs, { token }), idOf(pairs), name);
    }
  });

  test('the https://mercure.rocks/ claim wins over the mercure claim', async () => {
    const token = mintToken({ 'https://mercure.rocks/': { publish: [] }, mercure: { publish: ['*'] } }, PUBLISHER_KEY);
    assertChallenge(await publishUpdate(server.url, update('claim-order'), { token }), 403, 'insufficient_scope',
      'an empty mercure.rocks publish list');
  });

  test('1.0 access tokens publish: typ at+jwt in any case or application/at+jwt, aud R or an array with R, either issuer', async () => {
    const R = resourceOf(server.url);
    const cases = [
      ['typ at+jwt', {}],
      ['typ AT+JWT', { header: { alg: 'HS256', typ: 'AT+JWT' } }],
      ['typ application/at+jwt', { header: { alg: 'HS256', typ: 'application/at+jwt' } }],
      ['aud an array with R', { aud: ['https://other.test', R] }],
      ['the second issuer (list entries trimmed)', { iss: SECOND_ISSUER }],
      ['nbf 2 s ahead (within the leeway)', { nbf: epoch(2) }],
      ['a urlpattern topic grant', { details: [detail(['publish'], [{ match: 'https://example.com/:what/*', match_type: 'urlpattern' }])] }],
      ['an exact topic grant beside a foreign detail type', {
        details: [{ type: 'https://example.com/other', actions: 'anything' }, detail(['publish', 'unknown-action'], ['*'])],
      }],
    ];
    for (const [name, options] of cases) {
      const pairs = update('valid-1.0');
      assertPublishedUpdate(await publishUpdate(server.url, pairs, { token: accessToken(server.url, PUBLISHER_KEY, options) }), idOf(pairs), name);
    }
  });

  test('1.0 grants: exact matching is byte for byte, urlpattern is case-sensitive, subscribe grants no publish', async () => {
    const topic = freshTopic('exact-1.0');
    const cases = [
      ['exact, another case', [detail(['publish'], [topic.toUpperCase()])]],
      ['exact, a trailing slash', [detail(['publish'], [`${topic}/`])]],
      ['urlpattern, another case', [detail(['publish'], [{ match: 'https://example.com/EXACT-1.0/*', match_type: 'urlpattern' }])]],
      ['subscribe only', [detail(['subscribe'], ['*'])]],
      ['an unknown action only', [detail(['admin'], ['*'])]],
    ];
    for (const [name, details] of cases) {
      const r = await publishUpdate(server.url, [['topic', topic]], { token: accessToken(server.url, PUBLISHER_KEY, { details }) });
      assertChallenge(r, 403, 'insufficient_scope', name);
    }
    const exact = accessToken(server.url, PUBLISHER_KEY, { details: [detail(['publish'], [topic])] });
    assertPublishedUpdate(await publishUpdate(server.url, [['topic', topic]], { token: exact }), undefined, 'exact, the same bytes');
  });

  test('1.0 tokens that fail a check are all 401 invalid_token, alike', async () => {
    const t = (options) => accessToken(server.url, PUBLISHER_KEY, options);
    const pub = (topics, extra) => [detail(['publish'], topics, extra)];
    await assertAllInvalid([
      ['typ JWT', t({ header: { alg: 'HS256', typ: 'JWT' } })],
      ['no typ', t({ header: { alg: 'HS256' } })],
      ['wrong key', accessToken(server.url, 'wrong-key')],
      ['no exp', t({ exp: undefined })],
      ['expired', t({ exp: epoch(-30) })],
      ['nbf well ahead', t({ nbf: epoch(120) })],
      ['no iss', t({ iss: undefined })],
      ['unknown iss', t({ iss: 'https://unknown-issuer.test' })],
      ['iss differing in case', t({ iss: ISSUER.toUpperCase() })],
      ['no aud', t({ aud: undefined })],
      ['wrong aud', t({ aud: 'http://127.0.0.1:1/.well-known/mercure' })],
      ['aud array without R', t({ aud: ['https://other.test/.well-known/mercure'] })],
      ['authorization_details an object', t({ details: detail(['publish'], ['*']) })],
      ['authorization_details a string', t({ details: 'publish' })],
      ['bare string topics', t({ details: [{ type: 'https://mercure.rocks/authorization-detail', actions: ['publish'], topics: ['*'] }] })],
      ['a null topic', t({ details: [{ ...pub(['*'])[0], topics: [null] }] })],
      ['a topic without match', t({ details: [{ ...pub(['*'])[0], topics: [{ match_type: 'exact' }] }] })],
      ['an empty match', t({ details: pub([{ match: '' }]) })],
      ['an unknown match_type', t({ details: pub([{ match: '*', match_type: 'regex' }]) })],
      ['an unparsable URL pattern', t({ details: pub([{ match: 'https://example.com/(', match_type: 'urlpattern' }]) })],
      ['a non-string action', t({ details: [{ ...pub(['*'])[0], actions: ['publish', 7] }] })],
      ['empty actions', t({ details: [{ ...pub(['*'])[0], actions: [] }] })],
      ['empty topics', t({ details: [{ ...pub(['*'])[0], topics: [] }] })],
      ['a malformed entry beside a good one', t({ details: [...pub(['*']), { ...pub(['*'])[0], topics: ['bare'] }] })],
      ['more than 100 topic objects', t({ details: pub(Array.from({ length: 101 }, (_, i) => `https://example.com/t/${i}`)) })],
      ['more than 100 Mercure entries', t({ details: Array.from({ length: 101 }, () => pub(['*'])[0]) })],
    ]);
  });
});
