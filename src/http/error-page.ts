// Error responses: one short page per status (JSON when the client asks for JSON), Retry-After on
// 503, and the status taken from the one error-to-status map in errors.ts.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { httpStatusFor, TQServerError } from '../errors.js';

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * True when the client prefers JSON to HTML (an API client): application/json or any +json type
 * with a q above 0 and at least that of text/html. Wildcard ranges count for neither, so a
 * browser's Accept and a bare wildcard get HTML.
 */
export function wantsJson(accept: string | undefined): boolean {
  if (!accept) return false;
  let json = -1;
  let html = -1;
  for (const part of accept.split(',')) {
    // RFC 9110 12.5.1: OWS may surround the ";" between a media range and its parameters.
    const [type = '', ...params] = part.toLowerCase().split(';').map((piece) => piece.trim());
    const q = Number(params.find((p) => p.startsWith('q='))?.slice(2) ?? '1');
    if (!Number.isFinite(q)) continue;
    if (type === 'application/json' || type.endsWith('+json')) json = Math.max(json, q);
    if (type === 'text/html') html = Math.max(html, q);
  }
  return json > 0 && json >= html;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Sends an error response unless headers are already out (then the connection is cut, so the client
 * sees a truncated response rather than a wrong one). `detail` is for the client; keep internals out.
 */
export function sendError(request: IncomingMessage, response: ServerResponse, status: number, detail?: string, code?: string): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const title = STATUS_CODES[status] ?? 'Error';
  const message = detail ?? title;
  const headers: Record<string, string> = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };
  if (status === 503) headers['Retry-After'] = String(RETRY_AFTER_SECONDS);
  let body: string;
  if (wantsJson(request.headers.accept)) {
    headers['Content-Type'] = 'application/json';
    body = `${JSON.stringify({ error: { status, title, message, ...(code ? { code } : {}) } })}\n`;
  } else {
    headers['Content-Type'] = 'text/html; charset=utf-8';
    body = `<!doctype html><html><head><meta charset="utf-8"><title>${status} ${escapeHtml(title)}</title></head><body><h1>${status} ${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p><hr><p>TQServer</p></body></html>\n`;
  }
  headers['Content-Length'] = String(Buffer.byteLength(body));
  response.writeHead(status, headers);
  response.end(request.method === 'HEAD' ? undefined : body);
}

/** The status and the client-facing sentence for an error from a backend. */
export function describeFailure(error: unknown): { status: number; message: string; code: string | undefined } {
  const status = httpStatusFor(error);
  const code = error instanceof TQServerError ? error.code : undefined;
  // A pool in a crash loop or a php-fpm that is down is not busy: it is unavailable for now.
  const retryLater =
    code === 'POOL_CRASH_LOOP' || code === 'UPSTREAM_DOWN' ? 'The application is temporarily unavailable; please retry shortly.' : 'The application is busy; please retry shortly.';
  const message =
    status === 503
      ? retryLater
      : status === 504
        ? 'The application did not answer in time.'
        : status === 502
          ? 'The application failed to produce a response.'
          : status === 431
            ? 'The request headers are too large.'
            : 'The server failed to handle the request.';
  return { status, message, code };
}
