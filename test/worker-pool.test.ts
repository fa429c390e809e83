// A pool of real php-cgi workers: each pm mode over time, recycling under load, the queue, faults
// from misbehaving scripts, the crash-loop guard, memory recycling, and stopping with nothing left.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { FastCGIAbortError, FastCGIConnectionError, PhpTimeoutError, PoolUnavailableError, TQServerError, WorkerStartError, httpStatusFor } from '../src/errors.js';
import { memoryLogger } from '../src/log.js';
import type { PhpBinary } from '../src/php/binary.js';
import type { PhpCgiWorker, WorkerExit } from '../src/supervisor/worker.js';
import { WorkerPool, type PoolConfig, type WorkerLease } from '../src/supervisor/worker-pool.js';
import { freePort, tempDir } from './helpers/peers.js';
import { phpCgi, processGone, request, start, until, type Collected } from './helpers/supervisor.js';

let binary: PhpBinary;
let dir: { path: string; cleanup: () => Promise<void> };
const pools: WorkerPool[] = [];

before(async () => {
  binary = await phpCgi();
  dir = await tempDir('tqserver-pool-');
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.stop(0)));
});

after(() => dir.cleanup());

interface Tracked {
  pool: WorkerPool;
  logger: ReturnType<typeof memoryLogger>;
  /** Every pid the pool ever had, in the order they became ready. */
  pids: number[];
  exits: Array<WorkerExit & { at: number }>;
}

function config(overrides: Partial<PoolConfig> = {}): PoolConfig {
  return {
    name: 'test',
    binary,
    manager: 'static',
    maxWorkers: 2,
    startWorkers: 1,
    minSpareWorkers: 1,
    maxSpareWorkers: 2,
    idleTimeoutMs: 10_000,
    maxSpawnRate: 8,
    maxRequests: 0,
    requestTimeoutMs: 0,
    maxWorkerMemoryBytes: 0,
    queueLimit: 1000,
    queueTimeoutMs: 0,
    stopTimeoutMs: 2000,
    ...overrides,
  };
}

async function pool(overrides: Partial<PoolConfig> = {}, startIt = true): Promise<Tracked> {
  const logger = memoryLogger('info');
  const p = new WorkerPool(config(overrides), logger.log);
  const tracked: Tracked = { pool: p, logger, pids: [], exits: [] };
  p.on('worker-ready', (worker: PhpCgiWorker) => tracked.pids.push(worker.pid));
  p.on('worker-exit', (_: PhpCgiWorker, exit: WorkerExit) => tracked.exits.push({ ...exit, at: Date.now() }));
  pools.push(p);
  if (startIt) await p.start();
  return tracked;
}

/** Asserts an error is a typed TQServerError with this code and HTTP status. */
function typed(code: string, status: number, type: new (...args: never[]) => TQServerError = TQServerError) {
  return (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    assert.equal((error as TQServerError).code, code);
    assert.equal(httpStatusFor(error), status);
    return true;
  };
}

/** Runs `count` requests with at most `concurrency` at a time; returns every outcome. */
async function load(target: WorkerPool, script: string, count: number, concurrency: number) {
  const results: Array<Collected | Error> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next += 1;
        results.push(await request(target, script).catch((error: Error) => error));
      }
    }),
  );
  return results;
}

