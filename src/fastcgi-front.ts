// The FastCGI front (TQServer in php-fpm's place): nginx fastcgi_pass-es to it, each request's
// script is checked to be a real file in the app's document root with an allowed extension, then
// the request goes to the app's backend with both streams passed through and aborts passed on.

import { statSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { FastCGIAbortError, httpStatusFor } from './errors.js';
import type { Address } from './fastcgi/address.js';
import type { RequestController } from './fastcgi/client.js';
import { FastCGIServer, type FastCGIServerRequest, type FastCGIServerResponse } from './fastcgi/server.js';
import type { Logger } from './log.js';
import type { Backend } from './backend.js';
import { isHiddenPath } from './http/resolve.js';

export interface FastCGIFrontOptions {
  app: string;
  documentRoot: string;
  extensions: readonly string[];
  backend: Backend;
  allowedClients: readonly string[] | 'any';
  log: Logger;
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
      for (const [name, value] of request.rawParams) {
        if (DROPPED_PARAMS.has(name)) continue;
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
      const problem = checkScript(scriptFilename, options.documentRoot, options.extensions);
      // PHP gets the path that was checked, with any "." and ".." already resolved: the kernel would
      // resolve "link/.." through a symlink, the check resolves it as text.
      if (!problem) params.push(['SCRIPT_FILENAME', resolve(scriptFilename!)]);
      if (problem) {
        log.info({ app: options.app }, `FastCGI front ${options.app}: 404: ${problem}`);
        // php-fpm answers the same way and logs "Primary script unknown".
        response.stderr.write('Primary script unknown\n');
        answer(response, 404, 'File not found.', 0);
        return;
      }
      return new Promise<void>((done) => {
        let wroteOutput = false;
        let controller: RequestController | null = null;
        const onAbort = () => controller?.abort(new FastCGIAbortError('the web server aborted the request'));
        request.signal.addEventListener('abort', onAbort, { once: true });
        const finish = () => {
          request.signal.removeEventListener('abort', onAbort);
          response.stdout.off('drain', onDrain);
          done();
        };
        const onDrain = () => controller?.resume();
        response.stdout.on('drain', onDrain);
        controller = options.backend.dispatch(
          { params, body: request.stdin },
          {
            onStdout(chunk) {
              wroteOutput = true;
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
              log.warn({ app: options.app, status, code: (error as { code?: string }).code }, `FastCGI front ${options.app}: ${status}: ${error.message}`);
              if (request.signal.aborted) response.end(1);
              else if (wroteOutput) response.end(1);
              else answer(response, status, status === 503 ? 'Service busy; retry shortly.' : status === 504 ? 'Gateway timeout.' : 'Bad gateway.', 1);
              finish();
            },
          },
          { method: request.params.get('REQUEST_METHOD'), uri: request.params.get('REQUEST_URI'), script: scriptFilename, contentLength: Number(request.params.get('CONTENT_LENGTH') || 0) },
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
