// The composition root: from a validated Config, start every app's backend and fronts and the HTTP
// server; stop them all gracefully. Nothing else builds components from config.

import type { AppConfig, Config } from './config/load.js';
import type { Backend, PoolStatus } from './backend.js';
import { formatAddress } from './fastcgi/address.js';
import { FpmBackend } from './fpm/fpm-backend.js';
import type { FastCGIServer } from './fastcgi/server.js';
import { createFastCGIFront } from './fastcgi-front.js';
import { HttpFront, type AdminHandler, type HttpApp } from './http/server.js';
import type { Logger } from './log.js';
import { detectPhp } from './php/binary.js';
import { PhpCgiBackend } from './supervisor/php-cgi-backend.js';
import { WorkerPool } from './supervisor/worker-pool.js';
import { createAdminHandler } from './observe/admin.js';
import { VERSION } from './version.js';
import type { RequestObserver, RequestRecord } from './observe/request-record.js';

export interface AppRuntime {
  config: AppConfig;
  backend: Backend;
  fastcgi: FastCGIServer | null;
}

export interface ServerSnapshot {
  version: string;
  startTime: number;
  pools: Array<{ app: AppConfig; status: PoolStatus }>;
}


export class TQServer {
  readonly config: Config;
  readonly apps: ReadonlyMap<string, AppRuntime>;
  readonly http: HttpFront;
  readonly #log: Logger;
  readonly #startTime = Date.now();
  /** Subscribers to finished requests (access log, slow log, metrics). */
  readonly observers: Set<RequestObserver>;
  #stopping: Promise<void> | null = null;
  #stopGraceMs = Infinity;
  #stopStartedAt: number | null = null;

  private constructor(config: Config, apps: Map<string, AppRuntime>, http: HttpFront, log: Logger, observers: Set<RequestObserver>) {
    this.observers = observers;
    this.config = config;
    this.apps = apps;
    this.http = http;
    this.#log = log;
  }

  /** Starts everything; on failure stops what was started and throws. */
  static async start(config: Config, log: Logger): Promise<TQServer> {
    const apps = new Map<string, AppRuntime>();
    const observers = new Set<RequestObserver>();
    const onRequest = (record: RequestRecord) => {
      for (const observer of observers) observer(record);
    };
    let http: HttpFront | null = null;
    const started = { apps, http: null as HttpFront | null };
    try {
      for (const app of config.apps) apps.set(app.name, await startApp(app, config, log, onRequest));
      let server: TQServer | null = null;
      const admin: AdminHandler = createAdminHandler({
        statusPath: config.server.statusPath,
        snapshot: () => server!.snapshot(),
      });
      http = new HttpFront({
        server: config.server,
        apps: [...apps.values()].map(httpApp),
        log,
        serverSoftware: `TQServer/${VERSION}`,
        admin,
        onRequest,
      });
      started.http = http;
      const address = await http.listen();
      server = new TQServer(config, apps, http, log, observers);
      const where = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
      for (const runtime of apps.values()) {
        log.info({ app: runtime.config.name }, `app ${runtime.config.name}: ${where}${runtime.config.path === '/' ? '/' : `${runtime.config.path}/`} -> ${runtime.config.documentRoot}`);
      }
      log.info({ address: where }, `TQServer ${VERSION} listening on ${where} (status: ${where}${config.server.statusPath})`);
      return server;
    } catch (error) {
      await stopAll(started.http, apps, 0);
      throw error;
    }
  }

  snapshot(): ServerSnapshot {
    return {
      version: VERSION,
      startTime: this.#startTime,
      pools: [...this.apps.values()].map((runtime) => ({ app: runtime.config, status: runtime.backend.status() })),
    };
  }

