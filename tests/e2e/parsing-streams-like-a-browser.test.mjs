// The tests read event streams as a browser's EventSource does: unit tests of the parser
// in tests/support/sse.mjs, which every e2e test relies on (no server here).
// Cases follow web-platform-tests eventsource/format-*.htm (same streams, same
// expectations), plus chunking cases (CR at a chunk end, split UTF-8).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, parseAll } from '../support/sse.mjs';

const data = (r) => r.events.map((e) => e.data);

/** Parses `text` whole, then in every 2-way split, then char by char: all must agree. */
function parseEverySplit(text) {
  const whole = parseAll(text);
  for (let cut = 0; cut <= text.length; cut += 1) {
    assert.deepEqual(parseAll([text.slice(0, cut), text.slice(cut)]), whole, `split at ${cut}`);
  }
  assert.deepEqual(parseAll([...text]), whole, 'char by char');
  return whole;
}

test('format-bom: one leading BOM is stripped', () => {
  const r = parseEverySplit('\uFEFFdata:1\n\n\uFEFFdata:2\n\ndata:3\n\n');
  assert.deepEqual(data(r), ['1', '3']);
});

test('format-bom-2: only ONE leading BOM is stripped', () => {
  const r = parseEverySplit('\uFEFF\uFEFFdata:1\n\ndata:2\n\ndata:3\n\n');
  assert.deepEqual(data(r), ['2', '3']);
});

test('BOM given as bytes (EF BB BF) is stripped too', () => {
  const bytes = new TextEncoder().encode('\uFEFFdata:x\n\n');
  assert.equal(bytes[0], 0xef);
  assert.deepEqual(data(parseAll([bytes])), ['x']);
  assert.deepEqual(data(parseAll([...bytes].map((b) => Uint8Array.of(b)))), ['x']);
});

test('format-comments: comments between data lines, all line endings', () => {
  const long = 'x'.repeat(2048);
  const text = `data:1\r:\0\n:\r\ndata:2\n:${long}\rdata:3\n:data:fail\r:${long}\ndata:4\n\n`;
  const r = parseAll(text);
  assert.deepEqual(data(r), ['1\n2\n3\n4']);
  assert.deepEqual(r.comments, ['\0', '', long, 'data:fail', long]);
  assert.deepEqual(parseAll([...text]), r);
});

test('format-data-before-final-empty-line: an unterminated event is discarded', () => {
  const r = parseEverySplit('retry:1000\ndata:test1\n\nid:test\ndata:test2');
  assert.deepEqual(data(r), ['test1']);
  assert.equal(r.reconnectionTime, 1000);
  // The id of the discarded block was never committed.
  assert.equal(r.lastEventId, '');
});

test('format-field-data: empty data lines', () => {
  const r = parseEverySplit('data:\n\ndata\ndata\n\ndata:test\n\n');
  assert.deepEqual(data(r), ['', '\n', 'test']);
});

test('format-field-event: type set, then back to message', () => {
  const r = parseEverySplit('event:test\ndata:x\n\ndata:x\n\n');
  assert.deepEqual(r.events.map((e) => e.type), ['test', 'message']);
});

test('format-field-event-empty: empty event type means message', () => {
  const r = parseEverySplit('event: \ndata:data\n\n');
  assert.deepEqual(r.events.map((e) => [e.type, e.data]), [['message', 'data']]);
});

test('format-field-id: last event id is set and persists', () => {
  const r = parseEverySplit('id: 1\ndata: x\n\ndata: y\n\nid: 2\ndata: z\n\n');
  assert.deepEqual(r.events.map((e) => [e.data, e.lastEventId, e.idField]), [
    ['x', '1', '1'],
    ['y', '1', null],
    ['z', '2', '2'],
  ]);
});

test('format-field-id-2: id on an event without data is still committed; empty id resets', () => {
  const r = parseEverySplit('id: 1\n\ndata: x\n\nid\ndata: y\n\n');
  assert.deepEqual(r.events.map((e) => [e.data, e.lastEventId]), [
    ['x', '1'],
    ['y', ''],
  ]);
});

test('format-field-id-null: an id containing NUL is ignored', () => {
  const r = parseEverySplit('id:1\ndata:a\n\nid:2\0x\ndata:b\n\n');
  assert.deepEqual(r.events.map((e) => [e.data, e.lastEventId, e.idField]), [
    ['a', '1', '1'],
    ['b', '1', null],
  ]);
});

