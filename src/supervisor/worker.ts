// One php-cgi process: spawned on its own socket, driven through the worker state machine, serving
// requests over one kept-alive FastCGI connection, stopped by a signal ladder, its exit classified.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { FastCGIAbortError, FastCGIConnectionError, WorkerStartError } from '../errors.js';
import { formatAddress, type Address } from '../fastcgi/address.js';
import { MAX_CONTENT_BYTES } from '../fastcgi/protocol.js';
import { FastCGIConnection, toAbortError, type ConnectionOptions, type EndResult, type RequestController, type RequestOptions, type ResponseHandler } from '../fastcgi/client.js';
import type { Logger } from '../log.js';
import { buildPhpCgiArgs } from '../php/binary.js';
import { dieWithParent } from './death-signal.js';
import { readLines, readRssBytes } from './worker-process.js';
import { isTerminal, transition, type ExitReason, type WorkerState } from './worker-state.js';
import type { RequestInfo, WorkerExit, WorkerOptions, WorkerStats } from './worker-types.js';

export type { RequestInfo, WorkerExit, WorkerOptions, WorkerStats } from './worker-types.js';

/**
 * Passes a request's events on, telling the worker when it was aborted (an aborted request's
 * connection closes: see #onRequestDone). A class: one is made per request (issue 8).
 */
class AbortWatch implements ResponseHandler {
  readonly #handler: ResponseHandler;
  readonly #onAborted: () => void;
  readonly #onEnded: () => void;

  constructor(handler: ResponseHandler, onAborted: () => void, onEnded: () => void) {
    this.#handler = handler;
    this.#onAborted = onAborted;
    this.#onEnded = onEnded;
  }

  onStdout(chunk: Buffer): boolean {
    return this.#handler.onStdout(chunk);
  }

  onStderr(chunk: Buffer): void {
    this.#handler.onStderr(chunk);
  }

  onEnd(result: EndResult): void {
    this.#onEnded();
    this.#handler.onEnd(result);
  }

  onError(error: Error): void {
    if (error instanceof FastCGIAbortError) this.#onAborted();
    this.#handler.onError(error);
  }
}

