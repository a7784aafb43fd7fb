// Resumable answers (README "Streams that end", examples/): the server-side example pipes
// any async iterator of text into a channel with one streaming publish that ends it; in
// headless Chromium, a page following an answer with examples/resumable-answer.js and
// reloaded in the middle shows every token once, in order, and stops at `end`; a plain
// EventSource that reconnects after the end gets 204 and stops for good; a page opened
// after the end gets the whole answer; and the playground's "stream an answer" demo does
// all of it from its button.
//
// One server; RETRY_MS 200, so that a plain EventSource reconnects quickly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useServers } from '../support/server.mjs';
import { closeLater, freshChannel, sleep } from '../support/http.mjs';
import { launchBrowser, openPage } from '../support/browser.mjs';
import { openStream } from '../support/sse.mjs';
import { pipeAnswer } from '../../examples/pipe-answer.mjs';

const [server] = useServers({ vars: { RETRY_MS: '200' } });

let browser;
before(async () => { browser = await launchBrowser(); }, { timeout: 60_000 });
after(async () => { await browser?.close(); });

const WAIT_MS = 10_000;

/** An async iterator of `tokens`, `gapMs` apart. */
async function* slowly(tokens, gapMs) {
  for (const token of tokens) {
    await sleep(gapMs);
    yield token;
  }
}

const TOKENS = Array.from({ length: 40 }, (_, i) => `${i === 0 ? '' : ' '}t${i + 1}`);

test('the server-side example pipes an async iterator into one streaming publish that ends the channel', async () => {
  const channel = freshChannel('pipe');
  const listener = closeLater(await openStream(`${server.url}/channels/${channel}/events`));
  const answer = await pipeAnswer(server.url, channel, slowly(TOKENS.slice(0, 5), 20));
  assert.deepEqual(answer, { firstId: '1', lastId: '5', count: 5, listeners: 1, ended: true });
  await listener.waitForEnd(WAIT_MS);
  assert.deepEqual(listener.events.map((e) => [e.type, e.data]), [
    ...TOKENS.slice(0, 5).map((t) => ['token', t]),
    ['end', '{"lastEventId":"5"}'],
  ]);
  await assert.rejects(pipeAnswer(server.url, channel, slowly(['late'], 0)), /409 the channel has ended/);
});

/** Opens `url`, a page of the server that follows the answer on `channel` with the
 * example module, counting its requests to the channel's stream and their statuses. */
