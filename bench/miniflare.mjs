#!/usr/bin/env node
// Serves the built worker (build/worker/shim.mjs) with Miniflare directly, without
// wrangler's development proxy, for sse-bench's `--runtime miniflare`.
//
//   node bench/miniflare.mjs --port 8788 [--root DIR] [--persist-to DIR] [--var NAME:VALUE]...
//                            [--floor] [--gc-port PORT]
//
// It reads wrangler.toml through wrangler's own unstable_getMiniflareWorkerOptions (main,
// compatibility date and flags, [vars], the Durable Object bindings and their SQLite
// storage), and prints `Ready on http://127.0.0.1:<port>` once it serves requests.
// `--floor` serves bench/floor.mjs (the runtime's floor for a listener) in place of
// `main`, with the same configuration. `--gc-port PORT` enables the runtime's inspector
// and answers `POST http://127.0.0.1:PORT/gc` once a full garbage collection has run in
// every isolate (so that memory can be measured without the garbage of past requests).
// It uses the `miniflare` package that ships with wrangler (node_modules/miniflare).

import { readFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const args = process.argv.slice(2);
let port = 0;
let root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let persistTo = null;
let floor = false;
let gcPort = null;
const varOverrides = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => {
    if (i + 1 >= args.length) fail(`${a} needs a value`);
    return args[++i];
  };
  if (a === "--port") port = Number(next());
  else if (a === "--root") root = resolve(next());
  else if (a === "--persist-to") persistTo = resolve(next());
  else if (a === "--floor") floor = true;
  else if (a === "--gc-port") gcPort = Number(next());
  else if (a === "--var") {
    const v = next();
    const at = v.indexOf(":");
    if (at < 1) fail(`--var NAME:VALUE, not ${JSON.stringify(v)}`);
    varOverrides[v.slice(0, at)] = v.slice(at + 1);
  } else fail(`unknown argument ${JSON.stringify(a)}`);
}
for (const [flag, p] of [["--port", port], ["--gc-port", gcPort ?? 0]]) {
  if (!Number.isInteger(p) || p < 0 || p > 65535) fail(`${flag}: a TCP port`);
}

function fail(msg) {
  console.error(`miniflare.mjs: ${msg}`);
  process.exit(2);
}

// --- configuration: wrangler's own reading of wrangler.toml ---
const configPath = join(root, "wrangler.toml");
if (!existsSync(configPath)) fail(`${configPath} not found`);
// The wrangler and miniflare this project installed (resolved from the project).
const require = createRequire(join(root, "package.json"));
let wranglerPath, miniflarePath;
try {
  wranglerPath = require.resolve("wrangler");
  miniflarePath = require.resolve("miniflare");
} catch {
  fail(`wrangler/miniflare are not installed under ${root}/node_modules: run sh scripts/setup.sh`);
}
const { unstable_getMiniflareWorkerOptions } = await import(wranglerPath);
const { Miniflare, Log, LogLevel } = await import(miniflarePath);
const { workerOptions, main: productMain } = unstable_getMiniflareWorkerOptions(configPath);
const main = floor ? join(root, "bench/floor.mjs") : productMain;
if (!existsSync(main)) fail(`${main} not found: build the worker first (scripts/build.sh)`);
const durableObjects = workerOptions.durableObjects;

const mf = new Miniflare({
  ...workerOptions,
  host: "127.0.0.1",
  port,
  log: new Log(LogLevel.WARN),
  // A placeholder `request.cf` (true would fetch one from Cloudflare: no network here).
  cf: false,
  modules: true,
  scriptPath: main,
  modulesRoot: root,
  modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...(workerOptions.modulesRules ?? [])],
  bindings: { ...workerOptions.bindings, ...varOverrides },
  durableObjectsPersist: persistTo ? join(persistTo, "do") : false,
  // Port 0: any free one (asked for with getInspectorURL).
  ...(gcPort === null ? {} : { inspectorPort: 0 }),
});

// --- garbage collection through the inspector (--gc-port) ---
// Miniflare's own dependency speaks WebSocket (node 20 has no WebSocket without a flag).
const WebSocket = (await import(createRequire(miniflarePath).resolve("ws"))).default;

/** Sends one Chrome DevTools Protocol command to `url` and waits for its answer. */
function inspectorCommand(url, method) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${method}: no answer from ${url} in 60 s`));
    }, 60_000);
    ws.on("open", () => ws.send(JSON.stringify({ id: 1, method })));
    ws.on("message", (text) => {
      const answer = JSON.parse(text);
      if (answer.id !== 1) return;
      clearTimeout(timer);
      ws.close();
      answer.error ? reject(new Error(`${method}: ${answer.error.message}`)) : resolve();
    });
    ws.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * A full collection in the isolates that serve requests (Miniflare's entry worker, and the
 * worker with its Durable Objects); returns how many. V8 runs the collection as the
 * isolate's next task, so requests are sent until every isolate has answered.
 */
async function collectGarbage() {
  const inspector = await mf.getInspectorURL();
  const targets = (await (await fetch(`http://${inspector.host}/json/list`)).json()).filter(
    (t) => t.id === "core:entry" || t.id.startsWith("core:user:"),
  );
  let pending = targets.length;
  const answered = Promise.all(
    targets.map((t) => inspectorCommand(t.webSocketDebuggerUrl, "HeapProfiler.collectGarbage").finally(() => pending--)),
  );
  for (let i = 0; i < 300 && pending > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    await (await mf.dispatchFetch("http://127.0.0.1/gc")).arrayBuffer();
  }
  await answered;
  return targets.length;
}

function serveGarbageCollection() {
  const server = createServer((req, res) => {
    if (req.method !== "POST" || req.url !== "/gc") return res.writeHead(404).end("POST /gc\n");
    collectGarbage().then(
      (isolates) => res.writeHead(200).end(`collected garbage in ${isolates} isolates\n`),
      (e) => res.writeHead(500).end(`${e?.stack ?? e}\n`),
    );
  });
  server.listen(gcPort, "127.0.0.1");
  return new Promise((resolve) => server.on("listening", resolve));
}

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await mf.dispose();
  } catch (e) {
    console.error(`miniflare.mjs: dispose failed: ${e}`);
  }
  process.exit(code);
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => stop(0));

try {
  const url = await mf.ready;
  if (gcPort !== null) await serveGarbageCollection();
  console.log(
    `miniflare ${JSON.parse(readFileSync(join(dirname(miniflarePath), "../../package.json"), "utf8")).version}: ` +
      `${floor ? "floor " : ""}${main}, ` +
      `${Object.keys(durableObjects).join(",")} (${JSON.stringify(durableObjects)}), compatibility date ${workerOptions.compatibilityDate}`,
  );
  console.log(`Ready on http://127.0.0.1:${url.port || port}`);
} catch (e) {
  console.error(`miniflare.mjs: failed to start: ${e?.stack ?? e}`);
  await stop(1);
}
