// One connection accepted by the FastCGI responder: its request table, the server-side rules as one
// switch on record type (BEGIN, ABORT, GET_VALUES, UNKNOWN_TYPE), the params and stdin streams in,
// stdout and stderr framed out, END_REQUEST, and keep-conn or close.

import net from 'node:net';
import { Writable } from 'node:stream';
import { FastCGIAbortError, FastCGIConnectionError, FastCGIProtocolError, TQServerError } from '../errors.js';
import { errorText } from '../util.js';
import { RecordDecoder } from './decoder.js';
import { ParamsCollector, decodeParams, encodeParams, type ParamsIndex } from './params.js';
import { NULL_REQUEST_ID, ProtocolStatus, RecordType, Role, ValueName, recordTypeName, type RecordHeader } from './protocol.js';
import { encodeEndRequest, encodeRecord, encodeStreamEnd, encodeUnknownType, frameStream } from './records.js';
import type { FastCGIServer, ServerOptions } from './server.js';
import { FastCGIServerRequest, FastCGIServerResponse } from './server-request.js';

interface RequestState {
  id: number;
  keepConn: boolean;
  params: ParamsCollector | null;
  /** The empty STDIN record arrived: the body is complete. */
  stdinEnded: boolean;
  request: FastCGIServerRequest | null;
  response: FastCGIServerResponse | null;
  ended: boolean;
}

