// One request through the php-fpm backend: the controller its caller holds (held during a reload,
// sent again on failover) and one Attempt per upstream tried, the handler that upstream's client calls.

import type { EndResult, RequestController, RequestOptions, ResponseHandler } from '../fastcgi/client.js';
import type { RequestInfo } from '../supervisor/worker.js';
import type { Upstream } from './upstream.js';

/** Handed to requests queued in a client that a reload retires: nothing was sent; they are sent again. */
export class Requeue extends Error {
  constructor() {
    super('requeued by a php-fpm reload');
  }
}

/** One request through the backend: its attempts on upstreams, and the controller its caller holds. */
export class FpmRequest implements RequestController {
  readonly options: RequestOptions;
  readonly handler: ResponseHandler;
  readonly info: RequestInfo;
  readonly acceptedAt: number;
  readonly tried = new Set<Upstream>();
  /** The running attempt's controller; null while held (reload) or between attempts. */
  inner: RequestController | null = null;
  attempt = 0;
  /** When a connection took the request (0: not yet). */
  boundAt = 0;
  finished = false;
  aborted = false;
  /** Why the last upstream could not take it, answered when no other can. */
  lastError: Error | null = null;
  timer: NodeJS.Timeout | null = null;
  /** Refused connects tried again so far, and the timer of the next try (the request is nowhere meanwhile). */
  connectRetries = 0;
  retryTimer: NodeJS.Timeout | null = null;
  detachSignal: (() => void) | null = null;
  readonly #onAbortHeld: (request: FpmRequest, reason: unknown) => void;

  constructor(options: RequestOptions, handler: ResponseHandler, info: RequestInfo, now: number, onAbortHeld: (request: FpmRequest, reason: unknown) => void) {
    this.options = options;
    this.handler = handler;
    this.info = info;
    this.acceptedAt = now;
    this.#onAbortHeld = onAbortHeld;
  }

  get started(): boolean {
    return this.inner?.started ?? false;
  }

  get bodySent(): boolean {
    return this.inner?.bodySent ?? false;
  }

  abort(reason?: unknown): void {
    if (this.finished) return;
    this.aborted = true;
    // Not on a connection: held during a reload or waiting to try a refused connect again.
    if (this.inner) this.inner.abort(reason);
    else this.#onAbortHeld(this, reason);
  }

  resume(): void {
    this.inner?.resume();
  }
}

/** What an Attempt reports to its backend. */
export interface AttemptEvents {
  bound(attempt: Attempt, process: { pid: number | null }): void;
  ended(attempt: Attempt, result: EndResult): void;
  failed(attempt: Attempt, error: Error): void;
}

/**
 * One attempt of a request on one upstream: the handler that upstream's client calls. A class
 * rather than an object of closures, as one is made for every request (issue 8).
 */
export class Attempt implements ResponseHandler {
  readonly request: FpmRequest;
  readonly upstream: Upstream;
  /** A connection took this attempt (nothing is sent before). */
  bound = false;
  readonly #events: AttemptEvents;

  constructor(request: FpmRequest, upstream: Upstream, events: AttemptEvents) {
    this.request = request;
    this.upstream = upstream;
    this.#events = events;
  }

  onDispatch(process: { pid: number | null }): void {
    this.bound = true;
    this.#events.bound(this, process);
  }

  onStdout(chunk: Buffer): boolean {
    return this.request.finished ? true : this.request.handler.onStdout(chunk);
  }

  onStderr(chunk: Buffer): void {
    if (!this.request.finished) this.request.handler.onStderr(chunk);
  }

  onEnd(result: EndResult): void {
    if (!this.request.finished) this.#events.ended(this, result);
  }

  onError(error: Error): void {
    this.#events.failed(this, error);
  }
}
