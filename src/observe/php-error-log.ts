// The PHP error log of an app: what PHP writes besides the response (error_log(), warnings and
// fatal errors as FCGI_STDERR, and the php-cgi processes' own stdout and stderr), a line each, every
// line naming the request it came from (id, pid, method, URI, script). A pure formatter, the writer,
// and a Backend wrapper that takes FCGI_STDERR from both fronts.

import type { Backend, PoolStatus } from '../backend.js';
import type { EndResult, RequestController, RequestOptions, ResponseHandler } from '../fastcgi/client.js';
import type { LogFile } from '../log-file.js';
import type { RequestInfo } from '../supervisor/worker.js';
import { clfTime, escapeField, escapeMessage, field } from './log-text.js';

/** Where a line came from: FCGI_STDERR of a request, or the PHP process's own output. */
export type PhpOutputStream = 'fcgi_stderr' | 'stderr' | 'stdout';

/** The request a line belongs to. */
export interface PhpRequestContext {
  id: string;
  method: string;
  uri: string;
  script: string | null;
  pid: number | null;
}

/** The lines of what PHP wrote, without empty ones ("\n", "\r\n" and a lone "\r" end a line). */
export function splitLines(text: string): string[] {
  return text.split(/\r\n|\n|\r/).filter((line) => line.length > 0);
}

/**
 * One PHP error log line (without "\n"): time, stream, request id, pid, request and script (`-`
 * when no request is known, e.g. a startup warning), then the message with control characters
 * escaped so that it stays one line.
 */
export function formatPhpErrorLine(stream: PhpOutputStream, context: PhpRequestContext | null, pid: number | null, message: string, at: number, offsetMinutes?: number): string {
  const request = context ? `"${escapeField(`${context.method || '-'} ${context.uri || '-'}`)}"` : '"-"';
  return `[${clfTime(at, offsetMinutes)}] ${stream} rid=${field(context?.id)} pid=${pid ?? '-'} ${request} script=${field(context?.script)}: ${escapeMessage(message)}`;
}

/** Writes one app's PHP error log, remembering which request each php-cgi process ran last. */
export class PhpErrorLog {
  readonly file: LogFile;
  readonly #lastRequest = new Map<number, PhpRequestContext>();
  readonly #onLines: (count: number) => void;
  readonly #clock: () => number;

  constructor(file: LogFile, options: { onLines?: (count: number) => void; clock?: () => number } = {}) {
    this.file = file;
    this.#onLines = options.onLines ?? (() => {});
    this.#clock = options.clock ?? Date.now;
  }

  /** A request got a PHP process: that process's own output is attributed to it from now on. */
  dispatched(pid: number, context: PhpRequestContext): void {
    this.#lastRequest.set(pid, context);
  }

  /** The process is gone; nothing more is attributed to it. */
  forget(pid: number): void {
    this.#lastRequest.delete(pid);
  }

  /** FCGI_STDERR of a request. */
  requestOutput(chunk: Buffer, context: PhpRequestContext): void {
    this.#write('fcgi_stderr', context, context.pid, chunk.toString('utf8'));
  }

  /** A line of a php-cgi process's own stdout or stderr, attributed to the request it ran last. */
  processOutput(pid: number, stream: 'stdout' | 'stderr', line: string): void {
    this.#write(stream, this.#lastRequest.get(pid) ?? null, pid, line);
  }

  #write(stream: PhpOutputStream, context: PhpRequestContext | null, pid: number | null, text: string): void {
    const lines = splitLines(text);
    if (lines.length === 0) return;
    const at = this.#clock();
    for (const line of lines) {
      // As php-fpm's log_limit and nginx's error line cap: a script's megabyte message costs the log
      // a line, not megabytes (the processes' own output lines come already cut, see worker.ts).
      const message = stream === 'fcgi_stderr' && line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}... (${line.length} chars)` : line;
      this.file.writeLine(formatPhpErrorLine(stream, context, pid, message, at));
    }
    this.#onLines(lines.length);
  }
}

/** Longest message kept in a PHP error log line (as the php-cgi processes' own output lines). */
const MAX_LINE = 8192;

/**
 * The handler PhpErrorLogBackend puts in front of the caller's: FCGI_STDERR to the log, the rest
 * passed through. A class, not an object of closures: it is made for every request (issue 8).
 */
class StderrToLog implements ResponseHandler {
  readonly #handler: ResponseHandler;
  readonly #errors: PhpErrorLog;
  readonly #context: PhpRequestContext;
  readonly #passOn: boolean;
  /** The end of a line a record cut off, waiting for the rest (see onStderr). */
  #tail: Buffer | null = null;

  constructor(handler: ResponseHandler, errors: PhpErrorLog, context: PhpRequestContext, passOn: boolean) {
    this.#handler = handler;
    this.#errors = errors;
    this.#context = context;
    this.#passOn = passOn;
  }

  onStdout(chunk: Buffer): boolean {
    return this.#handler.onStdout(chunk);
  }

  onStderr(chunk: Buffer): void {
    // PHP's 8 KiB output buffer cuts messages across FCGI_STDERR records: the bytes after the last
    // line break wait for the rest of their line (the next record, or the end of the request), or a
    // 1 KiB message would be logged as two lines now and then. A longer tail is logged as it is.
    let data = this.#tail ? Buffer.concat([this.#tail, chunk]) : chunk;
    this.#tail = null;
    const end = data.lastIndexOf(0x0a) + 1;
    if (end < data.length && data.length - end <= MAX_LINE) {
      this.#tail = Buffer.from(data.subarray(end));
      data = data.subarray(0, end);
    }
    if (data.length > 0) this.#errors.requestOutput(data, this.#context);
    if (this.#passOn) this.#handler.onStderr(chunk);
  }

  #flushTail(): void {
    if (!this.#tail) return;
    this.#errors.requestOutput(this.#tail, this.#context);
    this.#tail = null;
  }

  onEnd(result: EndResult): void {
    this.#flushTail();
    this.#handler.onEnd(result);
  }

  onError(error: Error): void {
    this.#flushTail();
    this.#handler.onError(error);
  }

  onDispatch(process: { pid: number | null }): void {
    this.#context.pid = process.pid;
    if (process.pid !== null) this.#errors.dispatched(process.pid, this.#context);
    this.#handler.onDispatch?.(process);
  }
}

/**
 * A backend whose requests' FCGI_STDERR goes to the PHP error log. `passOn` also hands it to the
 * front (the FastCGI front sends it on to nginx, as php-fpm does); the HTTP front would only log it
 * to the server log again, so it gets none.
 */
export class PhpErrorLogBackend implements Backend {
  readonly kind: Backend['kind'];
  readonly #inner: Backend;
  readonly #errors: PhpErrorLog;
  readonly #passOn: boolean;

  constructor(inner: Backend, errors: PhpErrorLog, passOn: boolean) {
    this.kind = inner.kind;
    this.#inner = inner;
    this.#errors = errors;
    this.#passOn = passOn;
  }

  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo): RequestController {
    const context: PhpRequestContext = { id: info.requestId ?? '', method: info.method ?? '', uri: info.uri ?? '', script: info.script ?? null, pid: null };
    return this.#inner.dispatch(options, new StderrToLog(handler, this.#errors, context, this.#passOn), info);
  }

  status(): PoolStatus {
    return this.#inner.status();
  }

  stop(graceMs: number): Promise<void> {
    return this.#inner.stop(graceMs);
  }
}
