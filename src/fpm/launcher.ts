// Runs one php-fpm master for one app: writes the generated config into a private folder, starts
// `php-fpm -F -O -y`, forwards its log, waits until it accepts, restarts it with backoff when it
// dies, reloads it gracefully (SIGUSR2), and stops it with a signal ladder, orphans included.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { canConnect } from './probe.js';
import type { Address } from '../fastcgi/address.js';
import type { Logger } from '../log.js';
import type { PhpBinary } from '../php/binary.js';
import { dieWithParent } from '../supervisor/death-signal.js';
import { makeTempDir } from '../temp-dir.js';
import { renderGlobalConfig, renderPoolConfig, type FpmPoolInput } from './fpm-config.js';

export type MasterState = 'stopped' | 'starting' | 'running' | 'restarting' | 'stopping';

export interface FpmMasterOptions {
  app: string;
  binary: PhpBinary;
  /** The pool, minus what the launcher decides (listen path in its folder, version). */
  pool: Omit<FpmPoolInput, 'listen' | 'version'> & { listen: Address | null };
  log: Logger;
  /** Keep the generated files under this folder (dev mode) instead of a temp folder removed at stop. */
  keepDir?: string | null;
  processControlTimeoutMs: number;
  startTimeoutMs?: number;
  /** Longest wait between restarts of a master that keeps dying (it doubles from 500 ms). */
  restartBackoffMaxMs?: number;
}

export interface MasterEvents {
  state: [state: MasterState];
  up: [];
  down: [reason: string];
}

const READY = 'ready to handle connections';

export class FpmMaster extends EventEmitter<MasterEvents> {
  readonly app: string;
  readonly #options: FpmMasterOptions;
  readonly #log: Logger;
  #state: MasterState = 'stopped';
  #dir = '';
  #child: ChildProcess | null = null;
  #listen: Address | null = null;
  #backoffMs = 0;
  #restartTimer: NodeJS.Timeout | null = null;
  #readyWaiters: Array<(ok: boolean) => void> = [];
  #restarts = 0;
  #pool: FpmMasterOptions['pool'];

  constructor(options: FpmMasterOptions) {
    super();
    this.app = options.app;
    this.#options = options;
    this.#pool = options.pool;
    this.#log = options.log;
  }

