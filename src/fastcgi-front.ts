// The FastCGI front (TQServer in php-fpm's place): nginx fastcgi_pass-es to it, each request's
// script is checked to be a real file in the app's document root with an allowed extension, then
// the request goes to the app's backend with both streams passed through and aborts passed on.

import { isAbsolute, relative, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { FastCGIAbortError, httpStatusFor } from './errors.js';
import type { Address } from './fastcgi/address.js';
import type { EndResult, RequestController, ResponseHandler } from './fastcgi/client.js';
import { FastCGIServer, type FastCGIServerRequest, type FastCGIServerResponse } from './fastcgi/server.js';
import type { Logger } from './log.js';
import type { Backend } from './backend.js';
import { describeFailure, RETRY_AFTER_SECONDS } from './http/error-page.js';
import { isHiddenPath, isScriptFile } from './http/resolve.js';
import { CgiResponseParser } from './cgi/response.js';
import { requestIdFor, type RequestObserver, type RequestRecord } from './observe/request-record.js';

export interface FastCGIFrontOptions {
  app: string;
  documentRoot: string;
  extensions: readonly string[];
  backend: Backend;
  allowedClients: readonly string[] | 'any';
  log: Logger;
  /** Called once per request when it is over. */
  onRequest?: RequestObserver;
}

/**
 * Params nginx makes from request headers that PHP must not see, so that it sees the same variables
 * as behind the HTTP front (cgi/env.ts drops the same headers).
 */
const DROPPED_PARAMS: ReadonlySet<string> = new Set([
  // httpoxy (CVE-2016-5385): nginx passes a Proxy request header on as HTTP_PROXY unless told not to.
  'HTTP_PROXY',
  // RFC 3875 4.1.18: the server "SHOULD remove any header fields ... that are available to the
  // script in other variables, such as 'Content-Length' and 'Content-Type'".
  'HTTP_CONTENT_TYPE',
  'HTTP_CONTENT_LENGTH',
  // nginx buffers a chunked body and sends CONTENT_LENGTH: the body PHP reads is not chunked.
  'HTTP_TRANSFER_ENCODING',
]);

/** What checkScript finds from a SCRIPT_FILENAME's text alone, before it looks at the file. */
interface ScriptPath {
  /** Why it may not run, or null when only the file itself is left to check. */
  problem: string | null;
  /** The path with "." and ".." resolved: what is looked at, and what PHP gets. */
  normal: string;
  /** As the HTTP front names it: the path inside the document root ("/index.php"). */
  script: string;
}

function scriptPath(scriptFilename: string, documentRoot: string, extensions: readonly string[]): ScriptPath {
  const refuse = (problem: string): ScriptPath => ({ problem, normal: '', script: '' });
  if (!isAbsolute(scriptFilename)) return refuse(`SCRIPT_FILENAME ${scriptFilename} is not an absolute path`);
  if (/[\0\r\n]/.test(scriptFilename)) return refuse('SCRIPT_FILENAME contains a control character');
  const normal = resolve(scriptFilename);
  const rel = relative(documentRoot, normal);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return refuse(`${scriptFilename} is outside the document root ${documentRoot}`);
  const script = `/${rel.split(sep).join('/')}`;
  if (isHiddenPath(script)) return refuse(`${scriptFilename} is in a hidden path`);
  if (!extensions.some((extension) => normal.endsWith(extension))) return refuse(`${scriptFilename} does not have an allowed extension (${extensions.join(', ')})`);
  return { problem: null, normal, script };
}

/**
 * Why a script may not run, or null when it may. Pure apart from looking at the file, which is
 * remembered to be one for up to a second as at the HTTP front (isScriptFile; "not there" is never
 * remembered).
 */
export function checkScript(scriptFilename: string | undefined, documentRoot: string, extensions: readonly string[]): string | null {
  if (!scriptFilename) return 'no SCRIPT_FILENAME param';
  const path = scriptPath(scriptFilename, documentRoot, extensions);
  return path.problem ?? fileProblem(scriptFilename, path);
}

function fileProblem(scriptFilename: string, path: ScriptPath): string | null {
  return isScriptFile(path.normal) ? null : `${scriptFilename} is not a file`;
}

/**
 * scriptPath's answers for one front's document root and extensions, by SCRIPT_FILENAME: a site
 * runs few scripts, and resolving, relating and searching each request's path again cost more than
 * the rest of the check (issue 8). Emptied when full, so a client sending endless names cannot grow it.
 */
const SCRIPT_PATHS_MAX = 1024;
function scriptPaths(documentRoot: string, extensions: readonly string[]): (scriptFilename: string) => ScriptPath {
  const known = new Map<string, ScriptPath>();
  return (scriptFilename) => {
    let path = known.get(scriptFilename);
    if (path === undefined) {
      path = scriptPath(scriptFilename, documentRoot, extensions);
      if (known.size >= SCRIPT_PATHS_MAX) known.clear();
      known.set(scriptFilename, path);
    }
    return path;
  };
}

/**
 * The body PHP will read: at most CONTENT_LENGTH bytes of STDIN (digits only, else none). PHP reads
 * no further than its CONTENT_LENGTH and then waits on the same kept-alive connection for the next
 * BEGIN_REQUEST: any STDIN left over makes it drop that connection, failing the next request, which
 * may be another client's. nginx never sends more; a client that does loses only the excess.
 */
function stdinFor(request: FastCGIServerRequest, declared: string): Readable | null {
  let left = /^\d{1,15}$/.test(declared) ? Number(declared) : 0;
  if (left === 0) {
    request.discardStdin();
    return null;
  }
  const capped = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (left >= chunk.length) {
        left -= chunk.length;
        done(null, chunk);
      } else {
        const piece = chunk.subarray(0, left);
        left = 0;
        done(null, piece.length > 0 ? piece : undefined);
      }
    },
  });
  // The backend listens for errors only while it sends the body; an abort may come after that.
  capped.on('error', () => {});
  request.stdin.on('error', (error) => capped.destroy(error));
  return request.stdin.pipe(capped);
}

