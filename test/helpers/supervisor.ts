// Shared by the worker and pool tests: the real php-cgi, CGI params for a fixture, one request
// collected into memory, waits for worker states, and checks on processes through /proc.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EndResult, RequestController, RequestOptions, ResponseHandler } from '../../src/fastcgi/client.js';
import type { ParamPairs } from '../../src/fastcgi/protocol.js';
import { detectPhp, type PhpBinary } from '../../src/php/binary.js';
import type { PhpCgiWorker, RequestInfo } from '../../src/supervisor/worker.js';
import type { WorkerState } from '../../src/supervisor/worker-state.js';
import { PHP_FIXTURES, parseCgiResponse } from './peers.js';

let binary: Promise<PhpBinary> | null = null;

/** The php-cgi on this machine, found once. */
export function phpCgi(): Promise<PhpBinary> {
  binary ??= detectPhp('php-cgi');
  return binary;
}

/** CGI params that run one fixture script (`script` may carry a query: "sleep.php?ms=100"). */
export function fixtureParams(target: string): ParamPairs {
  const [script = '', query = ''] = target.split('?', 2);
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    REQUEST_METHOD: 'GET',
    QUERY_STRING: query,
    SCRIPT_FILENAME: join(PHP_FIXTURES, script),
    SCRIPT_NAME: `/${script}`,
    REQUEST_URI: `/${target}`,
    DOCUMENT_ROOT: PHP_FIXTURES,
    REMOTE_ADDR: '127.0.0.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REDIRECT_STATUS: '200',
  };
}

/** Anything requests can be dispatched to: a worker, a pool, a lease. */
export interface Dispatcher {
  dispatch(options: RequestOptions, handler: ResponseHandler, info?: RequestInfo): RequestController;
}

export interface Collected {
  status: number;
  headers: Map<string, string>;
  body: string;
  /** What came as FCGI_STDERR. */
  stderr: string;
  result: EndResult;
}

export interface Running {
  controller: RequestController;
  /** Settles with the whole response, or rejects with the request's error. */
  done: Promise<Collected>;
  /** Resolves with the first stdout bytes of the body (the fixtures that print their pid print it first). */
  firstBody: Promise<string>;
}

/** Starts one request for a fixture and collects its response. */
export function start(target: Dispatcher, script: string, options: Partial<RequestOptions> = {}): Running {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  let resolveFirst!: (text: string) => void;
  let rejectFirst!: (error: Error) => void;
  const firstBody = new Promise<string>((resolve, reject) => {
    resolveFirst = resolve;
    rejectFirst = reject;
  });
  firstBody.catch(() => {});
  let controller!: RequestController;
  const done = new Promise<Collected>((resolve, reject) => {
    const checkFirst = () => {
      const raw = Buffer.concat(stdout);
      const split = raw.indexOf('\r\n\r\n');
      if (split >= 0 && raw.length > split + 4) resolveFirst(raw.subarray(split + 4).toString('utf8'));
    };
    controller = target.dispatch(
      { params: fixtureParams(script), ...options },
      {
        onStdout(chunk) {
          stdout.push(chunk);
          checkFirst();
          return true;
        },
        onStderr(chunk) {
          stderr.push(chunk);
        },
        onEnd(result) {
          const { headers, body } = parseCgiResponse(Buffer.concat(stdout));
          const status = Number(/^(\d{3})/.exec(headers.get('status') ?? '200')?.[1] ?? 200);
          resolveFirst(body.toString('utf8'));
          resolve({ status, headers, body: body.toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), result });
        },
        onError(error) {
          rejectFirst(error);
          reject(error);
        },
      },
      { method: 'GET', uri: `/${script}`, script },
    );
  });
  done.catch(() => {});
  return { controller, done, firstBody };
}

/** One request for a fixture, collected. */
export function request(target: Dispatcher, script: string, options: Partial<RequestOptions> = {}): Promise<Collected> {
  return start(target, script, options).done;
}

/** Resolves when the worker reaches `state` (at once if it is there). */
export function waitForState(worker: PhpCgiWorker, state: WorkerState, timeoutMs = 5000): Promise<void> {
  if (worker.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      worker.off('state', onState);
      reject(new Error(`worker ${worker.id} (pid ${worker.pid}) did not reach ${state} within ${timeoutMs} ms; it is ${worker.state}`));
    }, timeoutMs);
    const onState = (_: PhpCgiWorker, _from: WorkerState, to: WorkerState) => {
      if (to !== state) return;
      clearTimeout(timer);
      worker.off('state', onState);
      resolve();
    };
    worker.on('state', onState);
  });
}

/** Resolves when `predicate` holds, checking every few milliseconds (for log lines, which come on their own pipe). */
export async function until(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** True when no process has this pid any more. */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The pids whose parent is `pid`, read from /proc (what `pgrep -P` does). */
export function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** The php-cgi processes this test process started that are still alive. */
export function phpCgiChildren(): number[] {
  return childrenOf(process.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'latin1').trim().startsWith('php-cgi');
    } catch {
      return false;
    }
  });
}
