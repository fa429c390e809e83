// How the FastCGI client fails, against real peers: refused and timed-out connects, read and write
// timeouts, aborts, a peer that dies, and (from a raw socket, since no PHP sends them) protocol
// violations. Each failure must reach the caller as its own class and stable code, and nothing hangs.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test, type TestContext } from 'node:test';
import {
  FastCGIAbortError,
  FastCGIConnectionError,
  FastCGIProtocolError,
  FastCGITimeoutError,
  TQServerError,
  httpStatusFor,
} from '../src/errors.js';
import { FastCGIClient, FastCGIConnection, type FastCGIResponse } from '../src/fastcgi/index.js';
import type { Address } from '../src/fastcgi/address.js';
import { freePort, startPhpCgi, tempDir, type Peer } from './helpers/peers.js';
import { cgi, phpParams, postParams, rejection, startFpm } from './client-support.js';

/** Every test fails rather than hangs: nothing here should take more than a few seconds. */
const LIMIT = { timeout: 20_000 };

const MiB = 1024 * 1024;

let fpm: Peer;
/**
 * php-cgi (one process) listening with PHP_FCGI_BACKLOG=0: while it runs a script, one more
 * connection waits in its accept queue and the kernel drops further SYNs.
 */
let backlogged: Peer;
/** Closes what the file opened for all its tests (the raw socket servers). */
const cleanups: Array<() => unknown> = [];

before(async () => {
  [fpm, backlogged] = await Promise.all([startFpm({ pool: { 'pm.max_children': '4' } }), startPhpCgi({ env: { PHP_FCGI_BACKLOG: '0' } })]);
  // Once a request went through, the harness's connect probe has left the tiny accept queue.
  await servesHello(backlogged.address);
});

after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await Promise.all([fpm.stop(), backlogged.stop()]);
});

async function servesHello(address: Address): Promise<void> {
  const connection = await connectPast(address);
  try {
    const { stdout } = await connection.request({ params: phpParams('hello.php') }).text();
    assert.equal(cgi(stdout).body, 'Hello from PHP\n');
  } finally {
    connection.destroy();
  }
}

/**
 * Connects to a php-cgi started with PHP_FCGI_BACKLOG=0 on a unix socket, where a connect fails
 * with EAGAIN while another connection waits to be accepted (the harness's readiness probe, at
 * first): tries again once php-cgi had a moment to accept it.
 */
async function connectPast(address: Address): Promise<FastCGIConnection> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await FastCGIConnection.connect(address);
    } catch (error) {
      const busy = error instanceof Error && (error.cause as NodeJS.ErrnoException | undefined)?.code === 'EAGAIN';
      if (!busy || attempt === 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

/**
 * Connects to php-fpm for one test and destroys the connection after it: a kept-alive connection
 * pins a php-fpm child, and a test that left one open would make later connects wait for a child.
 */
async function connectFpm(t: TestContext, options: Parameters<typeof FastCGIConnection.connect>[1] = {}): Promise<FastCGIConnection> {
  const connection = await FastCGIConnection.connect(fpm.address, options);
  t.after(() => connection.destroy());
  return connection;
}

function clientFor(t: TestContext, address: Address, options: Omit<ConstructorParameters<typeof FastCGIClient>[0], 'address'> = {}): FastCGIClient {
  const client = new FastCGIClient({ address, ...options });
  t.after(() => client.destroy());
  return client;
}

/** Resolves with the first stdout bytes of a busy.php response: the script is running. */
async function firstOutput(response: FastCGIResponse): Promise<string> {
  const [chunk] = (await once(response.stdout, 'data')) as [Buffer];
  return chunk.toString('latin1');
}

/** Resolves with the connection's close reason. */
function closeOf(connection: FastCGIConnection): Promise<Error | null> {
  if (connection.state === 'closed') return Promise.resolve(connection.closeError);
  return new Promise((resolve) => connection.once('close', (_c: FastCGIConnection, reason: Error | null) => resolve(reason)));
}

// ---- the failures, each produced for real ----

async function refusedError(): Promise<Error & { code?: string }> {
  const port = await freePort();
  return rejection(FastCGIConnection.connect({ host: '127.0.0.1', port }));
}

/**
 * A connect that cannot complete on loopback: php-cgi (one process, PHP_FCGI_BACKLOG=0) runs a
 * script, a second connection fills its accept queue, and the kernel drops the next SYN.
 */
async function connectTimeoutError(connectTimeoutMs: number): Promise<{ error: Error & { code?: string }; elapsedMs: number }> {
  const busy = await FastCGIConnection.connect(backlogged.address);
  const response = busy.request({ params: phpParams('busy.php', { QUERY_STRING: 'ms=600' }) });
  try {
    await firstOutput(response);
    const filler = await FastCGIConnection.connect(backlogged.address, { connectTimeoutMs: 2000 });
    try {
      const started = Date.now();
      const error = await rejection(FastCGIConnection.connect(backlogged.address, { connectTimeoutMs }));
      return { error, elapsedMs: Date.now() - started };
    } finally {
      filler.destroy();
    }
  } finally {
    await response.text();
    busy.destroy();
  }
}

/** A raw TCP server that answers every connection with `reply` (no real PHP sends garbage). */
async function rawPeer(reply: Buffer): Promise<Address> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.write(reply));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
}

