// FastCGIClient against a real php-fpm (pm static, 4 children): connection limits, the wait queue
// with its limit and timeout, aborts while queued, graceful close and immediate destroy, and idle
// connections that the peer closes being dropped and replaced.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test, type TestContext } from 'node:test';
import { FastCGIAbortError, FastCGIUnavailableError, type TQServerError } from '../src/errors.js';
import { FastCGIClient, type ClientOptions, type EndResult, type RequestController, type RequestOptions } from '../src/fastcgi/index.js';
import type { Peer } from './helpers/peers.js';
import { cgi, phpParams, rejection, releasesSettled, startFpm, waitFor } from './client-support.js';

/** Every test fails rather than hangs: nothing here should take more than a few seconds. */
const LIMIT = { timeout: 20_000 };

const CHILDREN = 4;
let fpm: Peer;

before(async () => {
  fpm = await startFpm({ pool: { 'pm.max_children': String(CHILDREN) } });
});

after(async () => {
  await fpm.stop();
});

/** A client for one test, destroyed after it (an idle connection would pin a php-fpm child). */
function clientFor(t: TestContext, options: Omit<ClientOptions, 'address'> = {}): FastCGIClient {
  const client = new FastCGIClient({ address: fpm.address, maxConns: CHILDREN, ...options });
  t.after(() => client.destroy());
  return client;
}

interface Dispatched {
  controller: RequestController;
  /** The response once it ended: stdout as text, the END_REQUEST result. */
  done: Promise<{ stdout: string; result: EndResult }>;
  /** Resolves when the first stdout bytes arrive (busy.php: the script is running). */
  running: Promise<void>;
}

/** Dispatches through the handler API, which hands back the controller (started, abort). */
function dispatch(client: FastCGIClient, options: RequestOptions): Dispatched {
  const chunks: Buffer[] = [];
  let onRunning!: () => void;
  const running = new Promise<void>((resolve) => (onRunning = resolve));
  let controller!: RequestController;
  const done = new Promise<{ stdout: string; result: EndResult }>((resolve, reject) => {
    controller = client.dispatch(options, {
      onStdout(chunk) {
        chunks.push(chunk);
        onRunning();
        return true;
      },
      onStderr() {},
      onEnd(result) {
        resolve({ stdout: Buffer.concat(chunks).toString('utf8'), result });
      },
      onError: reject,
    });
  });
  done.catch(() => {});
  return { controller, done, running };
}

/** busy.php: prints the child's pid at once, then sleeps `ms` and says so. */
function busy(ms: number, extra: Partial<RequestOptions> = {}): RequestOptions {
  return { params: phpParams('busy.php', { QUERY_STRING: `ms=${ms}` }), ...extra };
}

function pidOf(stdout: string): number {
  return Number(cgi(stdout).body.split('\n')[0]);
}

