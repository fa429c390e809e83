// The php-fpm backend: a managed php-fpm master (or an external php-fpm, or several upstreams) behind
// pooled FastCGI clients sized to php-fpm's children, with TQServer's own queue, health checks
// through php-fpm's status page, a circuit breaker per upstream, and least-busy routing.

import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Backend, PoolStatus, ProcessStatus } from '../backend.js';
import type { AppConfig, Mode } from '../config/load.js';
import { FastCGITimeoutError, PhpTimeoutError, PoolUnavailableError, TQServerError } from '../errors.js';
import { formatAddress, type Address } from '../fastcgi/address.js';
import { FastCGIClient } from '../fastcgi/client-pool.js';
import { FastCGIResponse, type RequestController, type RequestOptions, type ResponseHandler } from '../fastcgi/client.js';
import type { Logger } from '../log.js';
import { detectPhp, type PhpBinary } from '../php/binary.js';
import type { RequestInfo } from '../supervisor/worker.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';
import { FpmMaster } from './launcher.js';
import { freePort } from './probe.js';

/** php-fpm answers these itself (ping.path, pm.status_path); they never reach a script. */
export const PING_PATH = '/tqserver-fpm-ping';
export const STATUS_PATH = '/tqserver-fpm-status';

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

/** php-fpm's own pool figures, read from its status page at each health check. */
export interface FpmPoolStatus {
  pool: string;
  processManager: string;
  startTime: number;
  acceptedConn: number;
  listenQueue: number;
  maxListenQueue: number;
  listenQueueLen: number;
  idleProcesses: number;
  activeProcesses: number;
  totalProcesses: number;
  maxActiveProcesses: number;
  maxChildrenReached: number;
  slowRequests: number;
  processes: ProcessStatus[];
}

export interface UpstreamStats {
  address: string;
  breaker: BreakerState;
  breakerReason: string;
  open: number;
  idle: number;
  busy: number;
  queued: number;
  requests: number;
  retries: number;
  failures: number;
  healthy: boolean;
  php: FpmPoolStatus | null;
}

export interface FpmBackendStats {
  app: string;
  managed: boolean;
  masterPid: number;
  masterState: string;
  masterRestarts: number;
  accepted: number;
  queueLength: number;
  maxQueueLength: number;
  queueTimeouts: number;
  requestTimeouts: number;
  upstreams: UpstreamStats[];
}

export interface FpmBackendEvents {
  breaker: [address: string, state: BreakerState, reason: string];
}

/**
 * Errors that say the upstream cannot be reached (they count against the breaker). A connection
 * closed mid-request is one child's end (a crash, a kill, a recycle), not php-fpm being down.
 */
const CONNECTION_FAILURES = new Set(['FCGI_CONNECT_REFUSED', 'FCGI_CONNECT_TIMEOUT']);

class Upstream {
  readonly address: Address;
  readonly label: string;
  readonly client: FastCGIClient;
  readonly breaker = new CircuitBreaker();
  readonly capacity: number;
  failures = 0;
  healthy = true;
  php: FpmPoolStatus | null = null;

  constructor(address: Address, client: FastCGIClient, capacity: number) {
    this.address = address;
    this.label = formatAddress(address);
    this.client = client;
    this.capacity = capacity;
  }

  /** In-flight plus waiting, relative to what it can take: least busy wins. */
  load(): number {
    const s = this.client.stats;
    return (s.busy + s.connecting + s.queued) / this.capacity;
  }
}

