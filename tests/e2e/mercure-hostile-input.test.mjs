// What a hostile subscriber or publisher sends the hub, and what the hub must do instead:
// matchers that would compile to megabytes (refused by name, quickly, while the rest of
// the server goes on serving), matchers that fit alone but not together, a hub whose
// subscribers' matchers hold its whole bound, a token full of heavy selectors, and
// publish fields past their limits (a `retry` too large for 64 bits, a huge id, type or
// topic).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { closeLater, closeOpened, freshChannel, publishEvent, sleep } from '../support/http.mjs';
import { listenOn, openStream } from '../support/sse.mjs';
import {
  HUB_SECRETS,
  assertBadRequest,
  assertChallenge,
  freshTopic,
  nextUpdate,
  publishOk,
  publishUpdate,
  publisherToken,
  subscribe,
  subscribeRequest,
  subscribeUrl,
  subscriberToken,
} from '../support/mercure.mjs';

// A Unicode class repeated 400 times: 40 bytes of query, megabytes compiled.
const HEAVY = 'https://ex.test/:a([\\p{L}\\p{N}]{400})';
// The same class twice: tens of kilobytes compiled, within one matcher's bound.
const MEDIUM = (i) => `https://ex.test/${i}/:a([\\p{L}\\p{N}]{2})`;
// The hub-wide bound of the second server: room for one subscriber with three MEDIUMs.
const HUB_MATCHER_BYTES = 700_000;

const [server, small] = useServers(
  { vars: { MERCURE_ANONYMOUS: '1' }, secrets: HUB_SECRETS },
  // MERCURE_HUB_MATCHER_BYTES bounds each object of the hub: this server keeps its
  // subscribers on one object, even when the suite runs with the tree forced.
  {
    vars: {
      MERCURE_ANONYMOUS: '1',
      MERCURE_HUB_MATCHER_BYTES: String(HUB_MATCHER_BYTES),
      HEARTBEAT_SECONDS: '1',
      LISTENERS_PER_OBJECT: '1000',
    },
    secrets: HUB_SECRETS,
  },
);

