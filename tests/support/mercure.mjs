// Mercure helpers for the tests: HS256 tokens minted with node:crypto (independent of the
// worker's Rust verifier), form bodies as Mercure publishers send them, the hub's URLs,
// the hub's answers (publish, challenges) and its streams. Every wait is bounded.
import { createHmac } from 'node:crypto';
import http from 'node:http';
import assert from 'node:assert/strict';
import { assertError, request, sleep } from './http.mjs';
import { listen } from './sse.mjs';

export const HUB_PATH = '/.well-known/mercure';
export const METADATA_PATH = `/.well-known/oauth-protected-resource${HUB_PATH}`;
export const AUTHORIZATION_DETAIL = 'https://mercure.rocks/authorization-detail';

/** The keys and issuers most hub test servers use (as secrets and `MERCURE_ISSUERS`). */
export const PUBLISHER_KEY = 'e2e-publisher-key-0123456789-abcdefghijklmnop';
export const SUBSCRIBER_KEY = 'e2e-subscriber-key-9876543210-qrstuvwxyzabcd';
export const ISSUER = 'https://issuer.test';
export const SECOND_ISSUER = 'https://second-issuer.test';
export const HUB_SECRETS = Object.freeze({
  MERCURE_PUBLISHER_JWT_KEY: PUBLISHER_KEY,
  MERCURE_SUBSCRIBER_JWT_KEY: SUBSCRIBER_KEY,
});

/** R, the hub's resource identifier, for a server at `baseUrl` (`http://127.0.0.1:<port>`). */
export const resourceOf = (baseUrl) => `${baseUrl}${HUB_PATH}`;
/** The protected-resource metadata URL (§9.2). */
export const metadataUrlOf = (baseUrl) => `${baseUrl}${METADATA_PATH}`;

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Seconds since the epoch, `offset` seconds from now. */
export const epoch = (offset = 0) => Math.floor(Date.now() / 1000) + offset;

/**
 * A compact JWS: header and payload as given, signed with `key` (HS256, or `hash`
 * 'sha512' for HS512; `hash` null leaves the signature empty, as `alg: none` does).
 */
export function mintToken(payload, key, header = { alg: 'HS256', typ: 'JWT' }, { hash = 'sha256' } = {}) {
  const signing = `${b64url(header)}.${b64url(payload)}`;
  const signature = hash === null ? '' : createHmac(hash, key).update(signing).digest('base64url');
  return `${signing}.${signature}`;
}

/** A 0.x token: `{"mercure": {publish, subscribe, payload}}` plus extra claims. */
export function mercureToken(key, { publish, subscribe, payload, ...claims } = {}, header = undefined) {
  const mercure = {};
  if (publish) mercure.publish = publish;
  if (subscribe) mercure.subscribe = subscribe;
  if (payload !== undefined) mercure.payload = payload;
  return mintToken({ mercure, ...claims }, key, header);
}

/** A 0.x publisher token (publisher key) granting publish on `publish` (default `*`). */
export const publisherToken = (publish = ['*'], claims = {}) => mercureToken(PUBLISHER_KEY, { publish, ...claims });
/** A 0.x subscriber token (subscriber key) granting subscribe on `subscribe`. */
export const subscriberToken = (subscribe, claims = {}) => mercureToken(SUBSCRIBER_KEY, { subscribe, ...claims });

/** A Mercure `authorization_details` entry; string topics become `{"match": topic}`. */
export function detail(actions, topics, extra = {}) {
  return {
    type: AUTHORIZATION_DETAIL,
    actions,
    topics: topics.map((t) => (typeof t === 'string' ? { match: t } : t)),
    ...extra,
  };
}

/**
 * A 1.0 access token (§3.6) for the server at `baseUrl`: header `typ: at+jwt`, `iss`
 * ISSUER, `aud` R, `exp` in an hour, and `authorization_details` (default: publish and
 * subscribe on `*`). Any claim can be replaced or removed (`undefined`), as can the header.
 */
export function accessToken(baseUrl, key, {
  header = { alg: 'HS256', typ: 'at+jwt' },
  details = [detail(['publish', 'subscribe'], ['*'])],
  ...claims
} = {}) {
  const payload = { iss: ISSUER, aud: resourceOf(baseUrl), exp: epoch(3600), authorization_details: details, ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return mintToken(payload, key, header);
}

/** A form body from [name, value] pairs, encoded as browsers do (`+` for spaces). */
export function formBody(pairs) {
  return new URLSearchParams(pairs).toString();
}

/**
 * POSTs an update to the hub (a form body from `pairs`, or `body` as given). `token` goes in
 * `Authorization: Bearer`; `query` is appended to the hub URL. Returns the answer unchecked.
 */
export function publishUpdate(baseUrl, pairs, {
  token, headers = {}, query = '', body, contentType = 'application/x-www-form-urlencoded',
} = {}) {
  const h = { ...headers };
  if (contentType !== null) h['content-type'] = contentType;
  if (token) h.authorization = `Bearer ${token}`;
  return request(`${baseUrl}${HUB_PATH}${query}`, { method: 'POST', headers: h, body: body ?? formBody(pairs) });
}

/** A publish answer (§4.7): 200, `text/plain; charset=utf-8`, body the id and nothing else. Returns the id. */
export function assertPublishedUpdate(r, expectedId, what = 'publish') {
  assert.equal(r.status, 200, `${what}: ${r.status} ${JSON.stringify(r.text)} ${r.headers.get('www-authenticate') ?? ''}`);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain;\s*charset=utf-8$/i, `${what}: content-type`);
  if (expectedId !== undefined) assert.equal(r.text, expectedId, `${what}: the body must be the id, verbatim`);
  assert.ok(r.text.length > 0 && !/[\r\n]/.test(r.text), `${what}: body ${JSON.stringify(r.text)}`);
  return r.text;
}

