// FastCGIServer against raw sockets speaking hand-built records: the server-side rules of the spec,
// following the checklist of Go's net/http/fcgi child (spec sections cited per test).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import { FastCGIAbortError, FastCGIProtocolError, FastCGIUnavailableError } from '../src/errors.js';
import {
  FastCGIServer,
  NULL_REQUEST_ID,
  ProtocolStatus,
  RecordType,
  Role,
  decodeParams,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  encodeStreamEnd,
  type Address,
  type FastCGIHandler,
  type FastCGIServerRequest,
  type ServerOptions,
} from '../src/fastcgi/index.js';
import { tempDir } from './helpers/peers.js';
import { RawPeer, deferred, requestBytes, until, type WireRecord } from './helpers/raw-fcgi.js';

const LOOPBACK = { host: '127.0.0.1', port: 0 } as const;

interface Served {
  server: FastCGIServer;
  address: Address;
  /** 'connectionError' events, in order. */
  errors: unknown[];
  /** 'refused' events, in order. */
  refused: Array<{ remoteAddress: string | undefined; reason: string }>;
}

const servers: FastCGIServer[] = [];
const peers: RawPeer[] = [];
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  for (const server of servers.splice(0)) await server.close(0);
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function serve(handler: FastCGIHandler, options: ServerOptions = {}, address: Address | string = LOOPBACK): Promise<Served> {
  const server = new FastCGIServer(handler, options);
  const errors: unknown[] = [];
  const refused: Served['refused'] = [];
  server.on('connectionError', (error) => errors.push(error));
  server.on('refused', (info) => refused.push(info));
  servers.push(server);
  return { server, address: await server.listen(address), errors, refused };
}

async function connect(address: Address | net.NetConnectOpts): Promise<RawPeer> {
  const peer = await RawPeer.connect(address);
  peers.push(peer);
  return peer;
}

/** Reads the whole body, then answers 200 with what the request carried as JSON. */
const echo: FastCGIHandler = async (request, response) => {
  const chunks: Buffer[] = [];
  for await (const chunk of request.stdin) chunks.push(chunk as Buffer);
  response.stdout.write('Status: 200 OK\r\nContent-Type: application/json\r\n\r\n');
  response.stdout.write(
    JSON.stringify({
      id: request.requestId,
      keepConn: request.keepConn,
      params: Object.fromEntries(request.params),
      body: Buffer.concat(chunks).toString('utf8'),
    }),
  );
};

function echoed(stdout: Buffer): { id: number; keepConn: boolean; params: Record<string, string>; body: string } {
  const text = stdout.toString('utf8');
  assert.match(text, /^Status: 200 OK\r\n/);
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
}

function types(records: readonly WireRecord[]): string[] {
  const names: Record<number, string> = { 3: 'END', 6: 'STDOUT', 7: 'STDERR' };
  return records.map((r) => `${names[r.type] ?? r.type}${r.content.length === 0 ? '(0)' : ''}`);
}

/** Collapses runs of data records: ['STDOUT', 'STDOUT', 'STDOUT(0)'] -> ['STDOUT', 'STDOUT(0)']. */
function shape(records: readonly WireRecord[]): string[] {
  return types(records).filter((name, i, all) => i === 0 || name !== all[i - 1]);
}

