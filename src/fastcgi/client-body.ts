// Writes a request body that does not travel with the request's head: a large buffer in pieces, a
// file read into reused buffers, a Readable through its data events, an async iterable in a loop.
// Each waits for the socket to take what it wrote and stops when the request ends.

import { close, open, read } from 'node:fs';
import { Readable } from 'node:stream';
import { FastCGIAbortError } from '../errors.js';
import { errorText } from '../util.js';
import type { FastCGIConnection } from './client.js';
import type { ActiveRequest } from './client-request.js';
import { FileBody } from './client-types.js';

/** Bodies up to this size are copied into the head buffer so the request is one socket write. */
export const INLINE_BODY_BYTES = 16 * 1024;
/** Larger in-memory bodies are written in pieces of this size, each waiting for the socket to drain. */
const BODY_PIECE_BYTES = 64 * 1024;

export function pumpBody(connection: FastCGIConnection, request: ActiveRequest, body: Buffer | FileBody | Readable | AsyncIterable<Buffer | string>): void {
  if (body instanceof FileBody) {
    pumpFile(connection, request, body);
    return;
  }
  if (Buffer.isBuffer(body)) {
    let offset = 0;
    const writeMore = () => {
      while (offset < body.length) {
        if (!connection.carries(request)) return;
        const piece = body.subarray(offset, offset + BODY_PIECE_BYTES);
        offset += piece.length;
        if (!connection.writeBody(request, piece)) {
          connection.once('writable', writeMore);
          return;
        }
      }
      connection.endBody(request);
    };
    addCleanup(request, () => connection.off('writable', writeMore));
    writeMore();
    return;
  }

  if (body instanceof Readable) {
    // Data events rather than async iteration: leaving a loop early would destroy the caller's stream.
    const onData = (chunk: Buffer | string) => {
      if (request.finished) return;
      if (!connection.writeBody(request, chunk)) {
        body.pause();
        connection.once('writable', onWritable);
      }
    };
    const onWritable = () => {
      if (!request.finished) body.resume();
    };
    const onEnd = () => connection.endBody(request);
    const onError = (error: Error) => failBody(connection, request, error);
    const onClose = () => {
      if (!body.readableEnded) failBody(connection, request, new Error('body stream closed before its end'));
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.once('close', onClose);
    addCleanup(request, () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      connection.off('writable', onWritable);
    });
    return;
  }

  // Wakes the loop below when the socket drains, or when the request ends meanwhile, so the loop
  // leaves (closing the caller's iterator) instead of waiting forever for a drain that never comes.
  let wake: (() => void) | null = null;
  const onWritable = () => wake?.();
  connection.on('writable', onWritable);
  addCleanup(request, () => {
    connection.off('writable', onWritable);
    wake?.();
  });
  void (async () => {
    try {
      for await (const chunk of body) {
        if (request.finished) return;
        if (!connection.writeBody(request, chunk)) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = null;
        }
        if (request.finished) return;
      }
      connection.endBody(request);
    } catch (error) {
      failBody(connection, request, error);
    }
  })();
}

/** A file body is read in pieces of this size. */
const FILE_PIECE_BYTES = 256 * 1024;
/** Piece buffers kept for the next file body: allocating them per piece is what made spooled uploads GC-bound. */
const spareBuffers: Buffer[] = [];
const MAX_SPARE_BUFFERS = 8;

/**
 * A file body: one piece at a time is read into a buffer and written; the next is read once the
 * socket has taken the last one (its write callback), so the buffer is reused and the socket's
 * backpressure paces the reads. The buffer goes back to the spares only when no write holds it.
 */
function pumpFile(connection: FastCGIConnection, request: ActiveRequest, body: FileBody): void {
  let fd: number | null = null;
  let buffer: Buffer | null = spareBuffers.pop() ?? Buffer.allocUnsafeSlow(FILE_PIECE_BYTES);
  let position = 0;
  let writing = false;
  const finish = () => {
    if (fd !== null) close(fd, () => {});
    fd = null;
    if (buffer && !writing && spareBuffers.length < MAX_SPARE_BUFFERS) spareBuffers.push(buffer);
    buffer = null;
  };
  addCleanup(request, finish);
  const fail = (error: Error) => {
    failBody(connection, request, error);
    finish();
  };
  const next = () => {
    if (!connection.carries(request) || fd === null || buffer === null) return finish();
    if (position >= body.length) {
      connection.endBody(request);
      return finish();
    }
    read(fd, buffer, 0, Math.min(buffer.length, body.length - position), position, (error, bytes) => {
      if (error) return fail(error);
      if (!connection.carries(request) || buffer === null) return finish();
      if (bytes === 0) return fail(new Error(`${body.path} ended after ${position} of ${body.length} bytes`));
      position += bytes;
      writing = true;
      connection.writeBody(request, buffer.subarray(0, bytes), (writeError) => {
        writing = false;
        if (writeError) finish();
        else next();
      });
    });
  };
  open(body.path, 'r', (error, opened) => {
    if (error) return fail(error);
    fd = opened;
    if (buffer === null) return finish(); // the request ended while the file was opening
    next();
  });
}

function failBody(connection: FastCGIConnection, request: ActiveRequest, error: unknown): void {
  if (!connection.carries(request)) return;
  request.abort(new FastCGIAbortError(`request body failed: ${errorText(error)}`, { cause: error }));
}

function addCleanup(request: ActiveRequest, fn: () => void): void {
  const previous = request.cleanup;
  request.cleanup = () => {
    previous?.();
    fn();
  };
}
