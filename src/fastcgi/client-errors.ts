// The errors a client connection fails a request with when its caller gives up, its peer rejects it
// or closes, or a timeout passes: built from plain values, so the connection only decides when.

import { FastCGIAbortError, FastCGIConnectionError, FastCGIRejectedError, FastCGITimeoutError } from '../errors.js';
import { errorText } from '../util.js';
import { protocolStatusName } from './protocol.js';

/** The caller's abort reason (an AbortSignal's reason, anything given to abort()) as FCGI_REQUEST_ABORTED. */
export function toAbortError(reason?: unknown): FastCGIAbortError {
  if (reason instanceof FastCGIAbortError) return reason;
  if (reason === undefined) return new FastCGIAbortError();
  return new FastCGIAbortError(`request aborted by the caller: ${errorText(reason)}`, { cause: reason });
}

/**
 * Why a connection to `where` closed: a socket error, the peer closing in the middle of `request`
 * (`unprocessed` when the probe proved it never ran: see FastCGIConnection#onPeerEnd), or closing
 * between requests. `requestNumber` is the request's number on the connection.
 */
export function peerClosedError(
  where: string,
  error: NodeJS.ErrnoException | null,
  request: { readonly finished: boolean; readonly stdoutBytes: number } | null,
  requestNumber: number,
  unprocessed: boolean,
): FastCGIConnectionError {
  if (error && error.code !== 'ECONNRESET' && error.code !== 'EPIPE') {
    return new FastCGIConnectionError('FCGI_CONNECTION_ERROR', `connection to ${where} failed: ${error.message}`, { cause: error });
  }
  if (request && !request.finished) {
    const how = error ? ` (${error.code})` : '';
    return unprocessed
      ? new FastCGIConnectionError(
          'FCGI_PEER_CLOSED',
          `${where} closed the connection after its previous request without running this one (request ${requestNumber} on this connection; php-fpm does this at pm.max_requests)`,
          { unprocessed: true },
        )
      : new FastCGIConnectionError(
          'FCGI_PEER_CLOSED',
          `${where} closed the connection before ending the request${how}, after ${request.stdoutBytes} bytes of stdout (request ${requestNumber} on this connection)`,
          { cause: error ?? undefined },
        );
  }
  return new FastCGIConnectionError('FCGI_PEER_CLOSED', `${where} closed the connection${error ? ` (${error.code})` : ''}`, { cause: error ?? undefined });
}

/**
 * The socket's inactivity timeout fired: GET_VALUES unanswered (`valuesTimeoutMs` set while one is
 * pending), or the request in progress got no data (read) or could not send any (write). Null when
 * idle: nothing to fail.
 */
export function timeoutError(
  where: string,
  valuesTimeoutMs: number | null,
  request: { readonly awaitingDrain: boolean; readonly readTimeoutMs: number; readonly writeTimeoutMs: number } | null,
): FastCGITimeoutError | null {
  if (valuesTimeoutMs !== null) return new FastCGITimeoutError('FCGI_READ_TIMEOUT', `${where} did not answer GET_VALUES within ${valuesTimeoutMs} ms`);
  if (!request) return null;
  return request.awaitingDrain
    ? new FastCGITimeoutError('FCGI_WRITE_TIMEOUT', `${where} accepted no data for ${request.writeTimeoutMs} ms`)
    : new FastCGITimeoutError('FCGI_READ_TIMEOUT', `${where} sent nothing for ${request.readTimeoutMs} ms`);
}

/** END_REQUEST with a protocol status other than FCGI_REQUEST_COMPLETE (spec 5.5). */
export function rejectedError(where: string, protocolStatus: number): FastCGIRejectedError {
  return new FastCGIRejectedError(protocolStatus, `${where} rejected the request: ${protocolStatusName(protocolStatus)}`);
}
