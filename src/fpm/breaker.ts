// A circuit breaker for one upstream (pure, clock passed in): while php-fpm is down, requests are
// answered 503 at once instead of piling up; after a cooldown one trial decides whether it is back.

export const BREAKER_STATES = ['closed', 'open', 'half-open'] as const;
/** closed: requests flow. open: refused at once. half-open: one trial is allowed through. */
export type BreakerState = (typeof BREAKER_STATES)[number];

export interface BreakerOptions {
  /** Consecutive connection failures that open the breaker. Default 3. */
  failureThreshold?: number;
  /** First wait before a trial; it doubles on each failed trial up to maxCooldownMs. Default 500. */
  cooldownMs?: number;
  maxCooldownMs?: number;
}

export class CircuitBreaker {
  readonly #threshold: number;
  readonly #baseCooldownMs: number;
  readonly #maxCooldownMs: number;
  #state: BreakerState = 'closed';
  #failures = 0;
  #cooldownMs: number;
  #openedAt = 0;
  #trialInFlight = false;
  #reason = '';

  constructor(options: BreakerOptions = {}) {
    this.#threshold = options.failureThreshold ?? 3;
    this.#baseCooldownMs = options.cooldownMs ?? 500;
    this.#maxCooldownMs = options.maxCooldownMs ?? 10_000;
    this.#cooldownMs = this.#baseCooldownMs;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Why it opened last. */
  get reason(): string {
    return this.#reason;
  }

  /** Milliseconds until a trial is allowed (0 when closed or due). */
  retryInMs(now: number): number {
    return this.#state === 'open' ? Math.max(0, this.#openedAt + this.#cooldownMs - now) : 0;
  }

  /**
   * May a request (or a probe) go through now? In half-open only one trial at a time; the caller
   * must report its outcome with success() or failure().
   */
  allow(now: number): boolean {
    switch (this.#state) {
      case 'closed':
        return true;
      case 'open':
        if (now - this.#openedAt < this.#cooldownMs) return false;
        this.#state = 'half-open';
        this.#trialInFlight = true;
        return true;
      case 'half-open':
        if (this.#trialInFlight) return false;
        this.#trialInFlight = true;
        return true;
      default: {
        const never: never = this.#state;
        return never;
      }
    }
  }

  /** A request or probe reached the upstream and got an answer. Returns true if the state changed. */
  success(): boolean {
    this.#failures = 0;
    this.#trialInFlight = false;
    if (this.#state === 'closed') return false;
    this.#state = 'closed';
    this.#cooldownMs = this.#baseCooldownMs;
    return true;
  }

  /** A connection-level failure. Returns true if the breaker opened because of it. */
  failure(now: number, reason: string): boolean {
    this.#failures += 1;
    if (this.#state === 'half-open') {
      this.#trialInFlight = false;
      this.#cooldownMs = Math.min(this.#cooldownMs * 2, this.#maxCooldownMs);
      this.#open(now, reason);
      return true;
    }
    if (this.#state === 'closed' && this.#failures >= this.#threshold) {
      this.#open(now, reason);
      return true;
    }
    return false;
  }

  /** Opens at once (the managed php-fpm master is known to be down). Returns true if it was not open. */
  forceOpen(now: number, reason: string): boolean {
    if (this.#state === 'open') return false;
    this.#trialInFlight = false;
    this.#open(now, reason);
    return true;
  }

  #open(now: number, reason: string): void {
    this.#state = 'open';
    this.#openedAt = now;
    this.#reason = reason;
  }
}
