// FastCGIServer against malformed and hostile bytes on raw sockets: each costs only its own
// connection (closed, a typed 'connectionError'), leaks no request, and the next client is served.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ERRORS, TQServerError, type ErrorCode } from '../src/errors.js';
import {
  FastCGIServer,
  NULL_REQUEST_ID,
  RecordType,
  Role,
  encodeBeginRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  encodeStreamEnd,
  type Address,
  type FastCGIServerRequest,
} from '../src/fastcgi/index.js';
import { RawPeer, deferred, rawHeader, requestBytes, until } from './helpers/raw-fcgi.js';

let server: FastCGIServer;
let address: Address;
const connectionErrors: unknown[] = [];
const peers = new Set<RawPeer>();
/** Requests whose handler runs until the test releases it or the connection dies. */
let held: { request: FastCGIServerRequest; stdinError: Promise<unknown> } | null = null;
let heldStarted = deferred<void>();

before(async () => {
  server = new FastCGIServer(
    async (request, response) => {
      const stdinError = new Promise<unknown>((resolve) => request.stdin.on('error', resolve));
      if (request.params.get('HOLD')) {
        held = { request, stdinError };
        heldStarted.resolve();
        await new Promise((resolve) => request.signal.addEventListener('abort', resolve));
        return;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of request.stdin) chunks.push(chunk as Buffer);
      response.stdout.write(`Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n${Buffer.concat(chunks).length}`);
    },
    { multiplex: true },
  );
  server.on('connectionError', (error) => connectionErrors.push(error));
  server.on('handlerError', () => {}); // handlers that lose their connection mid-read reject; expected here
  address = await server.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  for (const peer of peers) peer.destroy();
  await server.close(0);
});

async function open(): Promise<RawPeer> {
  const peer = await RawPeer.connect(address);
  peers.add(peer);
  void peer.closed.then(() => peers.delete(peer));
  return peer;
}

