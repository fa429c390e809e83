// The php-fpm backend against real php-fpm: the generated config and its files, the managed master
// (start, reload, crash and restart, stop with nothing left), the pooled client sized to the
// children, the circuit breaker while php-fpm is down, timeouts, and an external php-fpm.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig, type AppConfig } from '../src/config/load.js';
import { httpStatusFor } from '../src/errors.js';
import { FpmBackend } from '../src/fpm/fpm-backend.js';
import { memoryLogger } from '../src/log.js';
import { PHP_FIXTURES, freePort, tempDir } from './helpers/peers.js';
import { childrenOf, fixtureParams, processGone, request, start, until } from './helpers/supervisor.js';

/** A temp project with one app on php-fpm; `worker` is the worker.yaml body after the defaults. */
async function project(worker: string): Promise<{ root: string; app: AppConfig; cleanup: () => Promise<void> }> {
  const dir = await tempDir('tqserver-fpm-app-');
  await mkdir(join(dir.path, 'workers', 'site', 'config'), { recursive: true });
  await writeFile(join(dir.path, 'workers', 'site', 'config', 'worker.yaml'), `path: /site\ndocument_root: ${PHP_FIXTURES}\n${worker}`);
  const config = loadConfig({ root: dir.path });
  return { root: dir.path, app: config.apps[0]!, cleanup: dir.cleanup };
}

function backendFor(root: string, app: AppConfig, log = memoryLogger('info'), mode: 'dev' | 'prod' = 'prod'): { backend: FpmBackend; log: ReturnType<typeof memoryLogger> } {
  return { backend: new FpmBackend({ app, log: log.log, mode, root, processControlTimeoutMs: 10_000, healthIntervalMs: 200 }), log };
}

