// Streaming publish (README "Streams that end"): one POST with `?stream=1` whose NDJSON
// body arrives over time publishes each line as it arrives, in order, and answers when the
// body ends; `&end=1` then ends the channel. It is not all-or-nothing: a bad line stops it
// with a 400 naming the line, after the lines before it; a line over MAX_BODY_BYTES or a
// stream over MAX_STREAM_BYTES is a 413, a body that stalls a 408. A server killed in the
// middle keeps every line any listener had received.
//
// One server with small limits; the kill test starts its own, twice, on one state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, useServers } from '../support/server.mjs';
import { assertError, closeLater, freshChannel, publish, sleep } from '../support/http.mjs';
import { openStream } from '../support/sse.mjs';

const [server] = useServers({ vars: { MAX_BODY_BYTES: '256', MAX_STREAM_BYTES: '4096', STREAM_STALL_SECONDS: '1' } });

const WAIT_MS = 5_000;
const line = (fields) => `${JSON.stringify(fields)}\n`;

/**
 * A request body the test writes to as it goes: `send(text)` enqueues a chunk, `close()`
 * ends it; `body` is the ReadableStream.
 */
function pipe() {
  let controller;
  const body = new ReadableStream({ start: (c) => { controller = c; } });
  const encoder = new TextEncoder();
  return {
    body,
    send: (text) => controller.enqueue(encoder.encode(text)),
    close: () => controller.close(),
  };
}

const streamPublish = (baseUrl, channel, body, { query = '', contentType = 'application/x-ndjson' } = {}) =>
  publish(baseUrl, channel, { body, contentType, query: `?stream=1${query}` });

async function listen(baseUrl, channel, headers = {}) {
  const stream = closeLater(await openStream(`${baseUrl}/channels/${channel}/events`, { headers }));
  assert.equal(stream.status, 200);
  return stream;
}

const triples = (stream) => stream.events.map((e) => [e.lastEventId, e.type, e.data]);

test('each line goes out as it arrives, before the body ends; the answer comes at its end', { timeout: 30_000 }, async () => {
  const channel = freshChannel('stream');
  const listener = await listen(server.url, channel);
  const body = pipe();
  const answer = streamPublish(server.url, channel, body.body);
  const tokens = ['The', ' answer', ' is', ' 42', '.'];
  for (const [i, token] of tokens.entries()) {
    body.send(line({ data: token, event: 'token' }));
    // Received while the publish is still open: listeners do not wait for the body's end.
    await listener.waitUntil(() => listener.events.length === i + 1, WAIT_MS, `token ${i + 1} before the body ends`);
  }
  body.send(line({ data: { done: true } }));
  body.close();
  const r = await answer;
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { firstId: '1', lastId: '6', count: 6, listeners: 1 });
  await listener.waitFor(6, WAIT_MS);
  assert.deepEqual(triples(listener), [
    ...tokens.map((t, i) => [String(i + 1), 'token', t]),
    ['6', 'message', '{"done":true}'],
  ]);
  assert.equal(listener.ended, false, 'without end=1 the channel goes on');
});

test('&end=1 ends the channel once the body has ended; a last line without a line break counts', async () => {
  const channel = freshChannel('stream-end');
  const listener = await listen(server.url, channel);
  const r = await streamPublish(server.url, channel, `${line({ data: 'a' })}\n${JSON.stringify({ data: 'b' })}`, { query: '&end=1' });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { firstId: '1', lastId: '2', count: 2, listeners: 1, ended: true });
  await listener.waitForEnd(WAIT_MS);
  assert.deepEqual(triples(listener), [['1', 'message', 'a'], ['2', 'message', 'b'], ['2', 'end', '{"lastEventId":"2"}']]);
  assertError(await streamPublish(server.url, channel, line({ data: 'c' })), 409, /ended/, 'a stream on an ended channel');
});

