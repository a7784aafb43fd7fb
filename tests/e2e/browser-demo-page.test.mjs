// The demo page (GET /) in a real browser (headless Chromium driven by playwright-core):
// its EventSource opens, and pings sent from the test and from the page's button show
// up as one "pong" each; across a server restart every message shows up exactly once.
// Its playground: a channel picked, a typed event published from the page and shown
// with its id and type, the listener count polled, pause and resume replaying what was
// missed (and a gap), the curl and EventSource lines it shows run as shown; and the same
// for the Mercure hub with pasted tokens.
//
// Two servers, both with RETRY_MS 200 (the page reconnects quickly) and
// HEARTBEAT_SECONDS 2 (a closed stream is counted out within 2 s):
// - `server`, on a persist directory of its own so that the restart test can start it
//   again on the same port and state;
// - `hubServer`: the Mercure hub on (anonymous subscribers, publisher and subscriber
//   keys, the subscriptions API) and a history of 5 events, so a resume can meet a gap.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  copyPlaygroundSnippet, curlArgs, curlRequest, demoMessages, launchBrowser, openPage, playgroundCount,
  playgroundListen, playgroundMakeToken, playgroundPublish, playgroundSnippet, waitForDemoMessages, waitForDemoStatus,
  waitForPlaygroundCount,
} from '../support/browser.mjs';
import { mercureToken, publishUpdate } from '../support/mercure.mjs';
import { startServer, startServers } from '../support/server.mjs';
import {
  assertPublished, closeLater, closeOpened, freshChannel, ping, pollUntil, publishEvent, request, sleep,
  waitForListeners,
} from '../support/http.mjs';
import { openStream } from '../support/sse.mjs';

const VARS = { RETRY_MS: '200', HEARTBEAT_SECONDS: '2' };
const PUBLISHER_KEY = 'playground publisher key';
const SUBSCRIBER_KEY = 'playground subscriber key';
const HUB_OPTIONS = {
  vars: { ...VARS, MERCURE_ANONYMOUS: '1', MERCURE_SUBSCRIPTIONS: '1', HISTORY_SIZE: '5' },
  secrets: { MERCURE_PUBLISHER_JWT_KEY: PUBLISHER_KEY, MERCURE_SUBSCRIBER_JWT_KEY: SUBSCRIBER_KEY },
};

let server;
let hubServer;
let browser;
let persistDir;

before(async () => {
  persistDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-browser-demo-state-'));
  [server, hubServer] = await startServers([{ vars: VARS, persistDir }, HUB_OPTIONS]);
  browser = await launchBrowser();
  for (const { url } of [server, hubServer]) {
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  }
}, { timeout: 120_000 });

after(async () => {
  await closeOpened();
  await browser?.close();
  await Promise.all([server?.stop(), hubServer?.stop()]);
  if (persistDir) await rm(persistDir, { recursive: true, force: true }).catch(() => {});
}, { timeout: 30_000 });

afterEach(closeOpened);

test('the demo page receives pings from fetch and from its Ping button', async () => {
  const { page, pageErrors, response } = await openPage(browser.context, `${server.url}/`);
  try {
    assert.match(response.headers()['content-type'] ?? '', /^text\/html/);

    await waitForDemoStatus(page, 'open', 15_000);
    assert.equal(await page.textContent('#status'), 'open');
    assert.deepEqual(await demoMessages(page), [], 'no messages before any ping');
    await waitForListeners(server.url, 'default', 1); // the page is the one listener

    // Pings published by the test (GET and POST).
    const FROM_TEST = 3;
    for (let i = 0; i < FROM_TEST; i += 1) await ping(server.url, { method: i % 2 ? 'POST' : 'GET', listeners: 1 });
    let shown = await waitForDemoMessages(page, FROM_TEST);
    assert.equal(shown.length, FROM_TEST, `messages: ${JSON.stringify(shown)}`);
    for (const m of shown) assert.equal(m.data, 'pong', `message item without pong: ${JSON.stringify(m)}`);

    // Pings from the page's own button.
    const CLICKS = 2;
    for (let i = 0; i < CLICKS; i += 1) {
      const [pingResponse] = await Promise.all([
        page.waitForResponse((r) => new URL(r.url()).pathname === '/ping', { timeout: 10_000 }),
        page.click('#ping'),
      ]);
      assert.equal(pingResponse.status(), 200);
    }
    shown = await waitForDemoMessages(page, FROM_TEST + CLICKS);
    assert.equal(shown.length, FROM_TEST + CLICKS, `messages: ${JSON.stringify(shown)}`);
    assert.equal(shown.filter((m) => m.data === 'pong').length, FROM_TEST + CLICKS);

    assert.equal(await page.textContent('#status'), 'open', 'the stream stayed open');
    assert.deepEqual(pageErrors, [], 'no errors in the page');
  } finally {
    await page.close().catch(() => {});
  }
});