async function protocolError(reply: Buffer): Promise<{ error: Error & { code?: string }; connection: FastCGIConnection }> {
  const connection = await FastCGIConnection.connect(await rawPeer(reply));
  const error = await rejection(connection.request({ params: phpParams('hello.php') }).done);
  return { error, connection };
}

async function peerClosedError(t: TestContext): Promise<Error & { code?: string }> {
  const connection = await connectFpm(t);
  const response = connection.request({ params: phpParams('busy.php', { QUERY_STRING: 'ms=5000' }) });
  const pid = Number(cgi(await firstOutput(response)).body.trim());
  process.kill(pid, 'SIGKILL');
  return rejection(response.done);
}

/** A FastCGI record, encoded by hand so the raw-peer tests depend on nothing under test. */
function record(type: number, requestId: number, content: Buffer = Buffer.alloc(0)): Buffer {
  const padding = (8 - (content.length % 8)) % 8;
  const header = Buffer.from([1, type, requestId >> 8, requestId & 0xff, content.length >> 8, content.length & 0xff, padding, 0]);
  return Buffer.concat([header, content, Buffer.alloc(padding)]);
}

function nameValuePairs(pairs: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(pairs)) {
    for (const length of [Buffer.byteLength(name), Buffer.byteLength(value)]) {
      if (length < 128) parts.push(Buffer.from([length]));
      else parts.push(Buffer.from([(length >>> 24) | 0x80, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff]));
    }
    parts.push(Buffer.from(name), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

describe('connect failures', () => {
  test('FCGI_CONNECT_REFUSED: a TCP port nothing listens on', LIMIT, async () => {
    const error = await refusedError();
    assert.ok(error instanceof FastCGIConnectionError);
    assert.equal(error.code, 'FCGI_CONNECT_REFUSED');
    assert.match(error.message, /refused \(ECONNREFUSED\)/);
  });

  test('FCGI_CONNECT_REFUSED: a unix socket path that does not exist', LIMIT, async (t) => {
    const dir = await tempDir();
    t.after(dir.cleanup);
    const error = await rejection(FastCGIConnection.connect({ path: join(dir.path, 'nobody.sock') }));
    assert.ok(error instanceof FastCGIConnectionError);
    assert.equal(error.code, 'FCGI_CONNECT_REFUSED');
    assert.match(error.message, /ENOENT/);
  });

  test('FCGI_CONNECT_REFUSED: a stale unix socket left by a php-cgi killed with SIGKILL', LIMIT, async (t) => {
    const peer = await startPhpCgi({ transport: 'unix' });
    t.after(() => peer.stop());
    const exited = once(peer.process, 'exit');
    process.kill(peer.pid, 'SIGKILL');
    await exited;
    const error = await rejection(FastCGIConnection.connect(peer.address));
    assert.ok(error instanceof FastCGIConnectionError);
    assert.equal(error.code, 'FCGI_CONNECT_REFUSED');
    assert.match(error.message, /ECONNREFUSED/);
  });

  test('FCGI_CONNECT_REFUSED reaches a FastCGIClient request, which leaves no connection behind', LIMIT, async (t) => {
    const client = clientFor(t, { host: '127.0.0.1', port: await freePort() });
    const response = client.request({ params: phpParams('hello.php') });
    const error = await rejection(response.done);
    assert.equal((error as TQServerError).code, 'FCGI_CONNECT_REFUSED');
    assert.deepEqual(client.stats, { open: 0, idle: 0, busy: 0, connecting: 0, queued: 0, requests: 0, retries: 0 });
  });

  test('FCGI_CONNECT_TIMEOUT: the peer accept queue is full (php-cgi busy, PHP_FCGI_BACKLOG=0)', LIMIT, async () => {
    const { error, elapsedMs } = await connectTimeoutError(150);
    assert.ok(error instanceof FastCGITimeoutError);
    assert.equal(error.code, 'FCGI_CONNECT_TIMEOUT');
    assert.match(error.message, /timed out after 150 ms/);
    assert.ok(elapsedMs >= 140 && elapsedMs < 1000, `gave up after ${elapsedMs} ms`);
    // php-cgi is free again and serves the next connection.
    const connection = await FastCGIConnection.connect(backlogged.address);
    const { stdout } = await connection.request({ params: phpParams('hello.php') }).text();
    connection.destroy();
    assert.equal(cgi(stdout).body, 'Hello from PHP\n');
  });

  test('a unix socket whose backlog is full fails at once with EAGAIN (FCGI_CONNECTION_ERROR), not a timeout', LIMIT, async (t) => {
    const peer = await startPhpCgi({ transport: 'unix', env: { PHP_FCGI_BACKLOG: '0' } });
    t.after(() => peer.stop());
    await servesHello(peer.address);
    const busy = await FastCGIConnection.connect(peer.address);
    const response = busy.request({ params: phpParams('busy.php', { QUERY_STRING: 'ms=300' }) });
    await firstOutput(response);
    const filler = await FastCGIConnection.connect(peer.address);
    const started = Date.now();
    const error = await rejection(FastCGIConnection.connect(peer.address, { connectTimeoutMs: 5000 }));
    assert.ok(Date.now() - started < 1000);
    filler.destroy();
    await response.text();
    busy.destroy();
    assert.ok(error instanceof FastCGIConnectionError);
    assert.equal(error.code, 'FCGI_CONNECTION_ERROR');
    assert.match(error.message, /EAGAIN.*backlog is full/);
  });
});

describe('read and write timeouts', () => {
  test('FCGI_READ_TIMEOUT: sleep.php says nothing for longer than readTimeoutMs', LIMIT, async (t) => {
    const connection = await connectFpm(t, { readTimeoutMs: 150 });
    const started = Date.now();
    const response = connection.request({ params: phpParams('sleep.php', { QUERY_STRING: 'ms=1000' }) });
    const error = await rejection(response.done);
    const elapsedMs = Date.now() - started;
    assert.ok(error instanceof FastCGITimeoutError);
    assert.equal(error.code, 'FCGI_READ_TIMEOUT');
    assert.match(error.message, /sent nothing for 150 ms/);
    assert.ok(elapsedMs >= 140 && elapsedMs < 900, `timed out after ${elapsedMs} ms`);
    assert.equal(await closeOf(connection), error);
  });

  test('a request readTimeoutMs overrides the connection default', LIMIT, async (t) => {
    const connection = await connectFpm(t, { readTimeoutMs: 60_000 });
    const error = await rejection(connection.request({ params: phpParams('sleep.php', { QUERY_STRING: 'ms=1000' }), readTimeoutMs: 100 }).done);
    assert.equal((error as TQServerError).code, 'FCGI_READ_TIMEOUT');
    assert.match(error.message, /sent nothing for 100 ms/);
  });

  test('a reader that stops reading is not a read timeout', LIMIT, async (t) => {
    const connection = await connectFpm(t, { readTimeoutMs: 100 });
    const response = connection.request({ params: phpParams('stream.php', { QUERY_STRING: 'mb=2' }) });
    let bytes = 0;
    for await (const chunk of response.stdout) {
      if (bytes === 0) {
        // The consumer, not the peer, stalls for three read timeouts; the socket is paused meanwhile.
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      bytes += (chunk as Buffer).length;
    }
    const result = await response.done;
    assert.equal(result.stdoutBytes, bytes);
    assert.ok(bytes > 2 * MiB);
    assert.equal(connection.state, 'idle');
  });

  test('FCGI_WRITE_TIMEOUT: PHP sleeps without reading a 32 MB body', LIMIT, async (t) => {
    // Over post_max_size (8M), PHP leaves the body unread at startup; sleep.php never reads it.
    const body = Buffer.alloc(32 * MiB, 0x5a);
    const connection = await connectFpm(t, { writeTimeoutMs: 200 });
    const started = Date.now();
    const response = connection.request({ params: postParams('sleep.php', body.length, { QUERY_STRING: 'ms=1500' }), body });
    const error = await rejection(response.done);
    const elapsedMs = Date.now() - started;
    assert.ok(error instanceof FastCGITimeoutError);
    assert.equal(error.code, 'FCGI_WRITE_TIMEOUT');
    assert.match(error.message, /accepted no data for 200 ms/);
    assert.ok(elapsedMs < 1400, `timed out after ${elapsedMs} ms, not before the script ended`);
    assert.equal(await closeOf(connection), error);
  });

  test('the write timeout measures progress, not the whole body: a peer reading 12 MB slowly succeeds (regression)', LIMIT, async (t) => {
    // slow-read.php takes the body 64 KiB every 10 ms, about 6 MB/s: two seconds in all. The client
    // used to hand a large Buffer body to the socket in one write, which drains only once all of it
    // was taken; the kernel then wakes the writer in large steps, and with writeTimeoutMs 200 it
    // failed with FCGI_WRITE_TIMEOUT after about 400 ms (measured). Now the body goes in 64 KiB
    // pieces and each drain counts as progress.
    const body = Buffer.alloc(12 * MiB);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
    const connection = await connectFpm(t, { writeTimeoutMs: 200 });
    const response = connection.request({ params: postParams('slow-read.php', body.length, { QUERY_STRING: 'kb=64&ms=10' }), body });
    const { stdout } = await response.text();
    const report = JSON.parse(cgi(stdout).body) as { bodyBytes: number; bodyMd5: string };
    assert.equal(report.bodyBytes, body.length);
    assert.equal(report.bodyMd5, createHash('md5').update(body).digest('hex'));
    assert.equal(connection.state, 'idle');
  });
});

describe('aborts', () => {
  test('PHP closes the connection after END_REQUEST when an FCGI_ABORT_REQUEST is pending (raw socket)', LIMIT, async () => {
    // What the client's abort handling is built on: php-fpm ignores ABORT_REQUEST while the script
    // runs, ends the request normally, then reads the ABORT_REQUEST as the start of the next request
    // and closes the connection although FCGI_KEEP_CONN was set.
    const socket = net.connect(fpm.address as net.NetConnectOpts);
    await once(socket, 'connect');
    const params = nameValuePairs(phpParams('busy.php', { QUERY_STRING: 'ms=200' }) as Record<string, string>);
    socket.write(
      Buffer.concat([
        record(1, 1, Buffer.from([0, 1, 1, 0, 0, 0, 0, 0])), // BEGIN_REQUEST, responder, KEEP_CONN
        record(4, 1, params),
        record(4, 1),
        record(5, 1),
      ]),
    );
    const types: number[] = [];
    let pending = Buffer.alloc(0);
    let sentAbort = false;
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 8) {
        const length = pending.readUInt16BE(4) + pending[6]!;
        if (pending.length < 8 + length) break;
        types.push(pending[1]!);
        pending = pending.subarray(8 + length);
      }
      if (!sentAbort && types.includes(6)) {
        sentAbort = true;
        socket.write(record(2, 1)); // ABORT_REQUEST once the script is running
      }
    });
    await once(socket, 'end');
    socket.destroy();
    assert.equal(types.at(-1), 3, 'the request still ended with END_REQUEST');
    assert.ok(types.includes(6), 'and with the script output');
  });

  test('an AbortSignal mid-response: FCGI_REQUEST_ABORTED, and the connection closes once PHP ends the request', LIMIT, async (t) => {
    const connection = await connectFpm(t);
    const controller = new AbortController();
    const response = connection.request({ params: phpParams('busy.php', { QUERY_STRING: 'ms=200' }), signal: controller.signal });
    await firstOutput(response);
    const reason = new Error('the HTTP client went away');
    controller.abort(reason);
    const error = await rejection(response.done);
    assert.ok(error instanceof FastCGIAbortError);
    assert.equal(error.code, 'FCGI_REQUEST_ABORTED');
    assert.equal(error.cause, reason);
    assert.equal(response.stdout.errored, error);
    // FCGI_ABORT_REQUEST is out; output is discarded until END_REQUEST, then the connection closes
    // on its own (no error: the grace period did not run out).
    assert.equal(connection.state, 'draining');
    assert.equal(await closeOf(connection), null);
    assert.equal(connection.requestsServed, 0);
  });

  test('an aborted request is not followed by another on its connection: the next one succeeds (regression)', LIMIT, async (t) => {
    // With one connection, the second request waits while the first is aborted. It used to be sent
    // on that connection right after END_REQUEST, and PHP then closed it: FCGI_PEER_CLOSED.
    const client = clientFor(t, fpm.address, { maxConns: 1 });
    const first = client.request({ params: phpParams('busy.php', { QUERY_STRING: 'ms=150' }) });
    await firstOutput(first);
    const second = client.request({ params: phpParams('pid.php') });
    assert.equal(client.stats.queued, 1);
    first.abort('gave up');
    assert.equal((await rejection(first.done) as TQServerError).code, 'FCGI_REQUEST_ABORTED');
    const { stdout, result } = await second.text();
    assert.match(cgi(stdout).body, /^\d+$/);
    assert.equal(result.protocolStatus, 0);
    assert.equal(client.stats.requests, 2);
    assert.ok(client.stats.open <= 1);
  });

  test('destroying stdout mid-response aborts; the next request through a FastCGIClient succeeds', LIMIT, async (t) => {
    const client = clientFor(t, fpm.address, { maxConns: 1 });
    const response = client.request({ params: phpParams('stream.php', { QUERY_STRING: 'mb=20' }) });
    await once(response.stdout, 'data');
    response.stdout.destroy();
    const error = await rejection(response.done);
    assert.ok(error instanceof FastCGIAbortError);
    assert.match(error.message, /stdout was closed by its reader/);
    const { stdout } = await client.request({ params: phpParams('hello.php') }).text();
    assert.equal(cgi(stdout).body, 'Hello from PHP\n');
    assert.equal(client.stats.open, 1);
  });

  test('a script that outlives abortGraceMs: the connection is destroyed when the grace ends', LIMIT, async (t) => {
    const connection = await connectFpm(t, { abortGraceMs: 100 });
    const response = connection.request({ params: phpParams('busy.php', { QUERY_STRING: 'ms=1500' }) });
    await firstOutput(response);
    const started = Date.now();
    response.abort();
    const error = await rejection(response.done);
    assert.equal((error as TQServerError).code, 'FCGI_REQUEST_ABORTED');
    assert.equal(await closeOf(connection), error);
    const elapsedMs = Date.now() - started;
    assert.ok(elapsedMs >= 90 && elapsedMs < 1000, `closed after ${elapsedMs} ms`);
  });

  test('an abort while the body is still being sent closes the connection at once', LIMIT, async (t) => {
    const connection = await connectFpm(t);
    let pulls = 0;
    // A body that sends one piece and then never ends, like a stalled upload.
    const body = new Readable({
      read() {
        if (pulls++ === 0) this.push(Buffer.alloc(1024, 1));
      },
    });
    const controller = new AbortController();
    const response = connection.request({ params: postParams('echo.php', 1_000_000), body, signal: controller.signal });
    await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    const error = await rejection(response.done);
    assert.equal((error as TQServerError).code, 'FCGI_REQUEST_ABORTED');
    assert.equal(connection.state, 'closed');
    assert.equal(connection.closeError, error);
  });

  test('an AbortSignal aborted before dispatch sends nothing and leaves the connection idle', LIMIT, async (t) => {
    const connection = await connectFpm(t);
    const response = connection.request({ params: phpParams('hello.php'), signal: AbortSignal.abort('too late') });
    const error = await rejection(response.done);
    assert.ok(error instanceof FastCGIAbortError);
    assert.equal(error.cause, 'too late');
    assert.equal(connection.state, 'idle');
    const { stdout } = await connection.request({ params: phpParams('hello.php') }).text();
    assert.equal(cgi(stdout).body, 'Hello from PHP\n');
    assert.equal(connection.requestsServed, 1);
  });
});

