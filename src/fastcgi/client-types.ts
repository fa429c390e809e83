// What a FastCGI client connection is given and gives back: request and connection options (with
// the defaults), the response handler it calls, the controller its caller holds, its states.

import type { Readable } from 'node:stream';
import { DEFAULT_MAX_PARAMS_BYTES } from './params.js';
import type { ParamPairs } from './protocol.js';

/**
 * A request body in a file, `length` bytes from its start (a spooled upload). It is read in pieces
 * into reused buffers as the socket takes them, so a large body allocates next to nothing (a stream
 * over the file would allocate every piece, and the garbage costs major GCs), and unlike a stream
 * it can be sent again. The file must stay until the request ends.
 */
export class FileBody {
  readonly path: string;
  readonly length: number;
  constructor(path: string, length: number) {
    this.path = path;
    this.length = length;
  }
}

/** A request body: nothing, bytes in memory, a file, or a stream read with backpressure. */
export type RequestBody = Buffer | string | FileBody | Readable | AsyncIterable<Buffer | string> | null | undefined;

export interface ConnectionOptions {
  /** Give up connecting after this long (FCGI_CONNECT_TIMEOUT). Default 5000. */
  connectTimeoutMs?: number;
  /** Fail a request when the peer sends nothing for this long (FCGI_READ_TIMEOUT); 0 disables. Default 60000. */
  readTimeoutMs?: number;
  /** Fail a request when the peer accepts nothing for this long (FCGI_WRITE_TIMEOUT); 0 disables. Default 60000. */
  writeTimeoutMs?: number;
  /** After an abort, how long to wait for the peer's END_REQUEST before closing the connection. Default 1000. */
  abortGraceMs?: number;
  /** Limit on one request's encoded params (FCGI_PARAMS_TOO_LARGE). Default 1 MiB. */
  maxParamsBytes?: number;
}

export const CONNECTION_DEFAULTS = {
  connectTimeoutMs: 5000,
  readTimeoutMs: 60_000,
  writeTimeoutMs: 60_000,
  abortGraceMs: 1000,
  maxParamsBytes: DEFAULT_MAX_PARAMS_BYTES,
} as const satisfies Required<ConnectionOptions>;

export interface RequestOptions {
  params: ParamPairs;
  body?: RequestBody;
  /** Default FCGI_RESPONDER. */
  role?: number;
  /** Ask the peer to keep the connection open after this request (FCGI_KEEP_CONN). Default true. */
  keepConn?: boolean;
  signal?: AbortSignal;
  readTimeoutMs?: number;
  writeTimeoutMs?: number;
}

/** What END_REQUEST said, and how much came back. */
export interface EndResult {
  appStatus: number;
  protocolStatus: number;
  stdoutBytes: number;
  stderrBytes: number;
}

/**
 * Receives one response as it arrives (the undici dispatch-handler shape). Returning false from
 * onStdout stops reading from the socket until controller.resume().
 */
export interface ResponseHandler {
  onStdout(chunk: Buffer): boolean;
  onStderr(chunk: Buffer): void;
  onEnd(result: EndResult): void;
  onError(error: Error): void;
  /**
   * Optional: the request left the wait queue and is being sent to a PHP process (its pid when
   * known). Pools call it; observers use it to split queue time from PHP time.
   */
  onDispatch?(process: { pid: number | null }): void;
}

export interface RequestController {
  /** Stop the request: FCGI_ABORT_REQUEST is sent and the handler gets FCGI_REQUEST_ABORTED. */
  abort(reason?: unknown): void;
  /** Read again after onStdout returned false. */
  resume(): void;
  /** True once any byte of the request was handed to the socket (a request is replayed only if false). */
  readonly started: boolean;
  /** True once the whole body and its terminator were handed to the socket. */
  readonly bodySent: boolean;
}

/** idle: ready for a request; busy: carrying one; draining: finishing an aborted one; closed. */
export type ConnectionState = 'idle' | 'busy' | 'draining' | 'closed';