/** "a -> b x3 -> c": consecutive repeats counted. */
function collapse(list) {
  const out = [];
  for (const x of list) {
    if (out.length && out.at(-1)[0] === x) out.at(-1)[1] += 1;
    else out.push([x, 1]);
  }
  return out.map(([x, n]) => (n > 1 ? `${x} x${n}` : x)).join(' -> ');
}

// The server restarts on the same port and persist directory, so the browser's automatic
// reconnection (with Last-Event-ID, after RETRY_MS) is what catches up. While the server
// is down the page's attempts fail (connection refused); once that has been seen, its
// attempts are held back (page.route) until the messages published right after the
// restart are in, so those can only reach it from history.
test('the demo page shows every message exactly once across a server restart', { timeout: 180_000 }, async (t) => {
  const statuses = [];
  // While `hold` is set, the page's /listen requests wait here before going to the
  // network, so messages published meanwhile can only reach it from history.
  let hold = null;
  let listenRequests = 0;
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`, {
    prepare: async (p) => {
      await p.exposeFunction('reportStatus', (s) => statuses.push(`${Date.now()} ${s}`));
      await p.addInitScript(() => {
        const observe = () => {
          const el = document.getElementById('status');
          if (!el) return;
          new MutationObserver(() => window.reportStatus(el.textContent))
            .observe(el, { childList: true, characterData: true, subtree: true });
        };
        document.addEventListener('DOMContentLoaded', observe);
      });
      await p.route('**/listen', async (route) => {
        listenRequests += 1;
        if (hold) await hold;
        await route.continue().catch(() => {});
      });
    },
  });
  const published = []; // [{id, data, listeners}]
  const pub = async (data) => {
    const { id, listeners } = await publishEvent(server.url, 'default', { data });
    published.push({ id, data, listeners });
  };
  try {
    await waitForDemoStatus(page, 'open', 15_000);
    await waitForListeners(server.url, 'default', 1);

    // Before the restart.
    for (let i = 0; i < 5; i += 1) await pub(`m${i}`);
    let shown = await waitForDemoMessages(page, 5, { timeoutMs: 20_000 });
    assert.deepEqual(shown.map((m) => m.data), ['m0', 'm1', 'm2', 'm3', 'm4']);

    // Stop the server: the page loses its stream and its reconnection attempts fail
    // (connection refused) until the server is back.
    const port = server.port;
    const stoppedAt = Date.now();
    await server.stop();
    await waitForDemoStatus(page, 'error', 10_000);
    const requestsBeforeStop = listenRequests;
    await pollUntil(() => listenRequests, (n) => n >= requestsBeforeStop + 3, {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: 'three failed reconnection attempts',
    });
    const failedAttempts = listenRequests - 1;

    // From now on the page's attempts are held back until the messages below are
    // published; then start again on the same port and state and publish while nobody
    // listens: the page can only get these from history, with Last-Event-ID.
    let release;
    hold = new Promise((resolve) => {
      release = resolve;
    });
    server = await startServer({ vars: VARS, persistDir, port });
    const restartedMs = Date.now() - stoppedAt;
    for (let i = 5; i < 10; i += 1) await pub(`m${i}`);
    assert.deepEqual(published.slice(5).map((p) => p.listeners), [0, 0, 0, 0, 0], 'published with nobody listening');
    const held = listenRequests;
    hold = null;
    release();
    shown = await waitForDemoMessages(page, 10, { timeoutMs: 30_000 });
    await waitForDemoStatus(page, 'open', 10_000);
    const reconnectedMs = Date.now() - stoppedAt;

    // After it reconnected: live again.
    for (let i = 10; i < 15; i += 1) await pub(`m${i}`);
    shown = await waitForDemoMessages(page, 15, { timeoutMs: 20_000 });

    t.diagnostic(`server down and up in ${restartedMs} ms; page had m0..m9 after ${reconnectedMs} ms; ` +
      `status changes: ${collapse(statuses.map((s) => s.split(' ')[1]))}; ` +
      `${failedAttempts}+ failed reconnection attempts while down; ${listenRequests} /listen requests in all ` +
      `(${held} before the release)`);
    // m5..m9 were published while nobody listened (and the page's requests were held
    // back): it can only have them from history, through the Last-Event-ID its
    // EventSource sent when it reconnected. (Playwright does not show that header:
    // the network stack adds it after interception.)
    assert.deepEqual(shown.map((m) => m.data), published.map((p) => p.data), 'every message exactly once, in order');
    assert.deepEqual(shown.map((m) => m.meta), published.map((p) => `#${p.id}`), 'with the ids the server gave them');
    for (let i = 1; i < published.length; i += 1) {
      assert.ok(BigInt(published[i - 1].id) < BigInt(published[i].id), 'ids keep increasing across the restart');
    }
    assert.equal(await page.textContent('#status'), 'open');
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});

