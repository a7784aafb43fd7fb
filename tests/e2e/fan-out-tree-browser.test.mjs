// The fan-out tree with real browser clients (headless Chromium): EventSources on a page
// of the worker's own origin, spread over three levels of a channel's tree
// (LISTENERS_PER_OBJECT 1, FANOUT 2), get every event once, in order; when every object
// restarts, the browser's own reconnection (Last-Event-ID) resumes each of them, on
// whichever node it lands, with nothing lost and nothing twice.
//
// Four EventSources only: Chromium keeps at most six HTTP/1.1 connections per origin, and
// the page's publishes need one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, openPage } from '../support/browser.mjs';
import { startServer } from '../support/server.mjs';
import { pollUntil, stats } from '../support/http.mjs';

const VARS = { LISTENERS_PER_OBJECT: '1', FANOUT: '2', HEARTBEAT_SECONDS: '2', RETRY_MS: '300' };
const SOURCES = 4;
const CHANNEL = 'browser-tree';

let browser;
let server;
let persistDir;
after(async () => {
  await browser?.close();
  await server?.stop();
  if (persistDir) await rm(persistDir, { recursive: true, force: true });
}, { timeout: 30_000 });

/** In the page: publishes `datas` one by one with fetch; returns their ids. */
const publishFromPage = (page, datas) => page.evaluate(async ({ channel, datas }) => {
  const ids = [];
  for (const data of datas) {
    const r = await fetch(`/channels/${channel}/events`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data }),
    });
    if (r.status !== 200) throw new Error(`publish ${data}: ${r.status} ${await r.text()}`);
    ids.push((await r.json()).id);
  }
  return ids;
}, { channel: CHANNEL, datas });

/** In the page: waits until every EventSource has `n` events; returns them all. */
const eventsInPage = (page, n) => page.evaluate(async (n) => {
  const deadline = Date.now() + 15_000;
  while (window.sources.some((s) => s.events.length < n) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return window.sources.map((s) => ({ events: s.events, opens: s.opens, errors: s.errors }));
}, n);

test('EventSources over a three-level tree get every event once, in order, also across a restart of every object', { timeout: 240_000 }, async () => {
  persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-tree-browser-'));
  server = await startServer({ vars: VARS, persistDir });
  const port = server.port;
  browser = await launchBrowser();
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`);

  // One at a time, so that each lands past the one before.
  for (let i = 0; i < SOURCES; i += 1) {
    await page.evaluate(async (channel) => {
      window.sources ??= [];
      const state = { events: [], opens: 0, errors: 0 };
      const es = new EventSource(`/channels/${channel}/events`);
      es.onmessage = (e) => state.events.push({ id: e.lastEventId, data: e.data });
      es.onerror = () => { state.errors += 1; };
      await new Promise((resolve, reject) => {
        es.onopen = () => { state.opens += 1; resolve(); };
        setTimeout(() => reject(new Error('EventSource not open after 5 s')), 5000);
      });
      es.onopen = () => { state.opens += 1; };
      window.sources.push(state);
    }, CHANNEL);
    await pollUntil(() => stats(server.url, CHANNEL), (s) => s.listeners === i + 1, { what: `${i + 1} listeners` });
  }
  const shape = await stats(server.url, CHANNEL);
  assert.ok(shape.objects >= 3, `the listeners share ${shape.objects} objects: ${JSON.stringify(shape)}`);

  const firstIds = await publishFromPage(page, ['one', 'two', 'three']);
  const first = firstIds.map((id, i) => ({ id, data: ['one', 'two', 'three'][i] }));
  for (const [i, s] of (await eventsInPage(page, first.length)).entries()) {
    assert.deepEqual(s.events, first, `EventSource ${i}`);
  }

  // Every object restarts (the root's history is on disk); the browser reconnects by
  // itself after `retry`, with Last-Event-ID.
  await server.stop();
  server = await startServer({ vars: VARS, persistDir, port });
  await page.waitForFunction((n) => window.sources.every((s) => s.opens >= 2), SOURCES, { timeout: 60_000 });
  await pollUntil(() => stats(server.url, CHANNEL), (s) => s.listeners === SOURCES, { what: 'the listeners back', timeoutMs: 30_000 });
  const thenIds = await publishFromPage(page, ['four', 'five']);
  const all = [...first, ...thenIds.map((id, i) => ({ id, data: ['four', 'five'][i] }))];
  for (const [i, s] of (await eventsInPage(page, all.length)).entries()) {
    assert.deepEqual(s.events, all, `EventSource ${i} (${s.opens} connections, ${s.errors} errors)`);
  }
  const after = await stats(server.url, CHANNEL);
  assert.ok(after.objects >= 3, `after the restart: ${JSON.stringify(after)}`);
  assert.deepEqual(pageErrors, []);
});
