// Reading event streams in the tests:
// - SseParser / parseAll: a small event-stream parser that follows the WHATWG HTML rules
//   for server-sent events ("Parsing an event stream" and "Interpreting an event stream");
// - openStream: one stream over `fetch`, parsed as it arrives (no reconnecting);
// - listen / listenOn: openStream with the checks every test makes (200, content type,
//   optionally the retry preamble), closed by closeOpened() (http.mjs);
// - ResumingListener: an EventSource emulation that reconnects with Last-Event-ID.
//
// Spec rules implemented here:
// - one leading U+FEFF (BOM) is stripped;
// - CRLF, LF and CR all end a line, also when a CR ends one chunk and the LF starts
//   the next one (that pair is ONE line break);
// - a line starting with ":" is a comment;
// - a field line splits at the first ":", one leading space of the value is removed;
//   a line without ":" is a field name with an empty value; unknown fields are ignored;
// - "data" appends value + LF to the data buffer, the last LF is removed at dispatch;
// - "event" sets the event type (default "message");
// - "id" sets the last event ID buffer unless the value contains NUL; it persists
//   across events; an empty id resets it;
// - "retry" is used only when it is all ASCII digits;
// - a blank line dispatches; an empty data buffer dispatches nothing (but still
//   commits the last event ID); an event not ended by a blank line is discarded.
import assert from 'node:assert/strict';
import { closeLater, sleep, waitForListeners } from './http.mjs';

const LF = '\n';
const CR = '\r';

export class SseParser {
  /**
   * @param {object} [handlers]
   * @param {(event: SseEvent) => void} [handlers.onEvent]
   * @param {(text: string) => void} [handlers.onComment]  text after the ':'
   * @param {(ms: number) => void} [handlers.onRetry]
   */
  constructor({ onEvent, onComment, onRetry } = {}) {
    this.onEvent = onEvent ?? (() => {});
    this.onComment = onComment ?? (() => {});
    this.onRetry = onRetry ?? (() => {});
    this._decoder = new TextDecoder('utf-8', { ignoreBOM: true }); // BOM handled below
    this._started = false; // has the first character been seen (BOM check done)?
    this._skipLF = false; // the previous chunk ended with CR
    this._line = ''; // incomplete line carried over from the previous chunk
    this._data = '';
    this._eventType = '';
    this._idBuffer = ''; // last event ID buffer
    this._idField = null; // the id field seen in the current event block, if any
    /** The source's last event ID string (what a browser would send as Last-Event-ID). */
    this.lastEventId = '';
    /** Reconnection time in ms set by the last valid retry field, or null. */
    this.reconnectionTime = null;
  }

  /** Feeds bytes (Uint8Array); UTF-8 sequences may be split across chunks. */
  feedBytes(bytes) {
    this.feed(this._decoder.decode(bytes, { stream: true }));
  }

  /** Feeds decoded text. */
  feed(chunk) {
    if (chunk.length === 0) return;
    let i = 0;
    if (!this._started) {
      this._started = true;
      if (chunk.charCodeAt(0) === 0xfeff) i = 1;
    }
    if (this._skipLF && i < chunk.length) {
      if (chunk[i] === LF) i += 1;
      this._skipLF = false;
    }
    while (i < chunk.length) {
      let j = i;
      while (j < chunk.length && chunk[j] !== CR && chunk[j] !== LF) j += 1;
      if (j === chunk.length) {
        this._line += chunk.slice(i);
        return;
      }
      const line = this._line + chunk.slice(i, j);
      this._line = '';
      if (chunk[j] === CR) {
        if (j + 1 < chunk.length) {
          if (chunk[j + 1] === LF) j += 1;
        } else {
          this._skipLF = true; // a LF at the start of the next chunk belongs to this CR
        }
      }
      i = j + 1;
      this._processLine(line);
    }
  }

  /**
   * End of stream: flushes the decoder; any incomplete line and any event not ended
   * by a blank line are discarded, as the spec says.
   */
  end() {
    const rest = this._decoder.decode();
    if (rest) this.feed(rest);
    this._line = '';
    this._data = '';
    this._eventType = '';
    this._idField = null;
  }

  _processLine(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line[0] === ':') {
      this.onComment(line.slice(1));
      return;
    }
    const colon = line.indexOf(':');
    let field;
    let value;
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
    } else {
      field = line;
      value = '';
    }
    switch (field) {
      case 'event':
        this._eventType = value;
        break;
      case 'data':
        this._data += value + LF;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this._idBuffer = value;
          this._idField = value;
        }
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) {
          this.reconnectionTime = Number.parseInt(value, 10);
          this.onRetry(this.reconnectionTime);
        }
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  _dispatch() {
    this.lastEventId = this._idBuffer;
    const idField = this._idField;
    this._idField = null;
    if (this._data === '') {
      this._eventType = '';
      return;
    }
    let data = this._data;
    if (data.endsWith(LF)) data = data.slice(0, -1);
    /** @typedef {{type: string, data: string, lastEventId: string, idField: string|null}} SseEvent */
    const event = {
      type: this._eventType === '' ? 'message' : this._eventType,
      data,
      lastEventId: this.lastEventId,
      // Not part of the spec's event: the id field written in THIS event's block
      // (null when the block had none), so tests can tell "has its own id" apart
      // from "inherits the last event ID".
      idField,
    };
    this._data = '';
    this._eventType = '';
    this.onEvent(event);
  }
}

