// Can each app take a request now (/readyz), and how full is its pool right now (the dashboard's
// occupancy): pure decisions over each backend's own stats, plus the one place that reads them.

import type { Backend, BackendKind } from '../backend.js';
import { FpmBackend } from '../fpm/fpm-backend.js';
import { PhpCgiBackend } from '../supervisor/php-cgi-backend.js';
import type { PoolStats } from '../supervisor/worker-pool.js';
import type { Occupancy } from './series.js';

export interface Readiness {
  app: string;
  backend: BackendKind;
  ready: boolean;
  /** Why, in words an operator acts on. */
  reason: string;
}

/**
 * A php-cgi pool takes a request when it is not in a crash loop and has an idle worker, may start
 * one, or has room in its queue. A full queue answers 503 at once, so it is not ready.
 */
export function phpCgiReadiness(app: string, stats: Pick<PoolStats, 'crashLoop' | 'restarts' | 'idle' | 'starting' | 'total' | 'queueLength' | 'queueLimit'>, maxWorkers: number): Readiness {
  const answer = (ready: boolean, reason: string): Readiness => ({ app, backend: 'php-cgi', ready, reason });
  if (stats.crashLoop) return answer(false, `workers keep crashing; respawning is paused (restarts: ${stats.restarts.crashed} crashed)`);
  if (stats.idle > 0) return answer(true, `${stats.idle} idle worker${stats.idle === 1 ? '' : 's'}`);
  if (stats.starting > 0) return answer(true, `${stats.starting} worker${stats.starting === 1 ? '' : 's'} starting`);
  if (stats.total < maxWorkers) return answer(true, `can start a worker (${stats.total} of max_workers ${maxWorkers} running)`);
  if (stats.queueLength < stats.queueLimit) return answer(true, `all ${stats.total} workers busy; ${stats.queueLength} of queue_limit ${stats.queueLimit} waiting`);
  return answer(false, `all ${stats.total} workers busy and the queue is full (${stats.queueLength} waiting, queue_limit ${stats.queueLimit})`);
}

/** What readiness reads of FpmBackend.stats(). */
export interface FpmFacts {
  managed: boolean;
  masterState: string;
  upstreams: ReadonlyArray<{ address: string; breaker: string; breakerReason: string }>;
}

/**
 * A php-fpm app takes a request when its master (if TQServer runs it) is running and at least one
 * upstream's circuit breaker is closed: an open breaker answers 503 at once.
 */
export function fpmReadiness(app: string, stats: FpmFacts): Readiness {
  const answer = (ready: boolean, reason: string): Readiness => ({ app, backend: 'php-fpm', ready, reason });
  if (stats.managed && stats.masterState !== 'running') return answer(false, `php-fpm master is ${stats.masterState}`);
  const closed = stats.upstreams.filter((u) => u.breaker === 'closed');
  if (closed.length > 0) return answer(true, `${closed.length} of ${stats.upstreams.length} php-fpm upstream${stats.upstreams.length === 1 ? '' : 's'} answering`);
  const why = stats.upstreams.map((u) => `${u.address}: circuit ${u.breaker}${u.breakerReason ? ` (${u.breakerReason})` : ''}`).join('; ');
  return answer(false, `php-fpm is not answering: ${why || 'no upstream'}`);
}

/** The backend's readiness, from the stats of whichever kind it is. */
export function readinessOf(app: string, backend: Backend): Readiness {
  if (backend instanceof PhpCgiBackend) return phpCgiReadiness(app, backend.pool.stats(), backend.pool.config.maxWorkers);
  if (backend instanceof FpmBackend) return fpmReadiness(app, backend.stats());
  // Any other backend is judged by its status: it has processes or none are needed to answer.
  const status = backend.status();
  return { app, backend: backend.kind, ready: true, reason: `${status.totalProcesses} processes` };
}

/**
 * Occupancy now, without the per-process detail status() gathers (php-cgi reads each worker's
 * memory for it). For php-fpm, busy and queued come from TQServer's own connections, which are
 * live; php-fpm's own figures are only as fresh as the last health check.
 */
export function occupancyOf(backend: Backend, maxWorkers: number): Occupancy {
  if (backend instanceof PhpCgiBackend) {
    const s = backend.pool.stats();
    return { idle: s.idle, active: s.active, queued: s.queueLength, total: s.total, limit: maxWorkers };
  }
  if (backend instanceof FpmBackend) {
    const s = backend.stats();
    let busy = 0;
    let queued = 0;
    let processes = 0;
    for (const u of s.upstreams) {
      busy += u.busy;
      queued += u.queued;
      processes += u.php?.totalProcesses ?? 0;
    }
    // php-fpm's own counters are only as fresh as the last health check, and under load its
    // "total processes" has been seen above pm.max_children: TQServer's connection limit bounds it.
    const limit = maxWorkers * Math.max(1, s.upstreams.length);
    const total = Math.min(Math.max(processes, busy), Math.max(limit, busy));
    return { idle: total - busy, active: busy, queued, total, limit };
  }
  const status = backend.status();
  return { idle: status.idleProcesses, active: status.activeProcesses, queued: status.listenQueue, total: status.totalProcesses, limit: maxWorkers };
}
