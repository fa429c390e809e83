// Real peers for tests: php-cgi, php-fpm, nginx and cgi-fcgi started on loopback, free ports and temp
// dirs, waited for by state (a successful connect, a log line), and stopped by PID.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Address } from '../../src/fastcgi/address.js';

/** Folder of the PHP scripts tests run (test/fixtures/php in the source tree). */
export const PHP_FIXTURES = fileURLToPath(new URL('../../../test/fixtures/php/', import.meta.url)).replace(/\/$/, '');

const running = new Set<ChildProcess>();
process.once('exit', () => {
  // A failing test must not leave peers behind: kill what is still running, by PID.
  for (const child of running) if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
});

/** Finds an executable by exact name or pattern in PATH and the sbin directories. */
export function findBinary(names: ReadonlyArray<string | RegExp>): string {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin']) if (!dirs.includes(extra)) dirs.push(extra);
  for (const name of names) {
    for (const dir of dirs) {
      let entries: string[];
      try {
        entries = readdirSync(dir);
      } catch {
        continue;
      }
      const hits = typeof name === 'string' ? entries.filter((e) => e === name) : entries.filter((e) => name.test(e)).sort().reverse();
      for (const hit of hits) {
        try {
          accessSync(join(dir, hit), constants.X_OK);
          return join(dir, hit);
        } catch {
          // not executable
        }
      }
    }
  }
  throw new Error(`none of ${names.map(String).join(', ')} found in PATH or sbin; run \`npm test\`, which installs them`);
}

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A private temporary directory, removed by cleanup(). */
export async function tempDir(prefix = 'tqserver-test-'): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) };
}

/** A TCP port nothing listens on right now (the kernel's choice for port 0). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One connect attempt: resolves true when the address accepts a connection. */
export function canConnect(address: Address): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = 'path' in address ? net.connect({ path: address.path }) : net.connect({ host: address.host, port: address.port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Waits until `address` accepts connections, or the process exits, or `timeoutMs` passes. Each
 * attempt waits for the connect's own outcome; between refused attempts it yields briefly.
 */
export async function waitForListening(address: Address, child: ChildProcess | null, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`process ${child.pid} exited (${child.exitCode ?? child.signalCode}) before listening on ${describe(address)}`);
    }
    if (await canConnect(address)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`nothing listened on ${describe(address)} within ${timeoutMs} ms`);
}

function describe(address: Address): string {
  return 'path' in address ? address.path : `${address.host}:${address.port}`;
}

/** A started peer process. stop() sends `signal`, then SIGKILL after a grace period, and waits for exit. */
export interface Peer {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly address: Address;
  /** Everything the process wrote to stderr and stdout so far. */
  output(): string;
  /** Resolves when the output contains `text` (or matches it). */
  waitForOutput(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  cleanup: () => Promise<void>;
}

export function spawnPeer(
  command: string,
  args: string[],
  options: SpawnOptions & { address: Address; stopSignal?: NodeJS.Signals; cleanup?: () => Promise<void> },
): Peer {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  running.add(child);
  let text = '';
  const listeners = new Set<() => void>();
  const onText = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    if (text.length > 1_000_000) text = text.slice(-500_000);
    for (const listener of listeners) listener();
  };
  child.stdout?.on('data', onText);
  child.stderr?.on('data', onText);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => running.delete(child));
  const stopSignal = options.stopSignal ?? 'SIGTERM';
  return {
    process: child,
    pid: child.pid!,
    address: options.address,
    output: () => text,
    waitForOutput(pattern, timeoutMs = 10_000) {
      const matches = () => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));
      if (matches()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`${command} did not print ${String(pattern)} within ${timeoutMs} ms; output:\n${text.slice(-2000)}`));
        }, timeoutMs);
        const check = () => {
          if (matches()) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve();
          }
        };
        listeners.add(check);
      });
    },
    async stop(signal = stopSignal, graceMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      await options.cleanup?.();
    },
    cleanup: options.cleanup ?? (async () => {}),
  };
}

export interface PhpCgiOptions {
  /** 'tcp' (a free port on 127.0.0.1) or 'unix' (a socket in a temp dir). Default 'tcp'. */
  transport?: 'tcp' | 'unix';
  env?: Record<string, string>;
  /** Extra -d settings. */
  settings?: Record<string, string>;
}

/** Starts `php-cgi -b` with PHP_FCGI_CHILDREN=0 (one process) and recycling off, and waits until it accepts. */
export async function startPhpCgi(options: PhpCgiOptions = {}): Promise<Peer> {
  const binary = findBinary(['php-cgi', /^php-cgi\d+(\.\d+)?$/]);
  const dir = await tempDir('tqserver-php-cgi-');
  const address: Address = options.transport === 'unix' ? { path: join(dir.path, 'php-cgi.sock') } : { host: '127.0.0.1', port: await freePort() };
  const bind = 'path' in address ? address.path : `${address.host}:${address.port}`;
  const args = ['-b', bind];
  for (const [key, value] of Object.entries({ 'cgi.fix_pathinfo': '0', ...options.settings })) args.push('-d', `${key}=${value}`);
  const peer = spawnPeer(binary, args, {
    address,
    env: { PATH: process.env.PATH ?? '', PHP_FCGI_CHILDREN: '0', PHP_FCGI_MAX_REQUESTS: '0', ...options.env },
    cleanup: dir.cleanup,
  });
  await waitForListening(address, peer.process);
  return peer;
}

