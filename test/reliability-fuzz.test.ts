// Malformed traffic (issue 9): the real tqserver CLI as a child process, php-cgi behind it, its HTTP
// front and its FastCGI front fed malformed, mutated and random bytes (a table of named cases, then
// fast-check). Whatever arrives, the process stays up, answers each case with a precise status or a
// closed connection, never runs a file outside the document root, never sends PHP source, serves the
// next valid request, logs no unexpected error, and ends with its sockets, pipes and php-cgi
// processes back where they started. Two decoder properties the decoder's own tests leave out open
// the file (split invariance of errors, and prefixes of valid streams).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { FastCGIProtocolError } from '../src/errors.js';
import { RecordDecoder, type DecoderSink } from '../src/fastcgi/decoder.js';
import { cutAt } from './helpers/decoder-calls.js';
import { DEFAULT_MAX_PARAMS_BYTES, encodeParams } from '../src/fastcgi/params.js';
import { RecordType, Role, type RecordHeader } from '../src/fastcgi/protocol.js';
import { encodeBeginRequest, encodeHeader, encodeStream } from '../src/fastcgi/records.js';
import { alive, get, makeProject, parseResponses, SECRET_MARKER, serverYaml, startCli, type CliProcess, type Project, type RawResponse } from './helpers/front.js';
import { freePort, parseCgiResponse, runCgiFcgi } from './helpers/peers.js';
import { RawPeer, rawHeader } from './helpers/raw-fcgi.js';
import { childrenOf, processGone, until } from './helpers/supervisor.js';

// ---- the decoder: properties decoder.test.ts does not state ----

const T = RecordType;

interface Call {
  kind: 'data' | 'end' | 'record';
  type: number;
  requestId: number;
  hex: string;
}

/** Feeds pieces to a fresh server-role decoder; returns the sink calls (adjacent data joined) and the first error. */
function feed(pieces: readonly Buffer[]): { calls: Call[]; error: unknown; atBoundary: boolean } {
  const calls: Call[] = [];
  const sink: DecoderSink = {
    onStreamData(type, requestId, data) {
      const last = calls.at(-1);
      if (last?.kind === 'data' && last.type === type && last.requestId === requestId) last.hex += data.toString('hex');
      else calls.push({ kind: 'data', type, requestId, hex: data.toString('hex') });
    },
    onStreamEnd(type, requestId) {
      calls.push({ kind: 'end', type, requestId, hex: '' });
    },
    onRecord(header: RecordHeader, content) {
      calls.push({ kind: 'record', type: header.type, requestId: header.requestId, hex: content.toString('hex') });
    },
  };
  const decoder = new RecordDecoder('server', sink);
  let error: unknown;
  for (const piece of pieces) {
    try {
      decoder.push(piece);
    } catch (caught) {
      error ??= caught;
    }
  }
  return { calls, error, atBoundary: decoder.atRecordBoundary };
}

/** Valid records an application receives, each with its encoded bytes. */
const serverRecord = fc
  .oneof(
    fc.record({ type: fc.constant(T.BeginRequest as number), requestId: fc.integer({ min: 1, max: 0xffff }), content: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
    fc.record({ type: fc.constant(T.AbortRequest as number), requestId: fc.integer({ min: 1, max: 3 }), content: fc.constant(new Uint8Array(0)) }),
    fc.record({ type: fc.constantFrom<number>(T.Params, T.Stdin, T.Data), requestId: fc.integer({ min: 1, max: 3 }), content: fc.uint8Array({ maxLength: 120 }) }),
    fc.record({ type: fc.constant(T.GetValues as number), requestId: fc.constant(0), content: fc.uint8Array({ maxLength: 30 }) }),
    fc.record({ type: fc.integer({ min: 12, max: 255 }), requestId: fc.integer({ min: 0, max: 3 }), content: fc.uint8Array({ maxLength: 30 }) }),
  )
  .chain((r) => fc.integer({ min: 0, max: 255 }).map((padding) => Buffer.concat([encodeHeader(r.type, r.requestId, r.content.length, padding), Buffer.from(r.content), Buffer.alloc(padding, 0x5a)])));

describe('RecordDecoder: properties beyond decoder.test.ts (fast-check)', () => {
  test('any bytes, valid or broken, give the same records and the same error however they are split', () => {
    const mutated = fc.tuple(fc.array(serverRecord, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 })).map(([records, changes]) => {
      const bytes = Buffer.concat(records);
      for (const [at, value] of changes) bytes[at % bytes.length] = value;
      return bytes;
    });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b))), fc.array(fc.nat(), { maxLength: 16 }), (bytes, seeds) => {
        const whole = feed([bytes]);
        const split = feed(cutAt(bytes, seeds));
        assert.deepEqual(split.calls, whole.calls);
        if (whole.error === undefined) assert.equal(split.error, undefined);
        else {
          assert.ok(whole.error instanceof FastCGIProtocolError && split.error instanceof FastCGIProtocolError, String(split.error));
          // Same code, and the same byte offsets in the message: the error names the record, not the read.
          assert.equal(split.error.code, whole.error.code);
          assert.equal(split.error.message, whole.error.message);
        }
      }),
      { numRuns: 1500 },
    );
  });

  test('every prefix of a valid stream decodes without error to a prefix of the whole decoding, on a record boundary exactly between records', () => {
    fc.assert(
      fc.property(fc.array(serverRecord, { maxLength: 8 }), fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), (records, seeds) => {
        const bytes = Buffer.concat(records);
        const boundaries = new Set<number>([0]);
        let at = 0;
        for (const record of records) boundaries.add((at += record.length));
        const full = feed([bytes]);
        assert.equal(full.error, undefined);
        for (const seed of seeds) {
          const length = seed % (bytes.length + 1);
          const part = feed(cutAt(bytes.subarray(0, length), [seed >> 3, seed >> 5]));
          assert.equal(part.error, undefined, 'a stream cut short is not (yet) an error');
          assert.equal(part.atBoundary, boundaries.has(length), `at byte ${length} of ${bytes.length}`);
          assert.ok(part.calls.length <= full.calls.length);
          part.calls.forEach((call, i) => {
            const whole = full.calls[i]!;
            if (i < part.calls.length - 1 || call.kind !== 'data') assert.deepEqual(call, whole);
            else assert.ok(whole.kind === 'data' && whole.type === call.type && whole.hex.startsWith(call.hex), 'the last piece is the start of its stream data');
          });
        }
      }),
      { numRuns: 500 },
    );
  });
});

// ---- the running server ----

const OUTSIDE_MARKER = 'OUTSIDE-ROOT-RAN-4711';
/** A script that proves it ran: prints the marker and leaves a file behind (in case its output is lost). */
const OUTSIDE_PHP = `<?php file_put_contents(__DIR__ . '/outside-ran', __FILE__); echo '${OUTSIDE_MARKER}';\n`;

