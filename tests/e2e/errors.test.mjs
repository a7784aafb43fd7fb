// Errors (README "Errors"): every refusal is its status and a short text/plain line
// saying what is wrong, and refuses nothing more than it should (the limits themselves
// are accepted); nothing refused is published.
//
// One server with small limits: MAX_LISTENERS 3, MAX_EVENT_TYPE_BYTES 16, MAX_BODY_BYTES 300.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { listen, listenOn } from '../support/sse.mjs';
import {
  assertError,
  assertPublished,
  freshChannel,
  pollUntil,
  publish,
  publishJson,
  request,
  sleep,
  stats,
} from '../support/http.mjs';

const MAX_LISTENERS = 3;
/** How long a Worker goes straight to the region head the root sent it to (contract/walk.rs). */
const HEAD_MEMORY_MS = 10_000;
const MAX_EVENT_TYPE_BYTES = 16;
const MAX_BODY_BYTES = 300;

const [server, tree] = useServers(
  {
    vars: {
      MAX_LISTENERS: String(MAX_LISTENERS),
      MAX_EVENT_TYPE_BYTES: String(MAX_EVENT_TYPE_BYTES),
      MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    },
  },
  // The same bound over a tree: one listener (or hub subscriber) per object.
  {
    vars: {
      MAX_LISTENERS: String(MAX_LISTENERS),
      LISTENERS_PER_OBJECT: '1',
      FANOUT: '2',
      MERCURE_ANONYMOUS: '1',
      HEARTBEAT_SECONDS: '1',
    },
  },
);

describe('channel names', () => {
  test('bad channel names: 400 saying what is wrong', async () => {
    const bad = ['bad!name', '.dot-first', '-dash-first', '_underscore-first', 'a'.repeat(65), 'sp%20ace',
      '%C3%A9', 'a%2Fb', 'a~b', 'a*'];
    for (const name of bad) {
      assertError(await request(`${server.url}/channels/${name}/events`), 400, /channel name/i, `GET /channels/${name}/events`);
      assertError(await publishJson(server.url, name, { data: 'x' }), 400, /channel name/i, `POST /channels/${name}/events`);
      assertError(await request(`${server.url}/channels/${name}`), 400, /channel name/i, `GET /channels/${name}`);
    }
    // An empty name is a bad name too.
    assertError(await request(`${server.url}/channels//events`), 400, /channel name/i, 'GET /channels//events');
    assertError(await publishJson(server.url, '', { data: 'x' }), 400, /channel name/i, 'POST /channels//events');
    assertError(await request(`${server.url}/channels/`), 400, /channel name/i, 'GET /channels/');
  });

  test('valid names at the edges are accepted', async () => {
    for (const name of ['a'.repeat(64), '0', 'Z.z-9_x', '9-._']) {
      const s = await stats(server.url, name);
      assert.equal(s.channel, name);
      assert.equal(s.published, 0);
    }
  });
});

