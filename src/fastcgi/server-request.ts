// What a FastCGI responder's handler is given: the request (params, a body stream, an abort signal)
// and the response (stdout and stderr as writable streams, end(appStatus)).

import type { Readable, Writable } from 'node:stream';
import { paramsToMap, type ParamsIndex, type RawParam } from './params.js';

/** One request as the handler sees it: params, a body stream, and a signal for aborts. */
export class FastCGIServerRequest {
  readonly requestId: number;
  readonly keepConn: boolean;
  /** The params as decoded: names, and each value when asked for (rawParams makes them all). */
  readonly paramsIndex: ParamsIndex;
  /** The request body (FCGI_STDIN), read with backpressure. */
  readonly stdin: Readable;
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

  constructor(requestId: number, keepConn: boolean, paramsIndex: ParamsIndex, stdin: Readable, remoteAddress: string | undefined) {
    this.requestId = requestId;
    this.keepConn = keepConn;
    this.paramsIndex = paramsIndex;
    this.stdin = stdin;
    this.remoteAddress = remoteAddress;
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

/** The handler's output: stdout and stderr as writable streams, and end(appStatus). */
export class FastCGIServerResponse {
  readonly stdout: Writable;
  readonly #makeStderr: () => Writable;
  #stderr: Writable | null = null;
  readonly #end: (appStatus: number) => void;
  #ended = false;

  /** `makeStderr` is called the first time stderr is asked for: most responses never write to it. */
  constructor(stdout: Writable, makeStderr: () => Writable, end: (appStatus: number) => void) {
    this.stdout = stdout;
    this.#makeStderr = makeStderr;
    this.#end = end;
  }

  get stderr(): Writable {
    this.#stderr ??= this.#makeStderr();
    return this.#stderr;
  }

  /** @internal stderr if it was ever asked for, else null (an unused stderr sends no records, spec 6.1). */
  get openedStderr(): Writable | null {
    return this.#stderr;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Ends stdout and stderr, then sends END_REQUEST once they are flushed. Idempotent. */
  end(appStatus = 0): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#end(appStatus);
  }
}
