// The access log: one line per finished request, in nginx's common or combined format (with
// TQServer's timings appended as key=value fields) or as JSON; a pure formatter and a thin writer.

import type { LogFile } from '../log-file.js';
import { clfTime, field, escapeField, roundMs, seconds } from './log-text.js';
import type { RequestRecord } from './request-record.js';

export const ACCESS_LOG_FORMATS = ['common', 'combined', 'json'] as const;
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number];

/** `"GET /path?q HTTP/1.1"` without the quotes, escaped. */
export function requestLine(record: RequestRecord): string {
  const protocol = record.httpVersion ? ` HTTP/${escapeField(record.httpVersion)}` : '';
  // Escaped part by part (the separators need no escaping): escaping the joined string would read
  // it character by character from a concatenation, which V8 does slowly.
  return `${record.method ? escapeField(record.method) : '-'} ${record.uri ? escapeField(record.uri) : '-'}${protocol}`;
}

/**
 * What nginx has no variable for, after its fields: request time (rt), time waiting for a PHP
 * process (qt), time in PHP (pt), in seconds; backend (be), php-cgi pid, request id (rid), and the
 * error code of a failed request (err). `-` where a field does not apply (static files).
 */
function extras(record: RequestRecord): string {
  return (
    `rt=${seconds(record.durationMs)} qt=${seconds(record.queueMs)} pt=${seconds(record.phpMs)} ` +
    `be=${record.backend ?? '-'} pid=${record.workerPid ?? '-'} rid=${field(record.id)} err=${field(record.error)}`
  );
}

/**
 * One access log line (without "\n"). `common` and `combined` are nginx's formats ($remote_user is
 * always `-`; the byte count is $bytes_sent, headers included; the time is when the request arrived)
 * followed by the extras; `json` has every field of the record. Every request-supplied value is
 * escaped: no URI or header can add a line or a field.
 */
export function formatAccessLine(record: RequestRecord, format: AccessLogFormat, offsetMinutes?: number): string {
  switch (format) {
    case 'common':
      return `${field(record.remoteAddress)} - - [${clfTime(record.startedAt, offsetMinutes)}] "${requestLine(record)}" ${record.status} ${record.bytesSent} ${extras(record)}`;
    case 'combined':
      return (
        `${field(record.remoteAddress)} - - [${clfTime(record.startedAt, offsetMinutes)}] "${requestLine(record)}" ${record.status} ${record.bytesSent} ` +
        `"${field(record.referer, false)}" "${field(record.userAgent, false)}" ${extras(record)}`
      );
    case 'json':
      // JSON.stringify escapes quotes, backslashes and control characters, and lone surrogates.
      return JSON.stringify({
        time: new Date(record.startedAt).toISOString(),
        req: record.id,
        app: record.app,
        front: record.front,
        kind: record.kind,
        remote_addr: record.remoteAddress,
        method: record.method,
        uri: record.uri,
        protocol: record.httpVersion ? `HTTP/${record.httpVersion}` : null,
        status: record.status,
        bytes_sent: record.bytesSent,
        referer: record.referer || null,
        user_agent: record.userAgent || null,
        duration_ms: roundMs(record.durationMs),
        queue_ms: roundMs(record.queueMs),
        php_ms: roundMs(record.phpMs),
        backend: record.backend,
        pid: record.workerPid,
        script: record.script,
        error: record.error,
        aborted: record.aborted,
      });
    default: {
      const never: never = format;
      throw new Error(`unknown access log format ${String(never)}`);
    }
  }
}

/** Writes one app's access log: a line per request, batched by the file. */
export class AccessLog {
  readonly file: LogFile;
  readonly format: AccessLogFormat;
  /** The text formats' writer straight into the file's batch, chosen once; none for JSON. */
  readonly #put: ((buf: Buffer, at: number, record: RequestRecord) => number) | null;

  constructor(file: LogFile, format: AccessLogFormat) {
    this.file = file;
    this.format = format;
    this.#put = format === 'combined' ? putCombined : format === 'common' ? putCommon : null;
  }

