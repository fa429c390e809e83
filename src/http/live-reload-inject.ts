// Live reload's script tag added to HTML responses as they stream: found before "</body" across chunk
// boundaries (HtmlInjector), by wrapping a response's writeHead/write/end so that whatever writes it
// (the PHP proxy, the static file pipeline) needs no hook (injectInto).

import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { LIVE_RELOAD_TAG } from './live-reload-script.js';

const EMPTY = Buffer.alloc(0);
const NEEDLE = '</body';

/** Index of the first "</body" (any case) in `data`, or -1. */
function findBodyEnd(data: Buffer): number {
  for (let at = data.indexOf('</'); at >= 0 && at + NEEDLE.length <= data.length; at = data.indexOf('</', at + 1)) {
    let match = true;
    for (let i = 2; i < NEEDLE.length; i += 1) {
      // ASCII letters only: setting 0x20 lowercases them.
      if ((data[at + i]! | 0x20) !== NEEDLE.charCodeAt(i)) {
        match = false;
        break;
      }
    }
    if (match) return at;
  }
  return -1;
}

/** Length of the longest end of `data` that could be the start of "</body" (0 to 5 bytes). */
function partialBodyEnd(data: Buffer): number {
  for (let keep = Math.min(NEEDLE.length - 1, data.length); keep > 0; keep -= 1) {
    let match = true;
    for (let i = 0; i < keep; i += 1) {
      const byte = data[data.length - keep + i]!;
      const wanted = NEEDLE.charCodeAt(i);
      if ((i < 2 ? byte : byte | 0x20) !== wanted) {
        match = false;
        break;
      }
    }
    if (match) return keep;
  }
  return 0;
}

/**
 * Adds the tag to an HTML body as it streams: before the first "</body" (found across chunk
 * boundaries by holding back at most 5 bytes), or at the end when there is none. Exactly one tag is
 * added either way, so a known Content-Length grows by exactly the tag's length.
 */
export class HtmlInjector {
  readonly #tag: Buffer;
  #pending: Buffer = EMPTY;
  #done = false;

  constructor(tag: Buffer = Buffer.from(LIVE_RELOAD_TAG)) {
    this.#tag = tag;
  }

  get tagLength(): number {
    return this.#tag.length;
  }

  /** The bytes to send now for `chunk` (possibly fewer: a possible "</body" start waits for the next). */
  push(chunk: Buffer): Buffer {
    if (this.#done) return chunk;
    const data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = EMPTY;
    const at = findBodyEnd(data);
    if (at >= 0) {
      this.#done = true;
      return Buffer.concat([data.subarray(0, at), this.#tag, data.subarray(at)]);
    }
    const keep = partialBodyEnd(data);
    // A copy: the caller may reuse its buffer after the write.
    if (keep > 0) this.#pending = Buffer.from(data.subarray(data.length - keep));
    return data.subarray(0, data.length - keep);
  }

  /** The last bytes: what was held back, and the tag if no "</body" came. */
  finish(): Buffer {
    if (this.#done) return EMPTY;
    this.#done = true;
    const rest = this.#pending;
    this.#pending = EMPTY;
    return Buffer.concat([rest, this.#tag]);
  }
}

function headerValue(value: OutgoingHttpHeader | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

type WriteHeadHeaders = OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined;

/** A header from writeHead's argument (an object, a flat [name, value, ...] list or pairs), or undefined. */
function fromWriteHead(headers: WriteHeadHeaders, name: string): string | undefined {
  if (!headers) return undefined;
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0])) {
      for (const pair of headers as unknown as Array<[string, OutgoingHttpHeader]>) if (String(pair[0]).toLowerCase() === name) return headerValue(pair[1]);
      return undefined;
    }
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === name) return headerValue(headers[i + 1]);
    return undefined;
  }
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return headerValue(headers[key]);
  return undefined;
}

/** writeHead's headers with Content-Length set to `length` (or removed when null). */
function withLength(headers: WriteHeadHeaders, length: number | null): WriteHeadHeaders {
  if (!headers) return headers;
  const value = length === null ? null : String(length);
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0])) {
      const pairs = (headers as unknown as Array<[string, OutgoingHttpHeader]>).filter((pair) => String(pair[0]).toLowerCase() !== 'content-length');
      if (value !== null) pairs.push(['Content-Length', value]);
      return pairs as unknown as OutgoingHttpHeader[];
    }
    const flat: OutgoingHttpHeader[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() !== 'content-length') flat.push(headers[i]!, headers[i + 1]!);
    if (value !== null) flat.push('Content-Length', value);
    return flat;
  }
  const out: OutgoingHttpHeaders = {};
  for (const [key, entry] of Object.entries(headers)) if (key.toLowerCase() !== 'content-length') out[key] = entry;
  if (value !== null) out['Content-Length'] = value;
  return out;
}