describe('FastCGIServer: a Responder request', () => {
  test('the handler gets params as UTF-8 and as raw bytes, and the body; stdout ends with an empty record and END_REQUEST', async () => {
    let seen: FastCGIServerRequest | null = null;
    let body = '';
    const { address, errors } = await serve(async (request, response) => {
      seen = request;
      for await (const chunk of request.stdin) body += String(chunk);
      response.stdout.write('Content-Type: text/plain\r\n\r\nok');
    });
    const peer = await connect(address);
    const raw = Buffer.from([0xff, 0x00, 0xfe, 0x80]);
    peer.send(
      requestBytes(1, { REQUEST_METHOD: 'POST', GREETING: 'héllo wörld ✓', RAW: raw, LONG: 'L'.repeat(300), EMPTY: '' }, 'the body'),
    );
    const response = await peer.response(1);
    const request = seen as FastCGIServerRequest | null;
    assert.ok(request);
    assert.equal(request.requestId, 1);
    assert.equal(request.keepConn, false);
    assert.equal(request.params.get('GREETING'), 'héllo wörld ✓');
    assert.equal(request.params.get('LONG'), 'L'.repeat(300)); // a 4-byte length (spec 3.4)
    assert.equal(request.params.get('EMPTY'), '');
    assert.deepEqual(
      request.rawParams.map(([name]) => name),
      ['REQUEST_METHOD', 'GREETING', 'RAW', 'LONG', 'EMPTY'],
    );
    assert.deepEqual(request.rawParams.find(([name]) => name === 'RAW')![1], raw, 'raw bytes are kept exactly');
    assert.equal(body, 'the body');

    assert.equal(response.stdout.toString(), 'Content-Type: text/plain\r\n\r\nok');
    assert.deepEqual(shape(response.records), ['STDOUT', 'STDOUT(0)', 'END'], 'no STDERR records when stderr is unused (spec 6.1)');
    assert.equal(response.appStatus, 0);
    assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
    for (const record of peer.records) {
      assert.equal(record.version, 1);
      assert.equal((record.content.length + record.paddingLength) % 8, 0, 'records are 8-byte aligned (spec 3.3)');
    }
    await peer.waitEnded();
    assert.deepEqual(errors, []);
  });

  test('stderr gets its own records and an empty terminator when it is used', async () => {
    const { address } = await serve((_request, response) => {
      response.stderr.write('a warning\n');
      response.stdout.write('Content-Type: text/plain\r\n\r\nbody');
      response.end(3);
    });
    const peer = await connect(address);
    peer.send(requestBytes(1, { A: 'b' }));
    const response = await peer.response(1);
    assert.equal(response.stderr.toString(), 'a warning\n');
    assert.equal(response.stdout.toString(), 'Content-Type: text/plain\r\n\r\nbody');
    const names = types(response.records);
    assert.equal(names.filter((n) => n === 'STDERR(0)').length, 1);
    assert.equal(names.filter((n) => n === 'STDOUT(0)').length, 1);
    assert.ok(names.indexOf('STDERR(0)') < names.indexOf('END') && names.indexOf('STDOUT(0)') < names.indexOf('END'));
    assert.equal(names.at(-1), 'END');
    assert.equal(response.appStatus, 3);
  });

  test('without FCGI_KEEP_CONN the server closes after END_REQUEST; with it one connection serves request after request', async () => {
    const { server, address } = await serve(echo);
    const once = await connect(address);
    once.send(requestBytes(1, { N: 'single' }));
    const single = await once.response(1);
    assert.equal(echoed(single.stdout).keepConn, false);
    await once.waitEnded();
    assert.equal(once.records.at(-1)!.type, RecordType.EndRequest, 'END_REQUEST is the last record before the close');

    const kept = await connect(address);
    for (let i = 0; i < 5; i++) {
      const from = kept.records.length;
      kept.send(requestBytes(1, { N: String(i) }, `body ${i}`, { keepConn: true }));
      const answer = echoed((await kept.response(1, from)).stdout);
      assert.equal(answer.params.N, String(i));
      assert.equal(answer.body, `body ${i}`);
      assert.equal(answer.keepConn, true);
    }
    assert.equal(kept.ended, false);
    assert.equal(server.connections, 1);
    assert.equal(server.activeRequests, 0);
  });
});