describe('process manager modes over time', () => {
  test('static: max_workers at start, a killed worker replaced, still max_workers', async () => {
    const { pool: p, pids } = await pool({ manager: 'static', maxWorkers: 3 });
    assert.deepEqual({ ...p.stats(), startTime: 0 }, {
      pool: 'test',
      processManager: 'static',
      startTime: 0,
      acceptedRequests: 0,
      queueLength: 0,
      maxQueueLength: 0,
      queueLimit: 1000,
      idle: 3,
      active: 0,
      starting: 0,
      total: 3,
      maxActive: 0,
      maxWorkersReached: 0,
      restarts: { recycled: 0, memory: 0, idle: 0, stopped: 0, timeout: 0, aborted: 0, crashed: 0 },
      crashLoop: false,
    });
    process.kill(pids[0]!, 'SIGKILL');
    const stats = await p.waitFor((s) => s.restarts.crashed === 1 && s.idle === 3);
    assert.equal(stats.total, 3);
    assert.equal(pids.length, 4);
    const served = new Set((await load(p, 'pid.php', 12, 3)).map((r) => Number((r as Collected).body)));
    assert.ok([...served].every((pid) => pids.slice(1).includes(pid)), 'only live workers served');
    assert.equal(p.stats().total, 3);
  });

  test('dynamic: grows from start_workers toward max_workers under a burst, then trims to max_spare one per second', async () => {
    const { pool: p, exits, logger } = await pool({ manager: 'dynamic', maxWorkers: 4, startWorkers: 1, minSpareWorkers: 1, maxSpareWorkers: 2 });
    const reached: number[] = [];
    p.on('max-workers-reached', (_name, maxWorkers) => reached.push(maxWorkers));
    assert.equal(p.stats().total, 1);
    // min_spare 1: the one worker is idle, so nothing more is started yet.
    await p.waitFor((s) => s.idle === 1 && s.starting === 0);
    // Enough work that the queue is not empty yet when the fourth worker is up, on a loaded machine too.
    const burst = Array.from({ length: 16 }, () => request(p, 'sleep.php?ms=400'));
    const grown = await p.waitFor((s) => s.total === 4);
    assert.equal(grown.total, 4);
    const responses = await Promise.all(burst);
    assert.ok(responses.every((r) => r.body === 'slept 400 ms\n'));
    assert.equal(p.stats().maxWorkersReached, 1, 'one episode');
    assert.equal(p.stats().maxActive, 4);
    // One event per episode; the operator hears of it as advice (observe/advice.ts, at most a line a
    // minute), so the pool's own line is debug and an info log has none.
    assert.deepEqual(reached, [4]);
    assert.equal(logger.records.filter((r) => r.msg.includes('reached max_workers')).length, 0);
    const trimmed = await p.waitFor((s) => s.total === 2 && s.restarts.idle === 2, 5000);
    assert.deepEqual({ idle: trimmed.idle, idleRestarts: trimmed.restarts.idle }, { idle: 2, idleRestarts: 2 });
    const idleExits = exits.filter((e) => e.reason === 'idle');
    assert.ok(idleExits[1]!.at - idleExits[0]!.at >= 900, `trimmed ${idleExits[1]!.at - idleExits[0]!.at} ms apart`);
    assert.equal(p.stats().total, 2, 'no further trimming below max_spare');
  });

  test('ondemand: no worker at start, one per waiting request, none again after idle_timeout', async () => {
    const { pool: p, pids } = await pool({ manager: 'ondemand', maxWorkers: 3, idleTimeoutMs: 300 });
    assert.equal(p.stats().total, 0);
    const burst = Array.from({ length: 3 }, () => request(p, 'sleep.php?ms=200'));
    await p.waitFor((s) => s.total === 3);
    await Promise.all(burst);
    const started = Date.now();
    const gone = await p.waitFor((s) => s.total === 0 && s.restarts.idle === 3);
    assert.ok(Date.now() - started >= 250);
    assert.equal(gone.restarts.idle, 3);
    assert.ok(pids.every(processGone));
    // A new request starts a new worker.
    assert.equal(Number((await request(p, 'pid.php')).body), pids[3]);
    assert.equal(p.stats().total, 1);
  });

  test('workers on TCP ports from port_range', async () => {
    const low = await freePort();
    const { pool: p } = await pool({ manager: 'static', maxWorkers: 2, transport: 'tcp', portRange: [low, low + 10] });
    const addresses = p.workerStats().map((w) => w.address);
    assert.equal(addresses.length, 2);
    for (const address of addresses) {
      const port = Number(/^127\.0\.0\.1:(\d+)$/.exec(address)?.[1]);
      assert.ok(port >= low && port <= low + 10, address);
    }
    const served = await load(p, 'pid.php', 6, 2);
    assert.ok(served.every((r) => !(r instanceof Error)));
  });
});