/** Parses a whole stream given as one string (or several chunks); returns what it saw. */
export function parseAll(chunks) {
  const events = [];
  const comments = [];
  const retries = [];
  const parser = new SseParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onRetry: (r) => retries.push(r),
  });
  for (const chunk of typeof chunks === 'string' ? [chunks] : chunks) {
    if (typeof chunk === 'string') parser.feed(chunk);
    else parser.feedBytes(chunk);
  }
  parser.end();
  return { events, comments, retries, lastEventId: parser.lastEventId, reconnectionTime: parser.reconnectionTime };
}

const RAW_TEXT_CAP = 1 << 20; // keep at most 1 MiB of the raw stream text

/**
 * Opens an event stream with fetch and parses it as it arrives.
 * Never throws for an HTTP error status: check `stream.status`.
 *
 * @param {string|URL} url
 * @param {{headers?: Record<string,string>, signal?: AbortSignal, method?: string}} [options]
 */
export async function openStream(url, { headers = {}, signal, method = 'GET' } = {}) {
  const controller = new AbortController();
  if (signal) {
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  }
  const response = await fetch(url, {
    method,
    headers: { accept: 'text/event-stream', 'cache-control': 'no-cache', ...headers },
    signal: controller.signal,
    cache: 'no-store',
  });
  return new SseStream(response, controller);
}

class SseStream {
  constructor(response, controller) {
    this.response = response;
    this.status = response.status;
    this.headers = response.headers;
    /** every event dispatched so far, in order */
    this.events = [];
    /** comment lines (text after ':') */
    this.commentLines = [];
    /** retry values seen */
    this.retries = [];
    /** the raw text received (capped at 1 MiB) */
    this.text = '';
    /** number of body chunks received */
    this.chunks = 0;
    /** true once the body has ended, failed or been aborted */
    this.ended = false;
    /** 'end' | 'abort' | 'error' once ended */
    this.endReason = null;
    this.error = null;
    this._controller = controller;
    this._cursor = 0; // for nextEvent()
    this._waiters = new Set();
    this.parser = new SseParser({
      onEvent: (e) => {
        this.events.push(e);
        this._notify();
      },
      onComment: (c) => {
        this.commentLines.push(c);
        this._notify();
      },
      onRetry: (r) => {
        this.retries.push(r);
        this._notify();
      },
    });
    this.closed = this._pump();
  }

  /** number of comment lines (heartbeats) received */
  get comments() {
    return this.commentLines.length;
  }

  get lastEventId() {
    return this.parser.lastEventId;
  }

  async _pump() {
    const body = this.response.body;
    if (!body) {
      this._finish('end');
      return this.endReason;
    }
    const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    try {
      for await (const chunk of body) {
        const text = decoder.decode(chunk, { stream: true });
        if (this.text.length < RAW_TEXT_CAP) this.text += text.slice(0, RAW_TEXT_CAP - this.text.length);
        this.chunks += 1;
        this.parser.feed(text);
        this._notify();
      }
      const rest = decoder.decode();
      if (rest) {
        this.text += rest;
        this.parser.feed(rest);
      }
      this.parser.end();
      this._finish('end');
    } catch (err) {
      if (this._controller.signal.aborted) {
        this._finish('abort');
      } else {
        this.error = err;
        this._finish('error');
      }
    }
    return this.endReason;
  }

  _finish(reason) {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    this._notify();
  }

  _notify() {
    for (const waiter of [...this._waiters]) waiter();
  }

  /**
   * Resolves with `check()`'s first truthy value (checked after every chunk, event,
   * comment and retry); rejects after timeoutMs, or when the stream ends while
   * `check()` is still falsy.
   */
  waitUntil(check, timeoutMs = 5000, what = 'condition') {
    return this._waitUntil(check, timeoutMs, what);
  }

