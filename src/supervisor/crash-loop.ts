// The crash-loop guard (php-fpm's emergency_restart_threshold and _interval): crashes counted over a
// sliding interval; at the threshold respawning pauses, the pause doubling per failed round up to a
// limit. Pure: the clock is passed in.

import type { PoolConfig } from './pool-config.js';

export const DEFAULT_CRASH_THRESHOLD = 10;
export const DEFAULT_CRASH_INTERVAL_MS = 60_000;
export const DEFAULT_CRASH_BACKOFF_MAX_MS = 30_000;

/** ok: below the threshold; pause: this crash started a pause (until respawnAt); paused: one is on already. */
export type CrashVerdict = 'ok' | 'pause' | 'paused';

export class CrashLoop {
  #times: number[] = [];
  #backoffMs = 0;
  #respawnAt = 0;

  /** Crashes within the interval, as of the last one noted. */
  get crashes(): number {
    return this.#times.length;
  }

  /** The current pause's length. */
  get backoffMs(): number {
    return this.#backoffMs;
  }

  /** Respawning is paused until then (epoch ms). */
  get respawnAt(): number {
    return this.#respawnAt;
  }

  /** Records a crash at `now` (of a worker that never finished a request: see WorkerPool#onWorkerExit). */
  note(now: number, config: Pick<PoolConfig, 'crashThreshold' | 'crashIntervalMs' | 'crashBackoffMaxMs'>): CrashVerdict {
    const intervalMs = config.crashIntervalMs ?? DEFAULT_CRASH_INTERVAL_MS;
    const threshold = config.crashThreshold ?? DEFAULT_CRASH_THRESHOLD;
    this.#times = this.#times.filter((t) => t > now - intervalMs);
    this.#times.push(now);
    if (this.#times.length < threshold) {
      // Fewer crashes than the threshold within the interval: a later loop starts from the first step.
      this.#backoffMs = 0;
      return 'ok';
    }
    // The pause doubles once per failed round of respawns: the other workers of a round that is
    // already paused (started together, crashing together) do not lengthen it again.
    if (now < this.#respawnAt) return 'paused';
    this.#backoffMs = Math.min(Math.max(this.#backoffMs * 2, 1000), config.crashBackoffMaxMs ?? DEFAULT_CRASH_BACKOFF_MAX_MS);
    this.#respawnAt = now + this.#backoffMs;
    return 'pause';
  }
}
