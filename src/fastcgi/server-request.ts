// What a FastCGI responder's handler is given: the request (params, a body stream, an abort signal)
// and the response (stdout and stderr as writable streams or write() for stdout, end(appStatus)).
// The streams are made when first asked for, and must then look as if made at the start.

import { Readable, type Writable } from 'node:stream';
import { paramsToMap, type ParamsIndex, type RawParam } from './params.js';
import { RecordType } from './protocol.js';

/** @internal The connection, as a request's stdin needs it: told when the reader wants more. */
export interface StdinFlow {
  resumeStdin(requestId: number): void;
}

const ignore = (): void => {};

/** One request as the handler sees it: params, a body stream, and a signal for aborts. */
export class FastCGIServerRequest {
  readonly requestId: number;
  readonly keepConn: boolean;
  /** The params as decoded: names, and each value when asked for (rawParams makes them all). */
  readonly paramsIndex: ParamsIndex;
  readonly remoteAddress: string | undefined;
  /**
   * Called once when the request is aborted (FCGI_ABORT_REQUEST, the connection lost), after the
   * signal's listeners: one plain callback, for a handler that needs no AbortSignal. An
   * AbortController and an EventTarget listener per request cost the FastCGI front more than its
   * params check (issue 8), so the controller is made only when `signal` is asked for.
   */
  onAbort: ((reason: Error) => void) | null = null;
  #params: Map<string, string> | null = null;
  #controller: AbortController | null = null;
  #abortReason: Error | null = null;
  // stdin's Readable is made when it is asked for or the first body bytes come: a GET never needs
  // one (issue 8). Until then these remember what it must start with.
  readonly #flow: StdinFlow;
  #stdin: Readable | null = null;
  #stdinEnded = false;
  #discardStdin = false;
  /** The request is over before stdin was made: true, or the abort's error. */
  #stdinClosed: Error | true | null = null;

  constructor(requestId: number, keepConn: boolean, paramsIndex: ParamsIndex, flow: StdinFlow, remoteAddress: string | undefined) {
    this.requestId = requestId;
    this.keepConn = keepConn;
    this.paramsIndex = paramsIndex;
    this.#flow = flow;
    this.remoteAddress = remoteAddress;
  }

  /** The request body (FCGI_STDIN), read with backpressure. */
  get stdin(): Readable {
    return this.#stdin ?? this.#openStdin();
  }

