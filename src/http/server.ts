// The HTTP front: node:http with the configured timeouts and limits, requests normalised and routed
// to an app by URL prefix, then to a static file, a redirect, or PHP; graceful close.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ServerConfig } from '../config/load.js';
import type { Logger } from '../log.js';
import { Router } from '../router.js';
import type { Backend } from '../backend.js';
import { describeFailure, sendError } from './error-page.js';
import { normalizeTarget } from './path.js';
import { proxyToPhp } from './proxy.js';
import { resolvePath, type Resolution, type ResolveOptions } from './resolve.js';
import { serveStatic } from './static.js';
import { CACHED_FILE_BYTES } from './static-cache.js';
import { FastHttp, type FastHttpOptions } from './fast-http.js';
import { TrustedProxies, type ForwardedClient } from './forwarded.js';
import { FastResponse, type FastRequest } from './fast-response.js';
import type { LiveReload } from './live-reload.js';
import { newPhpTiming, requestIdFor, type PhpTiming, type RequestKind, type RequestObserver } from '../observe/request-record.js';

export interface HttpApp {
  name: string;
  /** URL prefix as configured ("/blog", or "/"). */
  path: string;
  resolve: ResolveOptions;
  backend: Backend;
}

/**
 * Answers requests TQServer handles itself (status, metrics, health); returns false to pass.
 * `claims(path)` says beforehand whether it would answer, so the front sets X-Request-Id only on
 * responses that need it before PHP's headers go out (see #route).
 */
export type AdminHandler = ((request: IncomingMessage, response: ServerResponse, path: string, query: string) => boolean) & {
  claims?: (path: string) => boolean;
};

export interface HttpFrontOptions {
  server: ServerConfig;
  apps: readonly HttpApp[];
  log: Logger;
  serverSoftware: string;
  admin?: AdminHandler;
  /** Called once per request when its response is finished or abandoned. */
  onRequest?: RequestObserver;
  /** Dev mode's live reload (its reserved paths, the tag in pages); absent in production. */
  liveReload?: LiveReload;
}

/** Where a request goes, once its target is checked and matched. */
interface Routed {
  query: string;
  app: HttpApp;
  resolution: Resolution;
}

/** What #route learns about a request, for the record observers get. */
interface RequestContext {
  id: string;
  app: string | null;
  kind: RequestKind;
  timing: PhpTiming | null;
  /** The client behind a trusted proxy (server.trusted_proxies); null: the peer is the client. */
  forwarded: ForwardedClient | null;
}

export class HttpFront {
  readonly #server: http.Server;
  readonly #fast: FastHttp;
  #fastOptions: FastHttpOptions;
  #options: HttpFrontOptions;
  readonly #log: Logger;
  #router: Router<HttpApp>;
  #inFlight = 0;
  #idleWaiters: Array<() => void> = [];
  #closing = false;
  /** null while server.trusted_proxies is empty: forwarding headers are then never looked at. */
  #trusted: TrustedProxies | null;

