// From wrk samples to the side-by-side tables (pure): medians over rounds per workload and contender,
// ratios to the baseline contender, and the pivot tables of ratios that docs/benchmarks.md shows.

import { median, spreadPct } from './stats.js';
import type { Column, Extra, Row } from './section.js';

/** One wrk run against one contender, with the gateway's CPU and memory over that run. */
export interface Sample {
  readonly requestsPerSec: number;
  readonly requests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly errorText: string;
  /** Gateway CPU seconds (user + system) used during the run. */
  readonly cpuSec: number;
  /** Gateway resident memory at the start of the run, and its peak during the run. */
  readonly startRssBytes: number;
  readonly peakRssBytes: number;
}

/** Everything measured for one workload on one contender. */
export interface Cell {
  readonly workloadId: string;
  readonly workloadLabel: string;
  readonly contenderId: string;
  readonly contenderLabel: string;
  readonly connections: number;
  /** Bytes per request behind the MB/s figure, or null where MB/s means nothing. */
  readonly payloadBytes: number | null;
  readonly samples: readonly Sample[];
  /** Why the contender was not measured (start failure, a wrong answer, no round with figures), or null. */
  readonly failure: string | null;
  /** Rounds that gave no figures while others did, or null. */
  readonly notes: string | null;
}

const MiB = 1024 * 1024;

/** The columns of both side-by-side sections' main tables. */
export const SIDE_BY_SIDE_COLUMNS: readonly Column[] = [
  { key: 'workload', label: 'workload' },
  { key: 'connections', label: 'conns' },
  { key: 'requestsPerSec', label: 'req/s' },
  { key: 'rpsRatio', label: 'req/s ×', digits: 2 },
  { key: 'p50Ms', label: 'p50 ms', digits: 2 },
  { key: 'p50Ratio', label: 'p50 ×', digits: 2 },
  { key: 'p99Ms', label: 'p99 ms', digits: 2 },
  { key: 'p99Ratio', label: 'p99 ×', digits: 2 },
  { key: 'mbPerSec', label: 'MB/s' },
  { key: 'cpuUsPerRequest', label: 'gateway CPU µs/req', digits: 1 },
  { key: 'peakRssMiB', label: 'peak RSS MiB', digits: 1 },
  { key: 'rssGrowthMiB', label: 'RSS growth MiB', digits: 1 },
  { key: 'errors', label: 'errors' },
  { key: 'spreadPct', label: 'spread %', digits: 1 },
];

interface Summary {
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  peakRssMiB: number;
  rssGrowthMiB: number;
  errors: number;
  spreadPct: number;
}

function summarize(samples: readonly Sample[]): Summary | null {
  if (samples.length === 0) return null;
  return {
    requestsPerSec: median(samples.map((s) => s.requestsPerSec)),
    p50Ms: median(samples.map((s) => s.p50Ms)),
    p99Ms: median(samples.map((s) => s.p99Ms)),
    cpuUsPerRequest: median(samples.map((s) => (s.requests > 0 ? (s.cpuSec / s.requests) * 1e6 : Number.NaN))),
    peakRssMiB: Math.max(...samples.map((s) => s.peakRssBytes)) / MiB,
    // A peak below the start (memory given back during the round) is no growth.
    rssGrowthMiB: Math.max(0, ...samples.map((s) => s.peakRssBytes - s.startRssBytes)) / MiB,
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
    spreadPct: spreadPct(samples.map((s) => s.requestsPerSec)),
  };
}

const ratio = (value: number | undefined, base: number | undefined) =>
  value === undefined || base === undefined || !(base > 0) || !Number.isFinite(value) ? null : value / base;

/**
 * One row per (workload, contender), in the order of `cells`: medians over the rounds, and ratios
 * to the baseline contender's medians for the same workload. Rows keep workloadId, contenderId and
 * failure as values too, for the targets and the chart.
 */
