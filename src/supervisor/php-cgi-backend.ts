// The php-cgi backend: TQServer's own worker pool behind the Backend interface, its stats in
// php-fpm's status vocabulary.

import type { Backend, PoolStatus, ProcessStatus } from '../backend.js';
import type { RequestController, RequestOptions, ResponseHandler } from '../fastcgi/client.js';
import type { RequestInfo, WorkerStats } from './worker.js';
import type { WorkerPool } from './worker-pool.js';

/** php-fpm's process states, and ours for the ones it does not have. */
export function processState(state: WorkerStats['state']): string {
  switch (state) {
    case 'idle':
      return 'Idle';
    case 'active':
      return 'Running';
    case 'retiring':
      return 'Running';
    case 'starting':
      return 'Starting';
    case 'stopping':
      return 'Finishing';
    case 'exited':
    case 'crashed':
      return 'Ended';
    default: {
      const never: never = state;
      return never;
    }
  }
}

export class PhpCgiBackend implements Backend {
  readonly kind = 'php-cgi' as const;
  readonly pool: WorkerPool;

  constructor(pool: WorkerPool) {
    this.pool = pool;
  }

  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo): RequestController {
    return this.pool.dispatch(options, handler, info);
  }

  stop(graceMs: number): Promise<void> {
    return this.pool.stop(graceMs);
  }

  status(): PoolStatus {
    const s = this.pool.stats();
    const processes: ProcessStatus[] = this.pool.workerStats(true).map((w) => ({
      pid: w.pid,
      state: processState(w.state),
      startTime: w.startedAt,
      requests: w.requests,
      requestDurationMs: w.requestDurationMs,
      requestMethod: w.request?.method ?? '-',
      requestUri: w.request?.uri ?? '-',
      contentLength: w.request?.contentLength ?? 0,
      script: w.request?.script ?? '-',
      lastRequestCpu: 0,
      lastRequestMemory: w.rssBytes ?? 0,
    }));
    return {
      pool: s.pool,
      backend: 'php-cgi',
      processManager: s.processManager,
      startTime: s.startTime,
      acceptedConn: s.acceptedRequests,
      listenQueue: s.queueLength,
      maxListenQueue: s.maxQueueLength,
      listenQueueLen: s.queueLimit,
      idleProcesses: s.idle,
      activeProcesses: s.active,
      totalProcesses: s.total,
      maxActiveProcesses: s.maxActive,
      maxChildrenReached: s.maxWorkersReached,
      slowRequests: 0,
      restarts: { ...s.restarts },
      upstreams: [],
      processes,
    };
  }
}
