// One php-cgi worker against the real binary: its socket, its environment, one process, the stop
// ladder, retiring, exit classification, its output in the log, and its counters.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { FastCGIAbortError, FastCGIConnectionError, WorkerStartError, httpStatusFor } from '../src/errors.js';
import type { Address } from '../src/fastcgi/address.js';
import { memoryLogger, type LogRecord } from '../src/log.js';
import type { PhpBinary } from '../src/php/binary.js';
import { PhpCgiWorker, type WorkerExit, type WorkerOptions } from '../src/supervisor/worker.js';
import type { WorkerState } from '../src/supervisor/worker-state.js';
import { freePort, startPhpCgi, tempDir } from './helpers/peers.js';
import { childrenOf, phpCgi, processGone, request, start, until, waitForState } from './helpers/supervisor.js';

let binary: PhpBinary;
let dir: { path: string; cleanup: () => Promise<void> };
let nextSocket = 1;
const workers: PhpCgiWorker[] = [];

before(async () => {
  binary = await phpCgi();
  dir = await tempDir('tqserver-worker-');
});

afterEach(async () => {
  // A failed test must not leave php-cgi behind.
  await Promise.all(workers.splice(0).map((worker) => worker.kill('stopped')));
});

after(() => dir.cleanup());

function socket(): Address {
  return { path: join(dir.path, `w${nextSocket++}.sock`) };
}

/** A worker with a memory logger, recording its state changes; started unless `start: false`. */
async function worker(options: Partial<WorkerOptions> = {}, startIt = true) {
  const logger = memoryLogger();
  const states: Array<`${WorkerState}->${WorkerState}`> = [];
  const w = new PhpCgiWorker({ id: workers.length + 1, pool: 'test', binary, listen: socket(), log: logger.log, ...options });
  w.on('state', (_: PhpCgiWorker, from: WorkerState, to: WorkerState) => states.push(`${from}->${to}`));
  workers.push(w);
  if (startIt) await w.start();
  return { w, logger, states };
}

