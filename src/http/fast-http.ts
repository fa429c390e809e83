// The fast HTTP/1.1 path (issue 8): node:http's parser, IncomingMessage, ServerResponse and their
// streams cost about a tenth of the CPU of a hello-world request through TQServer. A new connection
// starts here. Each request whose head arrived whole and is of the plain kind (GET or HEAD, or a
// POST, PUT, PATCH or DELETE for PHP with a Content-Length body, read before PHP is asked: handed on
// whole when it came with its head, else streamed in as FastBody; HTTP/1.1, exactly one Host, no
// Transfer-Encoding, Upgrade or Expect, every header a valid token with a printable ASCII value,
// each name once) is parsed here and answered with FastRequest and FastResponse. The first request
// that is anything else (or an incomplete head) hands the connection to node:http, with the bytes
// read so far put back: node:http then keeps it for good, and its parser, limits, timeouts and
// error answers apply as before. So this path never accepts what node:http would refuse.

import type { Socket } from 'node:net';
import { isOriginTarget, isPlainFieldValue, isToken } from './chars.js';
import { FastBody, FastRequest, FastResponse, type FastMethod, type ResponseConnection } from './fast-response.js';

export interface FastHttpOptions {
  /** A head longer than this goes to node:http (which answers 431). */
  maxHeaderBytes: number;
  /** An idle kept-alive connection is closed after this long (server.idle_timeout). */
  keepAliveTimeoutMs: number;
  /** A new connection that has sent nothing is closed after this long (server.read_timeout). */
  firstRequestTimeoutMs: number;
  /** A request whose body has not come whole this long after its head is answered 408 (server.read_timeout). */
  bodyTimeoutMs: number;
}

export interface FastHttpHandlers {
  /** Takes the request (answering it through the response) or returns false to leave it to node:http. */
  take(request: FastRequest, respond: () => FastResponse): boolean;
  /** Gives the connection to node:http. */
  handoff(socket: Socket): void;
  /** A new connection sent nothing in firstRequestTimeoutMs: answered 408 as node:http would. */
  timedOut(socket: Socket): void;
  /** Read for each request: keep it one object, replaced when the settings change. */
  options(): FastHttpOptions;
}

/** Headers beyond this many send the request to node:http. */
const MAX_HEADERS = 64;
/** Unread pipelined bytes held while a response runs, before the socket is paused. */
const PIPELINE_BYTES = 64 * 1024;
/** A body up to this size that came whole with its head is handed on as one Buffer; others stream (FastBody). */
export const FAST_BODY_BYTES = 64 * 1024;
/** The methods taken, by the request line's start. */
const METHODS: ReadonlyArray<readonly [string, FastMethod]> = [
  ['GET ', 'GET'],
  ['POST ', 'POST'],
  ['HEAD ', 'HEAD'],
  ['PUT ', 'PUT'],
  ['DELETE ', 'DELETE'],
  ['PATCH ', 'PATCH'],
];
const CONTENT_LENGTH = /^\d{1,15}$/;

/** Accepts connections for the fast path, closes idle ones, and closes them all at shutdown. */
export class FastHttp {
  readonly #handlers: FastHttpHandlers;
  readonly #connections = new Set<FastConnection>();
  #sweep: NodeJS.Timeout | null = null;
  #sweepEveryMs = 0;
  #closing = false;
  #keepAliveMs = -1;
  #keepAliveLine = '';
  /** Requests answered on the fast path, and connections handed to node:http. */
  readonly counts = { requests: 0, handoffs: 0 };

  constructor(handlers: FastHttpHandlers) {
    this.#handlers = handlers;
  }

  get closing(): boolean {
    return this.#closing;
  }

  get handlers(): FastHttpHandlers {
    return this.#handlers;
  }

  /** `Keep-Alive: timeout=N` as node:http sends it (none under a second), made once per setting. */
  keepAliveLine(ms: number): string {
    if (ms !== this.#keepAliveMs) {
      this.#keepAliveMs = ms;
      this.#keepAliveLine = ms >= 1000 ? `Keep-Alive: timeout=${Math.floor(ms / 1000)}\r\n` : '';
    }
    return this.#keepAliveLine;
  }