// ---------------------------------------------------------------------------------------
// The playground

/** A message item as demoMessages() reads it. */
const item = (id, data, type = 'message', replayed = false) =>
  ({ meta: `#${id}${type === 'message' ? '' : ` ${type}`}`, data, id, type, replayed });

/** Opens the demo page on `base` and waits until its first stream (the default channel) is open. */
async function openPlayground(base) {
  const opened = await openPage(browser.context, `${base}/`);
  await waitForDemoStatus(opened.page, 'open');
  return opened;
}

test('the playground: a channel, a typed event from the page, the listener count, pause and replay', { timeout: 90_000 }, async () => {
  const { page, pageErrors } = await openPlayground(server.url);
  try {
    const channel = freshChannel('playground');
    await playgroundListen(page, { channel });
    assert.equal(await page.textContent('#stream-name'), channel);
    assert.equal(await page.isVisible('#ping'), false, 'Ping belongs to the default channel');
    await waitForPlaygroundCount(page, 1); // the page itself
    await waitForListeners(server.url, channel, 1);

    // Published from the page's form: a typed, multi-line event, then an untyped one.
    const typed = await playgroundPublish(page, { data: 'line one\nline two', type: 'greeting' });
    assert.equal(typed.id, '1', typed.text);
    assert.match(typed.text, /#1 to 1 listener\b/);
    let shown = await waitForDemoMessages(page, 1);
    assert.deepEqual(shown, [item('1', 'line one\nline two', 'greeting')]);
    assert.equal(await page.inputValue('#types'), 'greeting', 'the page listens for the type it published with');
    const untyped = await playgroundPublish(page, { data: 'plain', type: '' });
    assert.equal(untyped.id, '2', untyped.text);
    shown = await waitForDemoMessages(page, 2);
    assert.deepEqual(shown, [item('1', 'line one\nline two', 'greeting'), item('2', 'plain')]);
    assert.equal(await page.textContent('#messages li:first-child .meta'), '#2', 'newest first');

    // Pause: the stream closes and the count goes back to 0; what is published meanwhile
    // does not arrive.
    await page.click('#pause');
    await waitForDemoStatus(page, 'closed');
    assert.equal(await page.textContent('#pause'), 'Resume');
    assert.match(await page.textContent('#note'), /Paused after #2\. .*\?lastEventId=2/);
    await waitForPlaygroundCount(page, 0);
    const missed = [];
    for (const fields of [{ data: 'm3' }, { data: 'm4\nsecond line', event: 'greeting' }, { data: 'm5' }]) {
      const { id } = await publishEvent(server.url, channel, fields, { listeners: 0 });
      missed.push(item(id, fields.data, fields.event, true));
    }
    await sleep(500);
    assert.equal((await demoMessages(page)).length, 2, 'nothing arrives while paused');

    // Resume: reconnects after #2; the missed events come once each, in order, marked.
    await page.click('#pause');
    await waitForDemoStatus(page, 'open');
    assert.equal(await page.textContent('#pause'), 'Pause');
    shown = await waitForDemoMessages(page, 5);
    assert.deepEqual(shown, [item('1', 'line one\nline two', 'greeting'), item('2', 'plain'), ...missed]);
    assert.match(await page.textContent('#note'), /3 events \(#3 to #5\)/);
    await waitForPlaygroundCount(page, 1);

    // Live again: not marked.
    const live = await publishEvent(server.url, channel, { data: 'm6' }, { listeners: 1 });
    shown = await waitForDemoMessages(page, 6);
    assert.deepEqual(shown.at(-1), item(live.id, 'm6'));
    assert.equal(await page.textContent('#status'), 'open');
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});

test('the playground resumes a pause before any event, and shows a gap when the history no longer covers a resume', { timeout: 60_000 }, async () => {
  const { page, pageErrors } = await openPlayground(hubServer.url); // HISTORY_SIZE 5
  try {
    const channel = freshChannel('gap');
    await playgroundListen(page, { channel });
    await waitForListeners(hubServer.url, channel, 1);

    // Paused before anything arrived: Resume continues after the channel's last id then.
    await page.click('#pause');
    await waitForDemoStatus(page, 'closed');
    await page.waitForFunction(() => /\?lastEventId=0\.$/.test(document.querySelector('#note')?.textContent), null,
      { timeout: 10_000 });
    await waitForListeners(hubServer.url, channel, 0);
    const { id: first } = await publishEvent(hubServer.url, channel, { data: 'first' }, { listeners: 0 });
    await page.click('#pause');
    await waitForDemoStatus(page, 'open');
    assert.deepEqual(await waitForDemoMessages(page, 1), [item(first, 'first', 'message', true)]);

    // Paused after #1, seven events later the history (5) has lost #2 and #3.
    await page.click('#pause');
    await waitForDemoStatus(page, 'closed');
    await waitForListeners(hubServer.url, channel, 0);
    const later = [];
    for (let i = 2; i <= 8; i += 1) later.push((await publishEvent(hubServer.url, channel, { data: `e${i}` })).id);
    await page.click('#pause');
    await waitForDemoStatus(page, 'open');
    const shown = await waitForDemoMessages(page, 7);
    const kept = later.slice(-5); // the history keeps the last 5
    assert.deepEqual(shown.map((m) => m.meta), [`#${first}`, 'gap', ...kept.map((id) => `#${id}`)]);
    assert.equal(shown[0].replayed, true, 'from the first resume');
    assert.deepEqual(JSON.parse(shown[1].data), { lastEventId: first, firstAvailableId: kept[0] });
    assert.equal(shown[1].replayed, false, 'a gap is a notice, not a replayed event');
    assert.deepEqual(shown.slice(2).map((m) => m.replayed), [true, true, true, true, true]);
    assert.match(await page.textContent('#messages li.gap .explain'),
      new RegExp(`no longer has the events after #${first}; it kept them again from #${kept[0]}\\.`));
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});

test('the playground\'s curl and EventSource lines name the channel and work as shown', { timeout: 60_000 }, async () => {
  const { page, pageErrors } = await openPlayground(server.url);
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  try {
    const channel = freshChannel('snippets');
    await playgroundListen(page, { channel });
    const data = 'it\'s "quoted",\nand $HOME `stays` \\ as typed';
    await page.fill('#data', data);
    await page.fill('#event-type', 'note');
    await page.locator('#event-type').blur(); // from now on the page listens for "note" too

    const listenCmd = await playgroundSnippet(page, 'listen');
    assert.equal(listenCmd, `curl -N '${server.url}/channels/${channel}/events'`);
    const publishCmd = await playgroundSnippet(page, 'publish');
    assert.ok(publishCmd.startsWith(`curl '${server.url}/channels/${channel}/events' `), publishCmd);
    const code = await playgroundSnippet(page, 'eventsource');
    assert.match(code, new RegExp(`^const source = new EventSource\\("${server.url}/channels/${channel}/events"\\);`));
    assert.ok(code.includes('source.addEventListener("note", '), code);
    const statsCmd = await playgroundSnippet(page, 'stats');
    assert.equal(statsCmd, `curl '${server.url}/channels/${channel}'`);
    for (const [name, text] of [['listen', listenCmd], ['publish', publishCmd], ['eventsource', code], ['stats', statsCmd]]) {
      assert.equal(await copyPlaygroundSnippet(page, name), text, `the Copy button of ${name}`);
    }

    // The listen command, as the shell hands it to curl, opened with fetch.
    const listenRequest = curlRequest(await curlArgs(listenCmd));
    assert.equal(listenRequest.stream, true, 'curl -N');
    const stream = closeLater(await openStream(listenRequest.url, { headers: listenRequest.init.headers }));
    assert.equal(stream.status, 200);
    await waitForListeners(server.url, channel, 2); // the page and "curl"

    // The publish command: its event reaches both, data as typed.
    const publishRequest = curlRequest(await curlArgs(publishCmd));
    const { id } = assertPublished(await request(publishRequest.url, publishRequest.init), 2, 'the shown publish command');
    const got = await stream.waitForEvent((e) => e.lastEventId === id, 10_000, `event ${id} on the curl stream`);
    assert.deepEqual({ type: got.type, data: got.data }, { type: 'note', data });
    assert.deepEqual(await waitForDemoMessages(page, 1), [item(id, data, 'note')]);

    // The counters command.
    const statsRequest = curlRequest(await curlArgs(statsCmd));
    const counters = await request(statsRequest.url, statsRequest.init);
    assert.equal(counters.json?.channel, channel, counters.text);
    assert.equal(counters.json.listeners, 2, counters.text);

    // The EventSource lines, run in the page: they log typed and untyped events.
    await page.evaluate((lines) => {
      window.snippetSource = new Function(`${lines}\nreturn source;`)(); // eslint-disable-line no-new-func
    }, code);
    await waitForListeners(server.url, channel, 3);
    const typed = await publishEvent(server.url, channel, { data: 'typed from the test', event: 'note' }, { listeners: 3 });
    const plain = await publishEvent(server.url, channel, { data: 'plain from the test' }, { listeners: 3 });
    await pollUntil(() => logs, (l) => l.includes(`${typed.id} note typed from the test`) && l.includes(`${plain.id} plain from the test`),
      { timeoutMs: 10_000, what: 'the snippet\'s console lines' });
    await page.evaluate(() => window.snippetSource.close());
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});

const BOOKS = 'https://example.com/books/{id}';
const publisherToken = () => mercureToken(PUBLISHER_KEY, { publish: ['*'] });

test('the playground on the Mercure hub: a selector, a publish with a pasted token, the update with its id', { timeout: 90_000 }, async () => {
  const { page, pageErrors } = await openPlayground(hubServer.url);
  try {
    await page.check('#mode-hub');
    await page.waitForFunction(() => document.querySelector('#hub-state')?.dataset.hub === 'on', null, { timeout: 10_000 });
    await playgroundListen(page, { hub: { value: BOOKS } });
    assert.equal(await page.textContent('#stream-name'), `topic=${BOOKS}`);
    assert.equal(await page.isVisible('#ping'), false);
    // Anonymous: the hub has no count to give without a token for its subscriptions API.
    await page.waitForFunction(() => document.querySelector('#listeners')?.textContent === 'unavailable', null, { timeout: 10_000 });
    assert.equal(await playgroundCount(page), null);
    assert.match(await page.textContent('#listeners-detail'), /subscriptions API .* subscriber token/);

    const token = publisherToken();
    const dune = await playgroundPublish(page, { topic: 'https://example.com/books/1', data: '{"title":"Dune"}', type: 'book', token });
    assert.match(dune.id ?? '', /^urn:uuid:[0-9a-f-]{36}$/, dune.text);
    assert.match(await page.textContent('#hub-pub-claims'), /"publish":\["\*"\]/, 'the pasted token\'s claims are shown');
    let shown = await waitForDemoMessages(page, 1);
    assert.deepEqual(shown, [item(dune.id, '{"title":"Dune"}', 'book')]);

    // Its own id, no type, two lines.
    const own = await playgroundPublish(page, { topic: 'https://example.com/books/2', data: 'a\nb', type: '', id: 'book-2-v1' });
    assert.equal(own.id, 'book-2-v1', own.text);
    // Neither a topic the selector does not match, nor a private update, reaches an
    // anonymous subscriber.
    const other = await playgroundPublish(page, { topic: 'https://example.com/authors/1', data: 'other', id: '' });
    assert.ok(other.id, other.text);
    const hidden = await playgroundPublish(page, { topic: 'https://example.com/books/3', data: 'private', private: true });
    assert.ok(hidden.id, hidden.text);
    await page.setChecked('#hub-private', false);
    const fromTest = await publishUpdate(hubServer.url, [['topic', 'https://example.com/books/4'], ['data', 'from the test']], { token });
    assert.equal(fromTest.status, 200, fromTest.text);
    shown = await waitForDemoMessages(page, 3);
    assert.deepEqual(shown, [item(dune.id, '{"title":"Dune"}', 'book'), item('book-2-v1', 'a\nb'), item(fromTest.text, 'from the test')]);

    // A token signed with another key is refused, and the page says why.
    const refused = await playgroundPublish(page, { topic: 'https://example.com/books/5', token: mercureToken('another key', { publish: ['*'] }) });
    assert.equal(refused.id, null);
    assert.match(refused.text, /^Refused: 401 .*invalid_token/);

    // The page's token maker signs the same token as the test (HS256 is deterministic).
    assert.equal(await playgroundMakeToken(page, { use: 'publisher', key: PUBLISHER_KEY }), token);

    // The shown commands: listen, and publish with the pasted token.
    await page.fill('#hub-pub-token', token);
    await page.fill('#data', 'from the shown command');
    await page.fill('#event-type', 'book');
    const listenCmd = await playgroundSnippet(page, 'listen');
    const hubUrl = `${hubServer.url}/.well-known/mercure?topic=${encodeURIComponent(BOOKS)}`;
    assert.equal(listenCmd, `curl -N '${hubUrl}'`);
    assert.ok((await playgroundSnippet(page, 'eventsource')).startsWith(`const source = new EventSource("${hubUrl}");`));
    const publishCmd = await copyPlaygroundSnippet(page, 'publish');
    assert.ok(publishCmd.includes(`--data-urlencode 'topic=https://example.com/books/5'`), publishCmd);
    const listenRequest = curlRequest(await curlArgs(listenCmd));
    const stream = closeLater(await openStream(listenRequest.url, { headers: listenRequest.init.headers }));
    assert.equal(stream.status, 200);
    await stream.waitUntil(() => stream.retries.length > 0, 10_000, 'the hub stream\'s retry');
    const publishRequest = curlRequest(await curlArgs(publishCmd));
    const published = await request(publishRequest.url, publishRequest.init);
    assert.equal(published.status, 200, published.text);
    const got = await stream.waitForEvent((e) => e.lastEventId === published.text, 10_000, 'the update on the curl stream');
    assert.deepEqual({ type: got.type, data: got.data }, { type: 'book', data: 'from the shown command' });
    shown = await waitForDemoMessages(page, 4);
    assert.deepEqual(shown.at(-1), item(published.text, 'from the shown command', 'book'));
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});

test('the playground on the hub with a subscriber token: private updates, the subscriber count, pause and replay', { timeout: 90_000 }, async () => {
  const { page, pageErrors } = await openPlayground(hubServer.url);
  try {
    // A subscriber token for the selector and the subscriptions API, from the page's token
    // maker (its preset claims), then used to listen.
    await page.check('#mode-hub');
    await waitForDemoStatus(page, 'open'); // switching listens at once, anonymously
    await page.fill('#hub-selector', BOOKS);
    const token = await playgroundMakeToken(page, { use: 'subscriber', key: SUBSCRIBER_KEY });
    assert.equal(token, mercureToken(SUBSCRIBER_KEY, {
      subscribe: [BOOKS, '/.well-known/mercure/subscriptions{/topic}{/subscriber}'],
    }));
    assert.match(await page.textContent('#hub-sub-claims'), /"subscribe":/);
    await playgroundListen(page, { hub: { value: BOOKS, token } });
    await page.fill('#types', 'book'); // the type the test publishes with
    await page.locator('#types').blur();
    await waitForPlaygroundCount(page, 1); // from the subscriptions API

    const pub = publisherToken();
    const secret = await playgroundPublish(page, { topic: 'https://example.com/books/9', data: 'for token holders', type: '', private: true, token: pub });
    assert.ok(secret.id, secret.text);
    let shown = await waitForDemoMessages(page, 1);
    assert.deepEqual(shown, [item(secret.id, 'for token holders')]);
    await page.setChecked('#hub-private', false);

    await page.click('#pause');
    await waitForDemoStatus(page, 'closed');
    assert.match(await page.textContent('#note'), new RegExp(`\\?lastEventID=${secret.id}`));
    await waitForPlaygroundCount(page, 0);
    const missed = [];
    for (const n of [10, 11]) {
      const r = await publishUpdate(hubServer.url, [['topic', `https://example.com/books/${n}`], ['data', `missed ${n}`], ['type', 'book']], { token: pub });
      assert.equal(r.status, 200, r.text);
      missed.push(item(r.text, `missed ${n}`, 'book', true));
    }
    await sleep(500);
    assert.equal((await demoMessages(page)).length, 1, 'nothing arrives while paused');

    await page.click('#pause');
    await waitForDemoStatus(page, 'open');
    shown = await waitForDemoMessages(page, 3);
    assert.deepEqual(shown, [item(secret.id, 'for token holders'), ...missed]);
    await waitForPlaygroundCount(page, 1);

    const live = await publishUpdate(hubServer.url, [['topic', 'https://example.com/books/12'], ['data', 'live']], { token: pub });
    shown = await waitForDemoMessages(page, 4);
    assert.deepEqual(shown.at(-1), item(live.text, 'live'));
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});

test('on a server without the hub, the playground says so', async () => {
  const { page, pageErrors } = await openPlayground(server.url);
  try {
    await page.check('#mode-hub');
    await page.waitForFunction(() => document.querySelector('#hub-state')?.dataset.hub === 'off', null, { timeout: 10_000 });
    assert.match(await page.textContent('#hub-state'), /hub is off .*MERCURE_ANONYMOUS=1/);
    await page.click('#listen');
    await waitForDemoStatus(page, 'closed');
    await page.waitForFunction(() => /refused the stream: 404/.test(document.querySelector('#note')?.textContent), null,
      { timeout: 10_000 });
    assert.deepEqual(pageErrors, []);
  } finally {
    await page.close().catch(() => {});
  }
});