describe('starting', () => {
  test('on a private unix socket: idle, serving over one kept-alive connection', async () => {
    const { w, states } = await worker();
    assert.equal(w.state, 'idle');
    assert.ok(w.pid > 0);
    assert.ok('path' in w.listen && existsSync(w.listen.path), 'php-cgi created its socket');
    const hello = await request(w, 'hello.php');
    assert.equal(hello.body, 'Hello from PHP\n');
    assert.equal(hello.result.appStatus, 0);
    const first = await request(w, 'pid.php');
    const second = await request(w, 'pid.php');
    assert.equal(Number(first.body), w.pid);
    assert.equal(Number(second.body), w.pid);
    assert.equal(w.requests, 3);
    assert.deepEqual(states, ['starting->idle', ...Array(3).fill(['idle->active', 'active->idle']).flat()]);
  });

  test('on a TCP port', async () => {
    const port = await freePort();
    const { w } = await worker({ listen: { host: '127.0.0.1', port } });
    assert.deepEqual(w.listen, { host: '127.0.0.1', port });
    assert.equal(Number((await request(w, 'pid.php')).body), w.pid);
    const exit = await w.stop('stopped');
    assert.equal(exit.reason, 'stopped');
  });

  test('the configured env is all PHP sees: not TQServer\'s own environment', async () => {
    process.env.TQSERVER_TEST_SECRET = 'must not leak';
    try {
      const { w } = await worker({ env: { APP_ENV: 'test', DATABASE_URL: 'mysql://db/app' } });
      const env = JSON.parse((await request(w, 'env.php')).body) as Record<string, string>;
      assert.equal(env.APP_ENV, 'test');
      assert.equal(env.DATABASE_URL, 'mysql://db/app');
      assert.equal(env.PHP_FCGI_CHILDREN, '0');
      assert.equal(env.PHP_FCGI_MAX_REQUESTS, '0');
      assert.equal(env.TQSERVER_TEST_SECRET, undefined);
      assert.equal(env.TQSERVER_TEST, undefined, 'the test runner sets TQSERVER_TEST in our environment');
      assert.equal(env.PATH, undefined);
      assert.deepEqual(Object.keys(env).sort(), ['APP_ENV', 'DATABASE_URL', 'PHP_FCGI_CHILDREN', 'PHP_FCGI_MAX_REQUESTS']);
    } finally {
      delete process.env.TQSERVER_TEST_SECRET;
    }
  });

  test('the configured env cannot turn php-cgi\'s own forking or recycling back on', async () => {
    const { w } = await worker({ env: { PHP_FCGI_CHILDREN: '4', PHP_FCGI_MAX_REQUESTS: '2' } });
    for (let i = 0; i < 4; i++) assert.equal(Number((await request(w, 'pid.php')).body), w.pid);
    assert.deepEqual(childrenOf(w.pid), []);
  });

  test('PHP_FCGI_CHILDREN=0: exactly one php-cgi process, which serves the requests itself', async () => {
    const { w } = await worker();
    assert.equal(Number((await request(w, 'pid.php')).body), w.pid);
    assert.deepEqual(childrenOf(w.pid), []);
    // The same check sees php-cgi's children when it is allowed to fork (so the check is not vacuous).
    const forking = await startPhpCgi({ env: { PHP_FCGI_CHILDREN: '2' } });
    try {
      await until('php-cgi to fork 2 children', () => childrenOf(forking.pid).length === 2);
    } finally {
      await forking.stop('SIGTERM');
    }
  });

  test('settings reach php-cgi as -d, cgi.fix_pathinfo=0 by default', async () => {
    const { w } = await worker({ settings: { memory_limit: '24M' } });
    const hog = await request(w, 'memory-hog.php');
    assert.match(hog.stderr + hog.body, /Allowed memory size of 25165824 bytes exhausted/);
  });

  test('a binary that exits at once: start() rejects with WorkerStartError, the worker is crashed', async () => {
    const fake = join(dir.path, 'broken-php-cgi');
    await writeFile(fake, '#!/bin/sh\necho "php-cgi: cannot load extension" >&2\nexit 1\n');
    await chmod(fake, 0o755);
    const { w, logger } = await worker({ binary: { ...binary, path: fake } }, false);
    await assert.rejects(w.start(), (error: unknown) => {
      assert.ok(error instanceof WorkerStartError);
      assert.equal(error.code, 'WORKER_START_FAILED');
      assert.match(error.message, /pool test: php-cgi exited \(code 1\) before accepting on unix:/);
      return true;
    });
    const exit = await w.exited;
    assert.deepEqual({ reason: exit.reason, code: exit.code }, { reason: 'crashed', code: 1 });
    assert.equal(w.state, 'crashed');
    await until('the stderr line in the log', () => logger.find('php-cgi: cannot load extension') !== undefined);
  });

  test('a binary that does not exist: start() rejects, the worker is crashed', async () => {
    const { w } = await worker({ binary: { ...binary, path: join(dir.path, 'no-such-php-cgi') } }, false);
    await assert.rejects(w.start(), /cannot run .*no-such-php-cgi: spawn .* ENOENT/);
    assert.equal(w.state, 'crashed');
    assert.equal((await w.exited).reason, 'crashed');
  });
});

