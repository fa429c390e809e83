// One pool of php-cgi workers: applies the pm policy's decisions, hands idle workers to requests
// (FIFO queue with a limit and a timeout when all are busy), recycles, replaces crashed workers with
// a crash-loop guard, enforces request_timeout, and reports a stats snapshot.

import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PhpTimeoutError, PoolUnavailableError } from '../errors.js';
import type { Address } from '../fastcgi/address.js';
import { toAbortError, type EndResult, type RequestController, type RequestOptions, type ResponseHandler } from '../fastcgi/client.js';
import { bodyInMemory } from '../fastcgi/client-pool.js';
import type { Logger } from '../log.js';
import type { PhpBinary } from '../php/binary.js';
import { bootWorkers, decide, type PmConfig, type PmDecision } from './pm.js';
import { PhpCgiWorker, type RequestInfo, type WorkerExit, type WorkerStats } from './worker.js';
import { EXIT_REASONS, type ExitReason, type WorkerState } from './worker-state.js';

export interface PoolConfig extends PmConfig {
  name: string;
  binary: PhpBinary;
  configFile?: string | null;
  settings?: Readonly<Record<string, string | number | boolean>>;
  env?: Readonly<Record<string, string>>;
  /** Working directory of the workers. */
  cwd?: string;
  /** pm.max_requests: recycle a worker after this many requests; 0 never. */
  maxRequests: number;
  /** request_terminate_timeout: kill the worker of a request running longer; 0 never. */
  requestTimeoutMs: number;
  /** Recycle a worker whose resident memory is above this after a request; 0 never. */
  maxWorkerMemoryBytes: number;
  /** Requests allowed to wait for a worker; more get POOL_QUEUE_FULL. */
  queueLimit: number;
  /** How long a request may wait for a worker before POOL_QUEUE_TIMEOUT; 0 waits as long as it takes. */
  queueTimeoutMs: number;
  /** Worker sockets: private unix sockets (default) or TCP ports from portRange on 127.0.0.1. */
  transport?: 'unix' | 'tcp';
  portRange?: readonly [number, number];
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  abortGraceMs?: number;
  /**
   * emergency_restart_threshold / _interval: this many crashes within intervalMs pause respawning.
   * Only workers that never finished a request count: one killed after serving (OOM killer, an
   * operator) is replaced at once, however often it happens.
   */
  crashThreshold?: number;
  crashIntervalMs?: number;
  /** Longest pause between respawn attempts in a crash loop (it doubles from 1 s up to this). */
  crashBackoffMaxMs?: number;
  /** Where the workers' own stdout and stderr lines go (an app's PHP error log); the log when unset. */
  onWorkerOutput?: (line: string, stream: 'stdout' | 'stderr', pid: number) => void;
}

/** Pool settings a running pool takes in place. */
export type ReconfigurableKey =
  | 'manager'
  | 'maxWorkers'
  | 'startWorkers'
  | 'minSpareWorkers'
  | 'maxSpareWorkers'
  | 'maxSpawnRate'
  | 'idleTimeoutMs'
  | 'maxRequests'
  | 'requestTimeoutMs'
  | 'maxWorkerMemoryBytes'
  | 'queueLimit'
  | 'queueTimeoutMs';

export interface PoolStats {
  pool: string;
  processManager: PmConfig['manager'];
  startTime: number;
  acceptedRequests: number;
  /** Requests waiting for a worker now (php-fpm: listen queue). */
  queueLength: number;
  maxQueueLength: number;
  queueLimit: number;
  idle: number;
  active: number;
  starting: number;
  total: number;
  maxActive: number;
  /** Times the pool wanted more workers than max_workers allows, counted once per episode (php-fpm: max children reached). */
  maxWorkersReached: number;
  restarts: Record<ExitReason, number>;
  crashLoop: boolean;
}

export interface PoolEvents {
  'worker-ready': [worker: PhpCgiWorker];
  'worker-exit': [worker: PhpCgiWorker, exit: WorkerExit];
  'max-workers-reached': [pool: string, maxWorkers: number];
  'queue-full': [pool: string, waiting: number];
  'queue-timeout': [pool: string, waitedMs: number];
  'request-timeout': [worker: PhpCgiWorker, info: RequestInfo];
  'crash-loop': [pool: string, crashes: number, retryInMs: number];
}