  /**
   * Graceful stop: HTTP and FastCGI fronts finish in-flight requests, then the pools stop. Calling it
   * again with a shorter grace (a second SIGTERM: 0) cuts the running stop short; otherwise it returns
   * the stop in progress.
   */
  stop(graceMs = this.config.server.shutdownTimeoutMs): Promise<void> {
    if (this.#stopping && graceMs >= this.#stopGraceMs) return this.#stopping;
    this.#stopGraceMs = graceMs;
    const started = this.#stopStartedAt ??= Date.now();
    // Every close below is idempotent and honours the shorter grace when called again.
    const run = stopAll(this.http, this.apps, graceMs);
    const all = this.#stopping ? Promise.all([this.#stopping, run]).then(() => {}) : run;
    const stopping: Promise<void> = all.then(() => {
      // One line, from the stop that finished last.
      if (this.#stopping === stopping) this.#log.info({}, `stopped after ${Date.now() - started} ms`);
    });
    this.#stopping = stopping;
    return stopping;
  }
}

function httpApp(runtime: AppRuntime): HttpApp {
  const app = runtime.config;
  return {
    name: app.name,
    path: app.path,
    backend: runtime.backend,
    resolve: {
      documentRoot: app.documentRoot,
      indexFiles: app.indexFiles,
      frontController: app.frontController,
      extensions: app.php.extensions,
    },
  };
}

async function startApp(app: AppConfig, config: Config, log: Logger, onRequest: RequestObserver): Promise<AppRuntime> {
  const backend = app.phpFpm.enabled ? await startFpm(app, config, log) : await startPhpCgi(app, config, log);
  let fastcgi: FastCGIServer | null = null;
  if (app.fastcgi.listen) {
    fastcgi = createFastCGIFront({
      app: app.name,
      documentRoot: app.documentRoot,
      extensions: app.php.extensions,
      backend,
      allowedClients: app.fastcgi.allowedClients,
      log,
      onRequest,
    });
    try {
      await fastcgi.listen(app.fastcgi.listen);
    } catch (error) {
      await backend.stop(0);
      throw error;
    }
    log.info({ app: app.name }, `app ${app.name}: FastCGI front on ${formatAddress(fastcgi.address!)} (for nginx fastcgi_pass)`);
  }
  return { config: app, backend, fastcgi };
}

async function startPhpCgi(app: AppConfig, config: Config, log: Logger): Promise<Backend> {
  const binary = await detectPhp('php-cgi', app.php.binary);
  const p = app.php.pool;
  const pool = new WorkerPool(
    {
      name: app.name,
      binary,
      configFile: app.php.configFile,
      settings: app.php.settings,
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', ...app.php.env },
      cwd: app.documentRoot,
      manager: p.manager,
      maxWorkers: p.maxWorkers,
      startWorkers: p.startWorkers,
      minSpareWorkers: p.minSpareWorkers,
      maxSpareWorkers: p.maxSpareWorkers,
      maxSpawnRate: p.maxSpawnRate,
      idleTimeoutMs: p.idleTimeoutMs,
      maxRequests: p.maxRequests,
      requestTimeoutMs: p.requestTimeoutMs,
      maxWorkerMemoryBytes: p.maxWorkerMemoryBytes,
      queueLimit: p.queueLimit,
      queueTimeoutMs: p.queueTimeoutMs,
      transport: p.transport,
      portRange: p.portRange,
    },
    log.child({ app: app.name }),
  );
  log.info(
    { app: app.name, php: binary.path, version: binary.version.text },
    `app ${app.name}: php-cgi ${binary.version.text} (${binary.path}), pm ${p.manager}, max_workers ${p.maxWorkers}${config.mode === 'dev' ? ', dev mode' : ''}`,
  );
  await pool.start();
  return new PhpCgiBackend(pool);
}

async function startFpm(app: AppConfig, config: Config, log: Logger): Promise<Backend> {
  const backend = new FpmBackend({
    app,
    log: log.child({ app: app.name }),
    mode: config.mode,
    root: config.root,
    processControlTimeoutMs: config.server.shutdownTimeoutMs,
  });
  try {
    await backend.start();
  } catch (error) {
    await backend.stop(0);
    throw error;
  }
  return backend;
}

async function stopAll(http: HttpFront | null, apps: ReadonlyMap<string, AppRuntime>, graceMs: number): Promise<void> {
  const started = Date.now();
  await Promise.all([http?.close(graceMs), ...[...apps.values()].map((runtime) => runtime.fastcgi?.close(graceMs))]);
  const left = Math.max(0, graceMs - (Date.now() - started));
  await Promise.all([...apps.values()].map((runtime) => runtime.backend.stop(left)));
}
