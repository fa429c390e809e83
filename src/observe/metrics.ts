// Prometheus metrics with prom-client, one registry per TQServer: per-request counters and
// histograms fed by the request observers, and pool, worker and php-fpm upstream figures read
// from the status snapshot when scraped.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricType } from 'prom-client';
import type { ServerSnapshot } from '../app.js';
import { BREAKER_STATES } from '../fpm/breaker.js';
import type { Readiness } from './health.js';
import type { RequestRecord } from './request-record.js';
import { STATUS_CLASSES, statusClassIndex } from './series.js';

export interface MetricsOptions {
  snapshot: () => ServerSnapshot;
  readiness: () => Readiness[];
  /** Also export the Node.js process metrics (process_*, nodejs_*). Default true. */
  processMetrics?: boolean;
}

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/** Waiting for a PHP process: mostly nothing, up to queue_timeout. */
const QUEUE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** PHP's own time and the whole request: a millisecond to request_timeout. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Label values for requests that reached no app or no PHP backend. */
const NO_APP = '';
const NO_BACKEND = 'none';

/**
 * Bound children of one metric, found through nested maps keyed by label value, so a request
 * allocates no label object or key string once its combination has been seen.
 */
class Children<T> {
  readonly #root = new Map<string, unknown>();
  readonly #make: (values: string[]) => T;

  constructor(make: (values: string[]) => T) {
    this.#make = make;
  }

  /** The last lookup: a server mostly answers one combination after another (same app, 2xx, backend). */
  #lastA: string | undefined;
  #lastB: string | undefined;
  #lastC: string | undefined;
  #lastD: string | undefined;
  #last: T | undefined;

  /** The child for these label values (two to four; always as many for one metric). */
  get(a: string, b: string, c?: string, d?: string): T {
    if (this.#last !== undefined && a === this.#lastA && b === this.#lastB && c === this.#lastC && d === this.#lastD) return this.#last;
    const child = this.#find(a, b, c, d);
    this.#lastA = a;
    this.#lastB = b;
    this.#lastC = c;
    this.#lastD = d;
    this.#last = child;
    return child;
  }

  #find(a: string, b: string, c?: string, d?: string): T {
    let level = Children.#next(this.#root, a);
    let key = b;
    if (c !== undefined) {
      level = Children.#next(level, b);
      key = c;
    }
    if (d !== undefined) {
      level = Children.#next(level, c!);
      key = d;
    }
    let child = level.get(key) as T | undefined;
    if (child === undefined) {
      child = this.#make(d !== undefined ? [a, b, c!, d] : c !== undefined ? [a, b, c] : [a, b]);
      level.set(key, child);
    }
    return child;
  }

  static #next(level: Map<string, unknown>, key: string): Map<string, unknown> {
    let next = level.get(key) as Map<string, unknown> | undefined;
    if (!next) {
      next = new Map();
      level.set(key, next);
    }
    return next;
  }
}

/** The labels of one series: names zipped with the values Children was given. */
function labelsOf(names: readonly string[], values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  names.forEach((name, i) => (labels[name] = values[i]!));
  return labels;
}

// prom-client's typings declare MetricType as an enum that its JavaScript does not export: the values.
const COUNTER_TYPE = 'counter' as unknown as MetricType;
const HISTOGRAM_TYPE = 'histogram' as unknown as MetricType;

/** The metric's name as prom-client holds it now (the registry strips "_total" for OpenMetrics). */
function currentName(metric: object): string {
  return (metric as { name: string }).name;
}

/**
 * The per-request counters and histograms count in plain numbers, on children the observer finds
 * through Children; prom-client only renders them when scraped (get()). prom-client's own inc() and
 * observe() turn the label values into an object and a hash key on every call: about a microsecond
 * each, four times a request (issue 8).
 */
class RequestCounter extends Counter<string> {
  readonly #labelNames: readonly string[];
  readonly #series: Array<{ labels: Record<string, string>; value: number }> = [];

  constructor(config: { name: string; help: string; labelNames: string[]; registers: Registry[] }) {
    super(config);
    this.#labelNames = config.labelNames;
  }

