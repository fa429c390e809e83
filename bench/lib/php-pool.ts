// The one PHP setup every side-by-side contender gets: 4 PHP processes (php-fpm pm = static with 4
// children, or 4 php-cgi processes), the same ini settings, the same script directory. The php-fpm pool
// mirrors what TQServer generates from worker.yaml (src/fpm/fpm-config.ts), so the only difference
// between contenders is the gateway in front of PHP.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary, isRoot } from '../../test/helpers/peers.js';
import type { BenchProcess, Scope } from './processes.js';
import { repoPath } from './paths.js';

/** pm.max_children, and the number of php-cgi processes. */
export const PHP_CHILDREN = 4;

/** The scripts every contender serves (bench/php): the document root. */
export const DOCUMENT_ROOT = repoPath('bench', 'php');

/**
 * ini settings for every PHP process, on top of the distribution's php.ini. post_max_size: the 10 MiB
 * upload must reach php://input (PHP drops bodies over post_max_size, 8M by default). The cgi.* pair
 * is what TQServer sets for both of its backends (docs/config.md).
 */
export const PHP_SETTINGS: Readonly<Record<string, string>> = {
  'cgi.fix_pathinfo': '1',
  'cgi.discard_path': '1',
  post_max_size: '64M',
  memory_limit: '256M',
};

/** The php-fpm config (global section and one pool) TQServer would generate for the same pool. Pure. */
export function phpFpmConfig(dir: string, listen: string): string {
  const lines = [
    '[global]',
    `pid = ${join(dir, 'php-fpm.pid')}`,
    `error_log = ${join(dir, 'php-fpm.log')}`,
    'log_level = notice',
    'daemonize = no',
    '',
    '[bench]',
    `listen = ${listen}`,
    'listen.backlog = 511',
    'listen.mode = 0660',
    ...(isRoot ? ['user = root', 'group = root'] : []),
    'pm = static',
    `pm.max_children = ${PHP_CHILDREN}`,
    'pm.max_requests = 0',
    `chdir = ${DOCUMENT_ROOT}`,
    'catch_workers_output = yes',
    'decorate_workers_output = no',
    'clear_env = yes',
    'security.limit_extensions = .php',
    `env[PATH] = ${process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'}`,
    ...Object.entries(PHP_SETTINGS).map(([name, value]) => `php_admin_value[${name}] = ${value}`),
    '',
  ];
  return lines.join('\n');
}

/** Starts php-fpm (pm static, 4 children) on a unix socket in `dir`; returns the socket path. */
export async function startPhpFpm(scope: Scope, dir: string, name: string): Promise<{ socket: string; master: BenchProcess }> {
  const binary = findBinary(['php-fpm', /^php-fpm\d+(\.\d+)?$/]);
  const socket = join(dir, 'php-fpm.sock');
  const file = join(dir, 'php-fpm.conf');
  await writeFile(file, phpFpmConfig(dir, socket), { mode: 0o600 });
  // -O copies the log to stderr, where "ready" is awaited (the log itself goes to a file: php-fpm
  // cannot open /proc/self/fd/2 when stderr is a socket, as Node's pipes are).
  const master = scope.spawn(name, binary, ['-F', '-O', '-y', file, ...(isRoot ? ['-R'] : [])], { stopSignal: 'SIGQUIT' });
  await master.waitForOutput('ready to handle connections');
  await master.waitForListening({ path: socket });
  return { socket, master };
}

/**
 * Starts PHP_CHILDREN `php-cgi -b` processes, one unix socket each, as TQServer runs its workers:
 * PHP_FCGI_CHILDREN=0 (no forking), PHP_FCGI_MAX_REQUESTS=0 (no self-recycling), the same settings.
 */
export async function startPhpCgis(scope: Scope, dir: string, name: string): Promise<string[]> {
  const binary = findBinary(['php-cgi', /^php-cgi\d+(\.\d+)?$/]);
  const settings = Object.entries(PHP_SETTINGS).flatMap(([key, value]) => ['-d', `${key}=${value}`]);
  const env = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', PHP_FCGI_CHILDREN: '0', PHP_FCGI_MAX_REQUESTS: '0' };
  const sockets = Array.from({ length: PHP_CHILDREN }, (_, i) => join(dir, `php-cgi-${i + 1}.sock`));
  await Promise.all(
    sockets.map(async (socket, i) => {
      const proc = scope.spawn(`${name} php-cgi ${i + 1}`, binary, ['-b', socket, ...settings], { env, cwd: DOCUMENT_ROOT });
      await proc.waitForListening({ path: socket });
    }),
  );
  return sockets;
}
