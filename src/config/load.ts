// Loads server.yaml and every workers/NAME/config/worker.yaml, validates them once, resolves paths,
// and returns one frozen Config, or every error found, each naming the file, the key and the problem.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { parseAddress, type Address } from '../fastcgi/address.js';
import { describeIssue } from './issues.js';
import { serverFileSchema, workerFileSchema, type ServerFile, type WorkerFile } from './schema.js';
import type { PmMode } from '../supervisor/pm.js';

export type Mode = 'dev' | 'prod';

export interface ServerConfig {
  host: string;
  port: number;
  readTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
  /** Absolute path with an optional {date} placeholder, or null for no log file. */
  logFile: string | null;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  statusPath: string;
  /** Prometheus exposition path. */
  metricsPath: string;
  /** Who may read status, metrics and health: addresses or CIDR ranges, or 'any'. */
  adminAllowedClients: readonly string[] | 'any';
  /** Serve status, metrics and health here instead of on the main port; null: the main port. */
  adminListen: Address | null;
  /** Peers whose X-Forwarded-For/-Proto/-Port are believed: addresses, CIDR ranges, `private_ranges`. */
  trustedProxies: readonly string[];
  maxBodyBytes: number;
  /** Read a request body completely before a PHP worker is taken (nginx's fastcgi_request_buffering). */
  requestBuffering: boolean;
  /** A buffered body larger than this waits in a private temp file instead of memory. */
  bodyBufferBytes: number;
  maxHeaderBytes: number;
  shutdownTimeoutMs: number;
  /** Browser live reload of pages in dev mode (ignored in production). */
  liveReload: boolean;
}

export interface PoolSettings {
  manager: PmMode;
  maxWorkers: number;
  startWorkers: number;
  minSpareWorkers: number;
  maxSpareWorkers: number;
  maxSpawnRate: number;
  maxRequests: number;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
  queueLimit: number;
  queueTimeoutMs: number;
  maxWorkerMemoryBytes: number;
  transport: 'unix' | 'tcp';
  portRange: readonly [number, number];
}

export interface AppConfig {
  /** The folder name under workers/. */
  name: string;
  /** Absolute folder of the app. */
  dir: string;
  /** The worker.yaml it came from (absolute). */
  file: string;
  /** URL prefix ("/blog", or "/" for the site root), without a trailing slash except for "/". */
  path: string;
  documentRoot: string;
  indexFiles: readonly string[];
  /** Script (relative to the document root) that pretty URLs fall back to, or null. */
  frontController: string | null;
  php: {
    binary: string | null;
    configFile: string | null;
    settings: Readonly<Record<string, string | number | boolean>>;
    env: Readonly<Record<string, string>>;
    extensions: readonly string[];
    pool: PoolSettings;
    /** Absolute path (optional {date}) for PHP's stderr and the php-cgi processes' output, or null for the server log. */
    errorLog: string | null;
  };
  /** Absolute path (optional {date}) of the access log, or null for none. */
  accessLog: { path: string | null; format: 'common' | 'combined' | 'json' };
  /** Requests at least thresholdMs long (0: off) go to path, or to the server log when path is null. */
  slowLog: { thresholdMs: number; path: string | null };
  fastcgi: { listen: Address | null; allowedClients: readonly string[] | 'any' };
  phpFpm: {
    enabled: boolean;
    binary: string | null;
    listen: readonly Address[];
    external: boolean;
    transport: 'unix' | 'tcp';
    poolSize: number | null;
    connectTimeoutMs: number;
    requestTimeoutMs: number;
  };
}

export interface Config {
  root: string;
  /** The server.yaml used, or null when built-in defaults apply. */
  configFile: string | null;
  mode: Mode;
  server: ServerConfig;
  workersDir: string;
  debounceMs: number;
  apps: readonly AppConfig[];
}

