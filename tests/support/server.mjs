// Starts `wrangler dev` for a test file and stops it again.
//
//   const server = await startServer({ vars: { HEARTBEAT_SECONDS: '1' } });
//   ... fetch(`${server.url}/ping`) ...
//   await server.stop();
//
//   const [a, b] = await startServers([{}, { vars: { PUBLISH_ACK: 'accepted' } }]); // at once
//
//   const [server] = useServers({ vars: { ... } }); // a test file's before/after hooks
//
// - Plain settings go in as `--var NAME:VALUE`.
// - Secrets go into a temporary env file passed with `--env-file`, which also keeps
//   wrangler from reading the repository's own `.dev.vars` / `.env` (a developer's
//   local secrets must not change what the tests see).
// - wrangler runs in its own process group; stop() ends the whole group (wrangler,
//   workerd, the build command): SIGTERM, then SIGKILL after 5 s. Every server still
//   running is also killed when this process exits.
// - SSE_EDGE_TEST_VARS="NAME=VALUE NAME=VALUE" sets those settings on every server whose
//   test file does not set them itself: how `npm test` runs a suite a second time with
//   the tree forced (LISTENERS_PER_OBJECT=1 FANOUT=2), every stream spread over objects.
// - SSE_EDGE_SKIP_BUILD=1 tells scripts/build.sh (wrangler.toml's build command) to
//   reuse build/worker/ when it exists, so each start takes seconds, not a rebuild.
import { spawn } from 'node:child_process';
import { after, afterEach, before } from 'node:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeOpened } from './http.mjs';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const wranglerBin = path.join(repoRoot, 'node_modules', '.bin', 'wrangler');

const READY_TIMEOUT_MS = 60_000;
const TERM_GRACE_MS = 5_000;
const OUTPUT_CAP = 4 << 20; // keep at most the last 4 MiB of wrangler's output

