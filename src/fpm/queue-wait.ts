// How long requests waited in TQServer's queue for a php-fpm connection (pure): a count, a sum, the
// longest wait, and a small cumulative histogram (Prometheus-style `le` buckets) for the status
// page and metrics.

/** Upper bounds of the buckets, in milliseconds; a wait above the last one counts only in `count`. */
export const QUEUE_WAIT_BUCKETS_MS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const;

export interface QueueWaitStats {
  /** Requests that got a connection. */
  count: number;
  sumMs: number;
  maxMs: number;
  /** Cumulative: how many waited at most `leMs` (the +Inf bucket is `count`). */
  buckets: Array<{ leMs: number; count: number }>;
}

export class QueueWait {
  #count = 0;
  #sumMs = 0;
  #maxMs = 0;
  /** Non-cumulative counts per bucket; cumulated when read. */
  readonly #perBucket: number[] = QUEUE_WAIT_BUCKETS_MS.map(() => 0);

  /** One request's wait (negative clock steps count as 0). */
  record(waitMs: number): void {
    const ms = Math.max(0, waitMs);
    this.#count += 1;
    this.#sumMs += ms;
    if (ms > this.#maxMs) this.#maxMs = ms;
    const index = QUEUE_WAIT_BUCKETS_MS.findIndex((le) => ms <= le);
    if (index >= 0) this.#perBucket[index]! += 1;
  }

  get stats(): QueueWaitStats {
    let running = 0;
    return {
      count: this.#count,
      sumMs: this.#sumMs,
      maxMs: this.#maxMs,
      buckets: QUEUE_WAIT_BUCKETS_MS.map((leMs, i) => {
        running += this.#perBucket[i]!;
        return { leMs, count: running };
      }),
    };
  }
}
