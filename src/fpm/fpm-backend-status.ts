// What the php-fpm backend reports: its events, its stats snapshot, and the PoolStatus rendered
// from that snapshot in php-fpm's status vocabulary (pure: every status format renders this one).

import type { PoolStatus } from '../backend.js';
import type { AppConfig } from '../config/load.js';
import type { BreakerState } from './breaker.js';
import type { FpmPoolStatus } from './fpm-status.js';
import type { QueueWaitStats } from './queue-wait.js';
import type { UpstreamStats } from './upstream.js';

export type FpmTimeoutKind = 'queue' | 'request' | 'terminate';

export interface FpmBackendEvents {
  breaker: [address: string, state: BreakerState, reason: string];
  /** A request could not be sent to `from` (error `code`) and was sent to another upstream. */
  failover: [from: string, code: string];
  timeout: [kind: FpmTimeoutKind, uri: string];
}

export interface FpmBackendStats {
  app: string;
  managed: boolean;
  masterPid: number;
  masterState: string;
  masterRestarts: number;
  /** Requests taken. */
  accepted: number;
  /** Requests waiting in TQServer's queue now (every upstream, and those held during a reload). */
  queueLength: number;
  maxQueueLength: number;
  /** How long requests waited for a connection, every upstream together. */
  queueWait: QueueWaitStats;
  /** No connection became free within php.pool.queue_timeout (503). */
  queueTimeouts: number;
  /** No complete answer within php_fpm.request_timeout_ms (504). */
  requestTimeouts: number;
  /** php-fpm killed the child at request_terminate_timeout (504). */
  terminateTimeouts: number;
  /** A child's connection closed mid-request for another reason (502): a crash or a kill. */
  crashes: number;
  /** Requests that could not be sent to one upstream and went to another. */
  failovers: number;
  /** Circuit breakers that opened or closed, every upstream together. */
  breakerChanges: number;
  reloads: number;
  upstreams: UpstreamStats[];
}

/**
 * The pool as php-fpm's status page shows it (read at the last health check), with TQServer's own
 * queue as the listen queue: requests wait there, not in php-fpm's backlog. `pool` is the app's
 * php.pool, `startTimeMs` the backend's start, used while php-fpm has reported nothing.
 */
export function fpmPoolStatus(stats: FpmBackendStats, pool: AppConfig['php']['pool'], startTimeMs: number): PoolStatus {
  const php = stats.upstreams.map((u) => u.php).filter((p): p is FpmPoolStatus => p !== null);
  const sum = (pick: (p: FpmPoolStatus) => number) => php.reduce((n, p) => n + pick(p), 0);
  return {
    pool: stats.app,
    backend: 'php-fpm',
    processManager: php[0]?.processManager || pool.manager,
    startTime: php.length > 0 ? Math.min(...php.map((x) => x.startTime * 1000)) : startTimeMs,
    acceptedConn: stats.accepted,
    listenQueue: stats.queueLength + sum((x) => x.listenQueue),
    maxListenQueue: Math.max(stats.maxQueueLength, ...php.map((x) => x.maxListenQueue)),
    listenQueueLen: pool.queueLimit,
    idleProcesses: sum((x) => x.idleProcesses),
    activeProcesses: sum((x) => x.activeProcesses),
    totalProcesses: sum((x) => x.totalProcesses),
    maxActiveProcesses: sum((x) => x.maxActiveProcesses),
    maxChildrenReached: sum((x) => x.maxChildrenReached),
    slowRequests: sum((x) => x.slowRequests),
    restarts: {
      master: stats.masterRestarts,
      timeout: stats.terminateTimeouts,
      crashed: stats.crashes,
      requestTimeouts: stats.requestTimeouts,
      queueTimeouts: stats.queueTimeouts,
      failovers: stats.failovers,
    },
    upstreams: stats.upstreams.map((u) => ({
      address: u.address,
      breaker: u.breaker,
      breakerReason: u.breakerReason,
      breakerChanges: u.breakerChanges,
      healthy: u.healthy,
      open: u.open,
      idle: u.idle,
      busy: u.busy,
      connecting: u.connecting,
      queued: u.queued,
      requests: u.requests,
      retries: u.retries,
      failures: u.failures,
      connectFailures: u.connectFailures,
      failovers: u.failovers,
      queueWait: { count: u.queueWait.count, sumMs: u.queueWait.sumMs, maxMs: u.queueWait.maxMs },
    })),
    processes: php.flatMap((x) => x.processes),
  };
}