describe('limits', () => {
  test(`64 concurrent requests over maxConns ${CHILDREN}: all succeed, never more than ${CHILDREN} connections`, LIMIT, async (t) => {
    const client = clientFor(t);
    let maxConnections = 0;
    let maxQueued = 0;
    const sample = () => {
      const { open, connecting, queued } = client.stats;
      maxConnections = Math.max(maxConnections, open + connecting);
      maxQueued = Math.max(maxQueued, queued);
    };
    const requests = Array.from({ length: 64 }, () => {
      const request = dispatch(client, busy(10));
      sample();
      void request.running.then(sample);
      return request.done.then((response) => {
        sample();
        return response;
      });
    });
    const responses = await Promise.all(requests);
    const pids = new Set<number>();
    for (const { stdout, result } of responses) {
      assert.match(cgi(stdout).body, /^\d+\nslept 10 ms\n$/);
      assert.equal(result.protocolStatus, 0);
      pids.add(pidOf(stdout));
    }
    assert.equal(maxConnections, CHILDREN);
    assert.equal(maxQueued, 64 - CHILDREN, 'the rest waited in our queue, not in the listen backlog');
    assert.ok(pids.size <= CHILDREN, `served by ${pids.size} processes`);
    await releasesSettled();
    assert.deepEqual(client.stats, { open: CHILDREN, idle: CHILDREN, busy: 0, connecting: 0, queued: 0, requests: 64, retries: 0 });
  });

  test('FCGI_QUEUE_FULL past maxQueue, typed, before anything is sent', LIMIT, async (t) => {
    const client = clientFor(t, { maxConns: 1, maxQueue: 2 });
    const first = dispatch(client, busy(200));
    await first.running;
    const queued = [dispatch(client, busy(0)), dispatch(client, busy(0))];
    assert.equal(client.stats.queued, 2);
    const refused = dispatch(client, busy(0));
    const error = await rejection(refused.done);
    assert.ok(error instanceof FastCGIUnavailableError);
    assert.equal(error.code, 'FCGI_QUEUE_FULL');
    assert.match(error.message, /queue is full \(2 waiting\)/);
    assert.equal(refused.controller.started, false);
    assert.equal(client.stats.queued, 2);
    // The others are served in order on the one connection.
    for (const request of [first, ...queued]) assert.match(cgi((await request.done).stdout).body, /slept/);
    assert.equal(client.stats.requests, 3, 'the refused request never reached a connection');
  });

  test('FCGI_QUEUE_TIMEOUT past queueTimeoutMs, typed, before anything is sent', LIMIT, async (t) => {
    const client = clientFor(t, { maxConns: 1, queueTimeoutMs: 100 });
    const first = dispatch(client, busy(400));
    await first.running;
    const started = Date.now();
    const waiting = dispatch(client, busy(0));
    assert.equal(client.stats.queued, 1);
    const error = await rejection(waiting.done);
    const elapsedMs = Date.now() - started;
    assert.ok(error instanceof FastCGIUnavailableError);
    assert.equal(error.code, 'FCGI_QUEUE_TIMEOUT');
    assert.match(error.message, /within 100 ms/);
    assert.ok(elapsedMs >= 90 && elapsedMs < 400, `timed out after ${elapsedMs} ms`);
    assert.equal(waiting.controller.started, false);
    assert.equal(client.stats.queued, 0);
    assert.match(cgi((await first.done).stdout).body, /slept 400 ms/);
    assert.equal(client.stats.requests, 1);
  });

  test('an aborted queued request leaves the queue at once, by abort() or by AbortSignal; the next one runs (regression)', LIMIT, async (t) => {
    // The client used to ignore a queued request's AbortSignal until a connection was free for it.
    const client = clientFor(t, { maxConns: 1 });
    const first = dispatch(client, busy(200));
    await first.running;
    const signal = new AbortController();
    const bySignal = dispatch(client, busy(0, { signal: signal.signal }));
    const byController = dispatch(client, busy(0));
    const last = dispatch(client, busy(0));
    assert.equal(client.stats.queued, 3);

    signal.abort(new Error('the HTTP client went away'));
    assert.equal(client.stats.queued, 2);
    const signalError = await rejection(bySignal.done);
    assert.ok(signalError instanceof FastCGIAbortError);
    assert.equal(signalError.code, 'FCGI_REQUEST_ABORTED');
    assert.match(signalError.message, /the HTTP client went away/);

    byController.controller.abort();
    assert.equal(client.stats.queued, 1);
    const controllerError = await rejection(byController.done);
    assert.ok(controllerError instanceof FastCGIAbortError);

    for (const aborted of [bySignal, byController]) assert.equal(aborted.controller.started, false);
    await first.done;
    assert.match(cgi((await last.done).stdout).body, /slept 0 ms/);
    assert.equal(client.stats.requests, 2, 'only the first and the last reached a connection');
  });

  test('failQueued() fails every queued request at once with the given error; the running one goes on', LIMIT, async (t) => {
    const client = clientFor(t, { maxConns: 1 });
    const first = dispatch(client, busy(100));
    await first.running;
    const queued = [dispatch(client, busy(0)), dispatch(client, busy(0))];
    const reason = new Error('upstream is down');
    assert.equal(client.failQueued(reason), 2);
    for (const request of queued) {
      assert.equal(await rejection(request.done), reason);
      assert.equal(request.controller.started, false);
    }
    assert.equal(client.stats.queued, 0);
    assert.match(cgi((await first.done).stdout).body, /slept 100 ms/);
    assert.equal(client.failQueued(reason), 0);
    assert.equal(client.stats.requests, 1);
  });

  test('a request whose AbortSignal is already aborted fails at once and sends nothing (regression)', LIMIT, async (t) => {
    // It used to be sent, then aborted: a php-fpm child ran the script for nothing.
    const client = clientFor(t);
    const request = dispatch(client, busy(0, { signal: AbortSignal.abort() }));
    const error = await rejection(request.done);
    assert.equal((error as TQServerError).code, 'FCGI_REQUEST_ABORTED');
    assert.equal(request.controller.started, false);
    assert.deepEqual(client.stats, { open: 0, idle: 0, busy: 0, connecting: 0, queued: 0, requests: 0, retries: 0 });
  });
});