/** A well-formed request on a fresh connection is answered: the server is still healthy. */
async function assertServes(): Promise<void> {
  const peer = await open();
  peer.send(requestBytes(1, { REQUEST_METHOD: 'POST' }, 'healthy'));
  const response = await peer.response(1);
  assert.equal(response.stdout.toString(), 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n7');
  assert.equal(response.appStatus, 0);
  await peer.waitClosed();
}

async function released(): Promise<void> {
  await until(() => server.activeRequests === 0 && server.connections === 0, 'every request and connection to be released');
}

/**
 * Sends `chunks` (then FIN when `thenEnd`), and checks the server closed the connection and reported
 * exactly one typed error with `code`, released every request, and still serves a good client.
 */
async function expectRejected(chunks: Buffer[], code: ErrorCode, options: { thenEnd?: boolean; message?: RegExp } = {}): Promise<TQServerError> {
  const seen = connectionErrors.length;
  const peer = await open();
  for (const chunk of chunks) peer.socket.write(chunk);
  if (options.thenEnd) peer.socket.end();
  await peer.waitClosed();
  await until(() => connectionErrors.length > seen, `a connectionError (${code})`);
  await released();
  const errors = connectionErrors.slice(seen);
  assert.equal(errors.length, 1, `one error per broken connection, got ${errors.map(String).join('; ')}`);
  const error = errors[0];
  assert.ok(error instanceof TQServerError, `a typed error, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  if (options.message) assert.match(error.message, options.message);
  await assertServes();
  return error;
}

/** Starts a request whose handler holds until its connection dies; returns the open peer. */
async function holdRequest(keepConn = true): Promise<{ peer: RawPeer; request: FastCGIServerRequest; stdinError: Promise<unknown> }> {
  heldStarted = deferred();
  held = null;
  const peer = await open();
  peer.send(requestBytes(1, { HOLD: '1' }, '', { keepConn, noStdin: true }));
  await heldStarted.promise;
  const { request, stdinError } = held!;
  return { peer, request, stdinError };
}

const begin = (id = 1) => encodeBeginRequest(id, Role.Responder, true);
const paramsOf = (id = 1) => encodeStream(RecordType.Params, id, encodeParams({ REQUEST_METHOD: 'GET' }), true);

describe('FastCGIServer: malformed records cost only their own connection', () => {
  test('a record header with a version other than 1', async () => {
    await expectRejected([rawHeader(2, RecordType.BeginRequest, 1, 8, 0), Buffer.alloc(8)], 'FCGI_BAD_VERSION', { message: /version 2/ });
    await expectRejected([rawHeader(0, RecordType.GetValues, 0, 0, 0)], 'FCGI_BAD_VERSION', { message: /version 0/ });
  });

  test('a bad version after good requests on a kept connection', async () => {
    const peer = await open();
    peer.send(requestBytes(1, {}, 'first', { keepConn: true }));
    await peer.response(1);
    const seen = connectionErrors.length;
    peer.send(rawHeader(9, RecordType.Stdin, 1, 0, 0));
    await peer.waitClosed();
    await until(() => connectionErrors.length > seen, 'a connectionError');
    assert.equal((connectionErrors[seen] as TQServerError).code, 'FCGI_BAD_VERSION');
    await released();
    await assertServes();
  });

  test('impossible lengths for fixed-size records (spec 5.1, 5.4)', async () => {
    await expectRejected([rawHeader(1, RecordType.BeginRequest, 1, 9, 7), Buffer.alloc(16)], 'FCGI_BAD_LENGTH', { message: /9/ });
    await expectRejected([rawHeader(1, RecordType.BeginRequest, 1, 0, 0)], 'FCGI_BAD_LENGTH');
    // An ABORT_REQUEST with content, for a request in flight: that request is released too.
    await expectRejected([begin(), paramsOf(), rawHeader(1, RecordType.AbortRequest, 1, 8, 0), Buffer.alloc(8)], 'FCGI_BAD_LENGTH');
  });

  test('record types only an application sends (STDOUT, STDERR, END_REQUEST, GET_VALUES_RESULT, UNKNOWN_TYPE)', async () => {
    for (const type of [RecordType.Stdout, RecordType.Stderr, RecordType.EndRequest, RecordType.GetValuesResult, RecordType.UnknownType]) {
      const id = type === RecordType.GetValuesResult || type === RecordType.UnknownType ? NULL_REQUEST_ID : 1;
      const content = type === RecordType.EndRequest || type === RecordType.UnknownType ? Buffer.alloc(8) : Buffer.from('out');
      await expectRejected([begin(), encodeRecord(type, id, content)], 'FCGI_UNEXPECTED_RECORD', { message: /never sent to an application/ });
    }
  });

  test('management and request records with the wrong request id (spec 3.3)', async () => {
    await expectRejected([encodeRecord(RecordType.GetValues, 1, encodeParams({ FCGI_MAX_CONNS: '' }))], 'FCGI_BAD_REQUEST_ID');
    await expectRejected([encodeBeginRequest(0, Role.Responder, true)], 'FCGI_BAD_REQUEST_ID', { message: /request id 0/ });
    await expectRejected([begin(), encodeStream(RecordType.Params, 0, Buffer.from('x'))], 'FCGI_BAD_REQUEST_ID');
  });

  test('PARAMS whose pair lengths run past the end of the stream (spec 3.4)', async () => {
    let calls = 0;
    const counting = (): void => {
      calls += 1;
    };
    server.on('handlerError', counting);
    const cutValue = Buffer.concat([Buffer.from([4, 127]), Buffer.from('NAMEshort')]);
    await expectRejected([begin(), encodeStream(RecordType.Params, 1, cutValue, true)], 'FCGI_BAD_PARAMS', { message: /declares 4\+127 bytes/ });
    const cutLength = Buffer.from([0x80, 0x00]);
    await expectRejected([begin(), encodeStream(RecordType.Params, 1, cutLength, true)], 'FCGI_BAD_PARAMS', { message: /cut off/ });
    const noValueLength = Buffer.from([3]);
    await expectRejected([begin(), encodeStream(RecordType.Params, 1, noValueLength, true)], 'FCGI_BAD_PARAMS');
    // The same in a GET_VALUES query.
    await expectRejected([encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, cutValue)], 'FCGI_BAD_PARAMS');
    server.off('handlerError', counting);
    assert.equal(calls, 0);
  });

  test('STDIN before the params stream ended', async () => {
    await expectRejected(
      [begin(), encodeStream(RecordType.Params, 1, encodeParams({ A: 'b' })), encodeStream(RecordType.Stdin, 1, Buffer.from('early'))],
      'FCGI_UNEXPECTED_RECORD',
      { message: /STDIN record for request 1 before the params stream ended/ },
    );
  });

  test('DATA for a Responder request aborts the handler (spec 6.4: DATA belongs to the Filter role)', async () => {
    const seen = connectionErrors.length;
    const { peer, request, stdinError } = await holdRequest();
    peer.send(encodeStream(RecordType.Data, 1, Buffer.from('filter data')));
    await peer.waitClosed();
    assert.equal((connectionErrors[seen] as TQServerError).code, 'FCGI_UNEXPECTED_RECORD');
    assert.match((connectionErrors[seen] as Error).message, /DATA record for request 1 for a Responder request/);
    assert.equal(request.signal.aborted, true);
    assert.ok((await stdinError) instanceof TQServerError, 'the handler reading stdin sees a typed error');
    await released();
    await assertServes();
  });

  test('PARAMS after the params stream ended', async () => {
    const seen = connectionErrors.length;
    const { peer, request } = await holdRequest();
    peer.send(encodeStream(RecordType.Params, 1, encodeParams({ LATE: 'param' })));
    await peer.waitClosed();
    assert.equal((connectionErrors[seen] as TQServerError).code, 'FCGI_UNEXPECTED_RECORD');
    assert.match((connectionErrors[seen] as Error).message, /PARAMS record for request 1 after the params stream ended/);
    assert.equal(request.signal.aborted, true);
    await released();
    await assertServes();
  });

  test('STDIN after the stdin stream ended (regression: the socket stayed paused and the connection hung)', async () => {
    for (const late of [Buffer.from('more body'), Buffer.alloc(0)]) {
      const seen = connectionErrors.length;
      const { peer, request } = await holdRequest();
      peer.send(encodeStreamEnd(RecordType.Stdin, 1));
      peer.send(late.length > 0 ? encodeStream(RecordType.Stdin, 1, late) : encodeStreamEnd(RecordType.Stdin, 1));
      await peer.waitClosed();
      assert.equal((connectionErrors[seen] as TQServerError | undefined)?.code, 'FCGI_UNEXPECTED_RECORD');
      assert.match((connectionErrors[seen] as Error).message, /STDIN record for request 1 after the stdin stream ended/);
      assert.equal(request.signal.aborted, true);
      await released();
    }
    await assertServes();
  });

  test('a record cut off by the peer closing the connection (regression: nothing was reported)', async () => {
    // In the header, in the content of a stream record, in a discrete record's content, in the padding.
    await expectRejected([Buffer.from([1, RecordType.BeginRequest, 0])], 'FCGI_PEER_CLOSED', { thenEnd: true, message: /middle of a record/ });
    await expectRejected([begin(), rawHeader(1, RecordType.Params, 1, 100, 4), Buffer.alloc(10)], 'FCGI_PEER_CLOSED', { thenEnd: true });
    await expectRejected([rawHeader(1, RecordType.GetValues, 0, 40, 0), Buffer.alloc(3)], 'FCGI_PEER_CLOSED', { thenEnd: true });
    await expectRejected([begin(), paramsOf(), rawHeader(1, RecordType.Stdin, 1, 0, 200), Buffer.alloc(1)], 'FCGI_PEER_CLOSED', { thenEnd: true });
  });

  test('a peer closing between records, even mid-request, is not an error', async () => {
    const seen = connectionErrors.length;
    const peer = await open();
    peer.send(begin(), paramsOf(), encodeStream(RecordType.Stdin, 1, Buffer.from('part')));
    await until(() => server.activeRequests === 1, 'the request to begin');
    peer.socket.end();
    await peer.waitClosed();
    await released();
    assert.equal(connectionErrors.length, seen, 'nginx closes upstream connections this way when its client goes away');
  });

  test('a peer that resets the connection mid-request (regression: the raw ECONNRESET was reported untyped)', async () => {
    const seen = connectionErrors.length;
    const { peer, request } = await holdRequest();
    peer.socket.resetAndDestroy();
    await until(() => connectionErrors.length > seen, 'a connectionError');
    await released();
    const error = connectionErrors[seen];
    assert.ok(error instanceof TQServerError, `a typed error, got ${String(error)}`);
    assert.equal(error.code, 'FCGI_CONNECTION_ERROR');
    assert.match(error.message, /ECONNRESET/);
    assert.equal(request.signal.aborted, true);
    await assertServes();
  });

  test('a flood of garbage', async () => {
    const garbage = randomBytes(4 * 1024 * 1024);
    garbage[0] = 0x47; // "GET / HTTP/1.1" sent to the FastCGI port starts like this
    const error = await expectRejected([garbage], 'FCGI_BAD_VERSION');
    assert.match(error.message, /version 71/);
    await expectRejected([Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')], 'FCGI_BAD_VERSION');
  });
});

describe('FastCGIServer: random and mutated bytes (fast-check)', () => {
  /** Sends `chunks` and FIN; the connection must close, release its requests and report only typed errors. */
  async function survive(chunks: readonly Uint8Array[]): Promise<void> {
    const seen = connectionErrors.length;
    const peer = await open();
    for (const chunk of chunks) peer.socket.write(chunk);
    peer.socket.end();
    await peer.waitClosed();
    await released();
    for (const error of connectionErrors.slice(seen)) {
      assert.ok(error instanceof TQServerError, `connectionError is typed: ${String(error)}`);
      assert.ok(error.code in ERRORS);
    }
  }

  /** Splits bytes at the given cut points (sorted, deduplicated). */
  function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
    const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    const parts: Uint8Array[] = [];
    let last = 0;
    for (const point of points) {
      parts.push(bytes.subarray(last, point));
      last = point;
    }
    parts.push(bytes.subarray(last));
    return parts.filter((part) => part.length > 0);
  }

  const cuts = fc.array(fc.nat(), { maxLength: 6 });

  test('random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), cuts, async (bytes, at) => survive(split(bytes, at))),
      { numRuns: 120 },
    );
    await assertServes();
  });

  test('well-formed requests with bytes overwritten, cut short or inserted', async () => {
    const base = fc
      .record({
        keepConn: fc.boolean(),
        value: fc.string({ maxLength: 200 }),
        body: fc.uint8Array({ maxLength: 300 }),
        second: fc.boolean(),
      })
      .map(({ keepConn, value, body, second }) => {
        const one = requestBytes(1, { REQUEST_METHOD: 'POST', VALUE: value }, Buffer.from(body), { keepConn });
        return second ? Buffer.concat([one, requestBytes(2, { SECOND: 'yes' }, 'x', { keepConn })]) : one;
      });
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), byte: fc.constant(0) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    );
    await fc.assert(
      fc.asyncProperty(base, fc.array(mutation, { minLength: 1, maxLength: 4 }), cuts, async (bytes, mutations, at) => {
        let mutated: Buffer = Buffer.from(bytes);
        for (const { kind, at: where, byte } of mutations) {
          const i = where % (mutated.length + 1);
          if (kind === 'set' && i < mutated.length) mutated[i] = byte;
          else if (kind === 'cut') mutated = mutated.subarray(0, i);
          else if (kind === 'insert') mutated = Buffer.concat([mutated.subarray(0, i), Buffer.from([byte]), mutated.subarray(i)]);
        }
        await survive(split(mutated, at));
      }),
      { numRuns: 150 },
    );
    await assertServes();
  });

  test('sequences of plausible records with random fields', async () => {
    const record = fc
      .record({
        version: fc.constantFrom(1, 1, 1, 1, 0, 2),
        type: fc.integer({ min: 0, max: 14 }),
        requestId: fc.constantFrom(0, 1, 1, 2, 65535),
        content: fc.uint8Array({ maxLength: 24 }),
        padding: fc.integer({ min: 0, max: 9 }),
        // Valid BEGIN_REQUEST bodies are likely enough to open requests for later records to hit.
        beginRole: fc.constantFrom(1, 1, 2, 3, 7),
        beginFlags: fc.constantFrom(0, 1, 255),
      })
      .map(({ version, type, requestId, content, padding, beginRole, beginFlags }) => {
        let body: Buffer = Buffer.from(content);
        if (type === RecordType.BeginRequest) body = Buffer.from([0, beginRole, beginFlags, 0, 0, 0, 0, 0]);
        if (type === RecordType.Params && content.length % 2 === 0) body = encodeParams({ K: Buffer.from(content).toString('latin1') });
        return Buffer.concat([rawHeader(version, type, requestId, body.length, padding), body, Buffer.alloc(padding)]);
      });
    await fc.assert(
      fc.asyncProperty(fc.array(record, { minLength: 1, maxLength: 12 }), cuts, async (records, at) => survive(split(Buffer.concat(records), at))),
      { numRuns: 150 },
    );
    await assertServes();
  });
});