  child(values: string[]): { inc(): void } {
    const series = { labels: labelsOf(this.#labelNames, values), value: 0 };
    this.#series.push(series);
    return {
      inc: () => {
        series.value += 1;
      },
    };
  }

  override async get(): ReturnType<Counter<string>['get']> {
    return {
      name: currentName(this),
      help: (this as unknown as { help: string }).help,
      type: COUNTER_TYPE,
      values: this.#series.map((s) => ({ labels: { ...s.labels }, value: s.value })),
      aggregator: 'sum',
      collect: () => {},
    };
  }
}

class RequestHistogram extends Histogram<string> {
  readonly #labelNames: readonly string[];
  readonly #bounds: readonly number[];
  readonly #series: HistogramSeries[] = [];

  constructor(config: { name: string; help: string; labelNames: string[]; buckets: number[]; registers: Registry[] }) {
    super(config);
    this.#labelNames = config.labelNames;
    this.#bounds = config.buckets;
  }

  child(values: string[]): { observe(value: number): void } {
    const series = new HistogramSeries(labelsOf(this.#labelNames, values), this.#bounds);
    this.#series.push(series);
    return series;
  }

  /** prom-client's registry renders histograms from this when it exists; the same values as get(). */
  getForPromString() {
    return this.get();
  }

  /** Buckets cumulative with "le" first, then +Inf, _sum and _count: what prom-client's own get() gives. */
  override async get(): ReturnType<Histogram<string>['get']> {
    const name = currentName(this);
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const series of this.#series) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i]!;
        values.push({ labels: { le: bound, ...series.labels }, value: cumulative, metricName: `${name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: `${name}_bucket` });
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${name}_sum` });
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${name}_count` });
    }
    return { name, help: (this as unknown as { help: string }).help, type: HISTOGRAM_TYPE, values, aggregator: 'sum', collect: () => {} };
  }
}

/** One label combination of a histogram: a count per bucket (not cumulative), the sum, the count. */
class HistogramSeries {
  readonly labels: Record<string, string>;
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(labels: Record<string, string>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    // As prom-client: the first bucket whose upper bound is at least the value; above all of them,
    // only +Inf (the count).
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]! += 1;
        break;
      }
    }
    this.sum += value;
    this.count += 1;
  }
}

export class Metrics {
  readonly registry = new Registry();
  readonly #options: MetricsOptions;
  /** The snapshot of the scrape in progress, read by every collect() of that scrape. */
  #scrape: { snapshot: ServerSnapshot; readiness: Readiness[] } | null = null;
  #rendering: Promise<unknown> = Promise.resolve();
  readonly #counters: Array<{ metric: Counter<string>; name: string }> = [];
  readonly #requests: Children<{ inc(): void }>;
  readonly #errors: Children<{ inc(): void }>;
  readonly #duration: Children<{ observe(value: number): void }>;
  readonly #queue: Children<{ observe(value: number): void }>;
  readonly #php: Children<{ observe(value: number): void }>;

  constructor(options: MetricsOptions) {
    this.#options = options;
    const registers = [this.registry];
    const requests = new RequestCounter({ name: 'tqserver_requests_total', help: 'Requests answered, by app, status class, backend (php-cgi, php-fpm; none for static files and redirects) and front (http, fastcgi).', labelNames: ['app', 'status_class', 'backend', 'front'], registers });
    const errors = new RequestCounter({ name: 'tqserver_request_errors_total', help: 'Requests that failed, by app and stable error code (POOL_QUEUE_FULL, UPSTREAM_DOWN, PHP_REQUEST_TIMEOUT, ...; see docs/errors.md).', labelNames: ['app', 'code'], registers });
    this.#counters.push({ metric: requests, name: 'tqserver_requests_total' }, { metric: errors, name: 'tqserver_request_errors_total' });
    const duration = new RequestHistogram({ name: 'tqserver_request_duration_seconds', help: 'Whole requests, arrival to the last byte sent, by app and kind (php, static, redirect, not-found, admin, rejected).', labelNames: ['app', 'kind'], buckets: LATENCY_BUCKETS, registers });
    const queue = new RequestHistogram({ name: 'tqserver_request_queue_seconds', help: 'PHP requests: time spent waiting for a free PHP process (TQServer\'s queue).', labelNames: ['app', 'backend'], buckets: QUEUE_BUCKETS, registers });
    const php = new RequestHistogram({ name: 'tqserver_request_php_seconds', help: 'PHP requests: time from getting a PHP process to the end of PHP\'s answer.', labelNames: ['app', 'backend'], buckets: LATENCY_BUCKETS, registers });
    this.#requests = new Children((v) => requests.child(v));
    this.#errors = new Children((v) => errors.child(v));
    this.#duration = new Children((v) => duration.child(v));
    this.#queue = new Children((v) => queue.child(v));
    this.#php = new Children((v) => php.child(v));
    this.#pool();
    this.#server();
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The request observer: keep it cheap, it runs once per request. */
  readonly observe = (record: RequestRecord): void => {
    const app = record.app ?? NO_APP;
    const backend = record.backend ?? NO_BACKEND;
    this.#requests.get(app, STATUS_CLASSES[statusClassIndex(record.status)]!, backend, record.front).inc();
    this.#duration.get(app, record.kind).observe(record.durationMs / 1000);
    if (record.phpMs !== null) {
      this.#php.get(app, backend).observe(record.phpMs / 1000);
      this.#queue.get(app, backend).observe((record.queueMs ?? 0) / 1000);
    }
    if (record.error !== null) this.#errors.get(app, record.error).inc();
  };

  /**
   * The exposition text, in Prometheus' text format 0.0.4 or in OpenMetrics 1.0. Scrapes run one at
   * a time: prom-client renames counters for OpenMetrics (it strips "_total" from the metric object
   * itself), so the names are put back before each scrape.
   */
  render(format: 'prometheus' | 'openmetrics'): Promise<{ contentType: string; body: string }> {
    const run = this.#rendering.then(async () => {
      for (const { metric, name } of this.#counters) (metric as unknown as { name: string }).name = name;
      const contentType = format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
      this.registry.setContentType(contentType as typeof PROMETHEUS_CONTENT_TYPE);
      this.#scrape = { snapshot: this.#options.snapshot(), readiness: this.#options.readiness() };
      try {
        return { contentType, body: await this.registry.metrics() };
      } finally {
        this.#scrape = null;
        this.registry.setContentType(PROMETHEUS_CONTENT_TYPE);
      }
    });
    this.#rendering = run.catch(() => {});
    return run;
  }

  #current(): { snapshot: ServerSnapshot; readiness: Readiness[] } {
    return this.#scrape ?? { snapshot: this.#options.snapshot(), readiness: this.#options.readiness() };
  }

  #counter(config: { name: string; help: string; labelNames: string[]; collect?: (this: Counter<string>) => void }): Counter<string> {
    const metric = new Counter({ ...config, registers: [this.registry] });
    this.#counters.push({ metric, name: config.name });
    return metric;
  }

  /** A gauge (or counter) whose values are set from the current snapshot when scraped. */
  #fromSnapshot(
    kind: 'gauge' | 'counter',
    name: string,
    help: string,
    labelNames: string[],
    fill: (set: (labels: Record<string, string>, value: number) => void, scrape: { snapshot: ServerSnapshot; readiness: Readiness[] }) => void,
  ): void {
    const current = () => this.#current();
    if (kind === 'gauge') {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          fill((labels, value) => this.set(labels, value), current());
        },
      });
      return;
    }
    this.#counter({
      name,
      help,
      labelNames,
      collect() {
        // A count kept elsewhere (the pool's): mirrored, so reset and set to it.
        this.reset();
        fill((labels, value) => this.inc(labels, value), current());
      },
    });
  }

  #pool(): void {
    const perPool = (pick: (status: ServerSnapshot['pools'][number]['status']) => number) =>
      (set: (labels: Record<string, string>, value: number) => void, { snapshot }: { snapshot: ServerSnapshot }) => {
        for (const { status } of snapshot.pools) set({ app: status.pool, backend: status.backend }, pick(status));
      };
    const labels = ['app', 'backend'];
    this.#fromSnapshot('gauge', 'tqserver_pool_idle_processes', 'PHP processes waiting for a request (php-fpm: as of its last health check).', labels, perPool((s) => s.idleProcesses));
    this.#fromSnapshot('gauge', 'tqserver_pool_active_processes', 'PHP processes serving a request.', labels, perPool((s) => s.activeProcesses));
    this.#fromSnapshot('gauge', 'tqserver_pool_total_processes', 'PHP processes, idle, active and starting.', labels, perPool((s) => s.totalProcesses));
    this.#fromSnapshot('gauge', 'tqserver_pool_listen_queue', 'Requests waiting for a free PHP process now (TQServer\'s queue).', labels, perPool((s) => s.listenQueue));
    this.#fromSnapshot('gauge', 'tqserver_pool_max_listen_queue', 'Most requests ever waiting at once since the pool started.', labels, perPool((s) => s.maxListenQueue));
    this.#fromSnapshot('gauge', 'tqserver_pool_listen_queue_limit', 'How many requests may wait (queue_limit); more get 503.', labels, perPool((s) => s.listenQueueLen));
    this.#fromSnapshot('gauge', 'tqserver_pool_max_active_processes', 'Most processes busy at once since the pool started.', labels, perPool((s) => s.maxActiveProcesses));
    this.#fromSnapshot('gauge', 'tqserver_pool_max_children', 'The pool\'s process limit (max_workers, pm.max_children).', ['app'], (set, { snapshot }) => {
      for (const { app } of snapshot.pools) set({ app: app.name }, app.php.pool.maxWorkers);
    });
    this.#fromSnapshot('counter', 'tqserver_pool_max_children_reached_total', 'Times the pool wanted more processes than max_workers allows (php-fpm: max children reached).', labels, perPool((s) => s.maxChildrenReached));
    this.#fromSnapshot('counter', 'tqserver_pool_accepted_connections_total', 'Requests handed to a PHP process (php-fpm: accepted conn).', labels, perPool((s) => s.acceptedConn));
    this.#fromSnapshot('counter', 'tqserver_pool_slow_requests_total', 'Requests slower than the slow-log threshold (php-fpm: slow requests).', labels, perPool((s) => s.slowRequests));
    this.#fromSnapshot('counter', 'tqserver_worker_restarts_total', 'php-cgi worker processes ended, by reason: recycled (max_requests), memory, idle, stopped, timeout, aborted, crashed.', ['app', 'reason'], (set, { snapshot }) => {
      for (const { status } of snapshot.pools) {
        if (status.backend !== 'php-cgi') continue;
        for (const [reason, count] of Object.entries(status.restarts)) set({ app: status.pool, reason }, count);
      }
    });
    this.#fromSnapshot('counter', 'tqserver_phpfpm_master_restarts_total', 'Times TQServer restarted a php-fpm master that died.', ['app'], (set, { snapshot }) => {
      for (const { status } of snapshot.pools) if (status.backend === 'php-fpm') set({ app: status.pool }, status.restarts.master ?? 0);
    });
    const upstream = ['app', 'upstream'];
    const perUpstream = (pick: (u: ServerSnapshot['pools'][number]['status']['upstreams'][number]) => number) =>
      (set: (labels: Record<string, string>, value: number) => void, { snapshot }: { snapshot: ServerSnapshot }) => {
        for (const { status } of snapshot.pools) for (const u of status.upstreams) set({ app: status.pool, upstream: u.address }, pick(u));
      };
    this.#fromSnapshot('gauge', 'tqserver_phpfpm_upstream_open_connections', 'Connections open to php-fpm (each pins one child while open).', upstream, perUpstream((u) => u.open));
    this.#fromSnapshot('gauge', 'tqserver_phpfpm_upstream_idle_connections', 'Open connections to php-fpm waiting for a request.', upstream, perUpstream((u) => u.idle));
    this.#fromSnapshot('gauge', 'tqserver_phpfpm_upstream_busy_connections', 'Open connections to php-fpm carrying a request.', upstream, perUpstream((u) => u.busy));
    this.#fromSnapshot('gauge', 'tqserver_phpfpm_upstream_queued_requests', 'Requests waiting for a connection to php-fpm.', upstream, perUpstream((u) => u.queued));
    this.#fromSnapshot('counter', 'tqserver_phpfpm_upstream_requests_total', 'Requests sent to php-fpm.', upstream, perUpstream((u) => u.requests));
    this.#fromSnapshot('counter', 'tqserver_phpfpm_upstream_retries_total', 'Requests retried on a fresh connection after a stale kept-alive one failed.', upstream, perUpstream((u) => u.retries));
    this.#fromSnapshot('gauge', 'tqserver_phpfpm_breaker_state', 'The circuit breaker of each php-fpm upstream: 1 for its current state (closed: requests flow; open: answered 503 at once; half-open: one trial).', [...upstream, 'state'], (set, { snapshot }) => {
      for (const { status } of snapshot.pools) {
        for (const u of status.upstreams) for (const state of BREAKER_STATES) set({ app: status.pool, upstream: u.address, state }, u.breaker === state ? 1 : 0);
      }
    });
  }

  #server(): void {
    this.#fromSnapshot('gauge', 'tqserver_app_ready', 'Whether the app can take a request now (what /readyz answers for it): 1 or 0.', ['app', 'backend'], (set, { readiness }) => {
      for (const r of readiness) set({ app: r.app, backend: r.backend }, r.ready ? 1 : 0);
    });
    this.#fromSnapshot('gauge', 'tqserver_build_info', 'TQServer\'s version, as a label; the value is 1.', ['version'], (set, { snapshot }) => set({ version: snapshot.version }, 1));
    this.#fromSnapshot('counter', 'tqserver_http_fast_path_requests_total', 'Requests the HTTP front parsed and answered itself, without node:http (plain GET and HEAD, bodies with a Content-Length).', [], (set, { snapshot }) => {
      if (snapshot.http) set({}, snapshot.http.fastPathRequests);
    });
    this.#fromSnapshot('counter', 'tqserver_http_handoffs_total', 'Connections the fast path handed to node:http for good: their next request was of another kind (chunked, HTTP/1.0, Expect, the status page, ...).', [], (set, { snapshot }) => {
      if (snapshot.http) set({}, snapshot.http.handoffs);
    });
    this.#fromSnapshot('gauge', 'tqserver_start_time_seconds', 'When TQServer started, seconds since the epoch.', [], (set, { snapshot }) => set({}, snapshot.startTime / 1000));
  }
}
