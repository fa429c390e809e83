// Order statistics for benchmark samples: median, nearest-rank percentiles and run-to-run spread.

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of values already sorted ascending; NaN when empty. */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Sorts a copy ascending, as a Float64Array (numeric sort, no comparator needed). */
export function sortedCopy(values: readonly number[] | Float64Array): Float64Array {
  return Float64Array.from(values).sort();
}

/** (max - min) / median, in percent: how far apart the repeats of one case were; NaN for one repeat. */
export function spreadPct(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN;
  const mid = median(values);
  if (!(mid > 0)) return 0;
  return ((Math.max(...values) - Math.min(...values)) / mid) * 100;
}
