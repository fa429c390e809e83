// A FastCGI client for one upstream: kept-alive connections up to a limit, one request on each at a
// time, and a FIFO wait queue with a length limit and a timeout when every connection is busy.

import { EventEmitter } from 'node:events';
import { FastCGIUnavailableError } from '../errors.js';
import { definedOnly } from '../util.js';
import { formatAddress, toAddress, type Address } from './address.js';
import {
  FastCGIConnection,
  FastCGIResponse,
  type ConnectionOptions,
  type EndResult,
  type RequestController,
  type RequestOptions,
  type ResponseHandler,
  toAbortError,
} from './client.js';
import { bodyResendable, replayable, STALE_CONNECTION_ERRORS } from './replay.js';

export { bodyResendable } from './replay.js';

export interface ClientOptions extends ConnectionOptions {
  address: Address | string;
  /** Connections open at once, busy or idle (size it to the peer's children). Default 8. */
  maxConns?: number;
  /** Close a connection that stayed idle this long; 0 keeps idle connections. Default 60000. */
  idleTimeoutMs?: number;
  /** Requests allowed to wait for a connection; past it FCGI_QUEUE_FULL. Default 1024. */
  maxQueue?: number;
  /** How long a request may wait for a connection; past it FCGI_QUEUE_TIMEOUT. 0 waits as long as it takes. Default 0. */
  queueTimeoutMs?: number;
  /**
   * Close a connection after it has carried this many requests (set it to php-fpm's
   * pm.max_requests: a child closes its connection after its last request, and a request sent in
   * that moment would be lost). 0 never. Default 0.
   */
  maxRequestsPerConnection?: number;
  /**
   * Runs on each new connection before it carries a request: learns how many requests the process
   * behind it has served already (FastCGIConnection.assumeServed), so maxRequestsPerConnection
   * counts that process's requests, not the connection's. A rejection is ignored.
   */
  calibrate?: (connection: FastCGIConnection) => Promise<void>;
}

/** New connections calibrated for one request when each lands on a process at its last request. */
const CALIBRATION_ATTEMPTS = 3;

export interface ClientStats {
  open: number;
  idle: number;
  busy: number;
  connecting: number;
  queued: number;
  requests: number;
  /** Requests sent again on a fresh connection after a kept-alive one turned out to be closed. */
  retries: number;
}

/**
 * The controller a caller holds while its request waits in the queue, then while it runs; and the
 * handler its connection calls, which watches for a stale kept-alive connection (see #run). One
 * object per request, with no closures (issue 8).
 */
class PooledRequest implements RequestController, ResponseHandler {
  readonly options: RequestOptions;
  readonly handler: ResponseHandler;
  inner: RequestController | null = null;
  done = false;
  /** Already sent again once after a stale connection. */
  retried = false;
  /** The running attempt is on a connection that carried requests before. */
  reused = false;
  /** The peer sent something for the running attempt. */
  answered = false;
  timer: NodeJS.Timeout | null = null;
  /** Stops listening to the caller's AbortSignal while queued (the connection listens once it runs). */
  detachSignal: (() => void) | null = null;
  readonly #client: FastCGIClient;

  constructor(client: FastCGIClient, options: RequestOptions, handler: ResponseHandler) {
    this.#client = client;
    this.options = options;
    this.handler = handler;
  }

  get started(): boolean {
    return this.inner?.started ?? false;
  }

  get bodySent(): boolean {
    return this.inner?.bodySent ?? false;
  }

  abort(reason?: unknown): void {
    if (this.inner) this.inner.abort(reason);
    else this.#client.dropWaiter(this, toAbortError(reason));
  }

  resume(): void {
    this.inner?.resume();
  }

  onStdout(chunk: Buffer): boolean {
    this.answered = true;
    return this.handler.onStdout(chunk);
  }

  onStderr(chunk: Buffer): void {
    this.answered = true;
    this.handler.onStderr(chunk);
  }

  onEnd(result: EndResult): void {
    this.handler.onEnd(result);
  }

