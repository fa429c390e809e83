// Requests TQServer answers itself, never occupying a PHP worker: the status page in php-fpm's
// formats and the live dashboard, Prometheus metrics, /healthz and /readyz. Allowed clients only
// (loopback by default); on the main port, or on a separate admin address when one is configured.

import { randomBytes } from 'node:crypto';
import { lstatSync, unlinkSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AppRuntime, ServerSnapshot } from '../app.js';
import type { Backend } from '../backend.js';
import { formatAddress, type Address } from '../fastcgi/address.js';
import { ClientAllowList } from '../fastcgi/allow-list.js';
import { sendError } from '../http/error-page.js';
import { normalizeTarget } from '../http/path.js';
import type { AdminHandler } from '../http/server.js';
import type { Logger } from '../log.js';
import { dashboardCsp, renderDashboard } from './dashboard.js';
import { occupancyOf, readinessOf, type Readiness } from './health.js';
import { Metrics } from './metrics.js';
import type { RequestRecord } from './request-record.js';
import { SeriesRecorder } from './series-recorder.js';
import type { Occupancy, SeriesView, SlowRequest, Summary } from './series.js';
import { renderOpenMetrics, renderText, renderXml, statusDocument } from './status.js';

export const HEALTHZ_PATH = '/healthz';
export const READYZ_PATH = '/readyz';

export interface AdminApp {
  name: string;
  backend: Backend;
  maxWorkers: number;
  /** Requests at least this slow (ms) are listed on the dashboard. */
  slowThresholdMs: number;
}

/** Without a slow log (slow_log.threshold 0), the dashboard lists requests over this. */
export const DEFAULT_SLOW_THRESHOLD_MS = 1000;

/** What the admin endpoints need to know of each running app. */
export function adminApps(runtimes: Iterable<AppRuntime>): AdminApp[] {
  return [...runtimes].map(({ config, backend }) => ({
    name: config.name,
    backend,
    maxWorkers: config.php.pool.maxWorkers,
    slowThresholdMs: config.slowLog.thresholdMs > 0 ? config.slowLog.thresholdMs : DEFAULT_SLOW_THRESHOLD_MS,
  }));
}

export interface AdminOptions {
  statusPath: string;
  metricsPath: string;
  snapshot: () => ServerSnapshot;
  apps: () => Iterable<AdminApp>;
  /** Addresses or CIDR ranges, or 'any'. Default: loopback. Not applied on a unix socket. */
  allowedClients?: readonly string[] | 'any';
  /** Serve the admin endpoints here instead of on the main port. */
  listen?: Address | null;
  log: Logger;
  /** Export the Node.js process metrics too. Default true. */
  processMetrics?: boolean;
  clock?: () => number;
}

/** The names in a query string ("json&full" -> {json, full}); a malformed escape is kept as written. */
function flagSet(query: string): Set<string> {
  return new Set(
    query.split('&').map((part) => {
      const name = part.split('=')[0] ?? '';
      try {
        return decodeURIComponent(name);
      } catch {
        return name;
      }
    }),
  );
}

/** The value of `name=` in a query string, or null. */
function queryValue(query: string, name: string): string | null {
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if ((eq < 0 ? part : part.slice(0, eq)) === name) return eq < 0 ? '' : part.slice(eq + 1);
  }
  return null;
}

/** What the dashboard polls: the full status plus the time series, summaries, slow requests and readiness. */
export interface DashboardDocument extends Record<string, unknown> {
  now: number;
  health: Readiness[];
  series: { resolutionMs: number; windowMs: number; apps: Record<string, SeriesView> };
  summary: Record<string, { last10s: Summary; last60s: Summary }>;
  slow: Record<string, SlowRequest[]>;
  slowThresholdMs: Record<string, number>;
  /** Each pool's occupancy now (for php-fpm from TQServer's own connections, which are live). */
  occupancy: Record<string, Occupancy>;
}

export class Admin {
  readonly metrics: Metrics;
  readonly recorder: SeriesRecorder;
  #options: AdminOptions;
  #allow: ClientAllowList | null;
  readonly #clock: () => number;
  #server: http.Server | null = null;
  #unixSocket = false;
  #started = false;

