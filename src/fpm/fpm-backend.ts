// The php-fpm backend: a managed php-fpm master (or an external php-fpm, or several upstreams) behind
// pooled FastCGI clients sized to php-fpm's children, with TQServer's own queue, health checks
// through php-fpm's status page, a circuit breaker per upstream, least-busy routing with failover
// for requests that could not be sent, and graceful reloads.

import { EventEmitter } from 'node:events';
import type { Backend, PoolStatus } from '../backend.js';
import type { AppConfig, Mode } from '../config/load.js';
import { FastCGITimeoutError, PhpTimeoutError, PoolUnavailableError, TQServerError } from '../errors.js';
import { formatAddress, type Address } from '../fastcgi/address.js';
import { FastCGIResponse, toAbortError, type RequestController, type RequestOptions, type ResponseHandler } from '../fastcgi/client.js';
import type { Logger } from '../log.js';
import type { RequestInfo } from '../supervisor/worker.js';
import { fpmPoolStatus, type FpmBackendEvents, type FpmBackendStats } from './fpm-backend-status.js';
import { Attempt, FpmRequest, Requeue, type AttemptEvents } from './fpm-request.js';
import { fpmCapacity, fpmIdleTimeoutMs, fpmPoolInput, healthCheckParams, newFpmClient } from './fpm-settings.js';
import { parseFpmStatus } from './fpm-status.js';
import type { FpmMaster } from './launcher.js';
import { launchManagedFpm } from './managed.js';
import { QueueWait } from './queue-wait.js';
import { chooseUpstream, Upstream } from './upstream.js';

export { parseFpmStatus, type FpmPoolStatus } from './fpm-status.js';
export type { UpstreamStats } from './upstream.js';
export type { FpmBackendEvents, FpmBackendStats, FpmTimeoutKind } from './fpm-backend-status.js';
export { PING_PATH, STATUS_PATH, fpmIdleTimeoutMs } from './fpm-settings.js';

export interface FpmBackendOptions {
  app: AppConfig;
  log: Logger;
  mode: Mode;
  /** Project root: dev mode keeps the generated config under <root>/.tqserver/phpfpm/<app>/. */
  root: string;
  /** How long children get to finish on reload or stop (php-fpm's process_control_timeout). */
  processControlTimeoutMs: number;
  /** Health check period per upstream. Default 5000. */
  healthIntervalMs?: number;
  clock?: () => number;
}

/** Errors that say an upstream cannot be reached: they count against its breaker. */
const CONNECT_FAILURES = new Set(['FCGI_CONNECT_REFUSED', 'FCGI_CONNECT_TIMEOUT']);

/**
 * A refused connect while the circuit is still closed is tried again after these pauses before it
 * is answered. php-fpm may be restarting, or its master was just killed and its exit not yet seen
 * (the socket file outlives it): the request was never sent, so waiting costs nothing but time,
 * and once the master is known to be down the request gets 503 UPSTREAM_DOWN rather than a 502.
 */
const CONNECT_RETRY_MS = [10, 25, 50, 100];

const codeOf = (error: unknown): string => (error instanceof TQServerError ? error.code : '');

