// The targets issues 5 and 8 set for the side-by-side figures, checked against one run's rows (pure):
// each is met, missed (and by how much), or not measured.

import { findRow, num } from './side-by-side-rows.js';
import type { Extra, Row } from './section.js';

/** A ratio between two contenders' figures for one workload, or one contender's own figure. */
export type Measure =
  | { readonly kind: 'ratio'; readonly metric: 'requestsPerSec' | 'p99Ms'; readonly of: string; readonly to: string }
  | { readonly kind: 'value'; readonly metric: 'rssGrowthMiB'; readonly of: string };

export interface Target {
  /** The target in words, as the issues state it. */
  readonly text: string;
  readonly workloadId: string;
  readonly measure: Measure;
  readonly op: '>=' | '<=' | '<';
  readonly threshold: number;
}

export interface TargetResult {
  readonly target: Target;
  readonly value: number | null;
  readonly met: boolean | null;
  /** "met", "missed by 42 %", "missed: 3.1× the limit", or why it was not measured. */
  readonly verdict: string;
}

function measure(rows: readonly Row[], target: Target): number | null {
  const m = target.measure;
  const own = num(findRow(rows, target.workloadId, m.of), m.metric);
  if (m.kind === 'value') return own ?? null;
  const base = num(findRow(rows, target.workloadId, m.to), m.metric);
  return own === undefined || base === undefined || !(base > 0) ? null : own / base;
}

/** How far a value is from its threshold, in words an operator reads at a glance. Pure. */
export function verdict(value: number, op: Target['op'], threshold: number): { met: boolean; text: string } {
  const met = op === '>=' ? value >= threshold : op === '<=' ? value <= threshold : value < threshold;
  if (met) return { met, text: 'met' };
  if (op === '>=') return { met, text: `missed by ${((1 - value / threshold) * 100).toFixed(0)} % (needs ${(threshold / value).toFixed(2)}× more)` };
  return { met, text: `missed: ${(value / threshold).toFixed(2)}× the limit` };
}

export function checkTargets(rows: readonly Row[], targets: readonly Target[]): TargetResult[] {
  return targets.map((target) => {
    const value = measure(rows, target);
    if (value === null) {
      const failures = rows.filter((row) => row.values.workloadId === target.workloadId && typeof row.values.failure === 'string').map((row) => row.case);
      return { target, value, met: null, verdict: `not measured${failures.length > 0 ? ` (no figures for ${failures.join(', ')})` : ''}` };
    }
    const { met, text } = verdict(value, target.op, target.threshold);
    return { target, value, met, verdict: text };
  });
}

/** The targets as a table: target, measured value, required, verdict. */
export function targetsTable(results: readonly TargetResult[], description: string): Extra {
  return {
    title: 'Targets',
    caseLabel: 'target',
    description,
    columns: [
      { key: 'measured', label: 'measured' },
      { key: 'required', label: 'required' },
      { key: 'verdict', label: 'verdict' },
    ],
    rows: results.map((result) => {
      const unit = result.target.measure.kind === 'ratio' ? '×' : ' MiB';
      const digits = result.target.measure.kind === 'ratio' ? 2 : 1;
      return {
        case: result.target.text,
        values: {
          measured: result.value === null ? '–' : `${result.value.toFixed(digits)}${unit}`,
          required: `${result.target.op === '>=' ? '≥' : result.target.op === '<=' ? '≤' : '<'} ${result.target.threshold}${unit}`,
          verdict: result.verdict,
        },
      };
    }),
  };
}