describe('the stop ladder', () => {
  test('SIGTERM ends an idle worker at once: exit code 0, not forced, socket removed', async () => {
    const { w, states } = await worker();
    const pid = w.pid;
    const started = Date.now();
    const exit = await w.stop('stopped');
    assert.ok(Date.now() - started < 1000);
    assert.deepEqual(exit, { pid, code: 0, signal: null, reason: 'stopped', forced: false } satisfies WorkerExit);
    assert.equal(w.state, 'exited');
    assert.deepEqual(states, ['starting->idle', 'idle->stopping', 'stopping->exited']);
    assert.ok(processGone(pid));
    assert.ok('path' in w.listen && !existsSync(w.listen.path), 'the socket file is gone');
    assert.equal(await w.stop('stopped'), exit, 'stop() is idempotent');
  });

  test('SIGTERM while busy: php-cgi cuts the sleep short, answers, then exits 0', async () => {
    const { w } = await worker();
    const running = start(w, 'busy.php?ms=5000');
    const pid = Number((await running.firstBody).trim());
    assert.equal(pid, w.pid);
    const started = Date.now();
    const exit = await w.stop('stopped');
    const response = await running.done;
    assert.ok(Date.now() - started < 2000, 'the 5 s sleep was interrupted');
    assert.match(response.body, /slept 5000 ms/);
    assert.deepEqual({ code: exit.code, signal: exit.signal, forced: exit.forced }, { code: 0, signal: null, forced: false });
  });

  test('a script that outlives SIGTERM ends with SIGKILL after stopTimeoutMs: exit.forced', async () => {
    const { w, logger } = await worker({ stopTimeoutMs: 200 });
    const running = start(w, 'spin.php');
    await running.firstBody;
    const started = Date.now();
    const exit = await w.stop('stopped');
    assert.ok(Date.now() - started >= 190);
    assert.deepEqual({ signal: exit.signal, forced: exit.forced, reason: exit.reason }, { signal: 'SIGKILL', forced: true, reason: 'stopped' });
    assert.equal(w.state, 'exited');
    await assert.rejects(running.done, (error: unknown) => error instanceof FastCGIConnectionError && error.code === 'FCGI_PEER_CLOSED');
    const line = logger.find('did not exit within 200 ms of SIGTERM; sending SIGKILL');
    assert.ok(line);
    assert.equal(line.pid, exit.pid);
    assert.equal(line.state, 'stopping');
  });

  test('retire() while active waits for the request to end, then stops', async () => {
    const { w, states } = await worker();
    const running = start(w, 'sleep.php?ms=300');
    await waitForState(w, 'active');
    w.retire('recycled');
    assert.equal(w.state, 'retiring');
    const response = await running.done;
    assert.equal(response.body, 'slept 300 ms\n');
    const exit = await w.exited;
    assert.deepEqual({ reason: exit.reason, code: exit.code, forced: exit.forced }, { reason: 'recycled', code: 0, forced: false });
    assert.deepEqual(states, ['starting->idle', 'idle->active', 'active->retiring', 'retiring->stopping', 'stopping->exited']);
    assert.equal(w.stats().lastRequestMs! >= 300, true);
  });

  test('retire() while idle stops at once', async () => {
    const { w } = await worker();
    w.retire('idle');
    assert.equal(w.state, 'stopping');
    assert.equal((await w.exited).reason, 'idle');
  });

  test('a worker stopped while starting never becomes idle', async () => {
    const { w } = await worker({}, false);
    const starting = assert.rejects(w.start(), /pool test: (worker was stopped while starting|php-cgi pid \d+ did not accept)/);
    const exit = await w.stop('stopped');
    await starting;
    assert.equal(exit.reason, 'stopped');
    assert.equal(w.state, 'exited');
  });
});

describe('exit classification', () => {
  test('killed from outside while idle: crashed, with an error log line', async () => {
    const { w, logger } = await worker();
    const pid = w.pid;
    process.kill(pid, 'SIGKILL');
    const exit = await w.exited;
    assert.deepEqual(exit, { pid, code: null, signal: 'SIGKILL', reason: 'crashed', forced: false } satisfies WorkerExit);
    assert.equal(w.state, 'crashed');
    const line = logger.find(`php-cgi pid ${pid} exited unexpectedly (SIGKILL) while idle`);
    assert.ok(line);
    assert.equal(line.level, 50);
  });

  test('killed mid-request: that request fails with FCGI_PEER_CLOSED (502), the worker is crashed', async () => {
    const { w } = await worker();
    const running = start(w, 'busy.php?ms=5000');
    const pid = Number((await running.firstBody).trim());
    process.kill(pid, 'SIGKILL');
    await assert.rejects(running.done, (error: unknown) => {
      assert.ok(error instanceof FastCGIConnectionError);
      assert.equal(error.code, 'FCGI_PEER_CLOSED');
      assert.equal(httpStatusFor(error), 502);
      return true;
    });
    const exit = await w.exited;
    assert.equal(exit.reason, 'crashed');
    assert.equal(exit.signal, 'SIGKILL');
  });

  test('kill(timeout): SIGKILL at once, reason timeout, forced', async () => {
    const { w } = await worker();
    const running = start(w, 'spin.php');
    await running.firstBody;
    const exit = await w.kill('timeout');
    assert.deepEqual({ reason: exit.reason, signal: exit.signal, forced: exit.forced }, { reason: 'timeout', signal: 'SIGKILL', forced: true });
    await assert.rejects(running.done, { code: 'FCGI_CLIENT_CLOSED' });
  });

  test('an aborted request that ends within abortGraceMs: the worker reconnects and stays (no crash)', async () => {
    const { w, states } = await worker({ abortGraceMs: 3000 });
    const pid = w.pid;
    const running = start(w, 'busy.php?ms=200');
    await running.firstBody;
    running.controller.abort();
    await assert.rejects(running.done, (error: unknown) => error instanceof FastCGIAbortError && httpStatusFor(error) === 499);
    await waitForState(w, 'idle');
    assert.equal(Number((await request(w, 'pid.php')).body), pid);
    assert.deepEqual(states, ['starting->idle', 'idle->active', 'active->idle', 'idle->active', 'active->idle']);
  });

  test('an aborted request that does not end within abortGraceMs: the worker is killed, reason aborted', async () => {
    const { w } = await worker({ abortGraceMs: 100 });
    const running = start(w, 'spin.php');
    await running.firstBody;
    running.controller.abort(new Error('client went away'));
    await assert.rejects(running.done, /request aborted by the caller: client went away/);
    const exit = await w.exited;
    assert.deepEqual({ reason: exit.reason, signal: exit.signal }, { reason: 'aborted', signal: 'SIGKILL' });
  });

  test('a request whose signal was already aborted leaves the worker idle', async () => {
    const { w } = await worker();
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(request(w, 'pid.php', { signal: controller.signal }), FastCGIAbortError);
    assert.equal(w.state, 'idle');
    assert.equal(w.requests, 0);
    assert.equal(Number((await request(w, 'pid.php')).body), w.pid);
  });

  test('dispatch on a worker that is not idle throws, naming its state', async () => {
    const { w } = await worker();
    const running = start(w, 'sleep.php?ms=100');
    const ignore = { onStdout: () => true, onStderr: () => {}, onEnd: () => {}, onError: () => {} };
    assert.throws(() => w.dispatch({ params: {} }, ignore), new RegExp(`worker \\d+ \\(pid ${w.pid}\\) is active, not idle`));
    await running.done;
  });
});