/** A worker reserved for one caller until its request ends or release() is called. */
export interface WorkerLease {
  readonly worker: PhpCgiWorker;
  dispatch(options: RequestOptions, handler: ResponseHandler, info?: RequestInfo): RequestController;
  release(): void;
}

interface Waiter {
  grant(worker: PhpCgiWorker): void;
  fail(error: Error): void;
  enqueuedAt: number;
  timer: NodeJS.Timeout | null;
}

/** Errors that say a request never reached its worker (the connect failed): safe to send again. */
const NEVER_REACHED_PHP = new Set(['FCGI_CONNECT_REFUSED', 'FCGI_CONNECT_TIMEOUT']);

const DEFAULT_CRASH_THRESHOLD = 10;
const DEFAULT_CRASH_INTERVAL_MS = 60_000;
const DEFAULT_CRASH_BACKOFF_MAX_MS = 30_000;

/** A request's controller: proxies abort/resume while the request waits, then to the worker's connection. */
/**
 * A request to the pool: the controller its caller holds, and the handler its worker calls, which
 * passes everything on until the request is finished (request_timeout may finish it first). One
 * object per request rather than an object of closures (issue 8).
 */
class PoolRequest implements RequestController, ResponseHandler {
  inner: RequestController | null = null;
  finished = false;
  /** Queues the request again (once) when its worker could not be reached; false when it cannot. */
  requeue: (() => boolean) | null = null;
  /** Its body (if any) is in memory, so it can be sent again after a worker that did not run it. */
  bodyInMemory = true;
  /** request_timeout, while the request runs. */
  timer: NodeJS.Timeout | null = null;
  readonly #handler: ResponseHandler;
  #onAbortWhileQueued: ((reason: unknown) => void) | null = null;

  constructor(handler: ResponseHandler, onAbortWhileQueued: (reason: unknown) => void) {
    this.#handler = handler;
    this.#onAbortWhileQueued = onAbortWhileQueued;
  }

  /** Nothing more reaches the caller's handler. */
  finish(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  onStdout(chunk: Buffer): boolean {
    return this.finished ? true : this.#handler.onStdout(chunk);
  }

  onStderr(chunk: Buffer): void {
    if (!this.finished) this.#handler.onStderr(chunk);
  }

  onEnd(result: EndResult): void {
    if (this.finished) return;
    this.finish();
    this.#handler.onEnd(result);
  }

  onError(error: Error): void {
    if (this.finished) return;
    if (this.requeue && (NEVER_REACHED_PHP.has((error as { code?: string }).code ?? '') || (this.bodyInMemory && (error as { unprocessed?: boolean }).unprocessed === true))) {
      // The worker died while idle (killed, crashed) before the pool noticed, or closed its
      // connection without running the request (FastCGIConnection's probe proved it): nothing of the
      // request ran in PHP, so it goes back to the queue for another worker instead of costing a 502.
      const requeue = this.requeue;
      this.requeue = null;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.inner = null;
      if (requeue()) return;
    }
    this.finish();
    this.#handler.onError(error);
  }

  onDispatch(process: { pid: number | null }): void {
    this.#handler.onDispatch?.(process);
  }

  /** request_timeout: the caller's handler gets the error although the request is finished already. */
  failNow(error: Error): void {
    this.#handler.onError(error);
  }

  get started(): boolean {
    return this.inner?.started ?? false;
  }

  get bodySent(): boolean {
    return this.inner?.bodySent ?? false;
  }

  abort(reason?: unknown): void {
    if (this.inner) this.inner.abort(reason);
    else this.#onAbortWhileQueued?.(reason);
  }

  resume(): void {
    this.inner?.resume();
  }
}

export class WorkerPool extends EventEmitter<PoolEvents> {
  readonly name: string;
  #config: PoolConfig;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #workers = new Map<number, PhpCgiWorker>();
  /** Idle and not reserved, most recently idle last (taken first: the others may be trimmed). */
  readonly #available: PhpCgiWorker[] = [];
  readonly #reserved = new Set<PhpCgiWorker>();
  readonly #queue: Waiter[] = [];
  readonly #usedPorts = new Set<number>();
  #nextId = 1;
  #socketDir: string | null = null;
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  #spawnRate = 1;
  #lastSpareKillAt = 0;
  #recheckTimer: NodeJS.Timeout | null = null;
  #crashTimes: number[] = [];
  /** Workers that finished at least one request: their crash is not a crash loop. */
  readonly #proven = new WeakSet<PhpCgiWorker>();
  #crashBackoffMs = 0;
  #respawnAt = 0;
  readonly #startTime: number;
  #accepted = 0;
  #maxQueue = 0;
  #maxActive = 0;
  #maxReached = 0;
  /** The policy wanted more workers than max_workers allows, and nothing has changed that since. */
  #atMax = false;
  readonly #restarts: Record<ExitReason, number> = Object.fromEntries(EXIT_REASONS.map((r) => [r, 0])) as Record<ExitReason, number>;
  #stopWaiters: Array<() => void> = [];
  readonly #stateListeners = new Set<() => void>();
  /** stop() is serving the requests still waiting before it stops the workers. */
  #draining = false;

