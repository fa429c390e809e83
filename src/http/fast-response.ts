// The request and response objects of the fast HTTP/1.1 path (fast-http.ts): the part of
// IncomingMessage and ServerResponse that the HTTP front, the PHP proxy, error pages and small
// static files use, with Node's wire format (the same status line, headers, Date, Connection and
// Keep-Alive, Content-Length or chunked framing) and its header validation, written to the socket in
// one write per response where it can.

import { EventEmitter } from 'node:events';
import { STATUS_CODES, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Socket } from 'node:net';
import { isHeaderText, isToken } from './chars.js';

/** The methods the fast path parses; only GET and HEAD may go elsewhere than PHP. */
export type FastMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * A simple request as the fast path parsed it: HTTP/1.1, and a body only when its Content-Length
 * bytes came in the same read as the head (a small form or JSON post), held in memory.
 */
export class FastRequest {
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly complete = true;
  /** The whole body, once the connection has cut it from the bytes read (null: none). */
  fastBody: Buffer | null = null;
  /** A body that comes after its head, as the connection reads it (spool.ts reads it to its end). */
  fastBodySource: FastBody | null = null;
  constructor(
    readonly method: FastMethod,
    readonly url: string,
    /** Lower-case names; a name came at most once (the parser hands repeated names to node:http). */
    readonly headers: Record<string, string>,
    readonly rawHeaders: string[],
    readonly socket: Socket,
    /** From Content-Length; 0 without one. */
    readonly contentLength: number,
  ) {}
}

/**
 * A request body that comes after its head: the bytes its connection reads, handed on as 'data'
 * events up to Content-Length, then 'end'. 'aborted' if the client goes first, 'error' at the read
 * timeout. The part of a Readable that spool.ts uses; pause() and resume() hold the socket back.
 */
export class FastBody extends EventEmitter {
  readableEnded = false;
  #remaining: number;
  readonly #flow: { pause(): void; resume(): void };

  constructor(length: number, flow: { pause(): void; resume(): void }) {
    super();
    this.#remaining = length;
    this.#flow = flow;
  }

  pause(): this {
    this.#flow.pause();
    return this;
  }

  resume(): this {
    this.#flow.resume();
    return this;
  }

  /** Hands on what of `chunk` is body; returns the bytes after the body's end, or null. */
  push(chunk: Buffer): Buffer | null {
    const take = Math.min(this.#remaining, chunk.length);
    this.#remaining -= take;
    if (take > 0) this.emit('data', take === chunk.length ? chunk : chunk.subarray(0, take));
    if (this.#remaining === 0 && !this.readableEnded) {
      this.readableEnded = true;
      this.emit('end');
    }
    return take < chunk.length ? chunk.subarray(take) : null;
  }

  /** The connection closed before the body's end. */
  abort(): void {
    if (this.readableEnded) return;
    this.emit('aborted');
    this.emit('close');
  }

  /** The body did not come whole within read_timeout: answered 408, as node:http does. */
  timeOut(ms: number): void {
    // Nobody reading it (the request was answered without its body, e.g. a 413): nothing to tell,
    // and an 'error' without a listener would throw.
    if (this.readableEnded || this.listenerCount('error') === 0) return;
    this.emit('error', Object.assign(new Error(`the request body did not arrive within ${ms} ms (read_timeout)`), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }));
  }
}

/** What a response needs from its connection. */
export interface ResponseConnection {
  readonly socket: Socket;
  /** False when the client asked to close, or the front is closing. */
  readonly keepAlive: boolean;
  /** `Keep-Alive: timeout=N` as node:http sends it, or '' for none. */
  readonly keepAliveLine: string;
  /** The response has been handed to the socket whole; `last` says the connection must close after it. */
  finished(response: FastResponse, last: boolean): void;
}

/** Node's own check for a status message (control characters other than tab). */
const INVALID_TEXT = /[^\t\x20-\x7e\x80-\xff]/;
const CLOSE_TOKEN = /(?:^|\W)close(?:$|\W)/i;
const CHUNKED = /(?:^|\W)chunked(?:$|\W)/i;
/** Bodies up to this size go out in one buffer with the head; larger ones next to it (writev). */
const COPY_BODY_BYTES = 16 * 1024;

let dateText = '';
let dateUntil = 0;

/** The Date header's value, made once a second. */
function httpDate(): string {
  const now = Date.now();
  if (now >= dateUntil) {
    dateText = new Date(now).toUTCString();
    dateUntil = now - (now % 1000) + 1000;
  }
  return dateText;
}

type HeaderValue = string | number | readonly string[];

function headersSentError(action: string): Error {
  return Object.assign(new Error(`Cannot ${action} headers after they are sent to the client`), { code: 'ERR_HTTP_HEADERS_SENT' });
}

/**
 * A response on a fast-path connection. The head is fixed by writeHead (or the first write or end,
 * as Node does), and framed the way Node would frame it, so the front's answers look the same on
 * both paths.
 */
