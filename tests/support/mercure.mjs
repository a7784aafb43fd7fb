// Mercure helpers for the tests: HS256 tokens minted with node:crypto (independent of the
// worker's Rust verifier), form bodies as Mercure publishers send them, and the hub's URL.
import { createHmac } from 'node:crypto';
import { request } from './http.mjs';

export const HUB_PATH = '/.well-known/mercure';

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A compact JWS: header and payload as given, signed with HS256 and `key`. */
export function mintToken(payload, key, header = { alg: 'HS256', typ: 'JWT' }) {
  const signing = `${b64url(header)}.${b64url(payload)}`;
  const signature = createHmac('sha256', key).update(signing).digest('base64url');
  return `${signing}.${signature}`;
}

/** A 0.x token: `{"mercure": {publish, subscribe, payload}}` plus extra claims. */
export function mercureToken(key, { publish, subscribe, payload, ...claims } = {}) {
  const mercure = {};
  if (publish) mercure.publish = publish;
  if (subscribe) mercure.subscribe = subscribe;
  if (payload !== undefined) mercure.payload = payload;
  return mintToken({ mercure, ...claims }, key);
}

/** A form body from [name, value] pairs, encoded as browsers do (`+` for spaces). */
export function formBody(pairs) {
  return new URLSearchParams(pairs).toString();
}

/** POSTs an update to the hub. */
export function publishUpdate(baseUrl, pairs, { token, headers = {} } = {}) {
  const h = { 'content-type': 'application/x-www-form-urlencoded', ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  return request(`${baseUrl}${HUB_PATH}`, { method: 'POST', headers: h, body: formBody(pairs) });
}

/** The hub's subscribe URL for these query pairs. */
export function subscribeUrl(baseUrl, pairs) {
  return `${baseUrl}${HUB_PATH}?${new URLSearchParams(pairs)}`;
}
