// The php-cgi pool's own timings (issue 3): how long a worker takes to spawn and answer, how fast a
// dynamic pool grows from start_workers to max_workers under a burst, and the first response of an
// ondemand pool that starts from zero.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { ResponseHandler } from '../src/fastcgi/client.js';
import { silentLogger } from '../src/log.js';
import { detectPhp, type PhpBinary } from '../src/php/binary.js';
import { PhpCgiWorker } from '../src/supervisor/worker.js';
import { WorkerPool, type PoolConfig } from '../src/supervisor/worker-pool.js';
import { REPO_ROOT } from './lib/paths.js';
import type { BenchOptions, Row, Section } from './lib/section.js';
import { median, percentileOfSorted, sortedCopy } from './lib/stats.js';

function params(script: string): Record<string, string> {
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_FILENAME: join(REPO_ROOT, 'bench', 'php', script),
    SCRIPT_NAME: `/${script}`,
    REQUEST_URI: `/${script}`,
    QUERY_STRING: '',
    REDIRECT_STATUS: '200',
    SERVER_PROTOCOL: 'HTTP/1.1',
  };
}

/** One request through anything with dispatch(); resolves when PHP's answer ended. */
function request(target: { dispatch(options: { params: Record<string, string> }, handler: ResponseHandler, info: object): unknown }, script = 'hello.php'): Promise<void> {
  return new Promise((resolve, reject) => {
    target.dispatch({ params: params(script) }, { onStdout: () => true, onStderr: () => {}, onEnd: () => resolve(), onError: reject }, {});
  });
}

function poolConfig(binary: PhpBinary, overrides: Partial<PoolConfig>): PoolConfig {
  return {
    name: 'bench',
    binary,
    manager: 'dynamic',
    maxWorkers: 10,
    startWorkers: 2,
    minSpareWorkers: 1,
    maxSpareWorkers: 10,
    maxSpawnRate: 32,
    idleTimeoutMs: 10_000,
    maxRequests: 0,
    requestTimeoutMs: 30_000,
    maxWorkerMemoryBytes: 0,
    queueLimit: 1000,
    queueTimeoutMs: 30_000,
    ...overrides,
  };
}

function distribution(label: string, values: number[], target: string): Row {
  const sorted = sortedCopy(values);
  return {
    case: label,
    values: { median: median(values), p99: percentileOfSorted(sorted, 99), max: sorted[sorted.length - 1] ?? null, samples: values.length, target },
  };
}

/**
 * PHP's own share of a spawn: `php-cgi -v` from exec to exit (it loads the same php.ini and
 * extensions as a worker, then prints its version), with no TQServer involved.
 */
async function phpAlone(binary: PhpBinary, runs: number, env: NodeJS.ProcessEnv): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const child = spawn(binary.path, ['-v'], { env, stdio: 'ignore' });
    await once(child, 'exit');
    times.push(performance.now() - t0);
  }
  return times;
}

