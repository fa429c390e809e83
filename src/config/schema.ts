// The YAML files as operators write them (server.yaml, worker.yaml): keys, types, defaults and the
// rules between keys, validated once with zod. Key names follow php-fpm's vocabulary where one exists.

import { z } from 'zod';
import { ClientAllowList } from '../fastcgi/allow-list.js';
import { parseAddress } from '../fastcgi/address.js';
import { TrustedProxies } from '../http/forwarded.js';
import { formatIniSetting } from '../php/binary.js';
import { parseDuration, parseSize } from './units.js';

/**
 * The longest delay a Node timer takes: setTimeout() turns anything longer into 1 ms (with only a
 * TimeoutOverflowWarning), so a "forever" timeout would fire at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration: integer seconds or a string with a unit (500ms, 10s, 2m); output in milliseconds. */
export const duration = (what = 'a duration') =>
  z.unknown().transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === null) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be ${what} (seconds, or a number with ms, s, m or h), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    if (ms > MAX_TIMER_MS) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be at most 24 days (${MAX_TIMER_MS} ms), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });

/** A size: bytes, or a string with K, M or G (powers of 1024); output in bytes. */
export const size = () =>
  z.unknown().transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === null || !Number.isSafeInteger(bytes)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be a size (bytes, or a number with K, M or G), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return bytes;
  });

/** Seconds given as a plain number, bounded so they still fit a Node timer in milliseconds. */
const seconds = () => z.number().positive().max(Math.floor(MAX_TIMER_MS / 1000));

const scalar = z.union([z.string(), z.number(), z.boolean()]);

/** Runs a checker that throws with a message; the message becomes the issue. */
function checkedBy<T>(check: (value: T) => void) {
  return (value: T, ctx: z.RefinementCtx) => {
    try {
      check(value);
    } catch (error) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (error as Error).message });
    }
  };
}

/** A FastCGI address; a bare port may be written as a YAML number (listen: 9001), as in php-fpm. */
const address = z
  .union([z.string().min(1), z.number().int()])
  .transform((value) => String(value))
  .superRefine(checkedBy((value: string) => parseAddress(value)));

const allowedClients = z
  .union([z.array(z.string().min(1)), z.literal('any')])
  .superRefine(checkedBy((value: readonly string[] | 'any') => value !== 'any' && new ClientAllowList(value)));

const iniSettings = z.record(scalar).superRefine((settings, ctx) => {
  for (const [name, value] of Object.entries(settings)) {
    try {
      formatIniSetting(name, value);
    } catch (error) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: (error as Error).message.replace(/^ini setting [^:]+: /, '') });
    }
  }
});

const envVars = z.record(scalar).superRefine((env, ctx) => {
  for (const [name, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: 'is not a valid environment variable name' });
    // A process environment cannot hold NUL (spawn refuses it), and no FastCGI param should.
    else if (typeof value === 'string' && value.includes('\0')) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [name], message: 'must not contain a NUL character' });
  }
});

/**
 * A URL prefix as the router sees it: requests are matched after normalisation, which merges
 * slashes and removes dot segments, so a prefix with "//", "." or ".." could never match.
 */
const urlPath = z
  .string()
  .refine((p) => p.startsWith('/'), { message: 'must start with /' })
  .refine((p) => !/[?#\s%\\\x00-\x1f\x7f]/.test(p) && !p.replace(/\/$/, '').split('/').slice(1).some((s) => s === '.' || s === '..' || s === ''), {
    message: 'must be a plain URL path (no ?, #, %, \\, spaces, control characters, empty, . or .. segments)',
  });

/** A file name in the document root: one segment for an index file, a relative path otherwise. */
const docFile = (oneSegment: boolean) =>
  z
    .string()
    .min(1)
    .superRefine((name, ctx) => {
      const fail = (message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, message });
      if (oneSegment && name.includes('/')) return fail('must be a file name, without /');
      const segments = name.replace(/^\/+/, '').split('/');
      if (name.includes('\0') || !segments.every((segment) => segment !== '' && !segment.startsWith('.'))) {
        fail('must stay inside the document root (no empty, hidden, . or .. segments)');
      }
    });

