// One client connection to a FastCGI application (php-cgi, php-fpm): one request at a time, reused
// with FCGI_KEEP_CONN; the body is written with backpressure and the response streamed as it arrives.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import { Readable } from 'node:stream';
import {
  FastCGIAbortError,
  FastCGIConnectionError,
  FastCGIProtocolError,
  FastCGIRejectedError,
  FastCGITimeoutError,
  FastCGIUnavailableError,
  TQServerError,
} from '../errors.js';
import { definedOnly, errorText } from '../util.js';
import { formatAddress, toAddress, type Address } from './address.js';
import { RecordDecoder, type DecoderSink } from './decoder.js';
import { DEFAULT_MAX_PARAMS_BYTES, decodeParams, encodeParams, measureParams } from './params.js';
import {
  NULL_REQUEST_ID,
  ProtocolStatus,
  RecordType,
  Role,
  protocolStatusName,
  recordTypeName,
  type ParamPairs,
  type RecordHeader,
} from './protocol.js';
import { encodeAbortRequest, encodeRecord, encodeRequestHead, encodeStreamEnd, frameStream } from './records.js';

/** A request body: nothing, bytes in memory, or a stream read with backpressure. */
export type RequestBody = Buffer | string | Readable | AsyncIterable<Buffer | string> | null | undefined;

export interface ConnectionOptions {
  /** Give up connecting after this long (FCGI_CONNECT_TIMEOUT). Default 5000. */
  connectTimeoutMs?: number;
  /** Fail a request when the peer sends nothing for this long (FCGI_READ_TIMEOUT); 0 disables. Default 60000. */
  readTimeoutMs?: number;
  /** Fail a request when the peer accepts nothing for this long (FCGI_WRITE_TIMEOUT); 0 disables. Default 60000. */
  writeTimeoutMs?: number;
  /** After an abort, how long to wait for the peer's END_REQUEST before closing the connection. Default 1000. */
  abortGraceMs?: number;
  /** Limit on one request's encoded params (FCGI_PARAMS_TOO_LARGE). Default 1 MiB. */
  maxParamsBytes?: number;
}

export interface RequestOptions {
  params: ParamPairs;
  body?: RequestBody;
  /** Default FCGI_RESPONDER. */
  role?: number;
  /** Ask the peer to keep the connection open after this request (FCGI_KEEP_CONN). Default true. */
  keepConn?: boolean;
  signal?: AbortSignal;
  readTimeoutMs?: number;
  writeTimeoutMs?: number;
}

/** What END_REQUEST said, and how much came back. */
export interface EndResult {
  appStatus: number;
  protocolStatus: number;
  stdoutBytes: number;
  stderrBytes: number;
}

/**
 * Receives one response as it arrives (the undici dispatch-handler shape). Returning false from
 * onStdout stops reading from the socket until controller.resume().
 */
export interface ResponseHandler {
  onStdout(chunk: Buffer): boolean;
  onStderr(chunk: Buffer): void;
  onEnd(result: EndResult): void;
  onError(error: Error): void;
  /**
   * Optional: the request left the wait queue and is being sent to a PHP process (its pid when
   * known). Pools call it; observers use it to split queue time from PHP time.
   */
  onDispatch?(process: { pid: number | null }): void;
}

export interface RequestController {
  /** Stop the request: FCGI_ABORT_REQUEST is sent and the handler gets FCGI_REQUEST_ABORTED. */
  abort(reason?: unknown): void;
  /** Read again after onStdout returned false. */
  resume(): void;
  /** True once any byte of the request was handed to the socket (a request is replayed only if false). */
  readonly started: boolean;
  /** True once the whole body and its terminator were handed to the socket. */
  readonly bodySent: boolean;
}

type ConnectionState = 'idle' | 'busy' | 'draining' | 'closed';

interface PendingValues {
  resolve: (values: Map<string, string>) => void;
  reject: (error: Error) => void;
}

/** The request id this client uses: php-fpm and php-cgi do not multiplex, and nginx also uses 1. */
const REQUEST_ID = 1;
/** Written to a peer that sent FIN before answering, to learn whether it still reads (#onPeerEnd). */
const PROBE_RECORD = encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, Buffer.alloc(0));

const DEFAULTS = {
  connectTimeoutMs: 5000,
  readTimeoutMs: 60_000,
  writeTimeoutMs: 60_000,
  abortGraceMs: 1000,
  maxParamsBytes: DEFAULT_MAX_PARAMS_BYTES,
} as const satisfies Required<ConnectionOptions>;

