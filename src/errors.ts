// Every error TQServer raises: one registry of stable codes, the classes that carry them, and the one
// function that maps an error to an HTTP status. docs/errors.md lists every code (a test keeps them in sync).

/** code -> HTTP status a front answers with, and one line for docs/errors.md. */
export const ERRORS = {
  // FastCGI protocol violations by the peer (decoder, params).
  FCGI_BAD_VERSION: { status: 502, summary: 'a record header carried a version other than FCGI_VERSION_1' },
  FCGI_BAD_LENGTH: { status: 502, summary: 'a record had a content length its type does not allow' },
  FCGI_UNEXPECTED_RECORD: { status: 502, summary: 'a record type arrived that this side of the protocol never receives, or at the wrong time' },
  FCGI_BAD_REQUEST_ID: { status: 502, summary: 'a record used a request id that is not valid for its type or state' },
  FCGI_BAD_PARAMS: { status: 502, summary: 'a name-value pair stream was malformed (a length past the end of the stream)' },
  FCGI_PARAMS_TOO_LARGE: { status: 431, summary: 'the name-value pairs of one request exceed the configured size limit' },
  // FastCGI transport failures, told apart so a front can answer 502 or 504 and the log can say why.
  FCGI_CONNECT_REFUSED: { status: 502, summary: 'the FastCGI peer refused the connection (nothing listens at the address)' },
  FCGI_CONNECT_TIMEOUT: { status: 504, summary: 'the connection to the FastCGI peer was not established within the connect timeout' },
  FCGI_READ_TIMEOUT: { status: 504, summary: 'the FastCGI peer sent nothing for longer than the read timeout' },
  FCGI_WRITE_TIMEOUT: { status: 504, summary: 'the FastCGI peer did not accept data for longer than the write timeout' },
  FCGI_PEER_CLOSED: { status: 502, summary: 'the FastCGI peer closed the connection before ending the request' },
  FCGI_CONNECTION_ERROR: { status: 502, summary: 'the connection to the FastCGI peer failed (reset, broken pipe, or another socket error)' },
  FCGI_REQUEST_REJECTED: { status: 502, summary: 'the FastCGI peer ended the request with a protocol status other than FCGI_REQUEST_COMPLETE' },
  FCGI_REQUEST_ABORTED: { status: 499, summary: 'the request was aborted by its caller (for example the HTTP client went away)' },
  FCGI_CONNECTION_BUSY: { status: 500, summary: 'a request was started on a connection that is already carrying one (a bug in the caller)' },
  FCGI_CLIENT_CLOSED: { status: 503, summary: 'a request was started on a FastCGI client or connection that has been closed' },
  FCGI_QUEUE_FULL: { status: 503, summary: 'every connection to the FastCGI peer is busy and the wait queue is full' },
  FCGI_QUEUE_TIMEOUT: { status: 503, summary: 'no connection to the FastCGI peer became free within the queue timeout' },
  FCGI_SERVER_CLOSED: { status: 503, summary: 'the FastCGI server is shutting down and takes no new requests' },
  FCGI_LISTEN_FAILED: { status: 500, summary: 'the FastCGI server could not listen on its address' },
  // PHP binaries and worker pools.
  PHP_BINARY_NOT_FOUND: { status: 500, summary: 'no working php-cgi or php-fpm binary was found where the config or PATH says' },
  PHP_REQUEST_TIMEOUT: { status: 504, summary: 'the PHP script ran longer than request_timeout; its worker was killed and replaced' },
  POOL_QUEUE_FULL: { status: 503, summary: 'every PHP worker of the pool is busy and its wait queue is full (queue_limit)' },
  POOL_QUEUE_TIMEOUT: { status: 503, summary: 'no PHP worker of the pool became free within queue_timeout' },
  POOL_CRASH_LOOP: { status: 503, summary: 'the pool\'s workers keep crashing at start; respawning is paused with backoff' },
  POOL_STOPPED: { status: 503, summary: 'the pool is stopping or stopped and takes no new requests' },
  UPSTREAM_DOWN: { status: 503, summary: 'php-fpm is down or failing (circuit open); answered at once until a health check passes' },
  WORKER_START_FAILED: { status: 502, summary: 'a php-cgi worker exited or failed to listen before it became ready' },
  // PHP's output.
  CGI_BAD_HEAD: { status: 502, summary: "PHP's output did not start with a valid CGI response head (headers, then an empty line)" },
  // Configuration.
  CONFIG_INVALID: { status: 500, summary: 'a configuration value is invalid; the message names the file, the key and the problem' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** Base class: a stable `code` for programs, a message that names the offending value for people. */
export class TQServerError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The FastCGI peer broke the protocol; the connection it came on cannot be trusted any more. */
export class FastCGIProtocolError extends TQServerError {}

/** Connecting to, writing to or reading from a FastCGI peer failed. */
export class FastCGIConnectionError extends TQServerError {
  /**
   * The peer is known not to have run the request: it closed the connection after its previous
   * request and discarded what we sent (php-fpm at pm.max_requests). Such a request may be sent
   * again whatever its method.
   */
  readonly unprocessed: boolean;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; unprocessed?: boolean }) {
    super(code, message, options);
    this.unprocessed = options?.unprocessed ?? false;
  }
}

/** A connect, read or write deadline passed. */
export class FastCGITimeoutError extends TQServerError {}

/** The peer ended the request with FCGI_CANT_MPX_CONN, FCGI_OVERLOADED or FCGI_UNKNOWN_ROLE. */
export class FastCGIRejectedError extends TQServerError {
  readonly protocolStatus: number;
  constructor(protocolStatus: number, message: string) {
    super('FCGI_REQUEST_REJECTED', message);
    this.protocolStatus = protocolStatus;
  }
}

/** The caller gave up on the request (AbortSignal, client disconnect). */
export class FastCGIAbortError extends TQServerError {
  constructor(message = 'request aborted by the caller', options?: { cause?: unknown }) {
    super('FCGI_REQUEST_ABORTED', message, options);
  }
}

/** A limit or a lifecycle rule refused the request before it reached a peer. */
export class FastCGIUnavailableError extends TQServerError {}

/** php-cgi or php-fpm could not be found or does not run. */
export class PhpBinaryError extends TQServerError {
  constructor(message: string) {
    super('PHP_BINARY_NOT_FOUND', message);
  }
}

/** A config value cannot be used as given. */
export class ConfigValueError extends TQServerError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** A worker pool refused or gave up on a request (queue full or timed out, stopped, crash loop). */
export class PoolUnavailableError extends TQServerError {}

/** The PHP script outran request_timeout. */
export class PhpTimeoutError extends TQServerError {
  constructor(message: string) {
    super('PHP_REQUEST_TIMEOUT', message);
  }
}

/** A worker process could not be started. */
export class WorkerStartError extends TQServerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WORKER_START_FAILED', message, options);
  }
}

/** The one map from an error to the HTTP status a front answers with. Unknown errors are 500. */
export function httpStatusFor(error: unknown): number {
  if (error instanceof TQServerError) return ERRORS[error.code].status;
  return 500;
}