describe('protocol violations (a raw socket peer)', () => {
  test('an HTTP server at the FastCGI address: FCGI_BAD_VERSION, the connection is dropped', LIMIT, async () => {
    const { error, connection } = await protocolError(Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'));
    assert.ok(error instanceof FastCGIProtocolError);
    assert.equal(error.code, 'FCGI_BAD_VERSION');
    assert.equal(connection.state, 'closed');
    assert.equal(connection.closeError, error);
  });

  test('output for another request id: FCGI_BAD_REQUEST_ID', LIMIT, async () => {
    const { error } = await protocolError(record(6, 2, Buffer.from('Status: 200\r\n\r\nwrong request')));
    assert.ok(error instanceof FastCGIProtocolError);
    assert.equal(error.code, 'FCGI_BAD_REQUEST_ID');
  });

  test('a record type only a web server sends (BEGIN_REQUEST): FCGI_UNEXPECTED_RECORD', LIMIT, async () => {
    const { error } = await protocolError(record(1, 1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])));
    assert.ok(error instanceof FastCGIProtocolError);
    assert.equal(error.code, 'FCGI_UNEXPECTED_RECORD');
  });
});

/**
 * A unix-socket peer that answers the first request on each connection with its body, then, once
 * the next request has arrived on that connection, either shuts its write side and reads on until
 * we close (what php-fpm's fcgi_close does after a child's last request: `drain`), or closes the
 * socket outright (a peer that dies after reading the request: `die`). Real php-fpm makes the
 * moment a matter of microseconds; here it is certain. Returns its address and what it answered.
 */
