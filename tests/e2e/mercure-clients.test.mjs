// Third-party Mercure client libraries against the hub (docs/mercure.md §10.2),
// not our own code posing as a client. scripts/setup.sh --test installs them:
// - from PyPI, into target/clients/venv (tests/clients/requirements.txt), driven by
//   tests/clients/mercure_py.py: `mercure-publisher` (MercurePublisher; mints its own
//   token with PyJWT, with exp) and `pymcure` (SyncPublisher, which mints its token from a
//   header and payload it is given, with no exp; and Subscriber, an anonymous subscriber
//   on sseclient-py);
// - from crates.io, the `mercure` crate behind tests/clients/mercure-rs (built into
//   target/clients): Client::publish_update with its PublisherJwt (header alg HS256, no
//   exp), SubscriberJwt (subscriber URLs and the crate's cookie name) with and without a
//   max age.
//
// One server: both keys, anonymous subscribing on, one issuer.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, useServers } from '../support/server.mjs';
import { closeLater } from '../support/http.mjs';
import { openStream } from '../support/sse.mjs';
import {
  HUB_SECRETS,
  ISSUER,
  PUBLISHER_KEY,
  SUBSCRIBER_KEY,
  URN_UUID,
  assertChallenge,
  assertNothingMore,
  detail,
  epoch,
  freshTopic,
  nextUpdate,
  resourceOf,
  subscribe,
  subscribeRequest,
  subscriberToken,
} from '../support/mercure.mjs';

const [server] = useServers({
  vars: { MERCURE_ANONYMOUS: '1', MERCURE_ISSUERS: ISSUER },
  secrets: HUB_SECRETS,
});

const PYTHON = path.join(repoRoot, 'target/clients/venv/bin/python');
const PY_DRIVER = path.join(repoRoot, 'tests/clients/mercure_py.py');
const RS_DRIVER = path.join(repoRoot, 'target/clients/release/mercure-rs-driver');
for (const file of [PYTHON, RS_DRIVER]) {
  if (!existsSync(file)) throw new Error(`${file} is missing: run sh scripts/setup.sh --test`);
}

/**
 * Runs a client process; resolves with its stdout lines (and stderr, exit code). Killed, and
 * failed, after `timeoutMs`; closeOpened() kills one still running.
 */
function runClient(command, args, { timeoutMs = 20_000 } = {}) {
  const child = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  const handle = {
    child,
    lines: [],
    stderr: '',
    waiters: new Set(),
    destroy: () => child.kill('SIGKILL'),
  };
  closeLater(handle);
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop();
    handle.lines.push(...parts.filter((l) => l !== ''));
    for (const w of [...handle.waiters]) w();
  });
  child.stderr.on('data', (chunk) => { handle.stderr += chunk; });
  handle.done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${path.basename(command)} ${args.slice(0, 2).join(' ')}: still running after ${timeoutMs} ms; stderr ${handle.stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (buffered !== '') handle.lines.push(buffered);
      for (const w of [...handle.waiters]) w();
      resolve({ code, lines: handle.lines, stderr: handle.stderr });
    });
  });
  /** Resolves with the first stdout line (parsed as JSON) that `pred` accepts; bounded. */
  handle.waitForLine = (pred, ms = 10_000) => new Promise((resolve, reject) => {
    const check = () => {
      const line = handle.lines.map((l) => JSON.parse(l)).find(pred);
      if (line) {
        clearTimeout(timer);
        handle.waiters.delete(check);
        resolve(line);
      }
    };
    const timer = setTimeout(() => {
      handle.waiters.delete(check);
      reject(new Error(`no such line within ${ms} ms; lines ${JSON.stringify(handle.lines)}; stderr ${handle.stderr}`));
    }, ms);
    handle.waiters.add(check);
    check();
  });
  return handle;
}

/** Runs mercure_py.py with an action; returns its one JSON answer. */
async function python(action, args) {
  const { code, lines, stderr } = await runClient(PYTHON, [PY_DRIVER, action, '--hub', resourceOf(server.url), ...args]).done;
  assert.equal(code, 0, `mercure_py.py ${action}: exit ${code}; stderr ${stderr}`);
  assert.equal(lines.length, 1, `mercure_py.py ${action}: ${JSON.stringify(lines)}`);
  return JSON.parse(lines[0]);
}

/** Runs the mercure crate's driver; returns {code, out, stderr}. */
async function rust(args) {
  const { code, lines, stderr } = await runClient(RS_DRIVER, args).done;
  return { code, out: lines.join('\n'), stderr };
}

/** The crate publishes (its own PublisherJwt for `*`); asserts success; returns the id. */
async function rustPublish(topics, { data, private: priv = false } = {}) {
  const args = ['publish', resourceOf(server.url), PUBLISHER_KEY, ...topics];
  if (data !== undefined) args.push('--data', data);
  if (priv) args.push('--private');
  const r = await rust(args);
  assert.equal(r.code, 0, `mercure crate publish: ${r.stderr}`);
  return r.out;
}