interface Resources {
  fds: number;
  sockets: number;
  pipes: number;
  clients: number;
  workers: number;
  /** What the other descriptors point at (files, devices, anon inodes). */
  others: string[];
}

interface Exchange {
  raw: Buffer;
  responses: RawResponse[];
}

/** True once `raw` holds a whole first response (by Content-Length, chunked, or bodiless). */
function holdsWholeResponse(raw: Buffer, head: boolean): boolean {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const text = raw.subarray(0, end).toString('latin1');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
  if (head || status === 204 || status === 304 || status < 200) return true;
  const length = /\r\ncontent-length: *(\d+)/i.exec(text);
  if (length) return raw.length - end - 4 >= Number(length[1]);
  if (/\r\ntransfer-encoding: *chunked/i.test(text)) return raw.includes('\r\n0\r\n\r\n', end);
  return false; // the body runs to the close
}

/**
 * Whether a (mutated) request's bytes look like whole requests to an HTTP/1.1 parser. Node's server
 * drops a request whose client half-closes (FIN) before the answer, so whole requests are sent
 * without FIN and incomplete ones with it; a wrong guess only costs the server's read timeout.
 */
function looksWhole(bytes: Buffer): boolean {
  let at = 0;
  while (bytes[at] === 0x0d && bytes[at + 1] === 0x0a) at += 2;
  const end = bytes.indexOf('\r\n\r\n', at);
  if (end < 0) return false;
  const head = bytes.subarray(at, end).toString('latin1');
  if (/\r\ntransfer-encoding:/i.test(head)) return bytes.includes('0\r\n\r\n', end + 4);
  const length = /\r\ncontent-length:[ \t]*(\d+)[ \t]*(?:\r\n|$)/i.exec(head);
  return !length || bytes.length - end - 4 >= Number(length[1]);
}

/**
 * Writes `bytes` on a fresh connection (then FIN when `fin`, or once a whole first response is in
 * when `finAfterResponse`) and collects everything until the server closes it; rejects if it stays
 * open longer than `timeoutMs` (a server that neither answers nor closes).
 */
