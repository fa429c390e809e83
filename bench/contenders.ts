// The gateways the side-by-side sections compare, each started on its own free loopback port with its
// own temp dir and its own PHP (never shared): the same 4 PHP processes, settings and scripts for all.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startCaddy } from './lib/caddy.js';
import { startNginx } from './lib/nginx.js';
import { DOCUMENT_ROOT, PHP_CHILDREN, startPhpCgis, startPhpFpm } from './lib/php-pool.js';
import { Scope } from './lib/processes.js';
import { startTQServer } from './lib/tqserver.js';

export const CONTENDER_IDS = ['tq-fpm', 'tq-cgi', 'nginx-fpm-ka', 'nginx-fpm', 'caddy-fpm', 'nginx-tq-front', 'nginx-cgi'] as const;
export type ContenderId = (typeof CONTENDER_IDS)[number];

/** Every ratio is to this contender: nginx + php-fpm with upstream keep-alive, the best nginx config. */
export const BASELINE: ContenderId = 'nginx-fpm-ka';

/**
 * nginx → TQServer's FastCGI front keeps this many idle connections. The front queues requests for
 * its own pool, so idle connections to it pin nothing: keeping one per client connection is best.
 */
const FRONT_KEEPALIVE = 64;

export interface ContenderInfo {
  readonly id: ContenderId;
  readonly label: string;
  /** For the chart's legend. */
  readonly short: string;
  /** Which processes count as "the gateway" for CPU time and memory. */
  readonly gateway: string;
}

export const CONTENDERS: Readonly<Record<ContenderId, ContenderInfo>> = {
  'tq-fpm': { id: 'tq-fpm', label: 'TQServer + php-fpm', short: 'TQServer + php-fpm', gateway: 'the TQServer (node) process' },
  'tq-cgi': { id: 'tq-cgi', label: 'TQServer + php-cgi pool', short: 'TQServer + php-cgi', gateway: 'the TQServer (node) process' },
  'nginx-fpm-ka': {
    id: 'nginx-fpm-ka',
    label: `nginx + php-fpm, keepalive ${PHP_CHILDREN}`,
    short: 'nginx + php-fpm keep-alive',
    gateway: 'the nginx master and worker',
  },
  'nginx-fpm': { id: 'nginx-fpm', label: 'nginx + php-fpm, no keep-alive', short: 'nginx + php-fpm', gateway: 'the nginx master and worker' },
  'caddy-fpm': { id: 'caddy-fpm', label: 'Caddy + php-fpm', short: 'Caddy + php-fpm', gateway: 'the caddy process' },
  'nginx-tq-front': {
    id: 'nginx-tq-front',
    label: 'nginx → TQServer FastCGI front → php-cgi',
    short: 'nginx → TQServer front',
    gateway: 'nginx (master and worker) plus the TQServer process',
  },
  'nginx-cgi': {
    id: 'nginx-cgi',
    label: `nginx + ${PHP_CHILDREN} php-cgi -b`,
    short: `nginx + ${PHP_CHILDREN} php-cgi`,
    gateway: 'the nginx master and worker',
  },
};

/** A started contender: where to send requests, which PIDs are its gateway, what it logged. */
export interface RunningContender {
  readonly info: ContenderInfo;
  /** http://127.0.0.1:PORT, without a trailing slash. */
  readonly baseUrl: string;
  gatewayPids(): number[];
  /** The end of the gateway's log and output, for error reports. */
  logTail(): Promise<string>;
  readonly scope: Scope;
}

export interface StartOptions {
  /** Write TQServer's V8 CPU profile here when it exits (node --cpu-prof). */
  readonly profileDir: string | null;
  /** Distinguishes the profile files of different sections. */
  readonly profilePrefix: string;
}

async function tail(file: string, chars = 3000): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.slice(-chars);
}

/**
 * Starts one contender in its own Scope (closed on failure). The caller closes the returned scope
 * (contender.scope) when done.
 */
export async function startContender(id: ContenderId, options: StartOptions): Promise<RunningContender> {
  const scope = new Scope();
  try {
    return await start(id, scope, options);
  } catch (error) {
    await scope.close();
    throw error;
  }
}

async function start(id: ContenderId, scope: Scope, options: StartOptions): Promise<RunningContender> {
  const info = CONTENDERS[id];
  const dir = await scope.tempDir(`tqserver-bench-${id}-`);
  const url = (port: number) => `http://127.0.0.1:${port}`;
  const profile = { profileDir: options.profileDir, profileName: `${options.profilePrefix}-${id}` };
  switch (id) {
    case 'tq-fpm':
    case 'tq-cgi': {
      const tq = await startTQServer(scope, dir, info.label, { phpFpm: id === 'tq-fpm', fastcgiFront: false, ...profile });
      return {
        info,
        baseUrl: url(tq.port),
        gatewayPids: () => [tq.process.pid],
        logTail: async () => `${tq.process.output().slice(-3000)}\n--- ${tq.logFile}:\n${await tail(tq.logFile)}`,
        scope,
      };
    }
    case 'nginx-fpm-ka':
    case 'nginx-fpm':
    case 'caddy-fpm': {
      const fpm = await startPhpFpm(scope, dir, `${info.label}: php-fpm`);
      if (id === 'caddy-fpm') {
        const caddy = await startCaddy(scope, dir, info.label, { documentRoot: DOCUMENT_ROOT, phpFpmSocket: fpm.socket });
        return {
          info,
          baseUrl: url(caddy.port),
          gatewayPids: () => [caddy.process.pid],
          logTail: async () => caddy.process.output().slice(-3000),
          scope,
        };
      }
      const keepalive = id === 'nginx-fpm-ka' ? PHP_CHILDREN : null;
      const nginx = await startNginx(scope, dir, info.label, { documentRoot: DOCUMENT_ROOT, upstreams: [fpm.socket], keepalive });
      return { info, baseUrl: url(nginx.port), gatewayPids: nginx.pids, logTail: () => tail(join(dir, 'error.log')), scope };
    }
    case 'nginx-tq-front': {
      const tq = await startTQServer(scope, dir, `${info.label}: TQServer`, { phpFpm: false, fastcgiFront: true, ...profile });
      const nginx = await startNginx(scope, dir, info.label, { documentRoot: DOCUMENT_ROOT, upstreams: [tq.fastcgiSocket!], keepalive: FRONT_KEEPALIVE });
      return {
        info,
        baseUrl: url(nginx.port),
        gatewayPids: () => [...nginx.pids(), tq.process.pid],
        logTail: async () => `${await tail(join(dir, 'error.log'))}\n--- TQServer:\n${tq.process.output().slice(-3000)}`,
        scope,
      };
    }
    case 'nginx-cgi': {
      const sockets = await startPhpCgis(scope, dir, info.label);
      // No upstream keep-alive: php-cgi serves one connection at a time, so an idle kept connection
      // pins its process. Measured here: keepalive 4 or 8 in front of 4 php-cgi gives the same req/s
      // (11-14k) with a p99 of 1.2-2.5 s; without it, p99 is 5-15 ms. This is nginx's best config for it.
      const nginx = await startNginx(scope, dir, info.label, { documentRoot: DOCUMENT_ROOT, upstreams: sockets, keepalive: null });
      return { info, baseUrl: url(nginx.port), gatewayPids: nginx.pids, logTail: () => tail(join(dir, 'error.log')), scope };
    }
    default: {
      const unknown: never = id;
      throw new Error(`unknown contender ${String(unknown)}`);
    }
  }
}
