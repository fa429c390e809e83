// The composition root: from a validated Config, start every app's backend and fronts and the HTTP
// server; stop them all gracefully. Nothing else builds components from config.

import type { AppConfig, Config } from './config/load.js';
import type { Backend, PoolStatus } from './backend.js';
import { formatAddress } from './fastcgi/address.js';
import { FpmBackend } from './fpm/fpm-backend.js';
import { HttpFront } from './http/server.js';
import { LiveReload } from './http/live-reload.js';
import type { Logger } from './log.js';
import { LogFiles } from './log-file.js';
import { ServerLogs } from './observe/app-logs.js';
import { PhpCgiBackend } from './supervisor/php-cgi-backend.js';
import { Admin, adminApps } from './observe/admin.js';
import { sweepTempDirs } from './temp-dir.js';
import { VERSION } from './version.js';
import type { RequestObserver, RequestRecord } from './observe/request-record.js';
import { describePlan, planReload, type PlanStep } from './config/reload.js';
import { isDeepStrictEqual } from 'node:util';
import type { LogFile } from './log-file.js';
import { effectiveApp, httpApp, poolSettings, startApp, startBackend, startFastCGIFront, stopAll, type AppRuntime } from './app-runtime.js';

export { SwitchableBackend, type AppRuntime } from './app-runtime.js';

/** What a reload did. */
export interface ReloadResult {
  /** One line per applied step. */
  applied: string[];
  /** Steps that failed (the app keeps running as it was), with why. */
  failed: string[];
  /** Keys that changed but wait for a restart. */
  restartRequired: string[];
}

export interface ServerSnapshot {
  version: string;
  startTime: number;
  pools: Array<{ app: AppConfig; status: PoolStatus }>;
  /** The HTTP front's fast path: requests it answered itself, connections it handed to node:http. */
  http?: { fastPathRequests: number; handoffs: number };
}

export class TQServer {
  #config: Config;
  readonly #apps: Map<string, AppRuntime>;
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
  /** Reloads run one after another. */
  #reloading: Promise<unknown> = Promise.resolve();
  /** Old backends, fronts and log files still draining after a reload; stop() waits for them. */
  readonly #draining = new Set<Promise<void>>();
  readonly #onRequest: RequestObserver;
  /** Dev mode's browser live reload; null in production (the HTTP front then does nothing for it). */
  #liveReload: LiveReload | null = null;

  private constructor(config: Config, apps: Map<string, AppRuntime>, http: HttpFront, log: Logger, observers: Set<RequestObserver>, logs: ServerLogs, logFiles: LogFiles, admin: Admin, onRequest: RequestObserver) {
    this.#onRequest = onRequest;
    this.observers = observers;
    this.admin = admin;
    this.#logs = logs;
    this.logFiles = logFiles;
    this.#config = config;
    this.#apps = apps;
    this.http = http;
    this.#log = log;
  }

  /** The config running now (a reload replaces it). */
  get config(): Config {
    return this.#config;
  }

