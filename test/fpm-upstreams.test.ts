// php-fpm on several hosts: an app whose php_fpm.listen lists two external php-fpm masters, through
// the HTTP front. Requests spread over both, a slow one gets fewer (least busy), a killed one costs
// the client nothing but its requests in flight (connect failures go to the other upstream), and one
// that is started again, or for the first time after TQServer, is taken into rotation. Which php-fpm
// served a request is told by PHP's getmypid() and the master that pid belongs to.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Address } from '../src/fastcgi/address.js';
import type { BreakerState } from '../src/fpm/breaker.js';
import { FpmBackend } from '../src/fpm/fpm-backend.js';
import { makeProject, serverYaml, startFront, statusJson, workerYaml, type Project, type RunningFront } from './helpers/front.js';
import { countStatuses, errorCode, parentOf, runLoad, send, type Sent } from './helpers/http-load.js';
import { freePort, startPhpFpm, type Peer } from './helpers/peers.js';
import { childrenOf, until } from './helpers/supervisor.js';

/** Sleeps UPSTREAM_DELAY_MS (set per php-fpm pool), then answers with its pid. */
const WHO = `<?php
$ms = (int) getenv('UPSTREAM_DELAY_MS');
if ($ms > 0) usleep($ms * 1000);
header('Content-Type: text/plain');
echo getmypid();
`;

/** An external php-fpm as another host would run it: static pool of 3, the status page TQServer reads. */
function upstream(address: Address | undefined, delayMs: number): Promise<Peer> {
  return startPhpFpm({
    address,
    transport: 'tcp',
    pool: { pm: 'static', 'pm.max_children': '3', 'pm.status_path': '/tqserver-fpm-status', 'env[UPSTREAM_DELAY_MS]': String(delayMs) },
  });
}

const listenOf = (peer: Peer): string => {
  const a = peer.address as { host: string; port: number };
  return `${a.host}:${a.port}`;
};

/** An app at / on external php-fpm at `listen`, with 3 connections per upstream. */
async function project(listen: string[]): Promise<Project> {
  const p = await makeProject({
    server: serverYaml(),
    apps: [{ name: 'site', worker: workerYaml('/', { max_workers: 3 }, { extra: `php_fpm:\n  enabled: true\n  external: true\n  listen: [${listen.join(', ')}]` }) }],
  });
  writeFileSync(join(p.docRoot('site'), 'who.php'), WHO);
  return p;
}

const backendOf = (front: RunningFront): FpmBackend => front.server.apps.get('site')!.backend as FpmBackend;

