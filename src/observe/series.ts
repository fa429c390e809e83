// A short in-memory time series per app for the dashboard: requests per second by status class,
// latency percentiles, where the time went (queue wait, PHP), pool occupancy, and the slowest
// recent requests. Fixed-size rings of typed arrays, so recording a request allocates nothing.
// Pure: times come in with the data; the sampler that feeds occupancy lives in series-recorder.ts.

import type { RequestRecord } from './request-record.js';

/** Lower edge of the first latency bin, milliseconds; faster requests land in bin 0. */
const LATENCY_MIN_MS = 0.05;
/** Each bin is this much wider than the one before: values are known within about ±10%. */
const LATENCY_GROWTH = 1.2;
const LOG_GROWTH = Math.log(LATENCY_GROWTH);
/** Enough bins to reach past 120 s; slower requests land in the last. */
export const LATENCY_BINS = Math.ceil(Math.log(120_000 / LATENCY_MIN_MS) / LOG_GROWTH) + 1;

/** Status classes counted per slot: 1xx-5xx, and "other" for anything else (0 when no answer was sent). */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** The index of a status code's class in STATUS_CLASSES. */
export function statusClassIndex(status: number): number {
  const hundreds = Math.floor(status / 100);
  return hundreds >= 1 && hundreds <= 5 ? hundreds - 1 : 5;
}

/** The bin a latency falls in. */
export function latencyBin(ms: number): number {
  if (!(ms > LATENCY_MIN_MS)) return 0;
  const bin = Math.floor(Math.log(ms / LATENCY_MIN_MS) / LOG_GROWTH) + 1;
  return bin < LATENCY_BINS ? bin : LATENCY_BINS - 1;
}

/** The value a bin stands for: the geometric middle of its edges (bin 0: its upper edge). */
export function binValueMs(bin: number): number {
  if (bin <= 0) return LATENCY_MIN_MS;
  return LATENCY_MIN_MS * LATENCY_GROWTH ** (bin - 0.5);
}

/**
 * The q-quantile (0..1) of the latencies counted in `bins` from `offset` (LATENCY_BINS wide), or
 * null when nothing was counted. Nearest rank, as Prometheus' histogram_quantile is not: a bin
 * tells no more than its own value.
 */
export function quantileOfBins(bins: Uint32Array, offset: number, count: number, q: number): number | null {
  if (count === 0) return null;
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let bin = 0; bin < LATENCY_BINS; bin++) {
    seen += bins[offset + bin]!;
    if (seen >= rank) return binValueMs(bin);
  }
  return binValueMs(LATENCY_BINS - 1);
}

export interface Occupancy {
  idle: number;
  active: number;
  queued: number;
  total: number;
  /** The pool's process limit (max_workers / pm.max_children). */
  limit: number;
}

export interface SlowRequest {
  id: string;
  /** Epoch milliseconds when it arrived. */
  at: number;
  method: string;
  uri: string;
  status: number;
  durationMs: number;
  queueMs: number | null;
  phpMs: number | null;
  workerPid: number | null;
  script: string | null;
  error: string | null;
}

/** Columns of one app's series, oldest first; `t` is each slot's start in epoch milliseconds. */
export interface SeriesView {
  t: number[];
  /** Requests per second that ended in the slot, per status class. */
  rps: Record<StatusClass, number[]>;
  /** Latency percentiles of the requests that ended in the slot, ms (null: none ended). */
  p50: Array<number | null>;
  p95: Array<number | null>;
  p99: Array<number | null>;
  /** Mean wait for a PHP process and mean time in PHP of the PHP requests in the slot, ms. */
  queueMs: Array<number | null>;
  phpMs: Array<number | null>;
  /** Pool occupancy sampled in the slot (null: no sample, e.g. the sampler had not run yet). */
  idle: Array<number | null>;
  active: Array<number | null>;
  queued: Array<number | null>;
  total: Array<number | null>;
  limit: Array<number | null>;
}

export interface Summary {
  /** Over the last `windowMs`: requests per second, its share of 5xx, latency percentiles (ms). */
  windowMs: number;
  requests: number;
  rps: number;
  errorRatio: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface AppSeriesOptions {
  /** Slot width, milliseconds. Default 1000. */
  resolutionMs?: number;
  /** How many slots are kept (the window is resolutionMs * slots). Default 600 (10 minutes). */
  slots?: number;
  /** Requests at least this slow (ms) are candidates for the slow list. Default 1000. */
  slowThresholdMs?: number;
  /** How many slow requests are kept. Default 20. */
  slowKeep?: number;
}

/** One app's rings. Requests are filed by when they ended; occupancy by when it was sampled. */
export class AppSeries {
  readonly resolutionMs: number;
  readonly slots: number;
  slowThresholdMs: number;
  readonly #slowKeep: number;
  /** The slot number (epoch ms / resolution) each ring position holds; -1 when unused. */
  readonly #slotOf: Float64Array;
  readonly #byClass: Uint32Array;
  readonly #count: Uint32Array;
  readonly #bins: Uint32Array;
  readonly #phpCount: Uint32Array;
  readonly #queueSum: Float64Array;
  readonly #phpSum: Float64Array;
  readonly #sampled: Uint8Array;
  readonly #idle: Float64Array;
  readonly #active: Float64Array;
  readonly #queued: Float64Array;
  readonly #total: Float64Array;
  readonly #limit: Float64Array;
  /** Slowest first. */
  #slow: SlowRequest[] = [];

