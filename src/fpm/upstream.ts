// One php-fpm upstream as the backend sees it: its pooled client (and clients being retired after a
// reload), its circuit breaker, its counters, and the least-busy choice between upstreams.

import { formatAddress, type Address } from '../fastcgi/address.js';
import type { FastCGIClient } from '../fastcgi/client-pool.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';
import type { FpmPoolStatus } from './fpm-status.js';
import { QueueWait, type QueueWaitStats } from './queue-wait.js';

export interface UpstreamStats {
  address: string;
  breaker: BreakerState;
  breakerReason: string;
  /** How often the breaker opened or closed. */
  breakerChanges: number;
  /** Did the last health check get an answer (false from when its circuit opens). */
  healthy: boolean;
  /** Connections: open (idle + busy), idle, busy (carrying a request), connecting. */
  open: number;
  idle: number;
  busy: number;
  connecting: number;
  /** Requests waiting in TQServer's queue for a connection to this upstream. */
  queued: number;
  requests: number;
  /** Requests sent again on a fresh connection after a kept-alive one was found closed. */
  retries: number;
  /** Consecutive connection failures (reset by an answer). */
  failures: number;
  /** Connections that could not be opened, in all. */
  connectFailures: number;
  /** Requests that could not be sent here (connect failed, circuit opened) and went to another upstream. */
  failovers: number;
  queueWait: QueueWaitStats;
  /** php-fpm's own figures from its status page, as of the last health check. */
  php: FpmPoolStatus | null;
}

export class Upstream {
  readonly address: Address;
  readonly label: string;
  readonly breaker = new CircuitBreaker();
  readonly queueWait = new QueueWait();
  /** Requests in flight at once it is sized for (php-fpm's pm.max_children, or php_fpm.pool_size). */
  capacity: number;
  #client: FastCGIClient;
  /** Clients replaced by a reload, finishing their requests; counted until they have closed. */
  readonly #retiring = new Set<FastCGIClient>();
  /** Counters of retired clients, so the totals survive a reload. */
  #retiredRequests = 0;
  #retiredRetries = 0;
  failures = 0;
  connectFailures = 0;
  failovers = 0;
  breakerChanges = 0;
  healthy = true;
  php: FpmPoolStatus | null = null;

  constructor(address: Address, client: FastCGIClient, capacity: number) {
    this.address = address;
    this.label = formatAddress(address);
    this.#client = client;
    this.capacity = capacity;
  }

  get client(): FastCGIClient {
    return this.#client;
  }

  /**
   * Puts a new client in place (new requests go to it) and closes the old one gracefully: its idle
   * connections close now, its running requests finish first. Returns the old client.
   */
  replaceClient(client: FastCGIClient, capacity: number): FastCGIClient {
    const old = this.#client;
    this.#client = client;
    this.capacity = capacity;
    this.#retiring.add(old);
    void old.close().then(() => {
      this.#retiring.delete(old);
      this.#retiredRequests += old.stats.requests;
      this.#retiredRetries += old.stats.retries;
    });
    return old;
  }

  /** Every client, the current one first. */
  clients(): FastCGIClient[] {
    return [this.#client, ...this.#retiring];
  }

  /** In flight plus waiting, relative to what it can take: the least busy upstream gets the next request. */
  load(): number {
    // Asked per request: counted without building the clients' stats objects.
    let n = this.#client.inFlight;
    for (const client of this.#retiring) n += client.inFlight;
    return n / this.capacity;
  }

  stats(): UpstreamStats {
    const sum = { open: 0, idle: 0, busy: 0, connecting: 0, queued: 0, requests: this.#retiredRequests, retries: this.#retiredRetries };
    for (const client of this.clients()) {
      const s = client.stats;
      sum.open += s.open;
      sum.idle += s.idle;
      sum.busy += s.busy;
      sum.connecting += s.connecting;
      sum.queued += s.queued;
      sum.requests += s.requests;
      sum.retries += s.retries;
    }
    return {
      address: this.label,
      breaker: this.breaker.state,
      breakerReason: this.breaker.reason,
      breakerChanges: this.breakerChanges,
      healthy: this.healthy,
      ...sum,
      failures: this.failures,
      connectFailures: this.connectFailures,
      failovers: this.failovers,
      queueWait: this.queueWait.stats,
      php: this.php,
    };
  }
}

/**
 * The upstream for the next request: among those not yet tried whose circuit is closed, the least
 * busy; equally busy ones take turns from `turn` on (so light traffic spreads too, as nginx's
 * least_conn does). When no circuit is closed, one that is due for a trial (breaker.allow, which
 * moves it to half-open). Null when none may be tried.
 */
export function chooseUpstream(upstreams: readonly Upstream[], tried: ReadonlySet<Upstream>, turn: number, now: number): Upstream | null {
  let chosen: Upstream | null = null;
  let chosenLoad = Infinity;
  for (let i = 0; i < upstreams.length; i++) {
    const upstream = upstreams[(turn + i) % upstreams.length]!;
    if (tried.has(upstream) || upstream.breaker.state !== 'closed') continue;
    // A single upstream has nothing to be compared with: the common case skips counting.
    const load = upstreams.length === 1 ? 0 : upstream.load();
    if (load < chosenLoad) {
      chosen = upstream;
      chosenLoad = load;
    }
  }
  if (chosen) return chosen;
  return upstreams.find((u) => !tried.has(u) && u.breaker.allow(now)) ?? null;
}