describe('lifecycle', () => {
  test('close() lets running and queued requests finish, refuses new ones, and resolves with no connection left', LIMIT, async (t) => {
    const client = clientFor(t);
    const running = Array.from({ length: CHILDREN }, () => dispatch(client, busy(150)));
    await Promise.all(running.map((request) => request.running));
    const queued = [dispatch(client, busy(0)), dispatch(client, busy(0))];
    assert.equal(client.stats.queued, 2);

    let closedEvent = false;
    client.once('closed', () => (closedEvent = true));
    const closing = client.close();
    const late = dispatch(client, busy(0));
    const lateError = await rejection(late.done);
    assert.ok(lateError instanceof FastCGIUnavailableError);
    assert.equal(lateError.code, 'FCGI_CLIENT_CLOSED');

    for (const request of [...running, ...queued]) assert.match(cgi((await request.done).stdout).body, /^\d+\nslept/);
    await closing;
    assert.equal(closedEvent, true);
    assert.deepEqual(client.stats, { open: 0, idle: 0, busy: 0, connecting: 0, queued: 0, requests: CHILDREN + 2, retries: 0 });
    // The connections really are gone: every php-fpm child is free for a new client at once.
    const next = clientFor(t);
    const pids = await Promise.all(Array.from({ length: CHILDREN }, () => dispatch(next, busy(50)).done.then(({ stdout }) => pidOf(stdout))));
    assert.equal(new Set(pids).size, CHILDREN);
  });

  test('destroy() fails running, queued and connecting requests at once', LIMIT, async (t) => {
    const client = clientFor(t, { maxConns: 2 });
    const running = [dispatch(client, busy(600)), dispatch(client, busy(600))];
    await Promise.all(running.map((request) => request.running));
    const queued = [dispatch(client, busy(0)), dispatch(client, busy(0))];
    const started = Date.now();
    client.destroy();
    const errors = await Promise.all([...running, ...queued].map((request) => rejection(request.done)));
    assert.ok(Date.now() - started < 300, 'nothing waited for PHP');
    for (const error of errors) {
      assert.ok(error instanceof FastCGIUnavailableError);
      assert.equal(error.code, 'FCGI_CLIENT_CLOSED');
    }
    assert.deepEqual(client.stats, { open: 0, idle: 0, busy: 0, connecting: 0, queued: 0, requests: 2, retries: 0 });
    client.destroy(); // idempotent
  });

  test('destroy() while a connection is being opened fails its request, and the connection is dropped (regression)', LIMIT, async (t) => {
    // A request whose connection was still connecting used to run after destroy() anyway.
    const client = clientFor(t);
    const request = dispatch(client, busy(0));
    assert.equal(client.stats.connecting, 1);
    const reason = new Error('shutting down');
    client.destroy(reason);
    assert.equal(await rejection(request.done), reason);
    await waitFor('the pending connect to settle', () => client.stats.connecting === 0);
    assert.deepEqual(client.stats, { open: 0, idle: 0, busy: 0, connecting: 0, queued: 0, requests: 0, retries: 0 });
  });

  test('close() still runs queued requests when their connection goes away (regression)', LIMIT, async (t) => {
    // After close(), a queued request waited for an idle connection only, and close() never resolved.
    const client = clientFor(t, { maxConns: 1 });
    // keepConn false: php-fpm closes each connection after its request, as a peer restarting would.
    const requests = Array.from({ length: 3 }, () => dispatch(client, busy(20, { keepConn: false })));
    await requests[0]!.running;
    assert.equal(client.stats.queued, 2);
    const closing = client.close();
    for (const request of requests) assert.match(cgi((await request.done).stdout).body, /slept 20 ms/);
    await closing;
    assert.equal(client.stats.open, 0);
    assert.equal(client.stats.requests, 3);
  });

  test('a queued request over maxParamsBytes fails alone, before anything is sent; the queue goes on', LIMIT, async (t) => {
    const client = clientFor(t, { maxConns: 1, maxParamsBytes: 4096 });
    const first = dispatch(client, busy(50));
    await first.running;
    const tooLarge = dispatch(client, { params: phpParams('busy.php', { QUERY_STRING: 'ms=0', HTTP_COOKIE: 'c'.repeat(8192) }) });
    const last = dispatch(client, busy(0));
    assert.equal(client.stats.queued, 2);
    const error = await rejection(tooLarge.done);
    assert.equal((error as TQServerError).code, 'FCGI_PARAMS_TOO_LARGE');
    assert.equal(tooLarge.controller.started, false);
    assert.match(cgi((await last.done).stdout).body, /slept 0 ms/);
    assert.equal(client.stats.open, 1, 'the connection went on to the next request');
  });

  test('getValues() asks on a connection of its own: FCGI_MPXS_CONNS is "0"', LIMIT, async (t) => {
    const client = clientFor(t);
    const values = await client.getValues();
    assert.equal(values.get('FCGI_MPXS_CONNS'), '0');
    assert.equal(client.stats.open, 0);
  });
});

