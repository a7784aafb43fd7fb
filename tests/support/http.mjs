// HTTP helpers for the e2e tests: requests, the worker's answers (publish, ping, stats,
// errors), and listeners on raw sockets. Every wait is bounded.
//
// Streams read as event streams (listen, listenOn, the EventSource emulation) are in
// sse.mjs. What listen(), listenOn(), ResumingListener and openRawListener open is
// remembered here; `afterEach(closeOpened)` in a test file closes it after each test.
import { spawn } from 'node:child_process';
import net from 'node:net';
import assert from 'node:assert/strict';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** fetch + body as text + parsed JSON when it is JSON. */
export async function request(url, init = {}) {
  const res = await fetch(url, { ...init, signal: init.signal ?? AbortSignal.timeout(15_000) });
  const text = await res.text();
  let json;
  if ((res.headers.get('content-type') ?? '').includes('application/json')) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: res.status, headers: res.headers, text, json };
}

// ---------------------------------------------------------------------------------------
// What the tests opened, to close after each test

const opened = new Set();

/** Remembers a stream, listener or socket (anything with close() or destroy()) for closeOpened(). */
export function closeLater(thing) {
  opened.add(thing);
  return thing;
}

/** Closes everything closeLater() remembered (for afterEach/after). */
export async function closeOpened() {
  const all = [...opened];
  opened.clear();
  await Promise.all(all.map(async (thing) => {
    try {
      await (thing.close ? thing.close() : thing.destroy());
    } catch {
      // already closed
    }
  }));
}

// ---------------------------------------------------------------------------------------
// Channels, ids and waiting

let channelCounter = 0;
/** A channel name no other test (nor an earlier run on kept state) uses. */
export const freshChannel = (what) => `${what}-${process.pid}-${(channelCounter += 1)}`;

/** GET /channels/{name}: the channel's stats JSON (asserts 200). `headers`: e.g. credentials. */
export async function stats(baseUrl, channel = 'default', { headers = {} } = {}) {
  const r = await request(`${baseUrl}/channels/${encodeURIComponent(channel)}`, { headers });
  assert.equal(r.status, 200, `GET /channels/${channel}: ${r.status} ${r.text}`);
  assert.ok(r.json, `GET /channels/${channel} is not JSON: ${r.headers.get('content-type')} ${r.text}`);
  return r.json;
}

/**
 * Polls `probe()` every `intervalMs` until `accept(value)` is true; returns the value.
 * Fails after timeoutMs with the last value seen.
 */
