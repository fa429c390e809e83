// Caddy in front of php-fpm for the side-by-side sections: a generated Caddyfile (pure) using
// php_fastcgi, as Caddy's documentation recommends for PHP, with its state kept in a temp dir.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary, freePort } from '../../test/helpers/peers.js';
import type { BenchProcess, Scope } from './processes.js';

export interface CaddySite {
  readonly dir: string;
  readonly port: number;
  readonly documentRoot: string;
  /** php-fpm's unix socket. */
  readonly phpFpmSocket: string;
}

/**
 * The Caddyfile: no admin endpoint, no automatic HTTPS, loopback only. php_fastcgi brings Caddy's
 * PHP defaults (try_files {path} {path}/index.php index.php, split .php); file_server serves the rest.
 * Pure.
 */
export function caddyfile(site: CaddySite): string {
  return [
    '{',
    '  admin off',
    '  auto_https off',
    `  storage file_system ${join(site.dir, 'storage')}`,
    '}',
    `http://127.0.0.1:${site.port} {`,
    '  bind 127.0.0.1',
    `  root * ${site.documentRoot}`,
    `  php_fastcgi unix/${site.phpFpmSocket}`,
    '  file_server',
    '}',
    '',
  ].join('\n');
}

export interface RunningCaddy {
  readonly port: number;
  readonly process: BenchProcess;
}

/** Writes the Caddyfile into `dir` and starts `caddy run` on a free port. */
export async function startCaddy(scope: Scope, dir: string, name: string, site: Omit<CaddySite, 'dir' | 'port'>): Promise<RunningCaddy> {
  const binary = findBinary(['caddy']);
  const port = await freePort();
  const file = join(dir, 'Caddyfile');
  await writeFile(file, caddyfile({ ...site, dir, port }));
  // HOME and XDG_*: Caddy keeps its data and autosaved config there; keep it inside the temp dir.
  const env = { PATH: process.env.PATH ?? '', HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
  const proc = scope.spawn(name, binary, ['run', '--config', file, '--adapter', 'caddyfile'], { env, cwd: dir });
  await proc.waitForListening({ host: '127.0.0.1', port });
  return { port, process: proc };
}