describe('recycling', () => {
  test('max_requests: hundreds of concurrent requests, none failed, pids changed, recycles counted', async () => {
    const { pool: p, pids } = await pool({ manager: 'static', maxWorkers: 2, maxRequests: 5 });
    const results = await load(p, 'pid.php', 300, 8);
    const failures = results.filter((r) => r instanceof Error);
    assert.deepEqual(failures, []);
    const perPid = new Map<number, number>();
    for (const r of results as Collected[]) perPid.set(Number(r.body), (perPid.get(Number(r.body)) ?? 0) + 1);
    assert.ok(perPid.size >= 60, `${perPid.size} workers served 300 requests`);
    assert.ok([...perPid.values()].every((n) => n <= 5), 'no worker served more than max_requests');
    const stats = await p.waitFor((s) => s.restarts.recycled >= 60 && s.idle === 2);
    assert.equal(stats.acceptedRequests, 300);
    assert.equal(stats.restarts.crashed, 0);
    assert.ok(pids.length >= 62);
  });

  test('max_worker_memory: a worker over the limit after a request is recycled, a fresh one is not', async () => {
    // A fresh php-cgi is well over 1 MiB resident: every worker is recycled after its first request.
    const { pool: p, pids, logger } = await pool({ manager: 'static', maxWorkers: 1, maxWorkerMemoryBytes: 1024 * 1024 });
    const first = Number((await request(p, 'pid.php')).body);
    const stats = await p.waitFor((s) => s.restarts.memory === 1 && s.idle === 1);
    assert.equal(stats.restarts.crashed, 0);
    assert.notEqual(pids[1], first);
    assert.ok(logger.find(new RegExp(`recycling pid ${first}: resident memory \\d+ MiB is over max_worker_memory 1 MiB`)));
    assert.equal(Number((await request(p, 'pid.php')).body), pids[1]);
    await p.waitFor((s) => s.restarts.memory === 2 && s.idle === 1);
    assert.equal(pids.length, 3, 'one new worker per request, no respawn loop');
  });
});

