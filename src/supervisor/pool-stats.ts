// What a php-cgi pool reports: its events, its stats snapshot, its workers counted by state, and
// waiting until the snapshot says something (tests, a draining stop).

import type { PmConfig } from './pm.js';
import type { WorkerPool } from './worker-pool.js';
import type { PhpCgiWorker, RequestInfo, WorkerExit } from './worker.js';
import type { ExitReason } from './worker-state.js';

export interface PoolEvents {
  'worker-ready': [worker: PhpCgiWorker];
  'worker-exit': [worker: PhpCgiWorker, exit: WorkerExit];
  'max-workers-reached': [pool: string, maxWorkers: number];
  'queue-full': [pool: string, waiting: number];
  'queue-timeout': [pool: string, waitedMs: number];
  'request-timeout': [worker: PhpCgiWorker, info: RequestInfo];
  'crash-loop': [pool: string, crashes: number, retryInMs: number];
}

export interface PoolStats {
  pool: string;
  processManager: PmConfig['manager'];
  startTime: number;
  acceptedRequests: number;
  /** Requests waiting for a worker now (php-fpm: listen queue). */
  queueLength: number;
  maxQueueLength: number;
  queueLimit: number;
  idle: number;
  active: number;
  starting: number;
  total: number;
  maxActive: number;
  /** Times the pool wanted more workers than max_workers allows, counted once per episode (php-fpm: max children reached). */
  maxWorkersReached: number;
  restarts: Record<ExitReason, number>;
  crashLoop: boolean;
}

/** The workers by state as the stats count them: a retiring worker still runs its request. */
export function countWorkers(workers: Iterable<PhpCgiWorker>): { idle: number; active: number; starting: number } {
  let idle = 0;
  let active = 0;
  let starting = 0;
  for (const worker of workers) {
    const state = worker.state;
    if (state === 'idle') idle += 1;
    else if (state === 'active' || state === 'retiring') active += 1;
    else if (state === 'starting') starting += 1;
  }
  return { idle, active, starting };
}

/** Counts workers that serve or will serve (starting, idle, active). */
export function servingCount(workers: Map<number, PhpCgiWorker>): number {
  let count = 0;
  for (const worker of workers.values()) {
    const s = worker.state;
    if (s === 'starting' || s === 'idle' || s === 'active') count += 1;
  }
  return count;
}

/** Counts workers running a request (a retiring one finishes its last). */
export function activeCount(workers: Map<number, PhpCgiWorker>): number {
  let count = 0;
  for (const worker of workers.values()) if (worker.state === 'active' || worker.state === 'retiring') count += 1;
  return count;
}

/**
 * Resolves when `pool`'s stats satisfy `predicate`, checked when a worker comes up or exits and on
 * every worker state change (the pool calls each of `stateListeners` then).
 */
export function waitForStats(pool: WorkerPool, stateListeners: Set<() => void>, predicate: (stats: PoolStats) => boolean, timeoutMs: number): Promise<PoolStats> {
  const now = pool.stats();
  if (predicate(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const check = () => {
      const stats = pool.stats();
      if (!predicate(stats)) return;
      cleanup();
      resolve(stats);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`pool ${pool.name}: condition not reached within ${timeoutMs} ms (now ${JSON.stringify(pool.stats())})`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      pool.off('worker-ready', check);
      pool.off('worker-exit', check);
      stateListeners.delete(check);
    };
    pool.on('worker-ready', check);
    pool.on('worker-exit', check);
    stateListeners.add(check);
  });
}
