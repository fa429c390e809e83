// One finished request as observers see it (access log, slow log, metrics): who asked for what,
// what it got, and where the time went (waiting for a PHP process, in PHP). Plus request ids.

import { randomBytes } from 'node:crypto';

export type RequestKind = 'php' | 'static' | 'redirect' | 'not-found' | 'admin' | 'rejected';

export interface RequestRecord {
  /** The X-Request-Id the client sent (when usable) or one TQServer made. */
  id: string;
  /** Which front took it. */
  front: 'http' | 'fastcgi';
  /** App name, or null when no app was reached (status page, 400, unmounted path). */
  app: string | null;
  kind: RequestKind;
  method: string;
  /** The request target as sent. */
  uri: string;
  httpVersion: string;
  remoteAddress: string;
  status: number;
  /** Bytes written to the client for this response, headers included (nginx's $bytes_sent). */
  bytesSent: number;
  /** Epoch milliseconds when the request arrived. */
  startedAt: number;
  /** Arrival to end of response (or abandonment), milliseconds. */
  durationMs: number;
  /** PHP requests: how long it waited for a free PHP process. */
  queueMs: number | null;
  /** PHP requests: from getting a PHP process to the end of PHP's answer. */
  phpMs: number | null;
  backend: 'php-cgi' | 'php-fpm' | null;
  /** The php-cgi process that served it (php-fpm children are not known per request). */
  workerPid: number | null;
  /** Script relative to the document root, for PHP requests. */
  script: string | null;
  userAgent: string;
  referer: string;
  /** Stable error code when it failed (POOL_QUEUE_FULL, FCGI_REQUEST_ABORTED, ...). */
  error: string | null;
  /** The client went away before the response was complete. */
  aborted: boolean;
}

export type RequestObserver = (record: RequestRecord) => void;

const USABLE_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/;
const PREFIX = randomBytes(4).toString('hex');
let counter = 0;

/**
 * The request id: the client's X-Request-Id when it is a plain token of at most 128 characters
 * (so it is safe in logs and headers), else a new one: a per-process random prefix and a counter.
 */
export function requestIdFor(header: string | string[] | undefined): string {
  const given = Array.isArray(header) ? header[0] : header;
  if (given !== undefined && USABLE_ID.test(given)) return given;
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${PREFIX}-${counter.toString(36)}`;
}

/** Timing a PHP request fills in as it goes. */
export interface PhpTiming {
  /** When the request was handed to the backend, if not on arrival: after its body was read first. */
  queuedAt: number | null;
  dispatchedAt: number | null;
  endedAt: number | null;
  backend: 'php-cgi' | 'php-fpm' | null;
  workerPid: number | null;
  script: string | null;
  error: string | null;
}

export function newPhpTiming(): PhpTiming {
  return { queuedAt: null, dispatchedAt: null, endedAt: null, backend: null, workerPid: null, script: null, error: null };
}
