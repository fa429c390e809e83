// A FastCGI responder (the application side, as php-fpm is to nginx): TCP and unix listeners, a
// request table per connection, GET_VALUES, ABORT_REQUEST, UNKNOWN_TYPE/ROLE, graceful shutdown.

import { EventEmitter } from 'node:events';
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { FastCGIAbortError, FastCGIConnectionError, FastCGIProtocolError, FastCGIUnavailableError, TQServerError } from '../errors.js';
import { definedOnly, errorText } from '../util.js';
import { formatAddress, toAddress, type Address } from './address.js';
import { RecordDecoder } from './decoder.js';
import { DEFAULT_MAX_PARAMS_BYTES, ParamsCollector, decodeParams, encodeParams, paramsToMap, type ParamsIndex, type RawParam } from './params.js';
import { NULL_REQUEST_ID, ProtocolStatus, RecordType, Role, ValueName, recordTypeName, type RecordHeader } from './protocol.js';
import { encodeEndRequest, encodeRecord, encodeStreamEnd, encodeUnknownType, frameStream } from './records.js';
import { ClientAllowList } from './allow-list.js';

export interface ServerOptions {
  /** Connections served at once; more are closed on accept. Answered as FCGI_MAX_CONNS. Default 1024. */
  maxConns?: number;
  /** Requests served at once across connections; more get FCGI_OVERLOADED. Answered as FCGI_MAX_REQS. Default 1024. */
  maxReqs?: number;
  /** Accept several requests per connection (FCGI_MPXS_CONNS=1). Default false: a second gets FCGI_CANT_MPX_CONN. */
  multiplex?: boolean;
  /**
   * Client addresses (IPs or CIDR ranges) allowed on a TCP listener, like php-fpm's
   * listen.allowed_clients; 'any' allows all. Default loopback only: an open FastCGI port runs code.
   */
  allowedClients?: readonly string[] | 'any';
  /** Limit on one request's params (FCGI_PARAMS_TOO_LARGE, answered with a 431 response). Default 1 MiB. */
  maxParamsBytes?: number;
  /** Close a connection that carries no request for this long; 0 keeps it. Default 300000. */
  idleTimeoutMs?: number;
  /** File mode of a unix socket (php-fpm's listen.mode). Default 0o660. */
  socketMode?: number;
}

export type FastCGIHandler = (request: FastCGIServerRequest, response: FastCGIServerResponse) => void | Promise<void>;

const DEFAULTS = {
  maxConns: 1024,
  maxReqs: 1024,
  multiplex: false,
  allowedClients: ['127.0.0.0/8', '::1'] as readonly string[] | 'any',
  maxParamsBytes: DEFAULT_MAX_PARAMS_BYTES,
  idleTimeoutMs: 300_000,
  socketMode: 0o660,
} satisfies Required<ServerOptions>;

/** One request as the handler sees it: params, a body stream, and a signal for aborts. */
export class FastCGIServerRequest {
  readonly requestId: number;
  readonly keepConn: boolean;
  /** The params as decoded: names, and each value when asked for (rawParams makes them all). */
  readonly paramsIndex: ParamsIndex;
  /** The request body (FCGI_STDIN), read with backpressure. */
  readonly stdin: Readable;
  readonly remoteAddress: string | undefined;
  /**
   * Called once when the request is aborted (FCGI_ABORT_REQUEST, the connection lost), after the
   * signal's listeners: one plain callback, for a handler that needs no AbortSignal. An
   * AbortController and an EventTarget listener per request cost the FastCGI front more than its
   * params check (issue 8), so the controller is made only when `signal` is asked for.
   */
  onAbort: ((reason: Error) => void) | null = null;
  #params: Map<string, string> | null = null;
  #controller: AbortController | null = null;
  #abortReason: Error | null = null;

  constructor(requestId: number, keepConn: boolean, paramsIndex: ParamsIndex, stdin: Readable, remoteAddress: string | undefined) {
    this.requestId = requestId;
    this.keepConn = keepConn;
    this.paramsIndex = paramsIndex;
    this.stdin = stdin;
    this.remoteAddress = remoteAddress;
  }