  _waitUntil(check, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      let timer;
      const waiter = () => {
        let value;
        try {
          value = check();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (value) {
          done();
          resolve(value);
        } else if (this.ended) {
          done();
          reject(new Error(`stream ended (${this.endReason}${this.error ? `: ${this.error.message}` : ''}) ` +
            `before ${what}; got ${this.events.length} events`));
        }
      };
      const done = () => {
        clearTimeout(timer);
        this._waiters.delete(waiter);
      };
      timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.events.length} events, ` +
          `${this.comments} comments; last: ${JSON.stringify(this.events.at(-1) ?? null)}`));
      }, timeoutMs);
      this._waiters.add(waiter);
      waiter();
    });
  }

  /** The next event not yet returned by nextEvent(). */
  async nextEvent(timeoutMs = 5000) {
    const event = await this._waitUntil(
      () => (this._cursor < this.events.length ? this.events[this._cursor] : null),
      timeoutMs,
      `event #${this._cursor + 1}`,
    );
    this._cursor += 1;
    return event;
  }

  /** Resolves with `this.events` once at least n events arrived. */
  waitFor(n, timeoutMs = 5000) {
    return this._waitUntil(() => (this.events.length >= n ? this.events : null), timeoutMs, `${n} events`);
  }

  /** Resolves once at least n comment lines arrived. */
  waitForComments(n, timeoutMs = 5000) {
    return this._waitUntil(() => (this.comments >= n ? this.commentLines : null), timeoutMs, `${n} comments`);
  }

  /** Resolves with the first event matching predicate (searching all events so far). */
  waitForEvent(predicate, timeoutMs = 5000, what = 'a matching event') {
    return this._waitUntil(() => this.events.find(predicate), timeoutMs, what);
  }

  /** Resolves with the end reason once the stream has ended ('end', 'error' or 'abort'). */
  waitForEnd(timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream still open after ${timeoutMs} ms`)), timeoutMs);
      this.closed.then((reason) => {
        clearTimeout(timer);
        resolve(reason);
      });
    });
  }

  /** Aborts the request (the client disconnects). */
  async close() {
    this._controller.abort();
    await this.closed;
  }
}

/** Waits (bounded) until the stream's first bytes are there; asserts they are `retry: <ms>` + blank line. */
export async function assertStartsWithRetry(stream, retryMs, what = 'the stream') {
  const prefix = `retry: ${retryMs}\n\n`;
  await stream.waitUntil(() => stream.text.length >= prefix.length, 10_000, `the first ${prefix.length} bytes of ${what}`);
  assert.equal(stream.text.slice(0, prefix.length), prefix, `${what} must start with ${JSON.stringify(prefix)}`);
  assert.equal(stream.retries[0], retryMs, `${what}: parsed retry`);
}

/**
 * Opens `baseUrl + path` as an event stream (openStream) that closeOpened() closes;
 * asserts 200 and a text/event-stream content type and, given `retryMs`, that the
 * stream starts with `retry: <retryMs>` and a blank line.
 */
export async function listen(baseUrl, path, { headers = {}, retryMs } = {}) {
  const stream = closeLater(await openStream(`${baseUrl}${path}`, { headers }));
  const what = `GET ${path}${Object.keys(headers).length > 0 ? ` ${JSON.stringify(headers)}` : ''}`;
  assert.equal(stream.status, 200, `${what}: ${stream.status}`);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/, `${what}: content-type`);
  if (retryMs !== undefined) await assertStartsWithRetry(stream, retryMs, what);
  return stream;
}

/**
 * listen() on /channels/{channel}/events{query}, then waits until the channel counts
 * `expectedListeners` (asking for its stats with `statsHeaders`, e.g. credentials).
 */
export async function listenOn(baseUrl, channel, expectedListeners = 1, { query = '', statsHeaders = {}, ...options } = {}) {
  const stream = await listen(baseUrl, `/channels/${channel}/events${query}`, options);
  await waitForListeners(baseUrl, channel, expectedListeners, 10_000, { headers: statsHeaders });
  return stream;
}

/**
 * An EventSource emulation: listens on `baseUrl + path`, and when its stream ends (or
 * cannot be opened) reconnects after a short delay with `Last-Event-ID: <last id seen>`,
 * as a browser does. Every stream it opens must start with `retry: <retryMs>` (set
 * `retryMs` anew when the server changes); retryFailures() lists those that did not.
 * Bounded: at most `maxConnections` connections, and it gives up reconnecting after
 * `reconnectForMs` without one. Closed by closeOpened().
 */
export class ResumingListener {
  constructor(baseUrl, path, { retryMs, lastEventId = null, maxConnections = 20, reconnectForMs = 60_000 }) {
    assert.equal(typeof retryMs, 'number', 'ResumingListener: retryMs (what its streams start with) is required');
    this.baseUrl = baseUrl;
    this.path = path;
    this.retryMs = retryMs;
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
    closeLater(this);
    this.done = this._run();
  }

  async _run() {
    let giveUpAt = Date.now() + this.reconnectForMs;
    while (!this.closed && this.attempts < this.maxConnections * 50) {
      this.attempts += 1;
      const headers = this.lastEventId === null ? {} : { 'Last-Event-ID': this.lastEventId };
      let stream;
      try {
        stream = await openStream(`${this.baseUrl}${this.path}`, { headers });
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
      const retryCheck = assertStartsWithRetry(stream, this.retryMs, `stream #${this.connections} of ${this.path}`)
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
          reject(new Error(`listener on ${this.path} stopped before ${what}; ${this.describe()}`));
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