describe('the queue', () => {
  test('queue limit: the next request gets POOL_QUEUE_FULL (503) at once', async () => {
    const { pool: p } = await pool({ manager: 'static', maxWorkers: 1, queueLimit: 2 });
    const lease = await p.acquire();
    const queued = [request(p, 'pid.php'), request(p, 'pid.php')];
    assert.equal(p.stats().queueLength, 2);
    await assert.rejects(request(p, 'pid.php'), typed('POOL_QUEUE_FULL', 503, PoolUnavailableError));
    await assert.rejects(p.acquire(), /pool test: all workers busy and the queue is full \(2 waiting, queue_limit 2\)/);
    lease.release();
    for (const response of await Promise.all(queued)) assert.equal(Number(response.body), lease.worker.pid);
    assert.equal(p.stats().maxQueueLength, 2);
    assert.equal(p.stats().maxWorkersReached, 1);
  });

  test('queue timeout: a request not served in time gets POOL_QUEUE_TIMEOUT (503)', async () => {
    const { pool: p } = await pool({ manager: 'static', maxWorkers: 1, queueTimeoutMs: 150 });
    const timeouts: number[] = [];
    p.on('queue-timeout', (_: string, waitedMs: number) => timeouts.push(waitedMs));
    const lease = await p.acquire();
    const started = Date.now();
    await assert.rejects(request(p, 'pid.php'), typed('POOL_QUEUE_TIMEOUT', 503, PoolUnavailableError));
    assert.ok(Date.now() - started >= 140);
    assert.equal(timeouts.length, 1);
    assert.equal(p.stats().queueLength, 0);
    lease.release();
    assert.equal(Number((await request(p, 'pid.php')).body), lease.worker.pid);
  });

  test('acquire()/release(): waiters are served first in, first out', async () => {
    const { pool: p } = await pool({ manager: 'static', maxWorkers: 1 });
    const first = await p.acquire();
    const order: string[] = [];
    const waiting = ['a', 'b', 'c'].map((name) => p.acquire().then((lease) => (order.push(name), lease)));
    assert.equal(p.stats().queueLength, 3);
    first.release();
    const a = await waiting[0]!;
    assert.deepEqual(order, ['a']);
    // A lease used for a request goes back to the pool by itself when the request ends.
    assert.equal(Number((await request(a, 'pid.php')).body), first.worker.pid);
    const b = await waiting[1]!;
    b.release();
    const c = await waiting[2]!;
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.throws(() => a.dispatch({ params: {} }, { onStdout: () => true, onStderr() {}, onEnd() {}, onError() {} }), /lease of pool test worker \d+ was already used/);
    c.release();
    c.release();
    assert.equal(p.stats().idle, 1);
  });

  test('a waiter whose signal aborts leaves the queue; an aborted request never takes a worker', async () => {
    const { pool: p } = await pool({ manager: 'static', maxWorkers: 1 });
    const lease = await p.acquire();
    const controller = new AbortController();
    const waiting = p.acquire(controller.signal);
    const queuedRequest = request(p, 'pid.php', { signal: controller.signal });
    assert.equal(p.stats().queueLength, 2);
    controller.abort(new Error('client went away'));
    await assert.rejects(waiting, typed('FCGI_REQUEST_ABORTED', 499, FastCGIAbortError));
    await assert.rejects(queuedRequest, /request aborted by the caller: client went away/);
    assert.equal(p.stats().queueLength, 0);
    await assert.rejects(p.acquire(controller.signal), FastCGIAbortError);
    lease.release();
    assert.equal(p.stats().idle, 1);
    assert.equal(Number((await request(p, 'pid.php')).body), lease.worker.pid);
  });
});

