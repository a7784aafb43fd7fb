// The acceptance test of docs/mercure.md §10.1, in a real browser (headless
// Chromium via playwright-core): a page on the hub's own origin (the worker's GET /)
// subscribes anonymously with EventSource — 0.x `topic` (exact string, URL, URI template)
// and 1.0 `match` / `match_urlpattern` — and publishes with fetch (a form body and a 0.x
// token with header {"alg":"HS256"} and no exp). Each matching update must arrive within
// 2 s with its id verbatim and its three-line data exact; non-matching and private updates
// must not arrive.
//
// A second test has the browser's own EventSource reconnection resume after the hub ends a
// stream at its cookie token's exp.
//
// One server: anonymous subscribing and both keys.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { launchBrowser, openPage } from '../support/browser.mjs';
import { useServers } from '../support/server.mjs';
import { HUB_SECRETS, PUBLISHER_KEY, SUBSCRIBER_KEY, epoch, mintToken } from '../support/mercure.mjs';

const [server] = useServers({ vars: { MERCURE_ANONYMOUS: '1' }, secrets: HUB_SECRETS });

let browser;
before(async () => {
  browser = await launchBrowser();
}, { timeout: 90_000 });
after(async () => {
  await browser?.close();
}, { timeout: 30_000 });

const TOKEN = mintToken({ mercure: { publish: ['*'], subscribe: ['*'] } }, PUBLISHER_KEY, { alg: 'HS256' });
const rand = () => randomBytes(8).toString('hex');

/** The cases: one EventSource and one update each. */
function dataset() {
  const r = Array.from({ length: 6 }, rand);
  return [
    { name: 'raw string', param: 'topic', selector: `raw-${r[0]}`, topics: [`raw-${r[0]}`], received: true },
    { name: 'URL', param: 'topic', selector: `https://example.net/foo/${r[1]}`, topics: [`https://example.net/foo/${r[1]}`], received: true },
    { name: 'URI template', param: 'topic', selector: `https://example.net/books-${r[2]}/{id}`, topics: [`https://example.net/books-${r[2]}/42`], received: true },
    { name: 'alternate topic', param: 'topic', selector: `https://example.net/alt/${r[3]}`, topics: [`https://example.net/canonical/${r[3]}`, `https://example.net/alt/${r[3]}`], received: true },
    { name: '1.0 exact match', param: 'match', selector: `https://example.net/exact/${r[4]}`, topics: [`https://example.net/exact/${r[4]}`], received: true },
    { name: '1.0 URL pattern', param: 'match_urlpattern', selector: `https://example.net/pattern-${r[5]}/:id`, topics: [`https://example.net/pattern-${r[5]}/7`], received: true },
    { name: 'non-matching raw string', param: 'topic', selector: `another-${r[0]}`, topics: [`will-not-match-${r[0]}`] },
    { name: 'non-matching URL', param: 'topic', selector: `https://example.net/foo/another-${r[1]}`, topics: [`https://example.net/foo/not-${r[1]}`] },
    { name: 'non-matching URI template', param: 'topic', selector: `https://example.net/books-${r[2]}/{id}`, topics: [`https://example.net/books-${r[2]}/a/b`] },
    { name: 'non-matching URL pattern', param: 'match_urlpattern', selector: `https://example.net/bar-${r[5]}/:var`, topics: [`https://example.net/foo-${r[5]}/x`] },
    { name: 'private raw string', param: 'topic', selector: `private-${r[0]}`, topics: [`private-${r[0]}`], private: true },
    { name: 'private URL', param: 'topic', selector: `https://example.net/private/${r[1]}`, topics: [`https://example.net/private/${r[1]}`], private: true },
    { name: 'private URI template', param: 'topic', selector: `https://example.net/private-${r[2]}/{id}`, topics: [`https://example.net/private-${r[2]}/1`], private: true },
  ].map((c) => ({
    ...c,
    id: `id-${JSON.stringify({ name: c.name, topics: c.topics })}`,
    data: `data for\n\n        ${c.name}`,
  }));
}

/**
 * In the page: one EventSource per case, all open, then one publish per case with fetch,
 * then 2 s. Returns per case the publish answer, when it was sent, and what arrived.
 */
