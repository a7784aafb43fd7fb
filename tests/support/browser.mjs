// Headless Chromium for the browser tests: Debian's chromium driven by playwright-core
// (playwright cannot download browsers here), with a fresh profile that close() removes;
// pages that record their errors; what the tests read off the demo page and do with its
// playground; and the curl commands it shows, run.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

// No sandbox (we run as root), and nothing that would reach out to the network.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Starts Chromium; returns its browser context and a close() that also removes the profile. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run sh scripts/setup.sh --test`);
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/**
 * Opens `url` in a new page of `context`, collecting the page's uncaught errors.
 * `prepare(page)` runs before the navigation (routes, init scripts, exposed functions).
 * Asserts that the page loads with status 200.
 */
export async function openPage(context, url, { prepare } = {}) {
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  try {
    if (prepare) await prepare(page);
    const response = await page.goto(url, { waitUntil: 'load', timeout: 20_000 });
    assert.equal(response.status(), 200, `GET ${url}`);
    return { page, pageErrors, response };
  } catch (err) {
    await page.close().catch(() => {});
    throw err;
  }
}

// The demo page (GET /, web/playground.html): `#status` says how its EventSource is
// ("open", "error", ...); `#messages` lists what arrived, newest first, each item with a
// `.meta` ("#<id>", "#<id> <type>", or "gap") and a `.data` part, and its id, type and
// whether it was replayed in data attributes.

/** The demo page's messages, oldest first: [{meta, data, id, type, replayed}]. */
export const demoMessages = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => ({
  meta: li.querySelector('.meta')?.textContent ?? '',
  data: li.querySelector('.data')?.textContent ?? '',
  id: li.dataset.id ?? null,
  type: li.dataset.type ?? null,
  replayed: li.dataset.replayed === 'true',
})).reverse());

/**
 * Waits (bounded) until the demo page lists at least n messages, then `settleMs` more,
 * so that a surplus or duplicate item would show; returns demoMessages().
 */
export async function waitForDemoMessages(page, n, { timeoutMs = 10_000, settleMs = 500 } = {}) {
  try {
    await page.waitForFunction((count) => document.querySelectorAll('#messages li').length >= count, n,
      { timeout: timeoutMs, polling: 50 });
  } catch (err) {
    // A new error: the reporter prints the stack, which a changed message does not reach.
    throw new Error(`${err.message}\nmessages so far: ${JSON.stringify(await demoMessages(page))}; ` +
      `status ${await page.textContent('#status').catch(() => '?')}`, { cause: err });
  }
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  return demoMessages(page);
}

/** Waits (bounded) until the demo page's status reads `status`. */
export const waitForDemoStatus = (page, status, timeoutMs = 15_000) => page.waitForFunction(
  (s) => document.querySelector('#status')?.textContent.trim() === s, status, { timeout: timeoutMs, polling: 50 });

// The playground on the demo page: `#select-form` picks a channel (`#channel`) or a hub
// selector (`#mode-hub`, `#hub-kind`, `#hub-selector`, `#hub-sub-token`) and `#listen`
// applies it (switching the mode applies it at once); `#publish-form` publishes (`#data`,
// `#event-type`; for the hub `#hub-topic`, `#hub-id`, `#hub-private`, `#hub-pub-token`,
// and `#token-maker` signs tokens) and `#publish-result` answers, with the id in `data-id`; `#listeners` shows the polled count (`data-count`, absent when
// unavailable); `#pause` pauses and resumes; `#snippet-{listen,publish,eventsource,stats}`
// hold the commands, each with a `button.copy`.

/**
 * Makes the playground listen to a channel (`{ channel }`) or a hub selector
 * (`{ hub: { kind = 'topic', value, token = '' } }`), then waits (bounded) until its
 * stream is open.
 */
export async function playgroundListen(page, { channel, hub, history = false }) {
  if (hub) {
    await page.check('#mode-hub');
    await page.selectOption('#hub-kind', hub.kind ?? 'topic');
    await page.fill('#hub-selector', hub.value);
    await page.fill('#hub-sub-token', hub.token ?? '');
  } else {
    await page.check('#mode-channel');
    await page.fill('#channel', channel);
  }
  await page.setChecked('#history', history);
  await page.click('#listen');
  await waitForDemoStatus(page, 'open');
}

/**
 * Publishes from the playground's form: `data`, `type`, and for the hub `topic`, `id`,
 * `private`, `token` (fields not given are left as they are). Waits (bounded) for the
 * answer; returns { id (null when refused), text }.
 */
export async function playgroundPublish(page, { data, type, topic, id, private: priv, token }) {
  if (data !== undefined) await page.fill('#data', data);
  if (type !== undefined) await page.fill('#event-type', type);
  if (topic !== undefined) await page.fill('#hub-topic', topic);
  if (id !== undefined) await page.fill('#hub-id', id);
  if (priv !== undefined) await page.setChecked('#hub-private', priv);
  if (token !== undefined) await page.fill('#hub-pub-token', token);
  await page.click('#publish');
  await page.waitForFunction(() => {
    const text = document.querySelector('#publish-result')?.textContent ?? '';
    return text !== '' && text !== 'Publishing…';
  }, null, { timeout: 10_000, polling: 50 });
  return page.$eval('#publish-result', (el) => ({ id: el.dataset.id ?? null, text: el.textContent }));
}