async function closingPeer(mode: 'drain' | 'die'): Promise<{ address: Address; answered: string[]; connections: () => number }> {
  const answered: string[] = [];
  let connections = 0;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    connections += 1;
    socket.on('error', () => {});
    socket.on('end', () => socket.destroy());
    let input = Buffer.alloc(0);
    let answeredFirst = false;
    socket.on('data', (chunk: Buffer) => {
      input = Buffer.concat([input, chunk]);
      // Everything received so far, record by record: type at byte 1, content length at 4-5, padding at 6.
      let requests = 0;
      let body = Buffer.alloc(0);
      for (let at = 0; at + 8 <= input.length; ) {
        const contentLength = input.readUInt16BE(at + 4);
        const end = at + 8 + contentLength + input[at + 6]!;
        if (end > input.length) break;
        const type = input[at + 1]!;
        if (type === 1) requests += 1;
        if (type === 5 && requests === 1 && contentLength > 0) body = Buffer.concat([body, input.subarray(at + 8, at + 8 + contentLength)]);
        if (type === 5 && requests === 1 && contentLength === 0 && !answeredFirst) {
          answeredFirst = true;
          answered.push(body.toString());
          socket.write(Buffer.concat([record(6, 1, Buffer.from(`Status: 200\r\n\r\n${body.toString()}`)), record(6, 1), record(3, 1, Buffer.alloc(8))]));
        }
        at = end;
      }
      if (requests >= 2 && !socket.writableEnded && !socket.destroyed) {
        if (mode === 'drain') socket.end();
        else socket.destroy();
      }
    });
  });
  const dir = await tempDir();
  const path = join(dir.path, 'closing.sock');
  server.listen(path);
  await once(server, 'listening');
  cleanups.push(() => dir.cleanup());
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { address: { path }, answered, connections: () => connections };
}

