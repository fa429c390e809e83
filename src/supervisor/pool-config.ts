// A php-cgi pool's settings (php-fpm's pool directives where one exists), and which of them a
// running pool takes in place.

import type { PhpBinary } from '../php/binary.js';
import type { PmConfig } from './pm.js';

export interface PoolConfig extends PmConfig {
  name: string;
  binary: PhpBinary;
  configFile?: string | null;
  settings?: Readonly<Record<string, string | number | boolean>>;
  env?: Readonly<Record<string, string>>;
  /** Working directory of the workers. */
  cwd?: string;
  /** pm.max_requests: recycle a worker after this many requests; 0 never. */
  maxRequests: number;
  /** request_terminate_timeout: kill the worker of a request running longer; 0 never. */
  requestTimeoutMs: number;
  /** Recycle a worker whose resident memory is above this after a request; 0 never. */
  maxWorkerMemoryBytes: number;
  /** Requests allowed to wait for a worker; more get POOL_QUEUE_FULL. */
  queueLimit: number;
  /** How long a request may wait for a worker before POOL_QUEUE_TIMEOUT; 0 waits as long as it takes. */
  queueTimeoutMs: number;
  /** Worker sockets: private unix sockets (default) or TCP ports from portRange on 127.0.0.1. */
  transport?: 'unix' | 'tcp';
  portRange?: readonly [number, number];
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  abortGraceMs?: number;
  /**
   * emergency_restart_threshold / _interval: this many crashes within intervalMs pause respawning.
   * Only workers that never finished a request count: one killed after serving (OOM killer, an
   * operator) is replaced at once, however often it happens.
   */
  crashThreshold?: number;
  crashIntervalMs?: number;
  /** Longest pause between respawn attempts in a crash loop (it doubles from 1 s up to this). */
  crashBackoffMaxMs?: number;
  /** Where the workers' own stdout and stderr lines go (an app's PHP error log); the log when unset. */
  onWorkerOutput?: (line: string, stream: 'stdout' | 'stderr', pid: number) => void;
}

/** Pool settings a running pool takes in place. */
export type ReconfigurableKey =
  | 'manager'
  | 'maxWorkers'
  | 'startWorkers'
  | 'minSpareWorkers'
  | 'maxSpareWorkers'
  | 'maxSpawnRate'
  | 'idleTimeoutMs'
  | 'maxRequests'
  | 'requestTimeoutMs'
  | 'maxWorkerMemoryBytes'
  | 'queueLimit'
  | 'queueTimeoutMs';