describe('idle connections closed by the peer', () => {
  /** Fills the client with CHILDREN idle connections; returns the pids of the children they pin. */
  async function fillIdle(client: FastCGIClient): Promise<Set<number>> {
    const responses = await Promise.all(Array.from({ length: CHILDREN }, () => dispatch(client, busy(30)).done));
    await releasesSettled();
    assert.equal(client.stats.idle, CHILDREN);
    return new Set(responses.map(({ stdout }) => pidOf(stdout)));
  }

  test('php-fpm children killed with SIGKILL: their idle connections are dropped and replaced', LIMIT, async (t) => {
    const client = clientFor(t);
    const pids = await fillIdle(client);
    assert.equal(pids.size, CHILDREN, 'each idle connection pins its own child');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await waitFor('the pool to drop the dead connections', () => client.stats.open === 0);
    assert.equal(client.stats.idle, 0);
    // php-fpm forks new children; the client opens new connections to them.
    const responses = await Promise.all(Array.from({ length: 8 }, () => dispatch(client, busy(10)).done));
    const fresh = new Set(responses.map(({ stdout }) => pidOf(stdout)));
    for (const pid of fresh) assert.ok(!pids.has(pid), `pid ${pid} was killed`);
    assert.ok(client.stats.open <= CHILDREN);
    assert.equal(client.stats.requests, CHILDREN + 8);
  });

  test('php-fpm restarted at the same address: idle connections are dropped and replaced', LIMIT, async (t) => {
    const client = clientFor(t);
    const pids = await fillIdle(client);
    const address = fpm.address;
    const exited = once(fpm.process, 'exit');
    await fpm.stop();
    await exited;
    await waitFor('the pool to drop the connections php-fpm closed', () => client.stats.open === 0);
    fpm = await startFpm({ address, pool: { 'pm.max_children': String(CHILDREN) } });
    const { stdout, result } = await dispatch(client, busy(0)).done;
    assert.equal(result.protocolStatus, 0);
    assert.ok(!pids.has(pidOf(stdout)), 'served by a child of the new master');
    assert.equal(client.stats.open, 1);
  });
});

describe('a peer that closes kept-alive connections after each request (php-fpm pm.max_requests = 1)', () => {
  let recycling: Peer;

  before(async () => {
    recycling = await startFpm({ pool: { 'pm.max_children': '2', 'pm.max_requests': '1' } });
  });

  after(async () => {
    await recycling.stop();
  });

  test('GETs sent on a connection its child just closed are sent again on a fresh one: none fails', LIMIT, async (t) => {
    const client = new FastCGIClient({ address: recycling.address, maxConns: 2 });
    t.after(() => client.destroy());
    const results = await Promise.allSettled(Array.from({ length: 60 }, () => dispatch(client, { params: phpParams('hello.php') }).done));
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), []);
  });

  test('on a unix socket, without maxRequestsPerConnection (a count out of step): POSTs caught by the close are proven unrun and sent again', LIMIT, async (t) => {
    // A unix socket tells a peer that still reads from one that is gone (see FastCGIConnection#onPeerEnd).
    const unix = await startFpm({ transport: 'unix', pool: { 'pm.max_children': '2', 'pm.max_requests': '1' } });
    const client = new FastCGIClient({ address: unix.address, maxConns: 2 });
    t.after(async () => {
      client.destroy();
      await unix.stop();
    });
    const post = (i: number) =>
      dispatch(client, {
        params: phpParams('echo.php', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(String(i).length) }),
        body: Buffer.from(String(i)),
      }).done;
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => post(i)));
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), []);
    // Each answer is for its own body: nothing was mixed up or run twice on the way.
    const bodies = results.map((r) => JSON.parse(cgi((r as PromiseFulfilledResult<{ stdout: string }>).value.stdout).body) as { bodyMd5: string });
    assert.equal(new Set(bodies.map((b) => b.bodyMd5)).size, 60);
    t.diagnostic(`${client.stats.retries} of 60 POSTs were sent on a connection php-fpm was closing, and sent again`);
  });

  test('maxRequestsPerConnection: a connection is closed after its last request, so POST bodies are never lost', LIMIT, async (t) => {
    const client = new FastCGIClient({ address: recycling.address, maxConns: 2, maxRequestsPerConnection: 1 });
    t.after(() => client.destroy());
    const post = (i: number) =>
      dispatch(client, {
        params: phpParams('echo.php', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(String(i).length) }),
        body: String(i),
      }).done;
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => post(i)));
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), []);
    assert.equal(client.stats.retries, 0, 'nothing needed sending twice');
  });
});