  write(record: RequestRecord): void {
    // A line the writer gives up on (a character above U+00FF, an odd number) is formatted as a
    // string, to the same bytes.
    if (this.#put === null || !this.file.writeLineWith(mostAccessBytes(record), this.#put, record)) {
      this.file.writeLine(formatAccessLine(record, this.format));
    }
  }
}

// The text formats written byte by byte (issue 8): the same bytes as formatAccessLine with "\n"
// after them, without its ~40 strings and their UTF-8 copy. Every function takes where to write
// and returns where its bytes end, or -1 when it cannot write the value the way formatAccessLine
// would (then the caller falls back to formatAccessLine): that keeps the fast path short and its
// result provably the same (access-log.test.ts compares the two on random records).

const HEX_BYTES = Buffer.from('0123456789ABCDEF', 'latin1');

/** The most bytes putAccessLine writes for a record: 4 per character of text (\xHH), and room for the numbers and the rest. */
function mostAccessBytes(r: RequestRecord): number {
  const text =
    r.remoteAddress.length + r.method.length + r.uri.length + r.httpVersion.length + r.referer.length + r.userAgent.length +
    r.id.length + (r.error?.length ?? 0) + (r.backend?.length ?? 0);
  return text * 4 + 200;
}

/** escapeField(text, bare) into the buffer; -1 for a character above U+00FF (escaped from its UTF-8 bytes by the string path). */
function putEscaped(buf: Buffer, at: number, text: string, bare: boolean): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code >= 0x21 && code <= 0x7e && code !== 0x22 && code !== 0x5c) || (code === 0x20 && !bare)) {
      buf[at++] = code;
    } else if (code <= 0xff) {
      buf[at] = 0x5c;
      buf[at + 1] = 0x78;
      buf[at + 2] = HEX_BYTES[code >> 4]!;
      buf[at + 3] = HEX_BYTES[code & 15]!;
      at += 4;
    } else {
      return -1;
    }
  }
  return at;
}

/** field(text, bare): escaped, `-` when empty. */
function putField(buf: Buffer, at: number, text: string | null, bare: boolean): number {
  if (!text) {
    buf[at] = 0x2d;
    return at + 1;
  }
  return putEscaped(buf, at, text, bare);
}

/** Text written as it is (ASCII only: anything else would differ from its UTF-8 bytes). */
function putAscii(buf: Buffer, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return -1;
    buf[at++] = code;
  }
  return at;
}

/** A whole number as `${n}` writes it; -1 for anything else (fractions, negatives, exponents). */
function putInteger(buf: Buffer, at: number, n: number): number {
  if (!(Number.isInteger(n) && n >= 0 && n < 1e15)) return -1;
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  const end = at + digits;
  for (let rest = n, i = end - 1; i >= at; i--) {
    buf[i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return end;
}

/** seconds(ms); -1 where seconds() leaves it to toFixed (a fraction near a half, huge values, NaN). */
function putSeconds(buf: Buffer, at: number, ms: number | null): number {
  if (ms === null) {
    buf[at] = 0x2d;
    return at + 1;
  }
  const value = Math.max(0, ms);
  if (!(value < 1e9) || Math.abs(value - Math.floor(value) - 0.5) < 1e-6) return -1;
  const thousandths = Math.round(value);
  const rest = thousandths % 1000;
  at = putInteger(buf, at, (thousandths - rest) / 1000);
  buf[at] = 0x2e;
  buf[at + 1] = 0x30 + Math.floor(rest / 100);
  buf[at + 2] = 0x30 + (Math.floor(rest / 10) % 10);
  buf[at + 3] = 0x30 + (rest % 10);
  return at + 4;
}

/** The line's literal pieces as bytes, made once: a loop over a Uint8Array stores them at about half the cost of one over a string's characters. */
const bytesOf = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));
const L_TIME_OPEN = bytesOf(' - - [');
const L_TIME_CLOSE = bytesOf('] "');
const L_PROTOCOL = bytesOf(' HTTP/');
const L_REQUEST_CLOSE = bytesOf('" ');
const L_QUOTE_OPEN = bytesOf(' "');
const L_QUOTES = bytesOf('" "');
const L_RT = bytesOf(' rt=');
const L_QT = bytesOf(' qt=');
const L_PT = bytesOf(' pt=');
const L_BE = bytesOf(' be=');
const L_PID = bytesOf(' pid=');
const L_RID = bytesOf(' rid=');
const L_ERR = bytesOf(' err=');

