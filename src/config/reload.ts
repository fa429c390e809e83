// A config reload as a plan (pure): what changed between the running Config and a new one, and the
// least disruptive step for each change, so the apply step never restarts more than it must.

import { isDeepStrictEqual } from 'node:util';
import type { AppConfig, Config, ServerConfig } from './load.js';

export type PlanStep =
  /** Needs a process restart; the rest of the plan still applies. */
  | { kind: 'restart-required'; key: string; why: string }
  /** Server settings applied in place (timeouts, limits, logging, status path). */
  | { kind: 'update-server'; keys: string[] }
  | { kind: 'add-app'; app: AppConfig }
  | { kind: 'remove-app'; name: string }
  /** Routing only (path, document root, index files, front controller, extensions): the backend stays. */
  | { kind: 'update-route'; app: AppConfig; keys: string[] }
  /** Same backend, new pool limits: resized in place (php-cgi) or reloaded gracefully (php-fpm). */
  | { kind: 'resize-pool'; app: AppConfig; keys: string[] }
  /** A new backend is started, traffic switched to it, the old one drained. */
  | { kind: 'replace-backend'; app: AppConfig; keys: string[] }
  /** The FastCGI front moves (listen or allowed clients): the new one starts, the old one drains. */
  | { kind: 'replace-fastcgi-front'; app: AppConfig; keys: string[] }
  /** The app's access or slow log settings: its log files are reopened as configured. */
  | { kind: 'update-logs'; app: AppConfig; keys: string[] };

export interface ReloadPlan {
  steps: PlanStep[];
  /** True when nothing changed. */
  empty: boolean;
}

/**
 * Server keys a running HTTP server cannot take without rebinding. (The header limit is not one:
 * node:http reads server.maxHeaderSize for every new connection.)
 */
const RESTART_KEYS: ReadonlyArray<[keyof ServerConfig, string]> = [
  ['host', 'the HTTP server listens on its address until restarted'],
  ['port', 'the HTTP server listens on its port until restarted'],
];

/** Pool keys a running php-cgi pool takes in place. */
const POOL_KEYS = [
  'manager',
  'maxWorkers',
  'startWorkers',
  'minSpareWorkers',
  'maxSpareWorkers',
  'maxSpawnRate',
  'maxRequests',
  'idleTimeoutMs',
  'requestTimeoutMs',
  'queueLimit',
  'queueTimeoutMs',
  'maxWorkerMemoryBytes',
] as const;

/** The dotted names operators know, for log lines. */
const POOL_KEY_NAMES: Record<(typeof POOL_KEYS)[number], string> = {
  manager: 'php.pool.manager',
  maxWorkers: 'php.pool.max_workers',
  startWorkers: 'php.pool.start_workers',
  minSpareWorkers: 'php.pool.min_workers',
  maxSpareWorkers: 'php.pool.max_spare_workers',
  maxSpawnRate: 'php.pool.max_spawn_rate',
  maxRequests: 'php.pool.max_requests',
  idleTimeoutMs: 'php.pool.idle_timeout',
  requestTimeoutMs: 'php.pool.request_timeout',
  queueLimit: 'php.pool.queue_limit',
  queueTimeoutMs: 'php.pool.queue_timeout',
  maxWorkerMemoryBytes: 'php.pool.max_worker_memory',
};

function changed<T extends object, K extends keyof T>(a: T, b: T, keys: readonly K[]): K[] {
  return keys.filter((key) => !isDeepStrictEqual(a[key], b[key]));
}

