// Feeds the dashboard's time series: every finished request (as a request observer) and, twice a
// slot, each app's pool occupancy, so every slot gets a sample even when the timer drifts.

import type { Backend } from '../backend.js';
import { occupancyOf } from './health.js';
import type { RequestRecord } from './request-record.js';
import { Series, type AppSeriesOptions } from './series.js';

export interface SampledApp {
  name: string;
  backend: Backend;
  maxWorkers: number;
  /** Requests at least this slow (ms) are kept in the app's slow list. */
  slowThresholdMs: number;
}

export interface SeriesRecorderOptions extends Omit<AppSeriesOptions, 'slowThresholdMs'> {
  apps: () => Iterable<SampledApp>;
  clock?: () => number;
}

export class SeriesRecorder {
  readonly series: Series;
  readonly #options: SeriesRecorderOptions;
  readonly #clock: () => number;
  #timer: NodeJS.Timeout | null = null;

  constructor(options: SeriesRecorderOptions) {
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    this.series = new Series(options);
  }

  readonly observe = (record: RequestRecord): void => this.series.record(record);

  /** Takes one sample of every app now. */
  sample(): void {
    const now = this.#clock();
    const names = new Set<string>();
    for (const app of this.#options.apps()) {
      names.add(app.name);
      const series = this.series.app(app.name);
      series.slowThresholdMs = app.slowThresholdMs;
      series.sample(now, occupancyOf(app.backend, app.maxWorkers));
    }
    this.series.retain(names);
  }

  start(): void {
    if (this.#timer) return;
    this.sample();
    this.#timer = setInterval(() => this.sample(), Math.max(50, (this.#options.resolutionMs ?? 1000) / 2));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