describe('FastCGIServer: request ids and roles (spec 3.3, 5.1)', () => {
  test('records for an unknown or inactive request id are ignored (spec 3.3)', async () => {
    let calls = 0;
    const { address, errors } = await serve(async (request, response) => {
      calls += 1;
      await echo(request, response);
    });
    const peer = await connect(address);
    peer.send(
      encodeStream(RecordType.Params, 7, encodeParams({ NEVER: 'begun' }), true),
      encodeStream(RecordType.Stdin, 7, Buffer.from('stray body'), true),
      encodeAbortRequest(9),
      encodeStream(RecordType.Data, 9, Buffer.from('stray data'), true),
      requestBytes(1, { N: 'first' }, 'one', { keepConn: true }),
    );
    const first = await peer.response(1);
    assert.equal(echoed(first.stdout).params.N, 'first');
    // Request 1 is over, so its id is inactive again: late records for it are ignored too.
    const from = peer.records.length;
    peer.send(
      encodeStream(RecordType.Stdin, 1, Buffer.from('late'), true),
      encodeAbortRequest(1),
      requestBytes(2, { N: 'second' }, 'two', { keepConn: true }),
    );
    const second = await peer.response(2, from);
    assert.equal(echoed(second.stdout).body, 'two');
    assert.deepEqual([...new Set(peer.records.map((r) => r.requestId))], [1, 2], 'nothing was answered for ids 7 and 9');
    assert.equal(peer.records.slice(from).filter((r) => r.requestId === 1).length, 0, 'the late ABORT for id 1 got no END_REQUEST');
    assert.equal(calls, 2);
    assert.deepEqual(errors, []);
  });

  test('BEGIN_REQUEST for an id already in flight closes the connection with a protocol error', async () => {
    const started = deferred<FastCGIServerRequest>();
    const { server, address, errors } = await serve((request) => started.resolve(request));
    const peer = await connect(address);
    peer.send(encodeBeginRequest(1, Role.Responder, true), encodeStreamEnd(RecordType.Params, 1));
    const request = await started.promise;
    assert.equal(server.activeRequests, 1);
    peer.send(encodeBeginRequest(1, Role.Responder, true));
    await peer.waitClosed();
    assert.equal(errors.length, 1);
    assert.ok(errors[0] instanceof FastCGIProtocolError);
    assert.equal(errors[0].code, 'FCGI_BAD_REQUEST_ID');
    assert.match(errors[0].message, /request 1/);
    assert.equal(request.signal.aborted, true, 'the request in flight is aborted with its connection');
    await until(() => server.activeRequests === 0 && server.connections === 0, 'the request and connection to be released');
  });

  test('a role other than Responder gets END_REQUEST with FCGI_UNKNOWN_ROLE, and its later records are ignored', async () => {
    let calls = 0;
    const { address, errors } = await serve(async (request, response) => {
      calls += 1;
      await echo(request, response);
    });
    const peer = await connect(address);
    peer.send(requestBytes(1, { ROLE: 'authorizer' }, '', { role: Role.Authorizer, keepConn: true }));
    const authorizer = await peer.response(1);
    assert.deepEqual(types(authorizer.records), ['END']);
    assert.equal(authorizer.protocolStatus, ProtocolStatus.UnknownRole);

    const from = peer.records.length;
    peer.send(
      requestBytes(2, { ROLE: 'filter' }, 'stdin', { role: Role.Filter, keepConn: true }),
      encodeStream(RecordType.Data, 2, Buffer.from('filter data'), true),
      requestBytes(3, { ROLE: 'responder' }, 'ok'),
    );
    const filter = await peer.response(2, from);
    assert.deepEqual(types(filter.records), ['END']);
    assert.equal(filter.protocolStatus, ProtocolStatus.UnknownRole);
    const responder = await peer.response(3, from);
    assert.equal(echoed(responder.stdout).params.ROLE, 'responder');
    assert.equal(calls, 1, 'the handler only ever sees Responder requests');
    assert.deepEqual(errors, []);

    const alone = await connect(address);
    alone.send(encodeBeginRequest(1, 99, false));
    assert.equal((await alone.response(1)).protocolStatus, ProtocolStatus.UnknownRole);
    await alone.waitEnded();
  });

  test('multiplex off: a second BEGIN_REQUEST gets FCGI_CANT_MPX_CONN while the first is served', async () => {
    const release = deferred();
    const started = deferred();
    let calls = 0;
    const { address } = await serve(async (request, response) => {
      calls += 1;
      started.resolve();
      await release.promise;
      await echo(request, response);
    });
    const peer = await connect(address);
    peer.send(requestBytes(1, { N: 'first' }, 'one', { keepConn: true }));
    await started.promise;
    peer.send(requestBytes(2, { N: 'second' }, 'two', { keepConn: true }));
    const refused = await peer.response(2);
    assert.deepEqual(types(refused.records), ['END']);
    assert.equal(refused.protocolStatus, ProtocolStatus.CantMpxConn);
    release.resolve();
    const first = await peer.response(1);
    assert.equal(echoed(first.stdout).body, 'one');
    assert.equal(calls, 1);
    assert.equal(peer.ended, false, 'the refusal does not cost the connection');
  });

  test('multiplex on: two interleaved requests run concurrently and their records never mix', async () => {
    const CHUNKS = 24;
    const CHUNK_BYTES = 8192;
    let running = 0;
    let bothRunning = deferred();
    const { server, address } = await serve(
      async (request, response) => {
        const letter = request.params.get('LETTER')!;
        let body = '';
        for await (const chunk of request.stdin) body += String(chunk);
        running += 1;
        if (running === 2) bothRunning.resolve();
        await bothRunning.promise;
        response.stdout.write(`Content-Type: text/plain\r\n\r\n${body}:`);
        for (let i = 0; i < CHUNKS; i++) {
          if (!response.stdout.write(letter.repeat(CHUNK_BYTES))) await once(response.stdout, 'drain');
          await new Promise((resolve) => setImmediate(resolve)); // let the other request write in between
        }
        response.stderr.write(`${letter} done`);
      },
      { multiplex: true },
    );
    const params1 = encodeParams({ LETTER: 'Q', PAD: 'p'.repeat(200) });
    const params2 = encodeParams({ LETTER: 'Z' });
    const half = Math.floor(params1.length / 2);
    const peer = await connect(address);
    // Interleaved on the wire, with request 1's params split mid-pair across two records (spec 3.4).
    peer.send(
      encodeBeginRequest(1, Role.Responder, true),
      encodeBeginRequest(2, Role.Responder, true),
      encodeStream(RecordType.Params, 1, params1.subarray(0, half)),
      encodeStream(RecordType.Params, 2, params2),
      encodeStream(RecordType.Params, 1, params1.subarray(half)),
      encodeStreamEnd(RecordType.Params, 2),
      encodeStreamEnd(RecordType.Params, 1),
      encodeStream(RecordType.Stdin, 2, Buffer.from('two')),
      encodeStream(RecordType.Stdin, 1, Buffer.from('one')),
      encodeStreamEnd(RecordType.Stdin, 1),
      encodeStreamEnd(RecordType.Stdin, 2),
    );
    const [one, two] = await Promise.all([peer.response(1), peer.response(2)]);
    assert.equal(one.stdout.toString(), `Content-Type: text/plain\r\n\r\none:${'Q'.repeat(CHUNKS * CHUNK_BYTES)}`);
    assert.equal(two.stdout.toString(), `Content-Type: text/plain\r\n\r\ntwo:${'Z'.repeat(CHUNKS * CHUNK_BYTES)}`);
    assert.equal(one.stderr.toString(), 'Q done');
    assert.equal(two.stderr.toString(), 'Z done');
    for (const record of peer.records.filter((r) => r.type === RecordType.Stdout)) {
      const other = record.requestId === 1 ? 'Z' : 'Q';
      assert.equal(record.content.includes(other), false, `a STDOUT record of request ${record.requestId} carries the other's bytes`);
    }
    const stdoutIds = peer.records.filter((r) => r.type === RecordType.Stdout).map((r) => r.requestId);
    const firstOf1 = stdoutIds.indexOf(1);
    const lastOf1 = stdoutIds.lastIndexOf(1);
    assert.ok(
      stdoutIds.slice(firstOf1, lastOf1).includes(2),
      'records of request 2 arrive between the first and last records of request 1: both were served at once',
    );
    assert.equal(peer.ended, false);
    assert.equal(server.activeRequests, 0);
  });
});

