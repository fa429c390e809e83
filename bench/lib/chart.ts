// A grouped bar chart as SVG text (pure, no dependencies): for each workload one bar per contender,
// req/s relative to the baseline on a linear axis, and p99 relative to it on a log axis around 1×.

export interface ChartSeries {
  readonly id: string;
  readonly label: string;
  readonly color: string;
}

export interface ChartBar {
  readonly seriesId: string;
  /** null: not measured (no bar, a small "n/a"). */
  readonly rpsRatio: number | null;
  readonly p99Ratio: number | null;
}

export interface ChartGroup {
  readonly label: string;
  readonly bars: readonly ChartBar[];
}

export interface ChartInput {
  readonly title: string;
  /** Lines under the title: when, where, the exact command. */
  readonly subtitle: readonly string[];
  readonly baselineLabel: string;
  readonly series: readonly ChartSeries[];
  readonly groups: readonly ChartGroup[];
}

const WIDTH = 980;
const LEFT = 64;
const RIGHT = 16;
/** Widest bar; bars narrow to fit when there are many. */
const MAX_BAR = 22;
const GROUP_GAP = 26;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
/** The p99 panel's log axis: 1/1000× to 100×; anything beyond is drawn at the edge, labelled with its value. */
const LOG_MIN = 0.001;
const LOG_MAX = 100;

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function ratioLabel(value: number): string {
  if (value >= 10) return `${value.toFixed(0)}×`;
  if (value >= 0.095) return `${value.toFixed(2)}×`;
  return `${value.toPrecision(1)}×`;
}