describe('matchers too complex to compile', () => {
  test('20 heavy URL patterns are refused by name within 3 s while a channel goes on at once', async () => {
    const base = server.url;
    const channel = freshChannel('beside-heavy');
    const listener = await listenOn(base, channel, 1);
    const pairs = Array.from({ length: 20 }, () => ['match_urlpattern', HEAVY]);
    const started = Date.now();
    const answer = subscribeRequest(base, pairs).then((r) => ({ r, ms: Date.now() - started }));
    // Publish-to-receive on the channel while the hub works on the subscribe.
    const latencies = [];
    for (let i = 0; i < 5; i += 1) {
      const sent = Date.now();
      await publishEvent(base, channel, { data: `beside ${i}` });
      const event = await listener.nextEvent(5_000);
      assert.equal(event.data, `beside ${i}`);
      latencies.push(Date.now() - sent);
    }
    const { r, ms } = await answer;
    assertBadRequest(r, /^matcher 1 \(match_urlpattern=https:\/\/ex\.test\/:a\(.*more than 262144 bytes/, 'heavy subscribe');
    assert.ok(ms < 3_000, `the heavy subscribe was answered in ${ms} ms`);
    assert.ok(Math.max(...latencies) < 500, `publish-to-receive beside it: ${latencies.join(', ')} ms`);
    // The hub itself still serves.
    const topic = freshTopic('after-heavy');
    const stream = await subscribe(base, [['topic', topic]]);
    await publishOk(base, [['topic', topic], ['data', 'still here']]);
    assert.equal((await nextUpdate(stream)).data, 'still here');
    await closeOpened();
  });

  test('matchers that each fit are refused together past the subscriber bound, naming the first that did not fit', async () => {
    const pairs = Array.from({ length: 100 }, (_, i) => ['match_urlpattern', MEDIUM(i)]);
    const r = await subscribeRequest(server.url, pairs);
    assertBadRequest(r, /^matcher \d+ \(match_urlpattern=https:\/\/ex\.test\/\d+\/.*together.*1048576 bytes/, 'many medium matchers');
    const n = Number(/^matcher (\d+)/.exec(r.text)[1]);
    assert.ok(n > 1 && n < 100, `the first matcher that did not fit: ${n}`);
  });

  test('a token whose selectors would compile to megabytes is an invalid token', async () => {
    const heavy = Array.from({ length: 200 }, (_, i) => `https://a.test/${i}/{v:200}`);
    const r = await subscribeRequest(server.url, [['topic', 'x']], { authorization: `Bearer ${subscriberToken(heavy)}` });
    assertChallenge(r, 401, 'invalid_token', 'a token of heavy selectors');
    const p = await publishUpdate(server.url, [['topic', 'x'], ['data', 'd']], { token: publisherToken(heavy) });
    assertChallenge(p, 401, 'invalid_token', 'a publisher token of heavy selectors');
  });

  test("a hub whose subscribers' matchers hold its bound answers 503 with Retry-After, and takes the next one once room is made", async () => {
    const base = small.url;
    const three = (from) => [0, 1, 2].map((i) => ['match_urlpattern', MEDIUM(from + i)]);
    const first = await subscribe(base, three(0));
    const refused = await subscribeRequest(base, three(10));
    assert.equal(refused.status, 503, `${refused.status} ${refused.text}`);
    assert.match(refused.text, new RegExp(`matchers hold their maximum of ${HUB_MATCHER_BYTES} bytes`));
    assert.ok(Number(refused.headers.get('retry-after')) > 0, 'Retry-After');
    // A subscriber with cheap matchers still gets in, and the first still gets its updates.
    const cheap = await subscribe(base, [['topic', 'https://ex.test/0/ab']]);
    await publishOk(base, [['topic', 'https://ex.test/0/ab'], ['data', 'to both']]);
    assert.equal((await nextUpdate(first)).data, 'to both');
    assert.equal((await nextUpdate(cheap)).data, 'to both');
    first.close();
    // The hub notices the departure by its next write (a keep-alive each 0.2 s here).
    let status;
    for (let i = 0; i < 40 && status !== 200; i += 1) {
      if (i > 0) await sleep(250);
      const attempt = closeLater(await openStream(subscribeUrl(base, three(20))));
      status = attempt.status;
    }
    assert.equal(status, 200, 'room was made once the first subscriber left');
  });
});

describe('publish fields past their limits', () => {
  const publishWith = (pairs) => publishUpdate(server.url, [['topic', 'https://ex.test/t'], ['data', 'd'], ...pairs], { token: publisherToken() });

  test('a retry too large for 64 bits is a 400; the largest that fits is kept', async () => {
    assertBadRequest(await publishWith([['retry', '9'.repeat(40)]]), /"retry" must be ASCII digits/, 'forty nines');
    assertBadRequest(await publishWith([['retry', '18446744073709551616']]), /"retry"/, '2^64');
    const topic = freshTopic('retry');
    const stream = await subscribe(server.url, [['topic', topic]]);
    await publishOk(server.url, [['topic', topic], ['retry', '18446744073709551615']]);
    await nextUpdate(stream);
    assert.match(stream.text, /\nretry: 18446744073709551615\n/);
    await closeOpened();
  });

  test('an id, a type or a topic past its limit is a 400 that says which', async () => {
    assertBadRequest(await publishWith([['id', 'i'.repeat(30_000)]]), /"id" is longer than 1024 bytes/, '30 KB id');
    assertBadRequest(await publishWith([['type', 't'.repeat(30_000)]]), /"type" is longer than 128 bytes/, '30 KB type');
    const long = await publishUpdate(server.url, [['topic', `https://ex.test/${'a'.repeat(10_000)}`], ['data', 'd']], { token: publisherToken() });
    assertBadRequest(long, /a topic is longer than 4096 bytes/, '10 KB topic');
    // At the limits, accepted.
    await publishOk(server.url, [['topic', `https://ex.test/${'a'.repeat(4000)}`], ['id', `urn:x:${'i'.repeat(1000)}`], ['type', 't'.repeat(128)]]);
  });
});