/** One problem in one file, at one key. */
export interface ConfigProblem {
  file: string;
  key: string;
  message: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(problem: ConfigProblem): string {
  return problem.key ? `${problem.file}: ${problem.key}: ${problem.message}` : `${problem.file}: ${problem.message}`;
}

export interface LoadOptions {
  root: string;
  configFile?: string | null;
  mode?: Mode;
}

/** Loads and validates everything; throws ConfigError listing every problem found. */
export function loadConfig(options: LoadOptions): Config {
  const root = resolve(options.root);
  const problems: ConfigProblem[] = [];
  const display = (file: string) => {
    const rel = relative(root, file);
    return rel.startsWith('..') ? file : rel;
  };

  const explicit = options.configFile != null;
  const configFile = options.configFile ? resolve(root, options.configFile) : join(root, 'config', 'server.yaml');
  let serverRaw: unknown = {};
  let usedFile: string | null = null;
  if (existsSync(configFile)) {
    usedFile = configFile;
    serverRaw = readYaml(configFile, display(configFile), problems) ?? {};
  } else if (explicit) {
    problems.push({ file: display(configFile), key: '', message: 'file not found (given with --config)' });
  }
  const serverFile = validate(serverFileSchema, serverRaw, display(configFile), problems);

  const server = serverFile ? serverConfig(serverFile, root) : null;
  // Workers are checked even when server.yaml has errors, so --check reports everything at once.
  const rawDir = (serverRaw as { workers?: { directory?: unknown } } | null)?.workers?.directory;
  const workersDir = resolve(root, serverFile?.workers.directory ?? (typeof rawDir === 'string' ? rawDir : 'workers'));
  const apps: AppConfig[] = [];
  {
    if (!isFolder(workersDir)) {
      problems.push({ file: display(configFile), key: 'workers.directory', message: `${display(workersDir)} is not a folder` });
    } else {
      for (const name of readdirSync(workersDir).sort()) {
        const dir = join(workersDir, name);
        const file = join(dir, 'config', 'worker.yaml');
        // A dangling symlink or an unreadable entry is not an app; statSync would throw past --check.
        if (!isFolder(dir) || !existsSync(file)) continue;
        const raw = readYaml(file, display(file), problems);
        if (raw === undefined) continue;
        const parsed = validate(workerFileSchema, raw ?? {}, display(file), problems);
        if (!parsed) {
          // The file has errors; still say whether its document root exists, so --check lists everything at once.
          const given = (raw as { document_root?: unknown; enabled?: unknown } | null) ?? {};
          if (given.enabled !== false && (given.document_root === undefined || typeof given.document_root === 'string')) {
            const documentRoot = resolve(dir, typeof given.document_root === 'string' ? given.document_root : 'public');
            if (!isFolder(documentRoot)) problems.push({ file: display(file), key: 'document_root', message: `${documentRoot} is not a folder` });
          }
          continue;
        }
        if (!parsed.enabled) continue;
        const app = appConfig(name, dir, file, parsed, display(file), problems, root);
        if (app) apps.push(app);
      }
    }
  }
  checkAcrossApps(apps, server, display, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze({
    root,
    configFile: usedFile,
    mode: options.mode ?? 'prod',
    server: server!,
    workersDir,
    debounceMs: serverFile!.file_watcher.debounce_ms,
    apps,
  });
}

function isFolder(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

function readYaml(file: string, shown: string, problems: ConfigProblem[]): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    problems.push({ file: shown, key: '', message: `cannot read: ${(error as Error).message}` });
    return undefined;
  }
  // With prettyErrors off the yaml package leaves linePos unset, so positions come from a LineCounter.
  const lines = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  if (document.errors.length > 0) {
    for (const error of document.errors) {
      const at = lines.linePos(error.pos[0]);
      problems.push({ file: shown, key: '', message: `YAML: line ${at.line} column ${at.col}: ${error.message.split('\n')[0]}` });
    }
    return undefined;
  }
  return document.toJS() ?? {};
}

function validate<S extends z.ZodTypeAny>(schema: S, raw: unknown, shown: string, problems: ConfigProblem[]): z.output<S> | null {
  const result = schema.safeParse(raw);
  if (result.success) return result.data as z.output<S>;
  for (const issue of result.error.issues) problems.push(...describeIssue(schema, issue, raw).map((p) => ({ file: shown, ...p })));
  return null;
}

function serverConfig(file: ServerFile, root: string): ServerConfig {
  const s = file.server;
  return {
    host: s.host,
    port: s.port,
    readTimeoutMs: Math.round(s.read_timeout_seconds * 1000),
    writeTimeoutMs: Math.round(s.write_timeout_seconds * 1000),
    idleTimeoutMs: Math.round(s.idle_timeout_seconds * 1000),
    logFile: s.log_file === null || s.log_file === '' ? null : resolve(root, s.log_file),
    logLevel: s.log_level,
    // The admin handler compares normalised request paths, which never end in "/" past the root.
    statusPath: s.status_path.length > 1 ? s.status_path.replace(/\/+$/, '') : s.status_path,
    metricsPath: s.metrics_path.length > 1 ? s.metrics_path.replace(/\/+$/, '') : s.metrics_path,
    adminAllowedClients: s.admin_allowed_clients,
    adminListen: s.admin_listen === null ? null : absoluteAddress(parseAddress(s.admin_listen), root),
    trustedProxies: s.trusted_proxies,
    maxBodyBytes: s.max_body_size,
    requestBuffering: s.request_buffering,
    bodyBufferBytes: s.body_buffer_size,
    maxHeaderBytes: s.max_header_size,
    shutdownTimeoutMs: Math.round(s.shutdown_timeout_seconds * 1000),
    liveReload: s.live_reload,
  };
}

function appConfig(name: string, dir: string, file: string, w: WorkerFile, shown: string, problems: ConfigProblem[], root: string): AppConfig | null {
  const before = problems.length;
  const fail = (key: string, message: string) => problems.push({ file: shown, key, message });
  const documentRoot = resolve(dir, w.document_root);
  if (!isFolder(documentRoot)) fail('document_root', `${documentRoot} is not a folder`);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(w.php.env)) env[key] = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
  const fastcgiListen = w.fastcgi.listen === null ? null : absoluteAddress(parseAddress(w.fastcgi.listen), dir);
  const fpmEntries = w.php_fpm.listen === null ? [] : Array.isArray(w.php_fpm.listen) ? w.php_fpm.listen : [w.php_fpm.listen];
  const fpmListen = fpmEntries.map((entry) => absoluteAddress(parseAddress(entry), dir));
  const pool = w.php.pool;
  if (problems.length > before) return null;
  return {
    name,
    dir,
    file,
    path: w.path.length > 1 ? w.path.replace(/\/+$/, '') : w.path,
    documentRoot,
    indexFiles: w.index_files,
    frontController: w.front_controller,
    php: {
      binary: w.php.binary === null ? null : w.php.binary.includes('/') ? resolve(dir, w.php.binary) : w.php.binary,
      configFile: w.php.config_file === null ? null : resolve(dir, w.php.config_file),
      settings: w.php.settings,
      env,
      extensions: w.php.extensions,
      pool: {
        manager: pool.manager,
        maxWorkers: pool.max_workers,
        startWorkers: pool.start_workers,
        minSpareWorkers: pool.min_workers,
        maxSpareWorkers: pool.max_spare_workers,
        maxSpawnRate: pool.max_spawn_rate,
        maxRequests: pool.max_requests,
        idleTimeoutMs: pool.idle_timeout,
        requestTimeoutMs: pool.request_timeout,
        queueLimit: pool.queue_limit,
        queueTimeoutMs: pool.queue_timeout,
        maxWorkerMemoryBytes: pool.max_worker_memory ?? 0,
        transport: pool.transport,
        portRange: pool.port_range,
      },
      errorLog: logPath(w.php.error_log, dir, join(root, 'logs', `${name}_php_error_{date}.log`)),
    },
    accessLog: { path: logPath(w.access_log.path, dir, join(root, 'logs', `${name}_access_{date}.log`)), format: w.access_log.format },
    slowLog: { thresholdMs: w.slow_log.threshold, path: logPath(w.slow_log.path, dir, join(root, 'logs', `${name}_slow_{date}.log`)) },
    fastcgi: { listen: fastcgiListen, allowedClients: w.fastcgi.allowed_clients },
    phpFpm: {
      enabled: w.php_fpm.enabled,
      binary: w.php_fpm.binary,
      listen: fpmListen,
      external: w.php_fpm.external,
      transport: w.php_fpm.transport,
      poolSize: w.php_fpm.pool_size,
      connectTimeoutMs: w.php_fpm.connect_timeout_ms,
      requestTimeoutMs: w.php_fpm.request_timeout_ms,
    },
  };
}

