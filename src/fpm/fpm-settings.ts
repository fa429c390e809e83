// What the php-fpm backend derives from an app's config: the paths php-fpm answers itself, the
// pooled FastCGI client for an upstream, the pool a managed php-fpm is launched with, and the
// health check's status request.

import type { AppConfig } from '../config/load.js';
import type { Address } from '../fastcgi/address.js';
import { FastCGIClient } from '../fastcgi/client-pool.js';
import { MAX_CONTENT_BYTES } from '../fastcgi/protocol.js';
import { fpmCalibrator } from './calibrate.js';
import { statusParams } from './fpm-status.js';
import type { FpmMasterOptions } from './launcher.js';

/** php-fpm answers these itself (ping.path, pm.status_path); they never reach a script. */
export const PING_PATH = '/tqserver-fpm-ping';
export const STATUS_PATH = '/tqserver-fpm-status';

/**
 * How long a connection to php-fpm may stay idle: a tenth of request_terminate_timeout, between
 * 250 ms and 5 s; kept open while there is no such timeout. php-fpm counts a child's wait for the
 * next request on a kept-alive connection toward request_terminate_timeout (it times from "Reading
 * headers"): a child idle that long is killed ("execution timed out"), and a request on a connection
 * idle for a while gets that much less time. Under load connections are never idle and stay open.
 */
export function fpmIdleTimeoutMs(terminateMs: number): number {
  return terminateMs > 0 ? Math.round(Math.max(250, Math.min(5000, terminateMs / 10))) : 0;
}

/** Never more kept-alive connections than children: an extra one pins a request in php-fpm's backlog. */
export function fpmCapacity(app: AppConfig): number {
  return app.phpFpm.poolSize ?? app.php.pool.maxWorkers;
}

/** The pooled client for one upstream of `app`, sized by fpmCapacity. */
export function newFpmClient(address: Address, app: AppConfig): FastCGIClient {
  const p = app.php.pool;
  const fpm = app.phpFpm;
  return new FastCGIClient({
    address,
    maxConns: fpmCapacity(app),
    maxQueue: p.queueLimit,
    queueTimeoutMs: p.queueTimeoutMs,
    connectTimeoutMs: fpm.connectTimeoutMs,
    readTimeoutMs: fpm.requestTimeoutMs,
    writeTimeoutMs: fpm.requestTimeoutMs,
    // php.pool.request_timeout is request_terminate_timeout (for an external php-fpm: what its pool sets).
    idleTimeoutMs: fpmIdleTimeoutMs(p.requestTimeoutMs),
    // A child closes its connection after its pm.max_requests-th request; with one connection per
    // child our count is its count, so that connection is not offered another request (a request
    // sent in that moment would be lost). For an external php-fpm, php.pool.max_requests says what
    // its pool's pm.max_requests is.
    maxRequestsPerConnection: p.maxRequests,
    // A new connection may reach a child that served requests on an earlier one (closed idle):
    // php-fpm's status page gives that child's count (src/fpm/calibrate.ts).
    calibrate: p.maxRequests > 0 ? fpmCalibrator(STATUS_PATH) : undefined,
    // php-fpm parses each PARAMS record on its own (main/fastcgi.c) and drops the connection when a
    // pair runs into the next one: params must fit one record, else a clean 431 (see worker.ts).
    maxParamsBytes: MAX_CONTENT_BYTES,
  });
}

/** The launcher's pool for an app (its listen address is the launcher's). */
export function fpmPoolInput(app: AppConfig): Omit<FpmMasterOptions['pool'], 'listen'> {
  return {
    name: app.name,
    pool: app.php.pool,
    settings: app.php.settings,
    env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', ...app.php.env },
    extensions: app.php.extensions,
    documentRoot: app.documentRoot,
    user: null,
    pingPath: PING_PATH,
    statusPath: STATUS_PATH,
    allowedClients: ['127.0.0.1', '::1'],
  };
}

/** The health check's request: php-fpm's status page as JSON with every process listed. */
export function healthCheckParams(): Record<string, string> {
  return statusParams(STATUS_PATH, 'json&full');
}
