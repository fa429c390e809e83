// One HTTP request to PHP and back: the body read first (or streamed, with request buffering off),
// the CGI head parsed, the body streamed to the client with backpressure, aborts passed on, and
// every failure turned into its status through the one map in errors.ts.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { encodeCgiParams, type CgiRoute, type ConnectionMemo } from '../cgi/env.js';
import { CgiHeadError, CgiResponseParser, type CgiHead } from '../cgi/response.js';
import { FastCGIAbortError } from '../errors.js';
import type { RequestBody, RequestController, ResponseHandler } from '../fastcgi/client.js';
import type { Logger } from '../log.js';
import type { Backend } from '../backend.js';
import type { PhpTiming } from '../observe/request-record.js';
import { describeFailure, sendError } from './error-page.js';
import type { FastBody } from './fast-response.js';
import type { ForwardedClient } from './forwarded.js';
import { BodyTooLargeError, spoolBody, type SpooledBody } from './spool.js';

export interface ProxyTarget {
  /** App name for logs. */
  app: string;
  backend: Backend;
  route: Omit<CgiRoute, 'extra'>;
  query: string;
  maxBodyBytes: number;
  /** Read a body with a Content-Length completely before a PHP worker is taken (server.request_buffering). */
  requestBuffering: boolean;
  /** A body read first is kept in memory up to this size, then in a private temp file (server.body_buffer_size). */
  bodyBufferBytes: number;
  writeTimeoutMs: number;
  log: Logger;
  /** The request's id, in every log line about it. */
  requestId: string;
  /** Filled in as the request goes: when it got a PHP process, when PHP finished, how it failed. */
  timing: PhpTiming;
  /** What a trusted proxy said about the client (server.trusted_proxies), or null. */
  forwarded?: ForwardedClient | null;
}

/** Hop-by-hop and framing headers are ours to set, not PHP's (RFC 9110 7.6.1). */
/**
 * PHP's header names in lower case, remembered: a site's scripts send the same few names, and the
 * CGI parser hands a repeated head over as the same strings (see cgi/response.ts), whose hash V8
 * keeps, so the lookup is cheaper than lower-casing each name of each response (issue 8).
 */
const LOWER_NAMES = new Map<string, string>();

function lowerCaseOf(name: string): string {
  let lower = LOWER_NAMES.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (LOWER_NAMES.size >= 1024) LOWER_NAMES.clear();
    LOWER_NAMES.set(name, lower);
  }
  return lower;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

/**
 * Runs a PHP request and answers it. The answer is settled through the response's own events; the
 * returned promise (only while a body is read first) settles when PHP has the request.
 * Written without a promise or closures per request on purpose (issue 8): one PhpExchange object is
 * the handler the backend calls.
 */
export function proxyToPhp(request: IncomingMessage, response: ServerResponse, target: ProxyTarget): Promise<void> | undefined {
  const { log, timing } = target;
  timing.backend = target.backend.kind;
  timing.script = target.route.script;
  const lengthHeader = request.headers['content-length'];
  const chunked = request.headers['transfer-encoding'] !== undefined;
  if (chunked) return spoolThenProxy(request, response, target);
  let contentLength: number | null = null;
  let body: RequestBody = null;
  if (lengthHeader !== undefined) {
    contentLength = Number(lengthHeader);
    if (contentLength > target.maxBodyBytes) {
      log.info(
        { app: target.app, req: target.requestId, bytes: contentLength },
        `413 ${request.method} ${request.url}: body of ${contentLength} bytes is over max_body_size (${target.maxBodyBytes})`,
      );
      response.setHeader('Connection', 'close');
      sendErrorWithId(request, response, target.requestId, 413, `The request body is larger than ${target.maxBodyBytes} bytes.`);
      return undefined;
    }
    if (contentLength > 0) {
      // A small body the fast path read with the head is whole in memory already (fast-http.ts).
      const inMemory = (request as IncomingMessage & { fastBody?: Buffer | null }).fastBody;
      if (inMemory) body = inMemory;
      // As nginx's fastcgi_request_buffering: a slow upload must not hold a PHP worker while its body
      // trickles in, or a handful of slow clients starve the pool.
      else if (target.requestBuffering) return spoolThenProxy(request, response, target);
      else body = request;
    }
  }
  new PhpExchange(request, response, target, null).start(contentLength, body);
  return undefined;
}

