// What Linux's /proc says about a process: CPU time, resident memory and its peak, children. The
// side-by-side sections read these for the gateway processes (TQServer's node, nginx's workers, caddy).

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/** Clock ticks per second, the unit of utime and stime in /proc/PID/stat (almost always 100). */
export const CLOCK_TICKS_PER_SEC: number = (() => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

export interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** User and system CPU time, in clock ticks. */
  readonly utimeTicks: number;
  readonly stimeTicks: number;
  /** When the process started, in clock ticks after boot: with the PID, it names one process for good. */
  readonly startTicks: number;
}

/**
 * Parses /proc/PID/stat (proc(5)). The command name (field 2) is in parentheses and may itself
 * contain spaces and parentheses, so the fields are counted from the last ")". Pure.
 */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error(`not a /proc/PID/stat line: ${JSON.stringify(text.slice(0, 80))}`);
  // After the name: field 3 (state) is index 0 here, so field N is index N - 3.
  const fields = text.slice(close + 2).trim().split(' ');
  const field = (n: number) => Number(fields[n - 3]);
  return { pid: Number(text.slice(0, open).trim()), ppid: field(4), utimeTicks: field(14), stimeTicks: field(15), startTicks: field(22) };
}

/** The process's stat, or null when it has exited. */
export function readStat(pid: number): ProcStat | null {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** User + system CPU seconds the processes used so far (exited ones count 0). */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readStat(pid);
    if (stat) ticks += stat.utimeTicks + stat.stimeTicks;
  }
  return ticks / CLOCK_TICKS_PER_SEC;
}

export interface Memory {
  /** VmRSS: resident now. */
  readonly rssBytes: number;
  /** VmHWM: the resident peak since start or since resetPeakRss(). */
  readonly peakBytes: number;
}

/** Reads VmRSS and VmHWM (kB in /proc/PID/status) from the status text. Pure. */
export function parseStatusMemory(text: string): Memory {
  const kB = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rssBytes: kB('VmRSS'), peakBytes: kB('VmHWM') };
}

/** The processes' memory, summed (exited ones count 0). */
export function memory(pids: readonly number[]): Memory {
  let rssBytes = 0;
  let peakBytes = 0;
  for (const pid of pids) {
    try {
      const m = parseStatusMemory(readFileSync(`/proc/${pid}/status`, 'utf8'));
      rssBytes += m.rssBytes;
      peakBytes += m.peakBytes;
    } catch {
      // exited
    }
  }
  return { rssBytes, peakBytes };
}

/**
 * Resets VmHWM to the current VmRSS ("5" to /proc/PID/clear_refs, Linux 4.0+), so the next peak is
 * the peak of what follows. Returns false where the kernel refuses (then VmHWM is the peak since start).
 */
export function resetPeakRss(pids: readonly number[]): boolean {
  let ok = true;
  for (const pid of pids) {
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, '5');
    } catch {
      ok = false;
    }
  }
  return ok;
}

/** Every live process below `pid` (children, their children, ...), found by scanning /proc. */
export function descendants(pid: number): ProcStat[] {
  const byParent = new Map<number, ProcStat[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const siblings = byParent.get(stat.ppid);
    if (siblings) siblings.push(stat);
    else byParent.set(stat.ppid, [stat]);
  }
  const found: ProcStat[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of byParent.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child.pid);
    }
  }
  return found;
}

/** True when `stat.pid` is still the process `stat` described (not exited, PID not reused). */
export function isSameProcess(stat: ProcStat): boolean {
  const now = readStat(stat.pid);
  return now !== null && now.startTicks === stat.startTicks;
}
