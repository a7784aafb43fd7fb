// What the hub's settings switch on and off (docs/mercure.md §1, §2), its CORS
// (§8) and its discovery (§9): three servers, started at once —
// - `off`: no key and MERCURE_ANONYMOUS unset: the hub does not exist (404 everywhere);
// - `locked`: both keys, no anonymous subscribing, a CORS list (one origin written in
//   mixed case);
// - `star`: anonymous subscribing only (no key at all), MERCURE_CORS_ORIGINS `*`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { assertError, request } from '../support/http.mjs';
import {
  HUB_PATH,
  HUB_SECRETS,
  METADATA_PATH,
  PUBLISHER_KEY,
  SUBSCRIBER_KEY,
  accessToken,
  assertChallenge,
  freshTopic,
  mercureToken,
  metadataUrlOf,
  publishOk,
  publishUpdate,
  publisherToken,
  resourceOf,
  subscribe,
  subscribeRequest,
  subscriberToken,
} from '../support/mercure.mjs';

const LISTED = ['http://allowed.test', 'https://Also-Allowed.test:8443'];

const [off, locked, star] = useServers(
  {},
  { vars: { MERCURE_CORS_ORIGINS: LISTED.join(', ') }, secrets: HUB_SECRETS },
  { vars: { MERCURE_ANONYMOUS: '1', MERCURE_CORS_ORIGINS: '*' } },
);

const CORS_HEADERS = ['access-control-allow-origin', 'access-control-allow-credentials'];
const corsOf = (headers) => Object.fromEntries(CORS_HEADERS.map((h) => [h, headers.get(h)]));