describe('FastCGIServer: management records (spec 4)', () => {
  async function getValues(peer: RawPeer, names: string[]): Promise<Map<string, string>> {
    const from = peer.records.length;
    peer.send(encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, encodeParams(names.map((name) => [name, ''] as const))));
    const at = await peer.waitRecord((r) => r.type === RecordType.GetValuesResult, from);
    const record = peer.records[at]!;
    assert.equal(record.requestId, NULL_REQUEST_ID);
    return new Map(decodeParams(record.content).map(([name, value]) => [name, value.toString()]));
  }

  test('GET_VALUES is answered from the options and unknown names are left out (spec 4.1)', async () => {
    const names = ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS', 'FCGI_SOMETHING_ELSE'];
    const custom = await serve(echo, { maxConns: 7, maxReqs: 9, multiplex: true });
    const peer = await connect(custom.address);
    assert.deepEqual(
      await getValues(peer, names),
      new Map([
        ['FCGI_MAX_CONNS', '7'],
        ['FCGI_MAX_REQS', '9'],
        ['FCGI_MPXS_CONNS', '1'],
      ]),
    );
    assert.deepEqual(await getValues(peer, ['ONLY_UNKNOWN']), new Map(), 'an answer with no known name is empty');
    // Unlike php-fpm (php bug #76922), the connection stays usable after GET_VALUES.
    peer.send(requestBytes(1, { AFTER: 'values' }));
    assert.equal(echoed((await peer.response(1)).stdout).params.AFTER, 'values');

    const defaults = await serve(echo);
    const second = await connect(defaults.address);
    assert.deepEqual(
      await getValues(second, names),
      new Map([
        ['FCGI_MAX_CONNS', '1024'],
        ['FCGI_MAX_REQS', '1024'],
        ['FCGI_MPXS_CONNS', '0'],
      ]),
    );
  });

  test('an unknown record type gets FCGI_UNKNOWN_TYPE and the connection keeps working (spec 4.2)', async () => {
    const { address, errors } = await serve(echo);
    const peer = await connect(address);
    peer.send(
      encodeRecord(42, NULL_REQUEST_ID, Buffer.from('what is this')),
      encodeRecord(200, 5, Buffer.alloc(0)),
      requestBytes(1, { AFTER: 'unknown types' }, 'still here'),
    );
    const response = await peer.response(1);
    assert.equal(echoed(response.stdout).body, 'still here');
    const unknown = peer.records.filter((r) => r.type === RecordType.UnknownType);
    assert.equal(unknown.length, 2);
    for (const [i, type] of [42, 200].entries()) {
      assert.equal(unknown[i]!.requestId, NULL_REQUEST_ID);
      assert.deepEqual(unknown[i]!.content, Buffer.from([type, 0, 0, 0, 0, 0, 0, 0]));
    }
    assert.deepEqual(errors, []);
  });
});