/** servers still running: process group (pid) -> temporary directory */
const running = new Map();

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function killAllNow() {
  for (const [pid, tmp] of running) {
    killGroup(pid, 'SIGKILL');
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  running.clear();
}
process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAllNow();
    process.exit(128 + os.constants.signals[signal]);
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
/** Longer than workerd waits before it evicts an object with nothing to do (~10 s). */
export const IDLE_MS = 15_000;

/**
 * The environment of a server that must not reload the Worker (cutting every stream) when a
 * file changes under it while a test waits: chokidar polls every 10 min instead.
 */
export const NO_RELOAD = { CHOKIDAR_USEPOLLING: '1', CHOKIDAR_INTERVAL: '600000' };

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Strips ANSI colour codes, so the readiness line can be matched. */
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');

function envFileLine(name, value) {
  // dotenv syntax: a single-quoted value is taken literally; a double-quoted one
  // too, except that \n becomes a newline. Neither has an escape for its own quote.
  const v = String(value);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad secret name ${JSON.stringify(name)}`);
  if (/[\r\n]/.test(v)) throw new Error(`secret ${name}: line breaks are not supported`);
  if (!v.includes("'")) return `${name}='${v}'\n`;
  if (!v.includes('"') && !v.includes('\\n')) return `${name}="${v}"\n`;
  throw new Error(`secret ${name}: a value with both quote kinds is not supported`);
}

/** The settings SSE_EDGE_TEST_VARS gives every server ("NAME=VALUE NAME=VALUE"). */
export function forcedVars() {
  const text = process.env.SSE_EDGE_TEST_VARS ?? '';
  return Object.fromEntries(
    text.split(/\s+/).filter(Boolean).map((pair) => {
      const at = pair.indexOf('=');
      if (at <= 0) throw new Error(`SSE_EDGE_TEST_VARS: "${pair}" is not NAME=VALUE`);
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  );
}

/**
 * @param {object} [options]
 * @param {Record<string,string|number>} [options.vars]    `--var NAME:VALUE` for each
 * @param {Record<string,string>} [options.secrets]         written to a temporary env file
 * @param {string} [options.persistDir]  `--persist-to`; a fresh temporary directory when absent
 *                                        (removed again by stop())
 * @param {number} [options.port]         default: a free port
 * @param {number} [options.readyTimeoutMs]
 * @param {Record<string,string>} [options.env]  extra environment for wrangler
 * @returns {Promise<{url: string, port: number, persistDir: string, pid: number,
 *   output: () => string, stop: () => Promise<void>}>}
 */
export async function startServer(options = {}) {
  // A port found free can be taken by someone else before wrangler (or the workerd it
  // starts, which picks more ports of its own) binds it: start again on fresh ports.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startServerOnce(options);
    } catch (err) {
      if (attempt >= START_ATTEMPTS || !/Address already in use|EADDRINUSE/.test(err.message)) throw err;
    }
  }
}

const START_ATTEMPTS = 3;

/**
 * A test file's usual set-up, in one call at the file's top level: starts a server for
 * each of `optionsList` (at once, see startServers) before the file's tests and stops them
 * after; after each test, closes what it opened (closeOpened in http.mjs). Returns one
 * object per server, which has the server's fields (url, port, output(), ...) once the
 * tests run.
 */
export function useServers(...optionsList) {
  const handles = optionsList.map(() => ({}));
  let servers = [];
  before(async () => {
    servers = await startServers(optionsList);
    servers.forEach((server, i) => Object.assign(handles[i], server));
  }, { timeout: 120_000 });
  after(async () => {
    await closeOpened();
    await Promise.all(servers.map((server) => server.stop()));
  }, { timeout: 30_000 });
  afterEach(closeOpened);
  return handles;
}

/**
 * Starts a server for each of `optionsList` at the same time (see startServer); returns
 * them in that order. When one fails, the others are stopped again and the error thrown.
 */
export async function startServers(optionsList) {
  const results = await Promise.allSettled(optionsList.map((options) => startServer(options)));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(results.filter((r) => r.status === 'fulfilled').map((r) => r.value.stop()));
    throw failed.reason;
  }
  return results.map((r) => r.value);
}

async function startServerOnce({
  vars = {},
  secrets = {},
  persistDir,
  port,
  readyTimeoutMs = READY_TIMEOUT_MS,
  env = {},
} = {}) {
  if (!existsSync(wranglerBin)) {
    throw new Error(`${wranglerBin} is missing: run sh scripts/setup.sh (npm ci) first`);
  }
  const envText = Object.entries(secrets).map(([k, v]) => envFileLine(k, v)).join(''); // may throw
  port ??= await freePort();
  const inspectorPort = await freePort();
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-server-'));
  persistDir ??= path.join(tmp, 'state');
  const envFile = path.join(tmp, 'secrets.env');
  await writeFile(envFile, envText, { mode: 0o600 });

  const args = [
    'dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--persist-to', persistDir,
    '--env-file', envFile,
    '--show-interactive-dev-session=false',
  ];
  for (const [name, value] of Object.entries({ ...forcedVars(), ...vars })) {
    args.push('--var', `${name}:${value}`);
  }

  const childEnv = {
    ...process.env,
    SSE_EDGE_SKIP_BUILD: '1',
    WRANGLER_SEND_METRICS: 'false',
    CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV: 'true', // so --env-file is read
    NO_COLOR: '1',
    FORCE_COLOR: '0',
    ...env,
  };
  delete childEnv.CLOUDFLARE_INCLUDE_PROCESS_ENV; // secrets come from the env file only

  const child = spawn(wranglerBin, args, {
    cwd: repoRoot,
    env: childEnv,
    detached: true, // own process group: stop() can end wrangler AND workerd
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) {
    await rm(tmp, { recursive: true, force: true });
    throw new Error(`could not start ${wranglerBin}`);
  }
  running.set(pid, tmp);
  // Do not let a forgotten server keep the test process alive; the 'exit' hook kills it.
  child.unref();

  let output = '';
  let exited = false;
  let exitInfo = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = true;
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  const listeners = new Set();
  const onData = (chunk) => {
    output += chunk.toString('utf8');
    if (output.length > OUTPUT_CAP) output = output.slice(-OUTPUT_CAP / 2);
    for (const l of listeners) l();
  };
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', onData); // always drained, or wrangler would block on a full pipe
    stream.unref?.();
  }

  let stopping = null;
  const stop = () => (stopping ??= stopNow());
  const stopNow = async () => {
    if (killGroup(pid, 'SIGTERM')) {
      const deadline = Date.now() + TERM_GRACE_MS;
      while ((!exited || groupAlive(pid)) && Date.now() < deadline) await sleep(50);
      if (!exited || groupAlive(pid)) {
        killGroup(pid, 'SIGKILL');
        const hardDeadline = Date.now() + TERM_GRACE_MS;
        while ((!exited || groupAlive(pid)) && Date.now() < hardDeadline) await sleep(50);
      }
    }
    running.delete(pid);
    // tmp holds the env file and, unless the caller chose a persistDir (e.g. to restart
    // a server on the same state), the state directory too.
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
  };

  const readyRe = new RegExp(`Ready on http://127\\.0\\.0\\.1:${port}\\b`);
  try {
    await new Promise((resolve, reject) => {
      const check = () => {
        if (readyRe.test(stripAnsi(output))) finish(resolve);
        else if (exited) finish(() => reject(new Error(`wrangler dev exited (${JSON.stringify(exitInfo)}) before it was ready`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`wrangler dev not ready after ${readyTimeoutMs} ms`))),
        readyTimeoutMs,
      );
      const finish = (fn) => {
        clearTimeout(timer);
        listeners.delete(check);
        fn();
      };
      listeners.add(check);
      exitPromise.then(check);
      check();
    });
  } catch (err) {
    await stop();
    err.message += `\n--- wrangler output ---\n${stripAnsi(output).slice(-8000)}`;
    throw err;
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    persistDir,
    pid,
    output: () => stripAnsi(output),
    stop,
  };
}