  get state(): MasterState {
    return this.#state;
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  get listen(): Address {
    if (!this.#listen) throw new Error(`php-fpm for ${this.app} has not been started`);
    return this.#listen;
  }

  get configDir(): string {
    return this.#dir;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** The command a developer can run to reproduce this php-fpm. */
  get commandLine(): string {
    return [this.#options.binary.path, ...this.#args()].join(' ');
  }

  async start(): Promise<void> {
    if (this.#state !== 'stopped') throw new Error(`php-fpm for ${this.app} is ${this.#state}`);
    const keep = this.#options.keepDir;
    if (keep) {
      this.#dir = keep;
      await mkdir(join(keep, 'pool.d'), { recursive: true, mode: 0o700 });
      await chmod(keep, 0o700);
    } else {
      this.#dir = await makeTempDir(`fpm-${this.app}`);
      await mkdir(join(this.#dir, 'pool.d'), { mode: 0o700 });
    }
    this.#listen = this.#pool.listen ?? { path: join(this.#dir, 'php-fpm.sock') };
    await this.#writeConfig();
    this.#setState('starting');
    if (!(await this.#launch())) {
      const output = this.#lastOutput.join('\n');
      await this.stop(0);
      throw new Error(`php-fpm for ${this.app} did not start: ${output || 'no output'}`);
    }
  }

  /**
   * Rewrites the config and reloads php-fpm gracefully (SIGUSR2): children finish their requests
   * (within process_control_timeout), then the master re-executes itself with the new config on the
   * same socket. Resolves when it is ready again. The listen address stays the launcher's.
   */
  async reload(pool: Omit<FpmMasterOptions['pool'], 'listen'>): Promise<void> {
    this.#pool = { ...pool, listen: this.#pool.listen };
    await this.#writeConfig();
    if (this.#state !== 'running' || !this.#child?.pid) return;
    // The old children may take up to process_control_timeout to finish before the master re-executes.
    const ready = this.#waitReady(this.#options.processControlTimeoutMs + (this.#options.startTimeoutMs ?? 10_000));
    process.kill(this.#child.pid, 'SIGUSR2');
    if (!(await ready)) throw new Error(`php-fpm for ${this.app} did not come back after a reload`);
  }

  /** SIGUSR1: php-fpm reopens its log files. */
  reopenLogs(): void {
    if (this.#child?.pid) process.kill(this.#child.pid, 'SIGUSR1');
  }

  /**
   * Graceful stop: SIGQUIT (children finish their requests), then SIGTERM after graceMs, then
   * SIGKILL to the whole process group; the generated files are removed unless kept for dev.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    const child = this.#child;
    this.#setState('stopping');
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      this.#signalGroup(child, 'SIGQUIT');
      const ladder = [
        setTimeout(() => this.#signalGroup(child, 'SIGTERM'), graceMs),
        setTimeout(() => this.#signalGroup(child, 'SIGKILL'), graceMs + 2000),
      ];
      await exited;
      for (const timer of ladder) clearTimeout(timer);
    }
    // php-fpm's children outlive a master that was killed: end whatever is left of the group.
    if (child?.pid) this.#killGroup(child.pid);
    this.#child = null;
    this.#setState('stopped');
    if (!this.#options.keepDir && this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }

  // ---- internals ----

  #args(): string[] {
    const args = ['-F', '-O', '-y', join(this.#dir, 'php-fpm.conf')];
    // php-fpm refuses to run pools as root without -R; the pool runs as TQServer's own user.
    if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('-R');
    return args;
  }

  async #writeConfig(): Promise<void> {
    const main = renderGlobalConfig(
      {
        pidFile: join(this.#dir, 'php-fpm.pid'),
        errorLog: join(this.#dir, 'php-fpm.log'),
        processControlTimeoutMs: this.#options.processControlTimeoutMs,
        emergencyRestartThreshold: 10,
        emergencyRestartIntervalMs: 60_000,
      },
      join(this.#dir, 'pool.d', '*.conf'),
    );
    const pool = renderPoolConfig({ ...this.#pool, listen: this.#listen!, version: this.#options.binary.version });
    await writeFile(join(this.#dir, 'php-fpm.conf'), main, { mode: 0o600 });
    await writeFile(join(this.#dir, 'pool.d', `${this.#pool.name}.conf`), pool, { mode: 0o600 });
  }

  #lastOutput: string[] = [];

  /** Spawns the master and waits for "ready to handle connections" and a connectable socket. */
  async #launch(): Promise<boolean> {
    this.#lastOutput = [];
    const ready = this.#waitReady();
    // SIGTERM when TQServer dies: php-fpm's quick shutdown, which ends the children too (they do not
    // inherit the parent-death signal, and SIGKILL would orphan them).
    const env = { PATH: process.env.PATH ?? '' };
    const command = dieWithParent(this.#options.binary.path, this.#args(), 'SIGTERM', { env, log: this.#log });
    // Its own process group, so orphaned children of a killed master can be found and ended.
    const child = spawn(command.file, command.args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
    this.#child = child;
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (text) => this.#onLine(text));
    }
    child.once('exit', (code, signal) => this.#onExit(child, code, signal));
    child.once('error', (error) => {
      this.#log.error({ app: this.app }, `cannot run ${this.#options.binary.path}: ${error.message}`);
      this.#settleReady(false);
    });
    const ok = await ready;
    if (!ok) return false;
    // The log line comes before the socket accepts on some setups; check the socket too.
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 10_000);
    while (!(await canConnect(this.#listen!))) {
      if (Date.now() > deadline || this.#child !== child) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.#backoffMs = 0;
    this.#setState('running');
    this.emit('up');
    return true;
  }

  #waitReady(timeoutMs = this.#options.startTimeoutMs ?? 10_000): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#readyWaiters = this.#readyWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      const waiter = (ok: boolean) => {
        clearTimeout(timer);
        resolve(ok);
      };
      this.#readyWaiters.push(waiter);
    });
  }

  #settleReady(ok: boolean): void {
    for (const waiter of this.#readyWaiters.splice(0)) waiter(ok);
  }

  #onLine(text: string): void {
    if (!text.trim()) return;
    this.#lastOutput.push(text);
    if (this.#lastOutput.length > 20) this.#lastOutput.shift();
    if (text.includes(READY)) this.#settleReady(true);
    // php-fpm's lines look like "[22-Nov-2026 02:00:00] WARNING: [pool blog] ...".
    const level = /\] (ERROR|ALERT|EMERGENCY):/.test(text) ? 'error' : /\] WARNING:/.test(text) ? 'warn' : /\] NOTICE:/.test(text) ? 'info' : 'warn';
    this.#log[level]({ app: this.app, pid: this.#child?.pid, source: 'php-fpm' }, text.replace(/^\[[^\]]+\] /, ''));
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#settleReady(false);
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    // The master died on its own: its children may live on, holding the socket. End them, then restart.
    if (child.pid) this.#killGroup(child.pid);
    const reason = `php-fpm master pid ${child.pid} exited (${signal ?? `code ${code}`})`;
    this.#backoffMs = Math.min(Math.max(this.#backoffMs * 2, 500), this.#options.restartBackoffMaxMs ?? 30_000);
    this.#log.error({ app: this.app, pid: child.pid, code, signal }, `${reason}; restarting in ${this.#backoffMs} ms`);
    this.#setState('restarting');
    this.emit('down', reason);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#state !== 'restarting') return;
      this.#restarts += 1;
      void this.#launch().then((ok) => {
        if (!ok && this.#state === 'restarting' && this.#child?.exitCode === null) this.#signalGroup(this.#child, 'SIGKILL');
      });
    }, this.#backoffMs);
  }

  #signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
    if (!child.pid) return;
    try {
      // The master only: it passes the signal on to its children the way php-fpm intends.
      if (signal === 'SIGKILL') process.kill(-child.pid, signal);
      else process.kill(child.pid, signal);
    } catch {
      // already gone
    }
  }

  #killGroup(pgid: number): void {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // nothing left in the group
    }
  }

  #setState(state: MasterState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }
}
