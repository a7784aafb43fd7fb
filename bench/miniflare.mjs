#!/usr/bin/env node
// Serves the built worker (build/worker/shim.mjs) with Miniflare directly, without
// wrangler's development proxy, for sse-bench's `--runtime miniflare`.
//
//   node bench/miniflare.mjs --port 8788 [--root DIR] [--persist-to DIR] [--var NAME:VALUE]...
//
// It reads wrangler.toml (main, compatibility_date, compatibility_flags, [vars], the
// Durable Object bindings and which classes use SQLite) with a small parser for the TOML
// that file uses, and prints `Ready on http://127.0.0.1:<port>` once it serves requests.
// It uses the `miniflare` package that ships with wrangler (node_modules/miniflare).

import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const args = process.argv.slice(2);
let port = 0;
let root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let persistTo = null;
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
  else if (a === "--var") {
    const v = next();
    const at = v.indexOf(":");
    if (at < 1) fail(`--var NAME:VALUE, not ${JSON.stringify(v)}`);
    varOverrides[v.slice(0, at)] = v.slice(at + 1);
  } else fail(`unknown argument ${JSON.stringify(a)}`);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) fail("--port: a TCP port");

function fail(msg) {
  console.error(`miniflare.mjs: ${msg}`);
  process.exit(2);
}

// --- a small TOML reader: tables, arrays of tables, strings, numbers, booleans, arrays ---
function parseToml(text) {
  const rootTable = {};
  let current = rootTable;
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    let line = stripComment(lines[n]).trim();
    if (!line) continue;
    let m;
    if ((m = line.match(/^\[\[\s*([^\]]+?)\s*\]\]$/))) {
      const path = m[1].split(".").map((s) => s.trim());
      const parent = walk(rootTable, path.slice(0, -1));
      const key = path[path.length - 1];
      if (!Array.isArray(parent[key])) parent[key] = [];
      current = {};
      parent[key].push(current);
      continue;
    }
    if ((m = line.match(/^\[\s*([^\]]+?)\s*\]$/))) {
      current = walk(rootTable, m[1].split(".").map((s) => s.trim()));
      continue;
    }
    const eq = line.indexOf("=");
    if (eq < 1) throw new Error(`wrangler.toml line ${n + 1}: cannot read ${JSON.stringify(line)}`);
    const key = unquote(line.slice(0, eq).trim());
    let valueText = line.slice(eq + 1).trim();
    // Multi-line arrays: keep reading until the brackets balance.
    while (valueText.startsWith("[") && !balanced(valueText) && n + 1 < lines.length) {
      valueText += " " + stripComment(lines[++n]).trim();
    }
    const path = key.split(".").map((s) => s.trim());
    walk(current, path.slice(0, -1))[path[path.length - 1]] = parseValue(valueText, n + 1);
  }
  return rootTable;
}

function walk(table, path) {
  let t = table;
  for (const p of path) {
    if (Array.isArray(t[p])) t = t[p][t[p].length - 1];
    else {
      if (typeof t[p] !== "object" || t[p] === null) t[p] = {};
      t = t[p];
    }
  }
  return t;
}

function stripComment(line) {
  let quote = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#") return line.slice(0, i);
  }
  return line;
}

function balanced(s) {
  let depth = 0;
  let quote = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[") depth++;
    else if (c === "]") depth--;
  }
  return depth === 0;
}

function unquote(k) {
  if ((k.startsWith('"') && k.endsWith('"')) || (k.startsWith("'") && k.endsWith("'"))) return k.slice(1, -1);
  return k;
}

function parseValue(v, lineNo) {
  if (v.startsWith('"')) return JSON.parse(v);
  if (v.startsWith("'")) return v.slice(1, -1);
  if (v === "true") return true;
  if (v === "false") return false;
  if (/^[+-]?\d[\d_]*(\.\d+)?([eE][+-]?\d+)?$/.test(v)) return Number(v.replace(/_/g, ""));
  if (v.startsWith("[")) {
    const inner = v.slice(1, -1).trim();
    if (!inner) return [];
    const items = [];
    let depth = 0;
    let quote = null;
    let start = 0;
    for (let i = 0; i < inner.length; i++) {
      const c = inner[i];
      if (quote) {
        if (c === "\\" && quote === '"') i++;
        else if (c === quote) quote = null;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === "[" || c === "{") depth++;
      else if (c === "]" || c === "}") depth--;
      else if (c === "," && depth === 0) {
        items.push(inner.slice(start, i).trim());
        start = i + 1;
      }
    }
    items.push(inner.slice(start).trim());
    return items.filter((s) => s !== "").map((s) => parseValue(s, lineNo));
  }
  if (v.startsWith("{")) {
    const out = {};
    const inner = v.slice(1, -1).trim();
    for (const part of inner ? inner.split(",") : []) {
      const eq = part.indexOf("=");
      out[unquote(part.slice(0, eq).trim())] = parseValue(part.slice(eq + 1).trim(), lineNo);
    }
    return out;
  }
  throw new Error(`wrangler.toml line ${lineNo}: unsupported value ${v}`);
}

// --- configuration from wrangler.toml ---
const configPath = join(root, "wrangler.toml");
if (!existsSync(configPath)) fail(`${configPath} not found`);
const config = parseToml(readFileSync(configPath, "utf8"));
const main = join(root, config.main ?? "build/worker/shim.mjs");
if (!existsSync(main)) fail(`${main} not found: build the worker first (scripts/build.sh)`);

const sqliteClasses = new Set(
  (config.migrations ?? []).flatMap((m) => [...(m.new_sqlite_classes ?? []), ...(m.renamed_classes ?? []).map((r) => r.to)]),
);
const durableObjects = {};
for (const b of config.durable_objects?.bindings ?? []) {
  durableObjects[b.name] = { className: b.class_name, useSQLite: sqliteClasses.has(b.class_name) };
}
const bindings = {};
for (const [k, v] of Object.entries(config.vars ?? {})) bindings[k] = typeof v === "string" ? v : JSON.stringify(v);
Object.assign(bindings, varOverrides);

// The miniflare that wrangler depends on (resolved from the project, as wrangler would).
const require = createRequire(join(root, "package.json"));
let miniflarePath;
try {
  miniflarePath = require.resolve("miniflare");
} catch {
  fail(`the miniflare package is not installed under ${root}/node_modules: run npm install (scripts/setup.sh)`);
}
const { Miniflare, Log, LogLevel } = await import(miniflarePath);

const mf = new Miniflare({
  host: "127.0.0.1",
  port,
  log: new Log(LogLevel.WARN),
  // A placeholder `request.cf` (true would fetch one from Cloudflare: no network here).
  cf: false,
  modules: true,
  scriptPath: main,
  modulesRoot: root,
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm", "**/*.wasm?module"] },
  ],
  compatibilityDate: config.compatibility_date,
  compatibilityFlags: config.compatibility_flags ?? [],
  bindings,
  durableObjects,
  durableObjectsPersist: persistTo ? join(persistTo, "do") : false,
});

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
  console.log(
    `miniflare ${JSON.parse(readFileSync(join(dirname(miniflarePath), "../../package.json"), "utf8")).version}: ` +
      `${Object.keys(durableObjects).join(",")} (${JSON.stringify(durableObjects)}), compatibility date ${config.compatibility_date}`,
  );
  console.log(`Ready on http://127.0.0.1:${url.port || port}`);
} catch (e) {
  console.error(`miniflare.mjs: failed to start: ${e?.stack ?? e}`);
  await stop(1);
}