export interface PhpFpmOptions {
  transport?: 'tcp' | 'unix';
  /** Listen exactly here (e.g. to start php-fpm again where a test killed it); overrides transport. */
  address?: Address;
  /** Pool directives, e.g. { pm: 'static', 'pm.max_children': '4' }. */
  pool?: Record<string, string>;
}

/** Starts php-fpm in the foreground from a generated config and waits for "ready to handle connections". */
export async function startPhpFpm(options: PhpFpmOptions = {}): Promise<Peer> {
  const binary = findBinary(['php-fpm', /^php-fpm\d+(\.\d+)?$/]);
  const dir = await tempDir('tqserver-php-fpm-');
  const address: Address = options.address ?? (options.transport === 'unix' ? { path: join(dir.path, 'php-fpm.sock') } : { host: '127.0.0.1', port: await freePort() });
  const listen = 'path' in address ? address.path : `${address.host}:${address.port}`;
  const pool: Record<string, string> = {
    listen,
    pm: 'static',
    'pm.max_children': '2',
    'catch_workers_output': 'yes',
    'clear_env': 'no',
    ...options.pool,
  };
  if (isRoot) {
    pool.user = 'root';
    pool.group = 'root';
  }
  const config = [
    '[global]',
    `pid = ${join(dir.path, 'php-fpm.pid')}`,
    // php-fpm cannot open /proc/self/fd/2 when stderr is a socket (Node's pipes are): log to a file,
    // and -O (force stderr) copies the lines to stderr, where waitForOutput sees them.
    `error_log = ${join(dir.path, 'php-fpm.log')}`,
    'log_level = notice',
    'daemonize = no',
    '',
    '[test]',
    ...Object.entries(pool).map(([key, value]) => `${key} = ${value}`),
    '',
  ].join('\n');
  const file = join(dir.path, 'php-fpm.conf');
  await writeFile(file, config, { mode: 0o600 });
  const args = ['-F', '-O', '-y', file, ...(isRoot ? ['-R'] : [])];
  const peer = spawnPeer(binary, args, { address, stopSignal: 'SIGQUIT', cleanup: dir.cleanup });
  try {
    await peer.waitForOutput('ready to handle connections');
  } catch (error) {
    await peer.stop('SIGKILL');
    throw error;
  }
  await waitForListening(address, peer.process);
  return peer;
}

/** Starts nginx in the foreground with `http` block contents, on a free port; waits until it accepts. */
export async function startNginx(httpBlock: (port: number, dir: string) => string): Promise<Peer & { port: number; dir: string }> {
  const binary = findBinary(['nginx']);
  const dir = await tempDir('tqserver-nginx-');
  const port = await freePort();
  const config = [
    'daemon off;',
    'master_process on;',
    'worker_processes 1;',
    isRoot ? 'user root root;' : '',
    `pid ${join(dir.path, 'nginx.pid')};`,
    `error_log ${join(dir.path, 'error.log')} info;`,
    'events { worker_connections 1024; }',
    'http {',
    `  access_log off;`,
    `  client_body_temp_path ${join(dir.path, 'client_body')};`,
    `  fastcgi_temp_path ${join(dir.path, 'fastcgi')};`,
    `  proxy_temp_path ${join(dir.path, 'proxy')};`,
    `  uwsgi_temp_path ${join(dir.path, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir.path, 'scgi')};`,
    httpBlock(port, dir.path),
    '}',
    '',
  ].join('\n');
  const file = join(dir.path, 'nginx.conf');
  await writeFile(file, config);
  const address: Address = { host: '127.0.0.1', port };
  const peer = spawnPeer(binary, ['-p', dir.path, '-c', file, '-e', join(dir.path, 'error.log')], {
    address,
    stopSignal: 'SIGQUIT',
    cleanup: dir.cleanup,
  });
  await waitForListening(address, peer.process);
  return Object.assign(peer, { port, dir: dir.path });
}

/** Runs cgi-fcgi (libfcgi) as a FastCGI client: `env` becomes the params, `stdin` the body. */
export function runCgiFcgi(
  connect: Address,
  env: Record<string, string>,
  stdin: Buffer | string = '',
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const binary = findBinary(['cgi-fcgi']);
  const target = 'path' in connect ? connect.path : `${connect.host}:${connect.port}`;
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-bind', '-connect', target], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(child);
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cgi-fcgi did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.end(stdin);
  });
}

/** Splits a CGI response into its head (lower-cased header names) and body. */
export function parseCgiResponse(raw: Buffer): { headers: Map<string, string>; body: Buffer } {
  let end = raw.indexOf('\r\n\r\n');
  let skip = 4;
  if (end < 0) {
    end = raw.indexOf('\n\n');
    skip = 2;
  }
  if (end < 0) return { headers: new Map(), body: raw };
  const headers = new Map<string, string>();
  for (const line of raw.subarray(0, end).toString('latin1').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { headers, body: raw.subarray(end + skip) };
}
