// Durations and sizes as operators write them in YAML: `30` (seconds), `500ms`, `10s`, `2m`, `1h`;
// `1048576`, `512K`, `128M`, `1G` (php.ini style, powers of 1024).

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from a number of seconds or a string with a unit; null when it is not a duration. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : null;
  if (typeof value !== 'string') return null;
  const match = DURATION.exec(value.trim());
  if (!match) return null;
  const unit = (match[2] ?? 's').toLowerCase();
  return Math.round(Number(match[1]) * DURATION_MS[unit]!);
}

const SIZE = /^(\d+(?:\.\d+)?)\s*([KMG])?B?$/i;
const SIZE_BYTES: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** Bytes from a number or a string like `128M`; null when it is not a size. */
export function parseSize(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : null;
  if (typeof value !== 'string') return null;
  const match = SIZE.exec(value.trim());
  if (!match) return null;
  return Math.round(Number(match[1]) * SIZE_BYTES[(match[2] ?? '').toUpperCase()]!);
}

/** A duration for people: 1500 -> "1.5s", 120000 -> "2m". */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}
