// Requests TQServer answers itself, never occupying a PHP worker: the status page (and, later,
// metrics and health). Loopback clients only.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerSnapshot } from '../app.js';
import { ClientAllowList } from '../fastcgi/allow-list.js';
import type { AdminHandler } from '../http/server.js';
import { sendError } from '../http/error-page.js';
import { renderJson, renderOpenMetrics, renderText, renderXml } from './status.js';

export interface AdminOptions {
  statusPath: string;
  snapshot: () => ServerSnapshot;
  allowedClients?: readonly string[];
}

/** The names in a query string ("json&full" -> {json, full}); a malformed escape is kept as written. */
function flagSet(query: string): Set<string> {
  return new Set(
    query.split('&').map((part) => {
      const name = part.split('=')[0] ?? '';
      try {
        return decodeURIComponent(name);
      } catch {
        return name;
      }
    }),
  );
}

export function createAdminHandler(options: AdminOptions): AdminHandler {
  const allow = new ClientAllowList(options.allowedClients ?? ['127.0.0.0/8', '::1']);
  return (request: IncomingMessage, response: ServerResponse, path: string, query: string): boolean => {
    if (path !== options.statusPath) return false;
    if (!allow.allows(request.socket.remoteAddress ?? '')) {
      sendError(request, response, 403, 'The status page answers local clients only.');
      return true;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': '0' });
      response.end();
      return true;
    }
    const flags = flagSet(query);
    const full = flags.has('full');
    const snapshot = options.snapshot();
    // php-fpm's format switches: ?json, ?xml, ?openmetrics; plain text otherwise.
    const [type, body] = flags.has('json')
      ? ['application/json', renderJson(snapshot, full)]
      : flags.has('xml')
        ? ['text/xml', renderXml(snapshot, full)]
        : flags.has('openmetrics')
          ? ['application/openmetrics-text; version=1.0.0; charset=utf-8', renderOpenMetrics(snapshot)]
          : ['text/plain; charset=utf-8', renderText(snapshot, full)];
    respond(response, request.method === 'HEAD', type, body);
    return true;
  };
}

function respond(response: ServerResponse, head: boolean, type: string, body: string): void {
  response.writeHead(200, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': String(Buffer.byteLength(body)) });
  response.end(head ? undefined : body);
}
