// The one interface every benchmark section implements, and the rows and columns it reports.

/** What every section is told about the run. */
export interface BenchOptions {
  /** Shorter warm-ups, windows and fewer repeats: a smoke test, not figures to publish. */
  readonly quick: boolean;
  /** Progress output for the person watching (stderr); results go through rows. */
  readonly log: (line: string) => void;
}

/** One column of a section's table. `key` names the value in a row; `label` is what people read. */
export interface Column {
  readonly key: string;
  readonly label: string;
  /** Decimal places for numbers. Default 0. */
  readonly digits?: number;
}

/** One measured case. Values are numbers (formatted by their column) or text; null means not applicable. */
export interface Row {
  readonly case: string;
  readonly values: Readonly<Record<string, number | string | null>>;
}

/**
 * A benchmark section: a name for `--only`, a title and a paragraph for docs/benchmarks.md, the
 * columns of its table, and run(), which starts and stops whatever peers it needs.
 */
export interface Section {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly columns: readonly Column[];
  run(options: BenchOptions): Promise<Row[]>;
}

/** What a section produced, as written to bench/results/latest.json and rendered in tables. */
export interface SectionResult {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly columns: readonly Column[];
  readonly rows: readonly Row[];
  readonly seconds: number;
}