/**
 * The body is read completely before PHP is asked: always for a chunked body (PHP needs its
 * CONTENT_LENGTH), and for every body with request buffering on.
 */
async function spoolThenProxy(request: IncomingMessage, response: ServerResponse, target: ProxyTarget): Promise<void> {
  let spooled: SpooledBody;
  try {
    // A body the fast path streams (fast-http.ts) comes through its own source, not the request.
    const source = (request as IncomingMessage & { fastBodySource?: FastBody | null }).fastBodySource ?? request;
    spooled = await spoolBody(source, target.maxBodyBytes, target.bodyBufferBytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // The fast path's read_timeout for a body (node:http answers its own through clientError).
      target.log.info({ app: target.app, req: target.requestId }, `408 ${request.method} ${request.url}: ${(error as Error).message}`);
      response.setHeader('Connection', 'close');
      sendErrorWithId(request, response, target.requestId, 408, 'The request body did not arrive in time.');
    } else if (error instanceof BodyTooLargeError) {
      // Only a chunked body gets here: a Content-Length over the limit was refused before reading.
      target.log.info({ app: target.app, req: target.requestId }, `413 ${request.method} ${request.url}: chunked body over max_body_size (${target.maxBodyBytes})`);
      response.setHeader('Connection', 'close');
      sendErrorWithId(request, response, target.requestId, 413, `The request body is larger than ${target.maxBodyBytes} bytes.`);
    } else {
      // The client went away mid-upload: nobody is left to answer.
      response.destroy();
    }
    return;
  }
  target.timing.queuedAt = performance.now();
  new PhpExchange(request, response, target, spooled).start(spooled.length, spooled.body);
}

/** A connection's addresses, as CGI wants them. */
interface Endpoints extends ConnectionMemo {
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  tls: boolean;
}

/**
 * Kept per connection: they never change on it, and each of Node's getters looks them up through
 * the socket's handle again, four lookups per request on a kept-alive connection (issue 8).
 */
const ENDPOINTS = new WeakMap<Socket, Endpoints>();

function endpointsOf(socket: Socket & Partial<TLSSocket>): Endpoints {
  let ends = ENDPOINTS.get(socket);
  if (ends === undefined) {
    ends = {
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      tls: socket.encrypted === true,
      params: null,
    };
    // A socket whose peer is already gone has no address to remember; the next request asks again.
    if (ends.remoteAddress !== '') ENDPOINTS.set(socket, ends);
  }
  return ends;
}

/** An error page that carries the request id, as every other answer does. */
function sendErrorWithId(request: IncomingMessage, response: ServerResponse, requestId: string, status: number, detail: string, code?: string): void {
  if (!response.headersSent) response.setHeader('X-Request-Id', requestId);
  sendError(request, response, status, detail, code);
}

/**
 * One request to PHP and its answer: the backend's ResponseHandler. The CGI head is parsed from the
 * first stdout bytes; the body then streams to the client with backpressure. A small response that
 * ends in the same socket read as its head goes out with a Content-Length, in one write.
 */
class PhpExchange implements ResponseHandler {
  readonly #request: IncomingMessage;
  readonly #response: ServerResponse;
  readonly #target: ProxyTarget;
  readonly #spooled: SpooledBody | null;
  readonly #parser = new CgiResponseParser();
  #head: CgiHead | null = null;
  /** Body bytes that arrived with the head, held until the end of the socket read (see #flushHeld). */
  #held: Buffer[] | null = null;
  #heldBytes = 0;
  #ended = false;
  #settled = false;
  #drainTimer: NodeJS.Timeout | null = null;
  /** Set once dispatch returns; a backend may call the handler before that (a full queue). */
  #controller: RequestController | null = null;
  readonly #onClose = (): void => this.#clientClosed();
  #onDrain: (() => void) | null = null;

