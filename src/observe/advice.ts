// Advice instead of noise: pool and backend events (max_workers reached, queue full, timeouts,
// crashes, php-fpm's circuit opening, slow requests, PHP errors) counted per app and kind, and turned
// into at most one server log line per minute each, saying what to do. A pure aggregator over a
// clock passed in, and a thin shell that subscribes to the events and keeps the timer.

import type { FpmBackend } from '../fpm/fpm-backend.js';
import type { Logger } from '../log.js';
import type { WorkerPool } from '../supervisor/worker-pool.js';

export const ADVICE_KINDS = [
  'max-workers',
  'queue-full',
  'queue-timeout',
  'request-timeout',
  'worker-crash',
  'crash-loop',
  'breaker-open',
  'slow-requests',
  'php-errors',
] as const;
export type AdviceKind = (typeof ADVICE_KINDS)[number];

/** What the sentences need to name: the setting involved and its value, the file to look at. */
export interface AdviceFacts {
  maxWorkers?: number;
  queueLimit?: number;
  queueTimeoutMs?: number;
  requestTimeoutMs?: number;
  thresholdMs?: number;
  /** A log file to read for details. */
  file?: string;
  /** php-fpm upstream address. */
  upstream?: string;
  reason?: string;
}

export interface Advice {
  app: string;
  kind: AdviceKind;
  /** Events this line is about: 1 for the first of a quiet period, else all in the window. */
  count: number;
  /** The window a summary covers, in ms; null for the first event of a quiet period. */
  windowMs: number | null;
  facts: AdviceFacts;
  text: string;
}

/**
 * Kinds whose component already logs each event with its details (the pool's crash line and its
 * crash-loop line, php-fpm's circuit line): advice only adds the count when they repeat.
 */
const ANNOUNCED_ELSEWHERE: ReadonlySet<AdviceKind> = new Set(['worker-crash', 'crash-loop', 'breaker-open']);

/** "the last minute", "the last 23 s", "the last 3 minutes". */
export function spanText(ms: number): string {
  if (ms >= 59_500 && ms < 90_000) return 'the last minute';
  if (ms >= 90_000) return `the last ${Math.round(ms / 60_000)} minutes`;
  return `the last ${Math.max(1, Math.round(ms / 1000))} s`;
}

