// The benchmark entry point (`npm run bench`): runs the sections in order, prints a table per section,
// writes bench/results/latest.json and, after a full run, bench/results.json, docs/bench-chart.svg and
// the generated block of docs/benchmarks.md.

import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { clientSection } from './client.js';
import { codecSection } from './codec.js';
import { installSignalHandlers, runCleanup, wasInterrupted } from './lib/cleanup.js';
import { profileExtras, summarizeProfile, type CpuProfile } from './lib/cpuprofile.js';
import { replaceGeneratedBlock } from './lib/docs.js';
import { describeMachine } from './lib/machine.js';
import { REPO_ROOT, repoPath } from './lib/paths.js';
import { describeRevision } from './lib/revision.js';
import { markdownReport, textSection, type RunReport } from './lib/report.js';
import type { Extra, Section, SectionResult } from './lib/section.js';
import { helloSection, sideBySideChart, workloadsSection } from './side-by-side.js';
import { poolSection } from './pool.js';

/** Every section, in the order a full run goes through them. New sections are added here. */
const SECTIONS: readonly Section[] = [codecSection, clientSection, poolSection, helloSection, workloadsSection];

const RESULTS_FILE = repoPath('bench', 'results', 'latest.json');
/** The last published full run: committed, so the README's chart and docs/benchmarks.md have their data. */
const PUBLISHED_FILE = repoPath('bench', 'results.json');
const CHART_FILE = repoPath('docs', 'bench-chart.svg');
const DOCS_FILE = repoPath('docs', 'benchmarks.md');
const PROFILE_DIR = repoPath('bench', 'results', 'profiles');

const USAGE = `usage: npm run bench -- [--only=SECTION[,SECTION...]] [--quick] [--profile]

  --only=NAMES  run only these sections: ${SECTIONS.map((s) => s.name).join(', ')}
  --quick       short runs, one round: a smoke test (about 2 minutes), not figures to publish
  --profile     run TQServer under node --cpu-prof; profiles go to bench/results/profiles/ and
                their top functions are printed (profiling slows TQServer: not figures to publish)
  --render      measure nothing: rewrite docs/bench-chart.svg and the generated block of
                docs/benchmarks.md from bench/results.json (after a change to how they are drawn)

Results go to bench/results/latest.json; a full run (no --only, --quick or --profile) also writes
bench/results.json and docs/bench-chart.svg and rewrites the generated block of docs/benchmarks.md.
`;

interface Invocation {
  readonly sections: readonly Section[];
  readonly render: boolean;
  readonly quick: boolean;
  readonly profile: boolean;
  readonly full: boolean;
  readonly command: string;
}

function parseInvocation(argv: string[]): Invocation {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      render: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  let sections = SECTIONS;
  if (values.only !== undefined) {
    const names = values.only.split(',').map((name) => name.trim()).filter(Boolean);
    const unknown = names.filter((name) => !SECTIONS.some((s) => s.name === name));
    if (names.length === 0 || unknown.length > 0) {
      throw new UsageError(`--only: unknown section ${JSON.stringify(unknown.join(',') || values.only)}; the sections are ${SECTIONS.map((s) => s.name).join(', ')}`);
    }
    sections = SECTIONS.filter((s) => names.includes(s.name));
  }
  const quick = values.quick ?? false;
  const profile = values.profile ?? false;
  const args = argv.join(' ');
  const command = process.env.npm_lifecycle_event === 'bench' ? `npm run bench${args ? ` -- ${args}` : ''}` : `node dist/bench/run.js${args ? ` ${args}` : ''}`;
  const render = values.render ?? false;
  if (render && (values.only !== undefined || quick || profile)) throw new UsageError('--render measures nothing: it takes no other option');
  return { sections, render, quick, profile, full: !quick && !profile && sections.length === SECTIONS.length, command };
}

