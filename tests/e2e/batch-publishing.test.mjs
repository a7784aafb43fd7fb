// Batch publishing: one POST carries many events (NDJSON, one JSON object per line, or a
// JSON array), each with its own id, stored together and sent to each listener at once;
// one bad event refuses the whole batch, and MAX_BATCH_EVENTS and MAX_BODY_BYTES apply.
//
// One server: MAX_BATCH_EVENTS 50, MAX_BODY_BYTES 4096.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { assertError, freshChannel, publish, publishEvent, stats } from '../support/http.mjs';
import { listen } from '../support/sse.mjs';

const [server] = useServers({ vars: { MAX_BATCH_EVENTS: '50', MAX_BODY_BYTES: '4096' } });

const ndjson = (events) => events.map((e) => JSON.stringify(e)).join('\n') + '\n';
const publishNdjson = (channel, body) => publish(server.url, channel, { body, contentType: 'application/x-ndjson' });
const publishArray = (channel, events) => publish(server.url, channel, { body: JSON.stringify(events), contentType: 'application/json' });

/** Reads `n` events from a stream (each within 5 s). */
async function take(stream, n) {
  const out = [];
  for (let i = 0; i < n; i += 1) out.push(await stream.nextEvent(5_000));
  return out;
}

test('an NDJSON batch gets consecutive ids, answered first to last, and arrives in order', async () => {
  const channel = freshChannel('nd');
  const stream = await listen(server.url, `/channels/${channel}/events`);
  await publishEvent(server.url, channel, { data: 'before' });
  const events = [{ data: 'a' }, { data: { n: 2 }, event: 'score' }, { data: 'line 1\nline 2', retry: 2500 }];
  const r = await publishNdjson(channel, ndjson(events));
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json, { firstId: '2', lastId: '4', count: 3, listeners: 1 });
  const got = await take(stream, 4);
  assert.deepEqual(got.map((e) => [e.lastEventId, e.type, e.data]), [
    ['1', 'message', 'before'],
    ['2', 'message', 'a'],
    ['3', 'score', '{"n":2}'],
    ['4', 'message', 'line 1\nline 2'],
  ]);
  assert.equal((await stats(server.url, channel)).lastId, '4');
  await stream.close();
});

test('a JSON array is a batch too; a JSON object is still one publish', async () => {
  const channel = freshChannel('array');
  const stream = await listen(server.url, `/channels/${channel}/events`);
  const r = await publishArray(channel, [{ data: 'x' }, { data: 'y', event: 't' }]);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual([r.json.firstId, r.json.lastId, r.json.count], ['1', '2', 2]);
  const one = await publish(server.url, channel, { body: '{"data":"z"}', contentType: 'application/json' });
  assert.deepEqual(one.json, { id: '3', listeners: 1 });
  assert.deepEqual((await take(stream, 3)).map((e) => e.data), ['x', 'y', 'z']);
  await stream.close();
});

test('one bad event refuses the whole batch, naming its line, and nothing of it is stored or sent', async () => {
  const channel = freshChannel('all-or-nothing');
  const stream = await listen(server.url, `/channels/${channel}/events`);
  await publishEvent(server.url, channel, { data: 'kept' });
  for (const [body, why] of [
    [`${ndjson([{ data: 'a' }, { data: 'b' }])}{"data": tru}\n`, /^line 3, column \d+: malformed JSON/],
    [ndjson([{ data: 'a' }, { data: 'b', event: 'gap' }]), /^line 2: event type "gap" is reserved/],
    [ndjson([{ data: 'a' }, { nodata: 1 }]), /^line 2: unknown field "nodata"/],
    [ndjson([{ data: 'a' }, { data: 'b', data2: 1 }]), /^line 2: /],
  ]) {
    const r = await publishNdjson(channel, body);
    assertError(r, 400, why, `batch ${JSON.stringify(body).slice(0, 60)}`);
    assert.match(r.text, /nothing was published/);
  }
  const array = await publishArray(channel, [{ data: 'a' }, { data: 'b', event: 'x\ny' }]);
  assertError(array, 400, /^event 2 of the array: /, 'a bad array item');
  assert.equal((await stats(server.url, channel)).lastId, '1', 'no id was given to any refused batch');
  const next = await publishEvent(server.url, channel, { data: 'after' });
  assert.equal(next.id, '2');
  assert.deepEqual((await take(stream, 2)).map((e) => [e.lastEventId, e.data]), [['1', 'kept'], ['2', 'after']]);
  await stream.close();
});

test('MAX_BATCH_EVENTS and MAX_BODY_BYTES bound a batch (413); an empty batch is a 400', async () => {
  const channel = freshChannel('limits');
  const fifty = ndjson(Array.from({ length: 50 }, (_, i) => ({ data: i })));
  assert.equal((await publishNdjson(channel, fifty)).status, 200);
  const fiftyOne = ndjson(Array.from({ length: 51 }, (_, i) => ({ data: i })));
  assertError(await publishNdjson(channel, fiftyOne), 413, /at most 50 events/, '51 events');
  const big = ndjson(Array.from({ length: 10 }, () => ({ data: 'x'.repeat(500) })));
  assertError(await publishNdjson(channel, big), 413, /larger than 4096 bytes/, 'a body over MAX_BODY_BYTES');
  assertError(await publishArray(channel, []), 400, /no event/, 'an empty array');
  assertError(await publishNdjson(channel, '\n\n'), 400, /no event/, 'an empty NDJSON body');
  assert.equal((await stats(server.url, channel)).lastId, '50');
});

test('a listener resuming from inside a batch gets the rest of it, once each', async () => {
  const channel = freshChannel('resume');
  const r = await publishNdjson(channel, ndjson(Array.from({ length: 10 }, (_, i) => ({ data: `e${i + 1}` }))));
  assert.equal(r.json.lastId, '10');
  const resumed = await listen(server.url, `/channels/${channel}/events`, { headers: { 'last-event-id': '6' } });
  assert.deepEqual((await take(resumed, 4)).map((e) => [e.lastEventId, e.data]), [
    ['7', 'e7'], ['8', 'e8'], ['9', 'e9'], ['10', 'e10'],
  ]);
  await resumed.close();
});