  constructor(options: AdminOptions) {
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    const allowed = options.allowedClients ?? ['127.0.0.0/8', '::1'];
    this.#allow = allowed === 'any' ? null : new ClientAllowList(allowed);
    this.metrics = new Metrics({ snapshot: options.snapshot, readiness: () => this.readiness(), processMetrics: options.processMetrics ?? true });
    this.recorder = new SeriesRecorder({ apps: options.apps, clock: this.#clock });
  }

  /** A config reload: new paths and allowed clients (the separate admin listener needs a restart). */
  update(changes: Pick<AdminOptions, 'statusPath' | 'metricsPath' | 'allowedClients'>): void {
    this.#options = { ...this.#options, ...changes };
    const allowed = changes.allowedClients ?? ['127.0.0.0/8', '::1'];
    this.#allow = allowed === 'any' ? null : new ClientAllowList(allowed);
  }

  /** Feeds metrics and the dashboard's series; one observer for TQServer.observers. */
  readonly observe = (record: RequestRecord): void => {
    this.metrics.observe(record);
    this.recorder.observe(record);
  };

  readiness(): Readiness[] {
    return [...this.#options.apps()].map((app) => readinessOf(app.name, app.backend));
  }

  /** Where the separate admin listener is, when one is configured and started. */
  get address(): AddressInfo | string | null {
    return this.#server?.address() ?? null;
  }

  /** Starts sampling, and the separate admin listener when configured. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.recorder.start();
    await this.#listen();
  }

  /** A config reload moved server.admin_listen (or turned it on or off): the listener follows. */
  async moveListener(listen: Address | null): Promise<void> {
    await this.#closeListener();
    this.#options = { ...this.#options, listen };
    if (this.#started) await this.#listen();
  }

  async #listen(): Promise<void> {
    const listen = this.#options.listen;
    if (!listen) return;
    const server = http.createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (request, response) => {
      const target = normalizeTarget(request.url ?? '/');
      if (!target.ok) {
        sendError(request, response, 400, 'The request path is not valid.');
        return;
      }
      if (!this.handler(request, response, target.path, target.query)) sendError(request, response, 404, 'Not an admin endpoint.');
    });
    this.#unixSocket = 'path' in listen;
    if ('path' in listen) removeStaleSocket(listen.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen('path' in listen ? { path: listen.path } : { host: listen.host, port: listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.#options.log.error({ err: error.message }, `admin listener error: ${error.message}`));
    this.#server = server;
    this.#options.log.info({ address: formatAddress(listen) }, `status, metrics and health on ${formatAddress(listen)} (not on the main port)`);
  }

  /** Stops sampling and closes the admin listener. Idempotent. */
  async close(): Promise<void> {
    this.recorder.stop();
    await this.#closeListener();
  }

  async #closeListener(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /** Which endpoint a path is, or null when it is none of them. */
  #endpoint(path: string): 'status' | 'dashboard' | 'metrics' | 'healthz' | 'readyz' | null {
    const { statusPath, metricsPath } = this.#options;
    const dashboardPath = statusPath === '/' ? null : `${statusPath}/`;
    return path === statusPath ? 'status' : path === dashboardPath ? 'dashboard' : path === metricsPath ? 'metrics' : path === HEALTHZ_PATH ? 'healthz' : path === READYZ_PATH ? 'readyz' : null;
  }

  /** The handler the HTTP front (or the admin listener) calls for every request; false: not ours. */
  readonly handler: AdminHandler = Object.assign(
    (request: IncomingMessage, response: ServerResponse, path: string, query: string) => this.#handle(request, response, path, query),
    { claims: (path: string) => this.#endpoint(path) !== null },
  );

  #handle(request: IncomingMessage, response: ServerResponse, path: string, query: string): boolean {
    const endpoint = this.#endpoint(path);
    if (endpoint === null) return false;
    // A unix socket has no client address; its file permissions decide who connects.
    const onSocket = this.#unixSocket && request.socket.remoteAddress === undefined;
    if (this.#allow && !onSocket && !this.#allow.allows(request.socket.remoteAddress ?? '')) {
      sendError(request, response, 403, 'Status, metrics and health answer allowed clients only (server.admin_allowed_clients).');
      return true;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': '0' });
      response.end();
      return true;
    }
    const head = request.method === 'HEAD';
    switch (endpoint) {
      case 'status':
        this.#status(request, response, query, head);
        return true;
      case 'dashboard':
        this.#dashboard(response, head);
        return true;
      case 'metrics':
        this.#metrics(request, response, query, head);
        return true;
      case 'healthz':
        respond(response, head, 200, 'text/plain; charset=utf-8', 'ok\n');
        return true;
      case 'readyz': {
        const apps = this.readiness();
        const ready = apps.every((app) => app.ready);
        const notReady = apps.filter((app) => !app.ready);
        const body = `${JSON.stringify({ status: ready ? 'ready' : 'not ready', ...(ready ? {} : { reason: notReady.map((a) => `${a.app}: ${a.reason}`).join('; ') }), apps })}\n`;
        respond(response, head, ready ? 200 : 503, 'application/json', body);
        return true;
      }
      default: {
        const never: never = endpoint;
        return never;
      }
    }
  }

  /** The status document with the dashboard's series after `sinceMs` (all of the window when null). */
  dashboardDocument(sinceMs: number | null): DashboardDocument {
    const now = this.#clock();
    const snapshot = this.#options.snapshot();
    const series = this.recorder.series;
    const apps: DashboardDocument['series']['apps'] = {};
    const summary: DashboardDocument['summary'] = {};
    const slow: DashboardDocument['slow'] = {};
    const slowThresholdMs: DashboardDocument['slowThresholdMs'] = {};
    const occupancy: DashboardDocument['occupancy'] = {};
    for (const app of this.#options.apps()) occupancy[app.name] = occupancyOf(app.backend, app.maxWorkers);
    let resolutionMs = 1000;
    let windowMs = 600_000;
    for (const { app } of snapshot.pools) {
      const s = series.app(app.name);
      resolutionMs = s.resolutionMs;
      windowMs = s.windowMs;
      apps[app.name] = s.view(now, sinceMs ?? -Infinity);
      summary[app.name] = { last10s: s.summary(now, 10_000), last60s: s.summary(now, 60_000) };
      slow[app.name] = s.slow(now);
      slowThresholdMs[app.name] = s.slowThresholdMs;
    }
    return { ...statusDocument(snapshot, true, now), now, health: this.readiness(), series: { resolutionMs, windowMs, apps }, summary, slow, slowThresholdMs, occupancy };
  }

  #status(request: IncomingMessage, response: ServerResponse, query: string, head: boolean): void {
    const flags = flagSet(query);
    const full = flags.has('full');
    if (flags.has('html') && !flags.has('json')) {
      this.#dashboard(response, head);
      return;
    }
    const now = this.#clock();
    if (flags.has('json')) {
      const series = queryValue(query, 'series');
      if (series !== null) {
        const since = series === '' ? null : Number(series);
        if (since !== null && !Number.isFinite(since)) {
          sendError(request, response, 400, 'series= takes a time in epoch milliseconds.');
          return;
        }
        respond(response, head, 200, 'application/json', `${JSON.stringify(this.dashboardDocument(since))}\n`);
        return;
      }
      respond(response, head, 200, 'application/json', `${JSON.stringify(statusDocument(this.#options.snapshot(), full, now))}\n`);
      return;
    }
    const snapshot = this.#options.snapshot();
    // php-fpm's format switches: ?json, ?xml, ?openmetrics; plain text otherwise.
    if (flags.has('xml')) respond(response, head, 200, 'text/xml; charset=utf-8', renderXml(snapshot, full, now));
    else if (flags.has('openmetrics')) respond(response, head, 200, 'application/openmetrics-text; version=1.0.0; charset=utf-8', renderOpenMetrics(snapshot, now));
    else respond(response, head, 200, 'text/plain; charset=utf-8', renderText(snapshot, full, now));
  }

  #dashboard(response: ServerResponse, head: boolean): void {
    const nonce = randomBytes(16).toString('base64');
    const initial = this.dashboardDocument(null);
    const body = renderDashboard({
      version: `v${String(initial.version)}`,
      initial,
      fallbackText: renderText(this.#options.snapshot(), true, initial.now),
      nonce,
      metricsPath: this.#options.metricsPath,
    });
    respond(response, head, 200, 'text/html; charset=utf-8', body, {
      'Content-Security-Policy': dashboardCsp(nonce),
      'Referrer-Policy': 'no-referrer',
    });
  }

  #metrics(request: IncomingMessage, response: ServerResponse, query: string, head: boolean): void {
    // Prometheus asks for OpenMetrics first in its Accept header; ?openmetrics asks by hand.
    const accept = String(request.headers.accept ?? '');
    const format = flagSet(query).has('openmetrics') || accept.includes('application/openmetrics-text') ? 'openmetrics' : 'prometheus';
    this.metrics.render(format).then(
      ({ contentType, body }) => respond(response, head, 200, contentType, body),
      (error: unknown) => {
        this.#options.log.error({ err: error instanceof Error ? error.stack : String(error) }, `metrics: ${error instanceof Error ? error.message : String(error)}`);
        sendError(request, response, 500, 'The metrics could not be collected; see the server log.');
      },
    );
  }
}

function respond(response: ServerResponse, head: boolean, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  if (response.destroyed) return;
  response.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': String(Buffer.byteLength(body)),
    ...extra,
  });
  response.end(head ? undefined : body);
}

/** A unix socket left by a TQServer that did not stop cleanly is removed; any other file is kept (listen then fails). */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // not there: nothing to remove
  }
}