/** Gone, or a zombie nobody reaps (a container's pid 1 may not reap orphans). */
function endedOrZombie(pid: number): boolean {
  if (processGone(pid)) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Every process in the php-fpm master's process group (master and children), from /proc. */
function groupMembers(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe('managed php-fpm: static pool of 4', () => {
  let env: Awaited<ReturnType<typeof project>>;
  let backend: FpmBackend;
  let configDir = '';
  let masterPid = 0;

  before(async () => {
    env = await project('php_fpm:\n  enabled: true\nphp:\n  settings:\n    memory_limit: 96M\n  env:\n    FPM_TEST_VAR: "a b;c"\n  pool:\n    manager: static\n    max_workers: 4\n    max_requests: 0\n');
    ({ backend } = backendFor(env.root, env.app));
    await backend.start();
    configDir = backend.master!.configDir;
    masterPid = backend.master!.pid;
  });

  after(async () => {
    await backend.stop(2000);
    await env.cleanup();
  });

  test('the generated config lives in a private folder (0700) in files only the owner reads (0600)', () => {
    assert.equal(statSync(configDir).mode & 0o777, 0o700);
    assert.equal(statSync(join(configDir, 'php-fpm.conf')).mode & 0o777, 0o600);
    assert.equal(statSync(join(configDir, 'pool.d', 'site.conf')).mode & 0o777, 0o600);
    const pool = readFileSync(join(configDir, 'pool.d', 'site.conf'), 'utf8');
    assert.match(pool, /^pm = static$/m);
    assert.match(pool, /^pm\.max_children = 4$/m);
    assert.match(readFileSync(join(configDir, 'php-fpm.conf'), 'utf8'), /^process_control_timeout = 10s$/m);
  });

  test('PHP runs with the configured settings and environment', async () => {
    const response = await request(backend, 'echo.php');
    assert.equal(response.status, 200);
    const body = JSON.parse(response.body) as { server: Record<string, string> };
    assert.equal(body.server.FPM_TEST_VAR, 'a b;c');
    const ini = await request(backend, 'env.php');
    assert.equal(ini.status, 200);
  });

  test('64 concurrent requests on 4 children: all succeed, never more than 4 connections', async () => {
    let maxOpen = 0;
    const watch = setInterval(() => {
      maxOpen = Math.max(maxOpen, ...backend.stats().upstreams.map((u) => u.open));
    }, 1);
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 64 }, () => request(backend, 'sleep.php?ms=20')));
    clearInterval(watch);
    assert.ok(results.every((r) => r.status === 200 && r.body.startsWith('slept 20 ms')));
    assert.ok(maxOpen <= 4, `at most 4 connections, saw ${maxOpen}`);
    // 64 requests of 20 ms on 4 children: about 16 rounds; nothing waited seconds in a backlog.
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });

  test('a child killed mid-request fails that request with 502; the others and the next succeed', async () => {
    const doomed = start(backend, 'busy.php?ms=3000');
    const fine = start(backend, 'sleep.php?ms=100');
    const pid = Number(await doomed.firstBody);
    assert.ok(childrenOf(masterPid).includes(pid), `pid ${pid} is a child of the master`);
    process.kill(pid, 'SIGKILL');
    await assert.rejects(doomed.done, (error: Error & { code?: string }) => httpStatusFor(error) === 502 && error.code === 'FCGI_PEER_CLOSED');
    assert.equal((await fine.done).status, 200);
    assert.equal((await request(backend, 'hello.php')).status, 200);
  });

  test('the master killed with SIGKILL: in-flight requests fail, new ones get 503 at once, service returns by itself', async () => {
    // A POST: a GET whose connection closes without an answer may be sent once more (and then find php-fpm down: 503).
    const inFlight = start(backend, 'sleep.php?ms=2000', {
      params: { ...fixtureParams('sleep.php?ms=2000'), REQUEST_METHOD: 'POST', CONTENT_LENGTH: '1', CONTENT_TYPE: 'text/plain' },
      body: 'x',
    });
    await until('the request to reach PHP', () => backend.stats().upstreams[0]!.busy > 0);
    const oldMaster = backend.master!.pid;
    const children = childrenOf(oldMaster);
    process.kill(oldMaster, 'SIGKILL');
    await assert.rejects(inFlight.done, (error: Error) => httpStatusFor(error) === 502);
    await until('the breaker to open', () => backend.stats().upstreams[0]!.breaker !== 'closed');
    const t0 = Date.now();
    await assert.rejects(request(backend, 'hello.php'), (error: Error & { code?: string }) => error.code === 'UPSTREAM_DOWN' && httpStatusFor(error) === 503);
    assert.ok(Date.now() - t0 < 100, 'refused at once, not after a wait');
    await until('php-fpm to be back', () => backend.stats().upstreams[0]!.breaker === 'closed' && backend.master!.state === 'running', 15_000);
    assert.notEqual(backend.master!.pid, oldMaster);
    for (const pid of children) assert.ok(endedOrZombie(pid), `orphaned child ${pid} of the killed master was ended`);
    assert.equal((await request(backend, 'hello.php')).status, 200);
    masterPid = backend.master!.pid;
  });
});