describe('output and counters', () => {
  test("the process's stdout and stderr lines go to the log with its pid", async () => {
    const { w, logger } = await worker();
    const response = await request(w, 'stdio.php?tag=abc');
    assert.equal(response.body, 'wrote abc\n');
    await until('both lines in the log', () => logger.find('stdout abc') !== undefined && logger.find('stderr abc') !== undefined);
    const out = logger.find('stdout abc') as LogRecord;
    const err = logger.find('stderr abc') as LogRecord;
    assert.deepEqual({ pid: out.pid, pool: out.pool, stream: out.stream, level: out.level }, { pid: w.pid, pool: 'test', stream: 'stdout', level: 30 });
    assert.deepEqual({ pid: err.pid, pool: err.pool, stream: err.stream, level: err.level }, { pid: w.pid, pool: 'test', stream: 'stderr', level: 40 });
  });

  test('state changes are logged with the state names', async () => {
    const { w, logger } = await worker();
    const line = logger.find('worker starting -> idle');
    assert.ok(line);
    assert.deepEqual({ from: line.from, to: line.to, pid: line.pid }, { from: 'starting', to: 'idle', pid: w.pid });
  });

  test('stats: requests, uptime, idle time, request durations, resident memory', async () => {
    let now = 1_000_000;
    const { w } = await worker({ clock: () => now });
    now += 500;
    let stats = w.stats(true);
    assert.equal(stats.state, 'idle');
    assert.equal(stats.pid, w.pid);
    assert.equal(stats.requests, 0);
    assert.equal(stats.uptimeMs, 500);
    assert.equal(stats.idleMs, 500);
    assert.equal(stats.lastRequestMs, null);
    assert.ok(stats.rssBytes !== null && stats.rssBytes > 1024 * 1024, `rss ${stats.rssBytes}`);
    assert.equal(w.stats().rssBytes, null, 'memory is read only when asked for');

    const running = start(w, 'sleep.php?ms=50');
    now += 40;
    stats = w.stats();
    assert.equal(stats.state, 'active');
    assert.equal(stats.idleMs, 0);
    assert.equal(stats.requestDurationMs, 40);
    assert.deepEqual(stats.request, { method: 'GET', uri: '/sleep.php?ms=50', script: 'sleep.php?ms=50' });
    now += 35;
    await running.done;
    now += 1000;
    stats = w.stats();
    assert.equal(stats.state, 'idle');
    assert.equal(stats.requests, 1);
    assert.equal(stats.lastRequestMs, 75);
    assert.equal(stats.requestDurationMs, 75);
    assert.equal(stats.idleMs, 1000);
    assert.equal(stats.uptimeMs, 1575);
  });
});