function runCases(page, cases) {
  return page.evaluate(async ({ cases, token }) => {
    const sources = cases.map((c) => {
      const url = new URL('/.well-known/mercure', window.origin);
      url.searchParams.append(c.param, c.selector);
      const es = new EventSource(url);
      const state = { events: [], errors: 0 };
      es.onmessage = (e) => state.events.push({ type: e.type, id: e.lastEventId, data: e.data, at: performance.now() });
      es.onerror = () => { state.errors += 1; };
      const opened = new Promise((resolve, reject) => {
        es.onopen = resolve;
        setTimeout(() => reject(new Error(`EventSource ${url} not open after 5 s`)), 5000);
      });
      return { es, state, opened };
    });
    await Promise.all(sources.map((s) => s.opened));
    const published = [];
    for (const c of cases) {
      const body = new URLSearchParams();
      for (const t of c.topics) body.append('topic', t);
      body.set('id', c.id);
      body.set('data', c.data);
      if (c.private) body.set('private', 'on');
      const at = performance.now();
      const resp = await fetch('/.well-known/mercure', { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body });
      published.push({ at, status: resp.status, contentType: resp.headers.get('Content-Type'), body: await resp.text() });
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
    for (const s of sources) s.es.close();
    return cases.map((c, i) => ({ ...published[i], events: sources[i].state.events, errors: sources[i].state.errors }));
  }, { cases, token: TOKEN });
}

// Chromium keeps at most 6 connections per origin over HTTP/1.1 (the demo page's own stream
// takes one, each fetch needs one): a few EventSources at a time.
const BATCH = 4;

test('a page on the hub\'s origin receives exactly the matching public updates, ids and data verbatim, within 2 s', async () => {
  const cases = dataset();
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`);
  try {
    const results = [];
    for (let i = 0; i < cases.length; i += BATCH) results.push(...await runCases(page, cases.slice(i, i + BATCH)));

    for (const [i, c] of cases.entries()) {
      const r = results[i];
      assert.equal(r.status, 200, `${c.name}: publish status (${r.body})`);
      assert.match(r.contentType ?? '', /^text\/plain(?:$|;.*)/, `${c.name}: publish content type`);
      assert.equal(r.body, c.id, `${c.name}: the publish answer is the id`);
      assert.equal(r.errors, 0, `${c.name}: EventSource errors`);
      if (c.received) {
        assert.equal(r.events.length, 1, `${c.name}: exactly one event, got ${JSON.stringify(r.events)}`);
        const [e] = r.events;
        assert.deepEqual({ type: e.type, id: e.id, data: e.data }, { type: 'message', id: c.id, data: c.data }, c.name);
        assert.ok(e.at - r.at <= 2000, `${c.name}: arrived ${Math.round(e.at - r.at)} ms after the publish`);
      } else {
        assert.deepEqual(r.events, [], `${c.name}: must not arrive`);
      }
    }
    assert.deepEqual(pageErrors, [], 'page errors');
  } finally {
    await page.close();
  }
});

test('when the cookie token expires the page\'s EventSource reconnects with Last-Event-ID and misses nothing', async () => {
  const topic = `https://example.net/resume/${rand()}`;
  const exp = epoch(3);
  const shortLived = mintToken({ mercure: { subscribe: [topic] }, exp }, SUBSCRIBER_KEY);
  const fresh = mintToken({ mercure: { subscribe: [topic] }, exp: epoch(600) }, SUBSCRIBER_KEY);
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`);
  try {
    // The hub ends the stream at the token's exp; on the error, the page puts a fresh token in
    // the cookie and publishes a second private update while it is disconnected. The browser
    // reconnects by itself with Last-Event-ID, and the hub replays what it missed.
    await page.evaluate(({ topic, shortLived, fresh, token }) => {
      document.cookie = `mercureAuthorization=${shortLived}; path=/`;
      window.received = [];
      window.opens = 0;
      window.errors = 0;
      const es = new EventSource(`/.well-known/mercure?topic=${encodeURIComponent(topic)}`);
      window.publish = async (data) => {
        const body = new URLSearchParams({ topic, data, private: 'on' });
        const r = await fetch('/.well-known/mercure', { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body });
        return r.text();
      };
      es.onopen = () => { window.opens += 1; };
      es.onmessage = (e) => window.received.push({ id: e.lastEventId, data: e.data });
      es.onerror = () => {
        window.errors += 1;
        if (window.errors === 1) {
          window.readyStateOnError = es.readyState;
          document.cookie = `mercureAuthorization=${fresh}; path=/`;
          window.second = window.publish('two');
        }
      };
      window.closeIt = () => es.close();
    }, { topic, shortLived, fresh, token: TOKEN });
    await page.waitForFunction(() => window.opens === 1, null, { timeout: 5000 });
    const first = await page.evaluate(() => window.publish('one'));
    await page.waitForFunction(() => window.received.length >= 1, null, { timeout: 2000 });
    await page.waitForFunction(() => window.errors >= 1, null, { timeout: exp * 1000 - Date.now() + 2000 });
    assert.equal(await page.evaluate(() => window.readyStateOnError), 0, 'the EventSource is reconnecting (CONNECTING), not closed');
    const second = await page.evaluate(() => window.second);
    await page.waitForFunction(() => window.opens >= 2 && window.received.length >= 2, null, { timeout: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(await page.evaluate(() => window.received), [{ id: first, data: 'one' }, { id: second, data: 'two' }]);
    await page.evaluate(() => window.closeIt());
  } finally {
    await page.close();
  }
  assert.deepEqual(pageErrors, []);
});
