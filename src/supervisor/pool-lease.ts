// A worker of the php-cgi pool reserved for one caller (WorkerPool.acquire): taken through the
// pool's queue like a request, held until its one request ends or the caller releases it.

import type { RequestController, RequestOptions, ResponseHandler } from '../fastcgi/client.js';
import { abandonedError, PoolRequest, type Waiter } from './pool-request.js';
import type { PhpCgiWorker, RequestInfo } from './worker.js';

/** A worker reserved for one caller until its request ends or release() is called. */
export interface WorkerLease {
  readonly worker: PhpCgiWorker;
  dispatch(options: RequestOptions, handler: ResponseHandler, info?: RequestInfo): RequestController;
  release(): void;
}

/** What a lease asks of its pool (made once per pool): its queue, running a request, taking a worker back. */
export interface LeaseHost {
  /** Grants a free worker at once, or queues the caller; returns the waiter (null if settled already). */
  enqueue(grant: (worker: PhpCgiWorker) => void, fail: (error: Error) => void): Waiter | null;
  drop(waiter: Waiter, error: Error): void;
  run(worker: PhpCgiWorker, request: PoolRequest, options: RequestOptions, info: RequestInfo): void;
  release(worker: PhpCgiWorker): void;
}

/** Reserves an idle worker of pool `pool`, waiting in its FIFO queue when all are busy. */
export function acquireLease(pool: string, host: LeaseHost, signal?: AbortSignal): Promise<WorkerLease> {
  if (signal?.aborted) return Promise.reject(abandonedError(pool, signal.reason));
  return new Promise((resolve, reject) => {
    let onAbort: (() => void) | null = null;
    const waiter = host.enqueue(
      (worker) => {
        if (onAbort) signal?.removeEventListener('abort', onAbort);
        resolve(lease(pool, host, worker));
      },
      (error) => {
        if (onAbort) signal?.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
    if (signal && waiter) {
      onAbort = () => host.drop(waiter, abandonedError(pool, signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

function lease(pool: string, host: LeaseHost, worker: PhpCgiWorker): WorkerLease {
  let used = false;
  return {
    worker,
    dispatch: (options, handler, info) => {
      if (used) throw new Error(`lease of pool ${pool} worker ${worker.id} was already used`);
      used = true;
      const request = new PoolRequest(handler, () => {});
      host.run(worker, request, options, info ?? {});
      return request;
    },
    release: () => {
      if (used) return;
      used = true;
      host.release(worker);
    },
  };
}