  get apps(): ReadonlyMap<string, AppRuntime> {
    return this.#apps;
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
    const liveReload = liveReloadFor(config, log);
    try {
      // Before any app makes folders of its own: what a TQServer killed earlier left in /tmp.
      await sweepTempDirs(log);
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
        apps: [...apps.values()].map((runtime) => httpApp(runtime)),
        log,
        serverSoftware: `TQServer/${VERSION}`,
        // With server.admin_listen, status, metrics and health are served there only.
        admin: config.server.adminListen ? undefined : admin.handler,
        onRequest,
        liveReload: liveReload ?? undefined,
      });
      started.http = http;
      const address = await http.listen();
      await admin.start();
      server = new TQServer(config, apps, http, log, observers, logs, logFiles, admin, onRequest);
      server.#liveReload = liveReload;
      const where = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
      for (const runtime of apps.values()) {
        log.info({ app: runtime.config.name }, `app ${runtime.config.name}: ${where}${runtime.config.path === '/' ? '/' : `${runtime.config.path}/`} -> ${runtime.config.documentRoot}`);
      }
      const adminListen = config.server.adminListen;
      const adminAt = !adminListen ? where : 'path' in adminListen ? `${formatAddress(adminListen)} ` : `http://${formatAddress(adminListen)}`;
      log.info({ address: where }, `TQServer ${VERSION} listening on ${where} (dashboard: ${adminAt}${config.server.statusPath}/, metrics: ${adminAt}${config.server.metricsPath})`);
      return server;
    } catch (error) {
      liveReload?.close();
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
      http: { fastPathRequests: this.http.fastPath.requests, handoffs: this.http.fastPath.handoffs },
    };
  }

  /**
   * Applies a new, already validated config as a plan (config/reload.ts): apps added, removed or
   * re-routed; pools resized in place; backends and FastCGI fronts replaced by starting the new one,
   * switching traffic, then draining the old one. A step that fails leaves that app as it was.
   * Only server.host/port (and the header limit, the admin listener) wait for a restart.
   */
  reload(next: Config): Promise<ReloadResult> {
    const run = this.#reloading.then(() => this.#applyReload(next));
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #applyReload(next: Config): Promise<ReloadResult> {
    const result: ReloadResult = { applied: [], failed: [], restartRequired: [] };
    if (this.#stopping) {
      result.failed.push('the server is stopping');
      return result;
    }
    const plan = planReload(this.#config, next);
    if (plan.empty) return result;
    const lines = describePlan(plan);
    const later: Array<() => Promise<void>> = [];
    for (const [index, step] of plan.steps.entries()) {
      try {
        await this.#applyStep(step, next, later, result);
        if (step.kind !== 'restart-required') result.applied.push(lines[index]!);
      } catch (error) {
        const app = 'app' in step ? step.app.name : 'name' in step ? step.name : 'server';
        const message = `${lines[index]}: failed, ${app} keeps running as it was: ${(error as Error).message}`;
        result.failed.push(message);
        this.#log.error({ app }, `reload: ${message}`);
      }
    }
    this.#config = next;
    this.http.setApps([...this.#apps.values()].map((runtime) => httpApp(runtime)));
    this.#syncLiveReload(next);
    // What the new config replaced drains in the background; stop() waits for it.
    for (const drain of later) {
      const running = drain().catch((error: Error) => this.#log.error({}, `reload: draining failed: ${error.message}`));
      const tracked = running.finally(() => this.#draining.delete(tracked));
      this.#draining.add(tracked);
    }
    return result;
  }

  async #applyStep(step: PlanStep, next: Config, later: Array<() => Promise<void>>, result: ReloadResult): Promise<void> {
    const graceMs = next.server.shutdownTimeoutMs;
    const log = this.#log;
    switch (step.kind) {
      case 'restart-required':
        result.restartRequired.push(step.key);
        log.warn({ key: step.key }, `reload: ${step.key} changed; it takes effect at the next restart (${step.why})`);
        return;
      case 'update-server': {
        const s = next.server;
        this.admin.update({ statusPath: s.statusPath, metricsPath: s.metricsPath, allowedClients: s.adminAllowedClients });
        if (!isDeepStrictEqual(this.#config.server.adminListen, s.adminListen)) await this.admin.moveListener(s.adminListen);
        this.http.updateServer(s, s.adminListen ? undefined : this.admin.handler);
        log.level = next.mode === 'dev' && s.logLevel === 'info' ? 'debug' : s.logLevel;
        return;
      }
      case 'add-app': {
        this.#logs.addApp(step.app);
        try {
          this.#apps.set(step.app.name, await startApp(step.app, next, log, this.#onRequest, this.#logs));
        } catch (error) {
          await this.#logs.releaseFiles(this.#logs.detachApp(step.app.name));
          throw error;
        }
        return;
      }
      case 'remove-app': {
        const runtime = this.#apps.get(step.name);
        if (!runtime) return;
        this.#apps.delete(step.name);
        later.push(async () => {
          await runtime.fastcgi?.close(graceMs);
          await runtime.backend.stop(graceMs);
          await this.#logs.releaseFiles(this.#logs.detachApp(step.name));
        });
        return;
      }
      case 'update-route': {
        const runtime = this.#apps.get(step.app.name);
        if (runtime) runtime.config = step.app;
        return;
      }
      case 'resize-pool': {
        const runtime = this.#apps.get(step.app.name);
        if (!runtime) return;
        const backend = runtime.backend;
        if (backend instanceof PhpCgiBackend) backend.pool.reconfigure(poolSettings(step.app));
        else if (backend instanceof FpmBackend) await backend.reload(effectiveApp(step.app, next));
        runtime.config = step.app;
        return;
      }
      case 'replace-backend': {
        const runtime = this.#apps.get(step.app.name);
        if (!runtime) return;
        const oldBackend = runtime.backend;
        // The new backend gets its own log wiring; the old files are released once it has drained.
        const oldFiles: LogFile[] = this.#logs.detachApp(step.app.name);
        let backend: Backend;
        try {
          this.#logs.addApp(step.app);
          backend = await startBackend(step.app, next, log, this.#logs);
        } catch (error) {
          await this.#logs.releaseFiles(this.#logs.detachApp(step.app.name));
          this.#logs.addApp(runtime.config);
          await this.#logs.releaseFiles(oldFiles);
          throw error;
        }
        this.#logs.watch(step.app.name, backend);
        runtime.backend = backend;
        runtime.config = step.app;
        runtime.front.current = this.#logs.backendFor(step.app.name, backend, 'http');
        runtime.fastcgiBackend.current = this.#logs.backendFor(step.app.name, backend, 'fastcgi');
        later.push(async () => {
          await oldBackend.stop(graceMs);
          await this.#logs.releaseFiles(oldFiles);
        });
        return;
      }
      case 'replace-fastcgi-front': {
        const runtime = this.#apps.get(step.app.name);
        if (!runtime) return;
        const old = runtime.fastcgi;
        const sameAddress = old !== null && step.app.fastcgi.listen !== null && isDeepStrictEqual(old.address, step.app.fastcgi.listen);
        // The same address cannot be bound twice: the old front goes first (nginx retries the connect).
        if (old && (sameAddress || step.app.fastcgi.listen === null)) await old.close(graceMs);
        runtime.fastcgi = step.app.fastcgi.listen ? await startFastCGIFront(step.app, runtime, log, this.#onRequest) : null;
        runtime.config = step.app;
        if (old && !sameAddress && step.app.fastcgi.listen !== null) later.push(() => old.close(graceMs));
        return;
      }
      case 'update-logs': {
        const runtime = this.#apps.get(step.app.name);
        const oldFiles = this.#logs.detachApp(step.app.name);
        this.#logs.addApp(step.app);
        if (runtime) runtime.config = step.app;
        await this.#logs.releaseFiles(oldFiles);
        return;
      }
      default: {
        const never: never = step;
        throw new Error(`unknown plan step ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Live reload follows a reloaded config: turned on or off (dev mode and server.live_reload), the
   * document roots watched updated, and the pages open reloaded, since what they show may have changed.
   */
  #syncLiveReload(next: Config): void {
    if (this.#stopping) return;
    const wanted = next.mode === 'dev' && next.server.liveReload;
    if (!wanted) {
      if (!this.#liveReload) return;
      this.#liveReload.close();
      this.#liveReload = null;
      this.http.setLiveReload(undefined);
      this.#log.info({}, 'live reload: off');
      return;
    }
    if (!this.#liveReload) {
      this.#liveReload = liveReloadFor(next, this.#log);
      this.http.setLiveReload(this.#liveReload ?? undefined);
    }
    this.#liveReload?.setRoots(liveReloadRoots(next));
    this.#liveReload?.notify('the configuration was reloaded');
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
    // Live reload streams never end by themselves: closed first, so the HTTP front can drain.
    this.#liveReload?.close();
    // Every close below is idempotent and honours the shorter grace when called again.
    // The log files close after the fronts, so the last requests' lines are in them.
    // The admin endpoints answer until the apps have stopped, so the drain can be watched.
    const run = stopAll(this.http, this.#apps, graceMs)
      .then(() => Promise.all([...this.#draining]))
      .then(() => Promise.all([this.#logs.close(), this.admin.close()]))
      .then(() => {});
    const all = this.#stopping ? Promise.all([this.#stopping, run]).then(() => {}) : run;
    const stopping: Promise<void> = all.then(() => {
      // One line, from the stop that finished last.
      if (this.#stopping === stopping) this.#log.info({}, `stopped after ${Date.now() - started} ms`);
    });
    this.#stopping = stopping;
    return stopping;
  }
}

/** Dev mode's live reload hub watching every app's document root, or null (production, or turned off). */
function liveReloadFor(config: Config, log: Logger): LiveReload | null {
  if (config.mode !== 'dev' || !config.server.liveReload) return null;
  const live = new LiveReload({ log, debounceMs: config.debounceMs });
  live.setRoots(liveReloadRoots(config));
  log.info({}, 'live reload: on (dev mode); HTML pages reload when a file under a document root changes or the configuration is reloaded');
  return live;
}

function liveReloadRoots(config: Config) {
  return config.apps.map((app) => ({ documentRoot: app.documentRoot, extensions: app.php.extensions }));
}
