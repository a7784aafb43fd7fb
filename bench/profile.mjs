#!/usr/bin/env node
// A V8 CPU profile of the single-publish path: serves the product (or the floor) with
// Miniflare and its inspector, opens one listener, publishes with one request in flight
// over a keep-alive connection, and profiles every isolate (Miniflare's entry worker, and
// the worker with its Durable Objects: both run in the one user isolate) over the
// Chrome DevTools Protocol while it does.
//
//   node bench/profile.mjs [--floor] [--var NAME:VALUE]... [--warm N] [--publishes N] [--no-profile]
//                          [--interval-us N] [--out DIR] [--top N] [--label NAME]
//                          [--main PATH]  (another build's worker/shim.mjs, for A/B runs)
//
// It prints, per isolate, the sampled time per publish by category (ours: the wasm
// functions of sse_edge and its crates, and wasm-bindgen's JS glue; the runtime's: its
// JS, native code below JS, the garbage collector), the top functions by self time, and
// the whole server's CPU per publish from /proc (workerd and node), so what the
// profile does not see (the runtime's C++ outside any isolate: HTTP, the hop into the
// object, SQLite's commit) is the difference. The .cpuprofile files (one per isolate)
// go to --out (default bench/results/profile) and open in Chrome DevTools.
//
// Loopback only; every loop is bounded.

import { mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
let floor = false;
let warm = 1000;
let publishes = 3000;
let intervalUs = 100;
let out = join(root, "bench/results/profile");
let top = 25;
let label = null;
let profiling = true;
let mainOverride = null;
const vars = {};
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const next = () => {
    if (i + 1 >= args.length) fail(`${a} needs a value`);
    return args[++i];
  };
  if (a === "--floor") floor = true;
  else if (a === "--warm") warm = Number(next());
  else if (a === "--publishes") publishes = Number(next());
  else if (a === "--interval-us") intervalUs = Number(next());
  else if (a === "--out") out = resolve(next());
  else if (a === "--top") top = Number(next());
  else if (a === "--label") label = next();
  else if (a === "--no-profile") profiling = false;
  else if (a === "--main") mainOverride = resolve(next());
  else if (a === "--var") {
    const v = next();
    const at = v.indexOf(":");
    if (at < 1) fail(`--var NAME:VALUE, not ${JSON.stringify(v)}`);
    vars[v.slice(0, at)] = v.slice(at + 1);
  } else fail(`unknown argument ${JSON.stringify(a)}`);
}
for (const [name, n, max] of [["--warm", warm, 100_000], ["--publishes", publishes, 100_000], ["--interval-us", intervalUs, 100_000]]) {
  if (!Number.isInteger(n) || n < 1 || n > max) fail(`${name}: a whole number from 1 to ${max}`);
}
label ??= floor ? (vars.FLOOR_SQL === "1" ? "floor-sql" : "floor") : `product-${vars.PUBLISH_ACK ?? "stored"}`;

function fail(msg) {
  console.error(`profile.mjs: ${msg}`);
  process.exit(2);
}

const require = createRequire(join(root, "package.json"));
const wranglerPath = require.resolve("wrangler");
const miniflarePath = require.resolve("miniflare");
const { unstable_getMiniflareWorkerOptions } = await import(wranglerPath);
const { Miniflare, Log, LogLevel } = await import(miniflarePath);
const WebSocket = (await import(createRequire(miniflarePath).resolve("ws"))).default;

const { workerOptions, main: productMain } = unstable_getMiniflareWorkerOptions(join(root, "wrangler.toml"));
const main = mainOverride ?? (floor ? join(root, "bench/floor.mjs") : productMain);
const persist = mkdtempSync(join(tmpdir(), "sse-profile-"));
const mf = new Miniflare({
  ...workerOptions,
  host: "127.0.0.1",
  port: 0,
  log: new Log(LogLevel.WARN),
  cf: false,
  modules: true,
  scriptPath: main,
  modulesRoot: mainOverride ? "/" : root,
  modulesRules: [{ type: "ESModule", include: ["**/*.js", "**/*.mjs"] }, ...(workerOptions.modulesRules ?? [])],
  bindings: { ...workerOptions.bindings, ...vars },
  durableObjectsPersist: join(persist, "do"),
  inspectorPort: 0,
});

// --- CPU of the server's processes (this node process and its workerd children) ---
const TICK = 100; // USER_HZ on Linux
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK; // utime, stime (fields 14, 15)
  } catch {
    return 0;
  }
}
function workerdPids() {
  const pids = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(f[1]) === process.pid && stat.includes("(workerd)")) pids.push(Number(d));
    } catch {}
  }
  return pids;
}

