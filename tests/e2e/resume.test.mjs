// "Nothing lost": event ids, durable history in SQLite, resuming with Last-Event-ID
// (header or `lastEventId` query parameter), the gap event, heartbeats, slow and
// vanished listeners, and the `retry:` field every stream starts with.
//
// Two wrangler dev servers share ONE persist directory and port, one after the other:
//   FIRST  (defaults: HISTORY_SIZE 1000, HEARTBEAT_SECONDS 15, RETRY_MS 1000)
//          resume, concurrent publishing, the slow reader, the first half of the restart;
//   SECOND (HISTORY_SIZE 20, HEARTBEAT_SECONDS 1, RETRY_MS 1234)
//          the second half of the restart, gap, history bound, retry.
// Switching from FIRST to SECOND is the restart under test. Each test asks for the
// server it needs (serverFor), so any single test also runs alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startServer } from '../support/server.mjs';
import { openStream, parseAll } from '../support/sse.mjs';
import { request, stats, sleep, pollUntil, waitForListeners } from '../support/http.mjs';

const BIG_BODY = 300_000; // MAX_BODY_BYTES, so the slow-reader test can send 250 kB events

const FIRST = {
  name: 'FIRST',
  retryMs: 1000, // the documented default
  vars: { QUEUE_CAPACITY: '5', MAX_BODY_BYTES: String(BIG_BODY) },
};
const SECOND = {
  name: 'SECOND',
  retryMs: 1234,
  heartbeatMs: 1000,
  vars: {
    QUEUE_CAPACITY: '5',
    MAX_BODY_BYTES: String(BIG_BODY),
    HISTORY_SIZE: '20',
    HEARTBEAT_SECONDS: '1',
    RETRY_MS: '1234',
  },
};

let persistDir;
/** @type {{config: object, server: Awaited<ReturnType<typeof startServer>>} | null} */
let current = null;
let lastPort;
const timings = [];

/** The running server with `config`; stops the other one first (same port and state). */
async function serverFor(config) {
  if (current?.config === config) return current.server;
  if (current) {
    const t = Date.now();
    await current.server.stop();
    timings.push(`stop ${current.config.name}: ${Date.now() - t} ms`);
    current = null;
  }
  const t = Date.now();
  const server = await startServer({ vars: config.vars, persistDir, port: lastPort });
  timings.push(`start ${config.name}: ${Date.now() - t} ms`);
  lastPort = server.port;
  current = { config, server };
  return server;
}

before(async () => {
  persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-resume-'));
});

after(async () => {
  await current?.server.stop();
  current = null;
  if (persistDir) await rm(persistDir, { recursive: true, force: true }).catch(() => {});
  if (timings.length) console.log(`# servers: ${timings.join(', ')}`);
});

// ---------------------------------------------------------------------------------------
// helpers

