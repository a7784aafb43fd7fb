// Headless Chromium for the browser tests: Debian's chromium driven by playwright-core
// (playwright cannot download browsers here), with a fresh profile that close() removes;
// pages that record their errors; and what the tests read off the demo page.
import assert from 'node:assert/strict';
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

// The demo page (GET /, src/platform/page.html): `#status` says how its EventSource is
// ("open", "error", ...); `#messages` lists what arrived, newest first, each item with a
// `.meta` ("#<id>") and a `.data` part.

/** The demo page's messages, oldest first: [{meta, data}]. */
export const demoMessages = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => ({
  meta: li.querySelector('.meta')?.textContent ?? '',
  data: li.querySelector('.data')?.textContent ?? '',
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
    err.message += `\nmessages so far: ${JSON.stringify(await demoMessages(page))}; ` +
      `status ${await page.textContent('#status').catch(() => '?')}`;
    throw err;
  }
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  return demoMessages(page);
}

/** Waits (bounded) until the demo page's status reads `status`. */
export const waitForDemoStatus = (page, status, timeoutMs = 15_000) => page.waitForFunction(
  (s) => document.querySelector('#status')?.textContent.trim() === s, status, { timeout: timeoutMs, polling: 50 });