class ActiveRequest implements RequestController {
  readonly handler: ResponseHandler;
  readonly readTimeoutMs: number;
  readonly writeTimeoutMs: number;
  readonly keepConn: boolean;
  started = false;
  bodySent = false;
  finished = false;
  /** FCGI_ABORT_REQUEST went out: the connection must not carry another request (see abortRequest). */
  abortSent = false;
  stdoutBytes = 0;
  stderrBytes = 0;
  paused = false;
  awaitingDrain = false;
  cleanup: (() => void) | null = null;
  readonly #connection: FastCGIConnection;

  constructor(connection: FastCGIConnection, handler: ResponseHandler, options: RequestOptions, defaults: Required<ConnectionOptions>) {
    this.#connection = connection;
    this.handler = handler;
    this.readTimeoutMs = options.readTimeoutMs ?? defaults.readTimeoutMs;
    this.writeTimeoutMs = options.writeTimeoutMs ?? defaults.writeTimeoutMs;
    this.keepConn = options.keepConn ?? true;
  }

  abort(reason?: unknown): void {
    this.#connection.abortRequest(this, reason);
  }

  resume(): void {
    this.#connection.resumeRequest(this);
  }
}

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
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    return new Promise((resolve, reject) => {
      // Half-open allowed: a peer that shuts its write side may still be reading (see #onPeerEnd).
      const socket = 'path' in target ? net.connect({ path: target.path, allowHalfOpen: true }) : net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
      const timer =
        connectTimeoutMs > 0
          ? setTimeout(() => {
              socket.destroy();
              reject(new FastCGITimeoutError('FCGI_CONNECT_TIMEOUT', `connect to ${formatAddress(target)} timed out after ${connectTimeoutMs} ms`));
            }, connectTimeoutMs)
          : null;
      const onError = (error: NodeJS.ErrnoException) => {
        if (timer) clearTimeout(timer);
        reject(connectError(target, error));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        if (timer) clearTimeout(timer);
        socket.off('error', onError);
        resolve(new FastCGIConnection(target, socket, options));
      });
    });
  }

  /** Wraps an already connected socket. */
  constructor(address: Address, socket: net.Socket, options: ConnectionOptions = {}) {
    super();
    this.address = address;
    this.#socket = socket;
    this.#options = { ...DEFAULTS, ...definedOnly(options) };
    this.#decoder = new RecordDecoder('client', this.#sink());
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
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
      this.#safeCall(() => handler.onError(toAbortError(signal.reason)));
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
      this.#pumpBody(request, inMemory ? bytes : (body as Readable | AsyncIterable<Buffer | string>));
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
      const query = encodeParams(names.map((name) => [name, ''] as const));
      this.#setTimeout(this.#options.readTimeoutMs);
      this.#socket.write(encodeRecord(RecordType.GetValues, NULL_REQUEST_ID, query));
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
    this.#completeRequest(request);
    this.#safeCall(() => request.handler.onError(error));
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

  // ---- writing ----

  #writeAll(parts: Buffer[]): void {
    const socket = this.#socket;
    socket.cork();
    for (const part of parts) socket.write(part);
    socket.uncork();
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

  #pumpBody(request: ActiveRequest, body: Buffer | Readable | AsyncIterable<Buffer | string>): void {
    const writeChunk = (chunk: Buffer | string): boolean => {
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (data.length === 0) return true;
      const parts: Buffer[] = [];
      frameStream(RecordType.Stdin, REQUEST_ID, data, parts);
      this.#writeAll(parts);
      if (this.#socket.writableNeedDrain) {
        this.#waitDrain(request);
        return false;
      }
      return true;
    };
    const finishBody = () => {
      if (request.finished || this.#active !== request) return;
      this.#socket.write(encodeStreamEnd(RecordType.Stdin, REQUEST_ID));
      request.bodySent = true;
    };
    const failBody = (error: unknown) => {
      if (request.finished || this.#active !== request) return;
      request.abort(new FastCGIAbortError(`request body failed: ${errorText(error)}`, { cause: error }));
    };

    const addCleanup = (fn: () => void) => {
      const previous = request.cleanup;
      request.cleanup = () => {
        previous?.();
        fn();
      };
    };

    if (Buffer.isBuffer(body)) {
      let offset = 0;
      const writeMore = () => {
        while (offset < body.length) {
          if (request.finished || this.#active !== request) return;
          const piece = body.subarray(offset, offset + BODY_PIECE_BYTES);
          offset += piece.length;
          if (!writeChunk(piece)) {
            this.once('writable', writeMore);
            return;
          }
        }
        finishBody();
      };
      addCleanup(() => this.off('writable', writeMore));
      writeMore();
      return;
    }

    if (body instanceof Readable) {
      // Data events rather than async iteration: leaving a loop early would destroy the caller's stream.
      const onData = (chunk: Buffer | string) => {
        if (request.finished) return;
        if (!writeChunk(chunk)) {
          body.pause();
          this.once('writable', onWritable);
        }
      };
      const onWritable = () => {
        if (!request.finished) body.resume();
      };
      const onEnd = () => finishBody();
      const onError = (error: Error) => failBody(error);
      const onClose = () => {
        if (!body.readableEnded) failBody(new Error('body stream closed before its end'));
      };
      body.on('data', onData);
      body.once('end', onEnd);
      body.once('error', onError);
      body.once('close', onClose);
      addCleanup(() => {
        body.off('data', onData);
        body.off('end', onEnd);
        body.off('error', onError);
        body.off('close', onClose);
        this.off('writable', onWritable);
      });
      return;
    }

    // Wakes the loop below when the socket drains, or when the request ends meanwhile, so the loop
    // leaves (closing the caller's iterator) instead of waiting forever for a drain that never comes.
    let wake: (() => void) | null = null;
    const onWritable = () => wake?.();
    this.on('writable', onWritable);
    addCleanup(() => {
      this.off('writable', onWritable);
      wake?.();
    });
    void (async () => {
      try {
        for await (const chunk of body) {
          if (request.finished) return;
          if (!writeChunk(chunk)) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = null;
          }
          if (request.finished) return;
        }
        finishBody();
      } catch (error) {
        failBody(error);
      }
    })();
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
        const pending = this.#takePendingValues(header.type);
        const values = new Map<string, string>();
        for (const [name, value] of decodeParams(content)) values.set(name, value.toString('latin1'));
        pending.resolve(values);
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
    this.#completeRequest(request);
    this.#requestsServed += 1;
    if (protocolStatus !== ProtocolStatus.RequestComplete) {
      this.#safeCall(() =>
        request.handler.onError(
          new FastCGIRejectedError(protocolStatus, `${formatAddress(this.address)} rejected the request: ${protocolStatusName(protocolStatus)}`),
        ),
      );
    } else {
      this.#safeCall(() =>
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

  #completeRequest(request: ActiveRequest): void {
    request.finished = true;
    request.awaitingDrain = false;
    request.cleanup?.();
    request.cleanup = null;
  }

  #onData(chunk: Buffer): void {
    this.#reading = true;
    try {
      this.#decoder.push(chunk);
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
    const request = this.#active;
    if (this.#pendingValues) {
      this.destroy(new FastCGITimeoutError('FCGI_READ_TIMEOUT', `${formatAddress(this.address)} did not answer GET_VALUES within ${this.#options.readTimeoutMs} ms`));
      return;
    }
    // Idle: the read timeout stays armed between requests (see #settleAfterRequest); nothing to fail.
    if (!request) return;
    const error = request.awaitingDrain
      ? new FastCGITimeoutError('FCGI_WRITE_TIMEOUT', `${formatAddress(this.address)} accepted no data for ${request.writeTimeoutMs} ms`)
      : new FastCGITimeoutError('FCGI_READ_TIMEOUT', `${formatAddress(this.address)} sent nothing for ${request.readTimeoutMs} ms`);
    this.destroy(error);
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
    const request = this.#active;
    const where = formatAddress(this.address);
    let reason: Error;
    if (error && error.code !== 'ECONNRESET' && error.code !== 'EPIPE') {
      reason = new FastCGIConnectionError('FCGI_CONNECTION_ERROR', `connection to ${where} failed: ${error.message}`, { cause: error });
    } else if (request && !request.finished) {
      const how = error ? ` (${error.code})` : '';
      reason = unprocessed
        ? new FastCGIConnectionError(
            'FCGI_PEER_CLOSED',
            `${where} closed the connection after its previous request without running this one (request ${this.#requestsServed + 1} on this connection; php-fpm does this at pm.max_requests)`,
            { unprocessed: true },
          )
        : new FastCGIConnectionError(
            'FCGI_PEER_CLOSED',
            `${where} closed the connection before ending the request${how}, after ${request.stdoutBytes} bytes of stdout (request ${this.#requestsServed + 1} on this connection)`,
            { cause: error ?? undefined },
          );
    } else {
      reason = new FastCGIConnectionError('FCGI_PEER_CLOSED', `${where} closed the connection${error ? ` (${error.code})` : ''}`, { cause: error ?? undefined });
    }
    this.#failActive(reason);
    this.#finishClose(reason);
    this.#socket.destroy();
  }

  #failActive(reason: Error): void {
    const request = this.#active;
    if (request && !request.finished) {
      this.#completeRequest(request);
      this.#safeCall(() => request.handler.onError(reason));
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

  #safeCall(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      // A handler that throws must not leave the connection half-settled; report it asynchronously.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}

/**
 * A request as streams: `stdout` is a Readable fed as records arrive (reading pauses the socket
 * when it is not consumed), `stderr` a Readable of the peer's error output, `done` settles at
 * END_REQUEST. Destroying `stdout` before its end aborts the request.
 */
export class FastCGIResponse {
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly done: Promise<EndResult>;
  readonly #controller: RequestController;
  #settled = false;

  constructor(start: (handler: ResponseHandler) => RequestController) {
    let resolveDone!: (result: EndResult) => void;
    let rejectDone!: (error: Error) => void;
    this.done = new Promise<EndResult>((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    // Callers that only read stdout should not see an unhandled rejection; awaiting `done` still throws.
    this.done.catch(() => {});
    this.stdout = new Readable({ read: () => this.#controller?.resume() });
    this.stderr = new Readable({ read: () => {} });
    // Errors reach readers through iteration or their own listeners; an unread stream must not crash the process.
    this.stdout.on('error', () => {});
    this.stderr.on('error', () => {});
    this.#controller = start({
      onStdout: (chunk) => this.stdout.push(chunk),
      onStderr: (chunk) => {
        this.stderr.push(chunk);
      },
      onEnd: (result) => {
        this.#settled = true;
        this.stdout.push(null);
        this.stderr.push(null);
        resolveDone(result);
      },
      onError: (error) => {
        this.#settled = true;
        this.stdout.destroy(error);
        this.stderr.destroy(error);
        rejectDone(error);
      },
    });
    this.stdout.once('close', () => {
      if (!this.#settled) this.#controller.abort(new FastCGIAbortError('stdout was closed by its reader before the response ended'));
    });
  }

  abort(reason?: unknown): void {
    this.#controller.abort(reason);
  }

  /** Reads the whole response into memory (for tests and small responses). */
  async text(): Promise<{ stdout: string; stderr: string; result: EndResult }> {
    const [stdout, stderr] = await Promise.all([collect(this.stdout), collect(this.stderr)]);
    const result = await this.done;
    return { stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8'), result };
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function connectError(target: Address, error: NodeJS.ErrnoException): TQServerError {
  const where = formatAddress(target);
  if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') {
    return new FastCGIConnectionError('FCGI_CONNECT_REFUSED', `connect to ${where} refused (${error.code}): is the FastCGI peer running?`, { cause: error });
  }
  if (error.code === 'EAGAIN' && 'path' in target) {
    // Linux fails a unix-socket connect at once when the listen backlog is full (TCP waits instead).
    return new FastCGIConnectionError(
      'FCGI_CONNECTION_ERROR',
      `connect to ${where} failed (EAGAIN): its listen backlog is full; the peer is not accepting connections (all its processes busy?)`,
      { cause: error },
    );
  }
  return new FastCGIConnectionError('FCGI_CONNECTION_ERROR', `connect to ${where} failed: ${error.message}`, { cause: error });
}

/** The caller's abort reason (an AbortSignal's reason, anything given to abort()) as FCGI_REQUEST_ABORTED. */
export function toAbortError(reason?: unknown): FastCGIAbortError {
  if (reason instanceof FastCGIAbortError) return reason;
  if (reason === undefined) return new FastCGIAbortError();
  return new FastCGIAbortError(`request aborted by the caller: ${errorText(reason)}`, { cause: reason });
}


/** Bodies up to this size are copied into the head buffer so the request is one socket write. */
const INLINE_BODY_BYTES = 16 * 1024;
/** Larger in-memory bodies are written in pieces of this size, each waiting for the socket to drain. */
const BODY_PIECE_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);