  constructor(options: HttpFrontOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#router = new Router(options.apps.map((app) => [app.path, app] as const));
    this.#trusted = trustedProxiesOf(options.server);
    const s = options.server;
    this.#server = http.createServer(
      {
        maxHeaderSize: s.maxHeaderBytes,
        requestTimeout: s.readTimeoutMs,
        headersTimeout: Math.min(s.readTimeoutMs, 60_000),
        keepAliveTimeout: s.idleTimeoutMs,
        // Node checks requestTimeout and headersTimeout only this often (30 s by default, which would
        // let a slow client hold a connection for up to twice read_timeout).
        connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(s.readTimeoutMs / 4))),
        // Reject a request with both Content-Length and Transfer-Encoding, and other ambiguities.
        insecureHTTPParser: false,
      },
      (request, response) => this.#handle(request, response),
    );
    // Every connection starts on the fast path (fast-http.ts); node:http's own listener gets the ones
    // that path hands on. It is the listener http.Server registers for 'connection'.
    const nodeConnection = this.#server.listeners('connection')[0] as (socket: Socket) => void;
    this.#server.removeListener('connection', nodeConnection);
    this.#fastOptions = fastOptionsOf(s);
    this.#fast = new FastHttp({
      take: (request, respond) => this.#takeFast(request, respond),
      handoff: (socket) => nodeConnection.call(this.#server, socket),
      timedOut: (socket) => this.#onClientError(Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }), socket),
      options: () => this.#fastOptions,
    });
    this.#server.on('connection', (socket: Socket) => this.#fast.accept(socket));
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => this.#onClientError(error, socket));
    // CONNECT (an authority-form target) asks for a tunnel, and TQServer is no proxy. Without a
    // listener Node drops the connection without a word; nginx answers 400, and so does this.
    this.#server.on('connect', (request: IncomingMessage, socket: Socket) => {
      socket.on('error', () => socket.destroy());
      this.#log.info({ remote: socket.remoteAddress }, `400 CONNECT ${String(request.url).slice(0, 200)}: TQServer is not a proxy`);
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nBad Request\n');
    });
  }

  /** Replaces the apps (hot reload); requests in progress keep the app they started with. */
  /**
   * Applies reloaded server settings that a listening server can take: timeouts, body limit,
   * status and admin routing, the header limit (node:http reads it for each new connection; those
   * open keep theirs). host and port need a restart (config/reload.ts).
   */
  updateServer(server: ServerConfig, admin: AdminHandler | undefined): void {
    this.#options = { ...this.#options, server, admin };
    this.#fastOptions = fastOptionsOf(server);
    this.#trusted = trustedProxiesOf(server);
    // A documented option of http.createServer, kept as a field node:http reads per connection (@types/node omits the field).
    (this.#server as { maxHeaderSize?: number }).maxHeaderSize = server.maxHeaderBytes;
    this.#server.requestTimeout = server.readTimeoutMs;
    this.#server.headersTimeout = Math.min(server.readTimeoutMs, 60_000);
    this.#server.keepAliveTimeout = server.idleTimeoutMs;
  }

  /** Turns dev mode's live reload on (a hub) or off (undefined) for requests from now on. */
  setLiveReload(liveReload: LiveReload | undefined): void {
    this.#options = { ...this.#options, liveReload };
  }

  setApps(apps: readonly HttpApp[]): void {
    this.#router = new Router(apps.map((app) => [app.path, app] as const));
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests answered on the fast path, and connections it handed to node:http (fast-http.ts). */
  get fastPath(): { readonly requests: number; readonly handoffs: number } {
    return this.#fast.counts;
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = this.#options.server;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.#server.once('error', onError);
      this.#server.listen({ host, port }, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    this.#server.on('error', (error) => this.#log.error({ err: error.message }, `HTTP server error: ${error.message}`));
    return this.#server.address() as AddressInfo;
  }

  get address(): AddressInfo | null {
    return (this.#server.address() as AddressInfo | null) ?? null;
  }

  /**
   * Graceful: stop accepting, close idle keep-alive connections, let requests in progress finish
   * within graceMs, then close every connection.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    this.#fast.closeIdle();
    if (this.#inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), graceMs);
      });
      if ((await Promise.race([idle, expired])) === 'expired') {
        this.#log.warn({ inFlight: this.#inFlight }, `${this.#inFlight} requests still running after ${graceMs} ms; closing their connections`);
      }
      clearTimeout(timer);
    }
    this.#server.closeAllConnections();
    this.#fast.closeAll();
    await closed;
  }

  /**
   * A request the fast path parsed: taken when it goes to PHP or to a file small enough for memory
   * (the answers FastResponse is made for); anything else, node:http answers.
   */
  #takeFast(request: FastRequest, respond: () => FastResponse): boolean {
    if (this.#options.liveReload) return false;
    const target = normalizeTarget(request.url);
    if (!target.ok) return false;
    const admin = this.#options.admin;
    if (admin && (admin.claims?.(target.path) ?? true)) return false;
    const match = this.#router.match(target.path);
    if (!match) return false;
    const resolution = resolvePath(match.rest, match.target.resolve);
    if (resolution.kind !== 'php' && (resolution.kind !== 'static' || resolution.stats.size > CACHED_FILE_BYTES)) return false;
    // Other methods on a file get node:http's answers (405 and its Allow header).
    if (resolution.kind !== 'php' && request.method !== 'GET' && request.method !== 'HEAD') return false;
    // A body still coming is read to its end first (spool.ts); streamed to PHP as it comes, it is node:http's.
    if (request.fastBodySource !== null && !this.#options.server.requestBuffering) return false;
    // FastRequest and FastResponse carry what the front, the proxy and the error pages use of these.
    this.#handle(request as unknown as IncomingMessage, respond() as unknown as ServerResponse, { query: target.query, app: match.target, resolution });
    return true;
  }

  #handle(request: IncomingMessage, response: ServerResponse, routed?: Routed): void {
    this.#inFlight += 1;
    const startedAt = Date.now();
    const startedPerf = performance.now();
    const socket = request.socket;
    // The fast path counts its bytes itself; Node's bytesWritten getter copies the socket's write queue.
    const fast = (response as unknown) instanceof FastResponse;
    const bytesBefore = fast ? 0 : socket.bytesWritten;
    const trusted = this.#trusted;
    const context: RequestContext = {
      id: requestIdFor(request.headers['x-request-id']),
      app: null,
      kind: 'rejected',
      timing: null,
      forwarded: trusted ? trusted.clientOf(socket.remoteAddress ?? '', request.headers) : null,
    };
    // X-Request-Id is set by each answer (#route, the PHP proxy) rather than here: a header set
    // before writeHead makes Node store every PHP header one by one (issue 8).
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      this.#inFlight -= 1;
      if (this.#inFlight === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
      const observe = this.#options.onRequest;
      if (!observe) return;
      const now = performance.now();
      const timing = context.timing;
      const dispatched = timing?.dispatchedAt ?? null;
      observe({
        id: context.id,
        front: 'http',
        app: context.app,
        kind: context.kind,
        method: request.method ?? '',
        uri: request.url ?? '',
        httpVersion: request.httpVersion,
        remoteAddress: context.forwarded?.address ?? socket.remoteAddress ?? '',
        status: response.statusCode,
        bytesSent: fast ? (response as unknown as FastResponse).bytesSent : socket.bytesWritten - bytesBefore,
        startedAt,
        durationMs: now - startedPerf,
        // The queue wait starts when the backend got the request: a body read first is the client's time, not the pool's.
        queueMs: timing ? (dispatched ?? timing.endedAt ?? now) - (timing.queuedAt ?? startedPerf) : null,
        phpMs: dispatched !== null ? (timing!.endedAt ?? now) - dispatched : null,
        backend: timing?.backend ?? null,
        workerPid: timing?.workerPid ?? null,
        script: timing?.script ?? null,
        userAgent: headerText(request.headers['user-agent']),
        referer: headerText(request.headers.referer),
        error: timing?.error ?? null,
        aborted: !response.writableFinished,
      });
    };
    // 'close' comes once per response: `on` spares the wrapper `once` makes.
    response.on('close', finished);
    if (this.#closing) response.setHeader('Connection', 'close');
    let pending: Promise<void> | undefined;
    try {
      pending = routed ? this.#answer(request, response, context, routed) : this.#route(request, response, context);
    } catch (error) {
      this.#unexpected(request, response, context, error);
      return;
    }
    pending?.catch((error: unknown) => this.#unexpected(request, response, context, error));
  }

  #unexpected(request: IncomingMessage, response: ServerResponse, context: RequestContext, error: unknown): void {
    const failure = describeFailure(error);
    this.#log.error(
      { req: context.id, err: error instanceof Error ? error.stack : String(error) },
      `${request.method} ${request.url}: unexpected error: ${error instanceof Error ? error.message : String(error)}`,
    );
    if (!response.headersSent) response.setHeader('X-Request-Id', context.id);
    sendError(request, response, failure.status, failure.message);
  }

  /**
   * Answers a request, or hands it to PHP. Not async: a promise per request costs, and only a
   * chunked upload (spooled before PHP sees it) has anything to wait for.
   */
  #route(request: IncomingMessage, response: ServerResponse, context: RequestContext): Promise<void> | undefined {
    const refusal = refuseFraming(request);
    if (refusal) {
      this.#log.info({ req: context.id }, `${refusal.status} ${request.method} ${request.url?.slice(0, 200)}: ${refusal.reason}`);
      response.setHeader('Connection', 'close');
      response.setHeader('X-Request-Id', context.id);
      sendError(request, response, refusal.status, refusal.reason);
      return undefined;
    }
    const target = normalizeTarget(request.url ?? '/');
    if (!target.ok) {
      this.#log.info({ req: context.id, url: request.url?.slice(0, 200) }, `400 ${request.method}: ${target.reason}`);
      response.setHeader('X-Request-Id', context.id);
      sendError(request, response, 400, 'The request path is not valid.');
      return undefined;
    }
    const admin = this.#options.admin;
    if (admin && (admin.claims?.(target.path) ?? true)) {
      response.setHeader('X-Request-Id', context.id);
      if (admin(request, response, target.path, target.query)) {
        context.kind = 'admin';
        return undefined;
      }
    }
    const live = this.#options.liveReload;
    if (live && live.claims(target.path)) {
      context.kind = 'admin';
      response.setHeader('X-Request-Id', context.id);
      live.answer(request, response, target.path);
      return undefined;
    }
    const match = this.#router.match(target.path);
    if (!match) {
      context.kind = 'not-found';
      if (!response.hasHeader('X-Request-Id')) response.setHeader('X-Request-Id', context.id);
      sendError(request, response, 404, 'No application is mounted at this path.');
      return undefined;
    }
    return this.#answer(request, response, context, { query: target.query, app: match.target, resolution: resolvePath(match.rest, match.target.resolve) });
  }

  /** Answers a request matched to an app: a file, a redirect, a 404, or PHP. */
  #answer(request: IncomingMessage, response: ServerResponse, context: RequestContext, routed: Routed): Promise<void> | undefined {
    const { app, resolution } = routed;
    context.app = app.name;
    context.kind = resolution.kind;
    const live = this.#options.liveReload;
    if (live && (resolution.kind === 'php' || resolution.kind === 'static')) live.inject(request, response);
    // PHP and static answers put the id in their one head array (a header set before writeHead
    // makes Node store every header one by one).
    if (resolution.kind !== 'php' && resolution.kind !== 'static' && !response.hasHeader('X-Request-Id')) response.setHeader('X-Request-Id', context.id);
    switch (resolution.kind) {
      case 'static':
        serveStatic(request, response, resolution.file, resolution.stats, response.hasHeader('X-Request-Id') ? undefined : context.id);
        return undefined;
      case 'redirect': {
        const prefix = app.path === '/' ? '' : app.path;
        const location = `${encodePath(prefix + resolution.path)}${routed.query ? `?${routed.query}` : ''}`;
        const method = request.method ?? 'GET';
        response.writeHead(method === 'GET' || method === 'HEAD' ? 301 : 308, { Location: location, 'Content-Length': '0' });
        response.end();
        return undefined;
      }
      case 'not-found':
        this.#log.debug({ app: app.name, req: context.id, reason: resolution.reason }, `404 ${request.method} ${request.url}: ${resolution.reason}`);
        sendError(request, response, 404, 'Not found.');
        return undefined;
      case 'php':
        context.timing = newPhpTiming();
        return proxyToPhp(request, response, {
          app: app.name,
          backend: app.backend,
          route: {
            documentRoot: app.resolve.documentRoot,
            prefix: app.path === '/' ? '' : app.path,
            script: resolution.script,
            pathInfo: resolution.pathInfo,
            serverName: this.#options.server.host,
            serverSoftware: this.#options.serverSoftware,
            requestId: context.id,
          },
          query: routed.query,
          maxBodyBytes: this.#options.server.maxBodyBytes,
          requestBuffering: this.#options.server.requestBuffering,
          bodyBufferBytes: this.#options.server.bodyBufferBytes,
          writeTimeoutMs: this.#options.server.writeTimeoutMs,
          log: this.#log,
          requestId: context.id,
          timing: context.timing,
          forwarded: context.forwarded,
        });
      default: {
        const never: never = resolution;
        throw new Error(`unhandled resolution ${JSON.stringify(never)}`);
      }
    }
  }

  #onClientError(error: NodeJS.ErrnoException, socket: Socket): void {
    const code = error.code ?? '';
    // Node's parser refuses ambiguous framing (Content-Length with Transfer-Encoding, bad chunks):
    // answer and close, so nothing smuggled reaches an app.
    // The client closing mid-request (a reset, or EOF inside a message) is no protocol error: nobody
    // is left to answer, and destroying the socket is what aborts the PHP request it was sending.
    const gone = code === 'ECONNRESET' || code === 'HPE_INVALID_EOF_STATE' || socket.readableEnded;
    const status = gone ? 0 : code === 'HPE_HEADER_OVERFLOW' ? 431 : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    if (status !== 0) this.#log.info({ code, remote: socket.remoteAddress }, `${status}: malformed or incomplete request from ${socket.remoteAddress}: ${error.message}`);
    else this.#log.debug({ code, remote: socket.remoteAddress }, `client ${socket.remoteAddress} closed the connection in the middle of a request (${error.message})`);
    if (status === 0 || !socket.writable) {
      socket.destroy();
      return;
    }
    const reason = http.STATUS_CODES[status] ?? 'Bad Request';
    const answer = () => {
      if (socket.writable) socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${reason.length + 1}\r\n\r\n${reason}\n`);
      else socket.destroy();
    };
    // A pipelined request before the bad one may still be answering: its response goes out first,
    // then the error (answering at once would cut it off and pair the error with the wrong request).
    // The parser has stopped, so nothing after the bad request is ever handled.
    const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (inFlight && !inFlight.writableFinished && !inFlight.req.complete) {
      // The error is in the in-flight request's own body (llhttp reports a bad Transfer-Encoding
      // only after the headers were handed to us): it can never complete, so it is answered now.
      if (inFlight.headersSent) socket.destroy();
      else answer();
      return;
    }
    if (inFlight && !inFlight.writableFinished) {
      inFlight.once('finish', answer);
      inFlight.once('close', () => {
        if (!inFlight.writableFinished) socket.destroy();
      });
      return;
    }
    // The error is in the body of a request answered before its body was read (a 404, a 405, a
    // redirect): a second answer would be taken for the answer to the client's next request.
    const parsing = (socket as Socket & { parser?: { incoming?: IncomingMessage | null } | null }).parser?.incoming;
    if (parsing && !parsing.complete) {
      socket.destroy();
      return;
    }
    answer();
  }
}

/**
 * What Node's parser lets through but RFC 9112 refuses (nginx too): an HTTP/2.0 request line (505),
 * a transfer coding besides chunked (6.1: 501; any Transfer-Encoding in HTTP/1.0 is faulty framing,
 * 400), a second Host (3.2: 400). Null for the usual request, after a few cheap checks.
 */
function refuseFraming(request: IncomingMessage): { status: number; reason: string } | null {
  if (request.httpVersionMajor > 1) return { status: 505, reason: `HTTP/${request.httpVersion} is not HTTP/1.x.` };
  const coding = request.headers['transfer-encoding'];
  if (coding !== undefined) {
    if (request.httpVersionMinor === 0) return { status: 400, reason: 'Transfer-Encoding is not HTTP/1.0.' };
    // A coding before chunked is one TQServer cannot decode (6.1: 501). Without chunked last the
    // body has no known end: Node's parser answers that itself (400) once it reads the body.
    const codings = coding.toLowerCase();
    if (codings.trim() !== 'chunked' && /,[ \t]*chunked[ \t]*$/.test(codings)) return { status: 501, reason: 'Only the chunked transfer coding is supported.' };
  }
  const raw = request.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host' && ++hosts > 1) return { status: 400, reason: 'More than one Host header.' };
  return null;
}

function fastOptionsOf(server: ServerConfig): FastHttpOptions {
  return {
    maxHeaderBytes: server.maxHeaderBytes,
    keepAliveTimeoutMs: server.idleTimeoutMs,
    firstRequestTimeoutMs: Math.min(server.readTimeoutMs, 60_000),
    bodyTimeoutMs: server.readTimeoutMs,
  };
}

function headerText(value: string | string[] | undefined): string {
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

/** Percent-encodes a decoded path for a Location header, keeping "/" and unreserved characters. */
function encodePath(path: string): string {
  return path.split('/').map((segment) => encodeURIComponent(segment)).join('/');
}

/** The trusted proxies of server.trusted_proxies, or null for none (the common case: nothing to check). */
function trustedProxiesOf(server: ServerConfig): TrustedProxies | null {
  return server.trustedProxies.length > 0 ? new TrustedProxies(server.trustedProxies) : null;
}