describe('a hub that is off (§1.7)', () => {
  test('every hub path answers 404 to every method, with or without a token', async () => {
    const token = publisherToken();
    const paths = [HUB_PATH, `${HUB_PATH}?topic=*`, `${HUB_PATH}/subscriptions`, `${HUB_PATH}/subscriptions/x/y`, `${HUB_PATH}/other`, METADATA_PATH];
    const answers = [];
    for (const path of paths) {
      for (const method of ['GET', 'HEAD', 'POST', 'OPTIONS', 'PUT', 'DELETE']) {
        for (const headers of [{}, { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }]) {
          const r = await request(`${off.url}${path}`, { method, headers, body: method === 'POST' || method === 'PUT' ? 'topic=x' : undefined });
          answers.push(`${method} ${path}${headers.authorization ? ' (token)' : ''}: ${r.status} ${r.text.trim()}`);
        }
      }
    }
    assert.deepEqual(answers.filter((a) => !/: 404 /.test(a)), [], 'answers other than 404');
  });

  test('GET / announces no hub', async () => {
    const r = await request(`${off.url}/`);
    assert.equal(r.status, 200);
    assert.doesNotMatch(r.headers.get('link') ?? '', /rel="?mercure/, 'no Link rel=mercure');
  });
});

describe('a hub with keys and no anonymous subscribing', () => {
  test('subscribing without a token is 401 with a bare Bearer challenge; with one it is 200', async () => {
    const r = await subscribeRequest(locked.url, [['topic', '*']]);
    const challenge = assertChallenge(r, 401, null, 'tokenless subscribe');
    assert.match(challenge, new RegExp(`resource_metadata="${metadataUrlOf(locked.url).replaceAll('.', '\\.')}"`), challenge);
    const topic = freshTopic('locked');
    const stream = await subscribe(locked.url, [['topic', topic]], { token: subscriberToken([topic]) });
    await publishOk(locked.url, [['topic', topic], ['data', 'public']]);
    assert.equal((await stream.nextEvent(2000)).data, 'public');
  });

  test('each role has its own key: a publisher token does not subscribe, a subscriber token does not publish', async () => {
    const asSubscriber = await subscribeRequest(locked.url, [['topic', '*']], { authorization: `Bearer ${mercureToken(PUBLISHER_KEY, { subscribe: ['*'] })}` });
    assertChallenge(asSubscriber, 401, 'invalid_token', 'a token signed with the publisher key, subscribing');
    const asPublisher = await publishUpdate(locked.url, [['topic', freshTopic('roles')]], { token: mercureToken(SUBSCRIBER_KEY, { publish: ['*'] }) });
    assertChallenge(asPublisher, 401, 'invalid_token', 'a token signed with the subscriber key, publishing');
  });

  test('1.0 tokens are all invalid when MERCURE_ISSUERS is unset', async () => {
    assertChallenge(await publishUpdate(locked.url, [['topic', freshTopic('no-issuers')]], { token: accessToken(locked.url, PUBLISHER_KEY) }),
      401, 'invalid_token', '1.0 publish without MERCURE_ISSUERS');
    assertChallenge(await subscribeRequest(locked.url, [['topic', '*']], { authorization: `Bearer ${accessToken(locked.url, SUBSCRIBER_KEY)}` }),
      401, 'invalid_token', '1.0 subscribe without MERCURE_ISSUERS');
  });

  test('GET / carries Link: <R>; rel="mercure"', async () => {
    const r = await request(`${locked.url}/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('link'), `<${resourceOf(locked.url)}>; rel="mercure"`);
  });

  test('the protected-resource metadata document is served', async () => {
    const r = await request(metadataUrlOf(locked.url));
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(r.text), {
      resource: resourceOf(locked.url),
      authorization_details_types_supported: ['https://mercure.rocks/authorization-detail'],
      bearer_methods_supported: ['header'],
      mercure_cookie: '__Secure-mercure_access_token',
    });
  });

  test('other methods on the hub answer 405 with Allow', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const r = await request(`${locked.url}${HUB_PATH}`, { method });
      assert.equal(r.status, 405, `${method}: ${r.status} ${r.text}`);
      const allow = (r.headers.get('allow') ?? '').split(',').map((m) => m.trim());
      for (const m of ['GET', 'POST']) assert.ok(allow.includes(m), `${method}: Allow ${r.headers.get('allow')}`);
    }
  });

  test("a hub path's 404 and 405 follow the hub's CORS, not the channels' (§8.3)", async () => {
    for (const [method, path, status] of [['PUT', HUB_PATH, 405], ['GET', `${HUB_PATH}/anything`, 404]]) {
      const listed = await request(`${locked.url}${path}`, { method, headers: { origin: 'http://allowed.test' } });
      assert.equal(listed.status, status, `${method} ${path}`);
      assert.equal(listed.headers.get('access-control-allow-credentials'), 'true', `${method} ${path} from a listed origin`);
      const unlisted = await request(`${locked.url}${path}`, { method, headers: { origin: 'http://evil.test' } });
      assert.deepEqual(corsOf(unlisted.headers), { 'access-control-allow-origin': null, 'access-control-allow-credentials': null },
        `${method} ${path} from an unlisted origin`);
    }
  });
});

describe('CORS with a list of origins (§8.2, §8.3)', () => {
  const listedCases = [
    ['http://allowed.test', 'http://allowed.test'],
    ['the mixed-case entry, sent in lower case', 'https://also-allowed.test:8443'],
    ['a listed origin sent in upper case', 'HTTP://ALLOWED.TEST'],
  ];

  function assertEchoed(headers, origin, what) {
    assert.equal((headers.get('access-control-allow-origin') ?? '').toLowerCase(), origin.toLowerCase(), `${what}: Allow-Origin`);
    assert.equal(headers.get('access-control-allow-credentials'), 'true', `${what}: Allow-Credentials`);
    assert.match(headers.get('vary') ?? '', /(^|,\s*)Origin(\s*,|$)/i, `${what}: Vary ${headers.get('vary')}`);
  }

  function assertExposes(headers, what) {
    const exposed = (headers.get('access-control-expose-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
    for (const h of ['link', 'last-event-id', 'mercure-last-event-id']) assert.ok(exposed.includes(h), `${what}: Expose-Headers ${headers.get('access-control-expose-headers')}`);
  }

  test('a listed origin is echoed with credentials and Vary, on streams, publishes and errors alike', async () => {
    for (const [name, origin] of listedCases) {
      const topic = freshTopic('cors');
      const stream = await subscribe(locked.url, [['topic', topic]], { token: subscriberToken([topic]), headers: { origin } });
      assertEchoed(stream.headers, origin, `${name}: stream`);
      assertExposes(stream.headers, `${name}: stream`);
      await stream.close();
      const published = await publishUpdate(locked.url, [['topic', topic]], { token: publisherToken(), headers: { origin } });
      assert.equal(published.status, 200, published.text);
      assertEchoed(published.headers, origin, `${name}: publish`);
      const refused = await subscribeRequest(locked.url, [['topic', topic]], { origin });
      assert.equal(refused.status, 401);
      assertEchoed(refused.headers, origin, `${name}: 401`);
      assertExposes(refused.headers, `${name}: 401`);
    }
  });

  test('an unlisted origin gets no CORS headers, and the request is still served', async () => {
    for (const origin of ['http://evil.test', 'http://allowed.test:8080', 'https://allowed.test', 'null']) {
      const topic = freshTopic('unlisted');
      const stream = await subscribe(locked.url, [['topic', topic]], { token: subscriberToken([topic]), headers: { origin } });
      assert.deepEqual(corsOf(stream.headers), { 'access-control-allow-origin': null, 'access-control-allow-credentials': null }, `${origin}: stream`);
      await stream.close();
      const published = await publishUpdate(locked.url, [['topic', topic]], { token: publisherToken(), headers: { origin } });
      assert.equal(published.status, 200, `${origin}: publish ${published.text}`);
      assert.deepEqual(corsOf(published.headers), { 'access-control-allow-origin': null, 'access-control-allow-credentials': null }, `${origin}: publish`);
    }
  });

  test('a preflight on any hub path is 204 with the methods, headers and a max age', async () => {
    for (const path of [HUB_PATH, `${HUB_PATH}/subscriptions`, `${HUB_PATH}/anything/else`]) {
      const r = await request(`${locked.url}${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'http://allowed.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      assert.equal(r.status, 204, `OPTIONS ${path}: ${r.status} ${r.text}`);
      assertEchoed(r.headers, 'http://allowed.test', `OPTIONS ${path}`);
      assert.equal(r.headers.get('access-control-allow-methods'), 'GET, POST, OPTIONS', `OPTIONS ${path}: Allow-Methods`);
      assert.equal(r.headers.get('access-control-allow-headers'), 'Authorization, Cache-Control, Last-Event-ID, Content-Type', `OPTIONS ${path}: Allow-Headers`);
      assert.match(r.headers.get('access-control-max-age') ?? '', /^\d+$/, `OPTIONS ${path}: Max-Age`);
    }
  });
});

describe('a hub with anonymous subscribing and no key, CORS * (§1.1, §1.2, §8.1)', () => {
  const assertStar = (headers, what) => assert.deepEqual(corsOf(headers),
    { 'access-control-allow-origin': '*', 'access-control-allow-credentials': null }, what);

  test('every hub response carries Allow-Origin * and no credentials header', async () => {
    const origin = 'http://anywhere.test';
    const stream = await subscribe(star.url, [['topic', freshTopic('star')]], { headers: { origin } });
    assertStar(stream.headers, 'stream');
    await stream.close();
    assertStar((await subscribeRequest(star.url, [], { origin })).headers, '400 subscribe');
    assertStar((await publishUpdate(star.url, [['topic', 'x']], { headers: { origin } })).headers, '401 publish');
    const preflight = await request(`${star.url}${HUB_PATH}`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    assert.equal(preflight.status, 204);
    assertStar(preflight.headers, 'preflight');
    assertStar((await subscribeRequest(star.url, [['match_regex', 'x']])).headers, 'a request without Origin');
  });

  test('with no publisher key every publish is 401', async () => {
    assertChallenge(await publishUpdate(star.url, [['topic', freshTopic('no-key')]]), 401, null, 'no token');
    for (const token of [publisherToken(), accessToken(star.url, PUBLISHER_KEY)]) {
      assertChallenge(await publishUpdate(star.url, [['topic', freshTopic('no-key')]], { token }), 401, 'invalid_token', 'a token, no key to verify it');
    }
  });

  test('with no subscriber key a presented token is 401, and tokenless subscribing works', async () => {
    const token = subscriberToken(['*']);
    assertChallenge(await subscribeRequest(star.url, [['topic', '*']], { authorization: `Bearer ${token}` }), 401, 'invalid_token', 'subscriber token');
    const stream = await subscribe(star.url, [['topic', freshTopic('anonymous')]]);
    assert.equal(stream.status, 200);
  });

  test('the hub is announced on GET /, but there is no metadata document without a key', async () => {
    assert.equal((await request(`${star.url}/`)).headers.get('link'), `<${resourceOf(star.url)}>; rel="mercure"`);
    const r = await request(metadataUrlOf(star.url));
    assertError(r, 404, undefined, 'metadata without a key');
  });
});