export class FpmBackend extends EventEmitter<FpmBackendEvents> implements Backend {
  readonly kind = 'php-fpm' as const;
  readonly #options: FpmBackendOptions;
  #app: AppConfig;
  readonly #log: Logger;
  readonly #clock: () => number;
  #master: FpmMaster | null = null;
  #upstreams: Upstream[] = [];
  #healthTimer: NodeJS.Timeout | null = null;
  /** Rotates the first upstream looked at, so equally busy upstreams take turns. */
  #turn = 0;
  /** Requests held while php-fpm reloads; sent when it is ready again. */
  #holding = false;
  readonly #held: FpmRequest[] = [];
  #reloading: Promise<void> = Promise.resolve();
  readonly #queueWait = new QueueWait();
  /** Made once, not per request. */
  readonly #onAbortHeld = (request: FpmRequest, reason: unknown): void => this.#abortHeld(request, reason);
  readonly #attemptEvents: AttemptEvents = {
    bound: (attempt, process) => {
      const request = attempt.request;
      if (request.boundAt) return; // the client sent it again after a stale kept-alive connection
      request.boundAt = this.#clock();
      const waitMs = request.boundAt - request.acceptedAt;
      attempt.upstream.queueWait.record(waitMs);
      this.#queueWait.record(waitMs);
      request.handler.onDispatch?.(process);
    },
    ended: (attempt, result) => {
      this.#succeeded(attempt.upstream);
      this.#finish(attempt.request, null);
      attempt.request.handler.onEnd(result);
    },
    failed: (attempt, error) => this.#attemptFailed(attempt.request, attempt.upstream, attempt.bound, error),
  };
  #accepted = 0;
  #maxQueue = 0;
  #queueTimeouts = 0;
  #requestTimeouts = 0;
  #terminateTimeouts = 0;
  #crashes = 0;
  #failovers = 0;
  #breakerChanges = 0;
  #reloads = 0;
  #stopped = false;
  readonly #startTime = Date.now();

  constructor(options: FpmBackendOptions) {
    super();
    this.#options = options;
    this.#app = options.app;
    this.#log = options.log;
    this.#clock = options.clock ?? Date.now;
  }

  get master(): FpmMaster | null {
    return this.#master;
  }

  async start(): Promise<void> {
    const app = this.#app;
    const fpm = app.phpFpm;
    let addresses: readonly Address[];
    if (fpm.external) {
      addresses = fpm.listen;
      this.#log.info({ app: app.name }, `app ${app.name}: external php-fpm at ${addresses.map(formatAddress).join(', ')}`);
    } else {
      this.#master = await launchManagedFpm(app, this.#options);
      addresses = [this.#master.listen];
      this.#master.on('down', (reason) => this.#masterDown(reason));
      this.#master.on('up', () => this.#masterUp());
    }
    const capacity = fpmCapacity(app);
    this.#upstreams = addresses.map((address) => new Upstream(address, newFpmClient(address, app), capacity));
    // A first look at php-fpm's status, so the status page has figures from the start.
    await this.#checkAll();
    this.#scheduleHealth();
  }

  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo): RequestController {
    const request = new FpmRequest(options, handler, info, this.#clock(), this.#onAbortHeld);
    if (this.#stopped || options.signal?.aborted) {
      request.finished = true;
      const error = this.#stopped ? new PoolUnavailableError('POOL_STOPPED', `app ${this.#app.name}: stopping`) : toAbortError(options.signal!.reason);
      queueMicrotask(() => handler.onError(error));
      return request;
    }
    this.#accepted += 1;
    const signal = options.signal;
    if (signal) {
      // While held during a reload no client listens to the signal; this does.
      const onAbort = () => request.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      request.detachSignal = () => signal.removeEventListener('abort', onAbort);
    }
    const requestTimeoutMs = this.#app.phpFpm.requestTimeoutMs;
    if (requestTimeoutMs > 0) {
      request.timer = setTimeout(() => {
        if (request.finished) return;
        this.#requestTimeouts += 1;
        this.emit('timeout', 'request', info.uri ?? '');
        this.#log.warn({ app: this.#app.name, req: info.requestId, uri: info.uri }, `app ${this.#app.name}: ${info.method ?? ''} ${info.uri ?? ''} got no complete answer from php-fpm within ${requestTimeoutMs} ms`);
        const error = new FastCGITimeoutError('FCGI_READ_TIMEOUT', `php-fpm did not finish the request within ${requestTimeoutMs} ms (php_fpm.request_timeout_ms)`);
        const inner = request.inner;
        this.#finish(request, error);
        inner?.abort(error);
        this.#unhold(request);
      }, requestTimeoutMs);
    }
    this.#send(request, null);
    return request;
  }

  /**
   * Applies new pool settings without losing a request. A managed php-fpm gets its config rewritten
   * and a graceful reload (SIGUSR2; children finish their requests within process_control_timeout):
   * meanwhile new requests wait in TQServer's queue and no request is sent to a child that is about
   * to quit; the connections of the old children close after their request. Each upstream gets a
   * client sized to the new pm.max_children (or php_fpm.pool_size).
   */
  reload(app: AppConfig): Promise<void> {
    // One at a time: a second reload starts when the first has finished.
    const next = this.#reloading.then(() => this.#reload(app));
    this.#reloading = next.catch(() => {});
    return next;
  }

  async #reload(app: AppConfig): Promise<void> {
    if (this.#stopped) throw new PoolUnavailableError('POOL_STOPPED', `app ${this.#app.name}: stopped`);
    this.#app = app;
    this.#reloads += 1;
    const capacity = fpmCapacity(app);
    if (!this.#master) {
      for (const upstream of this.#upstreams) this.#replaceClient(upstream, app, capacity);
      this.#log.info({ app: app.name }, `app ${app.name}: php-fpm client pools resized to ${capacity} connections per upstream`);
      return;
    }
    this.#holding = true;
    try {
      for (const upstream of this.#upstreams) this.#replaceClient(upstream, app, capacity);
      await this.#master.reload(fpmPoolInput(app));
      this.#log.info(
        { app: app.name, pid: this.#master.pid },
        `app ${app.name}: php-fpm reloaded (SIGUSR2), pm ${app.php.pool.manager}, max_children ${app.php.pool.maxWorkers}`,
      );
    } finally {
      this.#holding = false;
      for (const request of this.#held.splice(0)) this.#send(request, null);
    }
  }

  /** Runs a health check of every upstream now, which also refreshes php-fpm's own figures. */
  checkHealth(): Promise<void> {
    return this.#checkAll();
  }

  stats(): FpmBackendStats {
    const upstreams = this.#upstreams.map((u) => u.stats());
    return {
      app: this.#app.name,
      managed: this.#master !== null,
      masterPid: this.#master?.pid ?? 0,
      masterState: this.#master?.state ?? 'external',
      masterRestarts: this.#master?.restarts ?? 0,
      accepted: this.#accepted,
      queueLength: this.#held.length + upstreams.reduce((n, u) => n + u.queued, 0),
      maxQueueLength: this.#maxQueue,
      queueWait: this.#queueWait.stats,
      queueTimeouts: this.#queueTimeouts,
      requestTimeouts: this.#requestTimeouts,
      terminateTimeouts: this.#terminateTimeouts,
      crashes: this.#crashes,
      failovers: this.#failovers,
      breakerChanges: this.#breakerChanges,
      reloads: this.#reloads,
      upstreams,
    };
  }

  /** The pool in php-fpm's status vocabulary (fpm-backend-status.ts). */
  status(): PoolStatus {
    return fpmPoolStatus(this.stats(), this.#app.php.pool, this.#startTime);
  }

  /** Graceful: running requests finish within graceMs, then php-fpm stops (SIGQUIT, SIGTERM, SIGKILL). */
  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    if (this.#healthTimer) clearTimeout(this.#healthTimer);
    this.#healthTimer = null;
    const stopped = new PoolUnavailableError('POOL_STOPPED', `app ${this.#app.name}: stopped`);
    for (const request of this.#held.splice(0)) this.#finish(request, stopped);
    const deadline = this.#clock() + graceMs;
    const clients = this.#upstreams.flatMap((u) => u.clients());
    await Promise.race([Promise.all(clients.map((c) => c.close())), new Promise((resolve) => setTimeout(resolve, graceMs).unref())]);
    for (const client of clients) client.destroy(stopped);
    await this.#master?.stop(Math.max(0, deadline - this.#clock()));
  }

  // ---- requests ----

  /**
   * Sends a request to `upstream`, or to the least busy one it has not tried; answers the last
   * error when none is left. Held instead while php-fpm reloads.
   */
  #send(request: FpmRequest, upstream: Upstream | null): void {
    if (request.finished) return;
    request.inner = null;
    if (this.#stopped) {
      this.#finish(request, new PoolUnavailableError('POOL_STOPPED', `app ${this.#app.name}: stopped`));
      return;
    }
    if (this.#holding) {
      this.#held.push(request);
      this.#noteQueue();
      return;
    }
    const target = upstream ?? chooseUpstream(this.#upstreams, request.tried, this.#turn++, this.#clock());
    if (!target) {
      const error = this.#allDown() ? this.#downError() : (request.lastError ?? this.#downError());
      // Answered after dispatch() has returned its controller, as a queued request would be.
      if (request.attempt === 0) queueMicrotask(() => this.#finish(request, error));
      else this.#finish(request, error);
      return;
    }
    request.tried.add(target);
    const attempt = ++request.attempt;
    const controller = target.client.dispatch(request.options, new Attempt(request, target, this.#attemptEvents));
    if (request.attempt === attempt && !request.finished) request.inner = controller;
    this.#noteQueue();
  }

  #attemptFailed(request: FpmRequest, upstream: Upstream, bound: boolean, error: Error): void {
    if (request.finished) return;
    if (error instanceof Requeue) {
      // Taken back from a client a reload retired: nothing was sent.
      request.tried.delete(upstream);
      this.#send(request, null);
      return;
    }
    const code = codeOf(error);
    // Never sent: the connection could not be opened (or was never given), or the circuit opened
    // while it waited. Such a request may go to another upstream; one that reached php-fpm may not.
    const notSent = CONNECT_FAILURES.has(code) || code === 'UPSTREAM_DOWN' || (!bound && code === 'FCGI_CONNECTION_ERROR');
    this.#failed(upstream, error, notSent);
    if (notSent && !request.aborted) {
      request.lastError = error;
      const next = chooseUpstream(this.#upstreams, request.tried, this.#turn++, this.#clock());
      if (next) {
        upstream.failovers += 1;
        this.#failovers += 1;
        this.emit('failover', upstream.label, code);
        this.#log.debug({ app: this.#app.name, upstream: upstream.label, to: next.label, code }, `app ${this.#app.name}: ${error.message}; sent to ${next.label} instead`);
        this.#send(request, next);
        return;
      }
      // Nowhere left to send it. Once every circuit is open php-fpm is down, as said to everyone else (503).
      if (this.#allDown()) {
        this.#finish(request, this.#downError());
        return;
      }
      if (code === 'FCGI_CONNECT_REFUSED' && request.connectRetries < CONNECT_RETRY_MS.length) {
        const delayMs = CONNECT_RETRY_MS[request.connectRetries++]!;
        this.#log.debug({ app: this.#app.name, upstream: upstream.label, code }, `app ${this.#app.name}: ${error.message}; trying again in ${delayMs} ms`);
        request.retryTimer = setTimeout(() => {
          request.retryTimer = null;
          request.tried.clear();
          this.#send(request, null);
        }, delayMs);
        return;
      }
    }
    this.#finish(request, this.#describe(request, error));
  }

  /** The error the caller gets: php-fpm's request_terminate_timeout said as a timeout (504), counters kept. */
  #describe(request: FpmRequest, error: Error): Error {
    const code = codeOf(error);
    if (code === 'FCGI_QUEUE_TIMEOUT') {
      this.#queueTimeouts += 1;
      this.emit('timeout', 'queue', request.info.uri ?? '');
    }
    if (code !== 'FCGI_PEER_CLOSED' || !request.boundAt) return error;
    // php-fpm ends a script at request_terminate_timeout by killing its child: the connection just
    // closes. Its clock starts when the child waits for the request, so up to an idle period early.
    const terminateMs = this.#app.php.pool.requestTimeoutMs;
    const ranMs = this.#clock() - request.boundAt;
    if (terminateMs > 0 && ranMs >= terminateMs - fpmIdleTimeoutMs(terminateMs) * 1.5 - 50) {
      this.#terminateTimeouts += 1;
      this.emit('timeout', 'terminate', request.info.uri ?? '');
      return new PhpTimeoutError(`app ${this.#app.name}: php-fpm ended the script at request_timeout (${terminateMs} ms, request_terminate_timeout)`);
    }
    this.#crashes += 1;
    return error;
  }

  #finish(request: FpmRequest, error: Error | null): void {
    if (request.finished) return;
    request.finished = true;
    if (request.timer) clearTimeout(request.timer);
    request.timer = null;
    if (request.retryTimer) clearTimeout(request.retryTimer);
    request.retryTimer = null;
    request.detachSignal?.();
    request.detachSignal = null;
    if (error) request.handler.onError(error);
  }

  #abortHeld(request: FpmRequest, reason: unknown): void {
    this.#unhold(request);
    this.#finish(request, toAbortError(reason));
  }

  #unhold(request: FpmRequest): void {
    const index = this.#held.indexOf(request);
    if (index >= 0) this.#held.splice(index, 1);
  }

  #noteQueue(): void {
    let queued = this.#held.length;
    for (const upstream of this.#upstreams) queued += upstream.client.queued;
    if (queued > this.#maxQueue) this.#maxQueue = queued;
  }

  /** Every circuit is open (or half-open): php-fpm is down, and requests are told so (503). */
  #allDown(): boolean {
    return this.#upstreams.every((u) => u.breaker.state !== 'closed');
  }

  #downError(): PoolUnavailableError {
    const now = this.#clock();
    const retry = Math.min(...this.#upstreams.map((u) => u.breaker.retryInMs(now)), 30_000);
    return new PoolUnavailableError(
      'UPSTREAM_DOWN',
      `app ${this.#app.name}: php-fpm is down (${this.#upstreams.map((u) => `${u.label}: ${u.breaker.reason}`).join('; ')}); next try in ${retry} ms`,
    );
  }

  // ---- clients (fpm-settings.ts builds them) ----

  /** A new client for the upstream; requests queued in the old one are sent again (to the new one). */
  #replaceClient(upstream: Upstream, app: AppConfig, capacity: number): void {
    const old = upstream.replaceClient(newFpmClient(upstream.address, app), capacity);
    old.failQueued(new Requeue());
  }

  // ---- health and breaker ----

  #succeeded(upstream: Upstream): void {
    upstream.failures = 0;
    if (upstream.breaker.success()) this.#breakerChanged(upstream, 'answering again');
  }

  #failed(upstream: Upstream, error: Error, notSent: boolean): void {
    if (!notSent || codeOf(error) === 'UPSTREAM_DOWN') return;
    upstream.failures += 1;
    upstream.connectFailures += 1;
    if (upstream.breaker.failure(this.#clock(), error.message)) {
      this.#breakerChanged(upstream, error.message);
      // Requests waiting for this upstream would only time out: they go elsewhere or get 503 now.
      upstream.client.failQueued(new PoolUnavailableError('UPSTREAM_DOWN', `app ${this.#app.name}: php-fpm at ${upstream.label} is down: ${error.message}`));
    }
  }

  #breakerChanged(upstream: Upstream, reason: string): void {
    const state = upstream.breaker.state;
    upstream.healthy = state === 'closed';
    upstream.breakerChanges += 1;
    this.#breakerChanges += 1;
    const level = state === 'closed' ? 'info' : 'error';
    this.#log[level](
      { app: this.#app.name, upstream: upstream.label, breaker: state },
      state === 'closed'
        ? `app ${this.#app.name}: php-fpm at ${upstream.label} is back; circuit closed`
        : this.#upstreams.length > 1
          ? `app ${this.#app.name}: php-fpm at ${upstream.label} is failing (${reason}); circuit open, requests go to the other upstreams until it recovers`
          : `app ${this.#app.name}: php-fpm at ${upstream.label} is failing (${reason}); circuit open, answering 503 at once until it recovers`,
    );
    this.emit('breaker', upstream.label, state, reason);
    // An open circuit is checked on the short cadence from now, not at the next regular check.
    if (state === 'open' && this.#healthTimer) {
      clearTimeout(this.#healthTimer);
      this.#healthTimer = null;
      this.#scheduleHealth();
    }
  }

  #masterDown(reason: string): void {
    for (const upstream of this.#upstreams) {
      if (upstream.breaker.forceOpen(this.#clock(), reason)) this.#breakerChanged(upstream, reason);
      upstream.client.failQueued(new PoolUnavailableError('UPSTREAM_DOWN', `app ${this.#app.name}: ${reason}`));
    }
  }

  #masterUp(): void {
    // The master is back: new connections go to the new php-fpm; a health check closes the breaker.
    void this.#checkAll();
  }

  #scheduleHealth(): void {
    if (this.#stopped) return;
    const interval = this.#options.healthIntervalMs ?? 5000;
    const open = this.#upstreams.some((u) => u.breaker.state !== 'closed');
    const delay = open ? Math.min(interval, 500) : interval;
    this.#healthTimer = setTimeout(() => {
      this.#healthTimer = null;
      void this.#checkAll().finally(() => this.#scheduleHealth());
    }, delay);
    this.#healthTimer.unref();
  }

  async #checkAll(): Promise<void> {
    await Promise.all(this.#upstreams.map((upstream) => this.#check(upstream)));
  }

  /**
   * One health check: php-fpm's status page (JSON) through the pooled client, so it also refreshes
   * the pool figures. An external php-fpm without our status path answers 404, which still proves
   * it is alive.
   */
  async #check(upstream: Upstream): Promise<void> {
    const now = this.#clock();
    if (upstream.breaker.state === 'open' && !upstream.breaker.allow(now)) return;
    const params = healthCheckParams();
    try {
      const { stdout } = await new FastCGIResponse((handler) => upstream.client.dispatch({ params }, handler)).text();
      upstream.healthy = true;
      upstream.php = parseFpmStatus(stdout);
      if (upstream.breaker.state !== 'closed' && upstream.breaker.success()) this.#breakerChanged(upstream, 'health check passed');
      upstream.failures = 0;
    } catch (error) {
      if (error instanceof Requeue) return; // its client was retired by a reload
      const code = codeOf(error);
      if (code === 'FCGI_QUEUE_FULL' || code === 'FCGI_QUEUE_TIMEOUT') return; // busy is not down
      upstream.healthy = false;
      if (upstream.breaker.failure(this.#clock(), (error as Error).message)) this.#breakerChanged(upstream, (error as Error).message);
    }
  }
}
