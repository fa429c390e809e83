// The process manager's policy (php-fpm's pm = static | dynamic | ondemand) as a pure function over
// worker counts and a clock; the pool applies its decisions. No timers, processes or I/O here.

export const PM_MODES = ['static', 'dynamic', 'ondemand'] as const;
export type PmMode = (typeof PM_MODES)[number];

export interface PmConfig {
  manager: PmMode;
  /** pm.max_children: never more workers than this. */
  maxWorkers: number;
  /** pm.start_servers (dynamic): workers started at boot. */
  startWorkers: number;
  /** pm.min_spare_servers (dynamic): idle workers kept ready. */
  minSpareWorkers: number;
  /** pm.max_spare_servers (dynamic): idle workers above this are stopped, oldest idle first. */
  maxSpareWorkers: number;
  /** pm.process_idle_timeout (ondemand): an idle worker is stopped after this long. */
  idleTimeoutMs: number;
  /** pm.max_spawn_rate (dynamic): the cap of the doubling spawn batch. */
  maxSpawnRate: number;
}

export interface IdleWorker {
  id: number;
  /** When it last became idle (clock ms). */
  idleSince: number;
}

export interface PmSnapshot {
  now: number;
  /** Spawned, not yet accepting. */
  starting: number;
  idle: readonly IdleWorker[];
  /** Running a request (retiring workers included: they still hold a process). */
  active: number;
  /** Requests waiting for a worker. */
  queued: number;
  /** The current spawn batch size (starts at 1, doubles while more is needed). */
  spawnRate: number;
  /** When the last idle worker was stopped for being over max_spare (dynamic kills one per second, as php-fpm). */
  lastSpareKillAt: number;
}

export interface PmDecision {
  /** Workers to start now. */
  spawn: number;
  /** Idle workers to stop now, by id. */
  stop: number[];
  /** The spawn batch size for the next decision. */
  spawnRate: number;
  /** More workers were wanted but max_workers holds them back. */
  atMax: boolean;
  /** Decide again after this long even if nothing happens (spare trimming, idle timeouts); null: only on events. */
  recheckInMs: number | null;
}

/** php-fpm trims one surplus idle child per maintenance tick, which runs each second. */
export const SPARE_TRIM_INTERVAL_MS = 1000;

/** Workers a pool starts with. */
export function bootWorkers(config: PmConfig): number {
  switch (config.manager) {
    case 'static':
      return config.maxWorkers;
    case 'dynamic':
      return config.startWorkers;
    case 'ondemand':
      return 0;
    default: {
      const never: never = config.manager;
      return never;
    }
  }
}

/** What the pool should do now, given its counts. */
export function decide(config: PmConfig, snapshot: PmSnapshot): PmDecision {
  return trimExcess(config, snapshot, decideByMode(config, snapshot));
}

function decideByMode(config: PmConfig, snapshot: PmSnapshot): PmDecision {
  switch (config.manager) {
    case 'static':
      return decideStatic(config, snapshot);
    case 'dynamic':
      return decideDynamic(config, snapshot);
    case 'ondemand':
      return decideOndemand(config, snapshot);
    default: {
      const never: never = config.manager;
      return never;
    }
  }
}

/**
 * After max_workers was lowered (a reload), idle workers beyond it are stopped at once, the
 * longest idle first; busy ones are the pool's to retire when their request ends.
 */
function trimExcess(config: PmConfig, s: PmSnapshot, decision: PmDecision): PmDecision {
  const excess = total(s) - config.maxWorkers - decision.stop.length;
  if (excess <= 0) return decision;
  const stop = [...decision.stop];
  const candidates = s.idle.filter((w) => !stop.includes(w.id)).sort((a, b) => a.idleSince - b.idleSince);
  for (const worker of candidates.slice(0, excess)) stop.push(worker.id);
  return { ...decision, spawn: 0, stop };
}

function total(s: PmSnapshot): number {
  return s.starting + s.idle.length + s.active;
}

/** static: exactly max_workers; replace whatever is missing at once. */
function decideStatic(config: PmConfig, s: PmSnapshot): PmDecision {
  const missing = Math.max(0, config.maxWorkers - total(s));
  return { spawn: missing, stop: [], spawnRate: 1, atMax: s.queued > 0 && missing === 0 && s.idle.length === 0, recheckInMs: null };
}

/**
 * dynamic: keep min_spare..max_spare idle workers and serve waiting requests, never more than
 * max_workers. Spawning goes in batches that double (1, 2, 4, ...) up to max_spawn_rate while more
 * is needed, one batch at a time (the next once the current one is up), like php-fpm's
 * idle_spawn_rate; surplus idle workers are stopped one per second, the longest idle first.
 */
function decideDynamic(config: PmConfig, s: PmSnapshot): PmDecision {
  const count = total(s);
  const idle = s.idle.length;
  const wanted = Math.max(config.minSpareWorkers - idle, s.queued - idle) - s.starting;
  const room = config.maxWorkers - count;
  let spawn = 0;
  let spawnRate = s.spawnRate;
  if (wanted > 0 && s.starting === 0 && room > 0) {
    spawn = Math.min(wanted, room, s.spawnRate);
    spawnRate = spawn < wanted ? Math.min(s.spawnRate * 2, config.maxSpawnRate) : 1;
  } else if (wanted <= 0 && s.starting === 0) {
    spawnRate = 1;
  }
  const stop: number[] = [];
  let recheckInMs: number | null = null;
  if (idle > config.maxSpareWorkers && s.queued === 0) {
    const since = s.now - s.lastSpareKillAt;
    if (since >= SPARE_TRIM_INTERVAL_MS) {
      stop.push(oldestIdle(s.idle).id);
      if (idle - 1 > config.maxSpareWorkers) recheckInMs = SPARE_TRIM_INTERVAL_MS;
    } else {
      recheckInMs = SPARE_TRIM_INTERVAL_MS - since;
    }
  }
  return { spawn, stop, spawnRate, atMax: wanted > 0 && wanted > room, recheckInMs };
}

/**
 * ondemand: no workers until requests come; one per waiting request up to max_workers; a worker
 * idle for idle_timeout is stopped. The next check is when the oldest idle worker would expire.
 */
function decideOndemand(config: PmConfig, s: PmSnapshot): PmDecision {
  const wanted = s.queued - s.starting;
  const room = config.maxWorkers - total(s);
  const spawn = wanted > 0 ? Math.min(wanted, room) : 0;
  const stop: number[] = [];
  let nextExpiry = Infinity;
  for (const worker of s.idle) {
    const expiresAt = worker.idleSince + config.idleTimeoutMs;
    if (expiresAt <= s.now) stop.push(worker.id);
    else nextExpiry = Math.min(nextExpiry, expiresAt);
  }
  return {
    spawn,
    stop,
    spawnRate: 1,
    atMax: wanted > 0 && wanted > room,
    recheckInMs: nextExpiry === Infinity ? null : nextExpiry - s.now,
  };
}

function oldestIdle(idle: readonly IdleWorker[]): IdleWorker {
  let oldest = idle[0]!;
  for (const worker of idle) if (worker.idleSince < oldest.idleSince) oldest = worker;
  return oldest;
}
