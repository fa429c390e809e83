#!/usr/bin/env node
// Runs the whole suite with node:test on the compiled tests (dist/), which tsc has type-checked.
// Usage: node scripts/test.mjs [substring ...] to run only test files whose path contains one.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);

function findTests(dir) {
  const found = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith('.test.js')) found.push(path);
  }
  return found;
}

const files = [...findTests(join(root, 'dist', 'src')), ...findTests(join(root, 'dist', 'test'))]
  .filter((file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f)))
  .sort();
if (files.length === 0) {
  process.stderr.write(`no test files match ${filters.join(', ')}\n`);
  process.exit(1);
}
const args = ['--enable-source-maps', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files];
const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, TQSERVER_TEST: '1' } });
process.exit(result.status ?? 1);
