// Faults, part 2: scripts that misbehave, against the real CLI. A runaway CPU loop and a script that
// never returns are cut by request_timeout (504, the worker killed and replaced, on php-cgi and
// php-fpm); a memory hog hits memory_limit (PHP's 500, the worker keeps serving) and one that grows
// past max_worker_memory is recycled; a 200 MB response read slowly costs the gateway little memory;
// a stderr flood neither blocks nor bloats the log. Meanwhile a side stream of small requests on the
// same pool measures what everyone else sees. Numbers go to t.diagnostic (docs/reliability.md).

import assert from 'node:assert/strict';
import { closeSync, cpSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeProject, memoryOf, startCli, stopCli, statusJson, type CliProcess, type Project } from './helpers/front.js';
import { checkSide, send, sideStream } from './helpers/http-load.js';
import { PHP_FIXTURES } from './helpers/peers.js';
import { processGone } from './helpers/supervisor.js';

const SCRIPTS = ['hello.php', 'memory-hog.php', 'stream.php', 'rel2-cpu.php', 'rel2-hang.php', 'rel2-grow.php', 'rel2-stderr.php'];
const JSON_ACCEPT = { accept: 'application/json' };
const MiB = 1024 * 1024;
/** request_timeout of the pools that run the runaway scripts. */
const TIMEOUT_MS = 2000;

/** worker.yaml for one app: a static pool, ini settings, optionally on php-fpm; no access log (the side streams would fill it). */
function appYaml(path: string, pool: Record<string, string | number>, settings: Record<string, string> = {}, fpm = false): string {
  return [
    `path: ${path}`,
    'access_log:',
    '  path: ~',
    'slow_log:',
    '  threshold: 0',
    'php:',
    '  settings:',
    '    display_errors: "0"',
    '    log_errors: "1"',
    ...Object.entries(settings).map(([key, value]) => `    ${key}: ${JSON.stringify(value)}`),
    '  pool:',
    '    manager: static',
    ...Object.entries(pool).map(([key, value]) => `    ${key}: ${value}`),
    ...(fpm ? ['php_fpm:', '  enabled: true'] : []),
    '',
  ].join('\n');
}

type Pool = Record<string, any> & { processes: Array<Record<string, any>> };

async function poolOf(port: number, name: string): Promise<Pool> {
  const pool = (await statusJson(port, true)).pools.find((p) => p.pool === name);
  if (!pool) throw new Error(`no pool ${name} on the status page`);
  return pool as Pool;
}

