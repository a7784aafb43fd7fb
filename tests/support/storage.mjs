// What the objects keep on disk under a `wrangler dev --persist-to` directory, read from
// outside: their SQLite files, and what those hold (read-only, with Python's sqlite3).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The SQLite files of the objects of one Durable Object class (`Channel`, `Hub`). */
export function objectDatabases(persistDir, className) {
  const found = [];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (dir.includes(className) && entry.name.endsWith('.sqlite') && entry.name !== 'metadata.sqlite') found.push(p);
    }
  };
  walk(persistDir);
  return found;
}

/** Runs a Python snippet on one SQLite file (opened read-only as `c`); what it prints. */
export function readDatabase(file, python) {
  const script = 'import sqlite3,sys\n' +
    'c=sqlite3.connect("file:"+sys.argv[1]+"?mode=ro",uri=True)\n' + python;
  return execFileSync('python3', ['-c', script, file], { encoding: 'utf8' });
}

const STORED_ROWS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'stored_rows.py');

/** What one object keeps in its SQLite file: rows, keys and a pending alarm (see
 * stored_rows.py, which the benchmark runs too). */
export function storedRows(file) {
  return Number(execFileSync('python3', [STORED_ROWS, file], { encoding: 'utf8' }));
}