export class FastResponse extends EventEmitter {
  statusCode = 200;
  statusMessage = '';
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  /** Bytes handed to the socket for this response (head, body, chunk framing): the access log's bytes sent. */
  bytesSent = 0;
  readonly req: FastRequest;
  readonly socket: Socket;
  readonly #connection: ResponseConnection;
  /** Headers set one by one before writeHead, by lower-case name. */
  #stored: Map<string, [string, HeaderValue]> | null = null;
  /** The head as text until it goes out with the first bytes of the body. */
  #head: string | null = null;
  #hasBody: boolean;
  #chunked = false;
  #last = false;
  /** Set by end() before an implicit head, so the head carries this Content-Length. */
  #contentLength: number | null = null;

  constructor(request: FastRequest, connection: ResponseConnection) {
    super();
    this.req = request;
    this.socket = connection.socket;
    this.#connection = connection;
    this.#hasBody = request.method !== 'HEAD';
  }

  get writable(): boolean {
    return !this.writableEnded && !this.destroyed;
  }

  setHeader(name: string, value: HeaderValue): this {
    if (this.headersSent) throw headersSentError('set');
    // The tables settle the usual case; anything they refuse, or a value that is not a string,
    // goes to Node's own checks, which accept or throw exactly as ServerResponse does.
    if (typeof name !== 'string' || !isToken(name)) validateHeaderName(name);
    if (typeof value !== 'string' || !isHeaderText(value)) validateHeaderValue(name, value as string);
    (this.#stored ??= new Map()).set(name.toLowerCase(), [name, value]);
    return this;
  }

  getHeader(name: string): HeaderValue | undefined {
    return this.#stored?.get(name.toLowerCase())?.[1];
  }

  hasHeader(name: string): boolean {
    return this.#stored?.has(name.toLowerCase()) ?? false;
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw headersSentError('remove');
    this.#stored?.delete(name.toLowerCase());
  }

  getHeaderNames(): string[] {
    return this.#stored ? [...this.#stored.keys()] : [];
  }

  /** writeHead(status[, reason][, headers]): headers as an object or a flat [name, value, ...] array. */
  writeHead(statusCode: number, reason?: string | Record<string, HeaderValue> | readonly string[], headers?: Record<string, HeaderValue> | readonly string[]): this {
    if (this.headersSent) throw headersSentError('write');
    const status = statusCode | 0;
    if (status < 100 || status > 999) throw Object.assign(new RangeError(`Invalid status code: ${statusCode}`), { code: 'ERR_HTTP_INVALID_STATUS_CODE' });
    if (typeof reason === 'string') this.statusMessage = reason;
    else {
      this.statusMessage ||= STATUS_CODES[status] ?? 'unknown';
      headers ??= reason;
    }
    if (INVALID_TEXT.test(this.statusMessage)) throw Object.assign(new TypeError('Invalid character in statusMessage'), { code: 'ERR_INVALID_CHAR' });
    this.statusCode = status;
    if (status === 204 || status === 304 || (status >= 100 && status <= 199)) this.#hasBody = false;
    this.#storeHead(headers);
    return this;
  }

  write(chunk: string | Buffer, encoding?: BufferEncoding | (() => void), callback?: () => void): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : chunk;
    if (!this.#hasBody || data.length === 0) {
      if (callback) queueMicrotask(callback);
      return true;
    }
    return this.#send(data, false, callback);
  }