export const serverFileSchema = z
  .object({
    server: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        read_timeout_seconds: seconds().default(30),
        write_timeout_seconds: seconds().default(30),
        idle_timeout_seconds: seconds().default(120),
        log_file: z.string().nullable().default('logs/tqserver_{date}.log'),
        log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
        status_path: urlPath.default('/status'),
        metrics_path: urlPath.default('/metrics'),
        admin_allowed_clients: allowedClients.default(['127.0.0.0/8', '::1']),
        admin_listen: address.nullable().default(null),
        trusted_proxies: z
          .array(z.string().min(1))
          .superRefine(checkedBy((value: readonly string[]) => new TrustedProxies(value)))
          .default([]),
        max_body_size: size().default('100M'),
        request_buffering: z.boolean().default(true),
        body_buffer_size: size().default('128K'),
        max_header_size: size().default('16K'),
        shutdown_timeout_seconds: z.number().min(0).max(Math.floor(MAX_TIMER_MS / 1000)).default(30),
        // Dev mode only (--mode dev); production ignores it.
        live_reload: z.boolean().default(true),
      })
      .strict()
      .default({}),
    workers: z
      .object({
        directory: z.string().min(1).default('workers'),
      })
      .strict()
      .default({}),
    file_watcher: z
      .object({
        debounce_ms: z.number().int().min(0).max(MAX_TIMER_MS).default(50),
      })
      .strict()
      .default({}),
  })
  .strict();

/** php-fpm's pool directive names, accepted in php.pool as aliases of ours. */
export const PHP_FPM_POOL_ALIASES: Readonly<Record<string, string>> = {
  pm: 'manager',
  'pm.max_children': 'max_workers',
  'pm.start_servers': 'start_workers',
  'pm.min_spare_servers': 'min_workers',
  'pm.max_spare_servers': 'max_spare_workers',
  'pm.max_spawn_rate': 'max_spawn_rate',
  'pm.max_requests': 'max_requests',
  'pm.process_idle_timeout': 'idle_timeout',
  request_terminate_timeout: 'request_timeout',
};

/** Renames php-fpm's directive names to ours; giving both names for one setting is an error. */
function acceptPhpFpmNames(value: unknown, ctx: z.RefinementCtx): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(value as Record<string, unknown>)) {
    const ours = PHP_FPM_POOL_ALIASES[key];
    if (ours === undefined) {
      if (!(key in out)) out[key] = entry;
      continue;
    }
    if (ours in (value as Record<string, unknown>)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `sets the same as ${ours}; keep one of the two` });
      continue;
    }
    out[ours] = entry;
  }
  return out;
}

export const poolSchema = z.preprocess(acceptPhpFpmNames, z
  .object({
    manager: z.enum(['static', 'dynamic', 'ondemand']).default('dynamic'),
    max_workers: z.number().int().min(1).default(10),
    start_workers: z.number().int().min(0).default(3),
    min_workers: z.number().int().min(0).default(2),
    max_spare_workers: z.number().int().min(0).default(5),
    max_spawn_rate: z.number().int().min(1).default(32),
    max_requests: z.number().int().min(0).default(1000),
    idle_timeout: duration().default('10s'),
    request_timeout: duration().default('30s'),
    queue_limit: z.number().int().min(0).default(512),
    queue_timeout: duration().default('30s'),
    max_worker_memory: size().nullable().default(null),
    transport: z.enum(['unix', 'tcp']).default('unix'),
    port_range: z.tuple([z.number().int().min(1).max(65535), z.number().int().min(1).max(65535)]).default([9100, 9199]),
  })
  .strict()
  .superRefine((pool, ctx) => {
    const fail = (key: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message });
    // zod runs this even when a count already failed its own check (2.5, -1); relations between
    // broken values would only repeat the problem in other words.
    const counts = [pool.max_workers, pool.start_workers, pool.min_workers, pool.max_spare_workers];
    const countsValid = counts.every((n) => Number.isInteger(n) && n >= 0) && pool.max_workers >= 1;
    const portsValid = pool.port_range.every((n) => Number.isInteger(n) && n >= 1 && n <= 65535);
    if (pool.manager === 'dynamic' && countsValid) {
      if (pool.max_workers < pool.min_workers) fail('max_workers', `must be >= min_workers (${pool.min_workers}), got ${pool.max_workers}`);
      if (pool.max_spare_workers < pool.min_workers) fail('max_spare_workers', `must be >= min_workers (${pool.min_workers}), got ${pool.max_spare_workers}`);
      if (pool.start_workers < pool.min_workers || pool.start_workers > pool.max_spare_workers) {
        fail('start_workers', `must be between min_workers (${pool.min_workers}) and max_spare_workers (${pool.max_spare_workers}), got ${pool.start_workers}`);
      }
      if (pool.start_workers > pool.max_workers) fail('start_workers', `must be <= max_workers (${pool.max_workers}), got ${pool.start_workers}`);
    }
    if (pool.transport === 'tcp' && countsValid && portsValid) {
      const [low, high] = pool.port_range;
      if (high < low) fail('port_range', `must be [low, high] with low <= high, got [${low}, ${high}]`);
      else if (high - low + 1 < pool.max_workers) fail('port_range', `has ${high - low + 1} ports but max_workers is ${pool.max_workers}`);
    }
  }));