describe('FastCGIServer: ABORT_REQUEST (spec 5.4)', () => {
  test('ends the request with END_REQUEST, fires the signal and errors the stdin stream; the kept connection serves on', async () => {
    const gotData = deferred();
    const stdinError = deferred<unknown>();
    let handled: FastCGIServerRequest | null = null;
    let lateWrite: Error | null | undefined;
    const lateWriteDone = deferred();
    const { server, address, errors } = await serve((request, response) => {
      if (request.params.get('N') === 'after') return echo(request, response);
      handled = request;
      request.stdin.on('error', (error) => stdinError.resolve(error));
      request.stdin.once('data', () => gotData.resolve());
      request.signal.addEventListener('abort', () => {
        response.stdout.write('too late', (error) => {
          lateWrite = error;
          lateWriteDone.resolve();
        });
      });
    });
    const peer = await connect(address);
    peer.send(
      encodeBeginRequest(1, Role.Responder, true),
      encodeStream(RecordType.Params, 1, encodeParams({ N: 'aborted' }), true),
      encodeStream(RecordType.Stdin, 1, Buffer.from('part of a body')),
    );
    await gotData.promise;
    assert.equal(server.activeRequests, 1);
    peer.send(encodeAbortRequest(1));
    const response = await peer.response(1);
    assert.deepEqual(types(response.records), ['END']);
    assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
    const request = handled as FastCGIServerRequest | null;
    assert.ok(request);
    assert.equal(request.signal.aborted, true);
    assert.ok(request.signal.reason instanceof FastCGIAbortError);
    assert.match(request.signal.reason.message, /ABORT_REQUEST/);
    const error = await stdinError.promise;
    assert.ok(error instanceof FastCGIAbortError);
    assert.equal(error.code, 'FCGI_REQUEST_ABORTED');
    await lateWriteDone.promise;
    // Regression: the signal fired before the output streams were destroyed, so this write reached the wire.
    assert.ok(lateWrite instanceof Error, 'output written after the abort fails instead of reaching the wire');
    assert.equal(server.activeRequests, 0);

    // The rest of the aborted body may still be in flight: it is ignored, and id 1 can be reused.
    const from = peer.records.length;
    peer.send(
      encodeStream(RecordType.Stdin, 1, Buffer.from('rest of the body'), true),
      requestBytes(1, { N: 'after' }, 'fresh', { keepConn: true }),
    );
    assert.equal(echoed((await peer.response(1, from)).stdout).body, 'fresh');
    assert.equal(peer.records.slice(0, from).some((r) => r.type === RecordType.Stdout), false);
    assert.deepEqual(errors, []);
  });

  test('an abort before the params ended answers END_REQUEST without calling the handler', async () => {
    let calls = 0;
    const { server, address } = await serve(() => {
      calls += 1;
    });
    const peer = await connect(address);
    peer.send(encodeBeginRequest(1, Role.Responder, false), encodeStream(RecordType.Params, 1, encodeParams({ A: 'b' })));
    await until(() => server.activeRequests === 1, 'the request to begin');
    peer.send(encodeAbortRequest(1));
    const response = await peer.response(1);
    assert.deepEqual(types(response.records), ['END']);
    await peer.waitEnded();
    assert.equal(calls, 0);
    assert.equal(server.activeRequests, 0);
  });
});