/**
 * Whether a response gets the tag: a whole (200) HTML page, not compressed. Its head is read from
 * writeHead's argument or, when the page is sent with implicit headers, from the response.
 */
function injectable(response: ServerResponse, status: number, headers: WriteHeadHeaders): boolean {
  if (status !== 200) return false;
  const type = fromWriteHead(headers, 'content-type') ?? headerValue(response.getHeader('content-type'));
  if (!type || !/^\s*text\/html\s*(;|$)/i.test(type)) return false;
  const encoding = fromWriteHead(headers, 'content-encoding') ?? headerValue(response.getHeader('content-encoding'));
  return encoding === undefined || encoding.trim() === '' || encoding.trim().toLowerCase() === 'identity';
}

/**
 * Makes `response` add the tag if it turns out to be an HTML page. The decision is taken when its
 * head goes out (writeHead, or the first write); the body then passes through an HtmlInjector. A
 * Content-Length is kept and grows by the tag's length; nothing is buffered beyond 5 bytes.
 * Works on whatever writes the response (the PHP proxy, the static file pipeline) without them
 * knowing.
 */
export function injectInto(response: ServerResponse, tag: Buffer = Buffer.from(LIVE_RELOAD_TAG)): void {
  const realWriteHead = response.writeHead;
  const realWrite = response.write;
  const realEnd = response.end;
  /** null: not decided yet; false: passes through. */
  let injector: HtmlInjector | false | null = null;

  /** Decides from the head; returns writeHead's headers, adjusted. */
  const decide = (status: number, headers: WriteHeadHeaders): WriteHeadHeaders => {
    if (injector !== null) return headers;
    if (response.headersSent || !injectable(response, status, headers)) {
      injector = false;
      return headers;
    }
    injector = new HtmlInjector(tag);
    const given = fromWriteHead(headers, 'content-length') ?? headerValue(response.getHeader('content-length'));
    const length = given !== undefined && /^\s*\d+\s*$/.test(given) ? Number(given) + tag.length : null;
    if (response.hasHeader('content-length')) {
      if (length === null) response.removeHeader('content-length');
      else response.setHeader('Content-Length', String(length));
    }
    return fromWriteHead(headers, 'content-length') !== undefined ? withLength(headers, length) : headers;
  };

  const toBuffer = (chunk: unknown, encoding: unknown): Buffer =>
    Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.from(chunk as Uint8Array);

  response.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    // writeHead(status, headers) or writeHead(status, reason, headers).
    const at = typeof rest[0] === 'string' ? 1 : 0;
    const args = [...rest];
    args[at] = decide(status, args[at] as WriteHeadHeaders);
    return (realWriteHead as (...a: unknown[]) => ServerResponse).call(this, status, ...args);
  } as ServerResponse['writeHead'];

  response.write = function (this: ServerResponse, chunk: unknown, encoding?: unknown, callback?: unknown) {
    if (injector === null) decide(response.statusCode, undefined);
    if (!injector) return (realWrite as (...a: unknown[]) => boolean).call(this, chunk, encoding, callback);
    const done = typeof encoding === 'function' ? encoding : callback;
    const out = injector.push(toBuffer(chunk, encoding));
    if (out.length === 0) {
      // Everything held back (a possible "</body" start): nothing to write yet.
      if (typeof done === 'function') process.nextTick(done as () => void);
      return true;
    }
    return (realWrite as (...a: unknown[]) => boolean).call(this, out, done);
  } as ServerResponse['write'];

  response.end = function (this: ServerResponse, chunk?: unknown, encoding?: unknown, callback?: unknown) {
    if (typeof chunk === 'function') return (response.end as (...a: unknown[]) => ServerResponse).call(this, undefined, undefined, chunk);
    if (injector === null) decide(response.statusCode, undefined);
    if (!injector) return (realEnd as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, callback);
    const done = typeof encoding === 'function' ? encoding : callback;
    const head = chunk === undefined || chunk === null ? EMPTY : injector.push(toBuffer(chunk, encoding));
    const tail = injector.finish();
    return (realEnd as (...a: unknown[]) => ServerResponse).call(this, head.length === 0 ? tail : Buffer.concat([head, tail]), done);
  } as ServerResponse['end'];
}

/**
 * Whether a request is one a page is loaded by. Browsers say what a fetch is for (Sec-Fetch-Dest);
 * script fetches of HTML fragments get no tag, and neither does anything but GET.
 */
export function wantsInjection(request: IncomingMessage): boolean {
  if (request.method !== 'GET') return false;
  const dest = request.headers['sec-fetch-dest'];
  if (dest !== undefined && dest !== 'document' && dest !== 'iframe' && dest !== 'frame') return false;
  return String(request.headers['x-requested-with'] ?? '').toLowerCase() !== 'xmlhttprequest';
}
