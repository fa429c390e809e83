// The head of a CGI response (RFC 3875 6): header lines up to the first empty line, Status and
// Location interpreted, repeated headers kept apart. Parsed incrementally from the stdout stream;
// everything after the head is body and is handed on untouched.

import { TQServerError } from '../errors.js';

export interface CgiHead {
  status: number;
  /** The reason phrase PHP gave ("Status: 404 Gone Fishing"), or null. */
  reason: string | null;
  /** Header lines in order, Status removed; names as PHP wrote them. */
  headers: Array<[name: string, value: string]>;
}

/** PHP's output did not start with a valid CGI head: the upstream's failure, answered with 502. */
export class CgiHeadError extends TQServerError {
  constructor(message: string) {
    super('CGI_BAD_HEAD', message);
  }
}

export const DEFAULT_MAX_HEAD_BYTES = 1024 * 1024;

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Feed stdout chunks to push(); the first call that completes the head returns it together with the
 * body bytes that followed it in the same chunk. Later chunks are body. Throws CgiHeadError for a
 * malformed head or one larger than `maxHeadBytes` (no small fixed buffer: nginx's "upstream sent
 * too big header" cannot happen below this limit).
 */
export class CgiResponseParser {
  readonly #maxHeadBytes: number;
  #pending: Buffer | null = null;
  #head: CgiHead | null = null;

  constructor(maxHeadBytes = DEFAULT_MAX_HEAD_BYTES) {
    this.#maxHeadBytes = maxHeadBytes;
  }

  get head(): CgiHead | null {
    return this.#head;
  }

  /** Bytes of an unfinished head held so far. */
  get pendingBytes(): number {
    return this.#pending?.length ?? 0;
  }

  push(chunk: Buffer): { head: CgiHead; body: Buffer } | null {
    if (this.#head) throw new Error('the head is already parsed; the rest is body');
    if (this.#pending === null) {
      const repeated = repeatedHead(chunk, this.#maxHeadBytes);
      if (repeated !== null) {
        this.#head = repeated.head;
        return { head: repeated.head, body: chunk.subarray(repeated.bodyStart) };
      }
    }
    const searchFrom = this.#pending ? Math.max(0, this.#pending.length - 3) : 0;
    const data = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    const end = findHeadEnd(data, searchFrom);
    if (end === null) {
      // The head is the bytes before its terminator, which may have started already ("\n" or
      // "\n\r" held at the end): only past limit + 2 is a head certainly too large, whatever the
      // chunking, so the same output is accepted or refused however it is split.
      if (data.length > this.#maxHeadBytes + 2) {
        throw new CgiHeadError(`PHP sent more than ${this.#maxHeadBytes} bytes without ending its response head`);
      }
      this.#pending = data;
      return null;
    }
    this.#pending = null;
    if (end.headEnd > this.#maxHeadBytes) throw new CgiHeadError(`PHP's response head is ${end.headEnd} bytes, over the limit of ${this.#maxHeadBytes}`);
    this.#head = parseHeadBytes(data, end.headEnd);
    return { head: this.#head, body: data.subarray(end.bodyStart) };
  }

  /** Called when stdout ended: a response without a complete head is an error. */
  finish(): void {
    if (this.#head) return;
    const held = this.#pending?.length ?? 0;
    throw new CgiHeadError(held === 0 ? 'PHP sent no output at all' : `PHP's output ended inside its response head (${held} bytes, no empty line)`);
  }
}

/**
 * Heads up to this many bytes are remembered: a script sends the same head on most requests (one
 * Content-Type, perhaps X-Powered-By), and comparing bytes costs far less than parsing them again
 * (issue 8). Longer heads (cookies, many headers) rarely repeat.
 */
const REMEMBERED_HEAD_BYTES = 512;
/** The last head parsed, its bytes and the result (frozen: every response that repeats it shares it). */
let lastHead: { bytes: Buffer; head: CgiHead } | null = null;

/** parseHead of the first `length` bytes of `data`, taken from the last result when the bytes repeat. */
function parseHeadBytes(data: Buffer, length: number): CgiHead {
  const last = lastHead;
  if (last !== null && last.bytes.length === length && data.compare(last.bytes, 0, length, 0, length) === 0) return last.head;
  const head = parseHead(data.toString('latin1', 0, length));
  if (length <= REMEMBERED_HEAD_BYTES) {
    for (const pair of head.headers) Object.freeze(pair);
    Object.freeze(head.headers);
    lastHead = { bytes: Buffer.from(data.subarray(0, length)), head: Object.freeze(head) };
  }
  return head;
}

/**
 * The last head again, when `chunk` starts with its bytes and an empty line right after them: what
 * findHeadEnd and parseHeadBytes would find, without scanning for the end. No earlier empty line can
 * hide in those bytes, as the first scan of them found none before the same terminator.
 */
function repeatedHead(chunk: Buffer, maxHeadBytes: number): { head: CgiHead; bodyStart: number } | null {
  const last = lastHead;
  if (last === null) return null;
  const length = last.bytes.length;
  if (length === 0 || length > maxHeadBytes || chunk.length < length + 2 || chunk[length] !== 0x0a) return null;
  const next = chunk[length + 1];
  const bodyStart = next === 0x0a ? length + 2 : next === 0x0d && chunk[length + 2] === 0x0a ? length + 3 : -1;
  if (bodyStart < 0 || chunk.compare(last.bytes, 0, length, 0, length) !== 0) return null;
  return { head: last.head, bodyStart };
}

/** Where the head ends (the first empty line, CRLF or LF style) and where the body starts. */
function findHeadEnd(data: Buffer, from: number): { headEnd: number; bodyStart: number } | null {
  // An empty head: the output starts with a blank line.
  if (data[0] === 0x0a) return { headEnd: 0, bodyStart: 1 };
  if (data[0] === 0x0d && data[1] === 0x0a) return { headEnd: 0, bodyStart: 2 };
  for (let i = from; i < data.length; i++) {
    if (data[i] !== 0x0a) continue;
    // "\n\n" or "\n\r\n" ends the head.
    if (data[i + 1] === 0x0a) return { headEnd: i, bodyStart: i + 2 };
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) return { headEnd: i, bodyStart: i + 3 };
  }
  return null;
}

/** RFC 9110 5.5: a field value is visible ASCII, SP, HTAB and obs-text (0x80-0xFF); nothing else. */
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * Strips optional whitespace (RFC 9110 5.6.3 OWS: SP and HTAB only). String.prototype.trim() would
 * also strip NBSP, and in a latin1 head 0xA0 is the last byte of UTF-8 "à" (C3 A0).
 */
function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text.charCodeAt(start) === 0x20 || text.charCodeAt(start) === 0x09)) start++;
  while (end > start && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) end--;
  return text.slice(start, end);
}

/**
 * Parses header lines (a latin1 string, one char per byte); status from Status, else 302 for a
 * Location, else 200. Values keep their bytes: only SP/HTAB around them are removed.
 */
export function parseHead(text: string): CgiHead {
  const headers: Array<[string, string]> = [];
  let status: number | null = null;
  let reason: string | null = null;
  let location = false;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line === '') continue;
    // RFC 9112 5.2: a gateway that receives obs-fold in a response may discard the message and
    // answer 502 instead; PHP's header() never folds, so a folded line means broken output.
    if (line.startsWith(' ') || line.startsWith('\t')) throw new CgiHeadError(`PHP sent a folded header line (${JSON.stringify(line.slice(0, 80))})`);
    const colon = line.indexOf(':');
    // RFC 9112 5.1: whitespace between name and colon is removed by a proxy, not kept in the name.
    const name = colon > 0 ? trimOws(line.slice(0, colon)) : '';
    if (!HEADER_NAME.test(name)) throw new CgiHeadError(`PHP sent a malformed header line ${JSON.stringify(line.slice(0, 80))}`);
    const value = trimOws(line.slice(colon + 1));
    if (INVALID_VALUE_CHAR.test(value)) throw new CgiHeadError(`PHP sent a header ${name} with a control character in its value`);
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const match = /^(\d{3})(?:[ \t]+(.*))?$/.exec(value);
      if (!match) throw new CgiHeadError(`PHP sent an invalid Status header ${JSON.stringify(value.slice(0, 80))}`);
      status = Number(match[1]);
      // A CGI response is one final response: a 1xx would leave the client waiting for another
      // (or, for 101, switch protocols), so it is as broken as a status outside the range.
      if (status < 200 || status > 599) throw new CgiHeadError(`PHP sent Status ${status}, outside 200-599`);
      reason = match[2] ? trimOws(match[2]) || null : null;
      continue;
    }
    if (lower === 'location') location = true;
    headers.push([name, value]);
  }
  // RFC 3875 6.2.3/6.2.4: a Location without a Status is a redirect.
  return { status: status ?? (location ? 302 : 200), reason, headers };
}
