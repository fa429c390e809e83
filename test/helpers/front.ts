// The fronts end to end: temp project trees (server.yaml + workers/NAME/) built from the fixture
// site, TQServer started in-process or as the real CLI in a child process, and HTTP clients that
// send exactly the bytes a test means (node:http for ordinary requests, raw sockets where an HTTP
// client would normalise the request).

import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TQServer } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import { memoryLogger, type LogRecord } from '../../src/log.js';
import type { PoolStats } from '../../src/supervisor/worker-pool.js';
import { PhpCgiBackend } from '../../src/supervisor/php-cgi-backend.js';
import { tempDir } from './peers.js';

/** The fixture site every test app serves (test/fixtures/apps/site/public in the source tree). */
export const SITE_FIXTURE = fileURLToPath(new URL('../../../test/fixtures/apps/site/public', import.meta.url));
/** The repository root (for the CLI and the repository's own config). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');

/**
 * Files no request may ever read, written into every copied site at test time (some cannot live in
 * git: a .git folder). Each holds a marker a test looks for in every response body.
 */
export const SECRET_MARKER = 'SECRET-SOURCE-MARKER';
export const SECRET_FILES: Readonly<Record<string, string>> = {
  '.env': `DB_PASSWORD=${SECRET_MARKER}-env\n`,
  '.git/config': `[core]\n\t# ${SECRET_MARKER}-git\n`,
  '.git/HEAD': `ref: refs/heads/${SECRET_MARKER}\n`,
  '.htaccess': `# ${SECRET_MARKER}-htaccess\nDeny from all\n`,
  '.user.ini': `; ${SECRET_MARKER}-user-ini\nshort_open_tag=Off\n`,
  'index.php~': `<?php // ${SECRET_MARKER}-tilde\n`,
  'index.php.bak': `<?php // ${SECRET_MARKER}-bak\n`,
  'config.php.old': `<?php // ${SECRET_MARKER}-old\n`,
  '.index.php.swp': `b0VIM ${SECRET_MARKER}-swp\n`,
  'index.php.swp': `b0VIM ${SECRET_MARKER}-swp2\n`,
  'source.phps': `<?php // ${SECRET_MARKER}-phps\n`,
  'lib.inc': `<?php // ${SECRET_MARKER}-inc\n`,
  'page.phtml': `<?php // ${SECRET_MARKER}-phtml\n`,
  'uploads/.hidden.php': `<?php echo "${SECRET_MARKER}-hidden-ran";\n`,
};

export interface AppSpec {
  name: string;
  /** worker.yaml text. */
  worker: string;
  /** Copy the fixture site into public/ (default true). */
  site?: boolean;
}

export interface Project {
  root: string;
  /** Absolute document root of an app. */
  docRoot(app: string): string;
  cleanup(): Promise<void>;
}

/** A temp project: config/server.yaml (when given) and workers/NAME/{config/worker.yaml,public/}. */
export async function makeProject(options: { server?: string; apps: AppSpec[] }): Promise<Project> {
  const dir = await tempDir('tqserver-front-');
  const root = dir.path;
  if (options.server !== undefined) {
    mkdirSync(join(root, 'config'), { recursive: true });
    writeFileSync(join(root, 'config', 'server.yaml'), options.server);
  }
  for (const app of options.apps) {
    const folder = join(root, 'workers', app.name);
    mkdirSync(join(folder, 'config'), { recursive: true });
    writeFileSync(join(folder, 'config', 'worker.yaml'), app.worker);
    const publicDir = join(folder, 'public');
    if (app.site ?? true) {
      cpSync(SITE_FIXTURE, publicDir, { recursive: true });
      for (const [name, text] of Object.entries(SECRET_FILES)) {
        mkdirSync(join(publicDir, name, '..'), { recursive: true });
        writeFileSync(join(publicDir, name), text);
      }
    } else {
      mkdirSync(publicDir, { recursive: true });
    }
  }
  return { root, docRoot: (app) => join(root, 'workers', app, 'public'), cleanup: dir.cleanup };
}

/** server.yaml for tests: loopback, port 0 (the kernel picks), no log file unless given. */
export function serverYaml(extra: Record<string, string | number | null> = {}): string {
  const lines = ['server:', '  host: 127.0.0.1', '  port: 0'];
  const settings: Record<string, string | number | null> = { log_file: null, ...extra };
  for (const [key, value] of Object.entries(settings)) lines.push(`  ${key}: ${value === null ? '~' : typeof value === 'number' ? value : JSON.stringify(value)}`);
  return `${lines.join('\n')}\n`;
}

/** worker.yaml with a static pool of `max_workers` php-cgi processes, php.env, and any extra top-level YAML. */
export function workerYaml(path: string, pool: Record<string, string | number> = {}, options: { env?: Record<string, string>; extra?: string } = {}): string {
  const settings: Record<string, string | number> = { manager: 'static', max_workers: 2, ...pool };
  const env = Object.entries(options.env ?? {});
  return [
    `path: ${path}`,
    'php:',
    '  settings:',
    '    display_errors: "0"',
    '    log_errors: "1"',
    ...(env.length > 0 ? ['  env:', ...env.map(([key, value]) => `    ${key}: ${JSON.stringify(value)}`)] : []),
    '  pool:',
    ...Object.entries(settings).map(([key, value]) => `    ${key}: ${value}`),
    options.extra ?? '',
    '',
  ].join('\n');
}