async function answerPage(channel) {
  const streamRequests = [];
  const prepare = async (page) => {
    page.on('response', (r) => {
      if (r.url().includes(`/channels/${channel}/events`)) streamRequests.push({ url: r.url(), status: r.status() });
    });
  };
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`, { prepare });
  await follow(page, channel);
  return { page, pageErrors, streamRequests };
}

/** Has `page` follow the answer on `channel` with the example module: the text so far in
 * `window.answerText`, `window.answerEnded` once it ended. */
function follow(page, channel) {
  return page.evaluate(async (url) => {
    const { followAnswer } = await import('/examples/resumable-answer.js');
    window.answerEnded = false;
    followAnswer(url, {
      onText: (text) => { window.answerText = text; },
      onEnd: () => { window.answerEnded = true; },
    });
  }, `${server.url}/channels/${channel}/events`);
}

test('Chromium: a page reloaded in the middle of an answer shows every token once, in order, and stops at end', { timeout: 60_000 }, async () => {
  const channel = freshChannel('reload');
  const publishing = pipeAnswer(server.url, channel, slowly(TOKENS, 60));
  const first = await answerPage(channel);
  await first.page.waitForFunction(() => (window.answerText ?? '').split(' ').length >= 10, null, { timeout: WAIT_MS });
  // The reload keeps the session's storage: the page resumes after the last token it showed.
  await first.page.reload({ waitUntil: 'load' });
  const url = `${server.url}/channels/${channel}/events`;
  const shownAtReload = await first.page.evaluate((key) => JSON.parse(sessionStorage.getItem(key)), `sse-edge-answer:${url}`);
  assert.ok(shownAtReload?.lastEventId, 'the page kept where it was');
  await follow(first.page, channel);
  await first.page.waitForFunction(() => window.answerEnded === true, null, { timeout: 20_000 });
  assert.equal(await first.page.evaluate(() => window.answerText), TOKENS.join(''), 'every token once, in order');
  assert.deepEqual((await publishing).count, TOKENS.length);
  const resumed = first.streamRequests.filter((r) => r.url.includes(`lastEventId=${shownAtReload.lastEventId}`));
  assert.equal(resumed.length, 1, `resumed after the last token shown: ${JSON.stringify(first.streamRequests)}`);
  const before = first.streamRequests.length;
  await sleep(1_000);
  assert.equal(first.streamRequests.length, before, 'no connection after the end');
  // Loaded again after the end: the whole answer from storage, without connecting.
  await first.page.reload({ waitUntil: 'load' });
  await follow(first.page, channel);
  assert.equal(await first.page.evaluate(() => window.answerText), TOKENS.join(''));
  assert.equal(first.streamRequests.length, before, 'a finished answer is shown without connecting');
  assert.deepEqual(first.pageErrors, []);
  await first.page.close();
});

test('Chromium: after the end, a plain EventSource gets 204 when it reconnects and stops; a late page gets the whole answer', { timeout: 60_000 }, async () => {
  const channel = freshChannel('plain');
  await pipeAnswer(server.url, channel, slowly(TOKENS.slice(0, 3), 0));
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`);
  const seen = await page.evaluate(async (url) => {
    const got = [];
    const statuses = [];
    await new Promise((resolve) => {
      const es = new EventSource(url);
      es.addEventListener('token', (e) => got.push(['token', e.data, e.lastEventId]));
      es.addEventListener('end', (e) => got.push(['end', e.data, e.lastEventId]));
      es.onerror = () => {
        statuses.push(es.readyState);
        if (es.readyState === EventSource.CLOSED) resolve();
      };
      setTimeout(resolve, 8000);
    });
    return { got, statuses };
  }, `${server.url}/channels/${channel}/events`);
  assert.deepEqual(seen.got, [
    ['token', 't1', '1'], ['token', ' t2', '2'], ['token', ' t3', '3'], ['end', '{"lastEventId":"3"}', '3'],
  ], 'joined after the end: the whole answer, then end');
  // The stream closed after `end`: the EventSource reconnected once with Last-Event-ID 3,
  // got 204, and gave up (CLOSED), instead of reconnecting forever.
  assert.deepEqual(seen.statuses, [0, 2], `reconnecting, then closed: ${seen.statuses}`);
  const direct = await fetch(`${server.url}/channels/${channel}/events`, { headers: { 'last-event-id': '3' } });
  assert.equal(direct.status, 204);
  // A page that had every token but was reloaded before `end` came: the module's
  // connection gets 204, and it takes that for the end, not for a failure.
  const url = `${server.url}/channels/${channel}/events`;
  const finished = await page.evaluate(async ({ url, key }) => {
    sessionStorage.setItem(key, JSON.stringify({ text: 't1 t2 t3', lastEventId: '3', ended: false }));
    const { followAnswer } = await import('/examples/resumable-answer.js');
    const statuses = [];
    const answer = followAnswer(url, { onStatus: (s) => statuses.push(s) });
    const text = await answer.done;
    return { text, statuses, kept: JSON.parse(sessionStorage.getItem(key)) };
  }, { url, key: `sse-edge-answer:${url}` });
  assert.equal(finished.text, 't1 t2 t3');
  assert.equal(finished.statuses.at(-1), 'ended');
  assert.equal(finished.kept.ended, true);
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('Chromium: the playground streams an answer, resumes it across a reload, and ends', { timeout: 60_000 }, async () => {
  const { page, pageErrors } = await openPage(browser.context, `${server.url}/`);
  await page.click('#answer-start');
  const channel = await page.textContent('#answer-channel');
  assert.match(channel, /^answer-[0-9a-f]{8}$/);
  await page.waitForFunction(() => document.getElementById('answer').textContent.split(' ').length >= 8, null, { timeout: WAIT_MS });
  await page.reload({ waitUntil: 'load' });
  assert.equal(await page.textContent('#answer-channel'), channel, 'the same answer after the reload');
  await page.waitForFunction(() => document.getElementById('answer-status').textContent === 'ended', null, { timeout: 30_000 });
  const shown = await page.textContent('#answer');
  // The whole answer, as the channel's history holds it: every token once, in order.
  const history = closeLater(await openStream(`${server.url}/channels/${channel}/events?lastEventId=0`));
  await history.waitForEnd(WAIT_MS);
  const tokens = history.events.filter((e) => e.type === 'token').map((e) => e.data);
  assert.ok(tokens.length > 40);
  assert.equal(shown, tokens.join(''));
  assert.match(await page.textContent('#answer-result'), /complete/);
  assert.deepEqual(pageErrors, []);
  await page.close();
});
