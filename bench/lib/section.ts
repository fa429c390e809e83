// The one interface every benchmark section implements, and the rows and columns it reports.

/** What every section is told about the run. */
export interface BenchOptions {
  /** Shorter warm-ups, windows and fewer repeats: a smoke test, not figures to publish. */
  readonly quick: boolean;
  /** Progress output for the person watching (stderr); results go through rows. */
  readonly log: (line: string) => void;
  /**
   * When set, sections that start TQServer run it under `node --cpu-prof` and write the V8 CPU
   * profiles into this directory (and summarize them). Profiled figures are not for publishing.
   */
  readonly profileDir: string | null;
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

/** A table derived from a section's rows (ratios, targets met or missed, profiles), shown under its main table. */
export interface Extra {
  readonly title: string;
  /** Header of the first column, which names each row. Default "case". */
  readonly caseLabel?: string;
  readonly description: string;
  readonly columns: readonly Column[];
  readonly rows: readonly Row[];
}

/**
 * A benchmark section: a name for `--only`, a title and a paragraph for docs/benchmarks.md, the
 * columns of its table, and run(), which starts and stops whatever peers it needs. extras(), when
 * present, derives further tables from the rows (pure).
 */
export interface Section {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly columns: readonly Column[];
  /** Header of the first column, which names each row. Default "case". */
  readonly caseLabel?: string;
  run(options: BenchOptions): Promise<Row[]>;
  extras?(rows: readonly Row[]): Extra[];
}

/** What a section produced, as written to bench/results/latest.json and rendered in tables. */
export interface SectionResult {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly columns: readonly Column[];
  readonly caseLabel?: string;
  readonly rows: readonly Row[];
  /** Tables derived from the rows (Section.extras) and any the run added (CPU profiles); may be empty. */
  readonly extras: readonly Extra[];
  readonly seconds: number;
}