/** POST one event (JSON body); returns the id the server gave it. */
async function publish(baseUrl, channel, data, extra = {}) {
  const r = await request(`${baseUrl}/channels/${channel}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ data, ...extra }),
  });
  assert.equal(r.status, 200, `publish ${JSON.stringify(data).slice(0, 40)} on ${channel}: ${r.status} ${r.text}`);
  assert.match(r.json?.id ?? '', /^[0-9]+$/, `publish answer: ${r.text}`);
  return r.json.id;
}

/** Publishes `datas` one after the other; returns [{id, data}] in publish order. */
async function publishAll(baseUrl, channel, datas) {
  const out = [];
  for (const data of datas) out.push({ id: await publish(baseUrl, channel, data), data });
  return out;
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const ids = (events) => events.map((e) => e.lastEventId);
const strIds = (nums) => nums.map(String);

function assertIncreasing(idList, what) {
  for (let i = 1; i < idList.length; i += 1) {
    assert.ok(BigInt(idList[i - 1]) < BigInt(idList[i]), `${what}: id ${idList[i]} after ${idList[i - 1]}`);
  }
}

/** Waits (bounded) until the stream's first bytes are there; asserts they are `retry: <ms>` + blank line. */
async function assertStartsWithRetry(stream, retryMs, what) {
  const prefix = `retry: ${retryMs}\n\n`;
  await stream.waitUntil(() => stream.text.length >= prefix.length, 10_000, `the first ${prefix.length} bytes of ${what}`);
  assert.equal(stream.text.slice(0, prefix.length), prefix, `${what} must start with ${JSON.stringify(prefix)}`);
  assert.equal(stream.retries[0], retryMs, `${what}: parsed retry`);
}

/** openStream + status, content type and retry checks. */
async function listen(baseUrl, pathAndQuery, config, headers = {}) {
  const stream = await openStream(`${baseUrl}${pathAndQuery}`, { headers });
  assert.equal(stream.status, 200, `GET ${pathAndQuery}: ${stream.status}`);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  await assertStartsWithRetry(stream, config.retryMs, `GET ${pathAndQuery} ${JSON.stringify(headers)}`);
  return stream;
}

/**
 * An EventSource-like listener in this process: when its stream ends (or cannot be
 * opened), it reconnects after a short delay with `Last-Event-ID: <last id seen>`.
 * Every stream it opens must start with the retry field. Bounded: at most
 * `maxConnections` connections, and it gives up reconnecting after `reconnectForMs`.
 */
class Resumer {
  constructor(baseUrl, channel, config, { lastEventId = null, maxConnections = 20, reconnectForMs = 60_000 } = {}) {
    this.baseUrl = baseUrl;
    this.channel = channel;
    this.config = config;
    this.lastEventId = lastEventId;
    this.maxConnections = maxConnections;
    this.reconnectForMs = reconnectForMs;
    this.events = [];
    this.comments = [];
    this.connections = 0; // successful (200) connections
    this.attempts = 0;
    this.failures = []; // why attempts failed or streams ended
    this.closed = false;
    this.stream = null;
    this._waiters = new Set();
    this.opened = new Promise((resolve) => {
      this._opened = resolve;
    });
    this.done = this._run();
  }

  setBaseUrl(url) {
    this.baseUrl = url;
  }

  async _run() {
    let giveUpAt = Date.now() + this.reconnectForMs;
    while (!this.closed && this.attempts < this.maxConnections * 50) {
      this.attempts += 1;
      const headers = this.lastEventId === null ? {} : { 'Last-Event-ID': this.lastEventId };
      let stream;
      try {
        stream = await openStream(`${this.baseUrl}/channels/${this.channel}/events`, { headers });
      } catch (err) {
        this.failures.push(`connect: ${err.cause?.code ?? err.message}`);
        if (Date.now() > giveUpAt) break;
        await sleep(100);
        continue;
      }
      if (stream.status !== 200) {
        this.failures.push(`status ${stream.status}`);
        await stream.close();
        if (Date.now() > giveUpAt) break;
        await sleep(100);
        continue;
      }
      this.connections += 1;
      this.stream = stream;
      this._opened();
      let seenEvents = 0;
      let seenComments = 0;
      const take = () => {
        while (seenEvents < stream.events.length) {
          const e = stream.events[seenEvents++];
          this.events.push(e);
          if (e.idField !== null) this.lastEventId = e.lastEventId;
        }
        while (seenComments < stream.commentLines.length) this.comments.push(stream.commentLines[seenComments++]);
        for (const w of [...this._waiters]) w();
      };
      const takeAll = stream.waitUntil(() => { take(); return false; }, 24 * 3600_000).catch(() => {});
      const retryCheck = assertStartsWithRetry(stream, this.config.retryMs, `stream #${this.connections} of ${this.channel}`)
        .catch((err) => {
          if (!this.closed) this.failures.push(`RETRY: ${err.message}`);
        });
      const reason = await stream.closed;
      await retryCheck;
      await takeAll;
      take();
      if (this.closed) break;
      this.failures.push(`stream ended: ${reason}${stream.error ? ` (${stream.error.message})` : ''}`);
      if (this.connections >= this.maxConnections) break;
      giveUpAt = Date.now() + this.reconnectForMs;
      await sleep(50);
    }
    this.finished = true;
    for (const w of [...this._waiters]) w();
  }

  /** Resolves once `check()` is truthy; bounded. */
  waitUntil(check, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const waiter = () => {
        if (check()) {
          done();
          resolve();
        } else if (this.finished) {
          done();
          reject(new Error(`listener on ${this.channel} stopped before ${what}; ${this.describe()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.describe()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(waiter);
      };
      this._waiters.add(waiter);
      waiter();
    });
  }

  waitForEvents(n, timeoutMs = 10_000) {
    return this.waitUntil(() => this.events.length >= n, timeoutMs, `${n} events`);
  }

  describe() {
    const last = this.events.at(-1);
    return `${this.events.length} events (last id ${last?.lastEventId}), ${this.connections} connections, ` +
      `failures: ${JSON.stringify(this.failures.slice(-5))}`;
  }

  retryFailures() {
    return this.failures.filter((f) => f.startsWith('RETRY'));
  }

  async close() {
    this.closed = true;
    await this.stream?.close().catch(() => {});
    await Promise.race([this.done, sleep(5000)]);
  }
}

/** Decodes an HTTP/1.1 chunked body as far as it is complete. */
function dechunk(buf) {
  const parts = [];
  let i = 0;
  let complete = false;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', i);
    if (lineEnd < 0) break;
    const size = Number.parseInt(buf.subarray(i, lineEnd).toString('latin1').split(';')[0], 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk size line at byte ${i}`);
    if (size === 0) {
      complete = true;
      break;
    }
    const start = lineEnd + 2;
    if (start + size + 2 > buf.length) break;
    parts.push(buf.subarray(start, start + size));
    i = start + size + 2;
  }
  return { body: Buffer.concat(parts), complete };
}

/**
 * A listener on a raw TCP socket that keeps every byte: it reads the response head,
 * then stops reading until resumeUntilEnd(), so the server's writes back up.
 */
async function openPausedListener(baseUrl, pathAndQuery, { timeoutMs = 10_000 } = {}) {
  const { hostname, port } = new URL(baseUrl);
  const socket = net.connect({ host: hostname, port: Number(port) });
  const chunks = [];
  let tail = Buffer.alloc(0);
  let closed = false;
  const wake = new Set();
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
    for (const w of [...wake]) w();
  });
  socket.on('data', (c) => {
    chunks.push(c);
    tail = Buffer.concat([tail, c]).subarray(-16);
    for (const w of [...wake]) w();
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no response head on ${pathAndQuery} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      socket.write(`GET ${pathAndQuery} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n` +
        'Accept-Encoding: identity\r\nConnection: close\r\n\r\n');
    });
    const check = () => {
      if (Buffer.concat(chunks).indexOf('\r\n\r\n') >= 0) {
        socket.pause(); // from now on nothing is read
        wake.delete(check);
        clearTimeout(timer);
        resolve();
      } else if (closed) {
        wake.delete(check);
        clearTimeout(timer);
        reject(new Error('closed before the response head'));
      }
    };
    wake.add(check);
  });
  const all = () => Buffer.concat(chunks);
  const head = () => {
    const buf = all();
    return buf.subarray(0, buf.indexOf('\r\n\r\n')).toString('latin1');
  };
  return {
    head,
    /** Reads again; resolves with how the stream ended: 'chunked-end', 'close' or 'timeout'. */
    async resumeUntilEnd(ms) {
      socket.resume();
      return new Promise((resolve) => {
        const check = () => {
          if (tail.toString('latin1').endsWith('\r\n0\r\n\r\n')) finish('chunked-end');
          else if (closed) finish('close');
        };
        const timer = setTimeout(() => finish('timeout'), ms);
        const finish = (how) => {
          clearTimeout(timer);
          wake.delete(check);
          resolve(how);
        };
        wake.add(check);
        check();
      });
    },
    /** The body received so far, parsed as an event stream. */
    parsed() {
      const buf = all();
      const bodyStart = buf.indexOf('\r\n\r\n') + 4;
      const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head());
      const body = chunked ? dechunk(buf.subarray(bodyStart)).body : buf.subarray(bodyStart);
      return { bytes: body.length, ...parseAll([new Uint8Array(body)]) };
    },
    destroy() {
      socket.destroy();
    },
  };
}

