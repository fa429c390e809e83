// Describes the machine a run happened on, so published figures say where they came from.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { findBinary } from '../../test/helpers/peers.js';

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly kernel: string;
  readonly node: string;
  /** First line of `php-fpm -v`, or why it is unknown. */
  readonly php: string;
  /** 1-minute load average when the run started: above ~0.5 something else was using the CPUs. */
  readonly loadAverage: number;
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: osName(),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    php: phpVersion(),
    loadAverage: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

function osName(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release);
    if (pretty) return pretty[1]!;
  } catch {
    // not Linux, or no os-release: fall back to what Node knows
  }
  return `${os.type()} ${os.release()}`;
}

function phpVersion(): string {
  try {
    const binary = findBinary(['php-fpm', /^php-fpm\d+(\.\d+)?$/]);
    const text = execFileSync(binary, ['-v'], { encoding: 'utf8', timeout: 5000 });
    return text.split('\n')[0]!.trim();
  } catch (error) {
    return `unknown (${error instanceof Error ? error.message : String(error)})`;
  }
}