test('a bad line stops the publish with a 400 naming it; the lines before it stay published', async () => {
  const channel = freshChannel('stream-bad');
  const listener = await listen(server.url, channel);
  const body = `${line({ data: 'good 1' })}${line({ data: 'good 2' })}{"data": tru}\n${line({ data: 'never' })}`;
  const r = await streamPublish(server.url, channel, body);
  assertError(r, 400, /^line 3, column \d+: malformed JSON/, 'the bad line');
  assert.match(r.text, /the 2 events before it were published \(ids 1 to 2\)/);
  await listener.waitFor(2, WAIT_MS);
  await sleep(300);
  assert.deepEqual(listener.events.map((e) => e.data), ['good 1', 'good 2']);
  const reserved = await streamPublish(server.url, channel, line({ data: 'x', event: 'gap' }));
  assertError(reserved, 400, /^line 1: event type "gap" is reserved/, 'a reserved type');
  assert.match(reserved.text, /nothing was published/);
});

test('limits: a line over MAX_BODY_BYTES, a stream over MAX_STREAM_BYTES (413), a stall (408), not NDJSON (415), end=1 alone (400)', { timeout: 30_000 }, async () => {
  const channel = freshChannel('stream-limits');
  const long = await streamPublish(server.url, channel, `${line({ data: 'ok' })}${line({ data: 'x'.repeat(300) })}`);
  assertError(long, 413, /^line 2 is longer than 256 bytes \(MAX_BODY_BYTES\)/, 'a long line');
  assert.match(long.text, /ids 1 to 1/);

  const many = Array.from({ length: 400 }, (_, i) => line({ data: `n${i}` })).join('');
  const big = await streamPublish(server.url, channel, many);
  assertError(big, 413, /at most 4096 bytes \(MAX_STREAM_BYTES\)/, 'a stream past its cap');

  const listener = await listen(server.url, channel);
  const body = pipe();
  const answer = streamPublish(server.url, channel, body.body);
  body.send(line({ data: 'then silence' }));
  await listener.waitFor(1, WAIT_MS);
  // The server gives up after a second; a half-duplex client sees its answer once it has
  // sent its whole body, so the body ends well after that.
  await sleep(2_500);
  body.send(line({ data: 'too late' }));
  body.close();
  const stalled = await answer;
  assertError(stalled, 408, /sent nothing for 1000 ms \(STREAM_STALL_SECONDS\)/, 'a stalled body');
  assert.match(stalled.text, /the 1 events before it were published/);
  await sleep(300);
  assert.deepEqual(listener.events.map((e) => e.data), ['then silence'], 'nothing after the stall');

  assertError(await streamPublish(server.url, channel, line({ data: 'a' }), { contentType: 'application/json' }), 415,
    /streaming publish \(\?stream=1\) is application\/x-ndjson/, 'JSON');
  const endAlone = await publish(server.url, channel, { body: 'x', contentType: 'text/plain', query: '?end=1' });
  assertError(endAlone, 400, /^end=1 goes with stream=1/, 'end=1 on a plain publish');
});

test('a server killed in the middle of a streaming publish keeps every line a listener had received', { timeout: 120_000 }, async () => {
  const persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-stream-kill-'));
  try {
    let killed = await startServer({ persistDir });
    const channel = 'answer';
    const listener = await openStream(`${killed.url}/channels/${channel}/events`);
    const body = pipe();
    const answer = streamPublish(killed.url, channel, body.body).catch((e) => e);
    for (let i = 1; i <= 40; i += 1) {
      body.send(line({ data: `token ${i}` }));
      await sleep(10);
    }
    await listener.waitFor(20, WAIT_MS);
    process.kill(-killed.pid, 'SIGKILL');
    await killed.stop();
    await answer;
    await listener.close();
    const received = listener.events.map((e) => [e.lastEventId, e.data]);
    assert.ok(received.length >= 20, `${received.length} received before the kill`);

    const again = await startServer({ persistDir });
    try {
      const history = await openStream(`${again.url}/channels/${channel}/events?lastEventId=0`);
      await history.waitFor(received.length, WAIT_MS);
      const kept = history.events.map((e) => [e.lastEventId, e.data]);
      assert.deepEqual(kept.slice(0, received.length), received, 'every line received is in the history, in order');
      await history.close();
    } finally {
      await again.stop();
    }
  } finally {
    await rm(persistDir, { recursive: true, force: true });
  }
});