describe('FastCGIServer: the body stream and handler failures', () => {
  test('a large body read slowly is delivered with backpressure, never buffered whole', async () => {
    const BODY_BYTES = 8 * 1024 * 1024;
    const body = randomBytes(BODY_BYTES);
    const result = deferred<{ bytes: number; digest: string; largestRead: number; reads: number }>();
    const { address } = await serve(async (request, response) => {
      const hash = createHash('sha256');
      let bytes = 0;
      let largestRead = 0;
      let reads = 0;
      // read() without a size returns everything buffered, so the size of each read is what the
      // server had queued for the handler at that moment.
      for await (const chunk of request.stdin) {
        const buffer = chunk as Buffer;
        largestRead = Math.max(largestRead, buffer.length);
        reads += 1;
        bytes += buffer.length;
        hash.update(buffer);
        await new Promise((resolve) => setTimeout(resolve, 4)); // a slow consumer
      }
      result.resolve({ bytes, digest: hash.digest('hex'), largestRead, reads });
      response.stdout.write(`Content-Type: text/plain\r\n\r\n${bytes}`);
    });
    const peer = await connect(address);
    peer.send(requestBytes(1, { CONTENT_LENGTH: String(BODY_BYTES) }, body));
    const response = await peer.response(1, 0, 30_000);
    const seen = await result.promise;
    assert.equal(seen.bytes, BODY_BYTES);
    assert.equal(seen.digest, createHash('sha256').update(body).digest('hex'));
    assert.ok(seen.largestRead <= 256 * 1024, `the server queued at most ${seen.largestRead} bytes for a slow handler; without backpressure it would be megabytes`);
    assert.ok(seen.reads > 16, `the body arrived in ${seen.reads} reads`);
    assert.equal(response.stdout.toString(), `Content-Type: text/plain\r\n\r\n${BODY_BYTES}`);
  });

  test('a handler that destroys its stdin unread still gets later records (regression: the socket stayed paused)', async () => {
    const started = deferred<FastCGIServerRequest>();
    const { server, address } = await serve((request) => {
      request.stdin.destroy(); // not interested in the body
      started.resolve(request);
    });
    const peer = await connect(address);
    peer.send(
      encodeBeginRequest(1, Role.Responder, true),
      encodeStream(RecordType.Params, 1, encodeParams({ A: 'b' }), true),
      encodeStream(RecordType.Stdin, 1, randomBytes(1024 * 1024), true),
      encodeAbortRequest(1),
    );
    const request = await started.promise;
    const response = await peer.response(1);
    assert.deepEqual(types(response.records), ['END'], 'the ABORT_REQUEST behind the unread body was seen');
    assert.equal(request.signal.aborted, true);
    assert.equal(server.activeRequests, 0);
  });

  for (const [name, handler] of [
    [
      'throws',
      () => {
        throw new Error('boom in the handler');
      },
    ],
    ['rejects', async () => Promise.reject(new Error('boom in the handler'))],
  ] as Array<[string, FastCGIHandler]>) {
    test(`a handler that ${name} yields a 500 CGI response and appStatus 1`, async () => {
      const { server, address } = await serve(handler);
      const failures: Array<[unknown, number]> = [];
      server.on('handlerError', (error, id) => failures.push([error, id]));
      const peer = await connect(address);
      peer.send(requestBytes(1, { A: 'b' }, '', { keepConn: true }));
      const response = await peer.response(1);
      assert.match(response.stdout.toString(), /^Status: 500 Internal Server Error\r\n/);
      assert.match(response.stderr.toString(), /boom in the handler/);
      assert.equal(response.appStatus, 1);
      assert.equal(response.protocolStatus, ProtocolStatus.RequestComplete);
      assert.equal(failures.length, 1);
      assert.equal(failures[0]![1], 1);
      assert.equal(peer.ended, false);
      assert.equal(server.activeRequests, 0);
    });
  }

  test('a handler that fails after writing output keeps its output, and ends with appStatus 1', async () => {
    const { address } = await serve(async (_request, response) => {
      response.stdout.write('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial');
      await Promise.resolve();
      throw new Error('failed half way');
    });
    const peer = await connect(address);
    peer.send(requestBytes(1, {}));
    const response = await peer.response(1);
    assert.equal(response.stdout.toString(), 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\npartial', 'no second head is appended');
    assert.match(response.stderr.toString(), /failed half way/);
    assert.equal(response.appStatus, 1);
  });
});

describe('FastCGIServer: limits', () => {
  test('params over maxParamsBytes get a 431 response and the kept connection serves on', async () => {
    let calls = 0;
    const { address, errors } = await serve(
      async (request, response) => {
        calls += 1;
        await echo(request, response);
      },
      { maxParamsBytes: 1024 },
    );
    const peer = await connect(address);
    const big = encodeParams({ HTTP_COOKIE: 'c'.repeat(600), HTTP_X_LARGE: 'x'.repeat(600) });
    // Sent in small records: the limit applies as bytes arrive, not once the stream is whole.
    const records = [];
    for (let at = 0; at < big.length; at += 100) records.push(encodeStream(RecordType.Params, 1, big.subarray(at, at + 100)));
    peer.send(
      encodeBeginRequest(1, Role.Responder, true),
      ...records,
      encodeStreamEnd(RecordType.Params, 1),
      encodeStream(RecordType.Stdin, 1, Buffer.from('ignored body'), true),
    );
    const response = await peer.response(1);
    assert.match(response.stdout.toString(), /^Status: 431 Request Header Fields Too Large\r\n/);
    assert.match(response.stdout.toString(), /1024 bytes/);
    assert.equal(response.appStatus, 1);
    assert.equal(calls, 0);
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as FastCGIProtocolError).code, 'FCGI_PARAMS_TOO_LARGE');

    const from = peer.records.length;
    peer.send(requestBytes(1, { SMALL: 'params' }, 'next'));
    assert.equal(echoed((await peer.response(1, from)).stdout).body, 'next');
    assert.equal(calls, 1);
  });

  test('maxReqs: a request past the limit gets FCGI_OVERLOADED, and is served once one finishes', async () => {
    const release = deferred();
    const started = deferred();
    const { server, address } = await serve(
      async (request, response) => {
        if (request.params.get('HOLD')) {
          started.resolve();
          await release.promise;
        }
        await echo(request, response);
      },
      { maxReqs: 1 },
    );
    const holder = await connect(address);
    holder.send(requestBytes(1, { HOLD: '1' }));
    await started.promise;
    const other = await connect(address);
    other.send(requestBytes(1, { N: 'overloaded' }, '', { keepConn: true }));
    const refused = await other.response(1);
    assert.deepEqual(types(refused.records), ['END']);
    assert.equal(refused.protocolStatus, ProtocolStatus.Overloaded);
    assert.equal(server.activeRequests, 1);
    release.resolve();
    await holder.response(1);
    await until(() => server.activeRequests === 0, 'the held request to finish');
    const from = other.records.length;
    other.send(requestBytes(1, { N: 'now' }));
    assert.equal(echoed((await other.response(1, from)).stdout).params.N, 'now');
  });

  test('maxConns: connections past the limit are closed on accept', async () => {
    const { server, address, refused } = await serve(echo, { maxConns: 2 });
    const first = await connect(address);
    const second = await connect(address);
    await until(() => server.connections === 2, 'two accepted connections');
    const third = await connect(address);
    await third.waitClosed();
    assert.equal(third.records.length, 0);
    assert.equal(refused.length, 1);
    assert.match(refused[0]!.reason, /maxConns \(2\)/);
    first.send(requestBytes(1, { N: 'first' }));
    assert.equal(echoed((await first.response(1)).stdout).params.N, 'first');
    await until(() => server.connections === 1, 'the first connection to close');
    const fourth = await connect(address);
    fourth.send(requestBytes(1, { N: 'fourth' }));
    assert.equal(echoed((await fourth.response(1)).stdout).params.N, 'fourth');
    assert.equal(second.ended, false);
  });

  test('idleTimeoutMs closes a connection without a request, never one carrying a request', async () => {
    const { server, address } = await serve(
      async (request, response) => {
        await new Promise((resolve) => setTimeout(resolve, 300)); // work that outlasts the idle timeout
        await echo(request, response);
      },
      { idleTimeoutMs: 100 },
    );
    const startedAt = Date.now();
    const idle = await connect(address);
    const busy = await connect(address);
    busy.send(requestBytes(1, { N: 'slow' }, '', { keepConn: true }));
    await idle.waitEnded();
    assert.ok(Date.now() - startedAt >= 90, `closed after ${Date.now() - startedAt} ms`);
    const response = await busy.response(1);
    assert.equal(echoed(response.stdout).params.N, 'slow');
    // Once the request is over the kept connection is idle again, and the timeout applies.
    await busy.waitEnded();
    await until(() => server.connections === 0, 'both connections to be closed');
  });
});