/** The crate mints a SubscriberJwt (`maxAge` seconds, or none). */
async function rustSubscriberJwt(selectors, { key = SUBSCRIBER_KEY, maxAge = 'none' } = {}) {
  const r = await rust(['subscriber-jwt', key, String(maxAge), ...selectors]);
  assert.equal(r.code, 0, `mercure crate subscriber-jwt: ${r.stderr}`);
  return r.out;
}

const decode = (jwt, part) => JSON.parse(Buffer.from(jwt.split('.')[part], 'base64url').toString());

describe('mercure-publisher (PyPI)', () => {
  test('publishes an update with data, id, type and retry that a subscriber receives as sent', async () => {
    const topic = freshTopic('mercure-publisher');
    const stream = await subscribe(server.url, [['topic', topic]]);
    const id = `urn:example:"dune",[1]`;
    const answer = await python('publish-mp', ['--key', PUBLISHER_KEY, '--topic', topic, '--data', '{"title": "Dune"}',
      '--id', id, '--type', 'book', '--retry', '1500']);
    assert.deepEqual(answer, { status: 200, id });
    const e = await nextUpdate(stream);
    assert.deepEqual([e.type, e.lastEventId, e.data], ['book', id, '{"title": "Dune"}']);
    assert.equal(stream.parser.reconnectionTime, 1500);
  });

  test('without an id it gets the hub\'s urn:uuid id back', async () => {
    const answer = await python('publish-mp', ['--key', PUBLISHER_KEY, '--topic', freshTopic('mp-generated'), '--data', 'x']);
    assert.equal(answer.status, 200, JSON.stringify(answer));
    assert.match(answer.id, URN_UUID);
  });

  test('a private multi-topic update reaches only a subscriber granted one of its topics, once', async () => {
    const t1 = freshTopic('mp-private-a');
    const t2 = freshTopic('mp-private-b');
    const anonymous = await subscribe(server.url, [['topic', t1], ['topic', t2]]);
    const granted = await subscribe(server.url, [['topic', t1], ['topic', t2]], { token: subscriberToken([t2]) });
    const answer = await python('publish-mp', ['--key', PUBLISHER_KEY, '--topic', t1, '--topic', t2, '--data', 'secret', '--private']);
    assert.equal(answer.status, 200, JSON.stringify(answer));
    assert.equal((await nextUpdate(granted)).lastEventId, answer.id);
    await assertNothingMore(granted, 1, 'the granted subscriber (once)');
    await assertNothingMore(anonymous, 0, 'the anonymous subscriber', 0);
  });

  test('a wrong key is refused with 401 and a token without the grant with 403', async () => {
    const wrong = await python('publish-mp', ['--key', 'not-the-publisher-key-at-all-0123456789', '--topic', freshTopic('mp-wrong')]);
    assert.equal(wrong.status, 401, JSON.stringify(wrong));
    const narrow = await python('publish-mp', ['--key', PUBLISHER_KEY, '--allow', 'https://example.com/only/{x}', '--topic', freshTopic('mp-narrow')]);
    assert.equal(narrow.status, 403, JSON.stringify(narrow));
  });
});

describe('pymcure (PyPI)', () => {
  test('its Subscriber receives what its SyncPublisher publishes with a token without exp', async () => {
    const topic = freshTopic('pymcure');
    const sub = runClient(PYTHON, [PY_DRIVER, 'subscribe-pymcure', '--hub', resourceOf(server.url), '--topic', topic, '--count', '2', '--timeout', '5']);
    await sub.waitForLine((l) => l.ready);
    const header = JSON.stringify({ typ: 'JWT', alg: 'HS256' });
    const payload = JSON.stringify({ mercure: { publish: ['*'], subscribe: [] } });
    const first = await python('publish-pymcure', ['--key', PUBLISHER_KEY, '--header', header, '--payload', payload,
      '--topic', topic, '--data', 'line 1\n        line 2', '--id', 'urn:pymcure:1', '--type', 'note']);
    assert.deepEqual(first, { returned: 'urn:pymcure:1' });
    const second = await python('publish-pymcure', ['--key', PUBLISHER_KEY, '--header', header, '--payload', payload, '--topic', topic, '--data', 'two']);
    assert.match(second.returned, URN_UUID);
    const { code, lines } = await sub.done;
    assert.equal(code, 0);
    assert.deepEqual(lines.slice(1).map((l) => JSON.parse(l)), [
      { id: 'urn:pymcure:1', event: 'note', data: 'line 1\n        line 2' },
      { id: second.returned, event: 'message', data: 'two' },
    ]);
  });

  test('a 1.0 access token it mints (typ at+jwt, iss, aud R, authorization_details) publishes', async () => {
    const topic = freshTopic('pymcure-1.0');
    const stream = await subscribe(server.url, [['match', topic]]);
    const payload = JSON.stringify({ iss: ISSUER, aud: resourceOf(server.url), exp: epoch(300), authorization_details: [detail(['publish'], [topic])] });
    const answer = await python('publish-pymcure', ['--key', PUBLISHER_KEY, '--header', JSON.stringify({ typ: 'at+jwt', alg: 'HS256' }),
      '--payload', payload, '--topic', topic, '--data', '1.0']);
    assert.match(answer.returned ?? '', URN_UUID, JSON.stringify(answer));
    assert.equal((await nextUpdate(stream)).lastEventId, answer.returned);
  });

  test('tokens minted wrong are refused with 401: wrong key, alg none, expired, a 1.0 token for another audience', async () => {
    const grants = { mercure: { publish: ['*'] } };
    const cases = [
      ['wrong key', { key: 'another-key-entirely-0123456789abcdef', payload: grants }],
      ['alg none', { unsigned: true, payload: grants }],
      ['expired', { payload: { ...grants, exp: epoch(-60) } }],
      ['1.0, wrong aud', { header: { typ: 'at+jwt', alg: 'HS256' },
        payload: { iss: ISSUER, aud: 'https://elsewhere.test/.well-known/mercure', exp: epoch(300), authorization_details: [detail(['publish'], ['*'])] } }],
    ];
    for (const [name, c] of cases) {
      const args = ['--key', c.key ?? PUBLISHER_KEY, '--payload', JSON.stringify(c.payload), '--topic', freshTopic('pymcure-refused')];
      if (c.header) args.push('--header', JSON.stringify(c.header));
      if (c.unsigned) args.push('--unsigned');
      const answer = await python('publish-pymcure', args);
      assert.equal(answer.status, 401, `${name}: ${JSON.stringify(answer)}`);
    }
    const defaults = await python('publish-pymcure', ['--key', PUBLISHER_KEY, '--topic', freshTopic('pymcure-default')]);
    assert.equal(defaults.status, 403, `its default payload grants nothing: ${JSON.stringify(defaults)}`);
  });
});

