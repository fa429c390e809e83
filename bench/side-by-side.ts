// The side-by-side sections (issues 5 and 8): TQServer against nginx and Caddy in front of the same
// PHP, every contender started here on loopback, loaded with wrk in alternation (A B C ... A B C) so
// drift on a shared machine spreads over all of them, medians and ratios to nginx with keep-alive.

import { BASELINE, CONTENDER_IDS, CONTENDERS, startContender, type ContenderId, type RunningContender } from './contenders.js';
import { renderChart, type ChartGroup } from './lib/chart.js';
import { wasInterrupted } from './lib/cleanup.js';
import { cpuSeconds, memory, resetPeakRss } from './lib/proc.js';
import { Scope } from './lib/processes.js';
import type { RunReport } from './lib/report.js';
import type { BenchOptions, Extra, Row, Section } from './lib/section.js';
import { findRow, num, problemsTable, ratioPivot, sideBySideRows, SIDE_BY_SIDE_COLUMNS, type Cell, type Sample } from './lib/side-by-side-rows.js';
import { checkTargets, targetsTable, type Target } from './lib/targets.js';
import { runWrk, writePostScript } from './lib/wrk.js';
import { probe, WORKLOAD_IDS, WORKLOADS, type Workload, type WorkloadId } from './workloads.js';

interface Plan {
  readonly rounds: number;
  readonly quick: boolean;
  /** One discarded wrk run per contender before the first round of each workload; 0 for none. */
  readonly warmupSec: number;
}

/** wrk's threads: one per core of the reference machine. */
const WRK_THREADS = 2;
/** wrk's per-request timeout: long enough that slow requests show in p99 instead of being dropped. */
const WRK_TIMEOUT_SEC = 10;

/**
 * Rounds of a full run. On a shared 2-core VM a round moves by 10 to 40 % with the neighbours'
 * load, for every contender alike; five rounds give the median two rounds of margin on each side.
 */
const FULL_ROUNDS = 5;