  /** The body is not wanted: what arrives is dropped, as by `stdin.resume()`, without making the stream. */
  discardStdin(): void {
    if (this.#stdin !== null) this.#stdin.resume();
    else this.#discardStdin = true;
  }

  /** @internal A piece of the body; false when the socket should pause until it is read. */
  pushStdin(data: Buffer): boolean {
    if (this.#stdin === null) {
      if (this.#discardStdin) return true;
      this.#openStdin();
    }
    // A handler that destroyed its stdin has said it does not want the body: the rest is discarded
    // rather than pausing the socket for a reader that will never come.
    const stdin = this.#stdin!;
    return stdin.destroyed || stdin.push(data);
  }

  /** @internal The empty STDIN record came. */
  endStdin(): void {
    this.#stdinEnded = true;
    if (this.#stdin !== null && !this.#stdin.destroyed) this.#stdin.push(null);
  }

  /** @internal The request is over (`error`: aborted): stdin unless read to its end is destroyed, now or when made. */
  closeStdin(error?: Error): void {
    if (this.#stdin === null) this.#stdinClosed ??= error ?? true;
    else if (!this.#stdin.readableEnded) this.#stdin.destroy(error);
  }

  #openStdin(): Readable {
    const flow = this.#flow;
    const id = this.requestId;
    const stdin = new Readable({ read: () => flow.resumeStdin(id) });
    stdin.on('error', ignore);
    // A handler may destroy its stdin while the socket is paused for it; read() will not come then.
    stdin.on('close', () => flow.resumeStdin(id));
    this.#stdin = stdin;
    // What happened before it was made, in the order it happened to a stream made at the start.
    if (this.#discardStdin) stdin.resume();
    if (this.#stdinEnded) stdin.push(null);
    const closed = this.#stdinClosed;
    if (closed !== null) stdin.destroy(closed === true ? undefined : closed);
    return stdin;
  }

  /** Aborted on FCGI_ABORT_REQUEST or when the connection is lost. */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#abortReason !== null) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /** True once the request was aborted (as signal.aborted, without making the signal). */
  get aborted(): boolean {
    return this.#abortReason !== null;
  }

  /** @internal Aborts the request once: its signal, then onAbort. */
  abortWith(reason: Error): void {
    if (this.#abortReason !== null) return;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
    this.onAbort?.(reason);
  }

  /** The params in order, each value as the exact bytes sent. */
  get rawParams(): readonly RawParam[] {
    return this.paramsIndex.pairs();
  }

  /** Params as UTF-8 strings; rawParams keeps the exact bytes. */
  get params(): Map<string, string> {
    this.#params ??= paramsToMap(this.rawParams);
    return this.#params;
  }
}

/** @internal How a response reaches its connection (server-connection.ts). */
export interface ResponseSink {
  /** Frames `chunk` into STDOUT records now; false when the socket wants draining first. */
  writeStdout(response: FastCGIServerResponse, chunk: Buffer): boolean;
  /** A Writable framing into STDOUT or STDERR records; `ended`: the response is over, it sends nothing. */
  openOutput(response: FastCGIServerResponse, type: typeof RecordType.Stdout | typeof RecordType.Stderr, ended: boolean): Writable;
  endResponse(response: FastCGIServerResponse, appStatus: number): void;
}

/**
 * The handler's output: stdout and stderr as writable streams, write() for stdout without one, and
 * end(appStatus). Each stream is made when first asked for: a Writable per request, its closures
 * and the three ticks of its write, finish and close cost the FastCGI front more than its routing
 * (issue 8), and write() does the same without them.
 */
export class FastCGIServerResponse {
  readonly requestId: number;
  /** Called when the connection drained after write() returned false (the stream has its 'drain'). */
  onDrain: (() => void) | null = null;
  readonly #sink: ResponseSink;
  #stdout: Writable | null = null;
  #stderr: Writable | null = null;
  #ended = false;
  /** The request is over (aborted or its connection lost): output is dropped, streams made later are destroyed. */
  #closed = false;
  #stdoutBytes = 0;

  constructor(requestId: number, sink: ResponseSink) {
    this.requestId = requestId;
    this.#sink = sink;
  }

  get stdout(): Writable {
    return this.#stdout ?? this.#openStdout();
  }

  get stderr(): Writable {
    if (this.#stderr === null) {
      this.#stderr = this.#sink.openOutput(this, RecordType.Stderr, false);
      if (this.#closed) this.#stderr.destroy();
    }
    return this.#stderr;
  }

  /** @internal stdout if it was ever asked for, else null. */
  get openedStdout(): Writable | null {
    return this.#stdout;
  }

  /** @internal stderr if it was ever asked for, else null (an unused stderr sends no records, spec 6.1). */
  get openedStderr(): Writable | null {
    return this.#stderr;
  }

  /** @internal Bytes written to stdout so far, by write() or the stream. */
  get stdoutBytes(): number {
    return this.#stdoutBytes;
  }

  /** @internal */
  countStdout(bytes: number): void {
    this.#stdoutBytes += bytes;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Writes to stdout as `stdout.write` would, without making the stream (once made, through it).
   * Returns false when the connection wants draining first: onDrain is called when it has.
   */
  write(chunk: Buffer | string): boolean {
    if (this.#stdout !== null) return this.#stdout.write(chunk);
    // After end(), or once the request is over, output is dropped (the stream's write would fail).
    if (this.#ended || this.#closed) return false;
    return this.#sink.writeStdout(this, typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }

  /** Ends stdout and stderr, then sends END_REQUEST once they are flushed. Idempotent. */
  end(appStatus = 0): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#sink.endResponse(this, appStatus);
  }

  /** @internal The request is over before its output was: the streams are destroyed, now or when made. */
  closeOutput(): void {
    this.#closed = true;
    this.#stdout?.destroy();
    this.#stderr?.destroy();
  }

  #openStdout(): Writable {
    // Made after end(): ended as it would have been (its end record was sent without it).
    const stdout = this.#sink.openOutput(this, RecordType.Stdout, this.#ended);
    this.#stdout = stdout;
    if (this.#closed) stdout.destroy();
    else if (this.#ended) stdout.end();
    return stdout;
  }
}