/** Polls the status page until `predicate` holds for the pool; resolves with it and how long it took. */
async function waitForPool(port: number, name: string, what: string, predicate: (pool: Pool) => boolean, timeoutMs = 15_000): Promise<{ pool: Pool; ms: number }> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  for (;;) {
    const pool = await poolOf(port, name);
    if (predicate(pool)) return { pool, ms: Date.now() - started };
    if (Date.now() > deadline) throw new Error(`pool ${name}: ${what} not within ${timeoutMs} ms; now ${JSON.stringify(pool)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The pool at rest: every worker up and idle. */
const atRest = (size: number) => (pool: Pool) => pool['total processes'] === size && pool['idle processes'] === size && pool['active processes'] === 0;

/** php-fpm at rest: every child up and none running one of the app's scripts (php-fpm's status counts its own status request as active). */
const fpmAtRest = (size: number, prefix: string) => (pool: Pool) =>
  pool['total processes'] === size && pool.processes.length === size && pool.processes.every((p) => p.state === 'Idle' || !String(p['request uri']).startsWith(`${prefix}/`));

const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** What a file holds past `offset` (the lines a step added to a log). */
function readFrom(path: string, offset: number): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.max(0, size - offset));
    readSync(fd, buffer, 0, buffer.length, offset);
    return buffer.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Polls every 50 ms (reading a log file is not free) until `predicate` holds. */
async function poll(what: string, predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The app's PHP error log (logs/NAME_php_error_DATE.log in the project root); no path before it exists. */
function phpErrorLog(root: string, app: string): { path: string | null; size: number } {
  let names: string[];
  try {
    names = readdirSync(join(root, 'logs'));
  } catch {
    return { path: null, size: 0 };
  }
  const name = names.find((n) => n.startsWith(`${app}_php_error_`));
  if (!name) return { path: null, size: 0 };
  const path = join(root, 'logs', name);
  return { path, size: statSync(path).size };
}

describe('scripts that misbehave (real CLI, php-cgi and php-fpm)', () => {
  let project: Project;
  let cli: CliProcess & { port: number };

  before(async () => {
    project = await makeProject({
      server: 'server:\n  host: 127.0.0.1\n  port: 0\n  log_file: ~\n  shutdown_timeout_seconds: 5\n',
      apps: [
        // Runaway scripts, memory and stderr: four workers, so one or two misbehaving leave others for the side stream.
        // max_requests 0: the side streams send thousands of requests, and a recycle would blur which worker was replaced why.
        { name: 'faults', worker: appYaml('/faults', { max_workers: 4, max_requests: 0, request_timeout: `${TIMEOUT_MS}ms`, max_worker_memory: '64M' }, { memory_limit: '32M' }), site: false },
        // The same runaway loop on php-fpm (request_terminate_timeout).
        { name: 'fpm', worker: appYaml('/fpm', { max_workers: 2, request_timeout: `${TIMEOUT_MS}ms` }, {}, true), site: false },
        // The huge response: a timeout long enough for a slow reader.
        { name: 'bulk', worker: appYaml('/bulk', { max_workers: 3, request_timeout: '60s' }), site: false },
      ],
    });
    for (const app of ['faults', 'fpm', 'bulk']) for (const script of SCRIPTS) cpSync(join(PHP_FIXTURES, script), join(project.docRoot(app), script));
    cli = await startCli(project.root);
  });

  after(async () => {
    if (cli) await stopCli(cli);
    await project?.cleanup();
  });

  test('a runaway CPU loop and a script that never returns: 504 at request_timeout, workers killed and replaced, others served meanwhile', { timeout: 60_000 }, async (t) => {
    const { port } = cli;
    await waitForPool(port, 'faults', 'at rest', atRest(4));
    await waitForPool(port, 'fpm', 'at rest', fpmAtRest(2, '/fpm'));
    const before = await poolOf(port, 'faults');
    const fpmBefore = await poolOf(port, 'fpm');
    const stopSide = sideStream(port, '/faults/hello.php');
    try {
      const started = Date.now();
      const timed = async (path: string) => {
        const sent = await send(port, { path, headers: JSON_ACCEPT }, false, 30_000);
        return { ...sent, after: Date.now() - started };
      };
      const replies = Promise.all([timed('/faults/rel2-cpu.php'), timed('/faults/rel2-hang.php'), timed('/fpm/rel2-cpu.php')]);
      // The php-cgi processes running them, from the status page while they run.
      const { pool: running } = await waitForPool(port, 'faults', 'both scripts running', (pool) =>
        ['/faults/rel2-cpu.php', '/faults/rel2-hang.php'].every((uri) => pool.processes.some((p) => p.state === 'Running' && p['request uri'] === uri)),
      );
      const killed = running.processes.filter((p) => p.state === 'Running' && /rel2-(cpu|hang)/.test(p['request uri'])).map((p) => p.pid as number);
      assert.equal(killed.length, 2);
      const [cpu, hang, fpm] = await replies;
      const answeredAt = Date.now();

      // TQServer times a php-cgi request from dispatch. php-fpm times it from when its child began waiting
      // on the kept-alive connection (TQServer closes those idle a tenth of request_terminate_timeout,
      // 200 ms here) and checks in whole seconds: it may cut a little early, and seconds late.
      for (const [label, reply, earliest] of [
        ['php-cgi CPU loop', cpu, TIMEOUT_MS - 10],
        ['php-cgi sleep forever', hang, TIMEOUT_MS - 10],
        ['php-fpm CPU loop', fpm, TIMEOUT_MS - 350],
      ] as const) {
        t.diagnostic(`${label}: ${reply.status} after ${reply.after} ms (request_timeout ${TIMEOUT_MS} ms)`);
        assert.equal(reply.status, 504, `${label}: ${reply.body}`);
        assert.equal(JSON.parse(reply.body).error.code, 'PHP_REQUEST_TIMEOUT', label);
        assert.ok(reply.after >= earliest, `${label}: not cut before request_timeout (${reply.after} ms)`);
        assert.ok(reply.after < TIMEOUT_MS + 8000, `${label}: cut soon after request_timeout (${reply.after} ms)`);
      }

      // Recovery: both killed processes gone, the pool back to four idle workers (two of them new).
      const { pool: recovered, ms: recoveryMs } = await waitForPool(port, 'faults', 'back to 4 idle workers', (pool) => atRest(4)(pool) && killed.every((pid) => processGone(pid)));
      const pids = recovered.processes.map((p) => p.pid as number);
      assert.equal(pids.filter((pid) => killed.includes(pid)).length, 0, 'the killed workers are not in the pool');
      assert.equal(recovered.restarts.timeout - before.restarts.timeout, 2, 'two workers replaced for request_timeout');
      assert.equal(recovered.restarts.crashed, before.restarts.crashed, 'no crash counted');
      // php-fpm kills its child itself (request_terminate_timeout) and forks another; TQServer counts it.
      const fpmRecovery = await waitForPool(port, 'fpm', 'php-fpm back to 2 idle children', fpmAtRest(2, '/fpm'));
      assert.equal(fpmRecovery.pool.restarts.timeout - fpmBefore.restarts.timeout, 1, 'one php-fpm child ended at request_terminate_timeout');
      const fpmHello = await send(port, { path: '/fpm/hello.php' });
      assert.equal(fpmHello.status, 200);
      t.diagnostic(
        `recovery, from the last 504 (${answeredAt - started} ms after the start): php-cgi pool back to 4 idle workers in ${recoveryMs} ms (killed ${killed.join(', ')}, now ${pids.join(', ')}); php-fpm back to 2 idle children in ${fpmRecovery.ms} ms`,
      );
    } finally {
      await stopSide();
    }
    checkSide(t, 'runaway scripts', await stopSide());
  });

  test('memory: memory_limit ends a hog with PHP\'s 500 and the worker keeps serving; a worker grown past max_worker_memory is recycled', { timeout: 60_000 }, async (t) => {
    const { port, pid } = cli;
    await waitForPool(port, 'faults', 'at rest', atRest(4));
    const before = await poolOf(port, 'faults');
    const pidsBefore = before.processes.map((p) => p.pid as number).sort();
    const logBefore = phpErrorLog(project.root, 'faults').size;
    const stopSide = sideStream(port, '/faults/hello.php');
    try {
      const hogs = await Promise.all([1, 2, 3].map(() => send(port, { path: '/faults/memory-hog.php' })));
      for (const hog of hogs) assert.equal(hog.status, 500, `memory_limit reached: PHP's fatal error is a 500 (${hog.body.slice(0, 200)})`);
      const afterHogs = await poolOf(port, 'faults');
      assert.deepEqual(afterHogs.processes.map((p) => p.pid as number).sort(), pidsBefore, 'the same workers, none replaced');
      assert.deepEqual(afterHogs.restarts, before.restarts, 'no worker restarted');
      await poll('the fatal errors in the PHP error log', () => {
        const log = phpErrorLog(project.root, 'faults');
        return log.path !== null && readFrom(log.path, logBefore).split('Allowed memory size of 33554432 bytes exhausted').length - 1 === hogs.length;
      });
      t.diagnostic(`memory_limit 32M: ${hogs.length} hogs answered ${hogs.map((h) => h.status).join(', ')}, workers unchanged (${pidsBefore.join(', ')}), PHP's "Allowed memory size exhausted" in the error log`);

      // A script that leaves its worker large: 96 MiB of small strings, kept by Zend's chunk cache after the request.
      const grow = await send(port, { path: '/faults/rel2-grow.php?mb=96' });
      assert.equal(grow.status, 200, grow.body);
      const grown = JSON.parse(grow.body).pid as number;
      const answered = Date.now();
      const { pool: recycled, ms } = await waitForPool(port, 'faults', 'the grown worker replaced', (pool) => processGone(grown) && atRest(4)(pool) && pool.restarts.memory === before.restarts.memory + 1);
      assert.ok(!recycled.processes.some((p) => p.pid === grown));
      assert.equal(recycled.restarts.crashed, before.restarts.crashed);
      assert.match(cli.output(), new RegExp(`recycling pid ${grown}: resident memory \\d+ MiB is over max_worker_memory 64 MiB`));
      t.diagnostic(`rel2-grow.php (96 MiB held): 200 from pid ${grown}, recycled for max_worker_memory 64M; pool back to 4 idle in ${ms} ms (${Date.now() - answered} ms after the answer)`);
      t.diagnostic(`gateway RSS ${mb(memoryOf(pid).rss)}`);
    } finally {
      await stopSide();
    }
    checkSide(t, 'memory', await stopSide());
  });

  test('a 200 MB response read slowly: delivered whole, gateway memory growth bounded (< 50 MB)', { timeout: 60_000 }, async (t) => {
    const { port, pid } = cli;
    await waitForPool(port, 'bulk', 'at rest', atRest(3));
    const memBefore = memoryOf(pid);
    const stopSide = sideStream(port, '/bulk/hello.php');
    let peakRss = memBefore.rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, memoryOf(pid).rss)), 20);
    try {
      const started = Date.now();
      const SIZE_MB = 200;
      // The client reads about 100 MB/s at most: 5 ms of pause every 512 KiB, so PHP (far faster) waits on backpressure.
      const { status, bytes } = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: `/bulk/stream.php?mb=${SIZE_MB}`, agent: false }, (res) => {
          let bytes = 0;
          let sincePause = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            sincePause += chunk.length;
            if (sincePause >= 512 * 1024) {
              sincePause = 0;
              res.pause();
              setTimeout(() => res.resume(), 5);
            }
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
          res.on('error', reject);
        });
        req.on('error', reject);
      });
      const tookMs = Date.now() - started;
      clearInterval(sampler);
      const memAfter = memoryOf(pid);
      // VmHWM catches a peak between two samples, when it rose during the transfer.
      if (memAfter.hwm > memBefore.hwm) peakRss = Math.max(peakRss, memAfter.hwm);
      t.diagnostic(`${SIZE_MB} MB in ${tookMs} ms (${(SIZE_MB / (tookMs / 1000)).toFixed(0)} MB/s); gateway RSS before ${mb(memBefore.rss)}, peak ${mb(peakRss)} (+${mb(peakRss - memBefore.rss)}), after ${mb(memAfter.rss)}`);
      assert.equal(status, 200);
      assert.equal(bytes, SIZE_MB * MiB, 'every byte delivered');
      assert.ok(peakRss - memBefore.rss < 50 * MiB, `gateway memory grew by ${mb(peakRss - memBefore.rss)}, under 50 MB`);
      await waitForPool(port, 'bulk', 'at rest', atRest(3));
    } finally {
      clearInterval(sampler);
      await stopSide();
    }
    checkSide(t, 'huge response', await stopSide());
  });

  test('a stderr flood (20 MiB as error_log() lines, 20 MiB on the process\'s stderr without a line break): answered, others served, the log keeps lines and cuts the endless one', { timeout: 60_000 }, async (t) => {
    const { port, pid } = cli;
    await waitForPool(port, 'faults', 'at rest', atRest(4));
    const stopSide = sideStream(port, '/faults/hello.php');
    try {
      const LINES = (20 * MiB) / 1024;
      const cases = [
        // 20 MiB in 1 KiB lines through error_log(): FCGI_STDERR records, every line kept.
        { label: 'error_log() lines', path: '/faults/rel2-stderr.php?mb=20&via=log&line=1024', done: (added: string) => added.split('\n').filter((line) => line.includes(' fcgi_stderr ') && line.endsWith('L'.repeat(1023))).length === LINES },
        // 20 MiB on php://stderr with no line break at all: one line, cut, saying how long it was.
        { label: 'stderr, no line break', path: '/faults/rel2-stderr.php?mb=20&via=fd&line=0', done: (added: string) => added.includes('(20971520 chars)') },
      ];
      const grew: number[] = [];
      for (const { label, path, done } of cases) {
        const logBefore = phpErrorLog(project.root, 'faults').size;
        const memBefore = memoryOf(pid);
        const started = Date.now();
        const reply = await send(port, { path }, false, 30_000);
        const tookMs = Date.now() - started;
        assert.equal(reply.status, 200, `${label}: ${reply.body.slice(0, 200)}`);
        assert.match(reply.body, /stderr flooded with 20 MiB/);
        // The log is written in batches, every 100 ms: wait for what this request wrote.
        await poll(`${label}: the lines in the PHP error log`, () => {
          const log = phpErrorLog(project.root, 'faults');
          return log.path !== null && done(readFrom(log.path, logBefore));
        }, 20_000);
        const logGrowth = phpErrorLog(project.root, 'faults').size - logBefore;
        const memAfter = memoryOf(pid);
        grew.push(logGrowth);
        t.diagnostic(`${label}: answered ${reply.status} in ${tookMs} ms; PHP error log +${mb(logGrowth)}; gateway RSS ${mb(memBefore.rss)} -> ${mb(memAfter.rss)} (high-water mark ${memAfter.hwm > memBefore.hwm ? `+${mb(memAfter.hwm - memBefore.rss)}` : 'not raised'})`);
      }
      // Every 1 KiB line is kept (counted above), with its request prefix (about 150 bytes).
      assert.ok(grew[0]! >= 20 * MiB && grew[0]! < 30 * MiB, `error_log() lines: the log grew by ${mb(grew[0]!)}`);
      // The endless line is cut to 8 KiB and says how long it was.
      assert.ok(grew[1]! < 16 * 1024, `no line break: the log grew by ${grew[1]} bytes`);
      const text = readFileSync(phpErrorLog(project.root, 'faults').path!, 'utf8');
      assert.match(text, /stderr rid=\S+ pid=\d+ "GET \/faults\/rel2-stderr\.php\?mb=20&via=fd&line=0" script=\/rel2-stderr\.php: F{8192}\.\.\. \(20971520 chars\)\n/);
      await waitForPool(port, 'faults', 'at rest', atRest(4));
    } finally {
      await stopSide();
    }
    checkSide(t, 'stderr flood', await stopSide());
  });
});