export async function pollUntil(probe, accept, { timeoutMs = 10_000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (Date.now() >= deadline) {
      assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last)}`);
    }
    await sleep(intervalMs);
  }
}

/** Waits until the channel's `listeners` stat equals n (`headers`: sent with the stats requests). */
export function waitForListeners(baseUrl, channel, n, timeoutMs = 10_000, { headers = {} } = {}) {
  return pollUntil(() => stats(baseUrl, channel, { headers }), (s) => s.listeners === n, {
    timeoutMs,
    intervalMs: 100,
    what: `${channel} to have ${n} listeners`,
  });
}

/** Compares decimal id strings as numbers (ids may exceed 2^53). */
export function idLess(a, b) {
  return BigInt(a) < BigInt(b);
}

export function assertDecimalId(id, what = 'id') {
  assert.equal(typeof id, 'string', `${what} should be a string, got ${JSON.stringify(id)}`);
  assert.match(id, /^[0-9]+$/, `${what} should be decimal`);
}

/** Every id is greater than the one before it. */
export function assertIdsIncrease(ids, what = 'ids') {
  for (let i = 1; i < ids.length; i += 1) {
    assert.ok(idLess(ids[i - 1], ids[i]), `${what}: id ${ids[i]} after ${ids[i - 1]}`);
  }
}

// ---------------------------------------------------------------------------------------
// The worker's answers

/** The publish answer: 200 JSON {"id": "<decimal>", "listeners": N} and nothing else. */
export function assertPublished(r, listeners, what = 'publish') {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${what}: content-type`);
  assert.ok(r.json && typeof r.json === 'object', `${what}: body is not JSON: ${r.text}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['id', 'listeners'], `${what}: ${r.text}`);
  assertDecimalId(r.json.id, `${what} id`);
  if (listeners === undefined) assert.equal(typeof r.json.listeners, 'number', `${what}: listeners in ${r.text}`);
  else assert.equal(r.json.listeners, listeners, `${what}: listeners in ${r.text}`);
  return r.json;
}

/** An error: its status, a text/plain body of one short line that matches `why` (when given). */
export function assertError(r, status, why, what) {
  assert.equal(r.status, status, `${what}: expected ${status}, got ${r.status} ${JSON.stringify(r.text)}`);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, `${what}: content-type ${r.headers.get('content-type')}`);
  const line = r.text.trim();
  assert.ok(line.length > 0, `${what}: empty error body`);
  assert.ok(!line.includes('\n') && !line.includes('\r'), `${what}: the body should be one line: ${JSON.stringify(r.text)}`);
  assert.ok(line.length <= 200, `${what}: the body should be short: ${JSON.stringify(r.text)}`);
  if (why) assert.match(line, why, `${what}: message ${JSON.stringify(line)}`);
}

// ---------------------------------------------------------------------------------------
// Publishing

/**
 * POST /channels/{channel}/events (or another `path` under the channel, such as `end`)
 * with any body (a ReadableStream is sent streamed, with no Content-Length); returns the
 * answer unchecked (see assertPublished).
 */
export function publish(baseUrl, channel, { body, contentType, query = '', headers = {}, path = 'events' } = {}) {
  const h = { ...headers };
  if (contentType !== undefined) h['content-type'] = contentType;
  const streamed = body instanceof ReadableStream ? { duplex: 'half' } : {};
  return request(`${baseUrl}/channels/${channel}/${path}${query}`, { method: 'POST', headers: h, body, ...streamed });
}

/** publish() with `value` as a JSON body. */
export const publishJson = (baseUrl, channel, value, options = {}) =>
  publish(baseUrl, channel, { body: JSON.stringify(value), contentType: 'application/json', ...options });

/**
 * Publishes one event as JSON ({data, event?, retry?} in `fields`) and asserts the answer
 * (assertPublished; `listeners`, when given, is the count it must report). Returns {id, listeners}.
 */
export async function publishEvent(baseUrl, channel, fields, { headers = {}, listeners } = {}) {
  const r = await publishJson(baseUrl, channel, fields, { headers });
  return assertPublished(r, listeners, `publish ${JSON.stringify(fields).slice(0, 60)} on ${channel}`);
}

/** Publishes each of `datas` as {data}, one after the other; returns [{id, data}] in publish order. */
export async function publishAll(baseUrl, channel, datas, options = {}) {
  const out = [];
  for (const data of datas) out.push({ id: (await publishEvent(baseUrl, channel, { data }, options)).id, data });
  return out;
}

/** Publishes `count` events ("e1", "e2", ...) with `inFlight` requests at a time; returns their ids, in that order. */
export async function publishBurst(baseUrl, channel, count, inFlight) {
  const ids = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      ids[i] = (await publishEvent(baseUrl, channel, { data: `e${i + 1}` })).id;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return ids;
}

/**
 * GET or POST /ping; asserts a 200 JSON answer with a decimal id and a listener count
 * (equal to `listeners` when given). Returns the answer's JSON.
 */
export async function ping(baseUrl, { method = 'GET', headers = {}, listeners } = {}) {
  const r = await request(`${baseUrl}/ping`, { method, headers });
  assert.equal(r.status, 200, `${method} /ping: ${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${method} /ping content-type`);
  assert.ok(r.json && typeof r.json === 'object', `${method} /ping body is not a JSON object: ${r.text}`);
  assertDecimalId(r.json.id, `${method} /ping id`);
  assert.equal(typeof r.json.listeners, 'number', `${method} /ping listeners: ${r.text}`);
  if (listeners !== undefined) assert.equal(r.json.listeners, listeners, `${method} /ping listeners: ${r.text}`);
  return r.json;
}

// ---------------------------------------------------------------------------------------
// Listeners that stop reading or vanish

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
 * A listener on a raw TCP socket: sends the GET, reads until the response headers
 * have arrived, then stops reading (socket.pause()), so the server's writes back up
 * once the kernel buffers are full. It keeps every byte it receives; drainUntilEnd()
 * reads again. Closed by closeOpened().
 */
export async function openRawListener(baseUrl, path, { timeoutMs = 10_000 } = {}) {
  const { hostname, port } = new URL(baseUrl);
  const socket = net.connect({ host: hostname, port: Number(port) });
  const chunks = [];
  let headEnd = -1; // offset of the blank line after the response head
  let tail = Buffer.alloc(0); // the last bytes, to see the chunked body's end
  let ended = false;
  let endedHow = null;
  const wake = new Set();
  const notify = () => {
    for (const w of [...wake]) w();
  };
  const end = (how) => {
    if (ended) return;
    ended = true;
    endedHow = how;
    notify();
  };
  socket.on('end', () => end('end'));
  socket.on('close', () => end('close'));
  socket.on('error', () => end('error'));
  socket.on('data', (chunk) => {
    chunks.push(chunk);
    tail = Buffer.concat([tail, chunk]).subarray(-16);
    notify();
  });
  const all = () => Buffer.concat(chunks);
  const listener = closeLater({
    socket,
    headerText: null,
    statusLine: null,
    get ended() {
      return ended;
    },
    /** The response body so far, de-chunked when it is chunked. */
    body() {
      const buf = all().subarray(headEnd + 4);
      return /\r\ntransfer-encoding:\s*chunked/i.test(this.headerText) ? dechunk(buf).body : buf;
    },
    /**
     * Starts reading again; resolves when the server ends the stream (the socket ends, or
     * the chunked body's last chunk arrives) or after `ms`: {how, bytes}, `how` being
     * 'chunked-end', 'end', 'close', 'error' or 'timeout', `bytes` what arrived after the head.
     */
    drainUntilEnd(ms = 10_000) {
      socket.resume();
      return new Promise((resolve) => {
        const check = () => {
          if (tail.toString('latin1').endsWith('\r\n0\r\n\r\n')) finish('chunked-end');
          else if (ended) finish(endedHow);
        };
        const timer = setTimeout(() => finish('timeout'), ms);
        const finish = (how) => {
          clearTimeout(timer);
          wake.delete(check);
          resolve({ how, bytes: all().length - headEnd - 4 });
        };
        wake.add(check);
        check();
      });
    },
    destroy() {
      socket.destroy();
    },
  });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(() => reject(new Error(`no response headers on ${path} within ${timeoutMs} ms`))),
        timeoutMs);
      const finish = (fn) => {
        clearTimeout(timer);
        wake.delete(check);
        fn();
      };
      const check = () => {
        const at = all().indexOf('\r\n\r\n');
        if (at >= 0) {
          socket.pause(); // from now on nothing is read
          headEnd = at;
          finish(resolve);
        } else if (ended) {
          finish(() => reject(new Error(`${path}: the connection ended (${endedHow}) before the response headers`)));
        }
      };
      socket.once('connect', () => {
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n` +
          'Accept-Encoding: identity\r\nConnection: close\r\n\r\n');
      });
      wake.add(check);
    });
  } catch (err) {
    socket.destroy();
    throw err;
  }
  listener.headerText = all().subarray(0, headEnd).toString('latin1');
  listener.statusLine = listener.headerText.split('\r\n')[0];
  return listener;
}

/**
 * A child process holding `n` listeners on `url` that read everything; `ready` resolves
 * once each has its first blank line (the retry field). Kill the child to make them vanish
 * without a clean close.
 */
export function spawnListeners(url, n) {
  const code = `
    const url = process.argv[1];
    const n = Number(process.argv[2]);
    let ready = 0;
    for (let i = 0; i < n; i += 1) {
      fetch(url, { headers: { accept: 'text/event-stream' } }).then(async (res) => {
        let seen = '';
        let counted = false;
        for await (const chunk of res.body) {
          seen += Buffer.from(chunk).toString('utf8');
          if (!counted && seen.includes('\\n\\n')) {
            counted = true;
            ready += 1;
            if (ready === n) console.log('ready');
          }
          if (seen.length > 4096) seen = seen.slice(-16);
        }
      }).catch(() => {});
    }
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['-e', code, url, String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  closeLater({ destroy: () => child.kill('SIGKILL') });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child listeners not ready within 15 s')), 15_000);
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`child exited early (${code ?? signal})`));
    });
  });
  return { child, ready };
}