describe('a peer that closes a kept-alive connection while a request is on its way (unix socket)', () => {
  const post = (client: FastCGIClient, body: string) => client.request({ params: postParams('echo.php', body.length), body: Buffer.from(body) }).text();

  test('it shut its write side and still reads (php-fpm after its last request): the POST was not run and goes again', LIMIT, async (t) => {
    const peer = await closingPeer('drain');
    const client = clientFor(t, peer.address, { maxConns: 1 });
    // B waits for the one connection and is sent on it the moment A's END_REQUEST arrives.
    const [a, b] = await Promise.all([post(client, 'first body'), post(client, 'second body')]);
    assert.equal(cgi(a.stdout).body, 'first body');
    assert.equal(cgi(b.stdout).body, 'second body');
    assert.deepEqual(peer.answered, ['first body', 'second body'], 'each body answered once, the second on a new connection');
    assert.equal(peer.connections(), 2);
    assert.equal(client.stats.retries, 1);
  });

  test('it closed outright after reading the request (it may have run it): the POST fails, never sent twice', LIMIT, async (t) => {
    const peer = await closingPeer('die');
    const client = clientFor(t, peer.address, { maxConns: 1 });
    const [a, b] = await Promise.allSettled([post(client, 'first body'), post(client, 'second body')]);
    assert.equal(a.status, 'fulfilled');
    assert.equal(b.status, 'rejected');
    const error = (b as PromiseRejectedResult).reason as FastCGIConnectionError;
    assert.ok(error instanceof FastCGIConnectionError);
    assert.equal(error.code, 'FCGI_PEER_CLOSED');
    assert.equal(error.unprocessed, false);
    assert.match(error.message, /closed the connection before ending the request/);
    assert.equal(client.stats.retries, 0);
    assert.equal(peer.connections(), 1);
  });
});