/** Renders the chart. Groups may have different numbers of bars; the x axis is laid out to fit. */
export function renderChart(input: ChartInput): string {
  const color = new Map(input.series.map((s) => [s.id, s.color]));
  const plotWidth = WIDTH - LEFT - RIGHT;
  const totalBars = input.groups.reduce((sum, g) => sum + g.bars.length, 0);
  const bar = Math.min(MAX_BAR, (plotWidth - GROUP_GAP * input.groups.length) / Math.max(1, totalBars));
  const groupX: number[] = [];
  let x = LEFT + GROUP_GAP / 2;
  for (const group of input.groups) {
    groupX.push(x);
    x += group.bars.length * bar + GROUP_GAP;
  }
  const out: string[] = [];
  let y = 28;
  out.push(`<text x="${LEFT}" y="${y}" font-size="17" font-weight="600">${escapeXml(input.title)}</text>`);
  for (const line of input.subtitle) {
    y += 17;
    out.push(`<text x="${LEFT}" y="${y}" font-size="11.5" fill="#555">${escapeXml(line)}</text>`);
  }
  // Legend: as many per line as fit.
  y += 24;
  let lx = LEFT;
  for (const s of input.series) {
    const width = 22 + s.label.length * 6.4;
    if (lx + width > WIDTH - RIGHT) {
      lx = LEFT;
      y += 18;
    }
    out.push(`<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${s.color}"/>`, `<text x="${lx + 17}" y="${y}" font-size="12">${escapeXml(s.label)}</text>`);
    lx += width + 14;
  }

  // Panel 1: req/s ratio, linear.
  const maxRps = Math.max(1.5, ...input.groups.flatMap((g) => g.bars.map((b) => b.rpsRatio ?? 0)));
  // Headroom above the tallest bar for its label.
  const rpsTop = Math.ceil(maxRps * 1.15 * 2) / 2;
  const p1Top = y + 40;
  const p1Height = 230;
  const p1Bottom = p1Top + p1Height;
  const yRps = (v: number) => p1Bottom - (Math.min(v, rpsTop) / rpsTop) * p1Height;
  out.push(`<text x="${LEFT}" y="${p1Top - 14}" font-size="13" font-weight="600">req/s relative to ${escapeXml(input.baselineLabel)} (higher is better)</text>`);
  for (let v = 0; v <= rpsTop + 1e-9; v += 0.5) {
    const gy = yRps(v);
    out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${gy}" y2="${gy}" stroke="${v === 1 ? '#333' : '#e3e3e3'}"${v === 1 ? ' stroke-dasharray="5 3"' : ''}/>`);
    out.push(`<text x="${LEFT - 6}" y="${gy + 4}" font-size="11" text-anchor="end" fill="#555">${v.toFixed(1)}×</text>`);
  }
  input.groups.forEach((group, gi) => {
    group.bars.forEach((b, bi) => {
      const bx = groupX[gi]! + bi * bar;
      if (b.rpsRatio === null) {
        out.push(`<text x="${bx + bar / 2}" y="${p1Bottom - 4}" font-size="8" text-anchor="middle" fill="#999">n/a</text>`);
        return;
      }
      const top = yRps(b.rpsRatio);
      out.push(`<rect x="${bx + 1}" y="${top}" width="${bar - 2}" height="${p1Bottom - top}" fill="${color.get(b.seriesId) ?? '#888'}"/>`);
      const ly = top - 4;
      out.push(`<text transform="translate(${bx + bar / 2 + 3.5} ${ly}) rotate(-90)" font-size="9.5" fill="#333">${ratioLabel(b.rpsRatio)}</text>`);
    });
    out.push(`<text x="${groupX[gi]! + (group.bars.length * bar) / 2}" y="${p1Bottom + 16}" font-size="11.5" text-anchor="middle">${escapeXml(group.label)}</text>`);
  });

  // Panel 2: p99 ratio, log scale, bars from the 1× line (down: lower p99 than the baseline).
  const p2Top = p1Bottom + 64;
  const p2Height = 250;
  const p2Bottom = p2Top + p2Height;
  const span = Math.log10(LOG_MAX) - Math.log10(LOG_MIN);
  const yP99 = (v: number) => p2Top + ((Math.log10(LOG_MAX) - Math.log10(Math.min(LOG_MAX, Math.max(LOG_MIN, v)))) / span) * p2Height;
  out.push(`<text x="${LEFT}" y="${p2Top - 14}" font-size="13" font-weight="600">p99 latency relative to ${escapeXml(input.baselineLabel)} (log scale; below the line is better)</text>`);
  for (const v of [0.001, 0.01, 0.1, 1, 10, 100]) {
    const gy = yP99(v);
    out.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${gy}" y2="${gy}" stroke="${v === 1 ? '#333' : '#e3e3e3'}"${v === 1 ? ' stroke-dasharray="5 3"' : ''}/>`);
    out.push(`<text x="${LEFT - 6}" y="${gy + 4}" font-size="11" text-anchor="end" fill="#555">${v}×</text>`);
  }
  const one = yP99(1);
  input.groups.forEach((group, gi) => {
    group.bars.forEach((b, bi) => {
      const bx = groupX[gi]! + bi * bar;
      if (b.p99Ratio === null) return;
      const at = yP99(b.p99Ratio);
      const top = Math.min(at, one);
      const height = Math.max(1, Math.abs(at - one));
      out.push(`<rect x="${bx + 1}" y="${top}" width="${bar - 2}" height="${height}" fill="${color.get(b.seriesId) ?? '#888'}"/>`);
      // Labels sit beyond the bar's end: above a bar that goes up, below one that goes down.
      const up = b.p99Ratio >= 1;
      const ly = up ? top - 4 : top + height + 4;
      out.push(`<text transform="translate(${bx + bar / 2 + 3.5} ${ly}) rotate(-90)" font-size="9.5" fill="#333"${up ? '' : ' text-anchor="end"'}>${ratioLabel(b.p99Ratio)}</text>`);
    });
    out.push(`<text x="${groupX[gi]! + (group.bars.length * bar) / 2}" y="${p2Bottom + 16}" font-size="11.5" text-anchor="middle">${escapeXml(group.label)}</text>`);
  });

  const height = p2Bottom + 34;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ${FONT}>`,
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}
