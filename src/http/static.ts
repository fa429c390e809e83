// Static files from an app's document root: Content-Type, ETag and Last-Modified with 304s, single
// byte ranges (206/416), HEAD; small files from memory (static-cache.ts), larger ones streamed with
// backpressure. Which files may be served is decided
// before this (resolve.ts): PHP source, dotfiles and backups never reach here.

import { createReadStream, readFile, type Stats } from 'node:fs';
import { extname } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import mime from 'mime-types';
import { CACHED_FILE_BYTES, StaticFileCache } from './static-cache.js';

export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parses a Range header against a file size (RFC 9110 14.2): one satisfiable range, "unsatisfiable"
 * (answer 416), or null to send the whole file (no header, another unit, several ranges, or syntax
 * the spec says to ignore).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (!header) return null;
  // RFC 9110 14.1: the range unit is compared case-insensitively.
  const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header.trim());
  if (!match) return null;
  const [, first, last] = match;
  if (first === '' && last === '') return null;
  if (first === '') {
    // Suffix range: the last N bytes. RFC 9110 14.1.3: a zero suffix-length is unsatisfiable.
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    // An empty file has no last byte to name, so there is no range to send: the whole (empty)
    // file is the answer (a server MAY ignore Range, 14.2) rather than "bytes 0--1/0".
    if (size === 0) return null;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  // RFC 9110 14.1.1: last-pos below first-pos makes the range invalid, and an invalid Range is ignored.
  if (last !== '' && Number(last) < start) return null;
  if (start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { start, end };
}

/** nginx's ETag shape: hex mtime and size, quoted. */
export function etagFor(stats: Stats): string {
  return `"${Math.floor(stats.mtimeMs / 1000).toString(16)}-${stats.size.toString(16)}"`;
}

/** RFC 9110 13.1.2: If-None-Match matches with weak comparison, "*" matches any. */
function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === bare);
}

function notModifiedSince(header: string, stats: Stats): boolean {
  const since = Date.parse(header);
  return Number.isFinite(since) && Math.floor(stats.mtimeMs / 1000) * 1000 <= since;
}

/** If-Range (RFC 9110 13.1.5): the range applies only if the validator still matches. */
function ifRangeHolds(header: string | undefined, etag: string, stats: Stats): boolean {
  if (!header) return true;
  const value = header.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return value === etag;
  const date = Date.parse(value);
  return Number.isFinite(date) && Math.floor(stats.mtimeMs / 1000) * 1000 === date;
}

/**
 * The Content-Type for a file name, from its extension only. mime-types would also look up a bare
 * name as an extension, so a file called "html" or "json" would be sent as HTML or JSON.
 */
export function contentTypeFor(file: string): string {
  const extension = extname(file);
  return (extension !== '' && mime.contentType(extension)) || 'application/octet-stream';
}

/** Small files in memory for every app (entries are checked against each request's stat). */
const fileCache = new StaticFileCache();

/**
 * Answers a GET or HEAD for `file`; other methods get 405. Returns the status sent. The head is
 * written as one array (with `requestId` first, when given). A file up to CACHED_FILE_BYTES is
 * answered from memory, read once; a larger one is streamed.
 */
export function serveStatic(request: IncomingMessage, response: ServerResponse, file: string, stats: Stats, requestId?: string): number {
  const method = request.method ?? 'GET';
  const head: string[] = requestId === undefined ? [] : ['X-Request-Id', requestId];
  if (method !== 'GET' && method !== 'HEAD') {
    head.push('Allow', 'GET, HEAD', 'Content-Length', '0');
    response.writeHead(405, head);
    response.end();
    return 405;
  }
  const etag = etagFor(stats);
  const lastModified = new Date(Math.floor(stats.mtimeMs / 1000) * 1000).toUTCString();
  head.push('ETag', etag, 'Last-Modified', lastModified, 'Accept-Ranges', 'bytes', 'X-Content-Type-Options', 'nosniff');

  const ifNoneMatch = request.headers['if-none-match'];
  const ifModifiedSince = request.headers['if-modified-since'];
  // RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since.
  if (ifNoneMatch !== undefined ? noneMatch(ifNoneMatch, etag) : ifModifiedSince !== undefined && notModifiedSince(ifModifiedSince, stats)) {
    response.writeHead(304, head);
    response.end();
    return 304;
  }

  const size = stats.size;
  let range: ByteRange | 'unsatisfiable' | null = null;
  const ifRange = request.headers['if-range'];
  // RFC 9110 14.2: range handling is defined for GET only; a HEAD with Range gets the 200 headers.
  if (method === 'GET' && ifRangeHolds(Array.isArray(ifRange) ? ifRange[0] : ifRange, etag, stats)) range = parseRange(request.headers.range, size);
  if (range === 'unsatisfiable') {
    head.push('Content-Range', `bytes */${size}`, 'Content-Length', '0');
    response.writeHead(416, head);
    response.end();
    return 416;
  }
  const status = range ? 206 : 200;
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  head.push('Content-Type', contentTypeFor(file));
  if (range) head.push('Content-Range', `bytes ${start}-${end}/${size}`);
  head.push('Content-Length', String(Math.max(0, end - start + 1)));
  if (method === 'HEAD' || size === 0) {
    response.writeHead(status, head);
    response.end();
    return status;
  }
  const cached = fileCache.get(file, stats);
  if (cached) {
    response.writeHead(status, head);
    response.end(range ? cached.subarray(start, end + 1) : cached);
    return status;
  }
  if (size <= CACHED_FILE_BYTES) {
    readFile(file, (error, data) => {
      if (response.destroyed) return; // the client left meanwhile
      if (error) {
        // The file vanished after its stat: nothing was sent, so the connection just closes.
        response.destroy(error);
        return;
      }
      if (data.length !== size) {
        // Changed between its stat and the read: what was read is what is sent, whole.
        head.splice(head.length - (range ? 4 : 2));
        head.push('Content-Length', String(data.length));
        response.writeHead(200, head);
        response.end(data);
        return;
      }
      fileCache.put(file, stats, data);
      response.writeHead(status, head);
      response.end(range ? data.subarray(start, end + 1) : data);
    });
    return status;
  }
  response.writeHead(status, head);
  const stream = createReadStream(file, { start, end });
  pipeline(stream, response, (error) => {
    // The file vanished or the client left: nothing more can be sent on this response.
    if (error && !response.destroyed) response.destroy(error);
  });
  return status;
}