describe('managed php-fpm: lifecycle', () => {
  test('php.binary set on a php-fpm app: a warning says it is not used and which php-fpm runs', async () => {
    for (const [worker, warned] of [['php:\n  binary: php-cgi-of-my-choice\nphp_fpm:\n  enabled: true\n', true], ['php_fpm:\n  enabled: true\n', false]] as const) {
      const env = await project(worker);
      const { backend, log } = backendFor(env.root, env.app);
      try {
        await backend.start();
        const line = log.find(/php\.binary/);
        if (warned) {
          assert.equal(line?.level, 40, 'a warning');
          assert.match(line!.msg, /^app site: php\.binary \(php-cgi-of-my-choice\) is not used by a php-fpm app; TQServer runs \/\S*php-fpm[\d.]* \(set php_fpm\.binary to choose another\)$/);
        } else {
          assert.equal(line, undefined, 'nothing said when php.binary is not set');
        }
        assert.equal((await request(backend, 'hello.php')).status, 200);
      } finally {
        await backend.stop(2000);
        await env.cleanup();
      }
    }
  });

  test('stop leaves no php-fpm process and removes the generated files', async () => {
    const env = await project('php_fpm:\n  enabled: true\nphp:\n  pool:\n    manager: dynamic\n    max_workers: 3\n    start_workers: 2\n    min_workers: 1\n    max_spare_workers: 2\n');
    const { backend } = backendFor(env.root, env.app);
    await backend.start();
    const pgid = backend.master!.pid;
    const dir = backend.master!.configDir;
    assert.ok(groupMembers(pgid).length >= 3, 'master and its children are running');
    const running = start(backend, 'sleep.php?ms=300');
    await until('the request to reach PHP', () => backend.stats().upstreams[0]!.busy > 0);
    await backend.stop(5000);
    assert.equal((await running.done).status, 200, 'the request in flight finished during the graceful stop');
    assert.deepEqual(groupMembers(pgid), []);
    assert.throws(() => statSync(dir), /ENOENT/);
    await env.cleanup();
  });

  test('dev mode keeps the config under .tqserver/phpfpm/ and logs the command to reproduce it', async () => {
    const env = await project('php_fpm:\n  enabled: true\nphp:\n  pool:\n    manager: ondemand\n    max_workers: 2\n');
    const { backend, log } = backendFor(env.root, env.app, memoryLogger('info'), 'dev');
    await backend.start();
    const dir = join(env.root, '.tqserver', 'phpfpm', 'site');
    assert.equal(backend.master!.configDir, dir);
    assert.match(readFileSync(join(dir, 'pool.d', 'site.conf'), 'utf8'), /^pm = ondemand$/m);
    const line = log.find('reproduce with');
    assert.ok(line, 'the command line is logged');
    assert.match(line.msg, /php-fpm\S* -F -O -y \S+php-fpm\.conf/);
    assert.equal((await request(backend, 'hello.php')).status, 200);
    await backend.stop(2000);
    assert.ok(statSync(join(dir, 'php-fpm.conf')).isFile(), 'kept after stop');
    await env.cleanup();
  });

  test('a reload (SIGUSR2) lets the request in flight finish', async () => {
    const env = await project('php_fpm:\n  enabled: true\nphp:\n  pool:\n    manager: static\n    max_workers: 2\n');
    const { backend } = backendFor(env.root, env.app);
    await backend.start();
    const running = start(backend, 'sleep.php?ms=800');
    await until('the request to reach PHP', () => backend.stats().upstreams[0]!.busy > 0);
    await backend.master!.reload({ ...backendPool(env.app) });
    assert.equal((await running.done).status, 200);
    assert.equal((await request(backend, 'hello.php')).status, 200);
    await backend.stop(2000);
    await env.cleanup();
  });

  test('a runaway script is cut by request_terminate_timeout and answered 504', async () => {
    const env = await project('php_fpm:\n  enabled: true\nphp:\n  pool:\n    manager: static\n    max_workers: 2\n    request_timeout: 1s\n');
    const { backend } = backendFor(env.root, env.app);
    await backend.start();
    const t0 = Date.now();
    await assert.rejects(request(backend, 'spin.php'), (error: Error) => httpStatusFor(error) === 504);
    assert.ok(Date.now() - t0 < 5000);
    assert.equal((await request(backend, 'hello.php')).status, 200, 'the pool serves on');
    await backend.stop(2000);
    await env.cleanup();
  });

  test('php-fpm that closes kept-alive connections (pm.max_requests 1): no request fails under load', async () => {
    const env = await project('php_fpm:\n  enabled: true\nphp:\n  pool:\n    manager: static\n    max_workers: 3\n    max_requests: 1\n');
    const { backend } = backendFor(env.root, env.app);
    await backend.start();
    // GETs may be sent again on a fresh connection; POSTs with a body never are, so they show that
    // no request is sent on a connection whose child is about to go.
    const post = (i: number) =>
      request(backend, 'echo.php', {
        params: { ...fixtureParams('echo.php'), REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(String(i).length), CONTENT_TYPE: 'text/plain' },
        body: String(i),
      });
    const results = await Promise.allSettled(Array.from({ length: 150 }, (_, i) => (i % 2 === 0 ? request(backend, 'hello.php') : post(i))));
    const failed = results.filter((r) => r.status === 'rejected');
    assert.deepEqual(failed.map((r) => String((r as PromiseRejectedResult).reason)), []);
    for (const [i, r] of results.entries()) {
      if (i % 2 === 1 && r.status === 'fulfilled') assert.equal((JSON.parse(r.value.body) as { bodyMd5: string }).bodyMd5, createHash('md5').update(String(i)).digest('hex'));
    }
    await backend.stop(2000);
    await env.cleanup();
  });
});