// ---------------------------------------------------------------------------------------
// FIRST server

for (const how of ['header', 'query']) {
  test(`resume with ${how === 'header' ? 'the Last-Event-ID header' : 'the lastEventId query parameter'}: ` +
    'exactly the 50 missed events, in order, then live ones', { timeout: 90_000 }, async () => {
    const server = await serverFor(FIRST);
    const channel = `resume-${how}`;
    const first = await listen(server.url, `/channels/${channel}/events`, FIRST);
    const before = await publishAll(server.url, channel, range(1, 5).map((i) => `before-${i}`));
    await first.waitFor(5);
    assert.deepEqual(first.events.map((e) => [e.lastEventId, e.data]), before.map((p) => [p.id, p.data]));
    const lastSeen = first.lastEventId;
    assert.equal(lastSeen, before.at(-1).id);
    await first.close();

    const missed = await publishAll(server.url, channel, range(1, 50).map((i) => `missed-${i}`));
    assertIncreasing([lastSeen, ...missed.map((p) => p.id)], 'publish ids');

    const resumed = how === 'header'
      ? await listen(server.url, `/channels/${channel}/events`, FIRST, { 'Last-Event-ID': lastSeen })
      : await listen(server.url, `/channels/${channel}/events?lastEventId=${lastSeen}`, FIRST);
    await resumed.waitFor(50);
    await sleep(200); // would a surplus event arrive?
    assert.deepEqual(resumed.events.map((e) => [e.lastEventId, e.data]), missed.map((p) => [p.id, p.data]),
      'exactly the missed events, in order');
    assert.ok(resumed.events.every((e) => e.type === 'message' && e.idField === e.lastEventId), 'each with its own id');

    const live = await publishAll(server.url, channel, ['live-1', 'live-2', 'live-3']);
    await resumed.waitFor(53);
    await sleep(200);
    assert.deepEqual(resumed.events.slice(50).map((e) => [e.lastEventId, e.data]), live.map((p) => [p.id, p.data]));
    assert.equal(resumed.events.length, 53);
    assert.equal(resumed.ended, false, 'still open');
    await resumed.close();
  });
}

