// The processes and temp dirs a benchmark starts, and how they are stopped: a Scope owns them and
// stops them in reverse order, by PID, with every descendant (php-fpm's children, nginx's workers),
// also on Ctrl-C (through cleanup.ts) and when the bench process exits on an error.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Address } from '../../src/fastcgi/address.js';
import { waitForListening } from '../../test/helpers/peers.js';
import { onCleanup } from './cleanup.js';
import { descendants, isSameProcess, type ProcStat } from './proc.js';

/** How much of a process's output is kept for error reports. */
const OUTPUT_KEEP_CHARS = 64 * 1024;

const live = new Set<BenchProcess>();
process.once('exit', () => {
  // Last resort (an uncaught error, process.exit): SIGKILL by PID whatever is still running.
  for (const proc of live) proc.killNow();
});

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** The signal that asks it to stop gracefully (php-fpm and nginx: SIGQUIT). Default SIGTERM. */
  readonly stopSignal?: NodeJS.Signals;
}

/** A started process: its PID, its output so far, and a stop that takes its descendants along. */
export class BenchProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly #stopSignal: NodeJS.Signals;
  readonly #exited: Promise<void>;
  readonly #listeners = new Set<() => void>();
  #output = '';
  #stopping: Promise<void> | null = null;

  constructor(name: string, command: string, args: readonly string[], options: SpawnOptions = {}) {
    this.name = name;
    this.#stopSignal = options.stopSignal ?? 'SIGTERM';
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
    if (this.child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
    this.pid = this.child.pid;
    live.add(this);
    this.#exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.child.once('exit', () => live.delete(this));
    this.child.once('error', (error) => this.#append(`\n[bench] ${name}: ${error.message}\n`));
    const onData = (chunk: Buffer) => this.#append(chunk.toString('utf8'));
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /**
   * Waits until `address` accepts connections; on failure the error carries the end of the
   * process's output, which says why (a config error, a port in use).
   */
  async waitForListening(address: Address, timeoutMs = 15_000): Promise<void> {
    try {
      await waitForListening(address, this.child, timeoutMs);
    } catch (error) {
      const output = this.#output.trim().slice(-3000);
      throw new Error(`${this.name}: ${error instanceof Error ? error.message : String(error)}${output ? `; its output:\n${output}` : ' (no output)'}`);
    }
  }

  /** What the process wrote to stdout and stderr (the last 64 KiB). */
  output(): string {
    return this.#output;
  }

  /** Resolves once the output contains `text`; rejects when the process exits first or after `timeoutMs`. */
  waitForOutput(text: string, timeoutMs = 15_000): Promise<void> {
    if (this.#output.includes(text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (error: Error | null) => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        this.child.off('exit', onExit);
        if (error) reject(error);
        else resolve();
      };
      const check = () => {
        if (this.#output.includes(text)) done(null);
      };
      const onExit = () => done(new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${JSON.stringify(text)}; output:\n${this.#output.slice(-2000)}`));
      const timer = setTimeout(() => done(new Error(`${this.name} did not print ${JSON.stringify(text)} within ${timeoutMs} ms; output:\n${this.#output.slice(-2000)}`)), timeoutMs);
      this.#listeners.add(check);
      this.child.once('exit', onExit);
    });
  }

  /**
   * Sends the stop signal, SIGKILL after `graceMs`, waits for the exit; then SIGKILLs any descendant
   * (as found just before the signal) still running after a short grace. Idempotent.
   */
  stop(graceMs = 5000): Promise<void> {
    this.#stopping ??= this.#stop(graceMs);
    return this.#stopping;
  }

  async #stop(graceMs: number): Promise<void> {
    const tree = this.exited ? [] : descendants(this.pid);
    if (!this.exited) {
      this.child.kill(this.#stopSignal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.#exited;
      clearTimeout(timer);
    }
    await reapOrKill(tree, Math.min(graceMs, 2000));
  }

  /** SIGKILL now, with every descendant; synchronous, for the exit handler. */
  killNow(): void {
    if (this.exited) return;
    const tree = descendants(this.pid);
    this.child.kill('SIGKILL');
    for (const stat of tree) if (isSameProcess(stat)) process.kill(stat.pid, 'SIGKILL');
  }

  #append(text: string): void {
    this.#output += text;
    if (this.#output.length > 2 * OUTPUT_KEEP_CHARS) this.#output = this.#output.slice(-OUTPUT_KEEP_CHARS);
    for (const listener of this.#listeners) listener();
  }
}

/** Waits up to `graceMs` for the processes to exit on their own, then SIGKILLs the rest by PID. */
async function reapOrKill(tree: readonly ProcStat[], graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  let left = tree.filter(isSameProcess);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    left = left.filter(isSameProcess);
  }
  for (const stat of left) {
    try {
      process.kill(stat.pid, 'SIGKILL');
    } catch {
      // exited in between
    }
  }
}

/**
 * Owns what one benchmark section starts. Steps run in reverse order on close(); a Ctrl-C runs them
 * too, with short graces. close() is idempotent.
 */
export class Scope {
  readonly #steps: Array<(fast: boolean) => Promise<void>> = [];
  readonly #unregister: () => void;
  #closing: Promise<void> | null = null;

  constructor() {
    this.#unregister = onCleanup(() => this.close(true));
  }

  /** Adds a step to run on close. */
  defer(step: (fast: boolean) => Promise<void>): void {
    this.#steps.push(step);
  }

  /** A private temp dir, removed on close. */
  async tempDir(prefix: string): Promise<string> {
    const path = await mkdtemp(join(tmpdir(), prefix));
    this.defer(() => rm(path, { recursive: true, force: true }));
    return path;
  }

  /** Starts a process that close() stops (gracefully, or within a second on Ctrl-C). */
  spawn(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): BenchProcess {
    const proc = new BenchProcess(name, command, args, options);
    this.defer((fast) => proc.stop(fast ? 1000 : 5000));
    return proc;
  }

  close(fast = false): Promise<void> {
    this.#closing ??= (async () => {
      this.#unregister();
      for (const step of this.#steps.reverse()) {
        try {
          await step(fast);
        } catch (error) {
          process.stderr.write(`[bench] cleanup step failed: ${error instanceof Error ? error.message : String(error)}\n`);
        }
      }
    })();
    return this.#closing;
  }
}