/** Writes a whole CGI response when the backend produced none (php-fpm's "File not found." and the like). */
function answer(response: FastCGIServerResponse, status: number, text: string, appStatus: number): void {
  const retry = status === 503 ? `Retry-After: ${RETRY_AFTER_SECONDS}\r\n` : '';
  response.write(`Status: ${status}\r\n${retry}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`);
  response.end(appStatus);
}

/**
 * One request on its way through the backend: the handler the backend calls, and what the record
 * needs. One object per request instead of a promise and seven closures (issue 8).
 */
class FrontExchange implements ResponseHandler {
  readonly options: FastCGIFrontOptions;
  readonly request: FastCGIServerRequest;
  readonly response: FastCGIServerResponse;
  readonly record: RequestRecord;
  readonly startedPerf: number;
  /** Only watched to learn the status for the record; the bytes go to nginx untouched. */
  readonly head = new CgiResponseParser();
  dispatchedAt: number | null = null;
  wroteOutput = false;
  controller: RequestController | null = null;
  readonly onAbort = (): void => this.controller?.abort(new FastCGIAbortError('the web server aborted the request'));
  readonly onDrain = (): void => this.controller?.resume();

  constructor(options: FastCGIFrontOptions, request: FastCGIServerRequest, response: FastCGIServerResponse, record: RequestRecord, startedPerf: number) {
    this.options = options;
    this.request = request;
    this.response = response;
    this.record = record;
    this.startedPerf = startedPerf;
  }

  onDispatch(process: { pid: number | null }): void {
    this.dispatchedAt = performance.now();
    this.record.workerPid = process.pid;
  }

  onStdout(chunk: Buffer): boolean {
    this.wroteOutput = true;
    this.record.bytesSent += chunk.length;
    if (!this.head.head) {
      try {
        const parsed = this.head.push(chunk);
        if (parsed) this.record.status = parsed.head.status;
      } catch {
        // a broken head is PHP's to answer for; nginx reports it
      }
    }
    return this.response.write(chunk);
  }

  onStderr(chunk: Buffer): void {
    this.response.stderr.write(chunk);
  }

  onEnd(result: EndResult): void {
    this.response.end(result.appStatus);
    this.finish();
  }

  onError(error: Error): void {
    const { options, record, response } = this;
    const status = httpStatusFor(error);
    record.error = (error as { code?: string }).code ?? 'ERROR';
    if (!this.wroteOutput) record.status = status;
    options.log.warn({ app: options.app, req: record.id, status, code: record.error }, `FastCGI front ${options.app}: ${status}: ${error.message}`);
    if (this.request.aborted) response.end(1);
    else if (this.wroteOutput) response.end(1);
    else answer(response, status, describeFailure(error).message, 1);
    this.finish();
  }

  finish(): void {
    this.request.onAbort = null;
    this.response.onDrain = null;
    this.report();
  }

  report(): void {
    const { record } = this;
    const now = performance.now();
    record.durationMs = now - this.startedPerf;
    record.queueMs = (this.dispatchedAt ?? now) - this.startedPerf;
    record.phpMs = this.dispatchedAt === null ? null : now - this.dispatchedAt;
    record.aborted = this.request.aborted;
    this.options.onRequest?.(record);
  }
}