  constructor(config: PoolConfig, log: Logger, clock: () => number = Date.now) {
    super();
    this.name = config.name;
    this.#config = config;
    this.#log = log;
    this.#clock = clock;
    this.#startTime = clock();
  }

  /**
   * Applies new pool limits in place (a config reload): the policy resizes the pool from its next
   * decision on, idle workers beyond a lower max_workers stop at once, busy ones after their
   * request. The PHP processes themselves (binary, ini, env, sockets) are not changed here.
   */
  reconfigure(changes: Partial<Pick<PoolConfig, ReconfigurableKey>>): void {
    this.#config = { ...this.#config, ...changes };
    this.#spawnRate = 1;
    this.#log.info({ pool: this.name, manager: this.#config.manager, maxWorkers: this.#config.maxWorkers }, `pool ${this.name}: limits changed (pm ${this.#config.manager}, max_workers ${this.#config.maxWorkers})`);
    this.#reconcile();
  }

  get config(): Readonly<PoolConfig> {
    return this.#config;
  }

  /** Starts the boot workers and waits for them; throws if not one of them came up. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`pool ${this.name} was already started`);
    this.#state = 'running';
    if ((this.#config.transport ?? 'unix') === 'unix') {
      // A private folder (mode 0700) for the worker sockets: no other user can connect to them.
      this.#socketDir = await mkdtemp(join(tmpdir(), `tqserver-${this.name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-`));
    }
    const boot = bootWorkers(this.#config);
    const started = Array.from({ length: boot }, () => this.#spawn());
    const results = await Promise.allSettled(started);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (boot > 0 && failures.length === boot) {
      await this.stop(0);
      throw failures[0]!.reason;
    }
    this.#log.info(
      { pool: this.name, manager: this.#config.manager, workers: boot - failures.length },
      `pool ${this.name} started (${this.#config.manager}, ${boot - failures.length} of ${boot} workers up)`,
    );
    this.#reconcile();
  }

  /** Reserves an idle worker, waiting in the FIFO queue when all are busy. */
  acquire(signal?: AbortSignal): Promise<WorkerLease> {
    if (signal?.aborted) return Promise.reject(this.#abandoned(signal.reason));
    return new Promise((resolve, reject) => {
      let onAbort: (() => void) | null = null;
      const waiter = this.#enqueue(
        (worker) => {
          if (onAbort) signal?.removeEventListener('abort', onAbort);
          resolve(this.#lease(worker));
        },
        (error) => {
          if (onAbort) signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
      if (signal && waiter) {
        onAbort = () => this.#dropWaiter(waiter, this.#abandoned(signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  /**
   * Runs a request on the next free worker: queued while all are busy, cut by request_timeout
   * (the worker is killed and replaced, the handler gets PHP_REQUEST_TIMEOUT), failures typed.
   */
  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo = {}): RequestController {
    let waiter: Waiter | null = null;
    const signal = options.signal;
    const request = new PoolRequest(handler, (reason) => {
      if (waiter) this.#dropWaiter(waiter, this.#abandoned(reason));
    });
    request.bodyInMemory = bodyInMemory(options);
    if (signal?.aborted) {
      request.finished = true;
      handler.onError(this.#abandoned(signal.reason));
      return request;
    }
    // While queued the caller's signal is watched here; once running, the connection watches it.
    const onAbort = signal ? () => request.abort(signal.reason) : null;
    const grant = (worker: PhpCgiWorker) => {
      if (onAbort) signal!.removeEventListener('abort', onAbort);
      this.#run(worker, request, options, info);
    };
    const fail = (error: Error) => {
      if (onAbort) signal!.removeEventListener('abort', onAbort);
      if (request.finished) return;
      request.finished = true;
      handler.onError(error);
    };
    request.requeue = () => {
      if (this.#state !== 'running' || signal?.aborted) return false;
      this.#accepted -= 1;
      if (onAbort) signal!.addEventListener('abort', onAbort, { once: true });
      waiter = this.#enqueue(grant, fail);
      return true;
    };
    if (onAbort) signal!.addEventListener('abort', onAbort, { once: true });
    waiter = this.#enqueue(grant, fail);
    return request;
  }

  /** The error a caller gets for a request it gave up on before a worker took it. */
  #abandoned(reason: unknown): Error {
    return toAbortError(reason ?? new PoolUnavailableError('POOL_STOPPED', `pool ${this.name}: request abandoned while waiting for a worker`));
  }

  /**
   * Graceful stop: no new requests; those already waiting are still served (a reload that replaced
   * this pool, or a removed app, loses none of them), then idle workers stop, busy ones after their
   * request; whatever is left when graceMs is over fails with POOL_STOPPED or is killed. Resolves
   * when every php-cgi process has exited.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#state === 'stopped') return;
    const started = this.#clock();
    if (this.#state === 'running' && !this.#draining && this.#queue.length > 0 && graceMs > 0) {
      this.#draining = true;
      await this.waitFor((stats) => stats.queueLength === 0, graceMs).catch(() => {});
      graceMs = Math.max(0, graceMs - (this.#clock() - started));
    }
    if (this.#state !== 'stopping') {
      this.#state = 'stopping';
      if (this.#recheckTimer) clearTimeout(this.#recheckTimer);
      this.#recheckTimer = null;
      for (const waiter of this.#queue.splice(0)) this.#failWaiter(waiter, new PoolUnavailableError('POOL_STOPPED', `pool ${this.name} is stopping`));
      for (const worker of this.#workers.values()) worker.retire('stopped');
    }
    if (this.#workers.size > 0) {
      const allExited = new Promise<void>((resolve) => this.#stopWaiters.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), graceMs);
      });
      if ((await Promise.race([allExited, expired])) === 'expired') {
        for (const worker of this.#workers.values()) {
          this.#log.warn({ pool: this.name, pid: worker.pid, state: worker.state }, `pool ${this.name}: worker still ${worker.state} after ${graceMs} ms; killing it`);
          void worker.kill('stopped', new PoolUnavailableError('POOL_STOPPED', `pool ${this.name} stopped: the request was still running after the ${graceMs} ms grace`));
        }
        await allExited;
      }
      clearTimeout(timer);
    }
    this.#state = 'stopped';
    if (this.#socketDir) await rm(this.#socketDir, { recursive: true, force: true });
    this.#socketDir = null;
  }

  stats(): PoolStats {
    let idle = 0;
    let active = 0;
    let starting = 0;
    for (const worker of this.#workers.values()) {
      const state = worker.state;
      if (state === 'idle') idle += 1;
      else if (state === 'active' || state === 'retiring') active += 1;
      else if (state === 'starting') starting += 1;
    }
    return {
      pool: this.name,
      processManager: this.#config.manager,
      startTime: this.#startTime,
      acceptedRequests: this.#accepted,
      queueLength: this.#queue.length,
      maxQueueLength: this.#maxQueue,
      queueLimit: this.#config.queueLimit,
      idle,
      active,
      starting,
      total: idle + active + starting,
      maxActive: this.#maxActive,
      maxWorkersReached: this.#maxReached,
      restarts: { ...this.#restarts },
      crashLoop: this.#respawnAt > this.#clock(),
    };
  }

  workerStats(withMemory = false): WorkerStats[] {
    return [...this.#workers.values()].map((worker) => worker.stats(withMemory));
  }

  /** Resolves when the pool's stats satisfy `predicate` (checked on every worker state change). */
  waitFor(predicate: (stats: PoolStats) => boolean, timeoutMs = 10_000): Promise<PoolStats> {
    const now = this.stats();
    if (predicate(now)) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = () => {
        const stats = this.stats();
        if (!predicate(stats)) return;
        cleanup();
        resolve(stats);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`pool ${this.name}: condition not reached within ${timeoutMs} ms (now ${JSON.stringify(this.stats())})`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('worker-ready', check);
        this.off('worker-exit', check);
        this.#stateListeners.delete(check);
      };
      this.on('worker-ready', check);
      this.on('worker-exit', check);
      this.#stateListeners.add(check);
    });
  }

  // ---- queue ----

  /** Grants a free worker at once, or queues the caller; returns the waiter (null if settled already). */
  #enqueue(grant: (worker: PhpCgiWorker) => void, fail: (error: Error) => void): Waiter | null {
    if (this.#state !== 'running' || this.#draining) {
      fail(new PoolUnavailableError('POOL_STOPPED', `pool ${this.name} is ${this.#state === 'new' ? 'not started' : this.#draining ? 'stopping' : this.#state}`));
      return null;
    }
    const worker = this.#available.pop();
    if (worker) {
      this.#reserved.add(worker);
      grant(worker);
      return null;
    }
    if (this.#respawnAt > this.#clock() && this.#servingCount() === 0) {
      fail(new PoolUnavailableError('POOL_CRASH_LOOP', `pool ${this.name}: workers keep crashing; respawning paused for ${this.#respawnAt - this.#clock()} ms (see the log for their exit codes)`));
      return null;
    }
    if (this.#queue.length >= this.#config.queueLimit) {
      this.emit('queue-full', this.name, this.#queue.length);
      fail(new PoolUnavailableError('POOL_QUEUE_FULL', `pool ${this.name}: all workers busy and the queue is full (${this.#queue.length} waiting, queue_limit ${this.#config.queueLimit})`));
      return null;
    }
    const waiter: Waiter = { grant, fail, enqueuedAt: this.#clock(), timer: null };
    this.#queue.push(waiter);
    this.#maxQueue = Math.max(this.#maxQueue, this.#queue.length);
    if (this.#config.queueTimeoutMs > 0) {
      waiter.timer = setTimeout(() => {
        this.emit('queue-timeout', this.name, this.#clock() - waiter.enqueuedAt);
        this.#dropWaiter(
          waiter,
          new PoolUnavailableError('POOL_QUEUE_TIMEOUT', `pool ${this.name}: no worker became free within ${this.#config.queueTimeoutMs} ms (queue_timeout)`),
        );
      }, this.#config.queueTimeoutMs);
    }
    this.#reconcile();
    return waiter;
  }

  #dropWaiter(waiter: Waiter, error: Error): void {
    const index = this.#queue.indexOf(waiter);
    if (index < 0) return;
    this.#queue.splice(index, 1);
    this.#failWaiter(waiter, error);
    this.#reconcile();
  }

  #failWaiter(waiter: Waiter, error: Error): void {
    if (waiter.timer) clearTimeout(waiter.timer);
    waiter.fail(error);
  }

  /** A worker became idle: recycle it, hand it to the first waiter, or make it available. */
  #onIdle(worker: PhpCgiWorker): void {
    this.#reserved.delete(worker);
    if (this.#state !== 'running') {
      void worker.stop('stopped');
      return;
    }
    const reason = this.#recycleReason(worker);
    if (reason) {
      void worker.stop(reason);
      this.#reconcile();
      return;
    }
    if (this.#servingCount() > this.#config.maxWorkers) {
      // max_workers was lowered while this worker was busy: it goes now that its request is done.
      void worker.stop('stopped');
      this.#reconcile();
      return;
    }
    const waiter = this.#queue.shift();
    if (waiter) {
      if (waiter.timer) clearTimeout(waiter.timer);
      this.#reserved.add(worker);
      waiter.grant(worker);
      // The policy spawns one batch at a time: with requests still waiting, it may want the next.
      this.#reconcile();
      return;
    }
    this.#available.push(worker);
    this.#reconcile();
  }

  #recycleReason(worker: PhpCgiWorker): ExitReason | null {
    const { maxRequests, maxWorkerMemoryBytes } = this.#config;
    if (maxRequests > 0 && worker.requests >= maxRequests) return 'recycled';
    // A worker is measured after it served something: a fresh one over the limit would otherwise be
    // replaced by another fresh one, forever.
    if (maxWorkerMemoryBytes > 0 && worker.requests > 0) {
      const rss = worker.rssBytes();
      if (rss !== null && rss > maxWorkerMemoryBytes) {
        this.#log.info(
          { pool: this.name, pid: worker.pid, rssBytes: rss },
          `pool ${this.name}: recycling pid ${worker.pid}: resident memory ${Math.round(rss / 1048576)} MiB is over max_worker_memory ${Math.round(maxWorkerMemoryBytes / 1048576)} MiB`,
        );
        return 'memory';
      }
    }
    return null;
  }

  #lease(worker: PhpCgiWorker): WorkerLease {
    let used = false;
    return {
      worker,
      dispatch: (options, handler, info) => {
        if (used) throw new Error(`lease of pool ${this.name} worker ${worker.id} was already used`);
        used = true;
        const request = new PoolRequest(handler, () => {});
        this.#run(worker, request, options, info ?? {});
        return request;
      },
      release: () => {
        if (used) return;
        used = true;
        if (worker.state === 'idle') this.#onIdle(worker);
        else this.#reserved.delete(worker);
      },
    };
  }

  #run(worker: PhpCgiWorker, request: PoolRequest, options: RequestOptions, info: RequestInfo): void {
    if (request.finished) {
      this.#onIdle(worker);
      return;
    }
    this.#accepted += 1;
    request.onDispatch({ pid: worker.pid });
    try {
      // The worker's connection calls `request`, which passes everything on until it is finished.
      request.inner = worker.dispatch(options, request, info);
    } catch (error) {
      if (worker.state === 'idle') this.#onIdle(worker);
      else this.#reserved.delete(worker);
      request.onError(error as Error);
      return;
    }
    if (worker.state === 'idle') {
      // The request ended before it started (its signal was already aborted); the worker is free.
      this.#onIdle(worker);
      return;
    }
    this.#maxActive = Math.max(this.#maxActive, this.#activeCount());
    const timeoutMs = this.#config.requestTimeoutMs;
    if (timeoutMs > 0 && !request.finished) {
      request.timer = setTimeout(() => {
        if (request.finished) return;
        request.finish();
        this.#log.warn(
          { pool: this.name, req: info.requestId, pid: worker.pid, script: info.script, uri: info.uri },
          `pool ${this.name}: request ${info.method ?? ''} ${info.uri ?? info.script ?? ''} ran over request_timeout (${timeoutMs} ms); killing php-cgi pid ${worker.pid}`,
        );
        this.emit('request-timeout', worker, info);
        void worker.kill('timeout');
        request.failNow(new PhpTimeoutError(`pool ${this.name}: the script ran longer than request_timeout (${timeoutMs} ms)`));
      }, timeoutMs);
    }
  }

