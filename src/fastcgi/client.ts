// One client connection to a FastCGI application (php-cgi, php-fpm): one request at a time, reused
// with FCGI_KEEP_CONN; the body is written with backpressure and the response streamed as it arrives.

import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Readable } from 'node:stream';
import { FastCGIProtocolError, FastCGIUnavailableError } from '../errors.js';
import { definedOnly } from '../util.js';
import { formatAddress, toAddress, type Address } from './address.js';
import { INLINE_BODY_BYTES, pumpBody } from './client-body.js';
import { connectSocket, type ReadSlot } from './client-connect.js';
import { peerClosedError, rejectedError, timeoutError, toAbortError } from './client-errors.js';
import { ActiveRequest, safeCall } from './client-request.js';
import { FastCGIResponse } from './client-response.js';
import { CONNECTION_DEFAULTS, type ConnectionOptions, type FileBody, type ConnectionState, type RequestController, type RequestOptions, type ResponseHandler } from './client-types.js';
import { decodeValues, encodeValuesQuery, type PendingValues } from './client-values.js';
import { RecordDecoder, type DecoderSink } from './decoder.js';
import { measureParams } from './params.js';
import { NULL_REQUEST_ID, ProtocolStatus, RecordType, Role, recordTypeName, type RecordHeader } from './protocol.js';
import { encodeAbortRequest, encodeRecord, encodeRequestHead, encodeStreamEnd, frameStream } from './records.js';

export type { ConnectionOptions, EndResult, RequestBody, RequestController, RequestOptions, ResponseHandler } from './client-types.js';
export { FastCGIResponse } from './client-response.js';
export { FileBody } from './client-types.js';
export { toAbortError } from './client-errors.js';

/** The request id this client uses: php-fpm and php-cgi do not multiplex, and nginx also uses 1. */
const REQUEST_ID = 1;
/** Written to a peer that sent FIN before answering, to learn whether it still reads (#onPeerEnd). */
const PROBE_RECORD = encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, Buffer.alloc(0));
const EMPTY = Buffer.alloc(0);

export class FastCGIConnection extends EventEmitter {
  readonly address: Address;
  readonly #socket: net.Socket;
  readonly #options: Required<ConnectionOptions>;
  readonly #decoder: RecordDecoder;
  #state: ConnectionState = 'idle';
  #active: ActiveRequest | null = null;
  #drainTimer: NodeJS.Timeout | null = null;
  #closeWhenIdle = false;
  #requestsServed = 0;
  /** The peer sent FIN while a request waited for its answer; a probe write is in flight (#onPeerEnd). */
  #probing = false;
  #pendingValues: PendingValues | null = null;
  #closeError: Error | null = null;
  /** The socket's inactivity timeout as last set (see #setTimeout). */
  #timeoutMs = 0;
  /** In #onData: the decoder is handling a socket read. */
  #reading = false;
  /** A request ended in the read being handled: 'free' is emitted after it. */
  #freeAfterRead = false;

  /** Opens a connection; rejects with FCGI_CONNECT_REFUSED, FCGI_CONNECT_TIMEOUT or FCGI_CONNECTION_ERROR. */
  static connect(address: Address | string, options: ConnectionOptions = {}): Promise<FastCGIConnection> {
    const target = toAddress(address);
    const connectTimeoutMs = options.connectTimeoutMs ?? CONNECTION_DEFAULTS.connectTimeoutMs;
    return connectSocket(target, connectTimeoutMs, (socket, reads) => new FastCGIConnection(target, socket, options, reads));
  }