/** A literal piece of the line. */
function putLiteral(buf: Buffer, at: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) buf[at + i] = bytes[i]!;
  return at + bytes.length;
}

/** clfTime's text for the current second as bytes (clfTime keeps the string; this keeps its 26 bytes). */
let timeBytes: { text: string; bytes: Uint8Array } = { text: '', bytes: new Uint8Array(0) };

function putTime(buf: Buffer, at: number, epochMs: number, offsetMinutes: number | undefined): number {
  const text = clfTime(epochMs, offsetMinutes);
  if (text !== timeBytes.text) timeBytes = { text, bytes: bytesOf(text) };
  return putLiteral(buf, at, timeBytes.bytes);
}

/**
 * formatAccessLine(record, combined ? 'combined' : 'common', offsetMinutes) into `buf` at `at`
 * (the caller makes sure mostAccessBytes(record) fit); returns where it ends or -1.
 */
export function putAccessLine(buf: Buffer, at: number, r: RequestRecord, combined: boolean, offsetMinutes?: number): number {
  if ((at = putField(buf, at, r.remoteAddress, true)) < 0) return -1;
  at = putLiteral(buf, at, L_TIME_OPEN);
  at = putTime(buf, at, r.startedAt, offsetMinutes);
  at = putLiteral(buf, at, L_TIME_CLOSE);
  if ((at = putField(buf, at, r.method, false)) < 0) return -1;
  buf[at++] = 0x20;
  if ((at = putField(buf, at, r.uri, false)) < 0) return -1;
  if (r.httpVersion) {
    at = putLiteral(buf, at, L_PROTOCOL);
    if ((at = putEscaped(buf, at, r.httpVersion, false)) < 0) return -1;
  }
  at = putLiteral(buf, at, L_REQUEST_CLOSE);
  if ((at = putInteger(buf, at, r.status)) < 0) return -1;
  buf[at++] = 0x20;
  if ((at = putInteger(buf, at, r.bytesSent)) < 0) return -1;
  if (combined) {
    at = putLiteral(buf, at, L_QUOTE_OPEN);
    if ((at = putField(buf, at, r.referer, false)) < 0) return -1;
    at = putLiteral(buf, at, L_QUOTES);
    if ((at = putField(buf, at, r.userAgent, false)) < 0) return -1;
    buf[at++] = 0x22;
  }
  at = putLiteral(buf, at, L_RT);
  if ((at = putSeconds(buf, at, r.durationMs)) < 0) return -1;
  at = putLiteral(buf, at, L_QT);
  if ((at = putSeconds(buf, at, r.queueMs)) < 0) return -1;
  at = putLiteral(buf, at, L_PT);
  if ((at = putSeconds(buf, at, r.phpMs)) < 0) return -1;
  at = putLiteral(buf, at, L_BE);
  if ((at = putAscii(buf, at, r.backend ?? '-')) < 0) return -1;
  at = putLiteral(buf, at, L_PID);
  if (r.workerPid === null) buf[at++] = 0x2d;
  else if ((at = putInteger(buf, at, r.workerPid)) < 0) return -1;
  at = putLiteral(buf, at, L_RID);
  if ((at = putField(buf, at, r.id, true)) < 0) return -1;
  at = putLiteral(buf, at, L_ERR);
  return putField(buf, at, r.error, true);
}

const putCombined = (buf: Buffer, at: number, record: RequestRecord) => putAccessLine(buf, at, record, true);
const putCommon = (buf: Buffer, at: number, record: RequestRecord) => putAccessLine(buf, at, record, false);
