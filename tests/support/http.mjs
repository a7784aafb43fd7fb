// Small HTTP helpers for the e2e tests (all waits bounded).
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

/** GET /channels/{name}: the channel's stats JSON (asserts 200). */
export async function stats(baseUrl, channel = 'default') {
  const r = await request(`${baseUrl}/channels/${encodeURIComponent(channel)}`);
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

/** Waits until the channel's `listeners` stat equals n. */
export function waitForListeners(baseUrl, channel, n, timeoutMs = 10_000) {
  return pollUntil(() => stats(baseUrl, channel), (s) => s.listeners === n, {
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

/**
 * A listener on a raw TCP socket: sends the GET, reads until the response headers
 * have arrived, then stops reading (socket.pause()), so the server's writes back up
 * once the kernel buffers are full.
 */
export async function openRawListener(baseUrl, path, { timeoutMs = 10_000 } = {}) {
  const { hostname, port } = new URL(baseUrl);
  const socket = net.connect({ host: hostname, port: Number(port) });
  let received = Buffer.alloc(0);
  let headerText = null;
  let ended = false;
  const endPromise = new Promise((resolve) => {
    socket.on('end', () => {
      ended = true;
      resolve('end');
    });
    socket.on('close', () => {
      ended = true;
      resolve('close');
    });
    socket.on('error', () => {
      ended = true;
      resolve('error');
    });
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no response headers on ${path} within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n` +
        'Accept-Encoding: identity\r\nConnection: close\r\n\r\n');
    });
    const onData = (chunk) => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0) {
        headerText = received.subarray(0, end).toString('latin1');
        socket.pause(); // from now on nothing is read
        socket.off('data', onData);
        clearTimeout(timer);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  let bytesAfterResume = 0;
  return {
    socket,
    headerText,
    statusLine: headerText.split('\r\n')[0],
    get ended() {
      return ended;
    },
    /** Starts reading again (discarding the data); resolves when the server ends the stream. */
    async drainUntilEnd(ms = 10_000) {
      // The stream is over when the socket ends (we sent Connection: close) or when
      // the chunked body's last chunk (0 CRLF CRLF) arrives.
      let tail = received.subarray(received.indexOf('\r\n\r\n') + 4);
      let chunkedEnd;
      const chunkedEndPromise = new Promise((resolve) => {
        chunkedEnd = resolve;
      });
      socket.on('data', (chunk) => {
        bytesAfterResume += chunk.length;
        tail = Buffer.concat([tail, chunk]).subarray(-16);
        if (tail.toString('latin1').endsWith('\r\n0\r\n\r\n')) chunkedEnd('chunked-end');
      });
      socket.resume();
      let timer;
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve('timeout'), ms);
      });
      const how = await Promise.race([endPromise, chunkedEndPromise, timeout]);
      clearTimeout(timer);
      return { how, bytes: bytesAfterResume };
    },
    destroy() {
      socket.destroy();
    },
  };
}