export interface RunningFront {
  server: TQServer;
  port: number;
  records: LogRecord[];
  find: (pattern: RegExp | string) => LogRecord | undefined;
  stop(): Promise<void>;
}

const runningFronts = new Set<TQServer>();
process.once('exit', () => {
  // A test process that ends without stopping its TQServer must not leave php-cgi processes behind.
  for (const server of runningFronts) {
    for (const runtime of server.apps.values()) {
      if (!(runtime.backend instanceof PhpCgiBackend)) continue;
      for (const worker of runtime.backend.pool.workerStats()) {
        try {
          if (worker.pid) process.kill(worker.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
});

/** Loads the project's config and starts TQServer in this process with a memory logger. */
export async function startFront(root: string): Promise<RunningFront> {
  const config = loadConfig({ root });
  const { log, records, find } = memoryLogger('info');
  const server = await TQServer.start(config, log);
  runningFronts.add(server);
  const port = server.http.address!.port;
  return {
    server,
    port,
    records,
    find,
    stop: async () => {
      await server.stop(2000);
      runningFronts.delete(server);
    },
  };
}

/** A pool's stats, waited for until `predicate` holds (on worker state changes, never by polling a clock). */
export function waitForPool(front: RunningFront, app: string, predicate: (stats: PoolStats) => boolean, timeoutMs = 10_000): Promise<PoolStats> {
  const runtime = front.server.apps.get(app);
  if (!runtime) throw new Error(`no app ${app}`);
  if (!(runtime.backend instanceof PhpCgiBackend)) throw new Error(`app ${app} does not run on php-cgi workers`);
  return runtime.backend.pool.waitFor(predicate, timeoutMs);
}

export interface Reply {
  status: number;
  statusMessage: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
  json<T = Record<string, any>>(): T;
}

export interface RequestSpec {
  method?: string;
  /** Sent exactly as given (node:http does not normalise it). */
  path: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  /** Write the body with Transfer-Encoding: chunked in these pieces. */
  chunks?: Array<Buffer | string>;
}

function toReply(response: http.IncomingMessage, body: Buffer): Reply {
  return {
    status: response.statusCode ?? 0,
    statusMessage: response.statusMessage ?? '',
    headers: response.headers,
    rawHeaders: response.rawHeaders,
    body,
    text: body.toString('utf8'),
    json() {
      try {
        return JSON.parse(body.toString('utf8'));
      } catch {
        throw new Error(`not JSON (status ${response.statusCode}): ${body.toString('utf8').slice(0, 500)}`);
      }
    },
  };
}

/** One request on a fresh connection; resolves with the whole response. */
export function request(port: number, spec: RequestSpec, host = '127.0.0.1'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...spec.headers };
    if (spec.body !== undefined && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(spec.body);
    if (spec.chunks) headers['transfer-encoding'] = 'chunked';
    const req = http.request({ host, port, method: spec.method ?? 'GET', path: spec.path, headers, agent: false }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (chunk: Buffer) => parts.push(chunk));
      response.on('end', () => resolve(toReply(response, Buffer.concat(parts))));
      response.on('error', reject);
    });
    req.on('error', reject);
    if (spec.chunks) {
      for (const chunk of spec.chunks) req.write(chunk);
      req.end();
    } else {
      req.end(spec.body);
    }
  });
}

export const get = (port: number, path: string, headers?: http.OutgoingHttpHeaders) => request(port, { path, headers });

/** One parsed response from a raw byte stream. */
export interface RawResponse {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
  header(name: string): string | undefined;
  body: Buffer;
}

/**
 * Parses every complete HTTP/1.x response in `data` (bodies by Content-Length, chunked, or to the end
 * when neither is given; HEAD-style empty bodies for 1xx/204/304). `headRequests` marks responses to HEAD.
 */
export function parseResponses(data: Buffer, headRequests: ReadonlySet<number> = new Set()): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const lines = data.subarray(at, end).toString('latin1').split('\r\n');
    const statusLine = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (!statusLine) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const headers: Array<[string, string]> = lines.slice(1).map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    });
    const header = (name: string) => headers.find(([n]) => n === name)?.[1];
    const status = Number(statusLine[1]);
    let bodyStart = end + 4;
    let body: Buffer;
    const length = header('content-length');
    if (headRequests.has(out.length) || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = Buffer.alloc(0);
    } else if (header('transfer-encoding')?.toLowerCase() === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) throw new Error('truncated chunked body');
        const size = parseInt(data.subarray(bodyStart, lineEnd).toString('latin1'), 16);
        bodyStart = lineEnd + 2;
        if (size === 0) {
          bodyStart = data.indexOf('\r\n', bodyStart) + 2;
          break;
        }
        parts.push(data.subarray(bodyStart, bodyStart + size));
        bodyStart += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (length !== undefined) {
      body = data.subarray(bodyStart, bodyStart + Number(length));
      bodyStart += Number(length);
    } else {
      body = data.subarray(bodyStart);
      bodyStart = data.length;
    }
    out.push({ status, reason: statusLine[2] ?? '', headers, header, body });
    at = bodyStart;
  }
  return out;
}