function planFor(options: BenchOptions): Plan {
  return options.quick ? { rounds: 1, quick: true, warmupSec: 0 } : { rounds: FULL_ROUNDS, quick: false, warmupSec: 1 };
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** One wrk run with the gateway's CPU time and memory peak around it. */
async function measure(contender: RunningContender, workload: Workload, plan: Plan, script: string | null): Promise<Sample> {
  const pids = contender.gatewayPids();
  resetPeakRss(pids);
  const before = memory(pids);
  const cpuBefore = cpuSeconds(pids);
  const wrk = await runWrk({
    url: `${contender.baseUrl}${workload.path}`,
    connections: workload.connections,
    threads: WRK_THREADS,
    durationSec: plan.quick ? workload.durationSec.quick : workload.durationSec.full,
    script,
    timeoutSec: WRK_TIMEOUT_SEC,
  });
  if (wrk.requests === 0) throw new Error(`no request completed in ${wrk.seconds} s${wrk.errorText ? ` (${wrk.errorText})` : ''}`);
  const cpuSec = cpuSeconds(pids) - cpuBefore;
  const after = memory(pids);
  return {
    requestsPerSec: wrk.requestsPerSec,
    requests: wrk.requests,
    p50Ms: wrk.p50Ms,
    p99Ms: wrk.p99Ms,
    errors: wrk.errors,
    errorText: wrk.errorText,
    cpuSec,
    startRssBytes: before.rssBytes,
    peakRssBytes: after.peakBytes,
  };
}

/** Starts every contender the workloads need (in parallel); the failures are kept as text. */
async function startAll(ids: readonly ContenderId[], scope: Scope, options: BenchOptions, section: string) {
  const running = new Map<ContenderId, RunningContender>();
  const failed = new Map<ContenderId, string>();
  const settled = await Promise.allSettled(ids.map((id) => startContender(id, { profileDir: options.profileDir, profilePrefix: section })));
  settled.forEach((result, i) => {
    const id = ids[i]!;
    if (result.status === 'fulfilled') {
      running.set(id, result.value);
    } else {
      const message = result.reason instanceof Error ? result.reason.message : String(result.reason);
      failed.set(id, `did not start: ${message}`);
      options.log(`${section}: ${CONTENDERS[id].label} did not start: ${message}`);
    }
  });
  // On close, the contenders stop in parallel, each in its own scope.
  scope.defer(async (fast) => {
    await Promise.all([...running.values()].map((contender) => contender.scope.close(fast)));
  });
  return { running, failed };
}

/** Runs the workloads on their contenders and returns the rows of the section's table. */
async function runSideBySide(section: string, workloadIds: readonly WorkloadId[], options: BenchOptions): Promise<Row[]> {
  const plan = planFor(options);
  const workloads = workloadIds.map((id) => WORKLOADS[id]);
  const ids = CONTENDER_IDS.filter((id) => workloads.some((w) => w.contenders.includes(id)));
  const scope = new Scope();
  const cells: Cell[] = [];
  try {
    options.log(`${section}: starting ${ids.map((id) => CONTENDERS[id].label).join('; ')}`);
    const { running, failed } = await startAll(ids, scope, options, section);
    const scriptDir = await scope.tempDir('tqserver-bench-wrk-');
    for (const workload of workloads) {
      if (wasInterrupted()) break;
      const script = workload.method === 'POST' ? await writePostScript(scriptDir, workload.bodyBytes) : null;
      const samples = new Map<ContenderId, Sample[]>();
      const failures = new Map<ContenderId, string>();
      const participants: RunningContender[] = [];
      for (const id of workload.contenders) {
        const contender = running.get(id);
        const problem = contender ? await probe(contender.baseUrl, workload) : (failed.get(id) ?? 'not started');
        if (contender && problem !== null) {
          const logTail = await contender.logTail();
          options.log(`${section}: ${workload.label}: ${contender.info.label} answered wrongly: ${problem}\n${logTail}`);
          failures.set(id, `check request: ${problem}`);
        } else if (problem !== null) {
          failures.set(id, problem);
        } else if (contender) {
          participants.push(contender);
          samples.set(id, []);
        }
      }
      for (const contender of plan.warmupSec > 0 ? participants : []) {
        if (wasInterrupted()) break;
        await runWrk({ url: `${contender.baseUrl}${workload.path}`, connections: workload.connections, threads: WRK_THREADS, durationSec: plan.warmupSec, script, timeoutSec: WRK_TIMEOUT_SEC }).catch(
          () => {},
        );
      }
      const roundProblems = new Map<ContenderId, string[]>();
      for (let round = 1; round <= plan.rounds; round++) {
        for (const contender of participants) {
          const id = contender.info.id;
          if (wasInterrupted()) continue;
          const where = `${section}: ${workload.label}, round ${round}/${plan.rounds}: ${contender.info.label}`;
          try {
            const sample = await measure(contender, workload, plan, script);
            samples.get(id)!.push(sample);
            options.log(
              `${where}: ${fmt(sample.requestsPerSec)} req/s, p50 ${fmt(sample.p50Ms, 2)} ms, p99 ${fmt(sample.p99Ms, 2)} ms, ` +
                `gateway CPU ${fmt((sample.cpuSec / Math.max(1, sample.requests)) * 1e6, 1)} µs/req` +
                (sample.errors > 0 ? `, ${sample.errors} errors (${sample.errorText})` : ''),
            );
            if (sample.errors > 0) options.log(`${section}: ${contender.info.label} log:\n${await contender.logTail()}`);
          } catch (error) {
            if (wasInterrupted()) continue;
            // A round without figures (wrk failed, nothing completed) is reported; the other rounds still run.
            const message = error instanceof Error ? error.message : String(error);
            roundProblems.set(id, [...(roundProblems.get(id) ?? []), `round ${round}: ${message}`]);
            options.log(`${where}: ${message}\n${await contender.logTail()}`);
          }
        }
      }
      for (const id of workload.contenders) {
        const info = CONTENDERS[id];
        const own = samples.get(id) ?? [];
        const problems = roundProblems.get(id)?.join('; ') ?? null;
        cells.push({
          workloadId: workload.id,
          workloadLabel: workload.label,
          contenderId: id,
          contenderLabel: info.label,
          connections: workload.connections,
          payloadBytes: workload.payloadBytes,
          samples: own,
          failure: failures.get(id) ?? (own.length === 0 ? problems : null),
          notes: own.length > 0 ? problems : null,
        });
      }
    }
  } finally {
    await scope.close();
  }
  return sideBySideRows(cells, BASELINE);
}

const BASE_LABEL = CONTENDERS[BASELINE].label;

function description(what: string): string {
  return (
    `${what} Every contender is started by the bench on 127.0.0.1 with its own PHP: php-fpm with pm = static and 4 children ` +
    '(the same generated pool for all), or 4 php-cgi processes; the same ini settings and scripts (bench/php). ' +
    `wrk (2 threads, 10 s request timeout) loads each contender in turn, A B C ... A B C, for ${FULL_ROUNDS} rounds after a 1 s warm-up ` +
    '(rounds of 3 s for hello world, 4 s for the stream and the upload, 2 s otherwise; --quick: one round, half as long or 1 s, no warm-up); ' +
    `figures are medians over the rounds, "×" columns are ratios to ${BASE_LABEL} on the same workload (for latency, lower is better). ` +
    "Gateway CPU is the user + system time of the gateway's processes (TQServer's node process, nginx's master and worker, caddy; " +
    'for nginx → TQServer both) per request, from /proc/PID/stat; peak RSS is their VmHWM during a round (reset before it), ' +
    'growth is that peak minus their resident memory at the round\'s start. PHP processes are not counted: they are the same for everyone.'
  );
}

/** Issue 8's hello-world targets (issue 5's are the first two). */
const HELLO_TARGETS: readonly Target[] = [
  ...(['hello16', 'hello64'] as const).flatMap((workloadId): Target[] => {
    const n = workloadId === 'hello16' ? 16 : 64;
    return [
      { text: `hello ×${n}: TQServer + php-fpm req/s ≥ 1.0× nginx + php-fpm with keep-alive`, workloadId, measure: { kind: 'ratio', metric: 'requestsPerSec', of: 'tq-fpm', to: 'nginx-fpm-ka' }, op: '>=', threshold: 1 },
      ...(n === 64
        ? [{ text: 'hello ×64: TQServer + php-fpm p99 ≤ 0.2× nginx + php-fpm with keep-alive', workloadId, measure: { kind: 'ratio', metric: 'p99Ms', of: 'tq-fpm', to: 'nginx-fpm-ka' }, op: '<=', threshold: 0.2 } satisfies Target]
        : []),
      { text: `hello ×${n}: TQServer + php-fpm req/s ≥ 1.5× nginx + php-fpm without keep-alive`, workloadId, measure: { kind: 'ratio', metric: 'requestsPerSec', of: 'tq-fpm', to: 'nginx-fpm' }, op: '>=', threshold: 1.5 },
      { text: `hello ×${n}: TQServer + php-fpm req/s ≥ 2× Caddy + php-fpm`, workloadId, measure: { kind: 'ratio', metric: 'requestsPerSec', of: 'tq-fpm', to: 'caddy-fpm' }, op: '>=', threshold: 2 },
      { text: `hello ×${n}: TQServer + php-cgi pool req/s ≥ 1.0× nginx + 4 php-cgi`, workloadId, measure: { kind: 'ratio', metric: 'requestsPerSec', of: 'tq-cgi', to: 'nginx-cgi' }, op: '>=', threshold: 1 },
      { text: `hello ×${n}: nginx → TQServer front → php-cgi req/s ≥ 0.8× nginx → php-fpm (keep-alive)`, workloadId, measure: { kind: 'ratio', metric: 'requestsPerSec', of: 'nginx-tq-front', to: 'nginx-fpm-ka' }, op: '>=', threshold: 0.8 },
    ];
  }),
];

/** Issue 8's streaming and upload targets, for both TQServer backends. */
const WORKLOAD_TARGETS: readonly Target[] = (['stream50m', 'upload10m'] as const).flatMap((workloadId) =>
  (['tq-fpm', 'tq-cgi'] as const).flatMap((of): Target[] => {
    const what = `${WORKLOADS[workloadId].short}: ${CONTENDERS[of].label}`;
    return [
      { text: `${what} req/s ≥ 0.8× nginx + php-fpm with keep-alive`, workloadId, measure: { kind: 'ratio', metric: 'requestsPerSec', of, to: 'nginx-fpm-ka' }, op: '>=', threshold: 0.8 },
      { text: `${what} gateway memory growth < 50 MiB`, workloadId, measure: { kind: 'value', metric: 'rssGrowthMiB', of }, op: '<', threshold: 50 },
    ];
  }),
);

const TARGETS_DESCRIPTION = 'The targets of issues 5 and 8, checked against this run (ratios within one run). "missed by N %" is how far below the required ratio the figure is.';

export const helloSection = {
  name: 'hello',
  title: 'Side by side: hello world at 16 and 64 connections',
  description: description('`GET /hello.php` (14 bytes) over kept-alive client connections, 16 and 64 of them.'),
  columns: SIDE_BY_SIDE_COLUMNS,
  caseLabel: 'contender',
  run: (options: BenchOptions) => runSideBySide('hello', ['hello16', 'hello64'], options),
  extras(rows: readonly Row[]): Extra[] {
    const extras: Extra[] = [
      ratioPivot(rows, `Ratios to ${BASE_LABEL}`, 'req/s: higher is better; p50 and p99: lower is better.', [
        { key: 'rpsRatio', label: 'req/s' },
        { key: 'p50Ratio', label: 'p50' },
        { key: 'p99Ratio', label: 'p99' },
      ]),
      ratioPivot(rows, 'Gateway CPU time per hello-world request (µs)', "User + system CPU time of the gateway's processes divided by the requests wrk completed.", [
        { key: 'cpuUsPerRequest', label: 'µs/req', digits: 1 },
      ]),
      targetsTable(checkTargets(rows, HELLO_TARGETS), TARGETS_DESCRIPTION),
    ];
    const problems = problemsTable(rows);
    return problems ? [...extras, problems] : extras;
  },
} satisfies Section;

export const workloadsSection = {
  name: 'workloads',
  title: 'Side by side: pages, phpinfo(), streaming, uploads, static files, pretty URLs',
  description: description(
    'A 100 KB HTML page, phpinfo(), a 50 MiB response streamed without Content-Length, a 10 MiB POST body read from php://input, ' +
      'a 10 KiB static file (no PHP), and a front controller reached through a pretty URL; 16 connections, 4 for the stream and the upload. ' +
      'MB/s counts the streamed or uploaded bytes (10^6 bytes).',
  ),
  columns: SIDE_BY_SIDE_COLUMNS,
  caseLabel: 'contender',
  run: (options: BenchOptions) => runSideBySide('workloads', ['page100k', 'phpinfo', 'stream50m', 'upload10m', 'static', 'app'], options),
  extras(rows: readonly Row[]): Extra[] {
    const extras: Extra[] = [
      ratioPivot(rows, `req/s ratios to ${BASE_LABEL}`, 'Higher is better.', [{ key: 'rpsRatio', label: 'req/s' }]),
      ratioPivot(rows, `p99 ratios to ${BASE_LABEL}`, 'Lower is better.', [{ key: 'p99Ratio', label: 'p99' }]),
      targetsTable(checkTargets(rows, WORKLOAD_TARGETS), TARGETS_DESCRIPTION),
    ];
    const problems = problemsTable(rows);
    return problems ? [...extras, problems] : extras;
  },
} satisfies Section;

/** The chart's colours: TQServer warm, nginx green, Caddy blue, the php-cgi comparisons muted. */
const COLORS: Readonly<Record<ContenderId, string>> = {
  'tq-fpm': '#e4572e',
  'tq-cgi': '#f3a712',
  'nginx-fpm-ka': '#009639',
  'nginx-fpm': '#8fd18f',
  'caddy-fpm': '#1f77b4',
  'nginx-tq-front': '#8e44ad',
  'nginx-cgi': '#9aa5a6',
};

/**
 * docs/bench-chart.svg from a run's side-by-side rows: a group per workload, a bar per contender
 * that ran it. null when the run has no side-by-side section.
 */
export function sideBySideChart(report: RunReport): string | null {
  const rows = report.sections.filter((s) => s.name === helloSection.name || s.name === workloadsSection.name).flatMap((s) => s.rows);
  if (rows.length === 0) return null;
  const groups: ChartGroup[] = WORKLOAD_IDS.filter((w) => rows.some((row) => row.values.workloadId === w)).map((w) => ({
    label: WORKLOADS[w].short,
    bars: WORKLOADS[w].contenders.map((c) => {
      const row = findRow(rows, w, c);
      return { seriesId: c, rpsRatio: num(row, 'rpsRatio') ?? null, p99Ratio: num(row, 'p99Ratio') ?? null };
    }),
  }));
  const m = report.machine;
  const when = report.startedAt.replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');
  return renderChart({
    title: 'TQServer vs nginx and Caddy in front of the same PHP (4 processes), wrk on loopback',
    subtitle: [
      `${when} · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB · ${m.os} · Node ${m.node} · ${m.php.replace(/ \(built.*$/, '')}`,
      `command: ${report.command} · medians of ${report.quick ? 1 : FULL_ROUNDS} rounds · load average ${m.loadAverage} at start` +
        `${report.loadAverageAtEnd === undefined ? '' : `, ${report.loadAverageAtEnd} at end`} · every figure in docs/benchmarks.md`,
      `code: ${report.revision}`,
    ],
    baselineLabel: CONTENDERS[BASELINE].short,
    series: CONTENDER_IDS.map((id) => ({ id, label: CONTENDERS[id].short, color: COLORS[id] })),
    groups,
  });
}
