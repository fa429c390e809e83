// What a php-cgi worker is given and what it reports: its options, the request it runs as the status
// page shows it, its exit, and its stats.

import type { Address } from '../fastcgi/address.js';
import type { Logger } from '../log.js';
import type { PhpBinary } from '../php/binary.js';
import type { ExitReason, WorkerState } from './worker-state.js';

export interface WorkerOptions {
  /** Pool-local sequence number, for logs. */
  id: number;
  pool: string;
  binary: PhpBinary;
  listen: Address;
  configFile?: string | null;
  settings?: Readonly<Record<string, string | number | boolean>>;
  /** The whole environment of the process (TQServer's own environment is not passed on). */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  /** How long php-cgi may take to accept connections. Default 10000. */
  startTimeoutMs?: number;
  /** How long a stop signal is given before SIGKILL. Default 10000. */
  stopTimeoutMs?: number;
  /** How long an aborted request may take to end before the worker is killed. Default 1000. */
  abortGraceMs?: number;
  log: Logger;
  clock?: () => number;
  /** Where the process's own stdout and stderr lines go (an app's PHP error log); the log when unset. */
  onOutput?: (line: string, stream: 'stdout' | 'stderr', pid: number) => void;
}

/** What a request looked like, for the status page ("request URI", "script", ...). */
export interface RequestInfo {
  method?: string;
  uri?: string;
  script?: string;
  contentLength?: number;
  /** The request id the fronts log it under, for log lines about it. */
  requestId?: string;
}

export interface WorkerExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  reason: ExitReason;
  /** True when the stop ladder had to end with SIGKILL. */
  forced: boolean;
}

export interface WorkerStats {
  id: number;
  pid: number;
  state: WorkerState;
  /** Where it listens ("unix:/tmp/.../w1.sock", "127.0.0.1:9100"). */
  address: string;
  startedAt: number;
  uptimeMs: number;
  requests: number;
  /** Time since the worker last became idle (0 while busy). */
  idleMs: number;
  /** Duration of the running request, else of the last one. */
  requestDurationMs: number;
  lastRequestMs: number | null;
  request: RequestInfo | null;
  rssBytes: number | null;
}