test('events published while a replay is sent arrive exactly once each', { timeout: 120_000 }, async () => {
  const server = await serverFor(FIRST);
  const channel = 'concurrent';
  const published = await publishAll(server.url, channel, range(1, 200).map((i) => `old-${i}`));
  assert.equal(published[0].id, '1', 'a fresh channel starts at id 1');

  // 50 more, published one after the other, while three listeners resume from 0 at
  // different moments of it.
  const more = [];
  const publisher = (async () => {
    for (let i = 1; i <= 50; i += 1) more.push({ id: await publish(server.url, channel, `new-${i}`), data: `new-${i}` });
  })();
  const listeners = [];
  for (const startAfter of [0, 15, 35]) {
    await pollUntil(() => more.length, (n) => n >= startAfter, { timeoutMs: 30_000, intervalMs: 5, what: `${startAfter} publishes` });
    listeners.push(new Resumer(server.url, channel, FIRST, { lastEventId: '0' }));
  }
  await publisher;
  const all = [...published, ...more];
  assert.deepEqual(all.map((p) => p.id), strIds(range(1, 250)), 'ids 1..250');
  try {
    for (const l of listeners) {
      await l.waitForEvents(250, 20_000);
      await sleep(200);
      assert.deepEqual(l.events.map((e) => [e.lastEventId, e.data]), all.map((p) => [p.id, p.data]),
        `all 250 exactly once, in order (${l.describe()})`);
      assert.ok(!l.events.some((e) => e.type === 'gap'), 'no gap: everything is kept');
      assert.deepEqual(l.retryFailures(), []);
    }
  } finally {
    for (const l of listeners) await l.close();
  }
});

