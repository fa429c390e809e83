// Summarizes a V8 CPU profile (node --cpu-prof, a .cpuprofile file) into the functions with the most
// self time (pure): where TQServer's process spends its CPU under load.

import type { Extra, Row } from './section.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number; readonly columnNumber: number };
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  /** Microseconds since the previous sample, one per sample. */
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface FunctionTime {
  readonly name: string;
  /** file:line, relative to `root` when under it. */
  readonly where: string;
  readonly selfMs: number;
  /** Percent of the busy time: every sample except (idle). */
  readonly selfPct: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly functions: readonly FunctionTime[];
  /** Self time per file (or V8 category such as "(garbage collector)"), most first. */
  readonly files: ReadonlyArray<{ readonly file: string; readonly selfMs: number; readonly selfPct: number }>;
}

function shorten(url: string, root: string): string {
  const path = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  return path.startsWith(root) ? path.slice(root.length).replace(/^\//, '') : path;
}

/** Self time per function (same name and location merged) and per file. */
export function summarizeProfile(profile: CpuProfile, root: string, top = 20): ProfileSummary {
  const byNode = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const files = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    totalUs += us;
    const frame = byNode.get(id)?.callFrame;
    if (!frame) continue;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const file = frame.url ? shorten(frame.url, root) : frame.functionName.startsWith('(') ? frame.functionName : '(native)';
    const where = frame.url ? `${file}:${frame.lineNumber + 1}` : '';
    const name = frame.functionName || '(anonymous)';
    const key = `${name}@${where}`;
    const entry = functions.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? (us / busyUs) * 100 : 0);
  return {
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfMs: f.us / 1000, selfPct: pct(f.us) })),
    files: [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([file, us]) => ({ file, selfMs: us / 1000, selfPct: pct(us) })),
  };
}

/** The summary as two tables for the report: top functions, and top files. */
export function profileExtras(label: string, summary: ProfileSummary): Extra[] {
  const head = `${label}: ${(summary.busyMs / 1000).toFixed(1)} s busy of ${(summary.totalMs / 1000).toFixed(1)} s profiled; percentages are of the busy time.`;
  const functionRows: Row[] = summary.functions.map((f) => ({ case: f.name, values: { where: f.where, selfMs: f.selfMs, selfPct: f.selfPct } }));
  const fileRows: Row[] = summary.files.map((f) => ({ case: f.file, values: { selfMs: f.selfMs, selfPct: f.selfPct } }));
  return [
    {
      title: `CPU profile, ${label}: functions by self time`,
      caseLabel: 'function',
      description: head,
      columns: [
        { key: 'where', label: 'where' },
        { key: 'selfMs', label: 'self ms' },
        { key: 'selfPct', label: 'self %', digits: 1 },
      ],
      rows: functionRows,
    },
    {
      title: `CPU profile, ${label}: files by self time`,
      caseLabel: 'file',
      description: head,
      columns: [
        { key: 'selfMs', label: 'self ms' },
        { key: 'selfPct', label: 'self %', digits: 1 },
      ],
      rows: fileRows,
    },
  ];
}
