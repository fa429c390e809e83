// What both fronts hand a PHP request to: a php-cgi pool or a php-fpm upstream, behind one
// interface, with one status shape in php-fpm's vocabulary whichever backend serves the app.

import type { RequestController, RequestOptions, ResponseHandler } from './fastcgi/client.js';
import type { RequestInfo } from './supervisor/worker.js';

export type BackendKind = 'php-cgi' | 'php-fpm';

export interface Backend {
  readonly kind: BackendKind;
  /** Runs one request; every failure (busy, timeout, crash) reaches handler.onError as a typed error. */
  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo): RequestController;
  /** The pool as php-fpm's status page would show it. */
  status(): PoolStatus;
  /** Graceful: requests in progress finish within graceMs, then everything is stopped. */
  stop(graceMs: number): Promise<void>;
}

/** One PHP process as php-fpm's `?full` status lists it. */
export interface ProcessStatus {
  pid: number;
  /** php-fpm's words: Idle, Running, and ours for the rest (Starting, Finishing). */
  state: string;
  /** Epoch milliseconds. */
  startTime: number;
  requests: number;
  /** Running request's duration so far, else the last one's, in milliseconds. */
  requestDurationMs: number;
  requestMethod: string;
  requestUri: string;
  contentLength: number;
  script: string;
  /** Percent of one CPU during the last request, when known. */
  lastRequestCpu: number;
  /** Bytes: peak memory of the last request (php-fpm) or resident memory now (php-cgi). */
  lastRequestMemory: number;
}

/** One pool in php-fpm's status vocabulary, plus what TQServer knows beyond it. */
export interface PoolStatus {
  pool: string;
  backend: BackendKind;
  processManager: string;
  /** Epoch milliseconds. */
  startTime: number;
  acceptedConn: number;
  /** Requests waiting for a PHP process (TQServer's own queue). */
  listenQueue: number;
  maxListenQueue: number;
  /** The queue's limit. */
  listenQueueLen: number;
  idleProcesses: number;
  activeProcesses: number;
  totalProcesses: number;
  maxActiveProcesses: number;
  maxChildrenReached: number;
  slowRequests: number;
  /** php-cgi: processes ended, by reason (recycled, crashed, ...). */
  restarts: Record<string, number>;
  /** php-fpm: the upstreams and their circuit breakers. */
  upstreams: ReadonlyArray<UpstreamStatus>;
  processes: ProcessStatus[];
}

/** One php-fpm upstream on the status page: its connections, TQServer's queue for it, its breaker. */
export interface UpstreamStatus {
  address: string;
  /** closed, open or half-open. */
  breaker: string;
  open: number;
  idle: number;
  busy: number;
  queued: number;
  requests: number;
  retries: number;
  /** Consecutive connection failures. */
  failures: number;
  /** Why the breaker opened last. */
  breakerReason?: string;
  /** How often the breaker opened or closed. */
  breakerChanges?: number;
  /** Did the last health check get an answer. */
  healthy?: boolean;
  connecting?: number;
  /** Connections that could not be opened, in all. */
  connectFailures?: number;
  /** Requests that could not be sent here and went to another upstream. */
  failovers?: number;
  /** Time requests waited in TQServer's queue for a connection here. */
  queueWait?: { count: number; sumMs: number; maxMs: number };
}
