// A php-cgi pool's workers as processes: where each listens (a unix socket in a private folder, or
// the first free port of port_range), what it is started with, when it is recycled after a request,
// and the end of a stop (killing what is left after the grace).

import { join } from 'node:path';
import { PoolUnavailableError } from '../errors.js';
import type { Address } from '../fastcgi/address.js';
import type { Logger } from '../log.js';
import { makeTempDir } from '../temp-dir.js';
import type { PoolConfig } from './pool-config.js';
import type { PhpCgiWorker, WorkerOptions } from './worker.js';
import type { ExitReason } from './worker-state.js';

/** A private folder (mode 0700) for the worker sockets of pool `pool`: no other user can connect to them. */
export function makeSocketDir(pool: string): Promise<string> {
  return makeTempDir(pool);
}

/** Worker `id`'s address; a port taken from port_range is added to `usedPorts` (freed when the worker exits). */
export function workerAddress(config: PoolConfig, id: number, socketDir: string | null, usedPorts: Set<number>): Address {
  if ((config.transport ?? 'unix') === 'unix') return { path: join(socketDir!, `w${id}.sock`) };
  const [low, high] = config.portRange ?? [9100, 9199];
  for (let port = low; port <= high; port++) {
    if (!usedPorts.has(port)) {
      usedPorts.add(port);
      return { host: '127.0.0.1', port };
    }
  }
  throw new PoolUnavailableError('POOL_STOPPED', `pool ${config.name}: no free port left in port_range ${low}-${high}`);
}

/** The options of worker `id` listening on `listen`. */
export function workerOptions(config: PoolConfig, id: number, listen: Address, log: Logger, clock: () => number): WorkerOptions {
  return {
    id,
    pool: config.name,
    binary: config.binary,
    listen,
    configFile: config.configFile ?? null,
    settings: config.settings ?? {},
    env: config.env ?? {},
    cwd: config.cwd,
    startTimeoutMs: config.startTimeoutMs,
    stopTimeoutMs: config.stopTimeoutMs,
    abortGraceMs: config.abortGraceMs,
    log,
    clock,
    onOutput: config.onWorkerOutput,
  };
}

/** Why `worker` of pool `pool` is recycled after a request (pm.max_requests, max_worker_memory), or null. */
export function recycleReason(worker: PhpCgiWorker, config: PoolConfig, log: Logger, pool: string): ExitReason | null {
  const { maxRequests, maxWorkerMemoryBytes } = config;
  if (maxRequests > 0 && worker.requests >= maxRequests) return 'recycled';
  // A worker is measured after it served something: a fresh one over the limit would otherwise be
  // replaced by another fresh one, forever.
  if (maxWorkerMemoryBytes > 0 && worker.requests > 0) {
    const rss = worker.rssBytes();
    if (rss !== null && rss > maxWorkerMemoryBytes) {
      log.info(
        { pool, pid: worker.pid, rssBytes: rss },
        `pool ${pool}: recycling pid ${worker.pid}: resident memory ${Math.round(rss / 1048576)} MiB is over max_worker_memory ${Math.round(maxWorkerMemoryBytes / 1048576)} MiB`,
      );
      return 'memory';
    }
  }
  return null;
}

/**
 * The end of a stop: waits for `allExited` up to graceMs, then kills the workers still in
 * `workers` (their requests fail with POOL_STOPPED) and waits for them.
 */
export async function killAfterGrace(workers: Map<number, PhpCgiWorker>, allExited: Promise<void>, graceMs: number, log: Logger, pool: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), graceMs);
  });
  if ((await Promise.race([allExited, expired])) === 'expired') {
    for (const worker of workers.values()) {
      log.warn({ pool, pid: worker.pid, state: worker.state }, `pool ${pool}: worker still ${worker.state} after ${graceMs} ms; killing it`);
      void worker.kill('stopped', new PoolUnavailableError('POOL_STOPPED', `pool ${pool} stopped: the request was still running after the ${graceMs} ms grace`));
    }
    await allExited;
  }
  clearTimeout(timer);
}