export class PhpCgiWorker extends EventEmitter {
  readonly id: number;
  readonly pool: string;
  readonly listen: Address;
  readonly #options: WorkerOptions;
  readonly #clock: () => number;
  readonly #log: Logger;
  #state: WorkerState = 'starting';
  #child: ChildProcess | null = null;
  #connection: FastCGIConnection | null = null;
  #startedAt: number;
  #idleSince: number;
  #requests = 0;
  #requestStartedAt = 0;
  #lastRequestMs: number | null = null;
  #request: RequestInfo | null = null;
  #stopReason: ExitReason | null = null;
  /** The running (or last) request was aborted by its caller. */
  #requestAborted = false;
  /** Made once, not per request. */
  readonly #onAbortedRequest = (): void => {
    this.#requestAborted = true;
  };
  /** The running (or last) request got its END_REQUEST. */
  #requestEnded = false;
  readonly #onEndedRequest = (): void => {
    this.#requestEnded = true;
  };
  #forced = false;
  /** The state kill() found the worker in, for the log line of a crash. */
  #killedWhile: WorkerState | null = null;
  #killTimer: NodeJS.Timeout | null = null;
  readonly exited: Promise<WorkerExit>;
  #resolveExited!: (exit: WorkerExit) => void;

  constructor(options: WorkerOptions) {
    super();
    this.id = options.id;
    this.pool = options.pool;
    this.listen = options.listen;
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    this.#startedAt = this.#clock();
    this.#idleSince = this.#startedAt;
    this.#log = options.log;
    this.exited = new Promise((resolve) => (this.#resolveExited = resolve));
  }

  get state(): WorkerState {
    return this.#state;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  get requests(): number {
    return this.#requests;
  }

  get idleSince(): number {
    return this.#idleSince;
  }

  get startedAt(): number {
    return this.#startedAt;
  }

  /** Spawns php-cgi and resolves once it accepts on its socket (state idle); rejects with WorkerStartError. */
  async start(): Promise<void> {
    const options = this.#options;
    const bind = 'path' in this.listen ? this.listen.path : `${this.listen.host}:${this.listen.port}`;
    const args = buildPhpCgiArgs({ configFile: options.configFile ?? null, bind, settings: options.settings ?? {} });
    // php-cgi forks children of its own when PHP_FCGI_CHILDREN is set, and exits after 500 requests
    // unless PHP_FCGI_MAX_REQUESTS says otherwise: one process per worker, recycled by the pool.
    const env = { ...options.env, PHP_FCGI_CHILDREN: '0', PHP_FCGI_MAX_REQUESTS: '0' };
    // SIGKILL when TQServer dies, not SIGTERM: on SIGTERM php-cgi only sets a flag and exits after
    // the running request (main/fastcgi.c, fcgi_signal_handler), so a script that never ends would
    // keep an orphan alive with nobody left to send the SIGKILL of the stop ladder.
    const command = dieWithParent(options.binary.path, args, 'SIGKILL', { env, cwd: options.cwd, log: this.#log });
    const child = spawn(command.file, command.args, { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#startedAt = this.#clock();
    const exitedEarly = new Promise<never>((_, reject) => {
      child.once('error', (error) => reject(new WorkerStartError(`pool ${this.pool}: cannot run ${options.binary.path}: ${error.message}`, { cause: error })));
      child.once('exit', (code, signal) =>
        reject(new WorkerStartError(`pool ${this.pool}: php-cgi exited (${signal ?? `code ${code}`}) before accepting on ${formatAddress(this.listen)}`)),
      );
    });
    exitedEarly.catch(() => {});
    child.once('exit', (code, signal) => this.#onExit(code, signal));
    child.once('error', () => this.#onExit(null, null));
    this.#pipeOutput(child);
    this.emit('spawned', this);
    const connecting = this.#connectWhenListening();
    try {
      const probe = await Promise.race([connecting, exitedEarly]);
      // php-cgi closes a new connection that brings no request within 5 s (main/fastcgi.c), so the
      // probe is closed now and the connection for requests is opened by the first one; once it has
      // carried a request, php-cgi keeps it open for good.
      probe.close();
      if (this.#state !== 'starting') throw new WorkerStartError(`pool ${this.pool}: worker was stopped while starting`);
      this.#idleSince = this.#clock();
      this.#setState('idle');
    } catch (error) {
      if (!isTerminal(this.#state) && this.#state !== 'stopping') this.kill('crashed');
      // A connection that still comes after the race was lost has no worker to serve.
      connecting.then((late) => late.destroy(), () => {});
      throw error;
    }
  }

  /**
   * Runs one request on this idle worker; the worker is active until its connection is free again.
   * The first request (and the first after a connection was closed) opens the connection.
   */
  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo = {}): RequestController {
    if (this.#state !== 'idle') throw new Error(`worker ${this.id} (pid ${this.pid}) is ${this.#state}, not idle`);
    this.#requestAborted = false;
    this.#requestEnded = false;
    const watched = new AbortWatch(handler, this.#onAbortedRequest, this.#onEndedRequest);
    const connection = this.#connection;
    if (connection?.idle) {
      const controller = connection.dispatch(options, watched); // throws before sending anything if it cannot start
      // A caller whose signal was already aborted got its error and nothing was sent: still idle.
      if (connection.idle) return controller;
      this.#begin(info);
      return controller;
    }
    if (options.signal?.aborted) {
      watched.onError(toAbortError(options.signal.reason));
      return { abort: () => {}, resume: () => {}, started: false, bodySent: false };
    }
    this.#begin(info);
    return this.#connectAndDispatch(options, watched);
  }

  #begin(info: RequestInfo): void {
    this.#setState('active');
    this.#request = info;
    this.#requestStartedAt = this.#clock();
    this.#requests += 1;
  }

  /** Opens the worker's connection, then sends the request on it; the controller covers both steps. */
  #connectAndDispatch(options: RequestOptions, handler: ResponseHandler): RequestController {
    let inner: RequestController | null = null;
    let gaveUp = false;
    const controller: RequestController = {
      abort: (reason?: unknown) => {
        if (inner) return inner.abort(reason);
        if (gaveUp) return;
        gaveUp = true;
        handler.onError(toAbortError(reason));
      },
      resume: () => inner?.resume(),
      get started() {
        return inner?.started ?? false;
      },
      get bodySent() {
        return inner?.bodySent ?? false;
      },
    };
    FastCGIConnection.connect(this.listen, this.#connectionOptions()).then(
      (connection) => {
        if (this.#state !== 'active' && this.#state !== 'retiring') {
          connection.destroy();
          return;
        }
        this.#adopt(connection);
        if (gaveUp) {
          // Abandoned while connecting: nothing was sent, the worker is free again.
          this.#onRequestDone();
          return;
        }
        try {
          inner = connection.dispatch(options, handler);
        } catch (error) {
          handler.onError(error as Error);
          this.#onRequestDone();
          return;
        }
        if (connection.idle) this.#onRequestDone();
      },
      (error: Error) => {
        if (!gaveUp) handler.onError(error);
        if (this.#state === 'active' || this.#state === 'retiring') {
          this.#log.warn({ pool: this.pool, pid: this.pid, err: error.message }, `php-cgi pid ${this.pid} took no connection: ${error.message}`);
          this.kill('crashed');
        }
      },
    );
    return controller;
  }

  /** Retires the worker: at once when idle, after its request when active. */
  retire(reason: ExitReason): void {
    if (this.#state === 'active') {
      this.#stopReason = reason;
      this.#setState('retiring');
    } else if (this.#state === 'idle' || this.#state === 'starting') {
      this.stop(reason);
    }
  }

  /**
   * The stop ladder: SIGTERM (php-cgi finishes a running request, then exits), then SIGKILL after
   * stopTimeoutMs. Resolves with the exit. Idempotent.
   */
  stop(reason: ExitReason): Promise<WorkerExit> {
    if (isTerminal(this.#state) || this.#state === 'stopping') return this.exited;
    this.#stopReason ??= reason;
    this.#setState('stopping');
    this.#connection?.close();
    this.#signal('SIGTERM');
    const stopTimeoutMs = this.#options.stopTimeoutMs ?? 10_000;
    this.#killTimer = setTimeout(() => {
      this.#forced = true;
      this.#log.warn({ pool: this.pool, pid: this.pid, state: this.#state }, `php-cgi did not exit within ${stopTimeoutMs} ms of SIGTERM; sending SIGKILL`);
      this.#signal('SIGKILL');
    }, stopTimeoutMs);
    return this.exited;
  }

  /**
   * SIGKILL now (request timeout, abandoned request, failed start, broken connection, a stop past
   * its grace). A running request fails with `error` (default FCGI_CLIENT_CLOSED). Idempotent.
   */
  kill(reason: ExitReason, error?: Error): Promise<WorkerExit> {
    if (isTerminal(this.#state)) return this.exited;
    if (this.#state !== 'stopping') {
      this.#stopReason = reason;
      this.#killedWhile = this.#state;
      this.#setState('stopping');
    }
    // 'crashed' cleans up a process that already failed (its connection broke, its start failed):
    // no stop was forced on a healthy one.
    if (reason !== 'crashed') this.#forced = true;
    this.#connection?.destroy(error);
    this.#signal('SIGKILL');
    return this.exited;
  }

  /** Resident memory from /proc (Linux), or null where it cannot be read. */
  rssBytes(): number | null {
    const pid = this.pid;
    return !pid || isTerminal(this.#state) ? null : readRssBytes(pid);
  }

  stats(withMemory = false): WorkerStats {
    const now = this.#clock();
    const busy = this.#state === 'active' || this.#state === 'retiring';
    return {
      id: this.id,
      pid: this.pid,
      state: this.#state,
      address: formatAddress(this.listen),
      startedAt: this.#startedAt,
      uptimeMs: now - this.#startedAt,
      requests: this.#requests,
      idleMs: this.#state === 'idle' ? now - this.#idleSince : 0,
      requestDurationMs: busy ? now - this.#requestStartedAt : this.#lastRequestMs ?? 0,
      lastRequestMs: this.#lastRequestMs,
      request: this.#request,
      rssBytes: withMemory ? this.rssBytes() : null,
    };
  }

  // ---- internals ----

  #setState(next: WorkerState): void {
    const previous = this.#state;
    this.#state = transition(previous, next, `pool ${this.pool} worker ${this.id}`);
    // Twice per request: the line's object and text are built only when debug lines are kept (issue 8).
    if (this.#log.isLevelEnabled('debug')) this.#log.debug({ pool: this.pool, pid: this.pid, worker: this.id, from: previous, to: next }, `worker ${previous} -> ${next}`);
    this.emit('state', this, previous, next);
  }

  async #connectWhenListening(): Promise<FastCGIConnection> {
    const deadline = this.#clock() + (this.#options.startTimeoutMs ?? 10_000);
    let delayMs = 1;
    for (;;) {
      try {
        // php-cgi serves one connection at a time; the first one that connects is kept for requests.
        return await FastCGIConnection.connect(this.listen, this.#connectionOptions());
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code !== 'FCGI_CONNECT_REFUSED' || this.#clock() > deadline || this.#state !== 'starting') {
          throw new WorkerStartError(`pool ${this.pool}: php-cgi pid ${this.pid} did not accept on ${formatAddress(this.listen)}: ${(error as Error).message}`, {
            cause: error,
          });
        }
        // php-cgi binds once PHP has started (15-60 ms, by its extensions): retry every 2 ms at most,
        // so the worker is taken into service within 2 ms of listening (a refused unix connect is one
        // cheap syscall).
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(delayMs * 2, 2);
      }
    }
  }

  #adopt(connection: FastCGIConnection): void {
    this.#connection = connection;
    connection.on('free', () => this.#onRequestDone());
    connection.on('close', (_: FastCGIConnection, error: Error | null) => {
      if (this.#connection !== connection) return;
      this.#connection = null;
      if (this.#state === 'stopping' || isTerminal(this.#state)) return;
      // Closed between requests: the next request opens a new one. If php-cgi died, its exit says so.
      if (this.#state === 'idle') return;
      if (error === null && this.#requestAborted) {
        // The aborted request ended within abortGraceMs and the client closed the connection, as it
        // does after every abort (client.ts): php-cgi is healthy and back in accept().
        this.#onRequestDone();
        return;
      }
      if (error === null && this.#requestEnded) {
        // php-cgi ended the request before the whole body went out (it reads no further than
        // CONTENT_LENGTH, and the rest of a front's STDIN may never come): the client closes such a
        // connection rather than reuse it, and php-cgi, back in accept(), is healthy.
        this.#onRequestDone();
        return;
      }
      // The connection broke mid-request but the process may live on (an aborted request that did
      // not end, or php-cgi dying): it can serve nothing more, so it is killed and replaced.
      this.#finishRequestTiming();
      this.kill(this.#requestAborted || error instanceof FastCGIAbortError ? 'aborted' : 'crashed');
    });
  }

  #connectionOptions(): ConnectionOptions {
    // No read or write timeout: a script may run as long as request_timeout allows, which the pool enforces.
    // PHP (main/fastcgi.c) parses each PARAMS record on its own and drops the connection when a pair
    // runs into the next record, so params must fit one record: past that, a clean 431, not a lost worker.
    return { connectTimeoutMs: 2000, readTimeoutMs: 0, writeTimeoutMs: 0, abortGraceMs: this.#options.abortGraceMs ?? 1000, maxParamsBytes: MAX_CONTENT_BYTES };
  }

  #onRequestDone(): void {
    this.#finishRequestTiming();
    if (this.#state === 'retiring') {
      this.stop(this.#stopReason ?? 'recycled');
      return;
    }
    if (this.#state !== 'active') return;
    this.#idleSince = this.#clock();
    this.#setState('idle');
  }

  #finishRequestTiming(): void {
    if (this.#state === 'active' || this.#state === 'retiring') this.#lastRequestMs = this.#clock() - this.#requestStartedAt;
  }

  #signal(signal: NodeJS.Signals): void {
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(child.pid, signal);
      } catch {
        // already gone: the exit event follows
      }
    }
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (isTerminal(this.#state)) return;
    if (this.#killTimer) clearTimeout(this.#killTimer);
    this.#killTimer = null;
    const pid = this.#child?.pid ?? 0;
    this.#connection?.destroy(
      new FastCGIConnectionError('FCGI_PEER_CLOSED', `php-cgi pid ${pid} exited (${signal ?? `code ${code}`}) before ending the request`),
    );
    // php-cgi leaves its socket file behind; the next worker gets a new path, so this one goes.
    if ('path' in this.listen) rmSync(this.listen.path, { force: true });
    const intended = this.#state === 'stopping' && this.#stopReason !== 'crashed';
    const reason: ExitReason = intended ? (this.#stopReason ?? 'stopped') : 'crashed';
    const exit: WorkerExit = { pid, code, signal, reason, forced: this.#forced };
    if (intended) this.#setState('exited');
    else {
      const during = this.#killedWhile ?? this.#state;
      this.#log.error(
        { pool: this.pool, pid, state: during, code, signal },
        `php-cgi pid ${pid} exited unexpectedly (${signal ?? `code ${code}`}) while ${during}`,
      );
      this.#setState('crashed');
    }
    this.#resolveExited(exit);
    this.emit('exit', this, exit);
  }

  #pipeOutput(child: ChildProcess): void {
    for (const [stream, level] of [
      [child.stdout, 'info'],
      [child.stderr, 'warn'],
    ] as const) {
      if (!stream) continue;
      readLines(stream, (line) => {
        if (line.length === 0) return;
        const output = this.#options.onOutput;
        if (output) {
          output(line, level === 'info' ? 'stdout' : 'stderr', child.pid ?? 0);
          return;
        }
        this.#log[level]({ pool: this.pool, pid: child.pid, stream: level === 'info' ? 'stdout' : 'stderr' }, line);
      });
    }
  }
}
