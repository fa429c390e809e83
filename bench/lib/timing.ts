// Runs a synchronous operation for a fixed time after a warm-up, several times, and reports the
// median rate. Operations run in calibrated batches so reading the clock costs almost nothing.

import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { median, spreadPct } from './stats.js';

/** How long to warm up, how long each measured run lasts, and how many runs. */
export interface TimingPlan {
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly repeats: number;
}

/** Median rates over the runs, and how far apart the runs were. */
export interface Throughput {
  readonly opsPerSec: number;
  readonly bytesPerSec: number;
  readonly spreadPct: number;
  readonly runs: number;
}

/** An operation: does one unit of work and returns how many bytes it processed. */
export type Operation = () => number;

/** A batch should take about this long, so the clock is read about a thousand times a second. */
const TARGET_BATCH_NS = 1_000_000n;
const MAX_BATCH = 1 << 20;

/**
 * Measures `op`: calibrates a batch size, warms up for plan.warmupMs (so the JIT has optimized it),
 * then runs plan.repeats windows of plan.durationMs and reports the median. Yields to the event
 * loop between windows so a Ctrl-C is handled within one window.
 */
export async function measureThroughput(op: Operation, plan: TimingPlan): Promise<Throughput> {
  const batch = calibrate(op);
  runFor(op, batch, plan.warmupMs);
  const opsRates: number[] = [];
  const byteRates: number[] = [];
  for (let i = 0; i < plan.repeats; i++) {
    await yieldToEventLoop();
    const run = runFor(op, batch, plan.durationMs);
    opsRates.push(run.ops / run.seconds);
    byteRates.push(run.bytes / run.seconds);
  }
  return { opsPerSec: median(opsRates), bytesPerSec: median(byteRates), spreadPct: spreadPct(byteRates), runs: plan.repeats };
}

/** Doubles the batch until one batch takes about TARGET_BATCH_NS. */
function calibrate(op: Operation): number {
  let batch = 1;
  for (;;) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) op();
    if (process.hrtime.bigint() - start >= TARGET_BATCH_NS || batch >= MAX_BATCH) return batch;
    batch *= 2;
  }
}

function runFor(op: Operation, batch: number, durationMs: number): { ops: number; bytes: number; seconds: number } {
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(durationMs * 1e6));
  let ops = 0;
  let bytes = 0;
  let now = start;
  do {
    for (let i = 0; i < batch; i++) bytes += op();
    ops += batch;
    now = process.hrtime.bigint();
  } while (now < deadline);
  return { ops, bytes, seconds: Number(now - start) / 1e9 };
}