/** The steps that take a running app from `before` to `after`. */
export function diffApp(before: AppConfig, after: AppConfig): PlanStep[] {
  const steps: PlanStep[] = [];
  // Anything that shapes the PHP processes themselves needs new processes.
  const backendKeys: string[] = [];
  if (before.phpFpm.enabled !== after.phpFpm.enabled) backendKeys.push('php_fpm.enabled');
  if (before.php.binary !== after.php.binary) backendKeys.push('php.binary');
  if (before.php.configFile !== after.php.configFile) backendKeys.push('php.config_file');
  if (!isDeepStrictEqual(before.php.settings, after.php.settings)) backendKeys.push('php.settings');
  if (!isDeepStrictEqual(before.php.env, after.php.env)) backendKeys.push('php.env');
  if (before.php.pool.transport !== after.php.pool.transport || !isDeepStrictEqual(before.php.pool.portRange, after.php.pool.portRange)) {
    backendKeys.push('php.pool.transport');
  }
  if (before.documentRoot !== after.documentRoot) backendKeys.push('document_root');
  // The PHP error log is wired into the processes' output when they start.
  if (before.php.errorLog !== after.php.errorLog) backendKeys.push('php.error_log');
  if (after.phpFpm.enabled && !isDeepStrictEqual(before.phpFpm, after.phpFpm)) backendKeys.push('php_fpm');
  const poolKeys = changed(before.php.pool, after.php.pool, POOL_KEYS).map((key) => POOL_KEY_NAMES[key]);
  if (backendKeys.length > 0) steps.push({ kind: 'replace-backend', app: after, keys: [...backendKeys, ...poolKeys] });
  else if (poolKeys.length > 0) steps.push({ kind: 'resize-pool', app: after, keys: poolKeys });

  const routeKeys: string[] = [];
  if (before.path !== after.path) routeKeys.push('path');
  if (before.documentRoot !== after.documentRoot) routeKeys.push('document_root');
  if (!isDeepStrictEqual(before.indexFiles, after.indexFiles)) routeKeys.push('index_files');
  if (before.frontController !== after.frontController) routeKeys.push('front_controller');
  if (!isDeepStrictEqual(before.php.extensions, after.php.extensions)) routeKeys.push('php.extensions');
  if (routeKeys.length > 0) steps.push({ kind: 'update-route', app: after, keys: routeKeys });

  const frontKeys: string[] = [];
  if (!isDeepStrictEqual(before.fastcgi.listen, after.fastcgi.listen)) frontKeys.push('fastcgi.listen');
  if (!isDeepStrictEqual(before.fastcgi.allowedClients, after.fastcgi.allowedClients)) frontKeys.push('fastcgi.allowed_clients');
  // The FastCGI front checks scripts against the document root and extensions it was built with.
  if (after.fastcgi.listen && (before.documentRoot !== after.documentRoot || !isDeepStrictEqual(before.php.extensions, after.php.extensions))) {
    frontKeys.push('document_root');
  }
  if (frontKeys.length > 0) steps.push({ kind: 'replace-fastcgi-front', app: after, keys: frontKeys });

  const logKeys: string[] = [];
  if (!isDeepStrictEqual(before.accessLog, after.accessLog)) logKeys.push('access_log');
  if (!isDeepStrictEqual(before.slowLog, after.slowLog)) logKeys.push('slow_log');
  if (logKeys.length > 0) steps.push({ kind: 'update-logs', app: after, keys: logKeys });
  return steps;
}

/** The whole plan from the running config to a new one. */
export function planReload(before: Config, after: Config): ReloadPlan {
  const steps: PlanStep[] = [];
  for (const [key, why] of RESTART_KEYS) {
    if (!isDeepStrictEqual(before.server[key], after.server[key])) steps.push({ kind: 'restart-required', key: `server.${serverKeyName(key)}`, why });
  }
  const serverKeys = (Object.keys(after.server) as Array<keyof ServerConfig>)
    .filter((key) => !RESTART_KEYS.some(([k]) => k === key))
    .filter((key) => !isDeepStrictEqual(before.server[key], after.server[key]))
    .map((key) => `server.${serverKeyName(key)}`);
  if (before.workersDir !== after.workersDir) serverKeys.push('workers.directory');
  if (before.debounceMs !== after.debounceMs) serverKeys.push('file_watcher.debounce_ms');
  if (serverKeys.length > 0) steps.push({ kind: 'update-server', keys: serverKeys });

  const old = new Map(before.apps.map((app) => [app.name, app]));
  const next = new Map(after.apps.map((app) => [app.name, app]));
  for (const name of old.keys()) if (!next.has(name)) steps.push({ kind: 'remove-app', name });
  for (const [name, app] of next) {
    const previous = old.get(name);
    if (!previous) steps.push({ kind: 'add-app', app });
    else steps.push(...diffApp(previous, app));
  }
  return { steps, empty: steps.length === 0 };
}

function serverKeyName(key: keyof ServerConfig): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`).replace(/_ms$/, '_seconds').replace(/_bytes$/, '_size');
}

/** One line per step, for the log. */
export function describePlan(plan: ReloadPlan): string[] {
  return plan.steps.map((step) => {
    switch (step.kind) {
      case 'restart-required':
        return `${step.key} changed but needs a restart to apply (${step.why})`;
      case 'update-server':
        return `server settings updated: ${step.keys.join(', ')}`;
      case 'add-app':
        return `app ${step.app.name} added at ${step.app.path}`;
      case 'remove-app':
        return `app ${step.name} removed`;
      case 'update-route':
        return `app ${step.app.name}: routing updated (${step.keys.join(', ')})`;
      case 'resize-pool':
        return `app ${step.app.name}: pool changed in place (${step.keys.join(', ')})`;
      case 'replace-backend':
        return `app ${step.app.name}: new ${step.app.phpFpm.enabled ? 'php-fpm' : 'php-cgi'} backend started, the old one drained (${step.keys.join(', ')})`;
      case 'replace-fastcgi-front':
        return `app ${step.app.name}: FastCGI front replaced (${step.keys.join(', ')})`;
      case 'update-logs':
        return `app ${step.app.name}: log files reopened as configured (${step.keys.join(', ')})`;
      default: {
        const never: never = step;
        return String(never);
      }
    }
  });
}
