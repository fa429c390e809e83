// FastCGIServerResponse's output without a stream (issue 8): write() frames stdout straight onto
// the connection and stdout's Writable is made only when asked for. The records on the wire must be
// those the stream would have sent, and a stream asked for late must look as it would have by then.

import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  FastCGIServer,
  ProtocolStatus,
  RecordType,
  Role,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeParams,
  encodeStream,
  type Address,
  type FastCGIServerRequest,
  type FastCGIServerResponse,
} from '../src/fastcgi/index.js';
import { RawPeer, deferred, requestBytes, type WireRecord } from './helpers/raw-fcgi.js';

const TIMEOUT = { timeout: 20_000 };

const servers: FastCGIServer[] = [];
const peers: RawPeer[] = [];

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.destroy();
  for (const server of servers.splice(0)) await server.close(0);
});

interface Held {
  request: FastCGIServerRequest;
  response: FastCGIServerResponse;
}

/** A server whose handler hands each request to the test and returns, leaving the response open. */
async function holding(): Promise<{ server: FastCGIServer; peer: RawPeer; next: () => Promise<Held> }> {
  const waiting: Array<(held: Held) => void> = [];
  const arrived: Held[] = [];
  const server = new FastCGIServer((request, response) => {
    const take = waiting.shift();
    if (take) take({ request, response });
    else arrived.push({ request, response });
  });
  server.on('handlerError', () => {});
  servers.push(server);
  const address: Address = await server.listen({ host: '127.0.0.1', port: 0 });
  const peer = await RawPeer.connect(address);
  peers.push(peer);
  const next = () => {
    const held = arrived.shift();
    return held ? Promise.resolve(held) : new Promise<Held>((resolve) => waiting.push(resolve));
  };
  return { server, peer, next };
}

/** Record types in order, runs of data records collapsed: STDOUT, STDOUT(0), END. */
function shape(records: readonly WireRecord[]): string[] {
  const names: Record<number, string> = { 3: 'END', 6: 'STDOUT', 7: 'STDERR' };
  return records.map((r) => `${names[r.type] ?? r.type}${r.content.length === 0 ? '(0)' : ''}`).filter((name, i, all) => i === 0 || name !== all[i - 1]);
}