/** The launcher's pool settings for an app, as FpmBackend builds them. */
function backendPool(app: AppConfig) {
  return {
    name: app.name,
    listen: null,
    pool: app.php.pool,
    settings: app.php.settings,
    env: { ...app.php.env },
    extensions: app.php.extensions,
    documentRoot: app.documentRoot,
    user: null,
    pingPath: '/tqserver-fpm-ping',
    statusPath: '/tqserver-fpm-status',
    allowedClients: ['127.0.0.1'],
  };
}

describe('php_fpm.listen', () => {
  test('a list of addresses for a php-fpm TQServer runs is refused, not cut to its first entry', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const env = await project(`php_fpm:\n  enabled: true\n  listen: [127.0.0.1:${a}, 127.0.0.1:${b}]\n`);
    const { backend } = backendFor(env.root, env.app);
    await assert.rejects(backend.start(), (error: Error & { code?: string }) => error.code === 'CONFIG_INVALID' && /php_fpm\.listen: lists 2 addresses.*php_fpm\.external: true/.test(error.message));
    await backend.stop(0);
    await env.cleanup();
  });
});

describe('external php-fpm', () => {
  test('one that is not there: requests fail fast with a clear error and nothing hangs', async () => {
    const port = await freePort();
    const env = await project(`php_fpm:\n  enabled: true\n  external: true\n  listen: 127.0.0.1:${port}\n`);
    const { backend } = backendFor(env.root, env.app);
    await backend.start();
    const errors: Array<{ code?: string; status: number; message: string; ms: number }> = [];
    const refusals: number[] = [];
    for (let i = 0; i < 6; i++) {
      const started = Date.now();
      try {
        await request(backend, 'hello.php');
      } catch (error) {
        errors.push({ code: (error as { code?: string }).code, status: httpStatusFor(error), message: (error as Error).message, ms: Date.now() - started });
      }
      refusals.push(backend.stats().upstreams[0]!.connectFailures);
    }
    assert.equal(errors.length, 6);
    // The first request tries a refused connect again a few times (php-fpm may be restarting); the
    // refusals open the circuit, and from then on every request is answered at once.
    assert.deepEqual(errors.map((e) => `${e.status} ${e.code}`), Array(6).fill('503 UPSTREAM_DOWN'));
    assert.match(errors[0]!.message, new RegExp(`php-fpm is down \\(127\\.0\\.0\\.1:${port}: connect to 127\\.0\\.0\\.1:${port} refused \\(ECONNREFUSED\\)`));
    assert.ok(errors[0]!.ms < 1000, `the first answer came after the retries, not a timeout (${errors[0]!.ms} ms)`);
    assert.ok(refusals[0]! >= 2, `the first request tried more than once: ${refusals.join(', ')}`);
    assert.deepEqual(refusals.slice(1), Array(5).fill(refusals[0]), 'the later ones did not try to connect at all');
    await backend.stop(1000);
    await env.cleanup();
  });
});
