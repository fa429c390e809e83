// When a request may be sent to the peer a second time (FastCGIClient#retryStale, the php-cgi pool's
// requeue): the rules, pure.

import { FileBody, type RequestOptions } from './client-types.js';

/** Errors that mean the peer closed a connection, as opposed to refusing or timing out. */
export const STALE_CONNECTION_ERRORS = new Set(['FCGI_PEER_CLOSED', 'FCGI_CONNECTION_ERROR']);

/** True for a request body that holds no bytes at all (nothing of it can have been consumed). */
function hasNoBody(options: RequestOptions): boolean {
  const body = options.body;
  return body === undefined || body === null || ((typeof body === 'string' || Buffer.isBuffer(body)) && body.length === 0);
}

/** A body that can be sent again: none, bytes in memory, or a file (a stream is consumed by the first attempt). */
export function bodyResendable(options: RequestOptions): boolean {
  const body = options.body;
  return body === undefined || body === null || typeof body === 'string' || Buffer.isBuffer(body) || body instanceof FileBody;
}

/**
 * RFC 9110 9.2.2: methods whose repetition has the effect of one request. A connection that closes
 * without an answer may have run the script before it died, so only these are ever sent twice (as
 * nginx's fastcgi_next_upstream does not repeat POST, PATCH or LOCK).
 */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The request's REQUEST_METHOD param (GET when it has none, as for a bare FastCGI request). */
function methodOf(options: RequestOptions): string {
  const params = options.params;
  let value: unknown;
  if (Symbol.iterator in params) {
    for (const [name, v] of params as Iterable<readonly [string, unknown]>) if (name === 'REQUEST_METHOD') value = v;
  } else {
    value = (params as Readonly<Record<string, unknown>>).REQUEST_METHOD;
  }
  return value === undefined || value === null ? 'GET' : String(value).toUpperCase();
}

/** May be sent again after a kept-alive connection closed without answering: no body, idempotent method. */
export function replayable(options: RequestOptions): boolean {
  return hasNoBody(options) && IDEMPOTENT_METHODS.has(methodOf(options));
}