// --- the Chrome DevTools Protocol, one socket per isolate ---
class Session {
  constructor(url) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 });
    this.next = 1;
    this.waiting = new Map();
    this.opened = new Promise((ok, ko) => {
      this.ws.on("open", ok);
      this.ws.on("error", ko);
    });
    this.ws.on("message", (text) => {
      const m = JSON.parse(text);
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      m.error ? w.ko(new Error(`${w.method}: ${m.error.message}`)) : w.ok(m.result);
    });
  }
  send(method, params = {}) {
    const id = this.next++;
    return new Promise((ok, ko) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        ko(new Error(`${method}: no answer in 120 s`));
      }, 120_000);
      this.waiting.set(id, {
        method,
        ok: (r) => (clearTimeout(timer), ok(r)),
        ko: (e) => (clearTimeout(timer), ko(e)),
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }
  close() {
    this.ws.close();
  }
}

// --- classifying a profile's frames ---
function category(frame) {
  const name = frame.functionName;
  const url = frame.url ?? "";
  if (name === "(idle)") return "idle";
  if (name === "(program)") return "runtime: native (program)";
  if (name === "(garbage collector)") return "runtime: GC";
  if (name === "(root)") return "root";
  if (url.startsWith("wasm://")) {
    if (/sse_edge|^\$?_?ZN8sse_edge/.test(name)) return "ours: wasm sse_edge";
    if (/\bworker\b|worker::|ZN6worker/.test(name)) return "ours: wasm workers-rs";
    if (/serde_json|serde/.test(name)) return "ours: wasm serde";
    if (/\burl\b|url::|idna|form_urlencoded|ZN3url/.test(name)) return "ours: wasm url";
    if (/dlmalloc|alloc|__rust_|memcpy|memmove|memset|__rdl/.test(name)) return "ours: wasm alloc/mem";
    if (/wasm_bindgen|js_sys|web_sys|__wbindgen|externref/.test(name)) return "ours: wasm bindgen";
    return "ours: wasm other";
  }
  if (url.endsWith("/build/index.js") || url.endsWith("index.js") && url.includes("build")) return "ours: JS glue (wasm-bindgen, shim)";
  if (url.includes("floor.mjs")) return "floor: JS";
  if (url === "") return "runtime: builtin/API";
  return "runtime: JS";
}

function summarize(profile, perPublish) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map(); // node id -> µs
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  const cats = new Map();
  const funcs = new Map();
  let busy = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    const cat = category(node.callFrame);
    cats.set(cat, (cats.get(cat) ?? 0) + us);
    if (cat !== "idle" && cat !== "root") busy += us;
    const key = `${node.callFrame.functionName || "(anonymous)"} ${node.callFrame.url ? node.callFrame.url.replace(/^.*\//, "") + ":" + node.callFrame.lineNumber : ""}`;
    const f = funcs.get(key) ?? { us: 0, cat };
    f.us += us;
    funcs.set(key, f);
  }
  // Inclusive time of our wasm entry points (by name), to attribute their callees.
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map();
  for (const [id, us] of self) {
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at).callFrame;
      const name = f.functionName || "(anonymous)";
      if (seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
  return { cats, funcs, busy, inclusive, perPublish };
}

const fmt = (us, n) => (us / n).toFixed(1).padStart(8);

