// FastCGIServer's stdin is made when the handler first asks for it or the first body bytes come
// (issue 8: a GET never needs one). These are the cases where it is asked for late: after the body
// arrived, after the socket paused for it, after an abort, a lost connection or the response's end.
// A stream made late must look as one made when the handler started would by then.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { after, afterEach, before, describe, test } from 'node:test';
import { FastCGIAbortError } from '../src/errors.js';
import {
  FastCGIConnection,
  FastCGIServer,
  RecordType,
  Role,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeParams,
  encodeRecord,
  encodeStream,
  NULL_REQUEST_ID,
  type Address,
  type EndResult,
  type FastCGIHandler,
  type FastCGIServerRequest,
  type FastCGIServerResponse,
  type ResponseHandler,
} from '../src/fastcgi/index.js';
import { RawPeer, deferred, requestBytes, until } from './helpers/raw-fcgi.js';

const TIMEOUT = { timeout: 20_000 };

/** A GET_VALUES record: the server answers records in order, so its answer says all before it was read. */
const BARRIER = encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, encodeParams({ FCGI_MPXS_CONNS: '' }));

const servers: FastCGIServer[] = [];
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  for (const server of servers.splice(0)) await server.close(0);
});

/** Server-side sockets paused so far: the only sockets accepted in this process are the server's. */
const pausedSockets: net.Socket[] = [];
const realPause = net.Socket.prototype.pause;
before(() => {
  net.Socket.prototype.pause = function pause(this: net.Socket) {
    if ((this as net.Socket & { server?: unknown }).server) pausedSockets.push(this);
    return realPause.call(this);
  };
});
after(() => {
  net.Socket.prototype.pause = realPause;
});

interface Held {
  request: FastCGIServerRequest;
  response: FastCGIServerResponse;
}

/** A server whose handler hands each request to the test and returns, leaving the response open. */
async function holdingServer(): Promise<{ server: FastCGIServer; address: Address; next: () => Promise<Held> }> {
  const waiting: Array<(held: Held) => void> = [];
  const arrived: Held[] = [];
  const server = new FastCGIServer((request, response) => {
    const held = { request, response };
    const take = waiting.shift();
    if (take) take(held);
    else arrived.push(held);
  });
  servers.push(server);
  const address = await server.listen({ host: '127.0.0.1', port: 0 });
  const next = () => {
    const held = arrived.shift();
    return held ? Promise.resolve(held) : new Promise<Held>((resolve) => waiting.push(resolve));
  };
  return { server, address, next };
}

async function rawPeer(address: Address): Promise<RawPeer> {
  const peer = await RawPeer.connect(address);
  closers.push(() => peer.destroy());
  return peer;
}

async function client(address: Address): Promise<FastCGIConnection> {
  const connection = await FastCGIConnection.connect(address);
  connection.on('error', () => {});
  closers.push(() => connection.destroy());
  return connection;
}

/** Runs one request through the project's FastCGI client; resolves with its stdout and end, or its error. */
function send(connection: FastCGIConnection, params: Record<string, string>, body?: Buffer | Readable): {
  controller: ReturnType<FastCGIConnection['dispatch']>;
  result: Promise<{ stdout: string; end: EndResult } | Error>;
} {
  const chunks: Buffer[] = [];
  const done = deferred<{ stdout: string; end: EndResult } | Error>();
  const handler: ResponseHandler = {
    onStdout: (chunk) => chunks.push(Buffer.from(chunk)) > 0,
    onStderr: () => {},
    onEnd: (end) => done.resolve({ stdout: Buffer.concat(chunks).toString(), end }),
    onError: (error) => done.resolve(error),
  };
  const controller = connection.dispatch({ params: Object.entries(params), body, keepConn: true }, handler);
  return { controller, result: done.promise };
}