function exchange(port: number, bytes: Buffer | string, options: { fin?: boolean; finAfterResponse?: boolean; head?: boolean; timeoutMs?: number } = {}): Promise<Exchange> {
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const parts: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the connection was still open after ${options.timeoutMs ?? 10_000} ms; got ${JSON.stringify(Buffer.concat(parts).toString('latin1').slice(0, 300))}`));
    }, options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      // A response that keeps the connection open (a mutation may have broken "Connection: close").
      if (options.finAfterResponse && !socket.writableEnded && holdsWholeResponse(Buffer.concat(parts), options.head ?? false)) socket.end();
    });
    socket.on('error', () => {
      // A reset after the answer (a server closing on a request it refused) still leaves the answer.
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(parts);
      // Only the status lines are read where a second response may have been cut off by our FIN.
      if (options.finAfterResponse) {
        resolvePromise({ raw, responses: [] });
        return;
      }
      try {
        resolvePromise({ raw, responses: parseResponses(raw) });
      } catch (error) {
        reject(new Error(`unparsable answer ${JSON.stringify(raw.toString('latin1').slice(0, 300))}: ${(error as Error).message}`));
      }
    });
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
    if (options.fin) socket.end();
  });
}

/** What no answer may ever contain. */
function assertNoLeak(data: Buffer, what: string): void {
  const text = data.toString('latin1');
  assert.ok(!text.includes(OUTSIDE_MARKER), `${what}: a file outside the document root ran`);
  assert.ok(!text.includes('<?php'), `${what}: PHP source was sent: ${JSON.stringify(text.slice(0, 300))}`);
  assert.ok(!text.includes(SECRET_MARKER), `${what}: a secret file was sent`);
  assert.ok(!/root:x:0:0/.test(text), `${what}: /etc/passwd was sent`);
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

describe('malformed traffic against a running tqserver (CLI, php-cgi, both fronts)', () => {
  let project: Project;
  let cli: CliProcess & { port: number };
  let fcgiPort: number;
  let doc: string;
  let siteDir: string;
  let logFile: string;
  let baseline: Resources;
  const outsideFiles: string[] = [];
  /** Every php-cgi pid seen, to end any a crashed tqserver left behind. */
  const workersSeen = new Set<number>();
  const cases = { httpTable: 0, httpFuzz: 0, fcgiParams: 0, fcgiBytes: 0, fcgiConnections: 0 };
  /** What the fuzzed requests got, by status ("none": closed without an answer), for the summary line. */
  const outcomes = { http: new Map<string, number>(), fcgi: new Map<string, number>() };
  const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

  /** The server log's last lines, for failure messages. */
  const logTail = () => readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-8).join('\n');

  /** A PHP answer's JSON body; a failure names what the server logged. */
  const phpJson = <J>(body: Buffer, what: string): J => {
    try {
      return JSON.parse(body.toString('utf8')) as J;
    } catch {
      throw new Error(`${what}: not PHP's JSON: ${JSON.stringify(body.toString('latin1').slice(0, 200))}; the server logged:\n${logTail()}`);
    }
  };

  /**
   * What the CLI holds: file descriptors, sockets and pipes among them, client connections still
   * open on its two ports (from /proc/PID/net/tcp*, matched by socket inode), and php-cgi children.
   */
  const resources = (): Resources => {
    let fds = 0;
    let sockets = 0;
    let pipes = 0;
    const others: string[] = [];
    const inodes = new Set<string>();
    for (const fd of readdirSync(`/proc/${cli.pid}/fd`)) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${cli.pid}/fd/${fd}`);
      } catch {
        continue; // closed while we looked
      }
      fds += 1;
      const socket = /^socket:\[(\d+)\]$/.exec(target);
      if (socket) {
        sockets += 1;
        inodes.add(socket[1]!);
      } else if (target.startsWith('pipe:')) pipes += 1;
      else others.push(target);
    }
    let clients = 0;
    for (const table of ['tcp', 'tcp6']) {
      let text = '';
      try {
        text = readFileSync(`/proc/${cli.pid}/net/${table}`, 'latin1');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        const fields = line.trim().split(/\s+/);
        if (fields.length < 10) continue;
        const port = parseInt(fields[1]!.split(':')[1]!, 16);
        if (fields[3] !== '0A' && inodes.has(fields[9]!) && (port === cli.port || port === fcgiPort)) clients += 1;
      }
    }
    const php = childrenOf(cli.pid).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'latin1').startsWith('php');
      } catch {
        return false;
      }
    });
    for (const pid of php) workersSeen.add(pid);
    const workers = php.length;
    return { fds, sockets, pipes, clients, workers, others: others.sort() };
  };

  /** A valid PHP request over HTTP on a fresh connection is answered by PHP. */
  const httpServes = async (what: string) => {
    const reply = await get(cli.port, '/sleep.php?ms=0');
    assert.equal(reply.status, 200, `after ${what}: ${reply.text.slice(0, 200)}`);
    assert.match(reply.text, /^slept 0 ms in pid \d+/, `after ${what}`);
  };

  const fcgiParams = (scriptFilename: string, extra: Record<string, string> = {}): Record<string, string> => ({
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: 'GET',
    SCRIPT_FILENAME: scriptFilename,
    SCRIPT_NAME: '/sleep.php',
    REQUEST_URI: '/sleep.php?ms=0',
    DOCUMENT_URI: '/sleep.php',
    DOCUMENT_ROOT: doc,
    QUERY_STRING: 'ms=0',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    ...extra,
  });

  /** One FastCGI request, framed by us; resolves with its stdout, or null when the front closed without an END_REQUEST. */
  const fcgiRequest = async (pairs: ReadonlyArray<readonly [string, string | Buffer]>, body: Buffer = Buffer.alloc(0), timeoutMs = 15_000): Promise<Buffer | null> => {
    const peer = await RawPeer.connect({ host: '127.0.0.1', port: fcgiPort });
    try {
      peer.send(encodeBeginRequest(1, Role.Responder, false), encodeStream(T.Params, 1, encodeParams(pairs, Infinity), true), encodeStream(T.Stdin, 1, body, true));
      const ended = await peer.waitRecord((r) => r.type === T.EndRequest && r.requestId === 1, 0, timeoutMs).then(
        () => true,
        (error: Error) => {
          if (!peer.ended) throw error;
          return false;
        },
      );
      const stdout = Buffer.concat(peer.records.filter((r) => r.type === T.Stdout).map((r) => r.content));
      return ended ? stdout : null;
    } finally {
      peer.destroy();
    }
  };

  /** A valid request on the FastCGI front is answered by PHP. */
  const fcgiServes = async (what: string) => {
    const stdout = await fcgiRequest(Object.entries(fcgiParams(join(doc, 'sleep.php'))));
    assert.ok(stdout, `after ${what}: the front answered`);
    assert.match(parseCgiResponse(stdout).body.toString(), /^slept 0 ms in pid \d+/, `after ${what}`);
  };

  before(async () => {
    fcgiPort = await freePort();
    project = await makeProject({
      // Short read and idle timeouts bound what a request the fuzzer left incomplete can cost.
      server: serverYaml({ log_file: 'logs/tq.log', max_header_size: '8K', max_body_size: '1M', read_timeout_seconds: 2, idle_timeout_seconds: 2 }),
      apps: [
        {
          name: 'site',
          // PHP's stderr goes to the server log, so no log file opens halfway through.
          worker: [
            'path: /',
            'php:',
            '  error_log: ~',
            '  settings: { display_errors: "0", log_errors: "1" }',
            '  pool: { manager: static, max_workers: 2 }',
            'fastcgi:',
            `  listen: 127.0.0.1:${fcgiPort}`,
            '',
          ].join('\n'),
        },
      ],
    });
    doc = project.docRoot('site');
    siteDir = join(project.root, 'workers', 'site');
    logFile = join(project.root, 'logs', 'tq.log');
    // Scripts outside the document root: above it, beside it, in the project root, and in a folder
    // whose name starts with the root's name (where a string-prefix check would let it through).
    for (const dir of [project.root, siteDir, `${doc}-evil`, join(siteDir, 'config')]) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'outside.php'), OUTSIDE_PHP);
      outsideFiles.push(join(dir, 'outside.php'));
    }
    cli = await startCli(project.root);
    await until('two php-cgi workers', () => resources().workers === 2, 15_000);
    // Both workers' connections open and every log file the requests below write to created.
    await Promise.all([get(cli.port, '/sleep.php?ms=30'), get(cli.port, '/sleep.php?ms=30'), fcgiServes('start-up')]);
    await httpServes('start-up');
    // The test's own connections are closed on its side; the server closes its ends a moment later.
    await until('the start-up connections to close', () => resources().clients === 0);
    baseline = resources();
  });

  after(async () => {
    // A crash shows up as refused connections in whatever test runs next: say what the process said.
    if (cli && cli.child.exitCode !== null) process.stderr.write(`tqserver exited (${cli.child.exitCode ?? cli.child.signalCode}); its last output:\n${cli.output().slice(-4000)}\n`);
    if (cli && cli.child.exitCode === null && cli.child.signalCode === null) {
      // Still running after a failure: SIGTERM stops its workers too; SIGKILL only if that hangs.
      for (const pid of childrenOf(cli.pid)) workersSeen.add(pid);
      cli.kill('SIGTERM');
      const timer = setTimeout(() => cli.kill('SIGKILL'), 10_000);
      await cli.exited;
      clearTimeout(timer);
    }
    // A tqserver that crashed or was killed leaves its php-cgi workers behind: end those by pid.
    for (const pid of workersSeen) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'latin1').startsWith('php')) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await project?.cleanup();
  });

  describe('the HTTP front: malformed requests, one per named case', () => {
    const H = 'Host: localhost\r\nConnection: close\r\n';
    const POST = (headers: string, body: string) => `POST /env.php HTTP/1.1\r\n${H}${headers}\r\n${body}`;
    const hello = md5('hello');
    /** [name, bytes, status (0: the connection is closed without an answer), check of a 200 body]. */
    const CASES: Array<[string, string, number, ((body: string) => void)?]> = [
      // Request line.
      ['invalid method token', `G@T /env.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['a method Node\'s parser does not know', `BREW /env.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['a lower-case method', `get /env.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['HTTP/2.0 in an HTTP/1 request line', `GET /env.php HTTP/2.0\r\n${H}\r\n`, 505],
      ['HTTP/1.2', `GET /env.php HTTP/1.2\r\n${H}\r\n`, 400],
      ['HTTP/3.1', `GET /env.php HTTP/3.1\r\n${H}\r\n`, 400],
      ['junk after the version', `GET /env.php HTTP/1.1x\r\n${H}\r\n`, 400],
      ['a space after the version', `GET /env.php HTTP/1.1 \r\n${H}\r\n`, 400],
      ['another protocol', `GET /env.php FOO/1.1\r\n${H}\r\n`, 400],
      ['absolute-form target: served as its path', `GET http://localhost/env.php HTTP/1.1\r\n${H}\r\n`, 200, (body) => assert.equal(JSON.parse(body).server.SCRIPT_FILENAME, join(doc, 'env.php'))],
      ['authority-form target with CONNECT (TQServer is no proxy)', `CONNECT localhost:80 HTTP/1.1\r\n${H}\r\n`, 400],
      ['authority-form target with GET', `GET localhost:80 HTTP/1.1\r\n${H}\r\n`, 400],
      ['asterisk-form target', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, 400],
      ['a URI longer than max_header_size', `GET /env.php?${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n`, 431],
      ['a raw NUL in the target', `GET /env\0.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['a raw control byte in the target', `GET /env\x01.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['a raw DEL in the target', `GET /env\x7f.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['a raw non-UTF-8 byte in the target', `GET /caf\xe9.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['a raw space in the target', `GET /a b.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['bare LF line ends', 'GET /env.php HTTP/1.1\nHost: localhost\nConnection: close\n\n', 400],
      ['bare CR line ends', 'GET /env.php HTTP/1.1\rHost: localhost\rConnection: close\r\r', 400],
      ['a TLS ClientHello on the plain port', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + 'a'.repeat(40), 400],
      ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
      ['empty lines before the request line are skipped (RFC 9112 2.2)', `\r\n\r\nGET /env.php HTTP/1.1\r\n${H}\r\n`, 200],
      // Host.
      ['HTTP/1.1 without Host', 'GET /env.php HTTP/1.1\r\nConnection: close\r\n\r\n', 400],
      ['HTTP/1.0 without Host is fine', 'GET /env.php HTTP/1.0\r\n\r\n', 200],
      ['two Host headers (RFC 9112 3.2: 400)', 'GET /env.php HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n', 400],
      // Framing and smuggling.
      ['two different Content-Length', POST('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'), 400],
      ['two equal Content-Length', POST('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'), 400],
      ['a Content-Length list', POST('Content-Length: 5, 5\r\n', 'hello'), 400],
      ['Content-Length and Transfer-Encoding (CL.TE)', POST('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), 400],
      ['Transfer-Encoding and Content-Length (TE.CL)', POST('Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
      ['a Content-Length that is no number', POST('Content-Length: abc\r\n', ''), 400],
      ['a negative Content-Length', POST('Content-Length: -1\r\n', ''), 400],
      ['a signed Content-Length', POST('Content-Length: +5\r\n', 'hello'), 400],
      ['a Content-Length past 2^64', POST('Content-Length: 99999999999999999999999\r\n', ''), 400],
      ['a Content-Length over max_body_size', POST('Content-Length: 2097152\r\n', ''), 413],
      ['a chunk size that is no hex number', POST('Transfer-Encoding: chunked\r\n', 'zz\r\nhello\r\n0\r\n\r\n'), 400],
      ['a chunk size past 2^64', POST('Transfer-Encoding: chunked\r\n', 'fffffffffffffffffff\r\nhello\r\n0\r\n\r\n'), 400],
      ['more chunk data than its size', POST('Transfer-Encoding: chunked\r\n', '3\r\nhello\r\n0\r\n\r\n'), 400],
      ['chunk data without its CRLF', POST('Transfer-Encoding: chunked\r\n', '5\r\nhello0\r\n\r\n'), 400],
      ['chunk lines ended by bare LF', POST('Transfer-Encoding: chunked\r\n', '5\nhello\n0\n\n'), 400],
      ['chunk extensions are ignored', POST('Transfer-Encoding: chunked\r\n', '5;ext=1\r\nhello\r\n0;last\r\n\r\n'), 200, (body) => assert.equal(JSON.parse(body).input.md5, hello)],
      ['a quoted chunk extension with ";" inside', POST('Transfer-Encoding: chunked\r\n', '5;a="b;c"\r\nhello\r\n0\r\n\r\n'), 200, (body) => assert.equal(JSON.parse(body).input.md5, hello)],
      ['a Content-Length among the trailer fields', POST('Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\nContent-Length: 99\r\n\r\n'), 400],
      ['trailer fields are read and dropped', POST('Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n'), 200, (body) => {
        const json = JSON.parse(body);
        assert.equal(json.input.md5, hello);
        assert.equal(json.server.CONTENT_LENGTH, '5');
        assert.equal(json.server.HTTP_X_TRAILER, undefined);
      }],
      ['Transfer-Encoding: CHUNKED in capitals', POST('Transfer-Encoding: CHUNKED\r\n', '5\r\nhello\r\n0\r\n\r\n'), 200, (body) => assert.equal(JSON.parse(body).input.md5, hello)],
      ['an unknown coding alone (the body length is unknown: 400)', POST('Transfer-Encoding: gzip\r\n', 'hello'), 400],
      ['an unknown coding before chunked (RFC 9112 6.1: 501)', POST('Transfer-Encoding: gzip, chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 501],
      ['chunked twice in one header', POST('Transfer-Encoding: chunked, chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
      ['chunked in two headers', POST('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
      ['chunked not last', POST('Transfer-Encoding: chunked, identity\r\n', '5\r\nhello\r\n0\r\n\r\n'), 400],
      ['Transfer-Encoding in HTTP/1.0 (RFC 9112 6.1: faulty framing)', 'POST /env.php HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 400],
      // Kept alive, answered before the body is read (a static file, a refused path), then a broken
      // chunk: one answer only (a second would be taken for the answer to the next request).
      ['a static file answered, then its chunked body breaks', 'POST /assets/hello.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n', 405],
      ['a refused path answered, then its chunked body breaks', 'POST /%zz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n', 400],
      ['an admin page answered, then its chunked body breaks', 'POST /status HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n', 405],
      ['an Expect the server does not know', POST('Expect: 200-ok\r\nContent-Length: 2\r\n', 'hi'), 417],
      // Header fields.
      ['an obs-folded header', `GET /env.php HTTP/1.1\r\n${H}X-Folded: a\r\n  b\r\n\r\n`, 400],
      ['a header over max_header_size', `GET /env.php HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(9000)}\r\n\r\n`, 431],
      ['3000 small headers over max_header_size', `GET /env.php HTTP/1.1\r\n${H}${'X-A: 1\r\n'.repeat(3000)}\r\n`, 431],
      ['a space in a header name', `GET /env.php HTTP/1.1\r\n${H}X A: 1\r\n\r\n`, 400],
      ['a NUL in a header name', `GET /env.php HTTP/1.1\r\n${H}X\0A: 1\r\n\r\n`, 400],
      ['a header line without a colon', `GET /env.php HTTP/1.1\r\n${H}NoColon\r\n\r\n`, 400],
      ['a space before the colon', `GET /env.php HTTP/1.1\r\n${H}X-A : 1\r\n\r\n`, 400],
      ['an empty header name', `GET /env.php HTTP/1.1\r\n${H}: 1\r\n\r\n`, 400],
      ['a NUL in a header value', `GET /env.php HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`, 400],
      ['a bare CR in a header value', `GET /env.php HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, 400],
      ['a non-ASCII byte in a header value reaches PHP (as invalid UTF-8, which json_encode substitutes)', `GET /env.php HTTP/1.1\r\n${H}X-A: a\xffb\r\n\r\n`, 200, (body) => assert.equal(JSON.parse(body).server.HTTP_X_A, 'a\ufffdb')],
      ['an underscore header never reaches PHP', `GET /env.php HTTP/1.1\r\n${H}Script_Filename: /etc/passwd\r\n\r\n`, 200, (body) => {
        const server = JSON.parse(body).server;
        assert.equal(server.SCRIPT_FILENAME, join(doc, 'env.php'));
        assert.equal(server.HTTP_SCRIPT_FILENAME, undefined);
      }],
      // Paths.
      ['%00 in the path', `GET /env.php%00.txt HTTP/1.1\r\n${H}\r\n`, 400],
      ['an encoded slash is a slash', `GET /sub%2fpage.php HTTP/1.1\r\n${H}\r\n`, 200, (body) => assert.equal(JSON.parse(body).front, 'sub/page')],
      ['encoded dots inside the root', `GET /sub/%2e%2e/env.php HTTP/1.1\r\n${H}\r\n`, 200, (body) => assert.equal(JSON.parse(body).server.SCRIPT_FILENAME, join(doc, 'env.php'))],
      ['..%2f climbing out', `GET /sub/..%2f..%2f..%2fetc/passwd HTTP/1.1\r\n${H}\r\n`, 400],
      ['raw ../ climbing out', `GET /../../etc/passwd HTTP/1.1\r\n${H}\r\n`, 400],
      ['..%2f to a script beside the root', `GET /..%2foutside.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['a malformed escape', `GET /env%zz.php HTTP/1.1\r\n${H}\r\n`, 400],
      ['overlong UTF-8 dots', `GET /%c0%ae%c0%ae/etc/passwd HTTP/1.1\r\n${H}\r\n`, 400],
      ['a fragment is not part of the path', `GET /env.php#frag HTTP/1.1\r\n${H}\r\n`, 200],
      // The client leaves mid-request: nobody is left to answer.
      ['a head cut off, then FIN', 'GET /env.php HTTP/1.1\r\nHost: loc', 0],
      ['a Content-Length body cut off, then FIN', POST('Content-Length: 10\r\n', 'hel'), 0],
      ['a chunked body cut off, then FIN', POST('Transfer-Encoding: chunked\r\n', '5\r\nhel'), 0],
      ['a chunked body without its last chunk, then FIN', POST('Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n'), 0],
      ['empty lines only, then FIN', '\r\n\r\n\r\n', 0],
    ];

    test(`${CASES.length} cases: each gets its status (or a closed connection), and the next request is served`, async () => {
      for (const [name, bytes, status, check] of CASES) {
        // Only the incomplete requests end with FIN (Node's server drops a request whose client
        // half-closes before the answer); every other case must be answered and closed by the server.
        const { raw, responses } = await exchange(cli.port, bytes, { fin: status === 0 });
        assertNoLeak(raw, name);
        if (status === 0) assert.equal(raw.length, 0, `${name}: no answer, got ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
        else {
          assert.deepEqual(responses.map((r) => r.status), [status], `${name}: ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`);
          if (status !== 200 && bytes.includes('Connection: close')) assert.equal(responses[0]!.header('connection'), 'close', `${name}: the connection is closed after a refusal`);
          check?.(responses[0]!.body.toString('utf8'));
        }
        cases.httpTable += 1;
        await httpServes(name);
      }
      assert.ok(alive(cli.pid));
    });
  });

  describe('the HTTP front: mutated valid requests (fast-check)', () => {
    const BASES = [
      'GET /env.php?a=1&b=%20 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fuzz\r\nCookie: a=1\r\nConnection: close\r\n\r\n',
      'POST /env.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\nConnection: close\r\n\r\nfield=value',
      'POST /sub/page.php/extra HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n',
      'GET /assets/hello.txt HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-3\r\nIf-None-Match: "x"\r\nConnection: close\r\n\r\n',
      'HEAD /index.php/pretty/url HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      'GET /status?json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      'GET http://localhost/sub/ HTTP/1.0\r\nX-Request-Id: fuzz-1\r\n\r\n',
    ];
    /** Bytes that matter to an HTTP parser or a path normaliser. */
    const INTERESTING = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x25, 0x2c, 0x2e, 0x2f, 0x3a, 0x3b, 0x3f, 0x5c, 0x7f, 0x80, 0xc0, 0xff, 0x30, 0x66];
    const SNIPPETS = ['\r\n', '\r\nContent-Length: 4\r\n', '\r\nTransfer-Encoding: chunked\r\n', '\r\nHost: evil\r\n', '\r\n\r\nGET /pwned.php HTTP/1.1\r\n', '%2e%2e%2f', '../', '%00', '%c0%ae', ' HTTP/1.1', 'ffffffff\r\n', ';ext=', '\r\n ', 'x'.repeat(9000)];
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), bytes: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 })).map((b) => [b]) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.oneof(fc.constantFrom(...SNIPPETS).map((s) => [...Buffer.from(s, 'latin1')]), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 4 })) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), bytes: fc.array(fc.constant(0), { minLength: 1, maxLength: 12 }) }),
      fc.record({ kind: fc.constant('repeat-line' as const), at: fc.nat(), bytes: fc.constant([]) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), bytes: fc.constant([]) }),
    );
    type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

    function mutate(base: string, mutations: readonly Mutation[]): Buffer {
      let bytes = Buffer.from(base, 'latin1');
      for (const { kind, at, bytes: with_ } of mutations) {
        const i = at % (bytes.length + 1);
        if (kind === 'set' && i < bytes.length) bytes[i] = with_[0]!;
        else if (kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from(with_), bytes.subarray(i)]);
        else if (kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + with_.length)]);
        else if (kind === 'truncate') bytes = bytes.subarray(0, i);
        else if (kind === 'repeat-line') {
          const start = bytes.lastIndexOf('\r\n', i) + 2;
          const end = bytes.indexOf('\r\n', i);
          if (end > start) bytes = Buffer.concat([bytes.subarray(0, end + 2), bytes.subarray(start, end + 2), bytes.subarray(end + 2)]);
        }
      }
      return bytes;
    }

    test('every mutation gets a 2xx-4xx answer or a closed connection, never a crash, a 5xx or a leak, and the next request is served', async () => {
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: BASES.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (which, mutations) => {
          const bytes = mutate(BASES[which]!, mutations);
          const what = `mutated request ${JSON.stringify(bytes.toString('latin1').slice(0, 200))}`;
          const { raw } = await exchange(cli.port, bytes, { fin: !looksWhole(bytes), finAfterResponse: true, head: bytes.toString('latin1').startsWith('HEAD ') });
          assertNoLeak(raw, what);
          const statuses = [...raw.toString('latin1').matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
          if (raw.length > 0) assert.ok(statuses.length > 0, `${what}: an answer without a status line: ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
          count(outcomes.http, statuses.length === 0 ? 'none' : statuses.join('+'));
          for (const status of statuses) {
            // 501 and 505 refuse what the request asked for; any other 5xx would be the server failing.
            assert.ok(status >= 200 && (status < 500 || status === 501 || status === 505), `${what}: status ${status}: ${JSON.stringify(raw.toString('latin1').slice(0, 300))}`);
          }
          cases.httpFuzz += 1;
          await httpServes(what);
        }),
        { numRuns: 300 },
      );
      assert.ok(alive(cli.pid));
    });
  });

  describe('the FastCGI front: hostile params in well-framed requests (fast-check)', () => {
    /** SCRIPT_FILENAMEs that name a script inside the root, and the script PHP must then run. */
    const inside = (): Array<[string, string]> => [
      [join(doc, 'env.php'), join(doc, 'env.php')],
      [`${doc}/sub/../env.php`, join(doc, 'env.php')],
      [`${doc}/./env.php`, join(doc, 'env.php')],
      [`${doc}//env.php`, join(doc, 'env.php')],
      [`${doc}/sub/page.php`, join(doc, 'sub', 'page.php')],
    ];
    /** Everything else a client may try: each must get php-fpm's 404 "File not found." and run nothing. */
    const refused = (): string[] => [
      ...outsideFiles,
      `${doc}/../outside.php`,
      `${doc}/../../../outside.php`,
      `${doc}/./../outside.php`,
      `${doc}/sub/../../outside.php`,
      `${doc}-evil/outside.php`,
      `${doc}/env.php/../../outside.php`,
      `${doc}/env.php/x`,
      `${doc}/env.php\0.jpg`,
      `${doc}/env.php\n`,
      `${doc}/missing.php`,
      `${doc}/uploads/evil.jpg`,
      `${doc}/uploads/.hidden.php`,
      `${doc}/upper.PHP`,
      `${doc}/.env`,
      `${doc}/index.php~`,
      `${doc}/`,
      doc,
      'env.php',
      'outside.php',
      '../outside.php',
      '',
      '/etc/passwd',
      '/proc/self/environ',
      `${doc}/${'a/'.repeat(3000)}env.php`,
    ];
    const traversal = fc.constantFrom('/', '/../outside.php', '/../../outside.php', '/env.php/../../outside.php', '/%2e%2e/outside.php', '\0', '/x\r\ny', '');

    test('a script outside the document root never runs, whatever SCRIPT_FILENAME, DOCUMENT_ROOT and the other params say', async () => {
      const hostile = fc.oneof(
        fc.tuple(fc.constantFrom('DOCUMENT_ROOT', 'ORIG_SCRIPT_FILENAME', 'PATH_TRANSLATED', 'ORIG_PATH_TRANSLATED'), fc.constantFrom('/', project.root, siteDir, `${doc}-evil`, '', join(project.root, 'outside.php'))),
        fc.tuple(fc.constantFrom('DOCUMENT_URI', 'SCRIPT_NAME', 'PATH_INFO', 'REQUEST_URI', 'PHP_SELF', 'ORIG_PATH_INFO'), traversal),
        fc.tuple(fc.constantFrom('PHP_VALUE', 'PHP_ADMIN_VALUE'), fc.constantFrom(`auto_prepend_file=${join(project.root, 'outside.php')}`, `auto_prepend_file=${join(siteDir, 'outside.php')}\nallow_url_include=1`, 'open_basedir=/')),
        fc.tuple(fc.constantFrom('SERVER_SOFTWARE'), fc.constantFrom('Microsoft-IIS/10.0', 'Apache/2.4', '')),
        fc.tuple(fc.constantFrom('REDIRECT_STATUS'), fc.constantFrom('', '0', '302', 'x')),
        // The body is 5 bytes: a CONTENT_LENGTH that is no number, or shorter, must not leave STDIN
        // that PHP never reads on the worker's connection. (A longer one makes PHP wait for the rest
        // until the client leaves, as php-fpm does: not sent here.)
        fc.tuple(fc.constantFrom('CONTENT_LENGTH'), fc.constantFrom('', '-1', 'abc', ' 5', '5abc', '0', '3', '00005', '5')),
        fc.tuple(fc.constantFrom('REQUEST_METHOD'), fc.constantFrom('', 'POST', 'BREW', 'GET\r\n')),
        fc.tuple(fc.constantFrom('HTTP_PROXY', 'HTTP_X_REQUEST_ID', 'HTTP_HOST', 'QUERY_STRING'), fc.constantFrom('http://evil:1', 'a\r\nb', '-d auto_prepend_file=php://input', 'x'.repeat(5000))),
        fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 40 })),
        // Names and values that are not UTF-8, and names no environment allows.
        fc.tuple(fc.constantFrom('A=B', '', ' ', '\0', 'X\r\n'), fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b).toString('latin1'))),
      );
      const huge = fc.oneof(fc.constant(null), fc.constant(null), fc.integer({ min: 70_000, max: DEFAULT_MAX_PARAMS_BYTES + 50_000 }));
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.oneof(fc.constantFrom(...inside().map(([path]) => path)), fc.constantFrom(...refused())), { minLength: 1, maxLength: 2 }),
          fc.array(hostile, { maxLength: 8 }),
          huge,
          fc.boolean(),
          async (scripts, extra, hugeBytes, scriptsFirst) => {
            // SCRIPT_FILENAME may come more than once, before or after everything else: the last one counts.
            const pairs: Array<[string, string]> = Object.entries(fcgiParams(scripts[0]!)).filter(([name]) => name !== 'SCRIPT_FILENAME');
            const scriptPairs = scripts.map((path): [string, string] => ['SCRIPT_FILENAME', path]);
            const all: Array<[string, string]> = scriptsFirst ? [...scriptPairs, ...pairs, ...extra] : [...pairs, ...extra, ...scriptPairs];
            if (hugeBytes !== null) all.push(['X_HUGE', 'h'.repeat(hugeBytes)]);
            const effective = all.filter(([name]) => name === 'SCRIPT_FILENAME').at(-1)![1];
            const tooLarge = encodeParams(all, Infinity).length > DEFAULT_MAX_PARAMS_BYTES;
            const stdout = await fcgiRequest(all, Buffer.from('hello'));
            const what = `SCRIPT_FILENAME ${JSON.stringify(effective.slice(0, 120))} with ${JSON.stringify(extra).slice(0, 300)}`;
            assert.ok(stdout, `${what}: the front answered`);
            assertNoLeak(stdout, what);
            const { headers, body } = parseCgiResponse(stdout);
            const runs = inside().find(([path]) => path === effective)?.[1];
            const head = `${what}: ${stdout.toString('latin1').slice(0, 200)}`;
            count(outcomes.fcgi, headers.get('status') ?? '200');
            if (tooLarge) {
              // Over the front's own limit (1 MiB, as php-fpm's): refused before anything is looked at.
              assert.equal(headers.get('status'), '431 Request Header Fields Too Large', head);
            } else if (runs === undefined) {
              assert.equal(headers.get('status'), '404', head);
              assert.equal(body.toString(), 'File not found.\n');
            } else if (hugeBytes !== null) {
              // PHP takes no params past one record (it drops the connection, which cost a worker each
              // time): the backend refuses them first.
              assert.equal(headers.get('status'), '431', head);
            } else if (runs.endsWith('env.php')) {
              const json = phpJson<{ server: Record<string, string> }>(body, what);
              assert.equal(json.server.SCRIPT_FILENAME, runs, `${what}: the checked script ran, with its path resolved`);
            } else {
              assert.equal(phpJson<{ front: string }>(body, what).front, 'sub/page', what);
            }
            for (const file of outsideFiles) assert.ok(!existsSync(join(file, '..', 'outside-ran')), `${what}: ${file} ran`);
            cases.fcgiParams += 1;
            if (cases.fcgiParams % 10 === 0) await fcgiServes(what);
          },
        ),
        { numRuns: 200 },
      );
      await fcgiServes('hostile params');
      assert.ok(alive(cli.pid));
    });

    test('every refused SCRIPT_FILENAME, one by one, with DOCUMENT_ROOT pointing at the outside script\'s folder', async () => {
      for (const script of refused()) {
        for (const documentRoot of [doc, project.root, siteDir]) {
          const stdout = await fcgiRequest(Object.entries(fcgiParams(script, { DOCUMENT_ROOT: documentRoot, PATH_TRANSLATED: join(project.root, 'outside.php') })));
          assert.ok(stdout, script);
          assertNoLeak(stdout, script);
          assert.equal(parseCgiResponse(stdout).headers.get('status'), '404', `${JSON.stringify(script)} under DOCUMENT_ROOT ${documentRoot}`);
        }
      }
      // Without any SCRIPT_FILENAME, php-cgi would fall back to PATH_TRANSLATED: the front refuses first.
      const params = Object.entries(fcgiParams('x')).filter(([name]) => name !== 'SCRIPT_FILENAME');
      const stdout = await fcgiRequest([...params, ['PATH_TRANSLATED', join(project.root, 'outside.php')]]);
      assert.ok(stdout);
      assert.equal(parseCgiResponse(stdout).headers.get('status'), '404');
      for (const file of outsideFiles) assert.ok(!existsSync(join(file, '..', 'outside-ran')), `${file} ran`);
    });
  });

  describe('the FastCGI front: what the fuzzer found, pinned', () => {
    /** The php-cgi pids now: a worker lost to a request shows up as a pid that changed. */
    const workerPids = () => childrenOf(cli.pid).sort((a, b) => a - b);

    test('regression: STDIN beyond CONTENT_LENGTH (or without one) no longer breaks the worker\'s connection for the next request', async () => {
      // PHP reads no further than CONTENT_LENGTH; what was left made it drop its kept-alive connection
      // when the next request came, which got a 502, and the worker was killed as crashed.
      const before = workerPids();
      for (const declared of ['', '0', '3', 'abc', '-1', '2', '5']) {
        for (let i = 0; i < 3; i++) {
          const stdout = await fcgiRequest(Object.entries(fcgiParams(join(doc, 'env.php'), { REQUEST_METHOD: 'POST', CONTENT_LENGTH: declared })), Buffer.from('hello'));
          assert.ok(stdout, `CONTENT_LENGTH ${JSON.stringify(declared)}`);
          const json = phpJson<{ input: { length: number } }>(parseCgiResponse(stdout).body, `CONTENT_LENGTH ${JSON.stringify(declared)}`);
          // PHP gets the body up to CONTENT_LENGTH and never more.
          assert.equal(json.input.length, /^\d+$/.test(declared) ? Math.min(5, Number(declared)) : 0, `CONTENT_LENGTH ${JSON.stringify(declared)}`);
        }
      }
      assert.deepEqual(workerPids(), before, 'no worker was lost');
    });

    test('regression: a request whose STDIN stops after CONTENT_LENGTH bytes, its end never sent, costs no worker', async () => {
      // php-cgi answers once it has CONTENT_LENGTH bytes; the connection, whose body never ended, is
      // then closed rather than reused, and that close was taken for a crash of the worker.
      const before = workerPids();
      for (let i = 0; i < 4; i++) {
        const peer = await RawPeer.connect({ host: '127.0.0.1', port: fcgiPort });
        peer.send(
          encodeBeginRequest(1, Role.Responder, true),
          encodeStream(T.Params, 1, encodeParams(fcgiParams(join(doc, 'sleep.php'), { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '3' })), true),
          encodeStream(T.Stdin, 1, Buffer.from('abc')),
          rawHeader(1, T.Stdin, 1, 0, 0).subarray(0, 5),
        );
        await peer.waitRecord((r) => r.type === T.EndRequest, 0, 10_000);
        peer.socket.end();
        await peer.waitClosed();
        await fcgiServes(`cut-off STDIN ${i}`);
      }
      assert.deepEqual(workerPids(), before, 'no worker was lost');
    });

    test('regression: params PHP cannot take (over one record) get a 431 instead of costing a worker and a 502', async () => {
      const before = workerPids();
      for (const bytes of [66_000, 70_000, 200_000]) {
        const stdout = await fcgiRequest([...Object.entries(fcgiParams(join(doc, 'sleep.php'))), ['HTTP_COOKIE', 'c'.repeat(bytes)]]);
        assert.ok(stdout);
        assert.equal(parseCgiResponse(stdout).headers.get('status'), '431', `${bytes} bytes of params`);
        await fcgiServes(`${bytes} bytes of params`);
      }
      // Just under the limit is served.
      const fits = await fcgiRequest([...Object.entries(fcgiParams(join(doc, 'sleep.php'))), ['HTTP_COOKIE', 'c'.repeat(60_000)]]);
      assert.match(parseCgiResponse(fits!).body.toString(), /^slept 0 ms/);
      assert.deepEqual(workerPids(), before, 'no worker was lost');
    });
  });

  describe('the FastCGI front: mutated and random byte streams over many connections (fast-check)', () => {
    const base = fc
      .record({
        script: fc.constantFrom('env.php', 'sleep.php', 'missing.php', '../outside.php'),
        keepConn: fc.boolean(),
        body: fc.uint8Array({ maxLength: 200 }),
        second: fc.boolean(),
        id: fc.constantFrom(1, 2, 0xffff),
      })
      .map(({ script, keepConn, body, second, id }) => {
        const one = (requestId: number) =>
          Buffer.concat([
            encodeBeginRequest(requestId, Role.Responder, keepConn),
            encodeStream(T.Params, requestId, encodeParams(fcgiParams(`${doc}/${script}`, { QUERY_STRING: 'ms=1', CONTENT_LENGTH: String(body.length) })), true),
            encodeStream(T.Stdin, requestId, Buffer.from(body), true),
          ]);
        return second ? Buffer.concat([one(id), one(id === 1 ? 2 : 1)]) : one(id);
      });
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), value: fc.constant(0) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      // A whole record with random fields: type, id, declared length and padding.
      fc.record({ kind: fc.constant('record' as const), at: fc.nat(), value: fc.nat() }),
    );
    const stream = fc.oneof(
      { weight: 5, arbitrary: fc.tuple(base, fc.array(mutation, { minLength: 1, maxLength: 4 })) },
      { weight: 1, arbitrary: fc.tuple(fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)), fc.constant([])) },
    ).map(([bytes, mutations]) => {
      let out: Buffer = Buffer.from(bytes);
      for (const { kind, at, value } of mutations) {
        const i = at % (out.length + 1);
        if (kind === 'set' && i < out.length) out[i] = value;
        else if (kind === 'cut') out = out.subarray(0, i);
        else if (kind === 'insert') out = Buffer.concat([out.subarray(0, i), Buffer.from([value]), out.subarray(i)]);
        else if (kind === 'record') {
          const length = value % 3 === 0 ? 0xffff : value % 300;
          const record = Buffer.concat([rawHeader(value % 7 === 0 ? 2 : 1, value % 13, value % 4, length, value % 256), Buffer.alloc(Math.min(length, 64), value)]);
          out = Buffer.concat([out.subarray(0, i), record, out.subarray(i)]);
        }
      }
      return out;
    });
    const ending = fc.constantFrom('fin', 'fin', 'reset');

    test('no stream crashes the front or runs a script outside the root; every connection is released; the next request is served', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(stream, fc.array(fc.nat(), { maxLength: 4 }), ending), { minLength: 1, maxLength: 6 }), async (connections) => {
          // The connections of one run are open at the same time.
          await Promise.all(
            connections.map(async ([bytes, cuts, end]) => {
              const peer = await RawPeer.connect({ host: '127.0.0.1', port: fcgiPort });
              for (const piece of cutAt(bytes, cuts)) if (piece.length > 0) peer.socket.write(piece);
              if (end === 'fin') peer.socket.end();
              else await new Promise<void>((done) => peer.socket.write(Buffer.alloc(0), () => done()));
              if (end === 'reset') peer.socket.resetAndDestroy();
              await peer.waitClosed(15_000);
              assertNoLeak(Buffer.concat(peer.records.filter((r) => r.type === T.Stdout).map((r) => r.content)), `stream ${bytes.toString('hex').slice(0, 120)}`);
              cases.fcgiBytes += 1;
            }),
          );
          await fcgiServes('mutated streams');
        }),
        { numRuns: 150 },
      );
      for (const file of outsideFiles) assert.ok(!existsSync(join(file, '..', 'outside-ran')), `${file} ran`);
      assert.ok(alive(cli.pid));
    });

    test('200 connections at once, each left in the middle of a request, then reset: all released, and cgi-fcgi is served', async () => {
      const partial = [
        encodeBeginRequest(1, Role.Responder, true).subarray(0, 5),
        Buffer.concat([encodeBeginRequest(1, Role.Responder, true), encodeStream(T.Params, 1, encodeParams(fcgiParams(join(doc, 'env.php'))), false)]),
        Buffer.concat([encodeBeginRequest(1, Role.Responder, true), encodeStream(T.Params, 1, encodeParams(fcgiParams(join(doc, 'env.php'))), true), rawHeader(1, T.Stdin, 1, 1000, 0), Buffer.alloc(10)]),
        rawHeader(1, T.Params, 1, 0xffff, 255),
      ];
      const peers = await Promise.all(Array.from({ length: 200 }, () => RawPeer.connect({ host: '127.0.0.1', port: fcgiPort })));
      peers.forEach((peer, i) => peer.send(partial[i % partial.length]!));
      await Promise.all(peers.map((peer) => new Promise<void>((done) => peer.socket.write(Buffer.alloc(0), () => done()))));
      for (const peer of peers) peer.socket.resetAndDestroy();
      await Promise.all(peers.map((peer) => peer.closed));
      cases.fcgiConnections += peers.length;
      const { code, stdout } = await runCgiFcgi({ host: '127.0.0.1', port: fcgiPort }, fcgiParams(join(doc, 'env.php'), { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '5', CONTENT_TYPE: 'text/plain' }), 'hello');
      assert.equal(code, 0);
      const json = JSON.parse(parseCgiResponse(stdout).body.toString('utf8')) as { input: { md5: string }; server: Record<string, string> };
      assert.equal(json.input.md5, md5('hello'));
      assert.equal(json.server.SCRIPT_FILENAME, join(doc, 'env.php'));
    });
  });

  describe('afterwards', () => {
    test('the process is alive, serves both fronts, logged no unexpected error, and holds what it held before; SIGTERM ends it cleanly', async () => {
      assert.ok(alive(cli.pid) && cli.child.exitCode === null, 'tqserver is still running');
      await httpServes('everything');
      await fcgiServes('everything');
      // Connections close asynchronously after their peers left: wait for the counts to settle. A
      // worker started during the run opens its connection with its first request, so the counts
      // may end below the baseline, never above it.
      let now = resources();
      const settled = () => now.clients === 0 && now.workers === baseline.workers && now.fds <= baseline.fds && now.sockets <= baseline.sockets && now.pipes <= baseline.pipes;
      try {
        await until('descriptors, connections and php-cgi workers back to the baseline', () => {
          now = resources();
          return settled();
        }, 15_000);
      } catch (error) {
        assert.fail(`${(error as Error).message}: now ${JSON.stringify(now)}, before ${JSON.stringify(baseline)}`);
      }
      const workers = childrenOf(cli.pid);
      const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string });
      // Error level covers a worker that died and an uncaught exception; "unexpected error" is the
      // HTTP front's line for a request that threw. (llhttp's own messages say "Unexpected char".)
      const bad = lines.flatMap((line, i) => (line.level >= 50 || /unexpected error|uncaught/i.test(line.msg) ? [i] : []));
      // Each with the lines before it, which usually say what led there.
      assert.deepEqual(bad.map((i) => lines.slice(Math.max(0, i - 6), i + 1).map((line) => `${line.level} ${line.msg.slice(0, 300)}`)), [], 'no error-level or unexpected lines in the log');
      assert.ok(lines.some((line) => /malformed or incomplete request/.test(line.msg)), 'the refusals were logged');
      assert.ok(lines.some((line) => /FastCGI front site: 404/.test(line.msg)), 'the refused scripts were logged');
      cli.kill('SIGTERM');
      const exit = await cli.exited;
      assert.equal(exit.code, 0, cli.output().slice(-2000));
      await until('every php-cgi worker to end with tqserver', () => workers.every((pid) => processGone(pid)), 10_000);
      const total = Object.values(cases).reduce((a, b) => a + b, 0);
      assert.ok(cases.httpTable >= 83 && cases.httpFuzz >= 300 && cases.fcgiParams >= 200 && cases.fcgiBytes >= 150 && cases.fcgiConnections >= 200, JSON.stringify(cases));
      process.stdout.write(`# malformed cases sent: ${JSON.stringify(cases)} (${total} in all)\n`);
      process.stdout.write(`# answers: HTTP fuzz ${JSON.stringify(Object.fromEntries(outcomes.http))}, FastCGI params ${JSON.stringify(Object.fromEntries(outcomes.fcgi))}\n`);
    });
  });
});
