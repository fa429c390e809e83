// One request in flight on a FastCGIConnection: its state (sent, finished, paused, bytes back), the
// controller its caller holds, and how its handler is called.

import type { FastCGIConnection } from './client.js';
import type { ConnectionOptions, RequestController, RequestOptions, ResponseHandler } from './client-types.js';

export class ActiveRequest implements RequestController {
  readonly handler: ResponseHandler;
  readonly readTimeoutMs: number;
  readonly writeTimeoutMs: number;
  readonly keepConn: boolean;
  started = false;
  bodySent = false;
  finished = false;
  /** FCGI_ABORT_REQUEST went out: the connection must not carry another request (see abortRequest). */
  abortSent = false;
  stdoutBytes = 0;
  stderrBytes = 0;
  paused = false;
  awaitingDrain = false;
  cleanup: (() => void) | null = null;
  readonly #connection: FastCGIConnection;

  constructor(connection: FastCGIConnection, handler: ResponseHandler, options: RequestOptions, defaults: Required<ConnectionOptions>) {
    this.#connection = connection;
    this.handler = handler;
    this.readTimeoutMs = options.readTimeoutMs ?? defaults.readTimeoutMs;
    this.writeTimeoutMs = options.writeTimeoutMs ?? defaults.writeTimeoutMs;
    this.keepConn = options.keepConn ?? true;
  }

  abort(reason?: unknown): void {
    this.#connection.abortRequest(this, reason);
  }

  resume(): void {
    this.#connection.resumeRequest(this);
  }

  /** Ends the request on the connection's side: no more writes, its listeners removed. */
  complete(): void {
    this.finished = true;
    this.awaitingDrain = false;
    this.cleanup?.();
    this.cleanup = null;
  }
}

/** Calls a request's handler on the connection's behalf. */
export function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    // A handler that throws must not leave the connection half-settled; report it asynchronously.
    queueMicrotask(() => {
      throw error;
    });
  }
}