  end(chunk?: string | Buffer | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.writableEnded || this.destroyed) return this;
    const data = chunk === undefined || chunk === null ? null : typeof chunk === 'string' ? Buffer.from(chunk, (encoding as BufferEncoding | undefined) ?? 'utf8') : chunk;
    if (!this.headersSent) {
      this.#contentLength = data?.length ?? 0;
      this.writeHead(this.statusCode);
    }
    this.writableEnded = true;
    if (callback) this.once('finish', callback);
    this.#send(this.#hasBody && data && data.length > 0 ? data : null, true, undefined);
    this.writableFinished = true;
    this.#connection.finished(this, this.#last);
    return this;
  }

  /** Cuts the connection: the client sees a truncated response (as ServerResponse#destroy does). */
  destroy(error?: Error): this {
    if (!this.destroyed) {
      this.destroyed = true;
      this.socket.destroy(error);
    }
    return this;
  }

  /** The connection closed under the response: 'close' without 'finish'. Called by the connection. */
  closed(): void {
    this.destroyed = true;
    this.emit('close');
  }

  /** After a whole response: 'finish' and 'close', as Node emits them once the response is done. */
  done(): void {
    this.emit('finish');
    this.emit('close');
  }

  /** The head in Node's order: the given headers, Date, Connection (and Keep-Alive), then framing. */
  #storeHead(given: Record<string, HeaderValue> | readonly string[] | undefined): void {
    let head = `HTTP/1.1 ${this.statusCode} ${this.statusMessage}\r\n`;
    const seen = { date: false, connection: false, length: false, te: false };
    const stored = this.#stored;
    if (stored) {
      // Headers set one by one and given to writeHead: the given ones win, as with Node's setHeader.
      const merged = new Map(stored);
      if (Array.isArray(given)) for (let i = 0; i + 1 < given.length; i += 2) merged.set(given[i]!.toLowerCase(), [given[i]!, given[i + 1]!]);
      else if (given) for (const name of Object.keys(given)) merged.set(name.toLowerCase(), [name, (given as Record<string, HeaderValue>)[name]!]);
      for (const [name, value] of merged.values()) head += this.#line(seen, name, value);
    } else if (Array.isArray(given)) {
      if (given.length % 2 !== 0) throw Object.assign(new TypeError('The headers array must hold name, value pairs'), { code: 'ERR_INVALID_ARG_VALUE' });
      for (let i = 0; i < given.length; i += 2) head += this.#line(seen, given[i]!, given[i + 1]!);
    } else if (given) {
      for (const name of Object.keys(given)) head += this.#line(seen, name, (given as Record<string, HeaderValue>)[name]!);
    }
    if (!seen.date) head += `Date: ${httpDate()}\r\n`;
    if (seen.te && !this.#hasBody && this.#chunked) {
      this.#chunked = false;
      this.#last = true;
    }
    if (!seen.connection) {
      if (this.#connection.keepAlive) head += `Connection: keep-alive\r\n${this.#connection.keepAliveLine}`;
      else {
        this.#last = true;
        head += 'Connection: close\r\n';
      }
    } else if (!this.#connection.keepAlive) this.#last = true;
    if (!seen.length && !seen.te && this.#hasBody) {
      if (this.#contentLength !== null) head += `Content-Length: ${this.#contentLength}\r\n`;
      else {
        head += 'Transfer-Encoding: chunked\r\n';
        this.#chunked = true;
      }
    }
    this.#head = `${head}\r\n`;
    this.headersSent = true;
  }

  /** One header line (or one per element of an array), validated as Node validates them. */
  #line(seen: { date: boolean; connection: boolean; length: boolean; te: boolean }, name: string, value: HeaderValue): string {
    // The tables settle the usual case; anything they refuse, or a value that is not a string,
    // goes to Node's own checks, which accept or throw exactly as ServerResponse does.
    if (typeof name !== 'string' || !isToken(name)) validateHeaderName(name);
    if (typeof value !== 'string' || !isHeaderText(value)) validateHeaderValue(name, value as string);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'date') seen.date = true;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          seen.connection = true;
          if (CLOSE_TOKEN.test(String(value))) this.#last = true;
        }
        break;
      case 14:
        // The PHP proxy writes this name as it is here: no lower-casing for it.
        if (name === 'Content-Length' || name.toLowerCase() === 'content-length') seen.length = true;
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          seen.te = true;
          this.#chunked = CHUNKED.test(String(value));
        }
        break;
    }
    if (typeof value === 'object') {
      let lines = '';
      for (const item of value) lines += `${name}: ${item}\r\n`;
      return lines;
    }
    return `${name}: ${value}\r\n`;
  }

  /**
   * Writes body bytes (and the head, the first time) to the socket; `last` adds the end of a chunked
   * body. A small body goes out in the same buffer as the head: one write, one system call.
   */
  #send(data: Buffer | null, last: boolean, callback: (() => void) | undefined): boolean {
    const socket = this.socket;
    const head = this.#head;
    this.#head = null;
    let prefix = head ?? '';
    let suffix = '';
    if (this.#chunked) {
      if (data) {
        prefix += `${data.length.toString(16)}\r\n`;
        suffix = last ? '\r\n0\r\n\r\n' : '\r\n';
      } else if (last) prefix += '0\r\n\r\n';
    }
    // prefix and suffix are latin1 text: a character is a byte.
    this.bytesSent += prefix.length + suffix.length + (data ? data.length : 0);
    if (!data) {
      if (prefix === '') {
        if (callback) queueMicrotask(callback);
        return true;
      }
      return socket.write(prefix, 'latin1', callback);
    }
    if (data.length <= COPY_BODY_BYTES) {
      const size = prefix.length + data.length + suffix.length;
      const out = Buffer.allocUnsafe(size);
      out.write(prefix, 0, 'latin1');
      data.copy(out, prefix.length);
      if (suffix !== '') out.write(suffix, prefix.length + data.length, 'latin1');
      return socket.write(out, callback);
    }
    socket.cork();
    if (prefix !== '') socket.write(prefix, 'latin1');
    let ok = socket.write(data, suffix === '' ? callback : undefined);
    if (suffix !== '') ok = socket.write(suffix, 'latin1', callback);
    socket.uncork();
    return ok;
  }
}