export class FpmBackend extends EventEmitter<FpmBackendEvents> implements Backend {
  readonly kind = 'php-fpm' as const;
  readonly #options: FpmBackendOptions;
  readonly #app: AppConfig;
  readonly #log: Logger;
  readonly #clock: () => number;
  #master: FpmMaster | null = null;
  #binary: PhpBinary | null = null;
  #upstreams: Upstream[] = [];
  #healthTimer: NodeJS.Timeout | null = null;
  #accepted = 0;
  #maxQueue = 0;
  #queueTimeouts = 0;
  #requestTimeouts = 0;
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
    const p = app.php.pool;
    // Never more kept-alive connections than children: an extra one pins a request in php-fpm's backlog.
    const capacity = fpm.poolSize ?? p.maxWorkers;
    let addresses: readonly Address[];
    if (fpm.external) {
      addresses = fpm.listen;
      this.#log.info({ app: app.name }, `app ${app.name}: external php-fpm at ${addresses.map(formatAddress).join(', ')}`);
    } else {
      this.#binary = await detectPhp('php-fpm', fpm.binary);
      // A private unix socket unless told otherwise; php_fpm.transport tcp without a listen picks a free port.
      const listen = fpm.listen[0] ?? (fpm.transport === 'tcp' ? { host: '127.0.0.1', port: await freePort() } : null);
      const keepDir = this.#options.mode === 'dev' ? join(this.#options.root, '.tqserver', 'phpfpm', app.name) : null;
      this.#master = new FpmMaster({
        app: app.name,
        binary: this.#binary,
        log: this.#log,
        keepDir,
        processControlTimeoutMs: this.#options.processControlTimeoutMs,
        pool: {
          name: app.name,
          listen,
          pool: p,
          settings: app.php.settings,
          env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', ...app.php.env },
          extensions: app.php.extensions,
          documentRoot: app.documentRoot,
          user: null,
          pingPath: PING_PATH,
          statusPath: STATUS_PATH,
          allowedClients: ['127.0.0.1', '::1'],
        },
      });
      await this.#master.start();
      this.#log.info(
        { app: app.name, pid: this.#master.pid },
        `app ${app.name}: php-fpm ${this.#binary.version.text} master pid ${this.#master.pid} on ${formatAddress(this.#master.listen)}, pm ${p.manager}, max_children ${p.maxWorkers}`,
      );
      if (keepDir) this.#log.info({ app: app.name }, `app ${app.name}: php-fpm config kept in ${keepDir}; reproduce with: ${this.#master.commandLine}`);
      addresses = [this.#master.listen];
      this.#master.on('down', (reason) => this.#masterDown(reason));
      this.#master.on('up', () => this.#masterUp());
    }
    this.#upstreams = addresses.map(
      (address) =>
        new Upstream(
          address,
          new FastCGIClient({
            address,
            maxConns: capacity,
            maxQueue: p.queueLimit,
            queueTimeoutMs: p.queueTimeoutMs,
            connectTimeoutMs: fpm.connectTimeoutMs,
            readTimeoutMs: fpm.requestTimeoutMs,
            writeTimeoutMs: fpm.requestTimeoutMs,
            // Connections stay open as long as php-fpm keeps them: each pins one child.
            idleTimeoutMs: 0,
            // A child closes its connection after its pm.max_requests-th request; with one connection
            // per child our count is its count, so that connection is not offered another request.
            maxRequestsPerConnection: this.#master ? p.maxRequests : 0,
          }),
          capacity,
        ),
    );
    // A first look at php-fpm's status, so the status page has figures from the start.
    await this.#checkAll();
    this.#scheduleHealth();
  }

  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo): RequestController {
    const now = this.#clock();
    let chosen: Upstream | null = null;
    for (const upstream of this.#upstreams) {
      if (upstream.breaker.state !== 'closed') continue;
      if (!chosen || upstream.load() < chosen.load()) chosen = upstream;
    }
    // No closed breaker: try one that is due for a trial.
    if (!chosen) chosen = this.#upstreams.find((u) => u.breaker.allow(now)) ?? null;
    if (!chosen || this.#stopped) {
      const retry = Math.min(...this.#upstreams.map((u) => u.breaker.retryInMs(now)), 30_000);
      const error = this.#stopped
        ? new PoolUnavailableError('POOL_STOPPED', `app ${this.#app.name}: stopping`)
        : new PoolUnavailableError('UPSTREAM_DOWN', `app ${this.#app.name}: php-fpm is down (${this.#upstreams.map((u) => `${u.label}: ${u.breaker.reason}`).join('; ')}); next try in ${retry} ms`);
      queueMicrotask(() => handler.onError(error));
      return { abort: () => {}, resume: () => {}, started: false, bodySent: false };
    }
    const upstream = chosen;
    this.#accepted += 1;
    const queued = upstream.client.stats.queued + 1;
    if (queued > this.#maxQueue) this.#maxQueue = queued;
    let finished = false;
    let timer: NodeJS.Timeout | null = null;
    const requestTimeoutMs = this.#app.phpFpm.requestTimeoutMs;
    const startedAt = this.#clock();
    const terminateMs = this.#master ? this.#app.php.pool.requestTimeoutMs : 0;
    const controller = upstream.client.dispatch(options, {
      onDispatch: (process) => handler.onDispatch?.(process),
      onStdout: (chunk) => (finished ? true : handler.onStdout(chunk)),
      onStderr: (chunk) => {
        if (!finished) handler.onStderr(chunk);
      },
      onEnd: (result) => {
        if (finished) return;
        finished = true;
        if (timer) clearTimeout(timer);
        this.#succeeded(upstream);
        handler.onEnd(result);
      },
      onError: (error) => {
        if (finished) return;
        finished = true;
        if (timer) clearTimeout(timer);
        this.#failed(upstream, error);
        // php-fpm ends a script at request_terminate_timeout by killing its child: the connection
        // just closes. Said as what it is, a timeout (504), not a crash (502).
        const elapsed = this.#clock() - startedAt;
        if (terminateMs > 0 && elapsed >= terminateMs - 50 && error instanceof TQServerError && error.code === 'FCGI_PEER_CLOSED') {
          handler.onError(new PhpTimeoutError(`app ${this.#app.name}: php-fpm ended the script at request_timeout (${terminateMs} ms, request_terminate_timeout)`));
          return;
        }
        handler.onError(error);
      },
    });
    if (requestTimeoutMs > 0) {
      timer = setTimeout(() => {
        if (finished) return;
        this.#requestTimeouts += 1;
        this.#log.warn({ app: this.#app.name, uri: info.uri }, `app ${this.#app.name}: ${info.method ?? ''} ${info.uri ?? ''} got no complete answer from php-fpm within ${requestTimeoutMs} ms`);
        controller.abort(new FastCGITimeoutError('FCGI_READ_TIMEOUT', `php-fpm did not finish the request within ${requestTimeoutMs} ms`));
        if (!finished) {
          finished = true;
          handler.onError(new FastCGITimeoutError('FCGI_READ_TIMEOUT', `php-fpm did not finish the request within ${requestTimeoutMs} ms (php_fpm.request_timeout_ms)`));
        }
      }, requestTimeoutMs);
    }
    return controller;
  }

  stats(): FpmBackendStats {
    return {
      app: this.#app.name,
      managed: this.#master !== null,
      masterPid: this.#master?.pid ?? 0,
      masterState: this.#master?.state ?? 'external',
      masterRestarts: this.#master?.restarts ?? 0,
      accepted: this.#accepted,
      queueLength: this.#upstreams.reduce((n, u) => n + u.client.stats.queued, 0),
      maxQueueLength: this.#maxQueue,
      queueTimeouts: this.#queueTimeouts,
      requestTimeouts: this.#requestTimeouts,
      upstreams: this.#upstreams.map((u) => {
        const s = u.client.stats;
        return {
          address: u.label,
          breaker: u.breaker.state,
          breakerReason: u.breaker.reason,
          open: s.open,
          idle: s.idle,
          busy: s.busy,
          queued: s.queued,
          requests: s.requests,
          retries: s.retries,
          failures: u.failures,
          healthy: u.healthy,
          php: u.php,
        };
      }),
    };
  }

  /**
   * The pool as php-fpm's status page shows it (read at the last health check), with TQServer's own
   * queue as the listen queue: requests wait there, not in php-fpm's backlog.
   */
  status(): PoolStatus {
    const stats = this.stats();
    const php = this.#upstreams.map((u) => u.php).filter((p): p is FpmPoolStatus => p !== null);
    const sum = (pick: (p: FpmPoolStatus) => number) => php.reduce((n, p) => n + pick(p), 0);
    const p = this.#app.php.pool;
    return {
      pool: this.#app.name,
      backend: 'php-fpm',
      processManager: php[0]?.processManager || p.manager,
      startTime: php.length > 0 ? Math.min(...php.map((x) => x.startTime * 1000)) : this.#startTime,
      acceptedConn: stats.accepted,
      listenQueue: stats.queueLength + sum((x) => x.listenQueue),
      maxListenQueue: Math.max(stats.maxQueueLength, ...php.map((x) => x.maxListenQueue)),
      listenQueueLen: p.queueLimit,
      idleProcesses: sum((x) => x.idleProcesses),
      activeProcesses: sum((x) => x.activeProcesses),
      totalProcesses: sum((x) => x.totalProcesses),
      maxActiveProcesses: sum((x) => x.maxActiveProcesses),
      maxChildrenReached: sum((x) => x.maxChildrenReached),
      slowRequests: sum((x) => x.slowRequests),
      restarts: { master: stats.masterRestarts, requestTimeouts: stats.requestTimeouts },
      upstreams: stats.upstreams.map((u) => ({
        address: u.address,
        breaker: u.breaker,
        open: u.open,
        idle: u.idle,
        busy: u.busy,
        queued: u.queued,
        requests: u.requests,
        retries: u.retries,
        failures: u.failures,
      })),
      processes: php.flatMap((x) => x.processes),
    };
  }

  /** Graceful: running requests finish within graceMs, then php-fpm stops (SIGQUIT, SIGTERM, SIGKILL). */
  async stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    if (this.#healthTimer) clearTimeout(this.#healthTimer);
    this.#healthTimer = null;
    const deadline = this.#clock() + graceMs;
    await Promise.race([
      Promise.all(this.#upstreams.map((u) => u.client.close())),
      new Promise((resolve) => setTimeout(resolve, graceMs).unref()),
    ]);
    for (const upstream of this.#upstreams) upstream.client.destroy(new PoolUnavailableError('POOL_STOPPED', `app ${this.#app.name}: stopped`));
    await this.#master?.stop(Math.max(0, deadline - this.#clock()));
  }

  // ---- health and breaker ----

  #succeeded(upstream: Upstream): void {
    upstream.failures = 0;
    if (upstream.breaker.success()) this.#breakerChanged(upstream, 'answering again');
  }

  #failed(upstream: Upstream, error: Error): void {
    const code = error instanceof TQServerError ? error.code : '';
    if (code === 'FCGI_QUEUE_TIMEOUT') this.#queueTimeouts += 1;
    if (!CONNECTION_FAILURES.has(code)) return;
    upstream.failures += 1;
    if (upstream.breaker.failure(this.#clock(), error.message)) {
      this.#breakerChanged(upstream, error.message);
      // Requests waiting for this upstream would only time out: answer them now.
      upstream.client.failQueued(new PoolUnavailableError('UPSTREAM_DOWN', `app ${this.#app.name}: php-fpm at ${upstream.label} is down: ${error.message}`));
    }
  }

  #breakerChanged(upstream: Upstream, reason: string): void {
    const state = upstream.breaker.state;
    const level = state === 'closed' ? 'info' : 'error';
    this.#log[level](
      { app: this.#app.name, upstream: upstream.label, breaker: state },
      state === 'closed'
        ? `app ${this.#app.name}: php-fpm at ${upstream.label} is back; circuit closed`
        : `app ${this.#app.name}: php-fpm at ${upstream.label} is failing (${reason}); circuit open, answering 503 at once until it recovers`,
    );
    this.emit('breaker', upstream.label, state, reason);
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
    const params = {
      SCRIPT_NAME: STATUS_PATH,
      SCRIPT_FILENAME: STATUS_PATH,
      REQUEST_URI: `${STATUS_PATH}?json&full`,
      QUERY_STRING: 'json&full',
      REQUEST_METHOD: 'GET',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_SOFTWARE: 'TQServer',
      REMOTE_ADDR: '127.0.0.1',
      CONTENT_LENGTH: '',
    };
    try {
      const { stdout } = await new FastCGIResponse((handler) => upstream.client.dispatch({ params }, handler)).text();
      upstream.healthy = true;
      upstream.php = parseFpmStatus(stdout);
      if (upstream.breaker.state !== 'closed' && upstream.breaker.success()) this.#breakerChanged(upstream, 'health check passed');
    } catch (error) {
      const code = error instanceof TQServerError ? error.code : '';
      if (code === 'FCGI_QUEUE_FULL' || code === 'FCGI_QUEUE_TIMEOUT') return; // busy is not down
      upstream.healthy = false;
      if (upstream.breaker.failure(this.#clock(), (error as Error).message)) this.#breakerChanged(upstream, (error as Error).message);
    }
  }
}

/** php-fpm's status JSON (after the CGI head) in our field names; null when it is not there. */
export function parseFpmStatus(stdout: string): FpmPoolStatus | null {
  const start = stdout.indexOf('{');
  if (start < 0) return null;
  try {
    const j = JSON.parse(stdout.slice(start)) as Record<string, unknown>;
    const n = (key: string) => Number(j[key] ?? 0);
    return {
      pool: String(j.pool ?? ''),
      processManager: String(j['process manager'] ?? ''),
      startTime: n('start time'),
      acceptedConn: n('accepted conn'),
      listenQueue: n('listen queue'),
      maxListenQueue: n('max listen queue'),
      listenQueueLen: n('listen queue len'),
      idleProcesses: n('idle processes'),
      activeProcesses: n('active processes'),
      totalProcesses: n('total processes'),
      maxActiveProcesses: n('max active processes'),
      maxChildrenReached: n('max children reached'),
      slowRequests: n('slow requests'),
      processes: (Array.isArray(j.processes) ? (j.processes as Array<Record<string, string | number>>) : []).map((p) => ({
        pid: Number(p.pid ?? 0),
        state: String(p.state ?? ''),
        startTime: Number(p['start time'] ?? 0) * 1000,
        requests: Number(p.requests ?? 0),
        // php-fpm reports microseconds.
        requestDurationMs: Math.round(Number(p['request duration'] ?? 0) / 1000),
        requestMethod: String(p['request method'] ?? '-'),
        requestUri: String(p['request uri'] ?? '-'),
        contentLength: Number(p['content length'] ?? 0),
        script: String(p.script ?? '-'),
        lastRequestCpu: Number(p['last request cpu'] ?? 0),
        lastRequestMemory: Number(p['last request memory'] ?? 0),
      })),
    };
  } catch {
    return null;
  }
}