function secondsText(ms: number | undefined): string {
  if (ms === undefined) return '?';
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

const times = (count: number) => (count === 1 ? 'once' : `${count} times`);
const requests = (count: number) => (count === 1 ? '1 request' : `${count} requests`);
const see = (facts: AdviceFacts) => (facts.file ? `; see ${facts.file}` : '');

/**
 * The sentence for a kind: the first event of a quiet period (windowMs null) or a summary of `count`
 * events in the last `windowMs`. Each says what happened, in the operator's setting names, and what
 * to do about it.
 */
export function adviceText(app: string, kind: AdviceKind, count: number, windowMs: number | null, facts: AdviceFacts): string {
  const inSpan = windowMs === null ? '' : ` in ${spanText(windowMs)}`;
  const first = windowMs === null;
  switch (kind) {
    case 'max-workers':
      return first
        ? `pool ${app} reached max_workers (${facts.maxWorkers ?? '?'}); consider raising it`
        : `pool ${app} reached max_workers (${facts.maxWorkers ?? '?'}) ${times(count)}${inSpan}; consider raising it`;
    case 'queue-full':
      return first
        ? `pool ${app}: every worker busy and the queue full (queue_limit ${facts.queueLimit ?? '?'}); requests get 503. Raise max_workers or queue_limit, or make the scripts faster`
        : `pool ${app}: the queue was full ${times(count)}${inSpan} (queue_limit ${facts.queueLimit ?? '?'}), each time a 503. Raise max_workers or queue_limit, or make the scripts faster`;
    case 'queue-timeout':
      return first
        ? `pool ${app}: a request waited longer than queue_timeout (${secondsText(facts.queueTimeoutMs)}) for a worker and got 503; consider raising max_workers`
        : `pool ${app}: ${requests(count)} waited longer than queue_timeout (${secondsText(facts.queueTimeoutMs)})${inSpan} and got 503; consider raising max_workers`;
    case 'request-timeout':
      return first
        ? `pool ${app}: a request ran over request_timeout (${secondsText(facts.requestTimeoutMs)}) and its worker was killed; find the script in the slow log, or raise request_timeout`
        : `pool ${app}: ${requests(count)} ran over request_timeout (${secondsText(facts.requestTimeoutMs)})${inSpan} and their workers were killed; find the scripts in the slow log, or raise request_timeout`;
    case 'worker-crash':
      return `pool ${app}: php-cgi workers crashed ${times(count)}${inSpan}; look for the cause in the PHP error log (fatal errors, segfaults in extensions)${see(facts)}`;
    case 'crash-loop':
      return `pool ${app}: respawning was paused ${times(count)}${inSpan} because workers keep crashing; check the php-cgi binary, php.ini and extensions${see(facts)}`;
    case 'breaker-open':
      return `app ${app}: the circuit to php-fpm${facts.upstream ? ` at ${facts.upstream}` : ''} opened ${times(count)}${inSpan}${facts.reason ? ` (last: ${facts.reason})` : ''}; check that php-fpm runs and its log`;
    case 'slow-requests':
      return first
        ? `app ${app}: a request took longer than slow_log.threshold (${secondsText(facts.thresholdMs)})${see(facts)}`
        : `app ${app}: ${requests(count)} took longer than slow_log.threshold (${secondsText(facts.thresholdMs)})${inSpan}${see(facts)}`;
    case 'php-errors':
      return first ? `app ${app}: PHP writes errors${see(facts)}` : `app ${app}: PHP wrote ${count === 1 ? '1 error line' : `${count} error lines`}${inSpan}${see(facts)}`;
    default: {
      const never: never = kind;
      throw new Error(`unknown advice kind ${String(never)}`);
    }
  }
}

interface Window {
  app: string;
  kind: AdviceKind;
  startedAt: number;
  /** Events in this window, the first of a quiet period included. */
  count: number;
  /** The first window of a quiet period: its first event was already told. */
  opening: boolean;
  facts: AdviceFacts;
}

/**
 * Counts events per app and kind. The first event after a quiet minute is told at once (unless its
 * component logs it itself); later ones are counted and told as one summary when the minute since
 * the last line is over; a minute without events ends the episode. So each app and kind gets at
 * most one line a minute, however many events come.
 */
export class AdviceAggregator {
  readonly windowMs: number;
  readonly #windows = new Map<string, Window>();

  constructor(windowMs = 60_000) {
    this.windowMs = windowMs;
  }

  /** Counts `count` events; returns the line to log now, if any. Call due() first so windows are current. */
  note(app: string, kind: AdviceKind, facts: AdviceFacts, now: number, count = 1): Advice | null {
    const key = `${kind}\0${app}`;
    const window = this.#windows.get(key);
    if (window) {
      window.count += count;
      window.facts = facts;
      return null;
    }
    this.#windows.set(key, { app, kind, startedAt: now, count, opening: true, facts });
    if (ANNOUNCED_ELSEWHERE.has(kind)) return null;
    return { app, kind, count: 1, windowMs: null, facts, text: adviceText(app, kind, 1, null, facts) };
  }

  /** Summaries of the windows that are over at `now` (all of them with `all`, e.g. at stop). */
  due(now: number, all = false): Advice[] {
    const out: Advice[] = [];
    for (const [key, window] of this.#windows) {
      const spanMs = now - window.startedAt;
      if (!all && spanMs < this.windowMs) continue;
      // The first window's first event was told already (here or by its component).
      const untold = window.opening ? window.count - 1 : window.count;
      if (untold <= 0) {
        this.#windows.delete(key);
        continue;
      }
      out.push({ app: window.app, kind: window.kind, count: window.count, windowMs: spanMs, facts: window.facts, text: adviceText(window.app, window.kind, window.count, spanMs, window.facts) });
      if (all) this.#windows.delete(key);
      else Object.assign(window, { startedAt: now, count: 0, opening: false });
    }
    return out;
  }

  /** When the next window ends, or null when none is open. */
  nextDueAt(): number | null {
    let next: number | null = null;
    for (const window of this.#windows.values()) {
      const at = window.startedAt + this.windowMs;
      if (next === null || at < next) next = at;
    }
    return next;
  }
}

/** Logs advice to the server log: subscribes to events, keeps one timer for the next summary. */
export class Advisor {
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #aggregator: AdviceAggregator;
  #timer: NodeJS.Timeout | null = null;
  #timerAt: number | null = null;
  #stopped = false;

  constructor(log: Logger, options: { clock?: () => number; windowMs?: number } = {}) {
    this.#log = log;
    this.#clock = options.clock ?? Date.now;
    this.#aggregator = new AdviceAggregator(options.windowMs);
  }

  /** Counts events (and logs a line when they start a quiet period's first window). */
  note(app: string, kind: AdviceKind, facts: AdviceFacts = {}, count = 1): void {
    if (this.#stopped) return;
    const now = this.#clock();
    this.#emit(this.#aggregator.due(now));
    const advice = this.#aggregator.note(app, kind, facts, now, count);
    if (advice) this.#emit([advice]);
    this.#schedule();
  }

  /** Follows a php-cgi pool's events; the settings named are read when an event comes (reloads change them). */
  watchPool(app: string, pool: Pick<WorkerPool, 'on' | 'config'>): void {
    pool.on('max-workers-reached', (_pool, maxWorkers) => this.note(app, 'max-workers', { maxWorkers }));
    pool.on('queue-full', () => this.note(app, 'queue-full', { queueLimit: pool.config.queueLimit }));
    pool.on('queue-timeout', () => this.note(app, 'queue-timeout', { queueTimeoutMs: pool.config.queueTimeoutMs }));
    pool.on('request-timeout', () => this.note(app, 'request-timeout', { requestTimeoutMs: pool.config.requestTimeoutMs }));
    pool.on('crash-loop', () => this.note(app, 'crash-loop'));
    pool.on('worker-exit', (_worker, exit) => {
      if (exit.reason === 'crashed') this.note(app, 'worker-crash');
    });
  }

  /** Follows a php-fpm backend's circuit breakers. */
  watchBreakers(app: string, source: Pick<FpmBackend, 'on'>): void {
    source.on('breaker', (upstream, state, reason) => {
      if (state === 'open') this.note(app, 'breaker-open', { upstream, reason });
    });
  }

  /** Logs what is still counted (as summaries of the time so far) and stops the timer. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = null;
    this.#emit(this.#aggregator.due(this.#clock(), true));
  }

  #emit(advice: Advice[]): void {
    for (const a of advice) this.#log.warn({ app: a.app, advice: a.kind, count: a.count }, a.text);
  }

  /** Keeps one timer, set for the end of the first open window (not reset per event). */
  #schedule(): void {
    const at = this.#stopped ? null : this.#aggregator.nextDueAt();
    if (at === this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = at;
    if (at === null) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#timerAt = null;
      this.#emit(this.#aggregator.due(this.#clock()));
      this.#schedule();
    }, Math.max(1, at - this.#clock()));
    this.#timer.unref();
  }
}