describe('FastCGIServerResponse: write() without a stream', () => {
  test('write() and end() send the records stdout would: data, the empty STDOUT, END_REQUEST', TIMEOUT, async () => {
    const { peer, next } = await holding();
    peer.send(requestBytes(1, { A: 'b' }, '', { keepConn: true }));
    const { response } = await next();
    assert.equal(response.write('Content-Type: text/plain\r\n\r\n'), true);
    assert.equal(response.write(Buffer.from('héllo')), true);
    assert.equal(response.write(''), true, 'an empty write sends nothing');
    response.end(3);
    assert.equal(response.openedStdout, null, 'no stream was made');
    const answer = await peer.response(1);
    assert.equal(answer.stdout.toString(), 'Content-Type: text/plain\r\n\r\nhéllo');
    assert.deepEqual(shape(answer.records), ['STDOUT', 'STDOUT(0)', 'END']);
    assert.equal(answer.appStatus, 3);
    assert.equal(answer.protocolStatus, ProtocolStatus.RequestComplete);
    assert.equal(response.write('late'), false, 'output after end() is dropped');
  });

  test('write() returns false when the connection is full, and onDrain is called once it drained', TIMEOUT, async () => {
    const { peer, next } = await holding();
    peer.send(requestBytes(1, { A: 'b' }, '', { keepConn: true }));
    const { response } = await next();
    const drained = deferred();
    response.onDrain = drained.resolve;
    const big = Buffer.alloc(1024 * 1024, 'x');
    assert.equal(response.write(big), false, 'a megabyte is over the socket\'s high-water mark');
    await drained.promise;
    response.end(0);
    const answer = await peer.response(1);
    assert.equal(answer.stdout.length, big.length);
    assert.deepEqual(shape(answer.records), ['STDOUT', 'STDOUT(0)', 'END']);
  });

  test('write() then the stream: the bytes arrive in order, with one empty STDOUT', TIMEOUT, async () => {
    const { peer, next } = await holding();
    peer.send(requestBytes(1, { A: 'b' }, '', { keepConn: true }));
    const { response } = await next();
    response.write('one,');
    response.stdout.write('two,');
    response.write('three'); // through the stream once it exists
    response.end(0);
    const answer = await peer.response(1);
    assert.equal(answer.stdout.toString(), 'one,two,three');
    assert.deepEqual(shape(answer.records), ['STDOUT', 'STDOUT(0)', 'END']);
  });

  test('stderr used with write(): STDOUT and STDERR each end with an empty record before END_REQUEST', TIMEOUT, async () => {
    const { peer, next } = await holding();
    peer.send(requestBytes(1, { A: 'b' }, '', { keepConn: true }));
    const { response } = await next();
    response.stderr.write('a warning\n');
    response.write('body');
    response.end(0);
    const answer = await peer.response(1);
    assert.equal(answer.stdout.toString(), 'body');
    assert.equal(answer.stderr.toString(), 'a warning\n');
    const ends = answer.records.filter((r) => r.content.length === 0).map((r) => r.type);
    assert.deepEqual(ends.sort(), [RecordType.Stdout, RecordType.Stderr]);
    assert.equal(answer.records.at(-1)!.type, RecordType.EndRequest);
  });

  test('stdout asked for after end(): ended as before, its write fails, no second empty STDOUT', TIMEOUT, async () => {
    const { peer, next } = await holding();
    peer.send(requestBytes(1, { A: 'b' }, '', { keepConn: true }));
    const { response } = await next();
    response.write('done');
    response.end(0);
    const answer = await peer.response(1);
    const stdout = response.stdout;
    assert.equal(stdout.writableEnded, true);
    const failed = deferred<Error | null | undefined>();
    stdout.write('too late', (error) => failed.resolve(error));
    assert.equal((await failed.promise as { code?: string } | null)?.code, 'ERR_STREAM_WRITE_AFTER_END');
    // The next request on the connection shows whether anything more was sent for the first.
    const from = peer.records.length;
    peer.send(requestBytes(2, { A: 'b' }, '', { keepConn: true }));
    const second = await next();
    second.response.end(0);
    await peer.response(2, from);
    assert.deepEqual(shape(answer.records), ['STDOUT', 'STDOUT(0)', 'END']);
    assert.equal(peer.records.slice(from).filter((r) => r.requestId === 1).length, 0);
  });

  test('after FCGI_ABORT_REQUEST: write() is dropped and a stream made then is destroyed; only END_REQUEST goes out', TIMEOUT, async () => {
    const { peer, next } = await holding();
    peer.send(encodeBeginRequest(1, Role.Responder, true), encodeStream(RecordType.Params, 1, encodeParams({ A: 'b' }), true));
    const { request, response } = await next();
    const inListener = deferred<{ wrote: boolean; destroyed: boolean }>();
    request.onAbort = () => inListener.resolve({ wrote: response.write('in the abort listener'), destroyed: response.stdout.destroyed });
    peer.send(encodeAbortRequest(1));
    const answer = await peer.response(1);
    assert.deepEqual(shape(answer.records), ['END']);
    assert.deepEqual(await inListener.promise, { wrote: false, destroyed: true });
    assert.equal(response.write('after'), false);
  });

  test('a handler that fails after write(): no 500 head in the middle of its output, appStatus 1', TIMEOUT, async () => {
    const failing = new FastCGIServer(async (_request, response) => {
      response.write('Content-Type: text/plain\r\n\r\npartial');
      await Promise.resolve();
      throw new Error('failed after output');
    });
    failing.on('handlerError', () => {});
    servers.push(failing);
    const peer = await RawPeer.connect(await failing.listen({ host: '127.0.0.1', port: 0 }));
    peers.push(peer);
    peer.send(requestBytes(1, { A: 'b' }, '', { keepConn: true }));
    const answer = await peer.response(1);
    assert.equal(answer.stdout.toString(), 'Content-Type: text/plain\r\n\r\npartial');
    assert.match(answer.stderr.toString(), /failed after output/);
    assert.equal(answer.appStatus, 1);
  });
});