test('a caller tells refused, timed out, protocol violation, peer closed and aborted apart by class and code', LIMIT, async (t) => {
  const refused = await refusedError();
  const { error: timedOut } = await connectTimeoutError(100);
  const { error: violation } = await protocolError(Buffer.from('garbage, not FastCGI'));
  const closed = await peerClosedError(t);
  const connection = await connectFpm(t);
  const aborted = await rejection(connection.request({ params: phpParams('hello.php'), signal: AbortSignal.abort() }).done);

  const seen = [refused, timedOut, violation, closed, aborted].map((error) => ({
    class: error.constructor.name,
    code: (error as TQServerError).code,
    status: httpStatusFor(error),
  }));
  assert.deepEqual(seen, [
    { class: 'FastCGIConnectionError', code: 'FCGI_CONNECT_REFUSED', status: 502 },
    { class: 'FastCGITimeoutError', code: 'FCGI_CONNECT_TIMEOUT', status: 504 },
    { class: 'FastCGIProtocolError', code: 'FCGI_BAD_VERSION', status: 502 },
    { class: 'FastCGIConnectionError', code: 'FCGI_PEER_CLOSED', status: 502 },
    { class: 'FastCGIAbortError', code: 'FCGI_REQUEST_ABORTED', status: 499 },
  ]);
  for (const error of [refused, timedOut, violation, closed, aborted]) assert.ok(error instanceof TQServerError);
  assert.ok(!(timedOut instanceof FastCGIConnectionError), 'a timeout is not a connection error');
  assert.ok(!(violation instanceof FastCGIConnectionError), 'a protocol violation is not a connection error');
});