async function readAll(stdin: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** What reading a stream to its end ends with: its error, or null when it ended. */
async function readingFails(stdin: Readable): Promise<unknown> {
  try {
    await readAll(stdin);
    return null;
  } catch (error) {
    return error;
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function ok(response: FastCGIServerResponse, text: string): void {
  response.stdout.write(`Content-Type: text/plain\r\n\r\n${text}`);
  response.end(0);
}

describe('FastCGIServer: stdin asked for late', () => {
  test('requests whose handler never asks for stdin are served, and the kept connection serves a body after them', TIMEOUT, async () => {
    const bodies: string[] = [];
    const handler: FastCGIHandler = async (request, response) => {
      if (request.params.get('READ') === '1') bodies.push((await readAll(request.stdin)).toString());
      ok(response, `done ${request.params.get('N')}`);
    };
    const server = new FastCGIServer(handler);
    servers.push(server);
    const connection = await client(await server.listen({ host: '127.0.0.1', port: 0 }));
    for (const n of ['1', '2']) {
      const result = await send(connection, { N: n }).result;
      assert.ok(!(result instanceof Error), String(result));
      assert.equal(result.stdout, `Content-Type: text/plain\r\n\r\ndone ${n}`);
      assert.equal(result.end.appStatus, 0);
    }
    // A body the handler never reads is dropped when the response ends, as before.
    const unread = await send(connection, { N: '3' }, Buffer.from('not read')).result;
    assert.ok(!(unread instanceof Error), String(unread));
    const read = await send(connection, { N: '4', READ: '1' }, Buffer.from('read this')).result;
    assert.ok(!(read instanceof Error), String(read));
    assert.equal(read.stdout, 'Content-Type: text/plain\r\n\r\ndone 4');
    assert.deepEqual(bodies, ['read this']);
    assert.equal(connection.requestsServed, 4);
    assert.equal(server.activeRequests, 0);
  });

  test('the whole body and its end arrived before the first read: it is all read, then the end', TIMEOUT, async () => {
    const { address, next } = await holdingServer();
    const peer = await rawPeer(address);
    const body = randomBytes(3 * 1024);
    peer.send(requestBytes(1, { A: 'b' }, body, { keepConn: true }), BARRIER);
    const { request, response } = await next();
    await peer.waitRecord((r) => r.type === RecordType.GetValuesResult);
    assert.deepEqual(await readAll(request.stdin), body);
    ok(response, 'read');
    assert.equal((await peer.response(1)).stdout.toString(), 'Content-Type: text/plain\r\n\r\nread');

    // An empty body that ended before the first read: the stream ends at once.
    const from = peer.records.length;
    peer.send(requestBytes(2, { A: 'b' }, '', { keepConn: true }), BARRIER);
    const second = await next();
    await peer.waitRecord((r) => r.type === RecordType.GetValuesResult, from);
    assert.equal((await readAll(second.request.stdin)).length, 0);
    ok(second.response, 'empty');
    assert.equal((await peer.response(2, from)).stdout.toString(), 'Content-Type: text/plain\r\n\r\nempty');
  });

  test('a body larger than the limit, unread: the server keeps what came, pauses the socket, and reading resumes it', TIMEOUT, async () => {
    const { address, next } = await holdingServer();
    const peer = await rawPeer(address);
    const body = randomBytes(1024 * 1024);
    const pausesBefore = pausedSockets.length;
    peer.send(requestBytes(1, { A: 'b' }, body, { keepConn: true }), BARRIER);
    const { request, response } = await next();
    await until(() => pausedSockets.length > pausesBefore, 'the server to pause the socket');
    const socket = pausedSockets.at(-1)!;
    assert.equal(socket.isPaused(), true);
    const queued = request.stdin.readableLength;
    assert.ok(queued > 0 && queued <= 256 * 1024, `${queued} bytes were queued for a handler that had not read; without backpressure it would be the whole body`);
    assert.equal(
      peer.records.some((r) => r.type === RecordType.GetValuesResult),
      false,
      'the records behind the body wait while the socket is paused',
    );
    const read = await readAll(request.stdin);
    assert.equal(read.length, body.length);
    assert.equal(sha256(read), sha256(body));
    await peer.waitRecord((r) => r.type === RecordType.GetValuesResult);
    assert.equal(socket.isPaused(), false);
    ok(response, 'all read');
    assert.equal((await peer.response(1)).stdout.toString(), 'Content-Type: text/plain\r\n\r\nall read');
  });

  test('discardStdin: a body sent anyway is dropped without pausing the socket', TIMEOUT, async () => {
    const { address, next } = await holdingServer();
    const peer = await rawPeer(address);
    const pausesBefore = pausedSockets.length;
    peer.send(encodeBeginRequest(1, Role.Responder, true), encodeStream(RecordType.Params, 1, encodeParams({ CONTENT_LENGTH: '0' }), true));
    const { request, response } = await next();
    request.discardStdin();
    peer.send(encodeStream(RecordType.Stdin, 1, randomBytes(1024 * 1024), true), BARRIER);
    // The answer behind the body comes only if the server read the whole body without pausing.
    await peer.waitRecord((r) => r.type === RecordType.GetValuesResult);
    assert.equal(pausedSockets.length, pausesBefore);
    ok(response, 'discarded');
    assert.equal((await peer.response(1)).stdout.toString(), 'Content-Type: text/plain\r\n\r\ndiscarded');
  });

  test('FCGI_ABORT_REQUEST before the first read, no body bytes yet: stdin made afterwards fails with the abort', TIMEOUT, async () => {
    const { server, address, next } = await holdingServer();
    const connection = await client(address);
    const body = new PassThrough(); // never ends: the request is still sending its body
    const { controller, result } = send(connection, { A: 'b' }, body);
    const { request } = await next();
    const aborted = deferred<Error>();
    request.onAbort = aborted.resolve;
    controller.abort();
    const reason = await aborted.promise;
    assert.ok(reason instanceof FastCGIAbortError);
    const stdin = request.stdin;
    assert.equal(stdin.destroyed, true);
    assert.equal(await readingFails(stdin), reason, 'reading fails with the abort, as a stream made at the start would');
    assert.ok((await result) instanceof Error, 'the client sees its request aborted');
    await until(() => server.activeRequests === 0, 'the request to be over');
  });

  test('FCGI_ABORT_REQUEST behind body bytes nobody read yet: stdin fails with the abort', TIMEOUT, async () => {
    const { address, next } = await holdingServer();
    const peer = await rawPeer(address);
    peer.send(
      encodeBeginRequest(1, Role.Responder, true),
      encodeStream(RecordType.Params, 1, encodeParams({ A: 'b' }), true),
      encodeStream(RecordType.Stdin, 1, Buffer.from('part of a body')),
      encodeAbortRequest(1),
    );
    const { request } = await next();
    await peer.response(1); // END_REQUEST: the abort was handled
    assert.equal(request.aborted, true);
    const error = await readingFails(request.stdin);
    assert.ok(error instanceof FastCGIAbortError);
    assert.match(error.message, /ABORT_REQUEST/);
  });

  test('the connection lost before the first read: stdin made afterwards fails as the request did', TIMEOUT, async () => {
    const { server, address, next } = await holdingServer();
    const connection = await client(address);
    const { result } = send(connection, { A: 'b' }, new PassThrough());
    const { request } = await next();
    const aborted = deferred<Error>();
    request.onAbort = aborted.resolve;
    connection.destroy();
    const reason = await aborted.promise;
    assert.match(reason.message, /connection to the web server was lost/);
    assert.equal(await readingFails(request.stdin), reason);
    assert.ok((await result) instanceof Error);
    await until(() => server.activeRequests === 0 && server.connections === 0, 'the connection to be gone');
  });

  test('the response ended before the first read: stdin made afterwards is closed, as one made at the start was', TIMEOUT, async () => {
    const { address, next } = await holdingServer();
    const peer = await rawPeer(address);
    peer.send(requestBytes(1, { A: 'b' }, 'never read', { keepConn: true }));
    const { request, response } = await next();
    ok(response, 'ended');
    await peer.response(1);
    const stdin = request.stdin;
    assert.equal(stdin.destroyed, true);
    const error = await readingFails(stdin);
    assert.equal((error as { code?: string } | null)?.code, 'ERR_STREAM_PREMATURE_CLOSE');

    // And with no body at all: the same, with nothing left paused for the next request.
    const from = peer.records.length;
    peer.send(requestBytes(2, { A: 'b' }, '', { keepConn: true }));
    const second = await next();
    ok(second.response, 'ended too');
    await peer.response(2, from);
    assert.equal((second.request.stdin as Readable).destroyed, true);
    const after = peer.records.length;
    peer.send(requestBytes(3, { A: 'b' }, 'x', { keepConn: true }));
    const third = await next();
    assert.equal((await readAll(third.request.stdin)).toString(), 'x');
    ok(third.response, 'third');
    assert.equal((await peer.response(3, after)).stdout.toString(), 'Content-Type: text/plain\r\n\r\nthird');
  });
});
