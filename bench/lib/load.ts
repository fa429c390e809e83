// A closed-loop load generator: N callers each send a request, wait for its end, and send the next,
// for a warm-up and then a number of measuring windows. Reports rates, latency percentiles and the
// CPU this process spent, which on a small machine competes with the server being measured.

import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { median, percentileOfSorted, sortedCopy, spreadPct } from './stats.js';

export interface LoadPlan {
  /** Requests in flight at any time. */
  readonly concurrency: number;
  readonly warmupMs: number;
  /** Length of one measuring window; the rate is the median over windows. */
  readonly windowMs: number;
  readonly windows: number;
}

export interface LoadResult {
  /** Median over windows of completed requests per second. */
  readonly requestsPerSec: number;
  readonly spreadPct: number;
  /** Latency percentiles over every request completed inside a window (milliseconds). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly completed: number;
  readonly errors: number;
  readonly firstError: Error | null;
  /** CPU time of this process (user + system) over the measuring windows, in percent of one core. */
  readonly cpuPct: number;
}

/** Sends one request and settles when it has ended (rejects on failure). */
export type Send = () => Promise<void>;

/**
 * Runs `send` in a closed loop. A request counts in the window it completes in; requests completing
 * during the warm-up or after the last window are not counted (those after are still awaited).
 */
export async function closedLoop(send: Send, plan: LoadPlan): Promise<LoadResult> {
  const start = performance.now();
  const measureStart = start + plan.warmupMs;
  const measureEnd = measureStart + plan.windowMs * plan.windows;
  const counts = new Array<number>(plan.windows).fill(0);
  const latenciesMs: number[] = [];
  let errors = 0;
  let firstError: Error | null = null;
  let stopping = false;

  let cpuAtStart: NodeJS.CpuUsage | null = null;
  let cpuStartedAt = 0;
  const cpuTimer = setTimeout(() => {
    cpuStartedAt = performance.now();
    cpuAtStart = process.cpuUsage();
  }, plan.warmupMs);
  let cpuPct = Number.NaN;
  const stopTimer = setTimeout(() => {
    stopping = true;
    if (cpuAtStart) {
      const used = process.cpuUsage(cpuAtStart);
      cpuPct = ((used.user + used.system) / 1000 / (performance.now() - cpuStartedAt)) * 100;
    }
  }, measureEnd - start);

  const caller = async (): Promise<void> => {
    while (!stopping) {
      const sentAt = performance.now();
      let failed = false;
      try {
        await send();
      } catch (error) {
        failed = true;
        errors += 1;
        firstError ??= error instanceof Error ? error : new Error(String(error));
        // A request that fails without I/O (a closed client) settles in a microtask: yield, or the
        // loop would starve the timer that ends it.
        await yieldToEventLoop();
      }
      const endedAt = performance.now();
      if (failed || endedAt < measureStart || endedAt >= measureEnd) continue;
      counts[Math.floor((endedAt - measureStart) / plan.windowMs)]! += 1;
      latenciesMs.push(endedAt - sentAt);
    }
  };
  try {
    await Promise.all(Array.from({ length: plan.concurrency }, caller));
  } finally {
    clearTimeout(cpuTimer);
    clearTimeout(stopTimer);
  }

  const rates = counts.map((count) => count / (plan.windowMs / 1000));
  const sorted = sortedCopy(latenciesMs);
  return {
    requestsPerSec: median(rates),
    spreadPct: spreadPct(rates),
    p50Ms: percentileOfSorted(sorted, 50),
    p99Ms: percentileOfSorted(sorted, 99),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
    completed: latenciesMs.length,
    errors,
    firstError,
    cpuPct,
  };
}