export const workerFileSchema = z
  .object({
    path: urlPath,
    type: z.string().default('php').refine((t) => t === 'php', (t) => ({ message: `only php workers are supported (other types may come later), got ${JSON.stringify(t)}` })),
    enabled: z.boolean().default(true),
    document_root: z.string().min(1).default('public'),
    index_files: z.array(docFile(true)).default(['index.php', 'index.html']),
    front_controller: docFile(false).nullable().default('index.php'),
    php: z
      .object({
        binary: z.string().min(1).nullable().default(null),
        config_file: z.string().min(1).nullable().default(null),
        settings: iniSettings.default({}),
        env: envVars.default({}),
        extensions: z
          .array(z.string().regex(/^\.[A-Za-z0-9]+$/, 'must look like .php'))
          .min(1)
          .default(['.php']),
        pool: poolSchema.default({}),
        // Absent: logs/NAME_php_error_{date}.log in the project root (load.ts); null or "": the server log.
        error_log: z.string().nullable().optional(),
      })
      .strict()
      .default({}),
    fastcgi: z
      .object({
        listen: address.nullable().default(null),
        allowed_clients: allowedClients.default(['127.0.0.1', '::1']),
      })
      .strict()
      .default({}),
    // Absent paths: logs/NAME_access_{date}.log and logs/NAME_slow_{date}.log in the project root (load.ts).
    access_log: z
      .object({
        path: z.string().nullable().optional(),
        format: z.enum(['common', 'combined', 'json']).default('combined'),
      })
      .strict()
      .default({}),
    slow_log: z
      .object({
        threshold: duration().default('5s'),
        path: z.string().nullable().optional(),
      })
      .strict()
      .default({}),
    php_fpm: z
      .object({
        enabled: z.boolean().default(false),
        binary: z.string().min(1).nullable().default(null),
        listen: z.union([address, z.array(address).min(1)]).nullable().default(null),
        external: z.boolean().default(false),
        transport: z.enum(['unix', 'tcp']).default('unix'),
        pool_size: z.number().int().min(1).nullable().default(null),
        connect_timeout_ms: z.number().int().min(1).max(MAX_TIMER_MS).default(1000),
        request_timeout_ms: z.number().int().min(1).max(MAX_TIMER_MS).default(30_000),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((worker, ctx) => {
    // php-fpm refuses pm.min_spare_servers and pm.start_servers of 0 in dynamic mode.
    const pool = worker.php.pool;
    if (worker.php_fpm.enabled && !worker.php_fpm.external && pool.manager === 'dynamic') {
      for (const [key, value] of [
        ['min_workers', pool.min_workers],
        ['start_workers', pool.start_workers],
      ] as const) {
        if (value === 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['php', 'pool', key], message: 'must be at least 1 for a dynamic php-fpm pool (php-fpm refuses 0)' });
      }
    }
    if (worker.php_fpm.external && worker.php_fpm.listen === null) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['php_fpm', 'listen'], message: 'is required when php_fpm.external is true (where does php-fpm listen?)' });
    }
  });

export type ServerFile = z.output<typeof serverFileSchema>;
export type WorkerFile = z.output<typeof workerFileSchema>;
export type PoolFile = z.output<typeof poolSchema>;