describe('faults', () => {
  test('a worker SIGKILLed mid-request: that request fails typed (502), the other does not, the pool is back to size', async () => {
    const { pool: p, pids } = await pool({ manager: 'static', maxWorkers: 2 });
    const victim = start(p, 'busy.php?ms=5000');
    const bystander = start(p, 'busy.php?ms=600');
    const victimPid = Number((await victim.firstBody).trim());
    const bystanderPid = Number((await bystander.firstBody).trim());
    assert.notEqual(victimPid, bystanderPid);
    process.kill(victimPid, 'SIGKILL');
    await assert.rejects(victim.done, typed('FCGI_PEER_CLOSED', 502, FastCGIConnectionError));
    assert.equal((await bystander.done).body, `${bystanderPid}\nslept 600 ms\n`);
    const stats = await p.waitFor((s) => s.idle === 2 && s.restarts.crashed === 1);
    assert.equal(stats.total, 2);
    assert.equal(pids.length, 3);
    assert.ok(processGone(victimPid));
    const served = await load(p, 'pid.php', 4, 2);
    assert.ok(served.every((r) => !(r instanceof Error)));
  });

  test('a worker that can no longer be reached while idle: its request goes to another worker instead of failing', async () => {
    const { pool: p, logger } = await pool({ manager: 'static', maxWorkers: 2 });
    const leases = [await p.acquire(), await p.acquire()];
    const listen = leases[0]!.worker.listen;
    const brokenPid = leases[0]!.worker.pid;
    for (const lease of leases) lease.release();
    assert.ok('path' in listen);
    // As when php-cgi died while idle and the pool has not heard of it yet: the connect is refused.
    await rm(listen.path);
    const results = await Promise.all([request(p, 'busy.php?ms=200'), request(p, 'busy.php?ms=200')]);
    for (const result of results) assert.match(result.body, /slept 200 ms/);
    assert.ok(results.every((r) => Number(r.body.split('\n')[0]) !== brokenPid), 'the unreachable worker served nothing');
    const stats = await p.waitFor((s) => s.idle === 2 && s.restarts.crashed === 1);
    assert.equal(stats.total, 2);
    assert.ok(logger.find(/took no connection/));
  });

  test('a script that never ends: PHP_REQUEST_TIMEOUT (504) at request_timeout, its worker killed and replaced', async () => {
    const { pool: p, pids, logger } = await pool({ manager: 'static', maxWorkers: 1, requestTimeoutMs: 300 });
    const events: number[] = [];
    p.on('request-timeout', (worker: PhpCgiWorker) => events.push(worker.pid));
    const started = Date.now();
    const runaway = start(p, 'spin.php');
    await assert.rejects(runaway.done, typed('PHP_REQUEST_TIMEOUT', 504, PhpTimeoutError));
    assert.ok(Date.now() - started >= 290);
    assert.deepEqual(events, [pids[0]]);
    const stats = await p.waitFor((s) => s.idle === 1 && s.restarts.timeout === 1);
    assert.equal(stats.restarts.crashed, 0);
    assert.ok(processGone(pids[0]!));
    assert.ok(logger.find(`request GET /spin.php ran over request_timeout (300 ms); killing php-cgi pid ${pids[0]}`));
    assert.equal(Number((await request(p, 'pid.php')).body), pids[1]);
  });

  test('a script that exhausts memory_limit: PHP answers with its fatal error, the worker lives on', async () => {
    const { pool: p, pids } = await pool({ manager: 'static', maxWorkers: 1, settings: { memory_limit: '16M' } });
    const response = await request(p, 'memory-hog.php');
    assert.equal(response.status, 500);
    assert.equal(response.body, '');
    assert.match(response.stderr, /PHP Fatal error: {2}Allowed memory size of 16777216 bytes exhausted/);
    assert.equal(Number((await request(p, 'pid.php')).body), pids[0]);
    assert.equal(p.stats().restarts.crashed, 0);
  });

  test('a script that calls exit(): answered, the worker lives on', async () => {
    const { pool: p, pids } = await pool({ manager: 'static', maxWorkers: 1 });
    const response = await request(p, 'exit.php');
    assert.equal(response.body, 'exiting\n');
    // php-cgi ends the request normally: the exit status does not reach FCGI_END_REQUEST's appStatus.
    assert.equal(response.result.appStatus, 0);
    assert.equal(Number((await request(p, 'pid.php')).body), pids[0]);
    assert.equal(pids.length, 1);
  });

  test('megabytes to stderr and to the error log: delivered, nothing hangs', async () => {
    const { pool: p, pids, logger } = await pool({ manager: 'static', maxWorkers: 1 });
    // 4 MiB to the process's own stderr: read line by line into the log with the pid.
    const response = await request(p, 'stderr.php?kb=4096');
    assert.equal(response.body, 'stderr written\n');
    await until('4096 stderr lines in the log', () => logger.records.filter((r) => r.stream === 'stderr').length === 4096, 10_000);
    assert.ok(logger.records.filter((r) => r.stream === 'stderr').every((r) => r.pid === pids[0] && r.msg === 'e'.repeat(1023)));
    // ~3 MB through error_log(), which php-cgi sends as FCGI_STDERR records of the response.
    const logged = await request(p, 'log.php?lines=200000');
    assert.equal(logged.body, 'logged 200000 lines\n');
    assert.equal(logged.stderr.match(/log line \d+/g)?.length, 200000);
    assert.ok(logged.result.stderrBytes > 3_000_000, `${logged.result.stderrBytes} bytes`);
    assert.equal(Number((await request(p, 'pid.php')).body), pids[0]);
  });

  test('php-cgi that crashes at start: the crash-loop guard backs off (no tight loop), requests get POOL_CRASH_LOOP, then it recovers', async () => {
    // A php-cgi that works until the flag file exists, then fails at start like a broken extension.
    const flag = join(dir.path, 'broken');
    const wrapper = join(dir.path, 'php-cgi-wrapper');
    await writeFile(wrapper, `#!/bin/sh\nif [ -e ${flag} ]; then echo "PHP Warning: failed loading broken.so" >&2; exit 1; fi\nexec ${binary.path} "$@"\n`);
    await chmod(wrapper, 0o755);
    const { pool: p, pids, logger, exits } = await pool({
      manager: 'static',
      maxWorkers: 1,
      binary: { ...binary, path: wrapper },
      crashThreshold: 3,
      crashIntervalMs: 30_000,
      crashBackoffMaxMs: 4000,
    });
    const loops: Array<{ retryInMs: number; at: number }> = [];
    p.on('crash-loop', (_: string, _crashes: number, retryInMs: number) => loops.push({ retryInMs, at: Date.now() }));
    await writeFile(flag, '');
    process.kill(pids[0]!, 'SIGKILL');
    // Crash 1 (the kill), 2 and 3 come at once; the guard then pauses 1 s, then 2 s.
    await p.waitFor((s) => s.crashLoop, 5000);
    assert.deepEqual(loops.map((l) => l.retryInMs), [1000]);
    await assert.rejects(request(p, 'pid.php'), typed('POOL_CRASH_LOOP', 503, PoolUnavailableError));
    assert.ok(logger.find(/pool test: 3 worker crashes within 30 s; pausing respawn for 1000 ms\. Check the php-cgi errors above/));
    assert.ok(logger.find('PHP Warning: failed loading broken.so'));
    await p.waitFor((s) => s.restarts.crashed === 4, 3000);
    assert.deepEqual(loops.map((l) => l.retryInMs), [1000, 2000]);
    const crashes = exits.filter((e) => e.reason === 'crashed');
    assert.ok(crashes[3]!.at - crashes[2]!.at >= 950, `respawned ${crashes[3]!.at - crashes[2]!.at} ms after the guard engaged`);
    assert.equal(crashes.length, 4, 'no tight respawn loop');
    // Fixed: the next respawn, 2 s later, comes up and serves.
    await rm(flag);
    const recovered = await p.waitFor((s) => s.idle === 1, 4000);
    assert.equal(recovered.restarts.crashed, 4);
    assert.equal(recovered.crashLoop, false);
    assert.equal(Number((await request(p, 'pid.php')).body), pids[1]);
  });

  test('start() fails when no boot worker comes up, and leaves nothing running', async () => {
    const broken = join(dir.path, 'php-cgi-broken');
    await writeFile(broken, '#!/bin/sh\nexit 1\n');
    await chmod(broken, 0o755);
    const { pool: p } = await pool({ manager: 'static', maxWorkers: 2, binary: { ...binary, path: broken } }, false);
    await assert.rejects(p.start(), typed('WORKER_START_FAILED', 502, WorkerStartError));
    await assert.rejects(request(p, 'pid.php'), typed('POOL_STOPPED', 503, PoolUnavailableError));
    assert.equal(p.stats().total, 0);
  });
});