/** One accepted connection and its request table. */
export class ServerConnection {
  readonly socket: net.Socket;
  readonly #server: FastCGIServer;
  readonly #options: Required<ServerOptions>;
  readonly #requests = new Map<number, RequestState>();
  readonly #decoder: RecordDecoder;
  #closing = false;
  #pausedBy = new Set<number>();
  /** Responses whose write() returned false, told when the socket drains. */
  readonly #drainWaiters = new Set<FastCGIServerResponse>();
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
    socket.on('drain', () => this.#onDrain());
    socket.on('close', () => this.#onClose());
    socket.on('timeout', () => {
      if (this.#requests.size === 0) this.socket.destroy();
    });
    // Armed once: each read and write restarts it, and while a request is in progress it is
    // ignored, so it fires only after idleTimeoutMs without a request (END_REQUEST is the last write).
    // Disarming it per request and arming it again cost a Timeout and a bound function each (issue 8).
    if (options.idleTimeoutMs > 0) socket.setTimeout(options.idleTimeoutMs);
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
      stdinEnded: false,
      request: null,
      response: null,
      ended: false,
    });
    this.#server.requestStarted();
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
      if (!state.request) throw this.#outOfOrder(type, id, 'before the params stream ended');
      if (state.stdinEnded) throw this.#outOfOrder(type, id, 'after the stdin stream ended');
      if (!state.request.pushStdin(data)) this.#pauseFor(id);
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
      if (!state.request) throw this.#outOfOrder(type, id, 'before the params stream ended');
      if (state.stdinEnded) throw this.#outOfOrder(type, id, 'after the stdin stream ended');
      state.stdinEnded = true;
      state.request.endStdin();
      return;
    }
    throw this.#outOfOrder(type, id, 'for a Responder request');
  }

  #outOfOrder(type: number, id: number, when: string): FastCGIProtocolError {
    return new FastCGIProtocolError('FCGI_UNEXPECTED_RECORD', `${recordTypeName(type)} record for request ${id} ${when}`);
  }

  #startHandler(state: RequestState, pairs: ParamsIndex): void {
    const id = state.id;
    const response = new FastCGIServerResponse(id, this);
    state.response = response;
    const request = new FastCGIServerRequest(id, state.keepConn, pairs, this, this.socket.remoteAddress);
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
    const stdout = response.openedStdout;
    if ((stdout === null || stdout.writable) && response.stdoutBytes === 0) {
      response.write('Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nThe FastCGI handler failed.\n');
    }
    response.stderr.write(`handler error: ${errorText(error)}\n`);
    response.end(1);
  }

  // ---- ResponseSink: what a FastCGIServerResponse writes through ----

  /** The request of `response` while it is in progress, else null (an id is reused once free). */
  #stateOf(response: FastCGIServerResponse): RequestState | null {
    const state = this.#requests.get(response.requestId);
    return state !== undefined && state.response === response && !state.ended ? state : null;
  }

  /** @internal */
  writeStdout(response: FastCGIServerResponse, chunk: Buffer): boolean {
    const state = this.#stateOf(response);
    if (state === null || this.socket.destroyed) return false;
    if (chunk.length === 0) return true;
    response.countStdout(chunk.length);
    this.#frame(RecordType.Stdout, state.id, chunk);
    if (!this.socket.writableNeedDrain) return true;
    this.#drainWaiters.add(response);
    return false;
  }

  /** @internal A Writable that frames what it is given into STDOUT or STDERR records of the request. */
  openOutput(response: FastCGIServerResponse, type: number, ended: boolean): Writable {
    const state = this.#stateOf(response);
    const socket = this.socket;
    let used = false;
    const stream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (state === null || state.ended || socket.destroyed) return callback(new FastCGIAbortError(`request ${response.requestId} is over; output dropped`));
        if (chunk.length === 0) return callback();
        used = true;
        if (type === RecordType.Stdout) response.countStdout(chunk.length);
        this.#frame(type, state.id, chunk);
        if (socket.writableNeedDrain) socket.once('drain', () => callback());
        else callback();
      },
      final: (callback) => {
        // Spec 6.1/6.3: stdout always ends with an empty record; stderr only when it was used. A
        // stdout made after the response ended sends none: its end record went without it.
        if (!ended && state !== null && !state.ended && !socket.destroyed && (type === RecordType.Stdout || used)) socket.write(encodeStreamEnd(type, state.id));
        callback();
      },
    });
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

  /** @internal Ends the streams in use, then sends END_REQUEST once they are flushed. */
  endResponse(response: FastCGIServerResponse, appStatus: number): void {
    const state = this.#stateOf(response);
    if (state === null) return;
    const stdout = response.openedStdout;
    const stderr = response.openedStderr;
    // Nothing waits in stdout and stderr was never used: its end record and END_REQUEST go out now,
    // behind the output already written, rather than a tick later when a stream reports 'finish'.
    // Ending the stream then writes nothing more (its final sees the request over).
    if (stderr === null && (stdout === null || (stdout.writableLength === 0 && !stdout.writableEnded && !stdout.destroyed)) && !this.socket.destroyed) {
      this.#corkUntilNextTick();
      this.socket.write(encodeStreamEnd(RecordType.Stdout, state.id));
      this.#finish(state, appStatus);
      stdout?.end();
      return;
    }
    // Without a stream, all of stdout is already on the socket.
    if (stdout === null && !this.socket.destroyed) this.socket.write(encodeStreamEnd(RecordType.Stdout, state.id));
    let open = 2;
    const done = () => {
      open -= 1;
      if (open === 0) this.#finish(state, appStatus);
    };
    for (const stream of [stdout, stderr]) {
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

  #frame(type: number, id: number, chunk: Buffer): void {
    const parts: Buffer[] = [];
    frameStream(type, id, chunk, parts);
    this.#corkUntilNextTick();
    for (const part of parts) this.socket.write(part);
  }

  #onDrain(): void {
    if (this.#drainWaiters.size === 0) return;
    const waiters = [...this.#drainWaiters];
    this.#drainWaiters.clear();
    for (const response of waiters) response.onDrain?.();
  }

  /** Sends END_REQUEST (once), frees the request id, and closes the connection if asked to. */
  #finish(state: RequestState, appStatus: number): void {
    if (state.ended) return;
    state.ended = true;
    this.#requests.delete(state.id);
    this.#pausedBy.delete(state.id);
    if (this.#pausedBy.size === 0 && this.socket.isPaused()) this.socket.resume();
    this.#server.requestFinished();
    state.request?.closeStdin();
    if (!this.socket.destroyed) this.socket.write(encodeEndRequest(state.id, appStatus, ProtocolStatus.RequestComplete));
    if (this.#requests.size === 0) {
      if (!state.keepConn || this.#closing) this.socket.end();
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
    state.response?.closeOutput();
    state.request?.closeStdin(error);
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

  /** @internal A request's stdin wants more (or was destroyed): the socket reads again once no request holds it. */
  resumeStdin(id: number): void {
    if (!this.#pausedBy.delete(id)) return;
    if (this.#pausedBy.size === 0) this.socket.resume();
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