describe('FastCGIServer: allowedClients (TCP)', () => {
  const nonLoopback = Object.values(networkInterfaces())
    .flat()
    .find((info) => info && !info.internal && info.family === 'IPv4')?.address;

  test('the default list (loopback) accepts 127.0.0.1 and ::1, IPv4-mapped on a dual-stack listener', async () => {
    const remotes: Array<string | undefined> = [];
    const { address, refused } = await serve(async (request, response) => {
      remotes.push(request.remoteAddress);
      await echo(request, response);
    }, {}, { host: '::', port: 0 });
    const port = (address as { port: number }).port;
    for (const host of ['127.0.0.1', '::1']) {
      const peer = await connect({ host, port });
      peer.send(requestBytes(1, { FROM: host }));
      assert.equal(echoed((await peer.response(1)).stdout).params.FROM, host);
    }
    assert.deepEqual(remotes, ['::ffff:127.0.0.1', '::1']);
    if (nonLoopback) {
      // This machine has another address: a client coming from it is not loopback and is refused.
      const outsider = await connect({ host: nonLoopback, port, localAddress: nonLoopback });
      await outsider.waitClosed();
      assert.equal(outsider.records.length, 0);
      assert.equal(refused.at(-1)?.remoteAddress, `::ffff:${nonLoopback}`);
    }
    assert.equal(refused.length, nonLoopback ? 1 : 0);
  });

  test("a loopback client is refused when the list is ['10.0.0.0/8'], over 127.0.0.1 and ::1", async () => {
    let calls = 0;
    const { server, address, refused } = await serve(() => {
      calls += 1;
    }, { allowedClients: ['10.0.0.0/8'] }, { host: '::', port: 0 });
    const port = (address as { port: number }).port;
    for (const host of ['127.0.0.1', '::1']) {
      const peer = await connect({ host, port });
      peer.send(requestBytes(1, { FROM: host }));
      await peer.waitClosed();
      assert.equal(peer.records.length, 0, `${host} got no answer`);
    }
    assert.deepEqual(
      refused.map((r) => [r.remoteAddress, r.reason]),
      [
        ['::ffff:127.0.0.1', 'not in allowedClients'],
        ['::1', 'not in allowedClients'],
      ],
    );
    assert.equal(calls, 0);
    assert.equal(server.connections, 0);
  });

  test("allowedClients 'any' accepts every client", async () => {
    const { address, refused } = await serve(echo, { allowedClients: 'any' }, { host: '0.0.0.0', port: 0 });
    const port = (address as { port: number }).port;
    const peer = await connect({ host: nonLoopback ?? '127.0.0.1', port });
    peer.send(requestBytes(1, { N: 'any' }));
    assert.equal(echoed((await peer.response(1)).stdout).params.N, 'any');
    assert.equal(refused.length, 0);
  });
});

