// One HTTP request to PHP and back: the body streamed to the backend (chunked bodies spooled first),
// the CGI head parsed, the body streamed to the client with backpressure, aborts passed on, and
// every failure turned into its status through the one map in errors.ts.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { buildCgiEnv, type CgiRoute } from '../cgi/env.js';
import { CgiHeadError, CgiResponseParser, type CgiHead } from '../cgi/response.js';
import { FastCGIAbortError } from '../errors.js';
import type { RequestBody, RequestController } from '../fastcgi/client.js';
import type { Logger } from '../log.js';
import type { Backend } from '../backend.js';
import type { PhpTiming } from '../observe/request-record.js';
import { describeFailure, sendError } from './error-page.js';
import { BodyTooLargeError, spoolBody, type SpooledBody } from './spool.js';

export interface ProxyTarget {
  /** App name for logs. */
  app: string;
  backend: Backend;
  route: Omit<CgiRoute, 'extra'>;
  query: string;
  maxBodyBytes: number;
  writeTimeoutMs: number;
  log: Logger;
  /** The request's id, in every log line about it. */
  requestId: string;
  /** Filled in as the request goes: when it got a PHP process, when PHP finished, how it failed. */
  timing: PhpTiming;
}

/** Hop-by-hop and framing headers are ours to set, not PHP's (RFC 9110 7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

/** Runs a PHP request and answers it. Resolves when the response is finished or abandoned. */
export async function proxyToPhp(request: IncomingMessage, response: ServerResponse, target: ProxyTarget): Promise<void> {
  const { log, timing } = target;
  const req = target.requestId;
  timing.backend = target.backend.kind;
  timing.script = target.route.script;
  const lengthHeader = request.headers['content-length'];
  const chunked = request.headers['transfer-encoding'] !== undefined;
  let contentLength: number | null = null;
  let body: RequestBody = null;
  let spooled: SpooledBody | null = null;
  if (lengthHeader !== undefined && !chunked) {
    contentLength = Number(lengthHeader);
    if (contentLength > target.maxBodyBytes) {
      log.info({ app: target.app, req, bytes: contentLength }, `413 ${request.method} ${request.url}: body of ${contentLength} bytes is over max_body_size (${target.maxBodyBytes})`);
      response.setHeader('Connection', 'close');
      sendError(request, response, 413, `The request body is larger than ${target.maxBodyBytes} bytes.`);
      return;
    }
    body = contentLength > 0 ? request : null;
  } else if (chunked) {
    try {
      spooled = await spoolBody(request, target.maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        log.info({ app: target.app, req }, `413 ${request.method} ${request.url}: chunked body over max_body_size (${target.maxBodyBytes})`);
        response.setHeader('Connection', 'close');
        sendError(request, response, 413, `The request body is larger than ${target.maxBodyBytes} bytes.`);
      } else {
        // The client went away mid-upload: nobody is left to answer.
        response.destroy();
      }
      return;
    }
    contentLength = spooled.length;
    body = spooled.body;
  }

  const socket = request.socket as Socket & Partial<TLSSocket>;
  const params = buildCgiEnv(
    {
      method: request.method ?? 'GET',
      target: request.url ?? '/',
      query: target.query,
      httpVersion: request.httpVersion,
      rawHeaders: request.rawHeaders,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      tls: socket.encrypted === true,
      contentLength,
    },
    target.route,
  );

  await new Promise<void>((resolve) => {
    const parser = new CgiResponseParser();
    let head: CgiHead | null = null;
    let held: Buffer[] | null = null;
    let heldBytes = 0;
    let ended = false;
    let settled = false;
    let drainTimer: NodeJS.Timeout | null = null;
    const settle = () => {
      if (settled) return;
      settled = true;
      if (drainTimer) clearTimeout(drainTimer);
      response.off('close', onClose);
      response.off('drain', onDrain);
      void spooled?.cleanup();
      resolve();
    };

    const writeHead = (length: number | null) => {
      const h = head!;
      // appendHeader keeps repeated headers (Set-Cookie) apart and adds to what the front set
      // (X-Request-Id); writeHead's array form would collapse them once any header is set.
      for (const [name, value] of h.headers) {
        const lower = name.toLowerCase();
        if (HOP_BY_HOP.has(lower)) continue;
        if (lower === 'content-length' && length !== null) continue;
        response.appendHeader(name, value);
      }
      if (length !== null && !bodyless(h.status)) response.setHeader('Content-Length', String(length));
      if (h.reason) response.writeHead(h.status, h.reason);
      else response.writeHead(h.status);
    };

    /** Small responses that end in the same read go out with a Content-Length; others stream. */
    const flushHeld = () => {
      if (!held || settled) return;
      const chunks = held;
      held = null;
      try {
        // php-cgi sends no body for HEAD, so the bytes held say nothing about GET's length: only a
        // Content-Length PHP set itself goes out (RFC 9110 9.3.2 allows none).
        writeHead(ended && request.method !== 'HEAD' ? heldBytes : null);
      } catch (error) {
        fail(new CgiHeadError(`PHP sent a header Node cannot send: ${(error as Error).message}`));
        return;
      }
      if (ended) {
        response.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, heldBytes));
        settle();
        return;
      }
      let ok = true;
      for (const chunk of chunks) ok = response.write(chunk);
      if (!ok) waitForDrain();
    };

    const waitForDrain = () => {
      if (drainTimer) return;
      drainTimer = setTimeout(() => {
        log.info({ app: target.app, req }, `${request.method} ${request.url}: the client accepted no data for ${target.writeTimeoutMs} ms; closing`);
        controller?.abort(new FastCGIAbortError('client write timeout'));
        response.destroy();
        settle();
      }, target.writeTimeoutMs);
    };
    const onDrain = () => {
      if (drainTimer) clearTimeout(drainTimer);
      drainTimer = null;
      controller?.resume();
    };

    const fail = (error: unknown) => {
      if (settled) return;
      const failure = describeFailure(error);
      const text = error instanceof Error ? error.message : String(error);
      const code = failure.code ?? (error instanceof CgiHeadError ? 'CGI_BAD_HEAD' : undefined);
      timing.endedAt ??= performance.now();
      timing.error = code ?? 'ERROR';
      log.warn(
        { app: target.app, req, status: failure.status, code, script: target.route.script },
        `${failure.status} ${request.method} ${request.url}: ${text}${code ? ` (${code})` : ''}`,
      );
      controller?.abort(error);
      sendError(request, response, failure.status, failure.message, code);
      settle();
    };

    const onClose = () => {
      if (settled || response.writableFinished) return;
      // The client went away: stop PHP's request so the worker is freed.
      timing.error ??= 'FCGI_REQUEST_ABORTED';
      timing.endedAt ??= performance.now();
      controller?.abort(new FastCGIAbortError('the HTTP client closed the connection'));
      settle();
    };
    response.on('close', onClose);
    response.on('drain', onDrain);

    // Assigned after dispatch returns; a backend may call the handler before that (a full queue).
    let controller: RequestController | null = null;
    controller = target.backend.dispatch(
      { params, body },
      {
        onDispatch(process) {
          timing.dispatchedAt = performance.now();
          timing.workerPid = process.pid;
        },
        onStdout(chunk) {
          if (settled) return true;
          let data = chunk;
          if (!head) {
            let parsed: ReturnType<CgiResponseParser['push']>;
            try {
              parsed = parser.push(chunk);
            } catch (error) {
              fail(error);
              return true;
            }
            if (!parsed) return true;
            head = parsed.head;
            data = parsed.body;
            held = [];
            queueMicrotask(flushHeld);
          }
          if (held) {
            if (data.length > 0) {
              held.push(data);
              heldBytes += data.length;
            }
            return true;
          }
          if (data.length === 0) return true;
          const ok = response.write(data);
          if (!ok) waitForDrain();
          return ok;
        },
        onStderr(chunk) {
          const text = chunk.toString('utf8').trimEnd();
          if (text) log.warn({ app: target.app, req, script: target.route.script, stream: 'stderr' }, `PHP stderr (${request.method} ${request.url}): ${text.slice(0, 4096)}`);
        },
        onEnd() {
          if (settled) return;
          ended = true;
          timing.endedAt = performance.now();
          if (!head) {
            try {
              parser.finish();
            } catch (error) {
              fail(error);
            }
            return;
          }
          if (held) return; // flushHeld (queued) sends everything with a Content-Length
          response.end();
          settle();
        },
        onError(error) {
          fail(error);
        },
      },
      { method: request.method, uri: request.url, script: target.route.script, contentLength: contentLength ?? 0, requestId: req },
    );
  });
}

/** Statuses that carry no body and no Content-Length (RFC 9110 8.6). HEAD keeps GET's length. */
function bodyless(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}
