// The composition root: from a validated Config, start every app's backend and fronts and the HTTP
// server; stop them all gracefully. Nothing else builds components from config.

import type { AppConfig, Config } from './config/load.js';
import type { Backend, PoolStatus } from './backend.js';
import { formatAddress } from './fastcgi/address.js';
import { FpmBackend } from './fpm/fpm-backend.js';
import type { FastCGIServer } from './fastcgi/server.js';
import { createFastCGIFront } from './fastcgi-front.js';
import { HttpFront, type HttpApp } from './http/server.js';
import type { Logger } from './log.js';
import { LogFiles } from './log-file.js';
import { ServerLogs } from './observe/app-logs.js';
import { detectPhp } from './php/binary.js';
import { PhpCgiBackend } from './supervisor/php-cgi-backend.js';
import { WorkerPool } from './supervisor/worker-pool.js';
import { Admin, adminApps } from './observe/admin.js';
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
  /** Every log file open in this process (SIGUSR1 reopens them: logFiles.reopenAll()). */
  readonly logFiles: LogFiles;
  readonly #logs: ServerLogs;
  /** Status page, dashboard, metrics and health (src/observe/admin.ts). */
  readonly admin: Admin;
  #stopping: Promise<void> | null = null;
  #stopGraceMs = Infinity;
  #stopStartedAt: number | null = null;

  private constructor(config: Config, apps: Map<string, AppRuntime>, http: HttpFront, log: Logger, observers: Set<RequestObserver>, logs: ServerLogs, logFiles: LogFiles, admin: Admin) {
    this.observers = observers;
    this.admin = admin;
    this.#logs = logs;
    this.logFiles = logFiles;
    this.config = config;
    this.apps = apps;
    this.http = http;
    this.#log = log;
  }

  /**
   * Starts everything; on failure stops what was started and throws. The apps' log files are opened
   * through `logFiles` (the CLI passes the registry that also holds the server log).
   */
  static async start(config: Config, log: Logger, options: { logFiles?: LogFiles } = {}): Promise<TQServer> {
    const apps = new Map<string, AppRuntime>();
    const logFiles =
      options.logFiles ?? new LogFiles({ onError: (file, error) => log.error({ file: file.path }, `cannot write the log file ${file.path}: ${error.message}`) });
    const logs = new ServerLogs(logFiles, log);
    const observers = new Set<RequestObserver>([logs.observe]);
    const onRequest = (record: RequestRecord) => {
      for (const observer of observers) observer(record);
    };
    let http: HttpFront | null = null;
    const started = { apps, http: null as HttpFront | null, admin: null as Admin | null };
    try {
      for (const app of config.apps) {
        logs.addApp(app);
        apps.set(app.name, await startApp(app, config, log, onRequest, logs));
      }
      let server: TQServer | null = null;
      const admin = new Admin({
        statusPath: config.server.statusPath,
        metricsPath: config.server.metricsPath,
        allowedClients: config.server.adminAllowedClients,
        listen: config.server.adminListen,
        snapshot: () => server!.snapshot(),
        apps: () => adminApps(apps.values()),
        log,
      });
      started.admin = admin;
      observers.add(admin.observe);
      http = new HttpFront({
        server: config.server,
        apps: [...apps.values()].map((runtime) => httpApp(runtime, logs)),
        log,
        serverSoftware: `TQServer/${VERSION}`,
        // With server.admin_listen, status, metrics and health are served there only.
        admin: config.server.adminListen ? undefined : admin.handler,
        onRequest,
      });
      started.http = http;
      const address = await http.listen();
      await admin.start();
      server = new TQServer(config, apps, http, log, observers, logs, logFiles, admin);
      const where = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
      for (const runtime of apps.values()) {
        log.info({ app: runtime.config.name }, `app ${runtime.config.name}: ${where}${runtime.config.path === '/' ? '/' : `${runtime.config.path}/`} -> ${runtime.config.documentRoot}`);
      }
      const adminListen = config.server.adminListen;
      const adminAt = !adminListen ? where : 'path' in adminListen ? `${formatAddress(adminListen)} ` : `http://${formatAddress(adminListen)}`;
      log.info({ address: where }, `TQServer ${VERSION} listening on ${where} (dashboard: ${adminAt}${config.server.statusPath}/, metrics: ${adminAt}${config.server.metricsPath})`);
      return server;
    } catch (error) {
      await stopAll(started.http, apps, 0);
      await started.admin?.close();
      await logs.close();
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
    // The log files close after the fronts, so the last requests' lines are in them.
    // The admin endpoints answer until the apps have stopped, so the drain can be watched.
    const run = stopAll(this.http, this.apps, graceMs).then(() => Promise.all([this.#logs.close(), this.admin.close()])).then(() => {});
    const all = this.#stopping ? Promise.all([this.#stopping, run]).then(() => {}) : run;
    const stopping: Promise<void> = all.then(() => {
      // One line, from the stop that finished last.
      if (this.#stopping === stopping) this.#log.info({}, `stopped after ${Date.now() - started} ms`);
    });
    this.#stopping = stopping;
    return stopping;
  }
}

function httpApp(runtime: AppRuntime, logs: ServerLogs): HttpApp {
  const app = runtime.config;
  return {
    name: app.name,
    path: app.path,
    backend: logs.backendFor(app.name, runtime.backend, 'http'),
    resolve: {
      documentRoot: app.documentRoot,
      indexFiles: app.indexFiles,
      frontController: app.frontController,
      extensions: app.php.extensions,
    },
  };
}

async function startApp(app: AppConfig, config: Config, log: Logger, onRequest: RequestObserver, logs: ServerLogs): Promise<AppRuntime> {
  const backend = app.phpFpm.enabled ? await startFpm(app, config, log) : await startPhpCgi(app, config, log, logs);
  logs.watch(app.name, backend);
  let fastcgi: FastCGIServer | null = null;
  if (app.fastcgi.listen) {
    fastcgi = createFastCGIFront({
      app: app.name,
      documentRoot: app.documentRoot,
      extensions: app.php.extensions,
      backend: logs.backendFor(app.name, backend, 'fastcgi'),
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

async function startPhpCgi(app: AppConfig, config: Config, log: Logger, logs: ServerLogs): Promise<Backend> {
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
      onWorkerOutput: logs.workerOutput(app.name),
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
