// Publishing (README "Publish"): what a publish body may be (JSON, form fields, text,
// raw bytes), and that each event reaches a listener exactly as sent, with the id and
// type its publisher gave it and the retry it asked for. What is refused is in
// errors.test.mjs.
//
// One server: RETRY_MS 1500 (not the default, to see the preamble and a retry field
// apart) and MAX_EVENT_TYPE_BYTES 16 (to publish a type of exactly that length).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { listenOn } from '../support/sse.mjs';
import {
  assertError,
  assertPublished,
  freshChannel,
  idLess,
  publish,
  publishJson,
  stats,
} from '../support/http.mjs';

const MAX_EVENT_TYPE_BYTES = 16;
const RETRY_MS = 1500;

const [server] = useServers({ vars: { MAX_EVENT_TYPE_BYTES: String(MAX_EVENT_TYPE_BYTES), RETRY_MS: String(RETRY_MS) } });

/** What a spec-following parser reads back for `data`: every CRLF, CR and LF is one LF. */
const asReceived = (data) => data.replace(/\r\n|\r/g, '\n');

describe('publishing', () => {
  test('JSON bodies arrive exactly as sent, each with the id it was answered with', async () => {
    const channel = freshChannel('json');
    const stream = await listenOn(server.url, channel);
    const object = { b: [1, 2, { c: null, d: 'x, y: z' }], a: 'x y', n: -3, t: true, u: 'é\n😀' };
    const cases = [
      // [what, body, expected type, expected data]
      ['a plain string', { data: 'hello' }, 'message', 'hello'],
      ['an object (compact JSON)', { data: object }, 'message', object],
      ['an array', { data: [1, 'two', null, { three: 3 }] }, 'message', [1, 'two', null, { three: 3 }]],
      ['a number', { data: 42 }, 'message', '42'],
      ['true', { data: true }, 'message', 'true'],
      ['null', { data: null }, 'message', 'null'],
      ['multi-line data, LF', { data: 'one\ntwo\nthree' }, 'message', 'one\ntwo\nthree'],
      ['multi-line data, CRLF', { data: 'one\r\ntwo\r\nthree' }, 'message', 'one\r\ntwo\r\nthree'],
      ['multi-line data, CR', { data: 'one\rtwo\rthree' }, 'message', 'one\rtwo\rthree'],
      ['mixed line breaks and empty lines', { data: 'a\r\n\r\nb\r\rc\n\nd' }, 'message', 'a\r\n\r\nb\r\rc\n\nd'],
      ['a trailing line break', { data: 'trailing\n' }, 'message', 'trailing\n'],
      ['only a line break', { data: '\n' }, 'message', '\n'],
      ['the empty string', { data: '' }, 'message', ''],
      ['leading spaces', { data: '  two leading spaces' }, 'message', '  two leading spaces'],
      ['a single space', { data: ' ' }, 'message', ' '],
      ['leading spaces on every line', { data: ' a\n  b\r\n   c' }, 'message', ' a\n  b\r\n   c'],
      ['unicode', { data: 'héllo wörld – 中文 😀 \u2028 \u0085 \u00a0' }, 'message', 'héllo wörld – 中文 😀 \u2028 \u0085 \u00a0'],
      ['a BOM and NUL inside data', { data: '\ufeffbom\u0000nul' }, 'message', '\ufeffbom\u0000nul'],
      ['text that looks like fields', { data: 'x\n\nid: 999\nevent: evil\ndata: injected\n: comment' }, 'message',
        'x\n\nid: 999\nevent: evil\ndata: injected\n: comment'],
      ['with an event type', { data: 'typed', event: 'alpha' }, 'alpha', 'typed'],
      ['a unicode event type', { data: 'u', event: 'ünï-😀' }, 'ünï-😀', 'u'],
      ['an event type with a leading space and a colon', { data: 's', event: ' a:b' }, ' a:b', 's'],
      ['an event type of exactly MAX_EVENT_TYPE_BYTES', { data: 'm', event: 'é'.repeat(MAX_EVENT_TYPE_BYTES / 2) }, 'é'.repeat(MAX_EVENT_TYPE_BYTES / 2), 'm'],
      ['event null is no event type', { data: 'n', event: null }, 'message', 'n'],
      ['an object with a type', { data: { k: 'v' }, event: 'obj' }, 'obj', { k: 'v' }],
    ];
    let lastId = null;
    for (const [what, body, type, data] of cases) {
      const { id } = assertPublished(await publishJson(server.url, channel, body), 1, what);
      if (lastId !== null) assert.ok(idLess(lastId, id), `${what}: ids must increase (${lastId} then ${id})`);
      lastId = id;
      const e = await stream.nextEvent(5000);
      assert.equal(e.type, type, `${what}: type`);
      assert.equal(e.idField, id, `${what}: the event carries the id the publisher got`);
      assert.equal(e.lastEventId, id, `${what}: lastEventId`);
      if (typeof data === 'string') {
        assert.equal(e.data, asReceived(data), `${what}: data`);
      } else {
        // Any other JSON value: sent as compact JSON.
        assert.deepEqual(JSON.parse(e.data), data, `${what}: data ${JSON.stringify(e.data)}`);
        assert.equal(e.data, JSON.stringify(JSON.parse(e.data)), `${what}: not compact JSON: ${JSON.stringify(e.data)}`);
      }
    }
    assert.equal(stream.events.length, cases.length, 'exactly one event per publish');

    // charset parameter on the JSON content type
    const r = await publish(server.url, channel, {
      body: JSON.stringify({ data: 'with charset' }),
      contentType: 'application/json; charset=utf-8',
    });
    const { id } = assertPublished(r, 1, 'application/json; charset=utf-8');
    const e = await stream.nextEvent(5000);
    assert.deepEqual([e.type, e.data, e.idField], ['message', 'with charset', id]);
  });

  test('retry in a JSON body reaches the listener as a retry field', async () => {
    const channel = freshChannel('retry');
    const stream = await listenOn(server.url, channel);
    await stream.waitUntil(() => stream.retries.length >= 1, 5000, 'the retry preamble');
    assert.deepEqual(stream.retries, [RETRY_MS]);

    const { id } = assertPublished(await publishJson(server.url, channel, { data: 'slower please', event: 'beta', retry: 2500 }), 1, 'retry');
    const e = await stream.nextEvent(5000);
    assert.deepEqual([e.type, e.data, e.idField], ['beta', 'slower please', id]);
    assert.deepEqual(stream.retries, [RETRY_MS, 2500]);
    assert.equal(stream.parser.reconnectionTime, 2500);

    const { id: id2 } = assertPublished(await publishJson(server.url, channel, { data: 'plain', retry: 0 }), 1, 'retry 0');
    const e2 = await stream.nextEvent(5000);
    assert.deepEqual([e2.type, e2.data, e2.idField], ['message', 'plain', id2]);
    assert.equal(stream.parser.reconnectionTime, 0);
  });

  test('text/plain bodies arrive exactly as sent, with and without ?event=', async () => {
    const channel = freshChannel('text');
    const stream = await listenOn(server.url, channel);
    const enc = new TextEncoder();
    const cases = [
      // [what, options, expected type, expected data]
      ['text/plain', { body: 'just text', contentType: 'text/plain' }, 'message', 'just text'],
      ['text/plain with ?event=', { body: 'noted', contentType: 'text/plain', query: '?event=note' }, 'note', 'noted'],
      ['charset, CRLF lines, leading spaces', { body: '  one\r\ntwo\r\n three', contentType: 'text/plain; charset=utf-8' },
        'message', '  one\r\ntwo\r\n three'],
      ['CR lines and an encoded unicode event type', { body: 'a\rb\r\rc', contentType: 'text/plain', query: `?event=${encodeURIComponent('tÿpe ünï 😀')}` },
        'tÿpe ünï 😀', 'a\rb\r\rc'],
      ['JSON-looking text stays text', { body: '{"data":"not parsed","event":"no"}', contentType: 'text/plain' },
        'message', '{"data":"not parsed","event":"no"}'],
      ['unicode text', { body: 'ünïcödé 中文 😀\n\u2028end', contentType: 'text/plain' }, 'message', 'ünïcödé 中文 😀\n\u2028end'],
      ['no content type (bytes body)', { body: enc.encode('no content type\nsecond') }, 'message', 'no content type\nsecond'],
      ['no content type with ?event=', { body: enc.encode('bytes'), query: '?event=raw' }, 'raw', 'bytes'],
      ['an empty body', { body: '', contentType: 'text/plain', query: '?event=empty' }, 'empty', ''],
    ];
    for (const [what, options, type, data] of cases) {
      const r = await publish(server.url, channel, options);
      const { id } = assertPublished(r, 1, what);
      const e = await stream.nextEvent(5000);
      assert.deepEqual([e.type, e.data, e.idField], [type, asReceived(data), id], what);
    }
    assert.equal(stream.events.length, cases.length);
  });

  test('a form-encoded body is read as fields data, event and retry', async () => {
    const channel = freshChannel('form');
    const listener = await listenOn(server.url, channel);
    const r = await publish(server.url, channel, { body: 'data=a%0Ab+c&event=note', contentType: 'application/x-www-form-urlencoded' });
    assertPublished(r, 1, 'form publish');
    const [event] = await listener.waitFor(1);
    assert.equal(event.data, 'a\nb c');
    assert.equal(event.type, 'note');
    // A bare word is not a field list: 400 naming the problem, nothing published.
    assertError(await publish(server.url, channel, { body: 'hello', contentType: 'application/x-www-form-urlencoded' }), 400, /unknown field/i, 'bare word');
    assertError(await publish(server.url, channel, { body: 'data=1&data=2', contentType: 'application/x-www-form-urlencoded' }), 400, /more than once/i, 'duplicate');
    assert.equal((await stats(server.url, channel)).published, 1);
  });
});