test('a reader that stops reading is cut, resumes with its last id and gets all 100; a fast one beside it gets all 100 without stalling',
  { timeout: 180_000 }, async (t) => {
    const server = await serverFor(FIRST);
    const channel = 'slow';
    const SIZE = 250_000;
    const fast = new Resumer(server.url, channel, FIRST);
    await fast.opened;
    const slow = await openPausedListener(server.url, `/channels/${channel}/events`);
    assert.match(slow.head(), /^HTTP\/1\.1 200/);
    await waitForListeners(server.url, channel, 2);

    const published = [];
    let cutAfter = null; // publishes done when stats first showed the slow one gone
    let maxLag = 0; // largest (published - received by the fast listener), sampled after each publish
    const started = Date.now();
    for (let i = 1; i <= 100; i += 1) {
      const data = `${i}:${'x'.repeat(SIZE)}`;
      published.push({ id: await publish(server.url, channel, data), data });
      maxLag = Math.max(maxLag, i - fast.events.length);
      if (cutAfter === null && i % 5 === 0) {
        const s = await stats(server.url, channel);
        if (s.droppedSlow > 0) cutAfter = i;
      }
    }
    const publishMs = Date.now() - started;
    await fast.waitForEvents(100, 30_000);
    const fastDoneMs = Date.now() - started;
    const s = await stats(server.url, channel);
    t.diagnostic(`100 x ${SIZE} B published in ${publishMs} ms; fast listener had all 100 after ${fastDoneMs} ms, ` +
      `max lag ${maxLag} events, ${fast.connections} connection(s); slow one cut by publish ~${cutAfter}; ` +
      `stats ${JSON.stringify(s)}`);

    assert.deepEqual(fast.events.map((e) => e.lastEventId), published.map((p) => p.id));
    assert.ok(fast.events.every((e, i) => e.data === published[i].data), 'fast listener: data intact');
    assert.equal(fast.connections, 1, `the fast listener was never cut: ${fast.describe()}`);
    assert.ok(s.droppedSlow >= 1, `the slow reader was cut as slow (no longer counted): ${JSON.stringify(s)}`);
    assert.equal(s.listeners, 1);

    // The slow reader reads again: what was queued before the cut, then the end of its stream.
    const how = await slow.resumeUntilEnd(30_000);
    const got = slow.parsed();
    t.diagnostic(`slow reader: stream ended by ${how} after ${got.bytes} body bytes, ${got.events.length} events, ` +
      `last id ${got.lastEventId}`);
    assert.notEqual(how, 'timeout', `the slow reader's stream must end; got ${got.events.length} events`);
    slow.destroy();
    assert.equal(got.retries[0], FIRST.retryMs);
    assert.ok(got.events.length < 100, `the slow reader was cut before the end (${got.events.length} events)`);
    assert.deepEqual(got.events.map((e) => e.lastEventId), published.slice(0, got.events.length).map((p) => p.id),
      'before the cut: a prefix, in order');
    assert.ok(got.events.every((e, i) => e.data === published[i].data));

    // It reconnects with its last id, as an EventSource does, and catches up.
    const again = new Resumer(server.url, channel, FIRST, { lastEventId: got.lastEventId || null });
    try {
      await again.waitForEvents(100 - got.events.length, 30_000);
      await sleep(200);
      const joined = [...got.events, ...again.events];
      assert.deepEqual(joined.map((e) => e.lastEventId), published.map((p) => p.id), 'all 100 exactly once, in order');
      assert.ok(joined.every((e, i) => e.data === published[i].data));
      assert.deepEqual(again.retryFailures(), []);
      assert.deepEqual(fast.retryFailures(), []);
    } finally {
      await again.close();
      await fast.close();
    }
  });

// ---------------------------------------------------------------------------------------
// FIRST -> SECOND: a restart on the same persisted state

test('restart: ids continue (never reused) and a listener resumes across it', { timeout: 120_000 }, async (t) => {
  let server = await serverFor(FIRST);
  const channel = 'restart';
  const before = await publishAll(server.url, channel, range(1, 5).map((i) => `before-${i}`));
  const listener = new Resumer(server.url, channel, FIRST, { reconnectForMs: 60_000 });
  try {
    await listener.opened;
    const more = await publishAll(server.url, channel, ['before-6']);
    await listener.waitForEvents(1, 10_000);
    const statsBefore = await stats(server.url, channel);
    assert.equal(statsBefore.lastId, more[0].id);

    // Stop FIRST, start SECOND on the same port and persist directory. The listener sees
    // its stream end and keeps reconnecting with its last id; its next stream comes from
    // SECOND, so it must start with SECOND's retry value.
    listener.config = SECOND;
    server = await serverFor(SECOND);
    const statsAfter = await stats(server.url, channel);
    assert.equal(statsAfter.lastId, more[0].id, `last id survives the restart: ${JSON.stringify(statsAfter)}`);
    assert.equal(statsAfter.historyLength, 6);

    const after = await publishAll(server.url, channel, range(1, 5).map((i) => `after-${i}`));
    const allIds = [...before, ...more, ...after].map((p) => p.id);
    assertIncreasing(allIds, 'ids across the restart');
    assert.equal(new Set(allIds).size, allIds.length, 'no id reused');

    // The listener from before the restart ends with everything after its last id.
    await listener.waitForEvents(6, 30_000);
    await sleep(200);
    assert.deepEqual(listener.events.map((e) => [e.lastEventId, e.data]), [...more, ...after].map((p) => [p.id, p.data]),
      listener.describe());
    t.diagnostic(`listener across the restart: ${listener.describe()}`);
    assert.ok(listener.connections >= 2, 'it did reconnect');
    assert.deepEqual(listener.retryFailures(), [], 'each of its streams started with its server\'s retry value');

    // A fresh resume from an id published before the restart.
    const resumed = await listen(server.url, `/channels/${channel}/events`, SECOND, { 'Last-Event-ID': before[1].id });
    const expected = [...before.slice(2), ...more, ...after];
    await resumed.waitFor(expected.length);
    await sleep(200);
    assert.deepEqual(resumed.events.map((e) => [e.lastEventId, e.data]), expected.map((p) => [p.id, p.data]));
    await resumed.close();
  } finally {
    await listener.close();
  }
});

