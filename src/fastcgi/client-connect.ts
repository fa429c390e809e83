// Opening a client connection's socket: half-open allowed, a connect timeout, and what a failed
// connect means (FCGI_CONNECT_REFUSED, FCGI_CONNECT_TIMEOUT, FCGI_CONNECTION_ERROR).

import net from 'node:net';
import { FastCGIConnectionError, FastCGITimeoutError, type TQServerError } from '../errors.js';
import { formatAddress, type Address } from './address.js';

/** Connects to `target`; `wrap` turns the connected socket into what the promise resolves to. */
export function connectSocket<T>(target: Address, connectTimeoutMs: number, wrap: (socket: net.Socket) => T): Promise<T> {
  return new Promise((resolve, reject) => {
    // Half-open allowed: a peer that shuts its write side may still be reading (see FastCGIConnection#onPeerEnd).
    const socket = 'path' in target ? net.connect({ path: target.path, allowHalfOpen: true }) : net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
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
      resolve(wrap(socket));
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