describe('the mercure crate (crates.io)', () => {
  test('publishes a private update on a canonical and an alternate topic with its PublisherJwt', async () => {
    const canonical = freshTopic('crate-canonical');
    const alternate = freshTopic('crate-alternate');
    const stream = await subscribe(server.url, [['topic', alternate]], { token: subscriberToken([alternate]) });
    const id = await rustPublish([canonical, alternate], { data: '{"isbn":"9780735218789"}', private: true });
    assert.match(id, URN_UUID);
    const e = await nextUpdate(stream);
    assert.deepEqual([e.lastEventId, e.data], [id, '{"isbn":"9780735218789"}']);
  });

  test('a subscriber URL with its SubscriberJwt in authorization receives private updates matching its template', async () => {
    const base = freshTopic('crate-template');
    const jwt = await rustSubscriberJwt([`${base}/users/1/books/{book_id}`]);
    assert.equal(decode(jwt, 0).alg, 'HS256');
    assert.equal(decode(jwt, 1).exp, undefined, 'no max age, no exp');
    const url = `${resourceOf(server.url)}?topic=${encodeURIComponent(`${base}/{+rest}`)}&authorization=${encodeURIComponent(jwt)}`;
    const stream = closeLater(await openStream(url));
    assert.equal(stream.status, 200);
    await rustPublish([`${base}/users/2/books/42`], { data: 'not granted', private: true });
    const granted = await rustPublish([`${base}/users/1/books/42`], { data: 'granted', private: true });
    const e = await nextUpdate(stream);
    assert.deepEqual([e.lastEventId, e.data], [granted, 'granted']);
    await assertNothingMore(stream, 1, 'the private update it has no grant for', 300);
  });

  test('its SubscriberJwt in its cookie subscribes to private updates', async () => {
    const topic = freshTopic('crate-cookie');
    const { out: cookieName } = await rust(['cookie-name']);
    assert.equal(cookieName, 'mercureAuthorization');
    const stream = await subscribe(server.url, [['topic', topic]], { headers: { cookie: `${cookieName}=${await rustSubscriberJwt(['*'])}` } });
    const id = await rustPublish([topic], { data: 'cookie', private: true });
    assert.equal((await nextUpdate(stream)).lastEventId, id);
  });

  test('a SubscriberJwt with a max age ends the stream by its exp', async () => {
    const topic = freshTopic('crate-max-age');
    const jwt = await rustSubscriberJwt([topic], { maxAge: 3 });
    const { exp } = decode(jwt, 1);
    assert.ok(Math.abs(exp - epoch(3)) <= 2, `exp ${exp}`);
    const stream = await subscribe(server.url, [['topic', topic], ['authorization', jwt]]);
    const reason = await stream.waitForEnd(exp * 1000 - Date.now() + 1500);
    assert.equal(reason, 'end');
    assert.ok(Date.now() <= exp * 1000 + 1000, `ended ${Date.now() - exp * 1000} ms after exp`);
  });

  test('a SubscriberJwt signed with another key is refused with 401 invalid_token', async () => {
    const jwt = await rustSubscriberJwt(['*'], { key: 'some-other-subscriber-key-0123456789' });
    assertChallenge(await subscribeRequest(server.url, [['topic', '*'], ['authorization', jwt]]), 401, 'invalid_token', 'foreign SubscriberJwt');
  });
});