describe('bodies, limits, event ids and routes', () => {
  test('bad event types: CR/LF and longer than MAX_EVENT_TYPE_BYTES: 400', async () => {
    const channel = freshChannel('types');
    const stream = await listenOn(server.url, channel);
    for (const event of ['a\nb', 'a\rb', 'a\r\nb', 'end\n']) {
      assertError(await publishJson(server.url, channel, { data: 'x', event }), 400, /CR|LF|line/i, `JSON event ${JSON.stringify(event)}`);
      assertError(await publish(server.url, channel, { body: 'x', contentType: 'text/plain', query: `?event=${encodeURIComponent(event)}` }),
        400, /CR|LF|line/i, `?event=${JSON.stringify(event)}`);
    }
    const tooLong = ['x'.repeat(MAX_EVENT_TYPE_BYTES + 1), 'é'.repeat(MAX_EVENT_TYPE_BYTES / 2 + 1)]; // bytes, not characters
    for (const event of tooLong) {
      const why = new RegExp(`${MAX_EVENT_TYPE_BYTES}`);
      assertError(await publishJson(server.url, channel, { data: 'x', event }), 400, why, `JSON event of ${event.length} chars`);
      assertError(await publish(server.url, channel, { body: 'x', contentType: 'text/plain', query: `?event=${encodeURIComponent(event)}` }),
        400, why, `?event= of ${event.length} chars`);
    }
    // Nothing of that reached the channel.
    assert.equal((await stats(server.url, channel)).published, 0);
    assert.deepEqual(stream.events, []);
  });

  test('malformed JSON: 400 saying at which line and column', async () => {
    const channel = freshChannel('malformed');
    const cases = [
      ['{"data": \n  tru}', 2],
      ['{"data": "x"', 1],
      ['{"data": "x",\n\n "event": }', 3],
      ['', 1],
      ['not json', 1],
    ];
    for (const [body, line] of cases) {
      const r = await publish(server.url, channel, { body, contentType: 'application/json' });
      assertError(r, 400, new RegExp(`line ${line}\\b.*column \\d+`, 'i'), `JSON ${JSON.stringify(body)}`);
    }
  });

  test('missing data: 400', async () => {
    const channel = freshChannel('nodata');
    for (const body of [{}, { event: 'alpha' }, { retry: 10 }]) {
      assertError(await publishJson(server.url, channel, body), 400, /data/, `JSON ${JSON.stringify(body)}`);
    }
  });

  test('a body that is not UTF-8: 400', async () => {
    const channel = freshChannel('bytes');
    const bodies = [
      ['text/plain', Uint8Array.from([0x66, 0x6f, 0xff, 0x6f])],
      [undefined, Uint8Array.from([0xc3, 0x28])],
      ['application/json', Uint8Array.from([...new TextEncoder().encode('{"data":"'), 0xfe, 0x22, 0x7d])],
    ];
    for (const [contentType, body] of bodies) {
      assertError(await publish(server.url, channel, { body, contentType }), 400, /UTF-8/i, `bytes as ${contentType ?? 'no content type'}`);
    }
    assert.equal((await stats(server.url, channel)).published, 0);
  });

  test('an unsupported content type: 415', async () => {
    const channel = freshChannel('ctype');
    for (const contentType of ['image/png', 'application/xml', 'text/html', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      assertError(await publish(server.url, channel, { body: 'x', contentType }), 415, /content type/i, contentType);
    }
    assert.equal((await stats(server.url, channel)).published, 0);
  });

  test('a body over MAX_BODY_BYTES: 413 (declared or streamed); exactly the limit is fine', async () => {
    const channel = freshChannel('big');
    const exact = 'x'.repeat(MAX_BODY_BYTES);
    assertPublished(await publish(server.url, channel, { body: exact, contentType: 'text/plain' }), 0, 'exactly MAX_BODY_BYTES');
    const over = 'x'.repeat(MAX_BODY_BYTES + 1);
    const why = new RegExp(`${MAX_BODY_BYTES}`);
    assertError(await publish(server.url, channel, { body: over, contentType: 'text/plain' }), 413, why, 'text one byte over');
    const json = JSON.stringify({ data: 'y'.repeat(MAX_BODY_BYTES) });
    assertError(await publish(server.url, channel, { body: json, contentType: 'application/json' }), 413, why, 'JSON over');
    // multi-byte characters count as bytes
    const bytes = 'é'.repeat(MAX_BODY_BYTES / 2 + 1);
    assertError(await publish(server.url, channel, { body: bytes, contentType: 'text/plain' }), 413, why, 'UTF-8 over');
    // A streamed body (no Content-Length) is counted too.
    const streamed = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 4; i += 1) controller.enqueue(new TextEncoder().encode('z'.repeat(100)));
        controller.close();
      },
    });
    assertError(await publish(server.url, channel, { body: streamed, contentType: 'text/plain' }), 413, why,
      'a streamed body of 400 bytes');
    const s = await stats(server.url, channel);
    assert.equal(s.published, 1, 'only the body of exactly the limit was published');
  });

  test('too many listeners on one channel: 503 with Retry-After; other channels unaffected', async () => {
    const channel = freshChannel('full');
    for (let i = 1; i <= MAX_LISTENERS; i += 1) await listenOn(server.url, channel, i);
    const r = await request(`${server.url}/channels/${channel}/events`);
    assertError(r, 503, /listeners/i, `listener #${MAX_LISTENERS + 1}`);
    const retryAfter = r.headers.get('retry-after');
    assert.ok(retryAfter !== null, 'Retry-After is missing');
    assert.match(retryAfter, /^\d+$/, `Retry-After: ${retryAfter}`);
    assert.equal((await stats(server.url, channel)).listeners, MAX_LISTENERS);
    // Publishing still reaches the ones that are in.
    assertPublished(await publishJson(server.url, channel, { data: 'full house' }), MAX_LISTENERS, 'publish on a full channel');
    // Another channel still takes listeners.
    await listenOn(server.url, freshChannel('not-full'));
  });

  test('MAX_LISTENERS counts a whole tree: a channel, and the hub, spread over objects refuse one more with 503', { timeout: 60_000 }, async () => {
    const channel = freshChannel('full-tree');
    const nodes = [];
    for (let i = 1; i <= MAX_LISTENERS; i += 1) nodes.push((await listenOn(tree.url, channel, i)).headers.get('sse-node'));
    assert.equal(new Set(nodes).size, MAX_LISTENERS, `one per object: ${nodes}`);
    const hub = '/.well-known/mercure?topic=x';
    const subscribers = [];
    for (let i = 1; i <= MAX_LISTENERS; i += 1) {
      const s = await listen(tree.url, hub);
      await s.waitUntil(() => s.chunks > 0, 5_000, `subscriber ${i}`);
      subscribers.push(s.headers.get('sse-node'));
    }
    assert.equal(new Set(subscribers).size, MAX_LISTENERS, `one per object: ${subscribers}`);
    // The root counts what its children report at their keep-alives, and a Worker goes
    // straight to the region head the root named for HEAD_MEMORY (10 s): past both, the
    // next newcomer is the root's to refuse.
    await sleep(HEAD_MEMORY_MS + 500);
    const r = await request(`${tree.url}/channels/${channel}/events`);
    assertError(r, 503, /listeners/i, `listener #${MAX_LISTENERS + 1} over the tree`);
    assert.ok(r.headers.get('retry-after'), 'Retry-After');
    assert.equal((await stats(tree.url, channel)).listeners, MAX_LISTENERS);
    assertError(await request(`${tree.url}${hub}`), 503, /subscribers/i, `subscriber #${MAX_LISTENERS + 1} over the hub's tree`);
  });

  test('a bad lastEventId / Last-Event-ID: 400', async () => {
    const channel = freshChannel('resume');
    for (const bad of ['abc', '-1', '1.5', '1e3', '0x10', '99999999999999999999999']) {
      assertError(await request(`${server.url}/channels/${channel}/events?lastEventId=${encodeURIComponent(bad)}`), 400,
        /event id/i, `?lastEventId=${bad}`);
      assertError(await request(`${server.url}/channels/${channel}/events`, { headers: { 'last-event-id': bad } }), 400,
        /event id/i, `Last-Event-ID: ${bad}`);
      assertError(await request(`${server.url}/listen?lastEventId=${encodeURIComponent(bad)}`), 400, /event id/i, `/listen?lastEventId=${bad}`);
    }
    // A good one is accepted.
    const s = await listen(server.url, `/channels/${channel}/events?lastEventId=0`);
    assert.equal(s.status, 200);
  });

  test('a query parameter the route reads that is not UTF-8 once decoded: 400 naming it, not altered', async () => {
    const channel = freshChannel('query-utf8');
    assertError(await request(`${server.url}/channels/${channel}/events?lastEventId=%FF`), 400, /"lastEventId".*UTF-8/,
      '?lastEventId=%FF');
    assertError(await publish(server.url, channel, { body: 'x', contentType: 'text/plain', query: '?event=%C3' }), 400,
      /"event".*UTF-8/, '?event=%C3');
    // A parameter the route does not read refuses nothing.
    const s = await listen(server.url, `/channels/${channel}/events?other=%FF`);
    assert.equal(s.status, 200);
  });

  test('unknown paths: 404; known paths with a wrong method: 405 with Allow', async () => {
    for (const path of ['/nope', '/channels', '/channels/a/b/c', '/channels/a/events/more', '/listen/extra', '/ping/x']) {
      assertError(await request(`${server.url}${path}`), 404, null, `GET ${path}`);
    }
    const cases = [
      ['POST', '/', ['GET']],
      ['DELETE', '/', ['GET']],
      ['DELETE', '/ping', ['GET', 'POST', 'OPTIONS']],
      ['PUT', '/ping', ['GET', 'POST', 'OPTIONS']],
      ['POST', '/listen', ['GET', 'OPTIONS']],
      ['PUT', '/listen', ['GET', 'OPTIONS']],
      ['PUT', '/channels/x/events', ['GET', 'POST', 'OPTIONS']],
      ['PATCH', '/channels/x/events', ['GET', 'POST', 'OPTIONS']],
      ['DELETE', '/channels/default/events', ['GET', 'POST', 'OPTIONS']],
      ['POST', '/channels/x', ['GET', 'OPTIONS']],
      ['DELETE', '/channels/x', ['GET', 'OPTIONS']],
    ];
    for (const [method, path, mustAllow] of cases) {
      const r = await request(`${server.url}${path}`, { method });
      assertError(r, 405, null, `${method} ${path}`);
      const allow = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim().toUpperCase());
      for (const m of mustAllow) assert.ok(allow.includes(m), `${method} ${path}: Allow "${r.headers.get('allow')}" lacks ${m}`);
      assert.ok(!allow.includes(method), `${method} ${path}: Allow must not list ${method}`);
    }
  });

  test('the server is still healthy after all of the above', async () => {
    const r = await request(`${server.url}/ping`);
    assert.equal(r.status, 200);
    await pollUntil(() => stats(server.url, 'default'), (s) => typeof s.listeners === 'number', { timeoutMs: 5000, what: 'stats' });
  });
});