let listener;
try {
  const url = await mf.ready;
  const base = `http://127.0.0.1:${url.port}`;
  const channel = `profile-${Date.now()}`;
  const eventsUrl = `${base}/channels/${channel}/events`;

  // One listener, read as fast as it comes; counts the events.
  let received = 0;
  const controller = new AbortController();
  const response = await fetch(eventsUrl, { signal: controller.signal, headers: { Accept: "text/event-stream" } });
  if (!response.ok) throw new Error(`listen: ${response.status}`);
  listener = (async () => {
    const decoder = new TextDecoder();
    let text = "";
    try {
      for await (const chunk of response.body) {
        text += decoder.decode(chunk, { stream: true });
        let at;
        while ((at = text.indexOf("\n\n")) >= 0) {
          if (text.slice(0, at).includes("\ndata:") || text.startsWith("data:")) received++;
          text = text.slice(at + 2);
        }
      }
    } catch {}
  })();
  controller.signal.addEventListener("abort", () => {});

  let seq = 0;
  async function publishN(n) {
    for (let i = 0; i < n; i++) {
      const r = await fetch(eventsUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ data: { seq: seq++, t: Date.now() * 1000 } }),
      });
      if (r.status !== 200) throw new Error(`publish: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
  }

  await publishN(warm);

  const inspector = await mf.getInspectorURL();
  const targets = (await (await fetch(`http://${inspector.host}/json/list`)).json()).filter(
    (t) => t.id === "core:entry" || t.id.startsWith("core:user:"),
  );
  const sessions = await Promise.all(
    targets.map(async (t) => {
      const s = new Session(t.webSocketDebuggerUrl);
      await s.opened;
      if (profiling) {
        await s.send("Profiler.enable");
        await s.send("Profiler.setSamplingInterval", { interval: intervalUs });
      }
      return { target: t, s };
    }),
  );
  const pids = workerdPids();
  const cpu0 = pids.reduce((a, p) => a + cpuOf(p), 0);
  const node0 = process.cpuUsage();
  // Start every profiler; V8 takes the start on the isolate's next task, so a few
  // publishes go by while they start.
  if (profiling) await Promise.all(sessions.map(({ s }) => s.send("Profiler.start")));
  const t0 = performance.now();
  await publishN(publishes);
  const seconds = (performance.now() - t0) / 1000;
  const profiles = profiling ? await Promise.all(sessions.map(({ s }) => s.send("Profiler.stop"))) : [];
  const cpu1 = pids.reduce((a, p) => a + cpuOf(p), 0);
  const node1 = process.cpuUsage(node0);
  for (const { s } of sessions) s.close();

  mkdirSync(out, { recursive: true });
  console.log(
    `${label}: ${publishes} publishes in ${seconds.toFixed(2)} s (${(publishes / seconds).toFixed(0)}/s), ` +
      `1 listener got ${received} of ${warm + publishes}; workerd CPU ${(((cpu1 - cpu0) * 1e6) / publishes).toFixed(0)} µs/publish ` +
      `(/proc, 10 ms ticks); this client ${(((node1.user + node1.system)) / publishes).toFixed(0)} µs/publish (node: Miniflare and the load)`,
  );
  const summary = { label, publishes, seconds, workerdCpuUsPerPublish: ((cpu1 - cpu0) * 1e6) / publishes, isolates: {} };
  for (let k = 0; k < profiles.length; k++) {
    const id = sessions[k].target.id;
    const { profile } = profiles[k];
    writeFileSync(join(out, `${label}-${id.replace(/[^a-z0-9]+/gi, "_")}.cpuprofile`), JSON.stringify(profile));
    const s = summarize(profile, publishes);
    const wall = profile.endTime - profile.startTime;
    console.log(`\n[${id}] sampled ${(wall / 1e3).toFixed(0)} ms, busy ${fmt(s.busy, publishes)} µs/publish`);
    const cats = [...s.cats].filter(([c]) => c !== "idle" && c !== "root").sort((a, b) => b[1] - a[1]);
    for (const [c, us] of cats) console.log(`  ${fmt(us, publishes)} µs  ${c}`);
    console.log(`  top self time (µs/publish):`);
    for (const [name, f] of [...s.funcs].filter(([, f]) => f.cat !== "idle").sort((a, b) => b[1].us - a[1].us).slice(0, top)) {
      console.log(`  ${fmt(f.us, publishes)}  ${name.slice(0, 140)}  [${f.cat}]`);
    }
    const ours = [...s.inclusive]
      .filter(([n]) => /sse_edge/.test(n))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top);
    if (ours.length) {
      console.log(`  ours, inclusive (µs/publish):`);
      for (const [n, us] of ours) console.log(`  ${fmt(us, publishes)}  ${n.slice(0, 140)}`);
    }
    summary.isolates[id] = {
      busyUsPerPublish: s.busy / publishes,
      categories: Object.fromEntries(cats.map(([c, us]) => [c, us / publishes])),
      top: [...s.funcs].sort((a, b) => b[1].us - a[1].us).slice(0, 60).map(([n, f]) => ({ name: n, cat: f.cat, usPerPublish: f.us / publishes })),
      oursInclusive: Object.fromEntries(ours.map(([n, us]) => [n, us / publishes])),
    };
  }
  writeFileSync(join(out, `${label}-summary.json`), JSON.stringify(summary, null, 1) + "\n");
  controller.abort();
} catch (e) {
  console.error(`profile.mjs: ${e?.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await Promise.race([listener ?? Promise.resolve(), new Promise((r) => setTimeout(r, 1000))]);
  await mf.dispose();
  rmSync(persist, { recursive: true, force: true });
}