  // ---- workers ----

  #spawn(): Promise<void> {
    const id = this.#nextId++;
    let listen: Address;
    try {
      listen = this.#workerAddress(id);
    } catch (error) {
      this.#log.error({ pool: this.name }, (error as Error).message);
      return Promise.reject(error);
    }
    const worker = new PhpCgiWorker({
      id,
      pool: this.name,
      binary: this.#config.binary,
      listen,
      configFile: this.#config.configFile ?? null,
      settings: this.#config.settings ?? {},
      env: this.#config.env ?? {},
      cwd: this.#config.cwd,
      startTimeoutMs: this.#config.startTimeoutMs,
      stopTimeoutMs: this.#config.stopTimeoutMs,
      abortGraceMs: this.#config.abortGraceMs,
      log: this.#log,
      clock: this.#clock,
      onOutput: this.#config.onWorkerOutput,
    });
    this.#workers.set(id, worker);
    worker.on('state', (w: PhpCgiWorker, from: WorkerState, to: WorkerState) => this.#onWorkerState(w, from, to));
    worker.once('exit', (w: PhpCgiWorker, exit: WorkerExit) => this.#onWorkerExit(w, exit));
    return worker.start().then(
      () => {
        this.#log.debug({ pool: this.name, pid: worker.pid, worker: id }, `pool ${this.name}: worker ${id} (pid ${worker.pid}) ready`);
      },
      (error: Error) => {
        // A worker stopped while starting (pool stop) is no news; one that died is.
        if (this.#state === 'running') this.#log.error({ pool: this.name, pid: worker.pid, err: error.message }, error.message);
        throw error;
      },
    );
  }

  #workerAddress(id: number): Address {
    if ((this.#config.transport ?? 'unix') === 'unix') return { path: join(this.#socketDir!, `w${id}.sock`) };
    const [low, high] = this.#config.portRange ?? [9100, 9199];
    for (let port = low; port <= high; port++) {
      if (!this.#usedPorts.has(port)) {
        this.#usedPorts.add(port);
        return { host: '127.0.0.1', port };
      }
    }
    throw new PoolUnavailableError('POOL_STOPPED', `pool ${this.name}: no free port left in port_range ${low}-${high}`);
  }

  #onWorkerState(worker: PhpCgiWorker, from: WorkerState, to: WorkerState): void {
    // Announced before it is handed a request, so listeners see every worker while it is idle.
    if (from === 'starting' && to === 'idle') this.emit('worker-ready', worker);
    if (from === 'active' && to === 'idle') this.#proven.add(worker);
    if (to === 'idle') this.#onIdle(worker);
    else if (from === 'idle') {
      // Leaving idle for anything but a request it was granted (stopping, crashed).
      const index = this.#available.indexOf(worker);
      if (index >= 0) this.#available.splice(index, 1);
    }
    for (const listener of this.#stateListeners) listener();
  }

  #onWorkerExit(worker: PhpCgiWorker, exit: WorkerExit): void {
    this.#workers.delete(worker.id);
    this.#reserved.delete(worker);
    const index = this.#available.indexOf(worker);
    if (index >= 0) this.#available.splice(index, 1);
    if ('port' in worker.listen) this.#usedPorts.delete(worker.listen.port);
    this.#restarts[exit.reason] += 1;
    const level = exit.reason === 'crashed' ? 'warn' : 'info';
    this.#log[level](
      { pool: this.name, pid: exit.pid, reason: exit.reason, code: exit.code, signal: exit.signal, requests: worker.requests },
      `pool ${this.name}: php-cgi pid ${exit.pid} ${exit.reason === 'crashed' ? 'crashed' : `exited (${exit.reason})`} after ${worker.requests} requests`,
    );
    // A worker that served and was then killed says nothing about the binary or php.ini; one that
    // died before finishing its first request may, and enough of those are a crash loop.
    if (exit.reason === 'crashed' && !this.#proven.has(worker)) this.#noteCrash();
    this.emit('worker-exit', worker, exit);
    if (this.#workers.size === 0) for (const resolve of this.#stopWaiters.splice(0)) resolve();
    this.#reconcile();
  }

  #noteCrash(): void {
    const now = this.#clock();
    const intervalMs = this.#config.crashIntervalMs ?? DEFAULT_CRASH_INTERVAL_MS;
    const threshold = this.#config.crashThreshold ?? DEFAULT_CRASH_THRESHOLD;
    this.#crashTimes = this.#crashTimes.filter((t) => t > now - intervalMs);
    this.#crashTimes.push(now);
    if (this.#crashTimes.length < threshold) {
      // Fewer crashes than the threshold within the interval: a later loop starts from the first step.
      this.#crashBackoffMs = 0;
      return;
    }
    // The pause doubles once per failed round of respawns: the other workers of a round that is
    // already paused (started together, crashing together) do not lengthen it again.
    if (now >= this.#respawnAt) {
      this.#crashBackoffMs = Math.min(Math.max(this.#crashBackoffMs * 2, 1000), this.#config.crashBackoffMaxMs ?? DEFAULT_CRASH_BACKOFF_MAX_MS);
      this.#respawnAt = now + this.#crashBackoffMs;
      this.#log.error(
        { pool: this.name, crashes: this.#crashTimes.length, retryInMs: this.#crashBackoffMs },
        `pool ${this.name}: ${this.#crashTimes.length} worker crashes within ${intervalMs / 1000} s; pausing respawn for ${this.#crashBackoffMs} ms. Check the php-cgi errors above (binary, php.ini, extensions).`,
      );
      this.emit('crash-loop', this.name, this.#crashTimes.length, this.#crashBackoffMs);
    }
    // Requests waiting for a worker that cannot come now get a clear answer instead of a long wait.
    if (this.#servingCount() === 0) {
      for (const waiter of this.#queue.splice(0)) {
        this.#failWaiter(waiter, new PoolUnavailableError('POOL_CRASH_LOOP', `pool ${this.name}: workers keep crashing; respawning paused for ${this.#respawnAt - now} ms`));
      }
    }
  }

  /** Counts workers that serve or will serve (starting, idle, active). */
  #servingCount(): number {
    let count = 0;
    for (const worker of this.#workers.values()) {
      const s = worker.state;
      if (s === 'starting' || s === 'idle' || s === 'active') count += 1;
    }
    return count;
  }

  #activeCount(): number {
    let count = 0;
    for (const worker of this.#workers.values()) if (worker.state === 'active' || worker.state === 'retiring') count += 1;
    return count;
  }

  /** Asks the pm policy what to do and does it. Called on every event that changes the counts. */
  #reconcile(): void {
    if (this.#state !== 'running') return;
    const now = this.#clock();
    let starting = 0;
    let active = 0;
    for (const worker of this.#workers.values()) {
      const s = worker.state;
      if (s === 'starting') starting += 1;
      else if (s === 'active' || s === 'retiring') active += 1;
      else if (s === 'idle' && this.#reserved.has(worker)) active += 1;
    }
    const decision: PmDecision = decide(this.#config, {
      now,
      starting,
      idle: this.#available.map((w) => ({ id: w.id, idleSince: w.idleSince })),
      active,
      queued: this.#queue.length,
      spawnRate: this.#spawnRate,
      lastSpareKillAt: this.#lastSpareKillAt,
    });
    this.#spawnRate = decision.spawnRate;
    if (decision.atMax && !this.#atMax) {
      // Once per episode, as php-fpm's "server reached pm.max_children". Debug: the event becomes advice
      // (observe/advice.ts), one warning a minute at most however many episodes a busy pool has.
      this.#maxReached += 1;
      this.#log.debug(
        { pool: this.name, maxWorkers: this.#config.maxWorkers, queued: this.#queue.length },
        `pool ${this.name} reached max_workers (${this.#config.maxWorkers}) with ${this.#queue.length} requests waiting; consider raising it`,
      );
      this.emit('max-workers-reached', this.name, this.#config.maxWorkers);
    }
    this.#atMax = decision.atMax;
    const overMax = this.#servingCount() > this.#config.maxWorkers;
    for (const id of decision.stop) {
      const worker = this.#workers.get(id);
      if (!worker || worker.state !== 'idle') continue;
      const reason: ExitReason = overMax ? 'stopped' : 'idle';
      if (this.#config.manager === 'dynamic') this.#lastSpareKillAt = now;
      void worker.stop(reason);
    }
    let recheckInMs = decision.recheckInMs;
    if (decision.spawn > 0) {
      if (this.#respawnAt > now) {
        recheckInMs = Math.min(recheckInMs ?? Infinity, this.#respawnAt - now);
      } else {
        for (let i = 0; i < decision.spawn; i++) this.#spawn().catch(() => {});
      }
    }
    this.#scheduleRecheck(recheckInMs);
  }

  #scheduleRecheck(inMs: number | null): void {
    if (this.#recheckTimer) clearTimeout(this.#recheckTimer);
    this.#recheckTimer = null;
    if (inMs === null || !Number.isFinite(inMs)) return;
    this.#recheckTimer = setTimeout(() => {
      this.#recheckTimer = null;
      this.#reconcile();
    }, Math.max(1, inMs));
    this.#recheckTimer.unref();
  }
}
