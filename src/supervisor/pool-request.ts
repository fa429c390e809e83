// A request to the php-cgi pool: the controller its caller holds and the handler its worker calls,
// queued again when its worker never ran it; its place in the queue, and the error for one
// abandoned while it waited.

import { PoolUnavailableError } from '../errors.js';
import { toAbortError, type EndResult, type RequestController, type ResponseHandler } from '../fastcgi/client.js';
import type { PhpCgiWorker } from './worker.js';

/** A request (or a lease) waiting in the pool's FIFO queue for a worker. */
export interface Waiter {
  grant(worker: PhpCgiWorker): void;
  fail(error: Error): void;
  enqueuedAt: number;
  timer: NodeJS.Timeout | null;
}

/** Errors that say a request never reached its worker (the connect failed): safe to send again. */
const NEVER_REACHED_PHP = new Set(['FCGI_CONNECT_REFUSED', 'FCGI_CONNECT_TIMEOUT']);

/**
 * A request to the pool: the controller its caller holds, and the handler its worker calls, which
 * passes everything on until the request is finished (request_timeout may finish it first). One
 * object per request rather than an object of closures (issue 8).
 */
export class PoolRequest implements RequestController, ResponseHandler {
  inner: RequestController | null = null;
  finished = false;
  /** Queues the request again (once) when its worker could not be reached; false when it cannot. */
  requeue: (() => boolean) | null = null;
  /** Its body (if any) is in memory or in a file, so it can be sent again after a worker that did not run it. */
  bodyResendable = true;
  /** request_timeout, while the request runs. */
  timer: NodeJS.Timeout | null = null;
  readonly #handler: ResponseHandler;
  #onAbortWhileQueued: ((reason: unknown) => void) | null = null;

  constructor(handler: ResponseHandler, onAbortWhileQueued: (reason: unknown) => void) {
    this.#handler = handler;
    this.#onAbortWhileQueued = onAbortWhileQueued;
  }

  /** Nothing more reaches the caller's handler. */
  finish(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  onStdout(chunk: Buffer): boolean {
    return this.finished ? true : this.#handler.onStdout(chunk);
  }

  onStderr(chunk: Buffer): void {
    if (!this.finished) this.#handler.onStderr(chunk);
  }

  onEnd(result: EndResult): void {
    if (this.finished) return;
    this.finish();
    this.#handler.onEnd(result);
  }

  onError(error: Error): void {
    if (this.finished) return;
    if (this.requeue && (NEVER_REACHED_PHP.has((error as { code?: string }).code ?? '') || (this.bodyResendable && (error as { unprocessed?: boolean }).unprocessed === true))) {
      // The worker died while idle (killed, crashed) before the pool noticed, or closed its
      // connection without running the request (FastCGIConnection's probe proved it): nothing of the
      // request ran in PHP, so it goes back to the queue for another worker instead of costing a 502.
      const requeue = this.requeue;
      this.requeue = null;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.inner = null;
      if (requeue()) return;
    }
    this.finish();
    this.#handler.onError(error);
  }

  onDispatch(process: { pid: number | null }): void {
    this.#handler.onDispatch?.(process);
  }

  /** request_timeout: the caller's handler gets the error although the request is finished already. */
  failNow(error: Error): void {
    this.#handler.onError(error);
  }

  get started(): boolean {
    return this.inner?.started ?? false;
  }

  get bodySent(): boolean {
    return this.inner?.bodySent ?? false;
  }

  abort(reason?: unknown): void {
    if (this.inner) this.inner.abort(reason);
    else this.#onAbortWhileQueued?.(reason);
  }

  resume(): void {
    this.inner?.resume();
  }
}

/** The error a caller gets for a request it gave up on before a worker of `pool` took it. */
export function abandonedError(pool: string, reason: unknown): Error {
  return toAbortError(reason ?? new PoolUnavailableError('POOL_STOPPED', `pool ${pool}: request abandoned while waiting for a worker`));
}
