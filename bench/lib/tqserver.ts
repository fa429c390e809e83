// TQServer for the side-by-side sections: a generated project (config/server.yaml and one app at "/"
// serving bench/php) in a temp dir, started as `node dist/src/cli.js --root DIR` on a free port.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../test/helpers/peers.js';
import { DOCUMENT_ROOT, PHP_CHILDREN, PHP_SETTINGS } from './php-pool.js';
import { repoPath } from './paths.js';
import type { BenchProcess, Scope } from './processes.js';

export interface TQServerProject {
  readonly dir: string;
  readonly port: number;
  /** Run the app on a php-fpm master TQServer manages (true) or on its own php-cgi pool (false). */
  readonly phpFpm: boolean;
  /** A FastCGI front for nginx on this unix socket, or null. */
  readonly fastcgiListen: string | null;
}

/**
 * The TQServer the bench runs: this checkout's build, or another build's dist/src/cli.js given in
 * TQSERVER_BENCH_CLI (to measure a fixed commit while src/ is being edited, or to compare builds).
 */
export const TQSERVER_CLI = process.env.TQSERVER_BENCH_CLI || repoPath('dist', 'src', 'cli.js');

/** JSON is YAML: every value is written as a JSON scalar, so paths need no YAML quoting rules. */
const y = (value: string | number | boolean) => JSON.stringify(value);

export function serverYaml(project: TQServerProject): string {
  return [
    'server:',
    '  host: 127.0.0.1',
    `  port: ${project.port}`,
    `  log_file: ${y(join(project.dir, 'logs', 'tqserver.log'))}`,
    '  log_level: info',
    'workers:',
    '  directory: workers',
    '',
  ].join('\n');
}

/**
 * The app: the same pool as every other contender (static, 4 PHP processes, never recycled), the
 * same ini settings; everything else at TQServer's defaults. Pure.
 */
export function workerYaml(project: TQServerProject): string {
  return [
    'path: /',
    `document_root: ${y(DOCUMENT_ROOT)}`,
    'php:',
    '  settings:',
    ...Object.entries(PHP_SETTINGS).map(([name, value]) => `    ${y(name)}: ${y(value)}`),
    '  pool:',
    '    manager: static',
    `    max_workers: ${PHP_CHILDREN}`,
    '    max_requests: 0',
    'php_fpm:',
    `  enabled: ${project.phpFpm}`,
    ...(project.fastcgiListen === null ? [] : ['fastcgi:', `  listen: ${y(project.fastcgiListen)}`]),
    '',
  ].join('\n');
}

export interface TQServerOptions {
  readonly phpFpm: boolean;
  readonly fastcgiFront: boolean;
  /** Write a V8 CPU profile (node --cpu-prof) into this directory when TQServer exits. */
  readonly profileDir: string | null;
  readonly profileName: string;
  /** Another build's dist/src/cli.js (bench/ab.ts compares builds); default TQSERVER_CLI. */
  readonly cli?: string;
  /** Extra node flags (e.g. --cpu-prof for one build only). */
  readonly nodeArgs?: readonly string[];
}

export interface RunningTQServer {
  readonly port: number;
  readonly process: BenchProcess;
  /** The FastCGI front's socket, when there is one. */
  readonly fastcgiSocket: string | null;
  readonly logFile: string;
}

export async function startTQServer(scope: Scope, dir: string, name: string, options: TQServerOptions): Promise<RunningTQServer> {
  const port = await freePort();
  const fastcgiSocket = options.fastcgiFront ? join(dir, 'fastcgi-front.sock') : null;
  const project: TQServerProject = { dir, port, phpFpm: options.phpFpm, fastcgiListen: fastcgiSocket };
  await mkdir(join(dir, 'config'), { recursive: true });
  await mkdir(join(dir, 'workers', 'bench', 'config'), { recursive: true });
  await writeFile(join(dir, 'config', 'server.yaml'), serverYaml(project));
  await writeFile(join(dir, 'workers', 'bench', 'config', 'worker.yaml'), workerYaml(project));
  const profile = options.profileDir ? ['--cpu-prof', '--cpu-prof-dir', options.profileDir, '--cpu-prof-name', `${options.profileName}.cpuprofile`] : [];
  const proc = scope.spawn(name, process.execPath, [...profile, ...(options.nodeArgs ?? []), options.cli ?? TQSERVER_CLI, '--root', dir], { cwd: dir });
  await proc.waitForListening({ host: '127.0.0.1', port }, 20_000);
  if (fastcgiSocket) await proc.waitForListening({ path: fastcgiSocket }, 20_000);
  return { port, process: proc, fastcgiSocket, logFile: join(dir, 'logs', 'tqserver.log') };
}
