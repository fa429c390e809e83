// Writes a request body that does not travel with the request's head: a large buffer in pieces, a
// Readable through its data events, an async iterable in a loop. Each waits for the socket to drain
// (FastCGIConnection's 'writable') and stops when the request ends.

import { Readable } from 'node:stream';
import { FastCGIAbortError } from '../errors.js';
import { errorText } from '../util.js';
import type { FastCGIConnection } from './client.js';
import type { ActiveRequest } from './client-request.js';

/** Bodies up to this size are copied into the head buffer so the request is one socket write. */
export const INLINE_BODY_BYTES = 16 * 1024;
/** Larger in-memory bodies are written in pieces of this size, each waiting for the socket to drain. */
const BODY_PIECE_BYTES = 64 * 1024;

export function pumpBody(connection: FastCGIConnection, request: ActiveRequest, body: Buffer | Readable | AsyncIterable<Buffer | string>): void {
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