/**
 * An app's log file: absent means the default (in the project's logs/ folder, beside the server log),
 * null or "" means none, and a relative path resolves against the app's folder like every path in
 * worker.yaml.
 */
function logPath(value: string | null | undefined, dir: string, fallback: string): string | null {
  if (value === undefined) return fallback;
  if (value === null || value === '') return null;
  return resolve(dir, value);
}

function absoluteAddress(address: Address, dir: string): Address {
  if ('path' in address && !isAbsolute(address.path)) return { path: resolve(dir, address.path) };
  return address;
}

function checkAcrossApps(apps: AppConfig[], server: ServerConfig | null, display: (file: string) => string, problems: ConfigProblem[]): void {
  const byPath = new Map<string, AppConfig>();
  const byListen = new Map<string, AppConfig>();
  for (const app of apps) {
    const other = byPath.get(app.path);
    if (other) problems.push({ file: display(app.file), key: 'path', message: `${app.path} is also the path of ${display(other.file)}` });
    else byPath.set(app.path, app);
    // The status endpoints are answered before any app, so an app at or under status_path would be unreachable.
    if (server && !server.adminListen && (app.path === server.statusPath || app.path.startsWith(`${server.statusPath}/`))) {
      problems.push({ file: display(app.file), key: 'path', message: `${app.path} is shadowed by server.status_path ${server.statusPath}` });
    }
    // So are the metrics and health endpoints, at exactly their paths.
    const exact: Array<[string, string]> = server && !server.adminListen ? [[server.metricsPath, `server.metrics_path ${server.metricsPath}`], ['/healthz', 'the health endpoint /healthz'], ['/readyz', 'the readiness endpoint /readyz']] : [];
    for (const [path, what] of exact) if (app.path === path) problems.push({ file: display(app.file), key: 'path', message: `${app.path} is shadowed by ${what}` });
    if (app.fastcgi.listen) {
      const key = 'path' in app.fastcgi.listen ? app.fastcgi.listen.path : `${app.fastcgi.listen.host}:${app.fastcgi.listen.port}`;
      const taken = byListen.get(key);
      if (taken) problems.push({ file: display(app.file), key: 'fastcgi.listen', message: `${key} is also used by ${display(taken.file)}` });
      else byListen.set(key, app);
      if (server && 'port' in app.fastcgi.listen && app.fastcgi.listen.port === server.port && server.port !== 0) {
        problems.push({ file: display(app.file), key: 'fastcgi.listen', message: `port ${server.port} is the HTTP server's port (server.port)` });
      }
    }
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}
