// Issue 2, end to end against `wrangler dev`: the announcer (/listen + /ping) and how
// it treats listeners that leave or stop reading. See README.md.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { openStream } from '../support/sse.mjs';
import {
  request,
  stats,
  waitForListeners,
  pollUntil,
  idLess,
  assertDecimalId,
} from '../support/http.mjs';

const RETRY_MS = 1500; // not the default (1000), to see the setting arrive
const HEARTBEAT_SECONDS = 1; // gone or stuck listeners are found within about a second

let server;
let base;
/** streams and sockets opened by the current test, closed after it */
let opened = [];

async function listen(path = '/listen', options = {}) {
  const stream = await openStream(`${base}${path}`, options);
  opened.push(stream);
  return stream;
}

async function ping(method = 'GET') {
  const r = await request(`${base}/ping`, { method });
  assert.equal(r.status, 200, `${method} /ping: ${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${method} /ping content-type`);
  assert.ok(r.json && typeof r.json === 'object', `${method} /ping body is not a JSON object: ${r.text}`);
  assertDecimalId(r.json.id, `${method} /ping id`);
  assert.equal(typeof r.json.listeners, 'number', `${method} /ping listeners: ${r.text}`);
  return r.json;
}

before(async () => {
  server = await startServer({
    vars: { HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS), RETRY_MS: String(RETRY_MS) },
  });
  base = server.url;
}, { timeout: 90_000 });

after(async () => {
  for (const s of opened) s.close?.() ?? s.destroy?.();
  await server?.stop();
}, { timeout: 30_000 });

afterEach(async () => {
  const all = opened;
  opened = [];
  await Promise.all(all.map((s) => (s.close ? s.close() : s.destroy())));
});

/** Before counting listeners: wait until the ones of earlier tests are gone. */
async function quiet(channel = 'default') {
  await waitForListeners(base, channel, 0, 10_000);
}

describe('errors', () => {
  test('unknown path: 404 with a one-line text body', async () => {
    for (const path of ['/nope', '/listen/extra', '/channels']) {
      const r = await request(`${base}${path}`);
      assert.equal(r.status, 404, `GET ${path}`);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, `GET ${path} content-type`);
      assert.ok(r.text.trim().length > 0, `GET ${path}: empty body`);
      assert.ok(!r.text.trim().includes('\n'), `GET ${path}: body should be one line: ${JSON.stringify(r.text)}`);
    }
  });

  test('known path, wrong method: 405 with Allow', async () => {
    const cases = [
      ['DELETE', '/ping', ['GET', 'POST']],
      ['PUT', '/ping', ['GET', 'POST']],
      ['PUT', '/listen', ['GET']],
      ['POST', '/listen', ['GET']],
      ['DELETE', '/channels/default/events', ['GET', 'POST']],
    ];
    for (const [method, path, mustAllow] of cases) {
      const r = await request(`${base}${path}`, { method });
      assert.equal(r.status, 405, `${method} ${path}: ${r.status} ${r.text}`);
      const allow = (r.headers.get('allow') ?? '').split(',').map((s) => s.trim().toUpperCase());
      for (const m of mustAllow) assert.ok(allow.includes(m), `${method} ${path}: Allow "${r.headers.get('allow')}" lacks ${m}`);
      assert.ok(!allow.includes(method), `${method} ${path}: Allow must not list ${method}`);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain/, `${method} ${path} content-type`);
      assert.ok(r.text.trim().length > 0 && !r.text.trim().includes('\n'), `${method} ${path} body: ${JSON.stringify(r.text)}`);
    }
  });

  test('the server is still healthy after all of the above', async () => {
    const r = await request(`${base}/ping`);
    assert.equal(r.status, 200);
    await pollUntil(() => stats(base, 'default'), (s) => typeof s.listeners === 'number', { timeoutMs: 5000, what: 'stats' });
  });
});
