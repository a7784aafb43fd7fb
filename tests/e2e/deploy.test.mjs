// `wrangler deploy` as far as it goes without an account: --dry-run bundles the built
// worker with wrangler.toml exactly as a deploy would, and checks the configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../support/server.mjs';

const run = promisify(execFile);

test('wrangler deploy --dry-run bundles the worker with its Durable Object and settings', { timeout: 120_000 }, async () => {
  const outdir = await mkdtemp(path.join(os.tmpdir(), 'sse-edge-deploy-'));
  try {
    const { stdout, stderr } = await run(
      path.join(repoRoot, 'node_modules', '.bin', 'wrangler'),
      ['deploy', '--dry-run', '--outdir', outdir],
      { cwd: repoRoot, env: { ...process.env, SSE_EDGE_SKIP_BUILD: '1', NO_COLOR: '1', WRANGLER_SEND_METRICS: 'false' }, timeout: 110_000 },
    );
    const output = stdout + stderr;
    assert.match(output, /env\.CHANNEL \(Channel\)\s+Durable Object/, output);
    for (const name of ['QUEUE_CAPACITY', 'HISTORY_SIZE', 'HEARTBEAT_SECONDS', 'PUBLISH_ACK', 'ALLOWED_ORIGINS']) {
      assert.match(output, new RegExp(`env\\.${name} \\(`), `${name} is not bound: ${output}`);
    }
    assert.doesNotMatch(output, /PUBLISH_SECRET|LISTEN_SECRET/, 'secrets must not come from wrangler.toml');
    const files = await readdir(outdir);
    const wasm = files.find((f) => f.endsWith('.wasm'));
    assert.ok(wasm, `no wasm module in the bundle: ${files}`);
    assert.ok((await stat(path.join(outdir, wasm))).size > 10_000, 'the wasm module is suspiciously small');
    assert.ok(files.some((f) => /\.m?js$/.test(f)), `no JS entry in the bundle: ${files}`);
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
});
