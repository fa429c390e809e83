// Reload plans from pairs of real configs: each kind of change gets the least disruptive step, and
// only port/host (and the header limit) ask for a restart.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig, type Config } from './load.js';
import { describePlan, planReload, type PlanStep } from './reload.js';

const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A project with the given server.yaml and worker.yaml files (by app name), loaded. */
function config(server: string, workers: Record<string, string>): Config {
  const root = mkdtempSync(join(tmpdir(), 'tqserver-reload-'));
  roots.push(root);
  mkdirSync(join(root, 'config'));
  writeFileSync(join(root, 'config', 'server.yaml'), server);
  mkdirSync(join(root, 'workers'));
  for (const [name, yaml] of Object.entries(workers)) {
    mkdirSync(join(root, 'workers', name, 'config'), { recursive: true });
    mkdirSync(join(root, 'workers', name, 'public'), { recursive: true });
    mkdirSync(join(root, 'workers', name, 'other'), { recursive: true });
    writeFileSync(join(root, 'workers', name, 'config', 'worker.yaml'), yaml);
  }
  return loadConfig({ root });
}

/** Loads both sides from the same root layout, so paths compare equal. */
function plan(serverBefore: string, workersBefore: Record<string, string>, serverAfter: string, workersAfter: Record<string, string>): PlanStep[] {
  const before = config(serverBefore, workersBefore);
  // Same root for "after": rewrite the files in place.
  const root = before.root;
  writeFileSync(join(root, 'config', 'server.yaml'), serverAfter);
  for (const name of Object.keys(workersBefore)) if (!(name in workersAfter)) rmSync(join(root, 'workers', name), { recursive: true });
  for (const [name, yaml] of Object.entries(workersAfter)) {
    mkdirSync(join(root, 'workers', name, 'config'), { recursive: true });
    mkdirSync(join(root, 'workers', name, 'public'), { recursive: true });
    mkdirSync(join(root, 'workers', name, 'other'), { recursive: true });
    writeFileSync(join(root, 'workers', name, 'config', 'worker.yaml'), yaml);
  }
  return planReload(before, loadConfig({ root })).steps;
}

const blog = 'path: /blog\nphp:\n  pool:\n    manager: dynamic\n    max_workers: 10\n';

function kinds(steps: PlanStep[]): string[] {
  return steps.map((s) => s.kind);
}

describe('planReload', () => {
  test('nothing changed: an empty plan', () => {
    const before = config('', { blog });
    assert.equal(planReload(before, loadConfig({ root: before.root })).empty, true);
  });

  test('server.port and server.host need a restart; timeouts and the header limit apply in place', () => {
    const steps = plan('server:\n  port: 8080\n', { blog }, 'server:\n  port: 9090\n  host: 0.0.0.0\n  read_timeout_seconds: 5\n  max_header_size: 32K\n', { blog });
    assert.deepEqual(
      steps.filter((s) => s.kind === 'restart-required').map((s) => (s as { key: string }).key).sort(),
      ['server.host', 'server.port'],
    );
    const update = steps.find((s) => s.kind === 'update-server') as { keys: string[] };
    assert.deepEqual(update.keys.sort(), ['server.max_header_size', 'server.read_timeout_seconds']);
  });

  test('apps added and removed', () => {
    const steps = plan('', { blog }, '', { shop: 'path: /shop\n' });
    assert.deepEqual(kinds(steps).sort(), ['add-app', 'remove-app']);
  });

  test('pool limits resize in place', () => {
    const steps = plan('', { blog }, '', { blog: 'path: /blog\nphp:\n  pool:\n    manager: static\n    max_workers: 4\n' });
    assert.deepEqual(kinds(steps), ['resize-pool']);
    assert.deepEqual((steps[0] as { keys: string[] }).keys, ['php.pool.manager', 'php.pool.max_workers']);
  });

  test('ini settings, env, binary or backend kind replace the backend', () => {
    for (const after of [
      'path: /blog\nphp:\n  settings:\n    memory_limit: 64M\n  pool:\n    max_workers: 10\n',
      'path: /blog\nphp:\n  env:\n    A: b\n  pool:\n    max_workers: 10\n',
      'path: /blog\nphp_fpm:\n  enabled: true\nphp:\n  pool:\n    max_workers: 10\n',
    ]) {
      assert.deepEqual(kinds(plan('', { blog }, '', { blog: after })), ['replace-backend']);
    }
  });

  test('a new path re-routes without touching the backend', () => {
    const steps = plan('', { blog }, '', { blog: blog.replace('/blog', '/news') });
    assert.deepEqual(kinds(steps), ['update-route']);
  });

  test('a new document root is a new backend (workers run there) and new routing', () => {
    const steps = plan('', { blog }, '', { blog: `${blog}document_root: other\n` });
    assert.deepEqual(kinds(steps), ['replace-backend', 'update-route']);
  });

  test('a FastCGI front that moves is replaced', () => {
    const steps = plan('', { blog: `${blog}fastcgi:\n  listen: 127.0.0.1:9001\n` }, '', { blog: `${blog}fastcgi:\n  listen: 127.0.0.1:9002\n` });
    assert.deepEqual(kinds(steps), ['replace-fastcgi-front']);
  });

  test('every step has a log line', () => {
    const steps = plan('server:\n  port: 8080\n', { blog }, 'server:\n  port: 8081\n', { shop: 'path: /shop\n' });
    const lines = describePlan({ steps, empty: false });
    assert.equal(lines.length, steps.length);
    assert.ok(lines.some((l) => l.includes('server.port changed but needs a restart')));
    assert.ok(lines.some((l) => l === 'app shop added at /shop'));
  });
});