  /** Aborted on FCGI_ABORT_REQUEST or when the connection is lost. */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#abortReason !== null) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /** True once the request was aborted (as signal.aborted, without making the signal). */
  get aborted(): boolean {
    return this.#abortReason !== null;
  }

  /** @internal Aborts the request once: its signal, then onAbort. */
  abortWith(reason: Error): void {
    if (this.#abortReason !== null) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
    this.onAbort?.(reason);
  }

  /** The params in order, each value as the exact bytes sent. */
  get rawParams(): readonly RawParam[] {
    return this.paramsIndex.pairs();
  }

  /** Params as UTF-8 strings; rawParams keeps the exact bytes. */
  get params(): Map<string, string> {
    this.#params ??= paramsToMap(this.rawParams);
    return this.#params;
  }
}

/** The handler's output: stdout and stderr as writable streams, and end(appStatus). */
export class FastCGIServerResponse {
  readonly stdout: Writable;
  readonly #makeStderr: () => Writable;
  #stderr: Writable | null = null;
  readonly #end: (appStatus: number) => void;
  #ended = false;

  /** `makeStderr` is called the first time stderr is asked for: most responses never write to it. */
  constructor(stdout: Writable, makeStderr: () => Writable, end: (appStatus: number) => void) {
    this.stdout = stdout;
    this.#makeStderr = makeStderr;
    this.#end = end;
  }

  get stderr(): Writable {
    this.#stderr ??= this.#makeStderr();
    return this.#stderr;
  }

  /** @internal stderr if it was ever asked for, else null (an unused stderr sends no records, spec 6.1). */
  get openedStderr(): Writable | null {
    return this.#stderr;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Ends stdout and stderr, then sends END_REQUEST once they are flushed. Idempotent. */
  end(appStatus = 0): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#end(appStatus);
  }
}

interface RequestState {
  id: number;
  keepConn: boolean;
  params: ParamsCollector | null;
  stdin: Readable | null;
  /** The empty STDIN record arrived: the body is complete. */
  stdinEnded: boolean;
  request: FastCGIServerRequest | null;
  response: FastCGIServerResponse | null;
  ended: boolean;
}

/** One accepted connection and its request table. */
class ServerConnection {
  readonly socket: net.Socket;
  readonly #server: FastCGIServer;
  readonly #options: Required<ServerOptions>;
  readonly #requests = new Map<number, RequestState>();
  readonly #decoder: RecordDecoder;
  #closing = false;
  #pausedBy = new Set<number>();
  /** The socket is corked until the next tick (see #corkUntilNextTick). */
  #corked = false;
  readonly #uncork = (): void => {
    this.#corked = false;
    this.socket.uncork();
  };