  accept(socket: Socket): void {
    if (this.#closing) {
      this.#handlers.handoff(socket);
      return;
    }
    this.#connections.add(new FastConnection(this, socket));
    this.#startSweep();
  }

  /** Called by a connection that closed or went to node:http. */
  forget(connection: FastConnection): void {
    this.#connections.delete(connection);
    if (this.#connections.size === 0 && this.#sweep) {
      clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  /** Shutdown: idle connections close now, busy ones after their response. */
  closeIdle(): void {
    this.#closing = true;
    for (const connection of this.#connections) connection.closeIfIdle();
  }

  closeAll(): void {
    this.#closing = true;
    for (const connection of this.#connections) connection.socket.destroy();
  }

  /** One timer for all connections: idle ones past their timeout are closed. */
  #startSweep(): void {
    const { keepAliveTimeoutMs, firstRequestTimeoutMs } = this.#handlers.options();
    const every = Math.max(50, Math.min(1000, Math.floor(Math.min(keepAliveTimeoutMs, firstRequestTimeoutMs) / 4)));
    if (this.#sweep && every === this.#sweepEveryMs) return;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweepEveryMs = every;
    this.#sweep = setInterval(() => {
      const options = this.#handlers.options();
      const now = Date.now();
      // A destroyed socket leaves the set on its 'close' event, after this loop.
      for (const connection of this.#connections) connection.expireIfIdle(now, options);
    }, every);
    this.#sweep.unref();
  }
}

/** One client connection while it is on the fast path. */
class FastConnection implements ResponseConnection {
  readonly socket: Socket;
  readonly #owner: FastHttp;
  /** Bytes read and not yet parsed: pipelined requests, the first one perhaps not yet whole. */
  #pending: Buffer | null = null;
  /** #pending is what followed a whole request in the same read (a pipelining client's next bytes). */
  #tail = false;
  #response: FastResponse | null = null;
  #requests = 0;
  #idleSince = Date.now();
  #paused = false;
  /** The running request's body while it streams in after its head, and when its head came. */
  #body: FastBody | null = null;
  #bodySince = 0;
  /** The body's reader paused the socket (spool.ts, while the disk catches up). */
  #bodyPaused = false;
  readonly #bodyFlow = {
    pause: (): void => {
      this.#bodyPaused = true;
      this.socket.pause();
    },
    resume: (): void => {
      this.#bodyPaused = false;
      if (!this.#paused) this.socket.resume();
    },
  };
  keepAlive = true;
  keepAliveLine = '';
  readonly #onData = (chunk: Buffer): void => this.#data(chunk);
  readonly #onEnd = (): void => this.#ended();
  readonly #onError = (): void => {
    this.socket.destroy();
  };
  readonly #onClose = (): void => this.#closed();
  readonly #onDrain = (): void => {
    this.#response?.emit('drain');
  };

  constructor(owner: FastHttp, socket: Socket) {
    this.#owner = owner;
    this.socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.on('drain', this.#onDrain);
  }

  closeIfIdle(): void {
    if (this.#response === null) this.socket.destroy();
  }

  expireIfIdle(now: number, options: FastHttpOptions): void {
    if (this.#body !== null && now - this.#bodySince >= options.bodyTimeoutMs) {
      const body = this.#body;
      this.#endBody();
      body.timeOut(options.bodyTimeoutMs);
      return;
    }
    if (this.#response !== null || this.socket.destroyed) return;
    if (this.#requests > 0 && this.#pending === null) {
      if (now - this.#idleSince >= options.keepAliveTimeoutMs) this.socket.destroy();
    } else if (now - this.#idleSince >= options.firstRequestTimeoutMs) {
      this.#leave();
      this.#owner.handlers.timedOut(this.socket);
    }
  }

  #data(chunk: Buffer): void {
    if (this.#body !== null) {
      const body = this.#body;
      const rest = body.push(chunk);
      if (!body.readableEnded) return;
      this.#endBody();
      if (rest === null) return;
      chunk = rest;
    }
    this.#pending = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#tail = false;
    if (this.#response !== null) {
      // A pipelined request waits for the answer before it; the client waits if it sends too much.
      if (this.#pending.length > PIPELINE_BYTES && !this.#paused) {
        this.#paused = true;
        this.socket.pause();
      }
      return;
    }
    this.#next();
  }

  /** Parses and starts the next request held, if there is one and nothing is running. */
  #next(): void {
    const bytes = this.#pending;
    if (bytes === null || this.#response !== null) return;
    const { take, options } = this.#owner.handlers;
    const headEnd = bytes.indexOf('\r\n\r\n', 0, 'latin1');
    const limits = options();
    if (headEnd < 0) {
      // The start of a pipelined request cut by the read waits for its rest; a head that does not
      // come whole in one read (a client writing it piecemeal, or a slowloris) is node:http's.
      if (!this.#tail || bytes.length > limits.maxHeaderBytes) this.#handoff();
      return;
    }
    if (headEnd + 4 > limits.maxHeaderBytes) {
      this.#handoff();
      return;
    }
    const request = parseHead(bytes.toString('latin1', 0, headEnd), this.socket);
    if (request === null) {
      this.#handoff();
      return;
    }
    let end = headEnd + 4;
    let early: Buffer | null = null;
    if (request.contentLength > 0) {
      if (bytes.length - end >= request.contentLength && request.contentLength <= FAST_BODY_BYTES) {
        request.fastBody = bytes.subarray(end, end + request.contentLength);
        end += request.contentLength;
      } else {
        // The body streams in after its head: what came with the head goes first, once it is taken.
        request.fastBodySource = new FastBody(request.contentLength, this.#bodyFlow);
        early = bytes.subarray(end);
        end = bytes.length;
      }
    }
    this.#pending = end === bytes.length ? null : bytes.subarray(end);
    this.#tail = this.#pending !== null;
    this.keepAlive = request.headers.connection !== 'close';
    this.keepAliveLine = this.#owner.keepAliveLine(limits.keepAliveTimeoutMs);
    let response: FastResponse | null = null;
    const respond = (): FastResponse => {
      response = new FastResponse(request, this);
      this.#response = response;
      return response;
    };
    let taken: boolean;
    try {
      taken = take(request, respond);
    } catch {
      // The front answers its own failures; one here (routing) cannot be answered on this path.
      taken = false;
    }
    if (!taken) {
      if (response !== null) {
        // Should a response have been started for a request then left, nothing can follow it.
        this.socket.destroy();
        return;
      }
      this.#pending = bytes;
      this.#handoff();
      return;
    }
    this.#requests += 1;
    this.#owner.counts.requests += 1;
    const body = request.fastBodySource;
    if (body !== null) {
      this.#body = body;
      this.#bodySince = Date.now();
      const rest = early !== null && early.length > 0 ? body.push(early) : null;
      if (body.readableEnded) {
        this.#endBody();
        if (rest !== null) {
          this.#pending = rest;
          this.#tail = true;
        }
      }
    }
  }

  /** The body is whole (or given up): later bytes are the next request's again. */
  #endBody(): void {
    this.#body = null;
    if (this.#bodyPaused) {
      this.#bodyPaused = false;
      if (!this.#paused) this.socket.resume();
    }
  }

  /** The response went to the socket whole (FastResponse#end). */
  finished(response: FastResponse, last: boolean): void {
    // Answered before its body came whole (a 413, a 408): what is left of it can only be dropped
    // with the connection.
    if (this.#body !== null) last = true;
    queueMicrotask(() => {
      response.done();
      // The client may have closed or half-closed meanwhile: then nothing follows on this connection.
      if (this.#response !== response) return;
      this.#response = null;
      this.#idleSince = Date.now();
      if (last || this.#owner.closing) {
        this.#leave();
        this.socket.destroySoon();
        return;
      }
      if (this.#paused) {
        this.#paused = false;
        this.socket.resume();
      }
      this.#next();
    });
  }

  /**
   * The client half-closed. As node:http does (its httpAllowHalfOpen is off): a request still
   * running is abandoned, as if the connection had closed, pipelined ones are dropped, and the
   * connection is closed from this side too.
   */
  #ended(): void {
    this.#abortBody();
    const response = this.#response;
    this.#response = null;
    this.#pending = null;
    this.#leave();
    if (response && !response.writableFinished) response.closed();
    this.socket.destroySoon();
  }

  #closed(): void {
    this.#abortBody();
    this.#leave();
    const response = this.#response;
    this.#response = null;
    if (response && !response.writableFinished) response.closed();
  }

  #abortBody(): void {
    const body = this.#body;
    if (body === null) return;
    this.#body = null;
    body.abort();
  }

  /** Stops listening; the socket belongs to whoever has it next (node:http, or nobody once closed). */
  #leave(): void {
    const socket = this.socket;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
    socket.off('drain', this.#onDrain);
    // An error after the end still needs a listener, or it would be thrown.
    if (!socket.destroyed) socket.on('error', () => socket.destroy());
    this.#owner.forget(this);
  }

  /** node:http takes over, starting with the bytes read so far. */
  #handoff(): void {
    const socket = this.socket;
    const bytes = this.#pending;
    this.#pending = null;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
    socket.off('drain', this.#onDrain);
    this.#owner.forget(this);
    this.#owner.counts.handoffs += 1;
    if (this.#paused) socket.resume();
    if (bytes !== null) socket.unshift(bytes);
    this.#owner.handlers.handoff(socket);
  }
}

/**
 * The request line and headers, or null for anything but the plain kind (node:http decides those).
 * `text` is the head without its final blank line, as latin1.
 */
export function parseHead(text: string, socket: Socket): FastRequest | null {
  let method: FastMethod | null = null;
  let at = 0;
  for (const [start, name] of METHODS) {
    if (text.startsWith(start)) {
      method = name;
      at = start.length;
      break;
    }
  }
  if (method === null) return null;
  let contentLength = 0;
  let lineEnd = text.indexOf('\r\n', at);
  if (lineEnd < 0) lineEnd = text.length;
  const space = text.indexOf(' ', at);
  if (space < 0 || space > lineEnd) return null;
  if (lineEnd - space !== 9 || text.slice(space + 1, lineEnd) !== 'HTTP/1.1') return null;
  const url = text.slice(at, space);
  if (!isOriginTarget(url)) return null;
  // A plain object: one without a prototype costs microseconds a request in V8's lookups. A name
  // that Object.prototype has ("__proto__", "constructor") is found by the repeat check below, and
  // such a request goes to node:http.
  const headers: Record<string, string> = {};
  const raw: string[] = [];
  let hosts = 0;
  let start = lineEnd + 2;
  while (start < text.length) {
    let end = text.indexOf('\r\n', start);
    if (end < 0) end = text.length;
    const colon = text.indexOf(':', start);
    if (colon < 0 || colon > end) return null;
    const name = text.slice(start, colon);
    if (!isToken(name)) return null;
    let valueStart = colon + 1;
    let valueEnd = end;
    while (valueStart < valueEnd && (text.charCodeAt(valueStart) === 0x20 || text.charCodeAt(valueStart) === 0x09)) valueStart += 1;
    while (valueEnd > valueStart && (text.charCodeAt(valueEnd - 1) === 0x20 || text.charCodeAt(valueEnd - 1) === 0x09)) valueEnd -= 1;
    const value = text.slice(valueStart, valueEnd);
    if (!isPlainFieldValue(value)) return null;
    const lower = name.toLowerCase();
    if (headers[lower] !== undefined) return null;
    switch (lower) {
      case 'host':
        hosts += 1;
        break;
      case 'connection': {
        // Anything but the two plain values (a list, an Upgrade) is node:http's to read.
        const token = value.toLowerCase();
        if (token !== 'keep-alive' && token !== 'close') return null;
        headers[lower] = token;
        raw.push(name, value);
        start = end + 2;
        if (raw.length > MAX_HEADERS * 2) return null;
        continue;
      }
      case 'content-length':
        // Digits only, one value, small: anything else (a list, a sign, a huge body) is node:http's.
        if (method === 'GET' || method === 'HEAD' || !CONTENT_LENGTH.test(value)) return null;
        contentLength = Number(value);
        break;
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
        return null;
    }
    headers[lower] = value;
    raw.push(name, value);
    if (raw.length > MAX_HEADERS * 2) return null;
    start = end + 2;
  }
  if (hosts !== 1) return null;
  return new FastRequest(method, url, headers, raw, socket, contentLength);
}
