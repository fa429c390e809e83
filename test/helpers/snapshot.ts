// Status snapshots built by hand for the renderers' unit tests: one php-cgi pool and one php-fpm pool
// with known figures, and request records as the fronts emit them.

import type { ServerSnapshot } from '../../src/app.js';
import type { PoolStatus, ProcessStatus } from '../../src/backend.js';
import type { AppConfig } from '../../src/config/load.js';
import type { RequestRecord } from '../../src/observe/request-record.js';

/** 2026-01-02 03:04:05 UTC. */
export const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);

export function processRow(overrides: Partial<ProcessStatus> = {}): ProcessStatus {
  return {
    pid: 101,
    state: 'Idle',
    startTime: T0,
    requests: 7,
    requestDurationMs: 12.5,
    requestMethod: 'GET',
    requestUri: '/blog/index.php?a=1',
    contentLength: 0,
    script: '/srv/blog/public/index.php',
    lastRequestCpu: 0,
    lastRequestMemory: 2097152,
    ...overrides,
  };
}

export function pool(overrides: Partial<PoolStatus> = {}): PoolStatus {
  return {
    pool: 'blog',
    backend: 'php-cgi',
    processManager: 'dynamic',
    startTime: T0,
    acceptedConn: 42,
    listenQueue: 3,
    maxListenQueue: 9,
    listenQueueLen: 512,
    idleProcesses: 1,
    activeProcesses: 2,
    totalProcesses: 3,
    maxActiveProcesses: 4,
    maxChildrenReached: 5,
    slowRequests: 6,
    restarts: { recycled: 2, memory: 0, idle: 1, stopped: 0, timeout: 1, aborted: 0, crashed: 3 },
    upstreams: [],
    processes: [processRow(), processRow({ pid: 102, state: 'Running', requestUri: '/blog/slow.php' })],
    ...overrides,
  };
}

/** Only the fields the renderers read; the rest of AppConfig does not matter to them. */
export function appConfig(name: string, path: string, maxWorkers = 4): AppConfig {
  return { name, path, php: { pool: { maxWorkers } } } as unknown as AppConfig;
}

export function snapshot(pools: Array<{ name: string; path: string; status: PoolStatus }> = [{ name: 'blog', path: '/blog', status: pool() }]): ServerSnapshot {
  return { version: '9.9.9', startTime: T0, pools: pools.map((p) => ({ app: appConfig(p.name, p.path), status: p.status })), http: { fastPathRequests: 41, handoffs: 3 } };
}

export function record(overrides: Partial<RequestRecord> = {}): RequestRecord {
  return {
    id: 'r1',
    front: 'http',
    app: 'blog',
    kind: 'php',
    method: 'GET',
    uri: '/blog/index.php',
    httpVersion: '1.1',
    remoteAddress: '127.0.0.1',
    status: 200,
    bytesSent: 100,
    startedAt: T0,
    durationMs: 10,
    queueMs: 1,
    phpMs: 9,
    backend: 'php-cgi',
    workerPid: 101,
    script: 'index.php',
    userAgent: 'test',
    referer: '',
    error: null,
    aborted: false,
    ...overrides,
  };
}
