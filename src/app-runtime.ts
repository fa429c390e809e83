// One app's running parts, started from its config: the PHP backend (php-cgi pool or php-fpm) behind
// a switchable reference each front holds, and the FastCGI front when the app has one; and stopping
// them all. The composition root (app.ts) calls these at start and on a reload.

import type { AppConfig, Config } from './config/load.js';
import type { Backend, PoolStatus } from './backend.js';
import { formatAddress } from './fastcgi/address.js';
import { FpmBackend } from './fpm/fpm-backend.js';
import type { FastCGIServer } from './fastcgi/server.js';
import { createFastCGIFront } from './fastcgi-front.js';
import type { HttpApp, HttpFront } from './http/server.js';
import type { Logger } from './log.js';
import type { ServerLogs } from './observe/app-logs.js';
import { detectPhp } from './php/binary.js';
import { PhpCgiBackend } from './supervisor/php-cgi-backend.js';
import { WorkerPool } from './supervisor/worker-pool.js';
import type { RequestObserver } from './observe/request-record.js';
import type { RequestController, RequestOptions, ResponseHandler } from './fastcgi/client.js';
import type { RequestInfo } from './supervisor/worker.js';

export interface AppRuntime {
  config: AppConfig;
  /** The PHP backend itself (status, readiness). */
  backend: Backend;
  /** What the HTTP front dispatches to; a reload that replaces the backend switches it here. */
  front: SwitchableBackend;
  /** The same for the FastCGI front (which passes PHP's stderr on to nginx). */
  fastcgiBackend: SwitchableBackend;
  fastcgi: FastCGIServer | null;
}

/**
 * The backend reference both fronts hold. A reload that replaces an app's backend (php-cgi <->
 * php-fpm, new binary, ini or env) starts the new one, points this at it, then drains the old one:
 * requests already running finish where they are, new ones go to the new backend.
 */
export class SwitchableBackend implements Backend {
  current: Backend;

  constructor(current: Backend) {
    this.current = current;
  }

  get kind(): Backend['kind'] {
    return this.current.kind;
  }

  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo): RequestController {
    return this.current.dispatch(options, handler, info);
  }

  status(): PoolStatus {
    return this.current.status();
  }

  stop(graceMs: number): Promise<void> {
    return this.current.stop(graceMs);
  }
}

export function httpApp(runtime: AppRuntime): HttpApp {
  const app = runtime.config;
  return {
    name: app.name,
    path: app.path,
    backend: runtime.front,
    resolve: {
      documentRoot: app.documentRoot,
      indexFiles: app.indexFiles,
      frontController: app.frontController,
      extensions: app.php.extensions,
    },
  };
}

/**
 * In dev mode PHP looks at a script's timestamp on every request (OPcache would otherwise keep the
 * old code for opcache.revalidate_freq seconds), so an edit shows on the next request. Settings the
 * app gives itself win.
 */
const DEV_SETTINGS = { 'opcache.validate_timestamps': 1, 'opcache.revalidate_freq': 0 } as const;

export function effectiveApp(app: AppConfig, config: Config): AppConfig {
  if (config.mode !== 'dev') return app;
  return { ...app, php: { ...app.php, settings: { ...DEV_SETTINGS, ...app.php.settings } } };
}

export async function startBackend(configured: AppConfig, config: Config, log: Logger, logs: ServerLogs): Promise<Backend> {
  const app = effectiveApp(configured, config);
  return app.phpFpm.enabled ? await startFpm(app, config, log) : await startPhpCgi(app, config, log, logs);
}

export async function startApp(app: AppConfig, config: Config, log: Logger, onRequest: RequestObserver, logs: ServerLogs): Promise<AppRuntime> {
  const backend = await startBackend(app, config, log, logs);
  logs.watch(app.name, backend);
  const runtime: AppRuntime = {
    config: app,
    backend,
    front: new SwitchableBackend(logs.backendFor(app.name, backend, 'http')),
    fastcgiBackend: new SwitchableBackend(logs.backendFor(app.name, backend, 'fastcgi')),
    fastcgi: null,
  };
  if (app.fastcgi.listen) {
    try {
      runtime.fastcgi = await startFastCGIFront(app, runtime, log, onRequest);
    } catch (error) {
      await backend.stop(0);
      throw error;
    }
  }
  return runtime;
}

export async function startFastCGIFront(app: AppConfig, runtime: AppRuntime, log: Logger, onRequest: RequestObserver): Promise<FastCGIServer> {
  const fastcgi = createFastCGIFront({
    app: app.name,
    documentRoot: app.documentRoot,
    extensions: app.php.extensions,
    backend: runtime.fastcgiBackend,
    allowedClients: app.fastcgi.allowedClients,
    log,
    onRequest,
  });
  await fastcgi.listen(app.fastcgi.listen!);
  log.info({ app: app.name }, `app ${app.name}: FastCGI front on ${formatAddress(fastcgi.address!)} (for nginx fastcgi_pass)`);
  return fastcgi;
}

/** The pool settings a running php-cgi pool takes in place on a reload. */
export function poolSettings(app: AppConfig) {
  const p = app.php.pool;
  return {
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
  };
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
      ...poolSettings(app),
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

export async function stopAll(http: HttpFront | null, apps: ReadonlyMap<string, AppRuntime>, graceMs: number): Promise<void> {
  const started = Date.now();
  await Promise.all([http?.close(graceMs), ...[...apps.values()].map((runtime) => runtime.fastcgi?.close(graceMs))]);
  const left = Math.max(0, graceMs - (Date.now() - started));
  await Promise.all([...apps.values()].map((runtime) => runtime.backend.stop(left)));
}
