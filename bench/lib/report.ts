// Renders results for people: a fixed-width table for the terminal and Markdown for
// docs/benchmarks.md (the machine, the command and one table per section). Pure: strings in and out.

import type { Machine } from './machine.js';
import type { Column, Row, SectionResult } from './section.js';

/** Everything one run produced; also the shape of bench/results/latest.json. */
export interface RunReport {
  readonly startedAt: string;
  readonly command: string;
  /** The commit measured (see revision.ts). */
  readonly revision: string;
  readonly quick: boolean;
  readonly sections: readonly SectionResult[];
  readonly totalSeconds: number;
  readonly machine: Machine;
  /**
   * The 1-minute load average when the run ended: with the one at the start (machine.loadAverage),
   * it tells whether something else ran on the machine meanwhile. Absent in runs before it existed.
   */
  readonly loadAverageAtEnd?: number;
}

/** A value as its column shows it: numbers with thousands separators and the column's decimals. */
export function formatValue(value: number | string | null | undefined, column: Column): string {
  if (value === null || value === undefined) return '–';
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return 'n/a';
  const digits = column.digits ?? 0;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

type Table = Pick<SectionResult, 'columns' | 'rows' | 'caseLabel'>;

function cells(section: Table): { header: string[]; body: string[][]; numeric: boolean[] } {
  const header = [section.caseLabel ?? 'case', ...section.columns.map((c) => c.label)];
  const body = section.rows.map((row: Row) => [row.case, ...section.columns.map((c) => formatValue(row.values[c.key], c))]);
  const numeric = [false, ...section.columns.map((c) => section.rows.some((row) => typeof row.values[c.key] === 'number'))];
  return { header, body, numeric };
}

/** A fixed-width table: text left-aligned, numbers right-aligned. */
export function textTable(section: Table): string {
  const { header, body, numeric } = cells(section);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** A GitHub-flavoured Markdown table. */
export function markdownTable(section: Table): string {
  const { header, body, numeric } = cells(section);
  const escape = (cell: string) => cell.replace(/\|/g, '\\|');
  const line = (r: string[]) => `| ${r.map(escape).join(' | ')} |`;
  return [line(header), `| ${numeric.map((n) => (n ? '---:' : '---')).join(' | ')} |`, ...body.map(line)].join('\n');
}

/** The generated part of docs/benchmarks.md (without its markers). */
export function markdownReport(report: RunReport): string {
  const m = report.machine;
  const when = report.startedAt.replace('T', ' ').replace(/:\d\d\.\d+Z$/, ' UTC');
  const parts = [
    `Measured ${when} with \`${report.command}\` (${Math.round(report.totalSeconds)} s), code at ${report.revision}.`,
    '',
    '| machine | |',
    '| --- | --- |',
    `| CPU | ${m.cpu}, ${m.cores} cores |`,
    `| memory | ${m.memoryGiB} GiB |`,
    `| OS | ${m.os} (${m.kernel}) |`,
    `| Node.js | ${m.node} |`,
    `| PHP | ${m.php} |`,
    `| load average at start | ${m.loadAverage} |`,
    ...(report.loadAverageAtEnd === undefined ? [] : [`| load average at end | ${report.loadAverageAtEnd} |`]),
  ];
  for (const section of report.sections) {
    parts.push('', `### ${section.title}`, '', section.description, '', markdownTable(section));
    for (const extra of section.extras ?? []) {
      parts.push('', `#### ${extra.title}`, '', ...(extra.description ? [extra.description, ''] : []), markdownTable(extra));
    }
  }
  return parts.join('\n');
}

/** A section's table and its extras for the terminal. */
export function textSection(section: SectionResult): string {
  const parts = [textTable(section)];
  for (const extra of section.extras ?? []) parts.push('', extra.title, '', textTable(extra));
  return parts.join('\n');
}