/**
 * Writes `bytes` on a new connection and collects everything until the server closes it (send
 * "Connection: close" on the last request). Resolves with the raw bytes and the parsed responses.
 */
export function rawRequest(port: number, bytes: string | Buffer, options: { timeoutMs?: number; headRequests?: ReadonlySet<number> } = {}): Promise<{ raw: Buffer; responses: RawResponse[]; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const parts: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection within ${options.timeoutMs ?? 10_000} ms; got ${JSON.stringify(Buffer.concat(parts).toString('latin1').slice(0, 500))}`));
    }, options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => parts.push(chunk));
    socket.on('error', () => {
      // A reset after the response (the server closing on a request it refused) is still an answer.
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(parts);
      resolve({ raw, responses: parseResponses(raw, options.headRequests), text: raw.toString('latin1') });
    });
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

/** A raw GET with Connection: close, the target written byte for byte. */
export async function rawGet(port: number, target: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const host = Object.keys(headers).some((name) => name.toLowerCase() === 'host') ? [] : ['Host: localhost'];
  const lines = [`GET ${target} HTTP/1.1`, ...host, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''];
  const { responses, text } = await rawRequest(port, lines.join('\r\n'));
  if (responses.length !== 1) throw new Error(`expected one response to GET ${target}, got ${responses.length}: ${text.slice(0, 300)}`);
  return responses[0]!;
}

// ---- the CLI as a child process ----

export interface CliProcess {
  child: ChildProcess;
  pid: number;
  /** stdout + stderr so far. */
  output(): string;
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Waits until `pattern` (one line's worth, no nested repetition) has matched `count` times in all. */
  waitForCount(pattern: RegExp, count: number, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

const cliChildren = new Set<ChildProcess>();
process.once('exit', () => {
  // A failing test must not leave a TQServer behind: kill what is still running, by PID.
  for (const child of cliChildren) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Runs `node dist/src/cli.js ...args` (cwd: the repository) and captures its output. */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const listener of [...listeners]) listener();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  cliChildren.add(child);
  child.once('exit', () => cliChildren.delete(child));
  /** Resolves with the first non-null result of `test`, tried now and after each output chunk. */
  const waitFor = <T>(test: () => T | null, what: string, timeoutMs: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const result = test();
        if (result !== null) {
          cleanup();
          resolve(result);
        }
      };
      const onExit = () => {
        cleanup();
        reject(new Error(`the CLI exited before printing ${what}; output:\n${text.slice(-3000)}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`the CLI did not print ${what} within ${timeoutMs} ms; output:\n${text.slice(-3000)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(check);
        child.off('close', onExit);
      };
      listeners.add(check);
      child.once('close', onExit);
      check();
    });
  return {
    child,
    pid: child.pid!,
    output: () => text,
    waitForOutput(pattern, timeoutMs = 15_000) {
      return waitFor(() => pattern.exec(text), String(pattern), timeoutMs);
    },
    async waitForCount(pattern, count, timeoutMs = 15_000) {
      const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
      await waitFor(() => ((text.match(global)?.length ?? 0) >= count ? true : null), `${pattern} ${count} times`, timeoutMs);
    },
    exited,
    kill: (signal = 'SIGTERM') => child.kill(signal),
  };
}

/** Starts the CLI on a project and waits for its "listening on" line; returns the port. */
/**
 * Stops a CLI the way an operator does: SIGTERM, and SIGKILL only if it has not exited within
 * graceMs (the last resort: a SIGKILLed TQServer leaves its temp folders behind).
 */
export async function stopCli(cli: CliProcess, graceMs = 20_000): Promise<void> {
  cli.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  if ((await Promise.race([cli.exited, late])) === 'late') {
    cli.kill('SIGKILL');
    await cli.exited;
  }
  clearTimeout(timer);
}

export async function startCli(root: string, extraArgs: string[] = [], env?: NodeJS.ProcessEnv): Promise<CliProcess & { port: number }> {
  const cli = runCli(['--root', root, ...extraArgs], { env });
  try {
    const match = await cli.waitForOutput(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    return Object.assign(cli, { port: Number(match[1]) });
  } catch (error) {
    cli.kill('SIGKILL');
    await cli.exited;
    throw error;
  }
}

/** Resident memory (VmRSS) and its high-water mark (VmHWM) of a process, in bytes, from /proc. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The status page as JSON (with ?full: a row per process). */
export async function statusJson(port: number, full = true): Promise<{ pools: Array<Record<string, any>> }> {
  const reply = await get(port, `/status?json${full ? '&full' : ''}`);
  if (reply.status !== 200) throw new Error(`status page answered ${reply.status}: ${reply.text}`);
  return reply.json();
}