/** How many extension .ini files php-cgi reads at start (php_ini_scanned_files()). */
async function extensionIniCount(binary: PhpBinary, dir: string): Promise<number> {
  const script = join(dir, 'scanned.php');
  await writeFile(script, '<?php $f = php_ini_scanned_files(); echo $f ? count(explode(",", $f)) : 0;');
  const child = spawn(binary.path, ['-q', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await once(child, 'exit');
  return Number.parseInt(out, 10) || 0;
}

async function spawnTimes(binary: PhpBinary, runs: number, dir: string, env: Record<string, string> = {}): Promise<{ ready: number[]; firstResponse: number[] }> {
  const ready: number[] = [];
  const firstResponse: number[] = [];
  for (let i = 0; i < runs; i++) {
    const worker = new PhpCgiWorker({ id: i, pool: 'bench', binary, listen: { path: join(dir, `spawn-${i}.sock`) }, env, log: silentLogger() });
    const t0 = performance.now();
    await worker.start();
    ready.push(performance.now() - t0);
    await request(worker);
    firstResponse.push(performance.now() - t0);
    await worker.stop('stopped');
  }
  return { ready, firstResponse };
}

/** A dynamic pool at start_workers 2 gets a burst of 40 requests of 50 ms: time until 10 workers run. */
async function growth(binary: PhpBinary): Promise<number> {
  const pool = new WorkerPool(poolConfig(binary, { manager: 'dynamic', startWorkers: 2, maxWorkers: 10 }), silentLogger());
  await pool.start();
  try {
    const t0 = performance.now();
    const burst = Array.from({ length: 40 }, () => request(pool, 'sleep.php'));
    await pool.waitFor((s) => s.total - s.starting === 10, 10_000);
    const elapsed = performance.now() - t0;
    await Promise.all(burst);
    return elapsed;
  } finally {
    await pool.stop(2000);
  }
}

/** An ondemand pool with no worker answers its first request (spawn included). */
async function ondemandFirst(binary: PhpBinary): Promise<number> {
  const pool = new WorkerPool(poolConfig(binary, { manager: 'ondemand', maxWorkers: 4 }), silentLogger());
  await pool.start();
  try {
    const t0 = performance.now();
    await request(pool);
    return performance.now() - t0;
  } finally {
    await pool.stop(2000);
  }
}

export const poolSection: Section = {
  name: 'pool',
  title: 'php-cgi pool: spawn, growth, ondemand',
  description:
    "TQServer's own php-cgi process manager, no HTTP: a worker's time from spawn to accepting connections and to its first answer (hello.php), next to `php-cgi -v` run alone (PHP's own start: php.ini and every extension loaded), both with the machine's extension .ini files and with none (PHP_INI_SCAN_DIR empty), so TQServer's share is the difference; a dynamic pool (start_workers 2, max_workers 10) hit by 40 concurrent 50 ms requests, timed until all 10 workers run; an ondemand pool's first answer from zero workers. Aims (issue 3): spawn < 30 ms, growth to 10 workers < 1 s, ondemand first response < 100 ms.",
  columns: [
    { key: 'median', label: 'median ms', digits: 1 },
    { key: 'p99', label: 'p99 ms', digits: 1 },
    { key: 'max', label: 'max ms', digits: 1 },
    { key: 'samples', label: 'samples' },
    { key: 'target', label: 'aim' },
  ],
  async run(options: BenchOptions): Promise<Row[]> {
    const binary = await detectPhp('php-cgi');
    const dir = await mkdtemp(join(tmpdir(), 'tqserver-bench-pool-'));
    try {
      const runs = options.quick ? 10 : 40;
      options.log(`pool: spawning ${runs} workers one after another`);
      const spawned = await spawnTimes(binary, runs, dir);
      options.log(`pool: the same with PHP_INI_SCAN_DIR empty (no extension .ini files), and php-cgi -v alone`);
      const lean = await spawnTimes(binary, runs, dir, { PHP_INI_SCAN_DIR: '' });
      const alone = await phpAlone(binary, runs, { PATH: process.env.PATH ?? '' });
      const aloneLean = await phpAlone(binary, runs, { PATH: process.env.PATH ?? '', PHP_INI_SCAN_DIR: '' });
      const rounds = options.quick ? 3 : 8;
      options.log(`pool: dynamic growth, ${rounds} rounds`);
      const grow: number[] = [];
      for (let i = 0; i < rounds; i++) grow.push(await growth(binary));
      options.log(`pool: ondemand first response, ${rounds} rounds`);
      const first: number[] = [];
      for (let i = 0; i < rounds; i++) first.push(await ondemandFirst(binary));
      const ini = await extensionIniCount(binary, dir);
      return [
        distribution(`worker spawn to accepting (${ini} extension .ini files)`, spawned.ready, '< 30 ms'),
        distribution('worker spawn to first answer', spawned.firstResponse, ''),
        distribution(`php-cgi -v alone, no TQServer (${ini} extension .ini files): PHP's own start`, alone, ''),
        distribution('worker spawn to accepting, PHP_INI_SCAN_DIR empty', lean.ready, '< 30 ms'),
        distribution('php-cgi -v alone, PHP_INI_SCAN_DIR empty', aloneLean, ''),
        distribution('dynamic pool 2 -> 10 workers under a burst', grow, '< 1000 ms'),
        distribution('ondemand pool: first answer from zero', first, '< 100 ms'),
      ];
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