  constructor(options: AppSeriesOptions = {}) {
    this.resolutionMs = options.resolutionMs ?? 1000;
    this.slots = options.slots ?? 600;
    this.slowThresholdMs = options.slowThresholdMs ?? 1000;
    this.#slowKeep = options.slowKeep ?? 20;
    const n = this.slots;
    this.#slotOf = new Float64Array(n).fill(-1);
    this.#byClass = new Uint32Array(n * STATUS_CLASSES.length);
    this.#count = new Uint32Array(n);
    this.#bins = new Uint32Array(n * LATENCY_BINS);
    this.#phpCount = new Uint32Array(n);
    this.#queueSum = new Float64Array(n);
    this.#phpSum = new Float64Array(n);
    this.#sampled = new Uint8Array(n);
    this.#idle = new Float64Array(n);
    this.#active = new Float64Array(n);
    this.#queued = new Float64Array(n);
    this.#total = new Float64Array(n);
    this.#limit = new Float64Array(n);
  }

  get windowMs(): number {
    return this.resolutionMs * this.slots;
  }

  /** The ring position for a time, cleared first when it still holds an older slot. */
  #position(timeMs: number): number {
    const slot = Math.floor(timeMs / this.resolutionMs);
    const at = slot % this.slots;
    if (this.#slotOf[at] !== slot) {
      // A slot older than what it holds is too old to file: it would overwrite newer data.
      if (this.#slotOf[at]! > slot) return -1;
      this.#slotOf[at] = slot;
      this.#byClass.fill(0, at * STATUS_CLASSES.length, (at + 1) * STATUS_CLASSES.length);
      this.#bins.fill(0, at * LATENCY_BINS, (at + 1) * LATENCY_BINS);
      this.#count[at] = 0;
      this.#phpCount[at] = 0;
      this.#queueSum[at] = 0;
      this.#phpSum[at] = 0;
      this.#sampled[at] = 0;
    }
    return at;
  }

  /** Files one finished request under the second it ended in. */
  record(record: RequestRecord): void {
    const endedAt = record.startedAt + record.durationMs;
    const at = this.#position(endedAt);
    if (at < 0) return;
    this.#count[at]! += 1;
    this.#byClass[at * STATUS_CLASSES.length + statusClassIndex(record.status)]! += 1;
    this.#bins[at * LATENCY_BINS + latencyBin(record.durationMs)]! += 1;
    if (record.phpMs !== null) {
      this.#phpCount[at]! += 1;
      this.#phpSum[at]! += record.phpMs;
      this.#queueSum[at]! += record.queueMs ?? 0;
    }
    // PHP requests only, as the slow log counts them (a request that waited out the queue is one).
    if (record.kind === 'php' && record.durationMs >= this.slowThresholdMs) this.#noteSlow(record, endedAt);
  }

  /** Pool occupancy now; the last sample in a slot is the one kept. */
  sample(nowMs: number, occupancy: Occupancy): void {
    const at = this.#position(nowMs);
    if (at < 0) return;
    this.#sampled[at] = 1;
    this.#idle[at] = occupancy.idle;
    this.#active[at] = occupancy.active;
    this.#queued[at] = occupancy.queued;
    this.#total[at] = occupancy.total;
    this.#limit[at] = occupancy.limit;
  }