export function sideBySideRows(cells: readonly Cell[], baselineId: string): Row[] {
  const summaries = new Map(cells.map((cell) => [`${cell.workloadId}/${cell.contenderId}`, summarize(cell.samples)]));
  return cells.map((cell) => {
    const own = summaries.get(`${cell.workloadId}/${cell.contenderId}`) ?? null;
    const base = summaries.get(`${cell.workloadId}/${baselineId}`) ?? null;
    return {
      case: cell.contenderLabel,
      values: {
        workload: cell.workloadLabel,
        workloadId: cell.workloadId,
        contenderId: cell.contenderId,
        connections: cell.connections,
        requestsPerSec: own?.requestsPerSec ?? null,
        rpsRatio: ratio(own?.requestsPerSec, base?.requestsPerSec),
        p50Ms: own?.p50Ms ?? null,
        p50Ratio: ratio(own?.p50Ms, base?.p50Ms),
        p99Ms: own?.p99Ms ?? null,
        p99Ratio: ratio(own?.p99Ms, base?.p99Ms),
        mbPerSec: own && cell.payloadBytes !== null ? (own.requestsPerSec * cell.payloadBytes) / 1e6 : null,
        cpuUsPerRequest: own?.cpuUsPerRequest ?? null,
        peakRssMiB: own?.peakRssMiB ?? null,
        rssGrowthMiB: own?.rssGrowthMiB ?? null,
        errors: own?.errors ?? null,
        spreadPct: own?.spreadPct ?? null,
        rounds: cell.samples.length,
        failure: cell.failure,
        errorText: [...cell.samples.map((s) => s.errorText), cell.notes ?? ''].filter(Boolean).join('; ') || null,
      },
    };
  });
}

/** A row's number, or undefined when it is missing or not a number. */
export function num(row: Row | undefined, key: string): number | undefined {
  const value = row?.values[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

export function findRow(rows: readonly Row[], workloadId: string, contenderId: string): Row | undefined {
  return rows.find((row) => row.values.workloadId === workloadId && row.values.contenderId === contenderId);
}

/**
 * A pivot of one ratio: a row per contender, a column per (workload, metric). Contenders and
 * workloads appear in the order they first appear in `rows`.
 */
export function ratioPivot(rows: readonly Row[], title: string, description: string, metrics: ReadonlyArray<{ key: string; label: string; digits?: number }>): Extra {
  const workloads = [...new Map(rows.map((row) => [String(row.values.workloadId), String(row.values.workload)])).entries()];
  const contenders = [...new Map(rows.map((row) => [String(row.values.contenderId), row.case])).entries()];
  const columns: Column[] = [];
  for (const [workloadId, workloadLabel] of workloads) {
    for (const metric of metrics) columns.push({ key: `${workloadId}.${metric.key}`, label: metrics.length > 1 ? `${workloadLabel}: ${metric.label}` : workloadLabel, digits: metric.digits ?? 2 });
  }
  const pivotRows: Row[] = contenders.map(([contenderId, label]) => {
    const values: Record<string, number | null> = {};
    for (const [workloadId] of workloads) {
      const row = findRow(rows, workloadId, contenderId);
      for (const metric of metrics) values[`${workloadId}.${metric.key}`] = num(row, metric.key) ?? null;
    }
    return { case: label, values };
  });
  return { title, caseLabel: 'contender', description, columns, rows: pivotRows };
}

/** Cells without figures (and why) or with failed requests (wrk's words); null when there are none. */
export function problemsTable(rows: readonly Row[]): Extra | null {
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value.replace(/\s+/g, ' ').slice(0, 400) : null);
  const problems = rows.filter((row) => text(row.values.failure) !== null || text(row.values.errorText) !== null);
  if (problems.length === 0) return null;
  return {
    title: 'Problems',
    caseLabel: 'contender',
    description:
      'Cells without figures (the contender did not start, or answered the check request wrongly) and cells where wrk ' +
      'counted failed requests (socket errors, timeouts, non-2xx/3xx answers) over all rounds.',
    columns: [
      { key: 'workload', label: 'workload' },
      { key: 'problem', label: 'what happened' },
    ],
    rows: problems.map((row) => ({ case: row.case, values: { workload: row.values.workload ?? null, problem: text(row.values.failure) ?? text(row.values.errorText) } })),
  };
}