// ---------------------------------------------------------------------------------------
// SECOND server

test('gap: resuming from an id no longer kept starts with an id-less gap event', { timeout: 60_000 }, async () => {
  const server = await serverFor(SECOND); // HISTORY_SIZE 20
  const channel = 'gap';
  const published = await publishAll(server.url, channel, range(1, 30).map((i) => `g${i}`));
  assert.deepEqual(published.map((p) => p.id), strIds(range(1, 30)));

  const resumed = await listen(server.url, `/channels/${channel}/events`, SECOND, { 'Last-Event-ID': '3' });
  await resumed.waitFor(21);
  await sleep(200);
  const [gap, ...rest] = resumed.events;
  assert.equal(gap.type, 'gap');
  assert.deepEqual(JSON.parse(gap.data), { lastEventId: '3', firstAvailableId: '11' });
  assert.equal(gap.idField, null, 'the gap event has no id field');
  assert.equal(gap.lastEventId, '', 'and so leaves the last event id unchanged');
  const gapBlock = resumed.text.slice(`retry: ${SECOND.retryMs}\n\n`.length).split('\n\n')[0];
  assert.doesNotMatch(gapBlock, /^id:/m, `raw gap block: ${JSON.stringify(gapBlock)}`);
  assert.deepEqual(ids(rest), strIds(range(11, 30)));
  assert.deepEqual(rest.map((e) => e.data), range(11, 30).map((i) => `g${i}`));
  assert.equal(resumed.events.length, 21);
  await resumed.close();

  // The same through the query parameter; and from the edge (10 seen, 11 kept): no gap.
  const q = await listen(server.url, `/channels/${channel}/events?lastEventId=3`, SECOND);
  await q.waitFor(21);
  assert.equal(q.events[0].type, 'gap');
  await q.close();
  const edge = await listen(server.url, `/channels/${channel}/events`, SECOND, { 'Last-Event-ID': '10' });
  await edge.waitFor(20);
  await sleep(200);
  assert.deepEqual(ids(edge.events), strIds(range(11, 30)));
  await edge.close();
});

test('history is bounded: HISTORY_SIZE 20 keeps the last 20 of 200', { timeout: 90_000 }, async () => {
  const server = await serverFor(SECOND);
  const channel = 'bound';
  const published = await publishAll(server.url, channel, range(1, 200).map((i) => `b${i}`));
  const s = await stats(server.url, channel);
  assert.equal(s.historyLength, 20, JSON.stringify(s));
  assert.equal(s.lastId, '200');
  assert.equal(s.published, 200);

  const resumed = await listen(server.url, `/channels/${channel}/events`, SECOND, { 'Last-Event-ID': '0' });
  await resumed.waitFor(21);
  await sleep(300);
  assert.equal(resumed.events.length, 21, `a gap then exactly 20: ${resumed.events.length}`);
  const [gap, ...rest] = resumed.events;
  assert.equal(gap.type, 'gap');
  assert.equal(gap.idField, null);
  assert.deepEqual(JSON.parse(gap.data), { lastEventId: '0', firstAvailableId: '181' });
  assert.deepEqual(rest.map((e) => [e.lastEventId, e.data]), published.slice(180).map((p) => [p.id, p.data]));
  await resumed.close();
});

test('every stream starts with retry: RETRY_MS (1234 here; the default 1000 was checked on FIRST)', { timeout: 60_000 },
  async () => {
    const server = await serverFor(SECOND);
    await publishAll(server.url, 'retry', ['r1', 'r2']);
    const cases = [
      ['/listen', {}],
      ['/channels/retry/events', {}],
      ['/channels/retry/events', { 'Last-Event-ID': '1' }],
      ['/channels/retry/events?lastEventId=0', {}],
      ['/channels/retry/events', { 'Last-Event-ID': '2' }],
      ['/channels/gap/events', { 'Last-Event-ID': '1' }], // starts with a gap event right after
    ];
    for (const [p, headers] of cases) {
      const stream = await listen(server.url, p, SECOND, headers); // asserts the first bytes
      assert.equal(stream.parser.reconnectionTime, 1234);
      await stream.close();
    }
  });