  onError(error: Error): void {
    if (!this.#client.retryStale(this, error)) this.handler.onError(error);
  }
}

export class FastCGIClient extends EventEmitter {
  readonly address: Address;
  readonly #options: ClientOptions & Required<Pick<ClientOptions, 'maxConns' | 'idleTimeoutMs' | 'maxQueue' | 'queueTimeoutMs' | 'maxRequestsPerConnection'>>;
  readonly #idle: FastCGIConnection[] = [];
  readonly #all = new Set<FastCGIConnection>();
  readonly #idleSince = new Map<FastCGIConnection, number>();
  readonly #queue: PooledRequest[] = [];
  /** Requests waiting for a connection being opened for them. */
  readonly #opening = new Set<PooledRequest>();
  #connecting = 0;
  #requests = 0;
  #retries = 0;
  /** Slots held for requests being sent again: the dead connection's slot goes to them, not the queue. */
  #heldForRetry = 0;
  #closed = false;
  #destroyed = false;
  #sweeper: NodeJS.Timeout | null = null;
  #closedWaiters: Array<() => void> = [];

  constructor(options: ClientOptions) {
    super();
    this.address = toAddress(options.address);
    this.#options = {
      maxConns: 8,
      idleTimeoutMs: 60_000,
      maxQueue: 1024,
      queueTimeoutMs: 0,
      maxRequestsPerConnection: 0,
      ...definedOnly(options),
      address: options.address,
    };
    if (!(this.#options.maxConns >= 1)) throw new RangeError(`maxConns must be at least 1, got ${this.#options.maxConns}`);
    if (this.#options.idleTimeoutMs > 0) {
      this.#sweeper = setInterval(() => this.#sweepIdle(), Math.max(250, this.#options.idleTimeoutMs / 2));
      this.#sweeper.unref();
    }
  }

  get stats(): ClientStats {
    return {
      open: this.#all.size,
      idle: this.#idle.length,
      busy: this.#all.size - this.#idle.length,
      connecting: this.#connecting,
      queued: this.#queue.length,
      requests: this.#requests,
      retries: this.#retries,
    };
  }

  /** Requests running, being connected for, or waiting: what the client is busy with. */
  get inFlight(): number {
    return this.#all.size - this.#idle.length + this.#connecting + this.#queue.length;
  }

  /** Requests waiting for a connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Runs a request on a free connection, opening one if the limit allows, else queues it. Failures
   * (including queue full and queue timeout) reach handler.onError; this never throws for them.
   */
  dispatch(options: RequestOptions, handler: ResponseHandler): RequestController {
    const pooled = new PooledRequest(this, options, handler);
    if (this.#closed) {
      this.#fail(pooled, new FastCGIUnavailableError('FCGI_CLIENT_CLOSED', `client for ${formatAddress(this.address)} is closed`));
      return pooled;
    }
    const signal = options.signal;
    if (signal?.aborted) {
      this.#fail(pooled, toAbortError(signal.reason));
      return pooled;
    }
    if (this.#tryStart(pooled)) return pooled;
    if (this.#queue.length >= this.#options.maxQueue) {
      this.#fail(
        pooled,
        new FastCGIUnavailableError('FCGI_QUEUE_FULL', `every connection to ${formatAddress(this.address)} is busy and the queue is full (${this.#queue.length} waiting)`),
      );
      return pooled;
    }
    this.#queue.push(pooled);
    if (signal) {
      // A caller that gives up while queued leaves the queue at once; nothing was sent.
      const onAbort = () => pooled.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      pooled.detachSignal = () => signal.removeEventListener('abort', onAbort);
    }
    if (this.#options.queueTimeoutMs > 0) {
      pooled.timer = setTimeout(() => {
        this.dropWaiter(
          pooled,
          new FastCGIUnavailableError('FCGI_QUEUE_TIMEOUT', `no connection to ${formatAddress(this.address)} became free within ${this.#options.queueTimeoutMs} ms`),
        );
      }, this.#options.queueTimeoutMs);
    }
    return pooled;
  }

  request(options: RequestOptions): FastCGIResponse {
    return new FastCGIResponse((handler) => this.dispatch(options, handler));
  }

  /** FCGI_GET_VALUES on a connection of its own (php-fpm closes a connection after answering, php bug #76922). */
  async getValues(names?: readonly string[]): Promise<Map<string, string>> {
    const connection = await FastCGIConnection.connect(this.address, this.#options);
    try {
      return await connection.getValues(names);
    } finally {
      connection.close();
    }
  }

  /** Graceful: takes no new requests, lets queued and running ones finish, then closes every connection. */
  close(): Promise<void> {
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
    for (const connection of this.#idle.splice(0)) connection.close();
    return new Promise((resolve) => {
      this.#closedWaiters.push(resolve);
      this.#checkClosed();
    });
  }

  /** Immediate: fails queued, connecting and running requests and drops every connection. */
  destroy(error?: Error): void {
    this.#closed = true;
    this.#destroyed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
    const reason = error ?? new FastCGIUnavailableError('FCGI_CLIENT_CLOSED', `client for ${formatAddress(this.address)} was destroyed`);
    for (const waiter of this.#queue.splice(0)) this.#fail(waiter, reason);
    for (const waiter of this.#opening) this.#fail(waiter, reason);
    for (const connection of [...this.#all]) connection.destroy(reason);
    this.#checkClosed();
  }

  /**
   * Fails every queued request with `error` now, e.g. when the upstream is known to be down and
   * they would only wait for their queue timeout. Nothing was sent for them; running requests go
   * on. Returns how many were failed.
   */
  failQueued(error: Error): number {
    const waiters = this.#queue.splice(0);
    for (const waiter of waiters) this.#fail(waiter, error);
    this.#checkClosed();
    return waiters.length;
  }

  /** @internal Removes a queued request and fails it. */
  dropWaiter(pooled: PooledRequest, error: Error): void {
    const index = this.#queue.indexOf(pooled);
    if (index >= 0) this.#queue.splice(index, 1);
    this.#fail(pooled, error);
    this.#checkClosed();
  }

  /** True when a request could start now: a connection is idle or another may be opened. */
  #hasCapacity(): boolean {
    return this.#idle.length > 0 || this.#canOpen();
  }

  /** Room for one more connection, slots held for retries counted as taken. */
  #canOpen(): boolean {
    return this.#all.size + this.#connecting + this.#heldForRetry < this.#options.maxConns;
  }

  #tryStart(pooled: PooledRequest): boolean {
    const connection = this.#idle.pop();
    if (connection) {
      this.#idleSince.delete(connection);
      this.#run(pooled, connection);
      return true;
    }
    if (this.#canOpen()) {
      this.#open(pooled);
      return true;
    }
    return false;
  }

  #open(pooled: PooledRequest, attempt = 1): void {
    this.#connecting += 1;
    this.#opening.add(pooled);
    const calibrating = this.#options.calibrate !== undefined && attempt <= CALIBRATION_ATTEMPTS;
    FastCGIConnection.connect(this.address, this.#options).then(
      (connection) => (calibrating ? this.#calibrate(connection) : connection),
    ).then(
      (connection) => {
        this.#connecting -= 1;
        this.#opening.delete(pooled);
        if (this.#destroyed) {
          connection.destroy();
          this.#checkClosed();
          return;
        }
        const limit = this.#options.maxRequestsPerConnection;
        if (calibrating && (connection.state === 'closed' || (limit > 0 && connection.requestsServed >= limit))) {
          // The process behind it had served its last request (or closed during the calibration):
          // a new connection reaches another one. After CALIBRATION_ATTEMPTS, one is used as it comes.
          connection.close();
          if (!pooled.done) {
            this.#open(pooled, attempt + 1);
            return;
          }
          this.#pump();
          this.#checkClosed();
          return;
        }
        this.#adopt(connection);
        if (pooled.done) this.#release(connection);
        else this.#run(pooled, connection);
      },
      (error: Error) => {
        this.#connecting -= 1;
        this.#opening.delete(pooled);
        this.#fail(pooled, error);
        // Others may be waiting for a slot this attempt held.
        this.#pump();
        this.#checkClosed();
      },
    );
  }

  /** Runs the calibrate hook; whatever it throws, the connection is used if still open. */
  async #calibrate(connection: FastCGIConnection): Promise<FastCGIConnection> {
    try {
      await this.#options.calibrate!(connection);
    } catch {
      // A peer without the status page, or one that answered oddly: its count stays the connection's.
    }
    return connection;
  }

  #adopt(connection: FastCGIConnection): void {
    this.#all.add(connection);
    // The next request goes out at once. Deferring it a turn (setImmediate) to see the FIN of a
    // peer that closes after its last request (php-fpm at pm.max_requests) does not help: libuv
    // reads that FIN only in the next poll, after the deferred send. Measured (issue 8): the same
    // share of POSTs lost either way against php-fpm recycling unannounced (maxRequestsPerConnection
    // is what prevents that; GETs are replayed), and the deferral cost ~15 µs of CPU per request.
    connection.on('free', () => this.#release(connection));
    connection.on('close', () => {
      this.#all.delete(connection);
      this.#idleSince.delete(connection);
      const index = this.#idle.indexOf(connection);
      if (index >= 0) this.#idle.splice(index, 1);
      this.#pump();
      this.#checkClosed();
    });
  }

  #run(pooled: PooledRequest, connection: FastCGIConnection): void {
    if (pooled.timer) clearTimeout(pooled.timer);
    pooled.timer = null;
    pooled.detachSignal?.();
    pooled.detachSignal = null;
    this.#requests += 1;
    if (!pooled.retried) pooled.handler.onDispatch?.({ pid: null });
    pooled.reused = connection.requestsServed > 0;
    pooled.answered = false;
    try {
      // The connection calls pooled, which passes everything on and watches for a stale connection (retryStale).
      pooled.inner = connection.dispatch(pooled.options, pooled);
    } catch (error) {
      // Nothing was sent (busy, closed, or params over the limit).
      this.#fail(pooled, error as Error);
    }
    // A connection still idle did not take the request (it failed before anything was sent).
    if (connection.idle) {
      pooled.done = true;
      this.#release(connection);
    }
  }

  /**
   * @internal A request failed on its connection. A kept-alive connection the peer closed before
   * reading our request: if nothing came back and the request has no body (nothing of it can have
   * been consumed) and an idempotent method (the peer may have run it before dying), it is sent once
   * more on a fresh connection, and true is returned. A request with a body, or a POST without one,
   * is not replayed, unless the connection proved the peer never ran it (`unprocessed`: php-fpm
   * closing after its last request, see FastCGIConnection) and its body can be sent again (in
   * memory or in a file).
   */
  retryStale(pooled: PooledRequest, error: Error): boolean {
    const code = (error as { code?: string }).code ?? '';
    if (pooled.answered || pooled.retried || pooled.done || this.#destroyed || !STALE_CONNECTION_ERRORS.has(code)) return false;
    // The peer proved it never ran the request (php-fpm closing after its last one): any method
    // goes again, as long as its body can be sent again (in memory or in a file, not a stream).
    const unprocessed = (error as { unprocessed?: boolean }).unprocessed === true;
    if (unprocessed ? !bodyResendable(pooled.options) : !pooled.reused || !replayable(pooled.options)) {
      return false;
    }
    pooled.retried = true;
    pooled.inner = null;
    this.#retries += 1;
    this.#heldForRetry += 1;
    // After the dead connection's close event has freed its slot.
    queueMicrotask(() => this.#retry(pooled));
    return true;
  }

  /** Sends a request again, on a newly opened connection if the limit allows, else first in line. */
  #retry(pooled: PooledRequest): void {
    this.#heldForRetry -= 1;
    if (pooled.done) return;
    if (this.#destroyed) {
      this.#fail(pooled, new FastCGIUnavailableError('FCGI_CLIENT_CLOSED', `client for ${formatAddress(this.address)} was destroyed`));
      return;
    }
    // The slot this request held is free again (the dead connection is gone).
    if (this.#all.size + this.#connecting + this.#heldForRetry < this.#options.maxConns) this.#open(pooled);
    else this.#queue.unshift(pooled);
  }

  #release(connection: FastCGIConnection): void {
    if (connection.state !== 'idle') return; // closed while its release was deferred
    const limit = this.#options.maxRequestsPerConnection;
    if (limit > 0 && connection.requestsServed >= limit) {
      connection.close();
      return;
    }
    if (this.#closed && this.#queue.length === 0) {
      connection.close();
      return;
    }
    const next = this.#queue.shift();
    if (next) {
      this.#run(next, connection);
      return;
    }
    this.#idle.push(connection);
    this.#idleSince.set(connection, Date.now());
  }

  /**
   * Starts queued requests while capacity allows (after a connection closed or a connect failed).
   * Also after close(): queued requests still run, on new connections if theirs went away.
   */
  #pump(): void {
    while (this.#queue.length > 0 && this.#hasCapacity()) this.#tryStart(this.#queue.shift()!);
  }

  #sweepIdle(): void {
    const cutoff = Date.now() - this.#options.idleTimeoutMs;
    for (const [connection, since] of this.#idleSince) {
      if (since <= cutoff) {
        this.#idleSince.delete(connection);
        const index = this.#idle.indexOf(connection);
        if (index >= 0) this.#idle.splice(index, 1);
        connection.close();
      }
    }
  }

  #fail(pooled: PooledRequest, error: Error): void {
    if (pooled.done) return;
    pooled.done = true;
    if (pooled.timer) clearTimeout(pooled.timer);
    pooled.timer = null;
    pooled.detachSignal?.();
    pooled.detachSignal = null;
    pooled.handler.onError(error);
  }

  #checkClosed(): void {
    if (!this.#closed || this.#all.size > 0 || this.#connecting > 0 || this.#queue.length > 0) return;
    for (const resolve of this.#closedWaiters.splice(0)) resolve();
    this.emit('closed');
  }
}