  /** Wraps an already connected socket; `reads` if it was opened with net's `onread` (see connectSocket). */
  constructor(address: Address, socket: net.Socket, options: ConnectionOptions = {}, reads?: ReadSlot) {
    super();
    this.address = address;
    this.#socket = socket;
    this.#options = { ...CONNECTION_DEFAULTS, ...definedOnly(options) };
    this.#decoder = new RecordDecoder('client', this.#sink());
    socket.setNoDelay(true);
    if (reads) reads.handler = (bytes, transient) => this.#onData(bytes, transient);
    else socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('timeout', () => this.#onTimeout());
    socket.on('drain', () => this.#onDrain());
    socket.on('end', () => this.#onPeerEnd());
    socket.on('error', (error: NodeJS.ErrnoException) => this.#onPeerClosed(error));
    socket.on('close', () => this.#onPeerClosed(null));
  }

  /** idle: ready for a request; busy: carrying one; draining: finishing an aborted one; closed. */
  get state(): ConnectionState {
    return this.#state;
  }

  get idle(): boolean {
    return this.#state === 'idle';
  }

  get requestsServed(): number {
    return this.#requestsServed;
  }

  /**
   * Raises the request count to what the peer says it has served in the process behind this
   * connection (a php-fpm child that served requests on earlier connections: see
   * ClientOptions.calibrate). Never lowers it.
   */
  assumeServed(count: number): void {
    if (count > this.#requestsServed) this.#requestsServed = count;
  }

  /**
   * Starts a request; the response goes to `handler`. Throws FCGI_CONNECTION_BUSY if a request is
   * in progress and FCGI_CLIENT_CLOSED if the connection is closed (nothing was sent in either case).
   */
  dispatch(options: RequestOptions, handler: ResponseHandler): RequestController {
    if (this.#state === 'closed' || this.#closeWhenIdle) {
      throw new FastCGIUnavailableError('FCGI_CLIENT_CLOSED', `connection to ${formatAddress(this.address)} is closed`);
    }
    if (this.#state !== 'idle' || this.#pendingValues) {
      throw new FastCGIUnavailableError('FCGI_CONNECTION_BUSY', `connection to ${formatAddress(this.address)} is ${this.#state}; one request at a time`);
    }
    const params = measureParams(options.params, this.#options.maxParamsBytes);
    const request = new ActiveRequest(this, handler, options, this.#options);
    const signal = options.signal;
    if (signal?.aborted) {
      // Nothing is sent for a request its caller gave up on before it started; the connection stays idle.
      request.finished = true;
      safeCall(() => handler.onError(toAbortError(signal.reason)));
      return request;
    }
    this.#active = request;
    this.#state = 'busy';
    this.#armTimer(request);

    const body = options.body;
    const inMemory = body === undefined || body === null || typeof body === 'string' || Buffer.isBuffer(body);
    const bytes = typeof body === 'string' ? Buffer.from(body) : (body as Buffer | null | undefined) ?? EMPTY;
    // Small bodies travel with the head in one write; large ones are framed without copying.
    const inline = inMemory && bytes.length <= INLINE_BODY_BYTES;
    const head = encodeRequestHead(REQUEST_ID, options.role ?? Role.Responder, request.keepConn, params, inline ? bytes : undefined);
    request.started = true;
    if (inline) {
      request.bodySent = true;
      if (!this.#socket.write(head)) this.#waitDrain(request);
    } else {
      this.#socket.write(head);
      // A large in-memory body goes out piece by piece like a stream, so the write timeout measures
      // the peer's progress: one write of the whole body drains only once all of it was taken.
      pumpBody(this, request, inMemory ? bytes : (body as FileBody | Readable | AsyncIterable<Buffer | string>));
    }

    if (signal && !request.finished) {
      const onAbort = () => request.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      const previous = request.cleanup;
      request.cleanup = () => {
        previous?.();
        signal.removeEventListener('abort', onAbort);
      };
    }
    return request;
  }

  /** Starts a request and returns it as streams and a promise (see FastCGIResponse). */
  request(options: RequestOptions): FastCGIResponse {
    return new FastCGIResponse((handler) => this.dispatch(options, handler));
  }

  /**
   * FCGI_GET_VALUES (spec 4.1): asks for FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS by
   * default. Only on an idle connection. The answer holds only the names the peer knows: php-fpm
   * 8.2 answers FCGI_MPXS_CONNS alone, php-cgi 8.2 all three. Both keep the connection open
   * afterwards, but older PHP closed it (php bug #76922), so prefer a connection of its own.
   */
  getValues(names: readonly string[] = ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS']): Promise<Map<string, string>> {
    if (this.#state !== 'idle' || this.#pendingValues) {
      return Promise.reject(new FastCGIUnavailableError('FCGI_CONNECTION_BUSY', `connection to ${formatAddress(this.address)} is ${this.#state}`));
    }
    return new Promise((resolve, reject) => {
      this.#pendingValues = { resolve, reject };
      this.#setTimeout(this.#options.readTimeoutMs);
      this.#socket.write(encodeValuesQuery(names));
    });
  }

  /** Graceful: closes now if idle, else once the current request has ended. Idempotent. */
  close(): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'idle' && !this.#pendingValues) {
      this.#finishClose(null);
      this.#socket.end();
    } else {
      this.#closeWhenIdle = true;
    }
  }

  /** Immediate: fails a request in progress with `error` (or FCGI_CLIENT_CLOSED) and drops the socket. Idempotent. */
  destroy(error?: Error): void {
    if (this.#state === 'closed') return;
    const reason = error ?? new FastCGIUnavailableError('FCGI_CLIENT_CLOSED', `connection to ${formatAddress(this.address)} was destroyed`);
    this.#failActive(reason);
    this.#finishClose(reason);
    this.#socket.destroy();
  }

  // ---- called by ActiveRequest ----

  /** @internal */
  abortRequest(request: ActiveRequest, reason?: unknown): void {
    if (request !== this.#active || request.finished || this.#state !== 'busy') return;
    const error = toAbortError(reason);
    request.complete();
    safeCall(() => request.handler.onError(error));
    request.abortSent = true;
    if (!request.bodySent) {
      // The peer may be blocked reading a body that will never come: it cannot finish this request.
      this.#socket.write(encodeAbortRequest(REQUEST_ID));
      this.destroy(error);
      return;
    }
    // Spec 5.4: the application answers FCGI_ABORT_REQUEST with END_REQUEST. php-fpm and php-cgi
    // ignore it while the script runs (php bug #76419), so wait a short while for the script to end,
    // discarding output; the connection then closes (see #settleAfterRequest).
    this.#state = 'draining';
    this.#socket.write(encodeAbortRequest(REQUEST_ID));
    this.#socket.resume();
    this.#setTimeout(0);
    this.#drainTimer = setTimeout(() => this.destroy(error), this.#options.abortGraceMs);
  }

  /** @internal */
  resumeRequest(request: ActiveRequest): void {
    if (request !== this.#active || !request.paused) return;
    request.paused = false;
    this.#armTimer(request);
    this.#socket.resume();
  }

  // ---- writing (the body pump, client-body.ts, calls the first three) ----

  /** @internal True while `request` is the one this connection carries and it has not finished. */
  carries(request: ActiveRequest): boolean {
    return !request.finished && this.#active === request;
  }

  /**
   * @internal Writes a piece of the body as STDIN records; false when the socket must drain first
   * ('writable' follows). `written`, if given, is called once the socket no longer holds the piece.
   */
  writeBody(request: ActiveRequest, chunk: Buffer | string, written?: (error?: Error | null) => void): boolean {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (data.length === 0) return true;
    const parts: Buffer[] = [];
    frameStream(RecordType.Stdin, REQUEST_ID, data, parts);
    const socket = this.#socket;
    socket.cork();
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) socket.write(parts[i]!);
    socket.write(parts[last]!, written);
    socket.uncork();
    if (socket.writableNeedDrain) {
      this.#waitDrain(request);
      return false;
    }
    return true;
  }

  /** @internal The body's end (an empty STDIN record), unless the request ended meanwhile. */
  endBody(request: ActiveRequest): void {
    if (request.finished || this.#active !== request) return;
    this.#socket.write(encodeStreamEnd(RecordType.Stdin, REQUEST_ID));
    request.bodySent = true;
  }

  #waitDrain(request: ActiveRequest): void {
    request.awaitingDrain = true;
    this.#armTimer(request);
  }

  #onDrain(): void {
    const request = this.#active;
    if (request?.awaitingDrain) {
      request.awaitingDrain = false;
      this.#armTimer(request);
      this.emit('writable');
    }
  }

  // ---- reading ----

  #sink(): DecoderSink {
    return {
      onStreamData: (type, requestId, data) => {
        const request = this.#checkRequestRecord(type, requestId);
        if (!request) return; // draining after an abort: output is discarded
        if (type === RecordType.Stdout) {
          request.stdoutBytes += data.length;
          if (!request.handler.onStdout(data) && !request.paused) {
            request.paused = true;
            this.#socket.pause();
            // Our consumer is slow, not the peer: the read timeout waits until it reads again.
            this.#setTimeout(0);
          }
        } else {
          request.stderrBytes += data.length;
          request.handler.onStderr(data);
        }
      },
      onStreamEnd: (type, requestId) => {
        // Spec 3.3: an empty STDOUT/STDERR record closes that stream; the request ends at END_REQUEST.
        this.#checkRequestRecord(type, requestId);
      },
      onRecord: (header, content) => this.#onRecord(header, content),
    };
  }

  /** Checks a request-scoped record against the request in progress; null while draining. */
  #checkRequestRecord(type: number, requestId: number): ActiveRequest | null {
    if (requestId !== REQUEST_ID || this.#active === null) {
      const expected = this.#active ? `request ${REQUEST_ID}` : 'no request in progress';
      throw new FastCGIProtocolError('FCGI_BAD_REQUEST_ID', `${recordTypeName(type)} record for request ${requestId}, expected ${expected}`);
    }
    return this.#state === 'draining' ? null : this.#active;
  }

  #onRecord(header: RecordHeader, content: Buffer): void {
    switch (header.type) {
      case RecordType.EndRequest: {
        this.#checkRequestRecord(header.type, header.requestId);
        this.#onEndRequest(content.readUInt32BE(0), content[4]!);
        return;
      }
      case RecordType.GetValuesResult: {
        this.#takePendingValues(header.type).resolve(decodeValues(content));
        return;
      }
      case RecordType.UnknownType: {
        const pending = this.#takePendingValues(header.type);
        pending.reject(new FastCGIProtocolError('FCGI_UNEXPECTED_RECORD', `peer answered UNKNOWN_TYPE for record type ${content[0]}`));
        return;
      }
      default:
        // The decoder lets no other type through to a client.
        throw new FastCGIProtocolError('FCGI_UNEXPECTED_RECORD', `${recordTypeName(header.type)} record sent to a client`);
    }
  }

  #takePendingValues(type: number): PendingValues {
    const pending = this.#pendingValues;
    if (!pending) throw new FastCGIProtocolError('FCGI_UNEXPECTED_RECORD', `${recordTypeName(type)} record without a GET_VALUES query`);
    this.#pendingValues = null;
    this.#setTimeout(0);
    if (this.#closeWhenIdle) this.close();
    return pending;
  }

  #onEndRequest(appStatus: number, protocolStatus: number): void {
    const request = this.#active!;
    if (this.#state === 'draining') {
      // The aborted request ended after all; its caller already has its error.
      this.#settleAfterRequest(request);
      return;
    }
    request.complete();
    this.#requestsServed += 1;
    if (protocolStatus !== ProtocolStatus.RequestComplete) {
      safeCall(() => request.handler.onError(rejectedError(formatAddress(this.address), protocolStatus)));
    } else {
      safeCall(() =>
        request.handler.onEnd({ appStatus, protocolStatus, stdoutBytes: request.stdoutBytes, stderrBytes: request.stderrBytes }),
      );
    }
    this.#settleAfterRequest(request);
  }

  /**
   * After END_REQUEST: the connection is reusable only if the peer keeps it, the whole body went out
   * and no FCGI_ABORT_REQUEST is pending. PHP (main/fastcgi.c) reads an ABORT_REQUEST that arrived
   * while the script ran as the first record of the next request and closes the connection, so a
   * request sent after it would be lost (measured with php-cgi and php-fpm 8.2).
   */
  #settleAfterRequest(request: ActiveRequest): void {
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#drainTimer = null;
    this.#active = null;
    if (this.#state === 'closed') return;
    if (!request.keepConn || !request.bodySent || request.abortSent || this.#closeWhenIdle) {
      this.#finishClose(null);
      this.#socket.end();
      return;
    }
    this.#state = 'idle';
    // The read timeout stays armed while idle (#onTimeout ignores it then; the next request's write
    // restarts it): disarming and arming it again would cost two new timers per request.
    if (request.paused) this.#socket.resume();
    // Inside a read, 'free' waits for the rest of it: a record after END_REQUEST in the same read is
    // then a protocol error (no request in progress), never the start of the next request's answer.
    if (this.#reading) this.#freeAfterRead = true;
    else this.emit('free', this);
  }

  /** `transient`: see ReadHandler. */
  #onData(chunk: Buffer, transient = false): void {
    this.#reading = true;
    try {
      this.#decoder.push(chunk, transient);
    } catch (error) {
      // A protocol violation (or a throwing handler) costs this connection, never the process.
      this.#freeAfterRead = false;
      this.destroy(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#reading = false;
    }
    if (this.#freeAfterRead) {
      this.#freeAfterRead = false;
      if (this.#state === 'idle') this.emit('free', this);
    }
  }

  #onTimeout(): void {
    const error = timeoutError(formatAddress(this.address), this.#pendingValues ? this.#options.readTimeoutMs : null, this.#active);
    // Null when idle: the read timeout stays armed between requests (see #settleAfterRequest); nothing to fail.
    if (error) this.destroy(error);
  }

  #armTimer(request: ActiveRequest): void {
    this.#setTimeout(request.awaitingDrain ? request.writeTimeoutMs : request.paused ? 0 : request.readTimeoutMs);
  }

  /**
   * Sets the socket's inactivity timeout only when it changes: Node makes a new timer for every
   * setTimeout call, and most requests want the one the previous request had. Reads and writes
   * restart it, as FCGI_READ_TIMEOUT and FCGI_WRITE_TIMEOUT mean.
   */
  #setTimeout(ms: number): void {
    if (ms === this.#timeoutMs) return;
    this.#timeoutMs = ms;
    this.#socket.setTimeout(ms);
  }

  /**
   * The peer sent FIN. php-fpm (main/fastcgi.c fcgi_close) ends a kept-alive connection after the
   * last request a child serves (pm.max_requests) by shutting its write side just after that
   * request's END_REQUEST, then reading and discarding whatever arrives until we close. A request
   * sent in that moment was never run. On a unix socket this is provable: a write to a peer that is
   * gone fails at once (EPIPE), a write to one that still reads succeeds. So when the request has
   * had no answer at all, one probe record (an empty FCGI_GET_VALUES, harmless to any FastCGI
   * application) tells the two apart, and the request is failed as `unprocessed` (sent again by the
   * pool, POST included) only when the peer was still reading. Over TCP a write to a closed peer
   * also succeeds (the reset comes later), so nothing is concluded there.
   */
  #onPeerEnd(): void {
    if (this.#state === 'closed' || this.#probing) return;
    const request = this.#active;
    const socket = this.#socket;
    if (request && !request.finished && request.stdoutBytes === 0 && request.stderrBytes === 0 && 'path' in this.address && socket.allowHalfOpen && socket.writable) {
      this.#probing = true;
      socket.write(PROBE_RECORD, (error) => {
        if (error) this.#onPeerClosed(error as NodeJS.ErrnoException);
        else this.#onPeerClosed(null, true);
      });
      return;
    }
    this.#onPeerClosed(null);
  }

  #onPeerClosed(error: NodeJS.ErrnoException | null, unprocessed = false): void {
    if (this.#state === 'closed') return;
    if (this.#probing && !unprocessed && !error) return; // 'close' during the probe: its outcome decides
    this.#probing = false;
    const reason = peerClosedError(formatAddress(this.address), error, this.#active, this.#requestsServed + 1, unprocessed);
    this.#failActive(reason);
    this.#finishClose(reason);
    this.#socket.destroy();
  }

  #failActive(reason: Error): void {
    const request = this.#active;
    if (request && !request.finished) {
      request.complete();
      safeCall(() => request.handler.onError(reason));
    }
    this.#active = null;
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#drainTimer = null;
    const pending = this.#pendingValues;
    this.#pendingValues = null;
    pending?.reject(reason);
  }

  #finishClose(reason: Error | null): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#closeError = reason;
    this.emit('close', this, reason);
  }

  /** Why the connection closed (null when closed on purpose or idle). */
  get closeError(): Error | null {
    return this.#closeError;
  }
}