describe('FastCGIServer: unix socket listener', () => {
  async function dir(): Promise<string> {
    const made = await tempDir('tqserver-server-unix-');
    cleanups.push(made.cleanup);
    return made.path;
  }

  test('listens with mode 0660 by default (php-fpm listen.mode) or the socketMode given, and serves', async () => {
    const base = await dir();
    const path = join(base, 'app.sock');
    // allowedClients applies to TCP only: a unix socket's access is its file mode.
    const { address } = await serve(echo, { allowedClients: ['10.0.0.0/8'] }, path);
    assert.deepEqual(address, { path });
    const info = await stat(path);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o660);
    const peer = await connect({ path });
    peer.send(requestBytes(1, { OVER: 'unix' }, 'body'));
    const answer = echoed((await peer.response(1)).stdout);
    assert.equal(answer.params.OVER, 'unix');
    assert.equal(answer.body, 'body');

    const strict = join(base, 'strict.sock');
    await serve(echo, { socketMode: 0o600 }, `unix:${strict}`);
    assert.equal((await stat(strict)).mode & 0o777, 0o600);
  });

  test('a stale socket file left by a killed process is replaced', async () => {
    const path = join(await dir(), 'stale.sock');
    const child = spawn(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => console.log('listening'))", path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await once(child.stdout!, 'data');
    child.kill('SIGKILL'); // no chance to unlink its socket
    await once(child, 'exit');
    assert.ok((await stat(path)).isSocket(), 'the dead process left its socket file');
    const { address } = await serve(echo, {}, path);
    const peer = await connect(address);
    peer.send(requestBytes(1, { N: 'replaced' }));
    assert.equal(echoed((await peer.response(1)).stdout).params.N, 'replaced');
  });

  test('a live socket or a regular file in the way fails with FCGI_LISTEN_FAILED and is left alone', async () => {
    const base = await dir();
    const live = join(base, 'live.sock');
    const other = net.createServer((socket) => {
      socket.on('error', () => {}); // the server's liveness probe hangs up at once
      socket.end('still mine');
    });
    await new Promise<void>((resolve) => other.listen(live, resolve));
    cleanups.push(() => new Promise<void>((resolve) => other.close(() => resolve())));
    const server = new FastCGIServer(echo);
    await assert.rejects(server.listen(live), (error: unknown) => {
      assert.ok(error instanceof FastCGIUnavailableError);
      assert.equal(error.code, 'FCGI_LISTEN_FAILED');
      assert.match(error.message, /another process is listening/);
      return true;
    });
    const probe = net.connect({ path: live });
    const [reply] = (await once(probe, 'data')) as [Buffer];
    probe.destroy();
    assert.equal(reply.toString(), 'still mine', 'the other process keeps its socket');

    const file = join(base, 'not-a-socket');
    await writeFile(file, 'precious');
    await assert.rejects(server.listen(file), /not a socket/);
    assert.ok((await stat(file)).isFile());
  });
});

describe('FastCGIServer: graceful close(graceMs)', () => {
  test('stops accepting, closes idle keep-alive connections and lets a request in flight finish', async () => {
    const release = deferred();
    const started = deferred();
    const { server, address } = await serve(async (request, response) => {
      if (request.params.get('SLOW')) {
        started.resolve();
        await release.promise;
      }
      await echo(request, response);
    });
    const idle = await connect(address);
    idle.send(requestBytes(1, { N: 'idle' }, '', { keepConn: true }));
    await idle.response(1);
    const busy = await connect(address);
    busy.send(requestBytes(1, { SLOW: '1' }, 'in flight', { keepConn: true }));
    await started.promise;

    const closing = server.close(10_000);
    let closed = false;
    void closing.then(() => (closed = true));
    assert.equal(server.closing, true);
    const refused = net.connect(address as net.NetConnectOpts);
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED');
    await idle.waitEnded();
    assert.equal(busy.ended, false);
    assert.equal(closed, false);

    release.resolve();
    const response = await busy.response(1);
    assert.equal(echoed(response.stdout).body, 'in flight');
    assert.equal(response.appStatus, 0);
    await busy.waitEnded(); // FCGI_KEEP_CONN or not, a closing server ends the connection
    await closing;
    assert.equal(server.connections, 0);
    assert.equal(server.activeRequests, 0);
  });

  test('a new request on a busy multiplexed connection during close gets FCGI_OVERLOADED', async () => {
    const release = deferred();
    const started = deferred();
    const { server, address } = await serve(
      async (request, response) => {
        started.resolve();
        await release.promise;
        await echo(request, response);
      },
      { multiplex: true },
    );
    const peer = await connect(address);
    peer.send(requestBytes(1, { N: 'first' }, '', { keepConn: true }));
    await started.promise;
    const closing = server.close(10_000);
    peer.send(requestBytes(2, { N: 'during close' }, '', { keepConn: true }));
    assert.equal((await peer.response(2)).protocolStatus, ProtocolStatus.Overloaded);
    release.resolve();
    assert.equal(echoed((await peer.response(1)).stdout).params.N, 'first');
    await closing;
  });

  test('after the grace period what is left is aborted; close() resolves once every connection is gone (regression: it resolved first)', async () => {
    const started = deferred<FastCGIServerRequest>();
    const { server, address } = await serve((request) => started.resolve(request));
    const peer = await connect(address);
    peer.send(requestBytes(1, { N: 'never ends' }, '', { keepConn: true }));
    const request = await started.promise;
    const GRACE_MS = 150;
    const startedAt = Date.now();
    await server.close(GRACE_MS);
    const elapsed = Date.now() - startedAt;
    assert.ok(elapsed >= GRACE_MS - 5 && elapsed < GRACE_MS + 2000, `close took ${elapsed} ms for a grace of ${GRACE_MS} ms`);
    assert.equal(request.signal.aborted, true);
    assert.match((request.signal.reason as Error).message, /shutting down/);
    await peer.waitClosed();
    assert.equal(peer.records.some((r) => r.type === RecordType.EndRequest), false);
    assert.equal(server.connections, 0);
    assert.equal(server.activeRequests, 0);
  });

  test('close() on an idle server resolves at once and is safe to call twice', async () => {
    const { server } = await serve(echo);
    const startedAt = Date.now();
    await Promise.all([server.close(10_000), server.close(10_000)]);
    assert.ok(Date.now() - startedAt < 1000);
  });
});