/** Summaries of the CPU profiles a section's TQServer processes wrote (files named SECTION-*.cpuprofile). */
async function profileSummaries(section: string, since: number, log: (line: string) => void): Promise<Extra[]> {
  const extras: Extra[] = [];
  const files = (await readdir(PROFILE_DIR).catch(() => [] as string[])).filter((f) => f.startsWith(`${section}-`) && f.endsWith('.cpuprofile')).sort();
  for (const file of files) {
    const path = join(PROFILE_DIR, file);
    if ((await stat(path)).mtimeMs < since) continue;
    try {
      const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
      extras.push(...profileExtras(file.replace(/\.cpuprofile$/, ''), summarizeProfile(profile, REPO_ROOT)));
    } catch (error) {
      log(`cannot read the profile ${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return extras;
}

class UsageError extends Error {}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Writes the published files drawn from a run: the chart and the generated block of the docs. */
async function publish(report: RunReport): Promise<void> {
  const chart = sideBySideChart(report);
  if (chart) {
    await writeFile(CHART_FILE, chart);
    log(`wrote ${CHART_FILE}`);
  }
  const current = await readFile(DOCS_FILE, 'utf8').catch(() => '# Benchmarks\n');
  await writeFile(DOCS_FILE, replaceGeneratedBlock(current, markdownReport(report)));
  log(`updated the generated block of ${DOCS_FILE}`);
}

async function main(): Promise<void> {
  const invocation = parseInvocation(process.argv.slice(2));
  if (invocation.render) {
    await publish(JSON.parse(await readFile(PUBLISHED_FILE, 'utf8')) as RunReport);
    return;
  }
  installSignalHandlers();
  const startedAt = new Date();
  const start = performance.now();
  const machine = describeMachine();
  const revision = process.env.TQSERVER_BENCH_CLI ? `${describeRevision()}; TQServer run from ${process.env.TQSERVER_BENCH_CLI}` : describeRevision();
  log(`${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, ${machine.php}; load average ${machine.loadAverage}; code at ${revision}`);
  log(`running ${invocation.sections.map((s) => s.name).join(', ')}${invocation.quick ? ' (quick)' : ''}${invocation.profile ? ' (profiling TQServer)' : ''}`);
  const profileDir = invocation.profile ? PROFILE_DIR : null;
  if (profileDir) await mkdir(profileDir, { recursive: true });

  const results: SectionResult[] = [];
  for (const section of invocation.sections) {
    const sectionStart = performance.now();
    const sectionStartedAt = Date.now();
    const rows = await section.run({ quick: invocation.quick, log, profileDir });
    // After Ctrl-C the cleanup is stopping everything and will exit: report nothing half-measured.
    if (wasInterrupted()) return;
    const extras = [...(section.extras?.(rows) ?? []), ...(profileDir ? await profileSummaries(section.name, sectionStartedAt, log) : [])];
    const result: SectionResult = {
      name: section.name,
      title: section.title,
      description: section.description,
      columns: section.columns,
      ...(section.caseLabel ? { caseLabel: section.caseLabel } : {}),
      rows,
      extras,
      seconds: (performance.now() - sectionStart) / 1000,
    };
    results.push(result);
    process.stdout.write(`\n${section.title} (${result.seconds.toFixed(0)} s)\n\n${textSection(result)}\n`);
  }

  const report: RunReport = {
    startedAt: startedAt.toISOString(),
    command: invocation.command,
    revision,
    quick: invocation.quick,
    totalSeconds: (performance.now() - start) / 1000,
    machine,
    loadAverageAtEnd: Math.round(loadavg()[0]! * 100) / 100,
    sections: results,
  };
  await mkdir(dirname(RESULTS_FILE), { recursive: true });
  await writeFile(RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${RESULTS_FILE}`);
  if (invocation.full) {
    await writeFile(PUBLISHED_FILE, `${JSON.stringify(report, null, 2)}\n`);
    log(`wrote ${PUBLISHED_FILE}`);
    await publish(report);
  } else {
    log('bench/results.json, docs/bench-chart.svg and docs/benchmarks.md left as they are: only a full run (no --only, --quick or --profile) rewrites them');
  }
  log(`done in ${report.totalSeconds.toFixed(0)} s`);
}

main().catch(async (error: unknown) => {
  if (error instanceof UsageError || (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))) {
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await runCleanup();
  process.exitCode = 1;
});