describe('stats', () => {
  test('a snapshot per pool and per worker', async () => {
    const { pool: p, pids } = await pool({ manager: 'static', maxWorkers: 2 });
    const running = start(p, 'sleep.php?ms=300');
    await p.waitFor((s) => s.active === 1);
    const during = p.stats();
    assert.deepEqual({ idle: during.idle, active: during.active, total: during.total, accepted: during.acceptedRequests }, { idle: 1, active: 1, total: 2, accepted: 1 });
    const busy = p.workerStats().find((w) => w.state === 'active')!;
    assert.deepEqual(busy.request, { method: 'GET', uri: '/sleep.php?ms=300', script: 'sleep.php?ms=300' });
    await running.done;
    const workers = p.workerStats(true);
    assert.deepEqual(workers.map((w) => w.pid).sort(), [...pids].sort());
    for (const w of workers) {
      assert.equal(w.state, 'idle');
      assert.ok(w.rssBytes! > 1024 * 1024);
    }
    assert.equal(workers.reduce((n, w) => n + w.requests, 0), 1);
    assert.ok(workers.some((w) => w.lastRequestMs! >= 300));
    assert.equal(p.stats().maxActive, 1);
  });
});

describe('stopping', () => {
  test('stop() with requests in flight: they finish, the queue is served, later requests get POOL_STOPPED, no php-cgi left, socket dir removed', async () => {
    const { pool: p, pids, logger } = await pool({ manager: 'static', maxWorkers: 2 });
    const inFlight = [start(p, 'busy.php?ms=400'), start(p, 'busy.php?ms=400')];
    await Promise.all(inFlight.map((r) => r.firstBody));
    const queued = request(p, 'pid.php');
    await until('the third request is queued', () => p.stats().queueLength === 1);
    const started = Date.now();
    const stopping = p.stop(5000);
    await assert.rejects(request(p, 'pid.php'), typed('POOL_STOPPED', 503, PoolUnavailableError));
    const served = await queued;
    assert.ok(pids.includes(Number(served.body.trim())), `the queued request was served by one of the pool's workers: ${served.body}`);
    await stopping;
    assert.ok(Date.now() - started < 2000);
    for (const response of await Promise.all(inFlight.map((r) => r.done))) assert.match(response.body, /slept 400 ms/);
    assert.equal(pids.length, 2);
    assert.ok(pids.every(processGone), 'every php-cgi the pool had is gone');
    assert.equal(p.stats().total, 0);
    assert.equal(p.stats().restarts.stopped, 2);
    assert.equal(logger.find('killing it'), undefined);
    await p.stop();
  });

  test('stop() fails what is still queued when the grace is over', async () => {
    const { pool: p, pids } = await pool({ manager: 'static', maxWorkers: 1 });
    const running = start(p, 'busy.php?ms=1500');
    await running.firstBody;
    const queued = request(p, 'pid.php');
    await until('the second request is queued', () => p.stats().queueLength === 1);
    await p.stop(200);
    await assert.rejects(queued, typed('POOL_STOPPED', 503, PoolUnavailableError));
    await assert.rejects(queued, /pool test is stopping/);
    await assert.rejects(running.done, typed('POOL_STOPPED', 503, PoolUnavailableError));
    assert.ok(pids.every(processGone));
  });

  test('stop() kills what outlives the grace; still nothing left', async () => {
    const { pool: p, pids, logger } = await pool({ manager: 'static', maxWorkers: 2 });
    const runaway = start(p, 'spin.php');
    await runaway.firstBody;
    const started = Date.now();
    await p.stop(300);
    assert.ok(Date.now() - started >= 290);
    await assert.rejects(runaway.done, typed('POOL_STOPPED', 503, PoolUnavailableError));
    await assert.rejects(runaway.done, /pool test stopped: the request was still running after the 300 ms grace/);
    assert.ok(logger.find(/pool test: worker still retiring after 300 ms; killing it/));
    assert.ok(pids.every(processGone));
  });

  test('stop() removes the socket folder and is idempotent', async () => {
    const { pool: p } = await pool({ manager: 'static', maxWorkers: 2 });
    const lease: WorkerLease = await p.acquire();
    const listen = lease.worker.listen;
    assert.ok('path' in listen);
    const socketDir = listen.path.replace(/\/[^/]+$/, '');
    assert.ok(existsSync(socketDir));
    lease.release();
    await Promise.all([p.stop(), p.stop()]);
    assert.equal(existsSync(socketDir), false);
    await p.stop();
  });
});