  /**
   * The slots after `sinceMs` up to the last complete one before `nowMs` (the current slot is still
   * filling), oldest first, at most the whole window. Slots nothing was filed in read as zero
   * requests and no sample.
   */
  view(nowMs: number, sinceMs = -Infinity): SeriesView {
    const current = Math.floor(nowMs / this.resolutionMs);
    const first = Math.max(current - this.slots, Number.isFinite(sinceMs) ? Math.floor(sinceMs / this.resolutionMs) + 1 : -Infinity);
    const view: SeriesView = {
      t: [],
      rps: { '1xx': [], '2xx': [], '3xx': [], '4xx': [], '5xx': [], other: [] },
      p50: [],
      p95: [],
      p99: [],
      queueMs: [],
      phpMs: [],
      idle: [],
      active: [],
      queued: [],
      total: [],
      limit: [],
    };
    const perSecond = 1000 / this.resolutionMs;
    for (let slot = first; slot < current; slot++) {
      const at = slot % this.slots;
      const held = this.#slotOf[at] === slot;
      view.t.push(slot * this.resolutionMs);
      STATUS_CLASSES.forEach((name, index) => view.rps[name].push(held ? this.#byClass[at * STATUS_CLASSES.length + index]! * perSecond : 0));
      const count = held ? this.#count[at]! : 0;
      view.p50.push(held ? round(quantileOfBins(this.#bins, at * LATENCY_BINS, count, 0.5)) : null);
      view.p95.push(held ? round(quantileOfBins(this.#bins, at * LATENCY_BINS, count, 0.95)) : null);
      view.p99.push(held ? round(quantileOfBins(this.#bins, at * LATENCY_BINS, count, 0.99)) : null);
      const php = held ? this.#phpCount[at]! : 0;
      view.queueMs.push(php > 0 ? round(this.#queueSum[at]! / php) : null);
      view.phpMs.push(php > 0 ? round(this.#phpSum[at]! / php) : null);
      const sampled = held && this.#sampled[at] === 1;
      view.idle.push(sampled ? this.#idle[at]! : null);
      view.active.push(sampled ? this.#active[at]! : null);
      view.queued.push(sampled ? this.#queued[at]! : null);
      view.total.push(sampled ? this.#total[at]! : null);
      view.limit.push(sampled ? this.#limit[at]! : null);
    }
    return view;
  }

  /** Rate, error share and percentiles over the last complete slots covering `windowMs`. */
  summary(nowMs: number, windowMs = 60_000): Summary {
    const current = Math.floor(nowMs / this.resolutionMs);
    const span = Math.max(1, Math.min(this.slots, Math.round(windowMs / this.resolutionMs)));
    const merged = new Uint32Array(LATENCY_BINS);
    let requests = 0;
    let errors = 0;
    for (let slot = current - span; slot < current; slot++) {
      const at = ((slot % this.slots) + this.slots) % this.slots;
      if (this.#slotOf[at] !== slot) continue;
      requests += this.#count[at]!;
      errors += this.#byClass[at * STATUS_CLASSES.length + 4]!;
      for (let bin = 0; bin < LATENCY_BINS; bin++) merged[bin]! += this.#bins[at * LATENCY_BINS + bin]!;
    }
    const seconds = (span * this.resolutionMs) / 1000;
    return {
      windowMs: span * this.resolutionMs,
      requests,
      rps: round(requests / seconds),
      errorRatio: requests > 0 ? errors / requests : 0,
      p50: round(quantileOfBins(merged, 0, requests, 0.5)),
      p95: round(quantileOfBins(merged, 0, requests, 0.95)),
      p99: round(quantileOfBins(merged, 0, requests, 0.99)),
    };
  }

  /** The slowest requests that ended within the window, slowest first. */
  slow(nowMs: number): SlowRequest[] {
    const oldest = nowMs - this.windowMs;
    this.#slow = this.#slow.filter((entry) => entry.at + entry.durationMs >= oldest);
    return [...this.#slow];
  }

  #noteSlow(record: RequestRecord, endedAt: number): void {
    const list = this.#slow;
    // Full, and faster than every one kept: nothing to do (the common case under a slow backend).
    if (list.length >= this.#slowKeep) {
      const fastest = list[list.length - 1]!;
      const fastestStale = fastest.at + fastest.durationMs < endedAt - this.windowMs;
      if (!fastestStale && fastest.durationMs >= record.durationMs) return;
    }
    const entry: SlowRequest = {
      id: record.id,
      at: record.startedAt,
      method: record.method,
      uri: record.uri,
      status: record.status,
      durationMs: round(record.durationMs),
      queueMs: round(record.queueMs),
      phpMs: round(record.phpMs),
      workerPid: record.workerPid,
      script: record.script,
      error: record.error,
    };
    // Requests that ended before the window are dropped first, then the fastest.
    const oldest = endedAt - this.windowMs;
    const kept = list.filter((e) => e.at + e.durationMs >= oldest);
    let index = kept.findIndex((e) => e.durationMs < entry.durationMs);
    if (index < 0) index = kept.length;
    kept.splice(index, 0, entry);
    if (kept.length > this.#slowKeep) kept.length = this.#slowKeep;
    this.#slow = kept;
  }
}

function round(value: number): number;
function round(value: number | null): number | null;
function round(value: number | null): number | null {
  return value === null ? null : Math.round(value * 100) / 100;
}

/** Every app's series, created on an app's first request or sample. */
export class Series {
  readonly #apps = new Map<string, AppSeries>();
  readonly #options: AppSeriesOptions;

  constructor(options: AppSeriesOptions = {}) {
    this.#options = options;
  }

  app(name: string): AppSeries {
    let series = this.#apps.get(name);
    if (!series) {
      series = new AppSeries(this.#options);
      this.#apps.set(name, series);
    }
    return series;
  }

  has(name: string): boolean {
    return this.#apps.has(name);
  }

  /** Requests that reached no app (status page, 400, unmounted paths) are not charted. */
  record(record: RequestRecord): void {
    if (record.app !== null) this.app(record.app).record(record);
  }

  /** Drops the series of apps that are gone (after a reload). */
  retain(names: ReadonlySet<string>): void {
    for (const name of this.#apps.keys()) if (!names.has(name)) this.#apps.delete(name);
  }
}