/** Publishes with a publisher token for `*` (unless `options.token` says otherwise); asserts success; returns the id. */
export async function publishOk(baseUrl, pairs, options = {}) {
  const r = await publishUpdate(baseUrl, pairs, { token: publisherToken(), ...options });
  const id = pairs.find(([k]) => k === 'id')?.[1];
  return assertPublishedUpdate(r, id, `publish ${formBody(pairs).slice(0, 80)}`);
}

/** A generated id (§4.6): `urn:uuid:` and a random (version 4) UUID. */
export const URN_UUID = /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * A refusal with its challenge (§3.8): `status`, a short text/plain line, and
 * `WWW-Authenticate: Bearer` with `error="<error>"`, or with no `error` when `error` is null.
 */
export function assertChallenge(r, status, error, what) {
  assertError(r, status, undefined, what);
  const challenge = r.headers.get('www-authenticate') ?? '';
  assert.match(challenge, /^Bearer(\s|$)/, `${what}: WWW-Authenticate ${JSON.stringify(challenge)}`);
  if (error === null) assert.doesNotMatch(challenge, /error=/, `${what}: WWW-Authenticate ${JSON.stringify(challenge)}`);
  else assert.match(challenge, new RegExp(`error="${error}"`), `${what}: WWW-Authenticate ${JSON.stringify(challenge)}`);
  return challenge;
}

/** A 400 answer whose body names `why` (a RegExp), without a challenge requirement. */
export const assertBadRequest = (r, why, what) => assertError(r, 400, why, what);

/** The hub's subscribe URL for these query pairs. */
export function subscribeUrl(baseUrl, pairs) {
  return `${baseUrl}${HUB_PATH}?${new URLSearchParams(pairs)}`;
}

/** GET the subscribe URL as a plain request (for refusals; a 200 stream would not end). */
export function subscribeRequest(baseUrl, pairs, headers = {}) {
  return request(subscribeUrl(baseUrl, pairs), { headers });
}

/**
 * Subscribes (an event stream closed by closeOpened()); asserts 200 and text/event-stream,
 * and waits for the hub's first chunk. `token` goes in `Authorization: Bearer`.
 */
export async function subscribe(baseUrl, pairs, { token, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const stream = await listen(baseUrl, `${HUB_PATH}?${new URLSearchParams(pairs)}`, { headers: h });
  await stream.waitUntil(() => stream.chunks > 0, 5_000, 'the first chunk of the hub stream');
  return stream;
}

/** The next update on `stream` within `timeoutMs` (2 s: what clients and the spec's tests allow). */
export const nextUpdate = (stream, timeoutMs = 2_000) => stream.nextEvent(timeoutMs);

/** Waits `ms`, then asserts that `stream` received no event beyond the `seen` it had. */
export async function assertNothingMore(stream, seen, what, ms = 800) {
  await sleep(ms);
  assert.deepEqual(stream.events.slice(seen), [], `${what}: nothing more should have arrived`);
}

let topicCounter = 0;
/** A topic IRI no other test (nor an earlier run on kept state) uses. */
export const freshTopic = (what) => `https://example.com/${what}/${process.pid}-${Date.now()}-${(topicCounter += 1)}`;

/**
 * A request with node:http, for what fetch cannot send: a header repeated as separate lines
 * (`headers` values may be arrays). Resolves with {status, headers (lower-case names), text}.
 */
export function rawRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The raw event blocks of a hub stream's text: lines (CRLF, CR or LF ends one) grouped
 * between blank lines, comment lines left out, empty groups dropped.
 */
export function rawBlocks(text) {
  const blocks = [];
  let block = [];
  // The last piece is not a line yet (nothing ended it): a block is complete only once
  // a blank line follows it, whatever chunks the stream arrived in.
  const lines = text.split(/\r\n|\r|\n/).slice(0, -1);
  for (const line of lines) {
    if (line === '') {
      if (block.length > 0) blocks.push(block);
      block = [];
    } else if (!line.startsWith(':')) {
      block.push(line);
    }
  }
  return blocks;
}

/** The raw block (its lines) of the update with this id, waiting for it (bounded). */
export async function rawBlockOf(stream, id, timeoutMs = 2_000) {
  return stream.waitUntil(() => rawBlocks(stream.text).find((b) => b.includes(`id: ${id}`)), timeoutMs, `the block with id ${id}`);
}
