// One conformance suite for FastCGIConnection, run against every real PHP peer we talk to: php-cgi and
// php-fpm, each over TCP and over a unix socket. What PHP really does is asserted, not assumed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { FastCGIConnectionError } from '../src/errors.js';
import { FastCGIConnection, type EndResult, type RequestBody } from '../src/fastcgi/index.js';
import { startPhpCgi, type Peer } from './helpers/peers.js';
import { cgi, liveBufferBytes, phpParams, postParams, rejection, startFpm } from './client-support.js';

/** Every test fails rather than hangs: nothing here should take more than a few seconds. */
const LIMIT = { timeout: 20_000 };

interface PeerKind {
  name: string;
  php: 'php-cgi' | 'php-fpm';
  start(): Promise<Peer>;
}

const PEERS: PeerKind[] = [
  { name: 'php-cgi over TCP', php: 'php-cgi', start: () => startPhpCgi({ transport: 'tcp' }) },
  { name: 'php-cgi over a unix socket', php: 'php-cgi', start: () => startPhpCgi({ transport: 'unix' }) },
  { name: 'php-fpm over TCP', php: 'php-fpm', start: () => startFpm({ transport: 'tcp' }) },
  { name: 'php-fpm over a unix socket', php: 'php-fpm', start: () => startFpm({ transport: 'unix' }) },
];

const MiB = 1024 * 1024;

function md5(data: Buffer | string): string {
  return createHash('md5').update(data).digest('hex');
}

/** What echo.php reports about the body it received. */
interface Echo {
  pid: number;
  method: string;
  contentLength: string | null;
  bodyBytes: number;
  bodyMd5: string;
}

for (const kind of PEERS) {
  describe(`FastCGIConnection against ${kind.name}`, () => conformance(kind));
}