  constructor(server: FastCGIServer, socket: net.Socket, options: Required<ServerOptions>) {
    this.#server = server;
    this.socket = socket;
    this.#options = options;
    this.#decoder = new RecordDecoder('server', {
      onStreamData: (type, id, data) => this.#onStreamData(type, id, data),
      onStreamEnd: (type, id) => this.#onStreamEnd(type, id),
      onRecord: (header, content) => this.#onRecord(header, content),
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#decoder.push(chunk);
      } catch (error) {
        this.#server.reportConnectionError(this, error);
        this.destroy(error);
      }
    });
    socket.on('error', (error) => {
      const from = socket.remoteAddress ?? 'a unix socket client';
      const typed = new FastCGIConnectionError('FCGI_CONNECTION_ERROR', `connection from ${from}: ${error.message}`, { cause: error });
      this.#server.reportConnectionError(this, typed);
    });
    socket.on('end', () => {
      // Closing between records is how a web server gives up (nginx does when its client goes away);
      // closing inside one means bytes were lost, which the operator should hear about.
      if (!this.#decoder.atRecordBoundary) {
        const message = `the web server closed the connection in the middle of a record (after ${this.#decoder.bytesIn} bytes)`;
        this.#server.reportConnectionError(this, new FastCGIConnectionError('FCGI_PEER_CLOSED', message));
      }
    });
    socket.on('close', () => this.#onClose());
    socket.on('timeout', () => {
      if (this.#requests.size === 0) this.socket.destroy();
    });
    this.#armIdle();
  }

  get active(): number {
    return this.#requests.size;
  }

  /** Graceful: close once no request is in progress. */
  closeWhenIdle(): void {
    this.#closing = true;
    if (this.#requests.size === 0) this.socket.end();
  }

  destroy(error?: unknown): void {
    for (const state of this.#requests.values()) this.#abortState(state, error);
    this.socket.destroy();
  }

  // Spec 3.3: "While a request ID R is inactive, the application ignores records with requestId ==
  // R, except for FCGI_BEGIN_REQUEST records". So records for unknown ids are dropped on purpose.

  #onRecord(header: RecordHeader, content: Buffer): void {
    switch (header.type) {
      case RecordType.BeginRequest:
        this.#onBegin(header.requestId, (content[0]! << 8) | content[1]!, (content[2]! & 1) === 1);
        return;
      case RecordType.AbortRequest: {
        const state = this.#requests.get(header.requestId);
        if (!state) return;
        this.#abortState(state, new FastCGIAbortError('the web server sent FCGI_ABORT_REQUEST'));
        // Spec 5.4: the application answers an abort with END_REQUEST.
        this.#finish(state, 0);
        return;
      }
      case RecordType.GetValues:
        this.#answerGetValues(content);
        return;
      default:
        // Spec 4.2: a type this application does not understand gets FCGI_UNKNOWN_TYPE. The decoder
        // lets only server-bound types and types above FCGI_MAXTYPE reach here.
        this.socket.write(encodeUnknownType(header.type));
        return;
    }
  }

  #onBegin(id: number, role: number, keepConn: boolean): void {
    if (this.#requests.has(id)) {
      throw new FastCGIProtocolError('FCGI_BAD_REQUEST_ID', `BEGIN_REQUEST for request ${id}, which is already in progress on this connection`);
    }
    const reject = (status: number) => {
      this.socket.write(encodeEndRequest(id, 0, status));
      if (!keepConn && this.#requests.size === 0) this.socket.end();
    };
    if (role !== Role.Responder) return reject(ProtocolStatus.UnknownRole);
    if (!this.#options.multiplex && this.#requests.size > 0) return reject(ProtocolStatus.CantMpxConn);
    if (this.#server.activeRequests >= this.#options.maxReqs || this.#server.closing) return reject(ProtocolStatus.Overloaded);
    this.#requests.set(id, {
      id,
      keepConn,
      params: new ParamsCollector(this.#options.maxParamsBytes),
      stdin: null,
      stdinEnded: false,
      request: null,
      response: null,
      ended: false,
    });
    this.#server.requestStarted();
    this.socket.setTimeout(0);
  }

  #onStreamData(type: number, id: number, data: Buffer): void {
    const state = this.#requests.get(id);
    if (!state || state.ended) return; // inactive id: ignored (spec 3.3)
    if (type === RecordType.Params) {
      if (!state.params) throw this.#outOfOrder(type, id, 'after the params stream ended');
      try {
        state.params.push(data);
      } catch (error) {
        if (error instanceof TQServerError && error.code === 'FCGI_PARAMS_TOO_LARGE') return this.#refuseParams(state, error);
        throw error;
      }
      return;
    }
    if (type === RecordType.Stdin) {
      if (!state.stdin) throw this.#outOfOrder(type, id, 'before the params stream ended');
      if (state.stdinEnded) throw this.#outOfOrder(type, id, 'after the stdin stream ended');
      // A handler that destroyed its stdin has said it does not want the body: the rest is discarded
      // rather than pausing the socket for a reader that will never come.
      if (state.stdin.destroyed) return;
      if (!state.stdin.push(data)) this.#pauseFor(id);
      return;
    }
    // A responder never receives FCGI_DATA (spec 6.4: it belongs to the Filter role).
    throw this.#outOfOrder(type, id, 'for a Responder request');
  }

  #onStreamEnd(type: number, id: number): void {
    const state = this.#requests.get(id);
    if (!state || state.ended) return;
    if (type === RecordType.Params) {
      if (!state.params) throw this.#outOfOrder(type, id, 'after the params stream ended');
      const pairs = state.params.finishIndex();
      state.params = null;
      this.#startHandler(state, pairs);
      return;
    }
    if (type === RecordType.Stdin) {
      if (!state.stdin) throw this.#outOfOrder(type, id, 'before the params stream ended');
      if (state.stdinEnded) throw this.#outOfOrder(type, id, 'after the stdin stream ended');
      state.stdinEnded = true;
      if (!state.stdin.destroyed) state.stdin.push(null);
      return;
    }
    throw this.#outOfOrder(type, id, 'for a Responder request');
  }

  #outOfOrder(type: number, id: number, when: string): FastCGIProtocolError {
    return new FastCGIProtocolError('FCGI_UNEXPECTED_RECORD', `${recordTypeName(type)} record for request ${id} ${when}`);
  }

  #startHandler(state: RequestState, pairs: ParamsIndex): void {
    const id = state.id;
    const stdin = new Readable({ read: () => this.#resumeFor(id) });
    stdin.on('error', () => {});
    // A handler may destroy its stdin while the socket is paused for it; read() will not come then.
    stdin.on('close', () => this.#resumeFor(id));
    state.stdin = stdin;
    const stdout = this.#outputStream(state, RecordType.Stdout);
    const response = new FastCGIServerResponse(
      stdout,
      () => this.#outputStream(state, RecordType.Stderr),
      (appStatus) => this.#endResponse(state, appStatus),
    );
    state.response = response;
    const request = new FastCGIServerRequest(id, state.keepConn, pairs, stdin, this.socket.remoteAddress);
    state.request = request;
    let result: void | Promise<void>;
    try {
      result = this.#server.handler(request, response);
    } catch (error) {
      this.#handlerFailed(state, error);
      return;
    }
    if (result && typeof result.then === 'function') {
      result.then(
        () => response.end(0),
        (error: unknown) => this.#handlerFailed(state, error),
      );
    }
  }

  #handlerFailed(state: RequestState, error: unknown): void {
    this.#server.emit('handlerError', error, state.id);
    const response = state.response;
    if (!response || response.ended || state.ended) return;
    const stdout = response.stdout;
    if (stdout.writable && (stdout as Writable & { bytesOut?: number }).bytesOut === 0) {
      stdout.write('Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nThe FastCGI handler failed.\n');
    }
    response.stderr.write(`handler error: ${errorText(error)}\n`);
    response.end(1);
  }

  /** A Writable that frames what it is given into STDOUT or STDERR records of this request. */
  #outputStream(state: RequestState, type: number): Writable {
    const socket = this.socket;
    let used = false;
    const stream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (state.ended || socket.destroyed) return callback(new FastCGIAbortError(`request ${state.id} is over; output dropped`));
        if (chunk.length === 0) return callback();
        used = true;
        (stream as Writable & { bytesOut: number }).bytesOut += chunk.length;
        const parts: Buffer[] = [];
        frameStream(type, state.id, chunk, parts);
        this.#corkUntilNextTick();
        for (const part of parts) socket.write(part);
        if (socket.writableNeedDrain) socket.once('drain', () => callback());
        else callback();
      },
      final: (callback) => {
        // Spec 6.1/6.3: stdout always ends with an empty record; stderr only when it was used.
        if (!state.ended && !socket.destroyed && (type === RecordType.Stdout || used)) socket.write(encodeStreamEnd(type, state.id));
        callback();
      },
    });
    (stream as Writable & { bytesOut: number }).bytesOut = 0;
    stream.on('error', () => {});
    return stream;
  }

  /**
   * Holds this tick's writes to the socket and sends them together on the next, as node:http does:
   * a response whose last output and end come in one turn (PHP's answer often arrives in one read)
   * leaves in one write with its end records and END_REQUEST, one system call and one wake-up of
   * the web server instead of three (issue 8).
   */
  #corkUntilNextTick(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.socket.cork();
    process.nextTick(this.#uncork);
  }

  #endResponse(state: RequestState, appStatus: number): void {
    const response = state.response!;
    const stdout = response.stdout;
    // Nothing waits in stdout and stderr was never used: its end record and END_REQUEST go out now,
    // behind the output already written, rather than a tick later when the stream reports 'finish'.
    // Ending the stream then writes nothing more (its final sees the request over).
    if (response.openedStderr === null && stdout.writableLength === 0 && !stdout.writableEnded && !stdout.destroyed && !state.ended && !this.socket.destroyed) {
      this.#corkUntilNextTick();
      this.socket.write(encodeStreamEnd(RecordType.Stdout, state.id));
      this.#finish(state, appStatus);
      stdout.end();
      return;
    }
    let open = 2;
    const done = () => {
      open -= 1;
      if (open === 0) this.#finish(state, appStatus);
    };
    for (const stream of [response.stdout, response.openedStderr]) {
      if (stream === null || stream.writableFinished || stream.destroyed) done();
      else {
        stream.once('finish', done);
        stream.once('close', () => {
          if (!stream.writableFinished) done();
        });
        stream.end();
      }
    }
  }

  /** Sends END_REQUEST (once), frees the request id, and closes the connection if asked to. */
  #finish(state: RequestState, appStatus: number): void {
    if (state.ended) return;
    state.ended = true;
    this.#requests.delete(state.id);
    this.#pausedBy.delete(state.id);
    if (this.#pausedBy.size === 0 && this.socket.isPaused()) this.socket.resume();
    this.#server.requestFinished();
    if (state.stdin && !state.stdin.readableEnded) state.stdin.destroy();
    if (!this.socket.destroyed) this.socket.write(encodeEndRequest(state.id, appStatus, ProtocolStatus.RequestComplete));
    if (this.#requests.size === 0) {
      if (!state.keepConn || this.#closing) this.socket.end();
      else this.#armIdle();
    }
  }

  #refuseParams(state: RequestState, error: TQServerError): void {
    this.#server.reportConnectionError(this, error);
    state.params = null;
    const body = `Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n\r\n${error.message}\n`;
    this.socket.write(encodeRecord(RecordType.Stdout, state.id, Buffer.from(body)));
    this.socket.write(encodeStreamEnd(RecordType.Stdout, state.id));
    this.#finish(state, 1);
  }

  #abortState(state: RequestState, reason: unknown): void {
    if (state.ended) return;
    const error = reason instanceof Error ? reason : new FastCGIAbortError('the connection to the web server was lost');
    // Output streams go first: an abort listener that writes must not put records on the wire for
    // a request the web server has given up on (it expects only END_REQUEST, spec 5.4).
    if (state.response) {
      state.response.stdout.destroy();
      state.response.openedStderr?.destroy();
    }
    if (state.stdin && !state.stdin.readableEnded) state.stdin.destroy(error);
    state.request?.abortWith(error);
  }

  #answerGetValues(content: Buffer): void {
    const known: Record<string, string> = {
      [ValueName.MaxConns]: String(this.#options.maxConns),
      [ValueName.MaxReqs]: String(this.#options.maxReqs),
      [ValueName.MpxsConns]: this.#options.multiplex ? '1' : '0',
    };
    // Spec 4.1: the reply carries the variables the application knows; others are left out.
    const answer: Array<[string, string]> = [];
    for (const [name] of decodeParams(content)) {
      const value = known[name];
      if (value !== undefined) answer.push([name, value]);
    }
    this.socket.write(encodeRecord(RecordType.GetValuesResult, NULL_REQUEST_ID, encodeParams(answer)));
  }

  #pauseFor(id: number): void {
    this.#pausedBy.add(id);
    this.socket.pause();
  }

  #resumeFor(id: number): void {
    if (!this.#pausedBy.delete(id)) return;
    if (this.#pausedBy.size === 0) this.socket.resume();
  }

  #armIdle(): void {
    if (this.#options.idleTimeoutMs > 0) this.socket.setTimeout(this.#options.idleTimeoutMs);
  }

  #onClose(): void {
    for (const state of [...this.#requests.values()]) {
      this.#abortState(state, new FastCGIAbortError('the connection to the web server was lost'));
      state.ended = true;
      this.#server.requestFinished();
    }
    this.#requests.clear();
    this.#server.connectionClosed(this);
  }
}