  constructor(request: IncomingMessage, response: ServerResponse, target: ProxyTarget, spooled: SpooledBody | null) {
    this.#request = request;
    this.#response = response;
    this.#target = target;
    this.#spooled = spooled;
  }

  start(contentLength: number | null, body: RequestBody): void {
    const request = this.#request;
    const target = this.#target;
    const ends = endpointsOf(request.socket as Socket & Partial<TLSSocket>);
    const forwarded = target.forwarded ?? null;
    const params = encodeCgiParams(
      {
        method: request.method ?? 'GET',
        target: request.url ?? '/',
        query: target.query,
        httpVersion: request.httpVersion,
        rawHeaders: request.rawHeaders,
        remoteAddress: forwarded ? forwarded.address : ends.remoteAddress,
        remotePort: ends.remotePort,
        localAddress: ends.localAddress,
        localPort: forwarded?.port ?? ends.localPort,
        tls: forwarded?.tls ?? ends.tls,
        contentLength,
        connection: ends,
      },
      target.route,
    );
    this.#response.on('close', this.#onClose);
    const controller = target.backend.dispatch({ params, body }, this, {
      method: request.method,
      uri: request.url,
      script: target.route.script,
      contentLength: contentLength ?? 0,
      requestId: target.requestId,
    });
    if (!this.#settled) this.#controller = controller;
  }

  // ---- the backend's ResponseHandler ----

  onDispatch(process: { pid: number | null }): void {
    this.#target.timing.dispatchedAt = performance.now();
    this.#target.timing.workerPid = process.pid;
  }

  onStdout(chunk: Buffer): boolean {
    if (this.#settled) return true;
    let data = chunk;
    if (!this.#head) {
      let parsed: ReturnType<CgiResponseParser['push']>;
      try {
        parsed = this.#parser.push(chunk);
      } catch (error) {
        this.#fail(error);
        return true;
      }
      if (!parsed) return true;
      this.#head = parsed.head;
      data = parsed.body;
      this.#held = [];
      // The rest of this socket read (more body, END_REQUEST) is handled before the microtask runs.
      queueMicrotask(() => this.#flushHeld());
    }
    if (this.#held) {
      if (data.length > 0) {
        this.#held.push(data);
        this.#heldBytes += data.length;
      }
      return true;
    }
    if (data.length === 0) return true;
    const ok = this.#response.write(data);
    if (!ok) this.#waitForDrain();
    return ok;
  }

  onStderr(chunk: Buffer): void {
    const text = chunk.toString('utf8').trimEnd();
    if (!text) return;
    const target = this.#target;
    const request = this.#request;
    target.log.warn(
      { app: target.app, req: target.requestId, script: target.route.script, stream: 'stderr' },
      `PHP stderr (${request.method} ${request.url}): ${text.slice(0, 4096)}`,
    );
  }

  onEnd(): void {
    if (this.#settled) return;
    this.#ended = true;
    this.#target.timing.endedAt = performance.now();
    if (!this.#head) {
      try {
        this.#parser.finish();
      } catch (error) {
        this.#fail(error);
      }
      return;
    }
    if (this.#held) return; // #flushHeld (queued) sends everything with a Content-Length
    this.#response.end();
    this.#settle();
  }

  onError(error: Error): void {
    this.#fail(error);
  }

  // ---- the response ----

  /**
   * The head and what arrived with it: a response that ended in the same read goes out whole with
   * a Content-Length; otherwise the head and the held bytes go out and the rest streams.
   */
  #flushHeld(): void {
    const chunks = this.#held;
    if (!chunks || this.#settled) return;
    this.#held = null;
    const request = this.#request;
    const response = this.#response;
    try {
      // php-cgi sends no body for HEAD, so the bytes held say nothing about GET's length: only a
      // Content-Length PHP set itself goes out (RFC 9110 9.3.2 allows none).
      this.#writeHead(this.#ended && request.method !== 'HEAD' ? this.#heldBytes : null);
    } catch (error) {
      this.#fail(new CgiHeadError(`PHP sent a header Node cannot send: ${(error as Error).message}`));
      return;
    }
    if (this.#ended) {
      response.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.#heldBytes));
      this.#settle();
      return;
    }
    let ok = true;
    for (const chunk of chunks) ok = response.write(chunk);
    if (!ok) this.#waitForDrain();
  }

  /**
   * PHP's headers in one flat [name, value, ...] array for writeHead, with the request id first:
   * Node takes that array as it is (repeated headers such as Set-Cookie stay apart) instead of
   * storing each header with setHeader first, which costs more per response.
   */
  #writeHead(length: number | null): void {
    const head = this.#head!;
    const flat: string[] = ['X-Request-Id', this.#target.requestId];
    for (const [name, value] of head.headers) {
      const lower = lowerCaseOf(name);
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === 'content-length' && length !== null) continue;
      flat.push(name, value);
    }
    if (length !== null && !bodyless(head.status)) flat.push('Content-Length', String(length));
    if (head.reason) this.#response.writeHead(head.status, head.reason, flat);
    else this.#response.writeHead(head.status, flat);
  }

  #waitForDrain(): void {
    if (this.#drainTimer) return;
    if (!this.#onDrain) {
      this.#onDrain = () => {
        if (this.#drainTimer) clearTimeout(this.#drainTimer);
        this.#drainTimer = null;
        this.#controller?.resume();
      };
      this.#response.on('drain', this.#onDrain);
    }
    const target = this.#target;
    this.#drainTimer = setTimeout(() => {
      target.log.info({ app: target.app, req: target.requestId }, `${this.#request.method} ${this.#request.url}: the client accepted no data for ${target.writeTimeoutMs} ms; closing`);
      this.#controller?.abort(new FastCGIAbortError('client write timeout'));
      this.#response.destroy();
      this.#settle();
    }, target.writeTimeoutMs);
  }

  #fail(error: unknown): void {
    if (this.#settled) return;
    const target = this.#target;
    const request = this.#request;
    const failure = describeFailure(error);
    const text = error instanceof Error ? error.message : String(error);
    const code = failure.code ?? (error instanceof CgiHeadError ? 'CGI_BAD_HEAD' : undefined);
    target.timing.endedAt ??= performance.now();
    target.timing.error = code ?? 'ERROR';
    target.log.warn(
      { app: target.app, req: target.requestId, status: failure.status, code, script: target.route.script },
      `${failure.status} ${request.method} ${request.url}: ${text}${code ? ` (${code})` : ''}`,
    );
    this.#controller?.abort(error);
    sendErrorWithId(request, this.#response, target.requestId, failure.status, failure.message, code);
    this.#settle();
  }

  #clientClosed(): void {
    if (this.#settled || this.#response.writableFinished) return;
    // The client went away: stop PHP's request so the worker is freed.
    const timing = this.#target.timing;
    timing.error ??= 'FCGI_REQUEST_ABORTED';
    timing.endedAt ??= performance.now();
    this.#controller?.abort(new FastCGIAbortError('the HTTP client closed the connection'));
    this.#settle();
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#drainTimer = null;
    this.#response.off('close', this.#onClose);
    if (this.#onDrain) this.#response.off('drain', this.#onDrain);
    if (this.#spooled) void this.#spooled.cleanup();
  }
}

/** Statuses that carry no body and no Content-Length (RFC 9110 8.6). HEAD keeps GET's length. */
function bodyless(status: number): boolean {
  return status === 204 || status === 304 || (status >= 100 && status < 200);
}
