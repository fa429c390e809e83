// Opening a client connection's socket: half-open allowed, reads into reused buffers (net's
// `onread`), a connect timeout, and what a failed connect means (FCGI_CONNECT_REFUSED,
// FCGI_CONNECT_TIMEOUT, FCGI_CONNECTION_ERROR).

import net from 'node:net';
import { FastCGIConnectionError, FastCGITimeoutError, type TQServerError } from '../errors.js';
import { formatAddress, type Address } from './address.js';

/**
 * Takes the bytes of one socket read. `transient`: they sit in a buffer the next read (of any client
 * socket) overwrites, so what is kept must be copied first. socket.pause() stops reading.
 */
export type ReadHandler = (bytes: Buffer, transient: boolean) => void;

/** Where a socket's reads go, set by the connection that wraps it (before the first read). */
export interface ReadSlot {
  handler: ReadHandler | null;
}

/** libuv's own read size. */
const READ_BYTES = 64 * 1024;
/**
 * Client sockets read with net's `onread`, which spares the stream machinery (a push, a 'data'
 * event and a tick per read) and a native allocation per read. Small reads, most of them, land in
 * this one buffer and are handled before the next read starts; what is kept of them is copied.
 */
const SHARED_BUFFER = Buffer.allocUnsafe(READ_BYTES);
/**
 * After a read this large (a large response streaming in), a socket reads into new buffers of its
 * own, handed on without a copy: copying every byte of a 50 MiB response costs more than the
 * allocation. Smaller reads are copied, so a buffer kept is at least a quarter used.
 */
const LARGE_READ = 16 * 1024;

function readInto(reads: ReadSlot): net.OnReadOpts {
  let next = SHARED_BUFFER;
  return {
    buffer: () => next,
    callback: (bytes, buffer) => {
      const large = bytes >= LARGE_READ;
      next = large ? Buffer.allocUnsafe(READ_BYTES) : SHARED_BUFFER;
      const handler = reads.handler;
      if (!handler) return false;
      handler((buffer as Buffer).subarray(0, bytes), !large || buffer === SHARED_BUFFER);
      return true;
    },
  };
}

/** Connects to `target`; `wrap` turns the connected socket into what the promise resolves to. */
export function connectSocket<T>(target: Address, connectTimeoutMs: number, wrap: (socket: net.Socket, reads: ReadSlot) => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const reads: ReadSlot = { handler: null };
    const onread = readInto(reads);
    // Half-open allowed: a peer that shuts its write side may still be reading (see FastCGIConnection#onPeerEnd).
    const socket =
      'path' in target
        ? net.connect({ path: target.path, allowHalfOpen: true, onread })
        : net.connect({ host: target.host, port: target.port, allowHalfOpen: true, onread });
    const timer =
      connectTimeoutMs > 0
        ? setTimeout(() => {
            socket.destroy();
            reject(new FastCGITimeoutError('FCGI_CONNECT_TIMEOUT', `connect to ${formatAddress(target)} timed out after ${connectTimeoutMs} ms`));
          }, connectTimeoutMs)
        : null;
    const onError = (error: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      reject(connectError(target, error));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      if (timer) clearTimeout(timer);
      socket.off('error', onError);
      resolve(wrap(socket, reads));
    });
  });
}

function connectError(target: Address, error: NodeJS.ErrnoException): TQServerError {
  const where = formatAddress(target);
  if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') {
    return new FastCGIConnectionError('FCGI_CONNECT_REFUSED', `connect to ${where} refused (${error.code}): is the FastCGI peer running?`, { cause: error });
  }
  if (error.code === 'EAGAIN' && 'path' in target) {
    // Linux fails a unix-socket connect at once when the listen backlog is full (TCP waits instead).
    return new FastCGIConnectionError(
      'FCGI_CONNECTION_ERROR',
      `connect to ${where} failed (EAGAIN): its listen backlog is full; the peer is not accepting connections (all its processes busy?)`,
      { cause: error },
    );
  }
  return new FastCGIConnectionError('FCGI_CONNECTION_ERROR', `connect to ${where} failed: ${error.message}`, { cause: error });
}