/**
 * Signs a token with the playground's token maker (`use`: 'publisher' or 'subscriber';
 * `claims`: a JSON text, or the maker's preset when absent); returns the token, which
 * the page has put into its publisher or subscriber token field.
 */
export async function playgroundMakeToken(page, { use, key, claims }) {
  await page.click('#token-maker summary');
  await page.selectOption('#maker-use', use);
  await page.fill('#maker-key', key);
  if (claims !== undefined) await page.fill('#maker-claims', claims);
  await page.click('#maker-sign');
  await page.waitForFunction(() => /^(Signed|Could not)/.test(document.querySelector('#maker-result')?.textContent ?? ''),
    null, { timeout: 5_000, polling: 50 });
  const result = await page.textContent('#maker-result');
  assert.match(result, /^Signed/, 'the token maker');
  await page.click('#token-maker summary'); // folded again
  return page.inputValue(use === 'publisher' ? '#hub-pub-token' : '#hub-sub-token');
}

/** The playground's listener count: a number, or null while it says "unavailable". */
export const playgroundCount = (page) => page.$eval('#listeners', (el) =>
  (el.dataset.count === undefined ? null : Number(el.dataset.count)));

/** Waits (bounded) until the playground shows `n` listeners (the page polls every 2 s). */
export async function waitForPlaygroundCount(page, n, timeoutMs = 15_000) {
  try {
    await page.waitForFunction((count) => document.querySelector('#listeners')?.dataset.count === String(count), n,
      { timeout: timeoutMs, polling: 100 });
  } catch (err) {
    throw new Error(`${err.message}\nthe page shows: ${await page.textContent('#listeners').catch(() => '?')} ` +
      `(${await page.textContent('#listeners-detail').catch(() => '?')})`, { cause: err });
  }
}

/** The text of a snippet: 'listen', 'publish', 'eventsource' or 'stats'. */
export const playgroundSnippet = (page, name) => page.textContent(`#snippet-${name}`);

/**
 * Clicks a snippet's Copy button and returns what landed on the clipboard (the context
 * needs the clipboard-read and clipboard-write permissions for the page's origin).
 */
export async function copyPlaygroundSnippet(page, name) {
  await page.evaluate(() => navigator.clipboard.writeText(''));
  await page.click(`button.copy[data-copy="snippet-${name}"]`);
  await page.waitForFunction(() => document.querySelector('#copy-result')?.textContent === 'Copied.', null,
    { timeout: 5_000, polling: 50 });
  return page.evaluate(() => navigator.clipboard.readText());
}

// The curl commands the page shows, run: the shell itself splits and unquotes the command
// (with `curl` defined as a shell function that prints its arguments, so no curl binary
// is needed and nothing is sent), then curlRequest() turns those arguments into a fetch.

/** The arguments `sh` passes to curl for `command` (one simple `curl ...` command). */
export function curlArgs(command, { timeoutMs = 5_000 } = {}) {
  assert.match(command, /^curl /, `not a curl command: ${command}`);
  const script = `curl() { for a in "$@"; do printf '%s\\0' "$a"; done; }\n${command}\n`;
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', script], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`sh could not run ${JSON.stringify(command)}: ${err.message} ${stderr}`));
      else resolve(stdout.split('\0').slice(0, -1));
    });
  });
}

/** curl's --data-urlencode encoding: everything but A-Z a-z 0-9 - . _ ~ percent-encoded. */
const curlEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * What curl would send for `args` (the options the page writes: -N, -X, -H, -d,
 * --data-urlencode; anything else throws): { url, stream (-N), init } for fetch.
 */
export function curlRequest(args) {
  let url;
  let method;
  let stream = false;
  const headers = {};
  const data = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i];
    const value = () => {
      i += 1;
      assert.ok(i < args.length, `curl ${arg} without its value`);
      return args[i];
    };
    if (arg === '-N') stream = true;
    else if (arg === '-X') method = value();
    else if (arg === '-H') {
      const header = value();
      const colon = header.indexOf(':');
      assert.ok(colon > 0, `curl -H ${JSON.stringify(header)}: no name`);
      headers[header.slice(0, colon).trim().toLowerCase()] = header.slice(colon + 1).trim();
    } else if (arg === '-d') {
      const d = value();
      assert.ok(!d.startsWith('@'), 'curl -d @file is not supported');
      data.push(d);
    } else if (arg === '--data-urlencode') {
      const d = value();
      const eq = d.indexOf('=');
      data.push(eq < 0 ? curlEncode(d) : `${d.slice(0, eq)}=${curlEncode(d.slice(eq + 1))}`);
    } else if (arg.startsWith('-')) {
      assert.fail(`curlRequest: option ${arg} is not supported`);
    } else {
      assert.equal(url, undefined, `curl with two URLs: ${url} and ${arg}`);
      url = arg;
    }
  }
  assert.ok(url, 'curl without a URL');
  const body = data.length > 0 ? data.join('&') : undefined;
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/x-www-form-urlencoded';
  return { url, stream, init: { method: method ?? (body === undefined ? 'GET' : 'POST'), headers, body } };
}