/** Resolves when the upstream's breaker reaches `state`. */
function breakerReaches(backend: FpmBackend, label: string, state: BreakerState, timeoutMs = 15_000): Promise<void> {
  if (backend.stats().upstreams.find((u) => u.address === label)?.breaker === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      backend.off('breaker', onChange);
      reject(new Error(`the breaker of ${label} did not become ${state} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onChange = (address: string, now: BreakerState) => {
      if (address !== label || now !== state) return;
      clearTimeout(timer);
      backend.off('breaker', onChange);
      resolve();
    };
    backend.on('breaker', onChange);
  });
}

/** Which master served each answer (by its pid's parent, read when it came). */
function tally(results: readonly Sent[], masters: ReadonlyMap<number, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    if (r.status !== 200) continue;
    const name = masters.get(Number(r.body)) ?? 'unknown';
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** pid -> name of its master, for every child of the given masters. */
function childMap(masters: Record<string, Peer>): Map<number, string> {
  const map = new Map<number, string>();
  for (const [name, peer] of Object.entries(masters)) for (const pid of childrenOf(peer.pid)) map.set(pid, name);
  return map;
}

describe('php_fpm.listen with two external php-fpm upstreams', () => {
  let fast: Peer;
  let slow: Peer;
  let p: Project;
  let front: RunningFront;
  let backend: FpmBackend;

  before(async () => {
    [fast, slow] = await Promise.all([upstream(undefined, 0), upstream(undefined, 100)]);
    p = await project([listenOf(fast), listenOf(slow)]);
    front = await startFront(p.root);
    backend = backendOf(front);
  });

  after(async () => {
    await front?.stop();
    await Promise.all([fast?.stop(), slow?.stop()]);
    await p?.cleanup();
  });

  test('requests spread over both upstreams (each pid belongs to one of the two masters)', async () => {
    const masters = childMap({ fast, slow });
    assert.equal(masters.size, 6, 'three children each');
    const results: Sent[] = [];
    for (let i = 0; i < 20; i++) results.push(await send(front.port, { path: '/who.php' }));
    assert.deepEqual(countStatuses(results), { 200: 20 });
    const counts = tally(results, masters);
    assert.equal(counts.unknown, undefined, 'every pid is a child of one of the masters');
    // Equally idle upstreams take turns.
    assert.ok((counts.fast ?? 0) >= 5 && (counts.slow ?? 0) >= 5, `both served: ${JSON.stringify(counts)}`);
    const status = await statusJson(front.port);
    const pool = status.pools[0]!;
    assert.equal(pool.backend, 'php-fpm');
    assert.deepEqual(pool.upstreams.map((u: { address: string }) => u.address), [listenOf(fast), listenOf(slow)]);
    assert.ok(pool.upstreams.every((u: { breaker: string; healthy: boolean }) => u.breaker === 'closed' && u.healthy));
    // php-fpm's own figures from both status pages: 3 + 3 children.
    assert.equal(pool['total processes'], 6);
  });

  test('a slow upstream gets fewer requests (least busy)', async () => {
    const masters = childMap({ fast, slow });
    let sent = 0;
    const results = await runLoad({ port: front.port, clients: 6, request: () => ({ path: '/who.php' }), done: () => sent++ >= 240 });
    assert.deepEqual(countStatuses(results), { 200: results.length });
    const counts = tally(results, masters);
    // The slow one takes 100 ms more per request: with as many requests in flight on each, the fast
    // one finishes several for each of the slow one's.
    assert.ok((counts.fast ?? 0) >= 2 * (counts.slow ?? 0), `the fast upstream served most: ${JSON.stringify(counts)}`);
    assert.ok((counts.slow ?? 0) > 0, 'the slow one still gets a share');
  });

  test('one upstream killed under load: only its requests in flight fail (502), failed connects go to the other, no 503', async () => {
    const label = listenOf(slow);
    const doomed = slow;
    const doomedChildren = childrenOf(doomed.pid);
    let stop = false;
    const load = runLoad({ port: front.port, clients: 6, request: () => ({ path: '/who.php' }), done: () => stop });
    await until('requests on the slow upstream', () => backend.stats().upstreams.find((u) => u.address === label)!.busy > 0);
    // The whole php-fpm, as a host going down: master and children at once.
    for (const pid of [doomed.pid, ...doomedChildren]) process.kill(pid, 'SIGKILL');
    await breakerReaches(backend, label, 'open', 5000);
    // Its config folder (the process is gone already; the next test starts another php-fpm there).
    await doomed.stop();
    const openedAt = Date.now();
    const survivorRequests = () => backend.stats().upstreams.find((u) => u.address === listenOf(fast))!.requests;
    const base = survivorRequests();
    await until('more requests served by the survivor', () => survivorRequests() > base + 200);
    stop = true;
    const results = await load;
    const failed = results.filter((r) => r.status !== 200);
    // At most one request per connection to the killed php-fpm (three): those that reached it as it
    // died. They cannot be sent again.
    assert.ok(failed.length <= 3, `at most 3 failed: ${JSON.stringify(failed)}`);
    assert.ok(failed.every((r) => r.status === 502), `only 502 (never 503 or a timeout): ${JSON.stringify(countStatuses(results))}`);
    const late = results.filter((r) => r.at - r.ms >= openedAt);
    assert.ok(late.length >= 100 && late.every((r) => r.status === 200), `once the circuit is open every request is answered by the survivor (${late.length})`);
    const s = backend.stats().upstreams.find((u) => u.address === label)!;
    // Three consecutive failures open the circuit; connects already under way (up to its 3 connections) still fail.
    assert.ok(s.connectFailures >= 1 && s.connectFailures <= 6, `a few failed connects open the circuit (${s.connectFailures})`);
    assert.ok(s.failovers >= 1 && s.failovers <= s.connectFailures, `those requests went to the survivor (${s.failovers} of ${s.connectFailures})`);
    assert.ok(front.find(new RegExp(`php-fpm at ${label.replace(/\./g, '\\.')} is failing .*requests go to the other upstreams`)), 'the log says where requests go');
    const status = await statusJson(front.port);
    const row = status.pools[0]!.upstreams.find((u: { address: string }) => u.address === label);
    assert.equal(row.breaker, 'open');
    assert.equal(row.healthy, false);
  });

  test('the killed upstream comes back into rotation when it is started again', async () => {
    const label = listenOf(slow);
    slow = await upstream(slow.address, 0);
    await breakerReaches(backend, label, 'closed');
    const masters = childMap({ fast, slow });
    const results: Sent[] = [];
    for (let i = 0; i < 20; i++) results.push(await send(front.port, { path: '/who.php' }));
    assert.deepEqual(countStatuses(results), { 200: 20 });
    const counts = tally(results, masters);
    assert.ok((counts.slow ?? 0) >= 5, `the restarted php-fpm (master ${slow.pid}) serves again: ${JSON.stringify(counts)}`);
    assert.ok(front.find(`php-fpm at ${label} is back; circuit closed`));
  });
});

describe('an external php-fpm started after TQServer', () => {
  test('requests go to the running upstream meanwhile; the late one is taken into rotation once it listens', async () => {
    const running = await upstream(undefined, 0);
    const latePort = await freePort();
    const lateLabel = `127.0.0.1:${latePort}`;
    const p = await project([listenOf(running), lateLabel]);
    const front = await startFront(p.root);
    const backend = backendOf(front);
    let late: Peer | null = null;
    try {
      const before: Sent[] = [];
      for (let i = 0; i < 10; i++) before.push(await send(front.port, { path: '/who.php' }));
      assert.deepEqual(countStatuses(before), { 200: 10 }, 'a request that could not connect went to the other upstream');
      assert.ok(before.every((r) => parentOf(Number(r.body)) === running.pid));
      await breakerReaches(backend, lateLabel, 'open', 5000);
      late = await upstream({ host: '127.0.0.1', port: latePort }, 0);
      await breakerReaches(backend, lateLabel, 'closed');
      const after: Sent[] = [];
      for (let i = 0; i < 20; i++) after.push(await send(front.port, { path: '/who.php' }));
      assert.deepEqual(countStatuses(after), { 200: 20 });
      assert.ok(after.filter((r) => parentOf(Number(r.body)) === late!.pid).length >= 5, 'the late php-fpm serves its share');
    } finally {
      await front.stop();
      await Promise.all([running.stop(), late?.stop()]);
      await p.cleanup();
    }
  });

  test('a single upstream not there yet: 503 once its refusals open the circuit, then 503 at once; served once it listens', async () => {
    const port = await freePort();
    const label = `127.0.0.1:${port}`;
    const p = await project([label]);
    const front = await startFront(p.root);
    const backend = backendOf(front);
    let peer: Peer | null = null;
    try {
      const early: Sent[] = [];
      for (let i = 0; i < 5; i++) early.push(await send(front.port, { path: '/who.php', headers: { accept: 'application/json' } }));
      // The first is refused and tried again (10, 25 ms) until three refusals open the circuit.
      assert.deepEqual(early.map((r) => `${r.status} ${errorCode(r)}`), Array(5).fill('503 UPSTREAM_DOWN'));
      assert.match(JSON.parse(early[0]!.body).error.message, /temporarily unavailable/);
      assert.ok(early[0]!.ms < 1000, `the first after its retries (${early[0]!.ms} ms)`);
      assert.ok(early.slice(1).every((r) => r.ms < 100), `the others at once: ${early.map((r) => r.ms).join(', ')}`);
      peer = await upstream({ host: '127.0.0.1', port }, 0);
      await breakerReaches(backend, label, 'closed');
      const reply = await send(front.port, { path: '/who.php' });
      assert.equal(reply.status, 200);
      assert.equal(parentOf(Number(reply.body)), peer.pid);
    } finally {
      await front.stop();
      await peer?.stop();
      await p.cleanup();
    }
  });
});