function conformance(kind: PeerKind): void {
  let peer: Peer;
  const open = new Set<FastCGIConnection>();

  before(async () => {
    peer = await kind.start();
  });

  after(async () => {
    for (const connection of open) connection.destroy();
    await peer.stop();
  });

  /**
   * Runs `fn` on a new connection and closes it afterwards: a kept-alive connection pins the only
   * php-cgi process (and a php-fpm child), so a test that left one open would starve the next.
   */
  async function withConnection<T>(fn: (connection: FastCGIConnection) => Promise<T>): Promise<T> {
    const connection = await FastCGIConnection.connect(peer.address);
    open.add(connection);
    try {
      return await fn(connection);
    } finally {
      connection.destroy();
      open.delete(connection);
    }
  }

  async function post(body: RequestBody, bytes: number): Promise<{ echo: Echo; result: EndResult }> {
    return withConnection(async (connection) => {
      const { stdout, result } = await connection.request({ params: postParams('echo.php', bytes), body }).text();
      return { echo: JSON.parse(cgi(stdout).body) as Echo, result };
    });
  }

  test('GET returns the CGI head and body, then END_REQUEST with FCGI_REQUEST_COMPLETE', LIMIT, async () => {
    await withConnection(async (connection) => {
      const { stdout, stderr, result } = await connection.request({ params: phpParams('hello.php') }).text();
      const { headers, body } = cgi(stdout);
      assert.equal(body, 'Hello from PHP\n');
      assert.equal(headers.get('content-type'), 'text/html; charset=UTF-8');
      assert.equal(headers.has('status'), false, 'a 200 carries no Status header');
      assert.equal(stderr, '');
      assert.deepEqual(result, { appStatus: 0, protocolStatus: 0, stdoutBytes: Buffer.byteLength(stdout), stderrBytes: 0 });
      assert.equal(connection.state, 'idle');
      assert.equal(connection.requestsServed, 1);
    });
  });

  test('GET passes the query string and method through to PHP', LIMIT, async () => {
    await withConnection(async (connection) => {
      const { stdout } = await connection.request({ params: phpParams('echo.php', { QUERY_STRING: 'a=1&b=two' }) }).text();
      const echo = JSON.parse(cgi(stdout).body) as Echo & { query: Record<string, string> };
      assert.equal(echo.method, 'GET');
      assert.deepEqual(echo.query, { a: '1', b: 'two' });
      assert.equal(echo.bodyBytes, 0);
    });
  });

  for (const bytes of [0, 1, 10 * MiB]) {
    test(`POST of ${bytes} bytes as a Buffer reaches PHP whole (size and md5)`, LIMIT, async () => {
      const body = Buffer.alloc(bytes);
      for (let i = 0; i < bytes; i++) body[i] = (i * 31 + 7) & 0xff;
      const { echo, result } = await post(body, bytes);
      assert.equal(echo.method, 'POST');
      assert.equal(echo.contentLength, String(bytes));
      assert.equal(echo.bodyBytes, bytes);
      assert.equal(echo.bodyMd5, md5(body));
      assert.equal(result.appStatus, 0);
    });
  }

  test('POST body given as a string is sent as its UTF-8 bytes', LIMIT, async () => {
    const text = 'héllo, wörld ✓ — '.repeat(5000);
    const bytes = Buffer.byteLength(text);
    assert.notEqual(bytes, text.length, 'the text has multi-byte characters');
    const { echo } = await post(text, bytes);
    assert.equal(echo.bodyBytes, bytes);
    assert.equal(echo.bodyMd5, md5(Buffer.from(text, 'utf8')));
  });

  test('POST body given as a Readable stream', LIMIT, async () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < 48; i++) chunks.push(Buffer.alloc(64 * 1024 + i, i));
    const whole = Buffer.concat(chunks);
    const { echo } = await post(Readable.from(chunks), whole.length);
    assert.equal(echo.bodyBytes, whole.length);
    assert.equal(echo.bodyMd5, md5(whole));
  });

  test('POST body given as an async iterable of strings and Buffers', LIMIT, async () => {
    const pieces: Array<Buffer | string> = ['first,', Buffer.from([0, 1, 2, 255]), '', 'ünïcode,', Buffer.alloc(200_000, 0x61), 'last'];
    async function* body(): AsyncGenerator<Buffer | string> {
      for (const piece of pieces) {
        await new Promise((resolve) => setImmediate(resolve));
        yield piece;
      }
    }
    const whole = Buffer.concat(pieces.map((piece) => (typeof piece === 'string' ? Buffer.from(piece) : piece)));
    const { echo } = await post(body(), whole.length);
    assert.equal(echo.bodyBytes, whole.length);
    assert.equal(echo.bodyMd5, md5(whole));
  });

  test('a 20 MB response streams to a slow reader with bounded buffering', LIMIT, async () => {
    await withConnection(async (connection) => {
      const response = connection.request({ params: phpParams('stream.php', { QUERY_STRING: 'mb=20' }) });
      const hash = createHash('md5');
      const piece = Buffer.from('0123456789abcdef'.repeat(4096));
      let head = Buffer.alloc(0);
      let bodyBytes = 0;
      let maxBuffered = 0;
      const baseline = liveBufferBytes();
      let maxGrowth = 0;
      const slowReader = new Writable({
        highWaterMark: 16 * 1024,
        write(chunk: Buffer, _encoding, callback) {
          maxBuffered = Math.max(maxBuffered, response.stdout.readableLength);
          if (bodyBytes === 0 && head.indexOf('\r\n\r\n') < 0) {
            // Still in the CGI head: keep it apart from the body.
            head = Buffer.concat([head, chunk]);
            const end = head.indexOf('\r\n\r\n');
            if (end < 0) return setImmediate(callback);
            chunk = head.subarray(end + 4);
            head = head.subarray(0, end + 4);
          }
          const before = bodyBytes;
          bodyBytes += chunk.length;
          hash.update(chunk);
          // Every 2 MiB, what is still held after a full GC: the body read so far must not be among it.
          if (Math.floor(before / (2 * MiB)) !== Math.floor(bodyBytes / (2 * MiB))) maxGrowth = Math.max(maxGrowth, liveBufferBytes() - baseline);
          // A slow consumer: one chunk per turn of the event loop.
          setImmediate(callback);
        },
      });
      await pipeline(response.stdout, slowReader);
      const result = await response.done;

      assert.match(head.toString('latin1'), /^Content-Type: application\/octet-stream\r\n/i);
      assert.equal(bodyBytes, 20 * MiB);
      const expected = createHash('md5');
      for (let i = 0; i < 20 * 16; i++) expected.update(piece);
      assert.equal(hash.digest('hex'), expected.digest('hex'));
      assert.equal(result.stdoutBytes, head.length + 20 * MiB);
      // The Readable holds at most its high-water mark plus the rest of one socket read (64 KiB).
      assert.ok(maxBuffered <= 128 * 1024, `stdout buffered ${maxBuffered} bytes`);
      // Measured: up to about 2 MiB of socket reads in flight; buffering the response would hold 10-20 MiB.
      assert.ok(maxGrowth < 8 * MiB, `live Buffer memory grew by ${maxGrowth} bytes while streaming 20 MiB`);
      assert.equal(connection.state, 'idle');
    });
  });

  test('FCGI_STDERR (error_log) arrives on stderr, apart from stdout', LIMIT, async () => {
    await withConnection(async (connection) => {
      const { stdout, stderr, result } = await connection.request({ params: phpParams('log.php', { QUERY_STRING: 'lines=3' }) }).text();
      assert.equal(cgi(stdout).body, 'logged 3 lines\n');
      assert.doesNotMatch(stdout, /log line/);
      // php-cgi writes each message and a newline; php-fpm prefixes "PHP message: " and joins with "; ".
      if (kind.php === 'php-cgi') assert.equal(stderr, 'log line 0\nlog line 1\nlog line 2\n');
      else assert.equal(stderr, 'PHP message: log line 0; PHP message: log line 1; PHP message: log line 2');
      assert.equal(result.stderrBytes, Buffer.byteLength(stderr));
      assert.equal(result.stdoutBytes, Buffer.byteLength(stdout));
    });
  });

  test('php://stderr (stderr.php) goes to the PHP process, not to FCGI_STDERR', LIMIT, async () => {
    await withConnection(async (connection) => {
      const { stdout, stderr, result } = await connection.request({ params: phpParams('stderr.php', { QUERY_STRING: 'kb=2' }) }).text();
      assert.equal(cgi(stdout).body, 'stderr written\n');
      assert.equal(stderr, '');
      assert.equal(result.stderrBytes, 0);
      // php-fpm relays it to its log (catch_workers_output, in lines of at most log_limit bytes);
      // php-cgi writes it to its own stderr.
      await peer.waitForOutput(kind.php === 'php-fpm' ? /said into stderr: "e{64}/ : 'e'.repeat(1023));
    });
  });

  test('a fatal error: Status 500 and the output so far on stdout, the message on stderr, appStatus 0', LIMIT, async () => {
    await withConnection(async (connection) => {
      const { stdout, stderr, result } = await connection.request({ params: phpParams('fatal.php') }).text();
      const { headers, body } = cgi(stdout);
      assert.equal(headers.get('status'), '500 Internal Server Error');
      assert.equal(body, 'before the error\n');
      const message = 'PHP Fatal error:  Uncaught Error: Call to undefined function this_function_does_not_exist()';
      assert.ok(stderr.startsWith(kind.php === 'php-fpm' ? `PHP message: ${message}` : message), stderr);
      assert.match(stderr, /fatal\.php on line 4/);
      // PHP always ends a request with appStatus 0 and FCGI_REQUEST_COMPLETE, even after a fatal error.
      assert.equal(result.appStatus, 0);
      assert.equal(result.protocolStatus, 0);
      // The connection survives a fatal error.
      assert.equal(connection.state, 'idle');
      const again = await connection.request({ params: phpParams('hello.php') }).text();
      assert.equal(cgi(again.stdout).body, 'Hello from PHP\n');
    });
  });

  test('exit(3): the output so far, status 200, and appStatus 0 (the exit code is not passed on)', LIMIT, async () => {
    await withConnection(async (connection) => {
      const { stdout, stderr, result } = await connection.request({ params: phpParams('exit.php') }).text();
      const { headers, body } = cgi(stdout);
      assert.equal(body, 'exiting\n');
      assert.equal(headers.has('status'), false);
      assert.equal(stderr, '');
      assert.equal(result.appStatus, 0);
      assert.equal(connection.state, 'idle');
    });
  });

  test('keep-conn: 200 sequential requests on one connection reach the same PHP process', LIMIT, async () => {
    await withConnection(async (connection) => {
      const pids = new Set<number>();
      let frees = 0;
      connection.on('free', (freed: FastCGIConnection) => {
        assert.equal(freed, connection);
        frees += 1;
      });
      for (let i = 1; i <= 200; i++) {
        const { stdout, result } = await connection.request({ params: phpParams('pid.php') }).text();
        pids.add(Number(cgi(stdout).body));
        assert.equal(result.protocolStatus, 0);
        assert.equal(connection.requestsServed, i);
        assert.equal(connection.state, 'idle');
      }
      assert.equal(frees, 200);
      // One connection is served by one process from start to end (a php-fpm child is pinned to it).
      assert.equal(pids.size, 1);
      const [pid] = pids;
      if (kind.php === 'php-cgi') assert.equal(pid, peer.pid, 'php-cgi with PHP_FCGI_CHILDREN=0 serves requests itself');
      else assert.notEqual(pid, peer.pid, 'php-fpm children, not the master, run scripts');
    });
  });

  test('keepConn: false lets the peer close the connection after END_REQUEST', LIMIT, async () => {
    await withConnection(async (connection) => {
      const closed = new Promise<Error | null>((resolve) => connection.once('close', (_c: FastCGIConnection, reason: Error | null) => resolve(reason)));
      const { stdout } = await connection.request({ params: phpParams('hello.php'), keepConn: false }).text();
      assert.equal(cgi(stdout).body, 'Hello from PHP\n');
      assert.equal(await closed, null);
      assert.equal(connection.state, 'closed');
    });
  });

  test('GET_VALUES: FCGI_MPXS_CONNS is "0", and the connection stays usable', LIMIT, async () => {
    await withConnection(async (connection) => {
      const values = await connection.getValues();
      assert.equal(values.get('FCGI_MPXS_CONNS'), '0');
      if (kind.php === 'php-cgi') {
        assert.deepEqual(Object.fromEntries(values), { FCGI_MAX_CONNS: '0', FCGI_MAX_REQS: '0', FCGI_MPXS_CONNS: '0' });
      } else {
        // php-fpm knows only FCGI_MPXS_CONNS and leaves the other names out of its answer.
        assert.deepEqual(Object.fromEntries(values), { FCGI_MPXS_CONNS: '0' });
      }
      assert.equal(connection.state, 'idle');
      const { stdout } = await connection.request({ params: phpParams('hello.php') }).text();
      assert.equal(cgi(stdout).body, 'Hello from PHP\n');
    });
  });

  // Last: for php-cgi this kills the peer itself.
  test('a peer killed with SIGKILL mid-response fails the request with FCGI_PEER_CLOSED', LIMIT, async () => {
    await withConnection(async (connection) => {
      const response = connection.request({ params: phpParams('busy.php', { QUERY_STRING: 'ms=10000' }) });
      const closed = new Promise<Error | null>((resolve) => connection.once('close', (_c: FastCGIConnection, reason: Error | null) => resolve(reason)));
      let seen = '';
      const killed = new Promise<number>((resolve) => {
        response.stdout.on('data', (chunk: Buffer) => {
          seen += chunk.toString('latin1');
          const match = /\r\n\r\n(\d+)\n/.exec(seen);
          if (match && !seen.includes('killed')) {
            seen += 'killed';
            const pid = Number(match[1]);
            process.kill(pid, 'SIGKILL');
            resolve(pid);
          }
        });
      });
      const started = Date.now();
      const error = await rejection(response.done);
      const pid = await killed;
      if (kind.php === 'php-cgi') assert.equal(pid, peer.pid);
      else assert.notEqual(pid, peer.pid);
      assert.ok(error instanceof FastCGIConnectionError, `got ${error.name}`);
      assert.equal(error.code, 'FCGI_PEER_CLOSED');
      assert.match(error.message, /closed the connection before ending the request/);
      assert.ok(Date.now() - started < 5000, 'the failure is reported at once, not after the script would have ended');
      // The stdout stream fails with the same error; the connection is closed with it.
      assert.equal(response.stdout.errored, error);
      assert.equal(await closed, error);
      assert.equal(connection.state, 'closed');
      assert.equal(connection.closeError, error);
    });
  });
}
