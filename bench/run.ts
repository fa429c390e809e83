// The benchmark entry point (`npm run bench`): runs the sections in order, prints a table per section,
// writes bench/results/latest.json and, after a full run, the generated block of docs/benchmarks.md.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { clientSection } from './client.js';
import { codecSection } from './codec.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { replaceGeneratedBlock } from './lib/docs.js';
import { describeMachine } from './lib/machine.js';
import { repoPath } from './lib/paths.js';
import { describeRevision } from './lib/revision.js';
import { markdownReport, textTable, type RunReport } from './lib/report.js';
import type { Section, SectionResult } from './lib/section.js';

/** Every section, in the order a full run goes through them. New sections are added here. */
const SECTIONS: readonly Section[] = [codecSection, clientSection];

const RESULTS_FILE = repoPath('bench', 'results', 'latest.json');
const DOCS_FILE = repoPath('docs', 'benchmarks.md');

const USAGE = `usage: npm run bench -- [--only=SECTION[,SECTION...]] [--quick]

  --only=NAMES  run only these sections: ${SECTIONS.map((s) => s.name).join(', ')}
  --quick       short warm-ups and windows: a smoke test (about 30 s), not figures to publish

Results go to bench/results/latest.json; a full run (no --only, no --quick) also rewrites the
generated block of docs/benchmarks.md.
`;

interface Invocation {
  readonly sections: readonly Section[];
  readonly quick: boolean;
  readonly full: boolean;
  readonly command: string;
}

function parseInvocation(argv: string[]): Invocation {
  const { values } = parseArgs({
    args: argv,
    options: { only: { type: 'string' }, quick: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
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
  const args = argv.join(' ');
  const command = process.env.npm_lifecycle_event === 'bench' ? `npm run bench${args ? ` -- ${args}` : ''}` : `node dist/bench/run.js${args ? ` ${args}` : ''}`;
  return { sections, quick, full: !quick && sections.length === SECTIONS.length, command };
}

class UsageError extends Error {}

function log(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

async function main(): Promise<void> {
  const invocation = parseInvocation(process.argv.slice(2));
  installSignalHandlers();
  const startedAt = new Date();
  const start = performance.now();
  const machine = describeMachine();
  const revision = describeRevision();
  log(`${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}, ${machine.php}; load average ${machine.loadAverage}; code at ${revision}`);
  log(`running ${invocation.sections.map((s) => s.name).join(', ')}${invocation.quick ? ' (quick)' : ''}`);

  const results: SectionResult[] = [];
  for (const section of invocation.sections) {
    const sectionStart = performance.now();
    const rows = await section.run({ quick: invocation.quick, log });
    const result: SectionResult = {
      name: section.name,
      title: section.title,
      description: section.description,
      columns: section.columns,
      rows,
      seconds: (performance.now() - sectionStart) / 1000,
    };
    results.push(result);
    process.stdout.write(`\n${section.title} (${result.seconds.toFixed(0)} s)\n\n${textTable(result)}\n`);
  }

  const report: RunReport = {
    startedAt: startedAt.toISOString(),
    command: invocation.command,
    revision,
    quick: invocation.quick,
    totalSeconds: (performance.now() - start) / 1000,
    machine,
    sections: results,
  };
  await mkdir(dirname(RESULTS_FILE), { recursive: true });
  await writeFile(RESULTS_FILE, `${JSON.stringify(report, null, 2)}\n`);
  log(`wrote ${RESULTS_FILE}`);
  if (invocation.full) {
    const current = await readFile(DOCS_FILE, 'utf8').catch(() => '# Benchmarks\n');
    await writeFile(DOCS_FILE, replaceGeneratedBlock(current, markdownReport(report)));
    log(`updated the generated block of ${DOCS_FILE}`);
  } else {
    log('docs/benchmarks.md left as it is: only a full run (no --only, no --quick) rewrites it');
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