export function createFastCGIFront(options: FastCGIFrontOptions): FastCGIServer {
  const { log } = options;
  const pathOf = scriptPaths(options.documentRoot, options.extensions);
  const server = new FastCGIServer(
    (request: FastCGIServerRequest, response: FastCGIServerResponse) => {
      // The pairs PHP gets: nginx's, in their order, less the dropped ones (their indices: see
      // ParamsIndex.pass), then `added`.
      const kept: number[] = [];
      const added: Array<readonly [string, string]> = [];
      let scriptFilename: string | undefined;
      let hasRedirectStatus = false;
      const startedAt = Date.now();
      const startedPerf = performance.now();
      // The few params read here, found in the same pass that filters them: a repeated name's last
      // value counts, as in request.params (a map of all ~35, which cost more than this whole pass).
      const raw = request.paramsIndex;
      const names = raw.names;
      let requestIdAt = -1;
      let methodAt = -1;
      let uriAt = -1;
      let protocolAt = -1;
      let remoteAddrAt = -1;
      let userAgentAt = -1;
      let refererAt = -1;
      let contentLengthAt = -1;
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        switch (name) {
          case 'REQUEST_METHOD':
            methodAt = i;
            break;
          case 'REQUEST_URI':
            uriAt = i;
            break;
          case 'SERVER_PROTOCOL':
            protocolAt = i;
            break;
          case 'REMOTE_ADDR':
            remoteAddrAt = i;
            break;
          case 'HTTP_USER_AGENT':
            userAgentAt = i;
            break;
          case 'HTTP_REFERER':
            refererAt = i;
            break;
          case 'CONTENT_LENGTH':
            contentLengthAt = i;
            break;
          case 'REDIRECT_STATUS':
            hasRedirectStatus = true;
            break;
          case 'HTTP_X_REQUEST_ID':
            // The id TQServer logs the request under is the one PHP sees.
            requestIdAt = i;
            continue;
          case 'SCRIPT_FILENAME':
            // Repeated: the last one counts (as in php-cgi's own param table); it alone is checked and sent.
            scriptFilename = raw.valueText(i);
            continue;
          default:
            if (DROPPED_PARAMS.has(name)) continue;
        }
        kept.push(i);
      }
      const text = (at: number): string | undefined => (at < 0 ? undefined : raw.valueText(at));
      const id = requestIdFor(text(requestIdAt));
      const method = text(methodAt);
      const uri = text(uriAt);
      const contentLength = text(contentLengthAt);
      const record: RequestRecord = {
        id,
        front: 'fastcgi',
        app: options.app,
        kind: 'php',
        method: method ?? '',
        uri: uri ?? '',
        httpVersion: (text(protocolAt) ?? '').replace(/^HTTP\//, ''),
        remoteAddress: text(remoteAddrAt) ?? '',
        status: 200,
        bytesSent: 0,
        startedAt,
        durationMs: 0,
        queueMs: null,
        phpMs: null,
        backend: options.backend.kind,
        workerPid: null,
        script: null,
        userAgent: text(userAgentAt) ?? '',
        referer: text(refererAt) ?? '',
        error: null,
        aborted: false,
      };
      // php-cgi refuses requests without it (cgi.force_redirect); php-fpm does not need it.
      if (!hasRedirectStatus) added.push(['REDIRECT_STATUS', '200']);
      added.push(['HTTP_X_REQUEST_ID', id]);
      // As checkScript, with the path's part remembered.
      const path = scriptFilename ? pathOf(scriptFilename) : null;
      const problem = path === null ? 'no SCRIPT_FILENAME param' : (path.problem ?? fileProblem(scriptFilename!, path));
      // PHP gets the path that was checked, with any "." and ".." already resolved: the kernel would
      // resolve "link/.." through a symlink, the check resolves it as text.
      if (!problem) added.push(['SCRIPT_FILENAME', path!.normal]);
      const exchange = new FrontExchange(options, request, response, record, startedPerf);
      if (problem) {
        log.info({ app: options.app, req: id }, `FastCGI front ${options.app}: 404: ${problem}`);
        // php-fpm answers the same way and logs "Primary script unknown".
        response.stderr.write('Primary script unknown\n');
        answer(response, 404, 'File not found.', 0);
        record.kind = 'not-found';
        record.status = 404;
        record.error = 'PRIMARY_SCRIPT_UNKNOWN';
        exchange.report();
        return;
      }
      record.script = path!.script;
      request.onAbort = exchange.onAbort;
      response.onDrain = exchange.onDrain;
      exchange.controller = options.backend.dispatch(
        // nginx's bytes go on as they came, with the pairs added above; encoded pair by pair only
        // when its stream is not in the form encodeParams writes.
        { params: raw.pass(kept, added) ?? [...kept.map((i) => [names[i]!, raw.value(i)] as const), ...added], body: stdinFor(request, contentLength ?? '') },
        exchange,
        { method, uri, script: scriptFilename, contentLength: Number(contentLength || 0), requestId: id },
      );
      // The handler returns no promise: every way the request ends goes through the exchange, which
      // ends the response itself (a promise per request only told the server what it already knew).
    },
    { allowedClients: options.allowedClients },
  );
  server.on('connectionError', (error: Error, info: { remoteAddress?: string }) => {
    log.warn({ app: options.app, remote: info.remoteAddress }, `FastCGI front ${options.app}: connection from ${info.remoteAddress ?? 'unix socket'} dropped: ${error.message}`);
  });
  server.on('refused', (info: { remoteAddress?: string; reason: string }) => {
    log.warn({ app: options.app, remote: info.remoteAddress }, `FastCGI front ${options.app}: refused ${info.remoteAddress}: ${info.reason}`);
  });
  return server;
}

export type { Address };