export class FastCGIServer extends EventEmitter {
  readonly handler: FastCGIHandler;
  readonly #options: Required<ServerOptions>;
  readonly #connections = new Set<ServerConnection>();
  readonly #allow: ClientAllowList | null;
  #server: net.Server | null = null;
  #address: Address | null = null;
  #activeRequests = 0;
  #closing = false;
  #idleWaiters: Array<() => void> = [];

  constructor(handler: FastCGIHandler, options: ServerOptions = {}) {
    super();
    this.handler = handler;
    this.#options = { ...DEFAULTS, ...definedOnly(options) };
    this.#allow = this.#options.allowedClients === 'any' ? null : new ClientAllowList(this.#options.allowedClients);
  }

  get activeRequests(): number {
    return this.#activeRequests;
  }

  get connections(): number {
    return this.#connections.size;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** The bound address (with the real port when listening on port 0). */
  get address(): Address | null {
    return this.#address;
  }

  /** Listens on a TCP address or a unix socket path; rejects with FCGI_LISTEN_FAILED. */
  async listen(address: Address | string): Promise<Address> {
    const target = toAddress(address);
    if ('path' in target) await removeStaleSocket(target.path);
    const server = net.createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) =>
        reject(new FastCGIUnavailableError('FCGI_LISTEN_FAILED', `cannot listen on ${formatAddress(target)}: ${error.message}`, { cause: error })),
      );
      if ('path' in target) server.listen({ path: target.path, backlog: 511 }, resolve);
      else server.listen({ host: target.host, port: target.port, backlog: 511 }, resolve);
    });
    server.on('error', (error) => this.emit('error', error));
    if ('path' in target) {
      await chmod(target.path, this.#options.socketMode);
      this.#address = target;
    } else {
      const bound = server.address() as net.AddressInfo;
      this.#address = { host: target.host, port: bound.port };
    }
    this.#server = server;
    return this.#address;
  }

  /**
   * Graceful shutdown: stop accepting, let requests in progress finish for up to `graceMs`, then
   * close every connection (and abort what is left). Resolves when the last connection is gone.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.#closing = true;
    const server = this.#server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const connection of this.#connections) connection.closeWhenIdle();
    if (this.#connections.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), graceMs);
      });
      const outcome = await Promise.race([idle, expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        for (const connection of this.#connections) {
          connection.destroy(new FastCGIAbortError(`server shutting down; request not finished within ${graceMs} ms`));
        }
        // A destroyed socket reports 'close' a tick later; the promise is that they are all gone.
        await idle;
      }
    }
    await closed;
  }

  // ---- called by ServerConnection ----

  /** @internal */
  requestStarted(): void {
    this.#activeRequests += 1;
  }

  /** @internal */
  requestFinished(): void {
    this.#activeRequests -= 1;
  }

  /** @internal */
  connectionClosed(connection: ServerConnection): void {
    this.#connections.delete(connection);
    if (this.#connections.size === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** @internal */
  reportConnectionError(connection: ServerConnection, error: unknown): void {
    this.emit('connectionError', error, { remoteAddress: connection.socket.remoteAddress });
  }

  #accept(socket: net.Socket): void {
    const remote = socket.remoteAddress;
    if (this.#allow && remote !== undefined && !this.#allow.allows(remote)) {
      this.emit('refused', { remoteAddress: remote, reason: 'not in allowedClients' });
      socket.destroy();
      return;
    }
    if (this.#closing || this.#connections.size >= this.#options.maxConns) {
      this.emit('refused', { remoteAddress: remote, reason: this.#closing ? 'shutting down' : `maxConns (${this.#options.maxConns}) reached` });
      socket.destroy();
      return;
    }
    this.#connections.add(new ServerConnection(this, socket, this.#options));
  }
}

/** A unix socket file left by a process that died is removed; one that someone listens on is not. */
async function removeStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => null);
  if (!stat) return;
  if (!stat.isSocket()) {
    throw new FastCGIUnavailableError('FCGI_LISTEN_FAILED', `cannot listen on unix:${path}: a file that is not a socket is in the way`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new FastCGIUnavailableError('FCGI_LISTEN_FAILED', `cannot listen on unix:${path}: another process is listening there`);
  await unlink(path);
}
