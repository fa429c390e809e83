// The FastCGI front (TQServer in php-fpm's place): nginx fastcgi_pass-es to it, each request's
// script is checked to be a real file in the app's document root with an allowed extension, then
// the request goes to the app's backend with both streams passed through and aborts passed on.

import { statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { FastCGIAbortError, httpStatusFor } from './errors.js';
import type { Address } from './fastcgi/address.js';
import type { RequestController } from './fastcgi/client.js';
import { FastCGIServer, type FastCGIServerRequest, type FastCGIServerResponse } from './fastcgi/server.js';
import type { Logger } from './log.js';
import type { Backend } from './backend.js';
import { isHiddenPath } from './http/resolve.js';
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

/** Why a script may not run, or null when it may. Pure apart from one stat. */
export function checkScript(scriptFilename: string | undefined, documentRoot: string, extensions: readonly string[]): string | null {
  if (!scriptFilename) return 'no SCRIPT_FILENAME param';
  if (!isAbsolute(scriptFilename)) return `SCRIPT_FILENAME ${scriptFilename} is not an absolute path`;
  if (/[\0\r\n]/.test(scriptFilename)) return 'SCRIPT_FILENAME contains a control character';
  const normal = resolve(scriptFilename);
  const rel = relative(documentRoot, normal);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return `${scriptFilename} is outside the document root ${documentRoot}`;
  if (isHiddenPath(`/${rel.split(sep).join('/')}`)) return `${scriptFilename} is in a hidden path`;
  if (!extensions.some((extension) => normal.endsWith(extension))) return `${scriptFilename} does not have an allowed extension (${extensions.join(', ')})`;
  let isFile = false;
  try {
    isFile = statSync(normal, { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    isFile = false;
  }
  if (!isFile) return `${scriptFilename} is not a file`;
  return null;
}

/**
 * The body PHP will read: at most CONTENT_LENGTH bytes of STDIN (digits only, else none). PHP reads
 * no further than its CONTENT_LENGTH and then waits on the same kept-alive connection for the next
 * BEGIN_REQUEST: any STDIN left over makes it drop that connection, failing the next request, which
 * may be another client's. nginx never sends more; a client that does loses only the excess.
 */
function stdinFor(request: FastCGIServerRequest): Readable | null {
  const declared = request.params.get('CONTENT_LENGTH') ?? '';
  let left = /^\d{1,15}$/.test(declared) ? Number(declared) : 0;
  if (left === 0) {
    request.stdin.resume();
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
  response.stdout.write(`Status: ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n\r\n${text}\n`);
  response.end(appStatus);
}

export function createFastCGIFront(options: FastCGIFrontOptions): FastCGIServer {
  const { log } = options;
  const server = new FastCGIServer(
    (request: FastCGIServerRequest, response: FastCGIServerResponse) => {
      const params: Array<[string, Buffer | string]> = [];
      let scriptFilename: string | undefined;
      let hasRedirectStatus = false;
      const startedAt = Date.now();
      const startedPerf = performance.now();
      const id = requestIdFor(request.params.get('HTTP_X_REQUEST_ID'));
      const record: RequestRecord = {
        id,
        front: 'fastcgi',
        app: options.app,
        kind: 'php',
        method: request.params.get('REQUEST_METHOD') ?? '',
        uri: request.params.get('REQUEST_URI') ?? '',
        httpVersion: (request.params.get('SERVER_PROTOCOL') ?? '').replace(/^HTTP\//, ''),
        remoteAddress: request.params.get('REMOTE_ADDR') ?? '',
        status: 200,
        bytesSent: 0,
        startedAt,
        durationMs: 0,
        queueMs: null,
        phpMs: null,
        backend: options.backend.kind,
        workerPid: null,
        script: null,
        userAgent: request.params.get('HTTP_USER_AGENT') ?? '',
        referer: request.params.get('HTTP_REFERER') ?? '',
        error: null,
        aborted: false,
      };
      let dispatchedAt: number | null = null;
      const report = () => {
        const now = performance.now();
        record.durationMs = now - startedPerf;
        record.queueMs = (dispatchedAt ?? now) - startedPerf;
        record.phpMs = dispatchedAt === null ? null : now - dispatchedAt;
        record.aborted = request.signal.aborted;
        options.onRequest?.(record);
      };
      for (const [name, value] of request.rawParams) {
        if (DROPPED_PARAMS.has(name)) continue;
        // The id TQServer logs the request under is the one PHP sees.
        if (name === 'HTTP_X_REQUEST_ID') continue;
        if (name === 'SCRIPT_FILENAME') {
          // Repeated: the last one counts (as in php-cgi's own param table); it alone is checked and sent.
          scriptFilename = value.toString('utf8');
          continue;
        }
        if (name === 'REDIRECT_STATUS') hasRedirectStatus = true;
        params.push([name, value]);
      }
      // php-cgi refuses requests without it (cgi.force_redirect); php-fpm does not need it.
      if (!hasRedirectStatus) params.push(['REDIRECT_STATUS', '200']);
      params.push(['HTTP_X_REQUEST_ID', id]);
      const problem = checkScript(scriptFilename, options.documentRoot, options.extensions);
      // PHP gets the path that was checked, with any "." and ".." already resolved: the kernel would
      // resolve "link/.." through a symlink, the check resolves it as text.
      if (!problem) params.push(['SCRIPT_FILENAME', resolve(scriptFilename!)]);
      if (problem) {
        log.info({ app: options.app, req: id }, `FastCGI front ${options.app}: 404: ${problem}`);
        // php-fpm answers the same way and logs "Primary script unknown".
        response.stderr.write('Primary script unknown\n');
        answer(response, 404, 'File not found.', 0);
        record.kind = 'not-found';
        record.status = 404;
        record.error = 'PRIMARY_SCRIPT_UNKNOWN';
        report();
        return;
      }
      // As the HTTP front names it: the path inside the document root ("/index.php").
      record.script = `/${relative(options.documentRoot, resolve(scriptFilename!)).split(sep).join('/')}`;
      // Only watched to learn the status for the record; the bytes go to nginx untouched.
      const head = new CgiResponseParser();
      return new Promise<void>((done) => {
        let wroteOutput = false;
        let controller: RequestController | null = null;
        const onAbort = () => controller?.abort(new FastCGIAbortError('the web server aborted the request'));
        request.signal.addEventListener('abort', onAbort, { once: true });
        const finish = () => {
          request.signal.removeEventListener('abort', onAbort);
          response.stdout.off('drain', onDrain);
          report();
          done();
        };
        const onDrain = () => controller?.resume();
        response.stdout.on('drain', onDrain);
        controller = options.backend.dispatch(
          { params, body: stdinFor(request) },
          {
            onDispatch(process) {
              dispatchedAt = performance.now();
              record.workerPid = process.pid;
            },
            onStdout(chunk) {
              wroteOutput = true;
              record.bytesSent += chunk.length;
              if (!head.head) {
                try {
                  const parsed = head.push(chunk);
                  if (parsed) record.status = parsed.head.status;
                } catch {
                  // a broken head is PHP's to answer for; nginx reports it
                }
              }
              return response.stdout.write(chunk);
            },
            onStderr(chunk) {
              response.stderr.write(chunk);
            },
            onEnd(result) {
              response.end(result.appStatus);
              finish();
            },
            onError(error) {
              const status = httpStatusFor(error);
              record.error = (error as { code?: string }).code ?? 'ERROR';
              if (!wroteOutput) record.status = status;
              log.warn({ app: options.app, req: id, status, code: record.error }, `FastCGI front ${options.app}: ${status}: ${error.message}`);
              if (request.signal.aborted) response.end(1);
              else if (wroteOutput) response.end(1);
              else answer(response, status, status === 503 ? 'Service busy; retry shortly.' : status === 504 ? 'Gateway timeout.' : status === 431 ? 'Request params too large.' : 'Bad gateway.', 1);
              finish();
            },
          },
          { method: request.params.get('REQUEST_METHOD'), uri: request.params.get('REQUEST_URI'), script: scriptFilename, contentLength: Number(request.params.get('CONTENT_LENGTH') || 0), requestId: id },
        );
      });
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
