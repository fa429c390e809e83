// One pool of php-cgi workers: applies the pm policy's decisions, hands idle workers to requests
// (FIFO queue with a limit and a timeout when all are busy), recycles, replaces crashed workers with
// a crash-loop guard, enforces request_timeout, and reports a stats snapshot.

import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { PhpTimeoutError, PoolUnavailableError } from '../errors.js';
import type { Address } from '../fastcgi/address.js';
import type { RequestController, RequestOptions, ResponseHandler } from '../fastcgi/client.js';
import { bodyResendable } from '../fastcgi/replay.js';
import type { Logger } from '../log.js';
import { CrashLoop, DEFAULT_CRASH_INTERVAL_MS } from './crash-loop.js';
import { bootWorkers, decide, type PmDecision } from './pm.js';
import type { PoolConfig, ReconfigurableKey } from './pool-config.js';
import { acquireLease, type LeaseHost, type WorkerLease } from './pool-lease.js';
import { abandonedError, PoolRequest, type Waiter } from './pool-request.js';
import { activeCount, countWorkers, servingCount, waitForStats, type PoolEvents, type PoolStats } from './pool-stats.js';
import { killAfterGrace, makeSocketDir, recycleReason, workerAddress, workerOptions } from './pool-workers.js';
import { PhpCgiWorker, type RequestInfo, type WorkerExit, type WorkerStats } from './worker.js';
import { EXIT_REASONS, type ExitReason, type WorkerState } from './worker-state.js';

export type { PoolConfig, ReconfigurableKey } from './pool-config.js';
export type { WorkerLease } from './pool-lease.js';
export type { PoolEvents, PoolStats } from './pool-stats.js';

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
  readonly #crashLoop = new CrashLoop();
  /** Workers that finished at least one request: their crash is not a crash loop. */
  readonly #proven = new WeakSet<PhpCgiWorker>();
  /** Respawning is paused until then (the crash loop's pause, kept here for the queue's check). */
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
  /** What leases ask of the pool; made once. */
  readonly #leaseHost: LeaseHost = {
    enqueue: (grant, fail) => this.#enqueue(grant, fail),
    drop: (waiter, error) => this.#dropWaiter(waiter, error),
    run: (worker, request, options, info) => this.#run(worker, request, options, info),
    release: (worker) => {
      if (worker.state === 'idle') this.#onIdle(worker);
      else this.#reserved.delete(worker);
    },
  };

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
      this.#socketDir = await makeSocketDir(this.name);
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

  /** Reserves an idle worker, waiting in the FIFO queue when all are busy (pool-lease.ts). */
  acquire(signal?: AbortSignal): Promise<WorkerLease> {
    return acquireLease(this.name, this.#leaseHost, signal);
  }

  /**
   * Runs a request on the next free worker: queued while all are busy, cut by request_timeout
   * (the worker is killed and replaced, the handler gets PHP_REQUEST_TIMEOUT), failures typed.
   */
  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo = {}): RequestController {
    let waiter: Waiter | null = null;
    const signal = options.signal;
    const request = new PoolRequest(handler, (reason) => {
      if (waiter) this.#dropWaiter(waiter, abandonedError(this.name, reason));
    });
    request.bodyResendable = bodyResendable(options);
    if (signal?.aborted) {
      request.finished = true;
      handler.onError(abandonedError(this.name, signal.reason));
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
      await killAfterGrace(this.#workers, allExited, graceMs, this.#log, this.name);
    }
    this.#state = 'stopped';
    if (this.#socketDir) await rm(this.#socketDir, { recursive: true, force: true });
    this.#socketDir = null;
  }

  stats(): PoolStats {
    const { idle, active, starting } = countWorkers(this.#workers.values());
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
    return waitForStats(this, this.#stateListeners, predicate, timeoutMs);
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
    if (this.#respawnAt > this.#clock() && servingCount(this.#workers) === 0) {
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
    const reason = recycleReason(worker, this.#config, this.#log, this.name);
    if (reason) {
      void worker.stop(reason);
      this.#reconcile();
      return;
    }
    if (servingCount(this.#workers) > this.#config.maxWorkers) {
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
    this.#maxActive = Math.max(this.#maxActive, activeCount(this.#workers));
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
      listen = workerAddress(this.#config, id, this.#socketDir, this.#usedPorts);
    } catch (error) {
      this.#log.error({ pool: this.name }, (error as Error).message);
      return Promise.reject(error);
    }
    const worker = new PhpCgiWorker(workerOptions(this.#config, id, listen, this.#log, this.#clock));
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
    const verdict = this.#crashLoop.note(now, this.#config);
    if (verdict === 'ok') return;
    if (verdict === 'pause') {
      const crashes = this.#crashLoop.crashes;
      const backoffMs = this.#crashLoop.backoffMs;
      this.#respawnAt = this.#crashLoop.respawnAt;
      this.#log.error(
        { pool: this.name, crashes, retryInMs: backoffMs },
        `pool ${this.name}: ${crashes} worker crashes within ${(this.#config.crashIntervalMs ?? DEFAULT_CRASH_INTERVAL_MS) / 1000} s; pausing respawn for ${backoffMs} ms. Check the php-cgi errors above (binary, php.ini, extensions).`,
      );
      this.emit('crash-loop', this.name, crashes, backoffMs);
    }
    // Requests waiting for a worker that cannot come now get a clear answer instead of a long wait.
    if (servingCount(this.#workers) === 0) {
      for (const waiter of this.#queue.splice(0)) {
        this.#failWaiter(waiter, new PoolUnavailableError('POOL_CRASH_LOOP', `pool ${this.name}: workers keep crashing; respawning paused for ${this.#respawnAt - now} ms`));
      }
    }
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
    const overMax = servingCount(this.#workers) > this.#config.maxWorkers;
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