test('format-field-parsing: field names are exact, one space removed, NUL kept in data', () => {
  const text = 'data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n';
  const r = parseEverySplit(text);
  assert.deepEqual(data(r), ['\0\n 2\n1\n3\n\n4']);
});

test('format-field-retry: digits only, leading zeros fine', () => {
  assert.equal(parseEverySplit('retry:03000\ndata:x\n\n').reconnectionTime, 3000);
});

test('format-field-retry-bogus: non-digits are ignored', () => {
  const r = parseEverySplit('retry:3000\nretry:1000x\nretry: 12 \nretry:-1\ndata:x\n\n');
  assert.equal(r.reconnectionTime, 3000);
  assert.deepEqual(r.retries, [3000]);
});

test('format-field-retry-empty: an empty retry is ignored', () => {
  const r = parseEverySplit('retry\nretry:\ndata:test\n\n');
  assert.equal(r.reconnectionTime, null);
  assert.deepEqual(data(r), ['test']);
});

test('format-field-unknown: unknown fields and bare words are ignored', () => {
  const r = parseEverySplit('data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n');
  assert.deepEqual(data(r), ['test\n\ntest']);
});

test('format-leading-space: only one space is removed, tabs are kept', () => {
  const r = parseEverySplit('data:\ttest\rdata: \ndata:test\n\ndata:  two\n\n');
  assert.deepEqual(data(r), ['\ttest\n\ntest', ' two']);
});

test('format-newlines: CRLF, LF and CR all end lines', () => {
  const r = parseEverySplit('data:test\r\ndata\ndata:test\r\n\r');
  assert.deepEqual(data(r), ['test\n\ntest']);
});

test('format-null-character', () => {
  assert.deepEqual(data(parseEverySplit('data:\0\n\n\n\n')), ['\0']);
});

test('format-utf-8: multi-byte characters split across chunks; bad bytes become U+FFFD', () => {
  const text = 'data:ok…\ndata:€𝄞\n\n';
  const bytes = new TextEncoder().encode(text);
  const oneByOne = parseAll([...bytes].map((b) => Uint8Array.of(b)));
  assert.deepEqual(data(oneByOne), ['ok…\n€𝄞']);
  const bad = Uint8Array.of(...new TextEncoder().encode('data:a'), 0xff, 0x0a, 0x0a);
  assert.deepEqual(data(parseAll([bad])), ['a\uFFFD']);
});

test('CR at the end of a chunk followed by LF at the start of the next is ONE line break', () => {
  const r = parseAll(['data:a\r', '\ndata:b\r', '\n\r', '\n']);
  assert.deepEqual(data(r), ['a\nb']);
  // ...while CR CR is two line breaks, i.e. a blank line: two events
  const r2 = parseAll(['data:a\r', '\rdata:b\r', '\r']);
  assert.deepEqual(data(r2), ['a', 'b']);
  // a CR-ended chunk followed by an empty chunk keeps the pending CR state
  const r3 = parseAll(['data:a\r', '', '\ndata:b\n\n']);
  assert.deepEqual(data(r3), ['a\nb']);
});

test('a dispatch happens exactly on the blank line, not before', () => {
  const seen = [];
  const p = new SseParser({ onEvent: (e) => seen.push(e.data) });
  p.feed('id: 7\ndata: one\ndata: two\n');
  assert.deepEqual(seen, []);
  p.feed('\n');
  assert.deepEqual(seen, ['one\ntwo']);
  assert.equal(p.lastEventId, '7');
});

test('a server-style stream: retry preamble, heartbeats, events with ids and types', () => {
  const text = 'retry: 1000\n\n: keep-alive\n\nid: 1\ndata: pong\n\nid: 2\nevent: news\ndata: a\ndata: b\n\n' +
    'event: gap\ndata: {"lastEventId":"0","firstAvailableId":"1"}\n\n';
  const r = parseEverySplit(text);
  assert.equal(r.reconnectionTime, 1000);
  assert.deepEqual(r.comments, [' keep-alive']);
  assert.deepEqual(r.events, [
    { type: 'message', data: 'pong', lastEventId: '1', idField: '1' },
    { type: 'news', data: 'a\nb', lastEventId: '2', idField: '2' },
    { type: 'gap', data: '{"lastEventId":"0","firstAvailableId":"1"}', lastEventId: '2', idField: null },
  ]);
});
