// The pm policy over counts and a clock: static, dynamic and ondemand decisions, and a simulated
// pool whose counts rise and fall over time as php-fpm's would.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bootWorkers, decide, SPARE_TRIM_INTERVAL_MS, type IdleWorker, type PmConfig, type PmSnapshot } from './pm.js';

const base: PmConfig = {
  manager: 'dynamic',
  maxWorkers: 10,
  startWorkers: 3,
  minSpareWorkers: 2,
  maxSpareWorkers: 5,
  idleTimeoutMs: 10_000,
  maxSpawnRate: 32,
};

function snap(overrides: Partial<PmSnapshot>): PmSnapshot {
  return { now: 100_000, starting: 0, idle: [], active: 0, queued: 0, spawnRate: 1, lastSpareKillAt: 0, ...overrides };
}

function idle(count: number, since = 0, firstId = 1): IdleWorker[] {
  return Array.from({ length: count }, (_, i) => ({ id: firstId + i, idleSince: since + i }));
}

describe('bootWorkers', () => {
  test('static starts max_workers, dynamic start_workers, ondemand none', () => {
    assert.equal(bootWorkers({ ...base, manager: 'static' }), 10);
    assert.equal(bootWorkers({ ...base, manager: 'dynamic' }), 3);
    assert.equal(bootWorkers({ ...base, manager: 'ondemand' }), 0);
  });
});

describe('static', () => {
  const config: PmConfig = { ...base, manager: 'static', maxWorkers: 4 };

  test('replaces every missing worker at once', () => {
    assert.equal(decide(config, snap({ idle: idle(1), active: 1 })).spawn, 2);
    assert.equal(decide(config, snap({ idle: idle(2), active: 1, starting: 1 })).spawn, 0);
  });

  test('never stops idle workers, however long idle', () => {
    const decision = decide(config, snap({ idle: idle(4, 0), now: 10_000_000 }));
    assert.deepEqual(decision.stop, []);
    assert.equal(decision.recheckInMs, null);
  });

  test('reports max reached when requests wait and all workers are busy', () => {
    assert.equal(decide(config, snap({ active: 4, queued: 3 })).atMax, true);
    assert.equal(decide(config, snap({ active: 3, idle: idle(1) })).atMax, false);
  });
});

describe('dynamic', () => {
  test('spawns up to min_spare idle workers', () => {
    const decision = decide(base, snap({ idle: idle(0), active: 3 }));
    assert.equal(decision.spawn, 1, 'first batch is the spawn rate, 1');
    assert.equal(decision.spawnRate, 2, 'still short, so the next batch doubles');
  });

  test('waits for a batch to come up before the next one', () => {
    assert.equal(decide(base, snap({ starting: 2, active: 3, queued: 5 })).spawn, 0);
  });

  test('batches double up to max_spawn_rate', () => {
    const config = { ...base, maxWorkers: 200, minSpareWorkers: 100, maxSpareWorkers: 150, maxSpawnRate: 8 };
    let rate = 1;
    const batches: number[] = [];
    let idleCount = 0;
    for (let i = 0; i < 6; i++) {
      const decision = decide(config, snap({ idle: idle(idleCount), spawnRate: rate }));
      batches.push(decision.spawn);
      idleCount += decision.spawn;
      rate = decision.spawnRate;
    }
    assert.deepEqual(batches, [1, 2, 4, 8, 8, 8]);
  });

  test('serves a queue: as many workers as requests wait, within max_workers', () => {
    const decision = decide(base, snap({ active: 8, queued: 5, spawnRate: 32 }));
    assert.equal(decision.spawn, 2, 'only 2 more fit under max_workers 10');
    assert.equal(decision.atMax, true);
  });

  test('the rate resets to 1 once enough workers are idle', () => {
    assert.equal(decide(base, snap({ idle: idle(3), spawnRate: 16 })).spawnRate, 1);
  });

  test('stops one surplus idle worker per second, the one idle longest', () => {
    const workers = [
      { id: 7, idleSince: 5000 },
      { id: 8, idleSince: 1000 },
      { id: 9, idleSince: 9000 },
      ...idle(4, 20_000, 10),
    ];
    const first = decide(base, snap({ idle: workers, now: 50_000, lastSpareKillAt: 0 }));
    assert.deepEqual(first.stop, [8]);
    assert.equal(first.recheckInMs, SPARE_TRIM_INTERVAL_MS, 'still one over max_spare: check again in a second');
    const tooSoon = decide(base, snap({ idle: workers.filter((w) => w.id !== 8), now: 50_400, lastSpareKillAt: 50_000 }));
    assert.deepEqual(tooSoon.stop, []);
    assert.equal(tooSoon.recheckInMs, 600);
  });

  test('does not trim while requests are waiting', () => {
    assert.deepEqual(decide(base, snap({ idle: idle(7), queued: 1 })).stop, []);
  });

  test('never exceeds max_workers', () => {
    for (let active = 0; active <= 10; active++) {
      for (let starting = 0; starting <= 10 - active; starting++) {
        const decision = decide(base, snap({ active, starting, queued: 50, spawnRate: 32 }));
        assert.ok(active + starting + decision.spawn <= 10, `active ${active} starting ${starting} spawn ${decision.spawn}`);
      }
    }
  });
});

describe('ondemand', () => {
  const config: PmConfig = { ...base, manager: 'ondemand', maxWorkers: 5, idleTimeoutMs: 10_000 };

  test('spawns one worker per waiting request, within max_workers', () => {
    assert.equal(decide(config, snap({ queued: 3 })).spawn, 3);
    assert.equal(decide(config, snap({ queued: 3, starting: 2 })).spawn, 1);
    const full = decide(config, snap({ queued: 9, active: 4 }));
    assert.equal(full.spawn, 1);
    assert.equal(decide(config, snap({ queued: 9, active: 5 })).atMax, true);
  });

  test('stops workers idle longer than idle_timeout and schedules the next expiry', () => {
    const decision = decide(config, snap({ now: 30_000, idle: [{ id: 1, idleSince: 10_000 }, { id: 2, idleSince: 25_000 }, { id: 3, idleSince: 19_000 }] }));
    assert.deepEqual(decision.stop, [1, 3]);
    assert.equal(decision.recheckInMs, 5000, 'worker 2 expires at 35000');
    assert.equal(decide(config, snap({ now: 30_000 })).recheckInMs, null, 'nothing idle: nothing to wake up for');
  });
});

/**
 * A pool simulated in steps of 100 ms: spawned workers come up one step later, each request takes
 * a step. Returns the worker count after every step.
 */
function simulate(config: PmConfig, arrivals: (step: number) => number, steps: number): number[] {
  let now = 0;
  let rate = 1;
  let lastKill = -Infinity;
  let nextId = 1;
  let starting: number[] = [];
  let idleWorkers: IdleWorker[] = Array.from({ length: bootWorkers(config) }, () => ({ id: nextId++, idleSince: 0 }));
  let queued = 0;
  const totals: number[] = [];
  for (let step = 0; step < steps; step++) {
    now = step * 100;
    // Workers that started last step are idle now; requests of last step are done.
    idleWorkers.push(...starting.map((id) => ({ id, idleSince: now })));
    starting = [];
    queued += arrivals(step);
    const busy = Math.min(queued, idleWorkers.length);
    queued -= busy;
    const serving = idleWorkers.splice(0, busy);
    const decision = decide(config, { now, starting: 0, idle: idleWorkers, active: busy, queued, spawnRate: rate, lastSpareKillAt: lastKill });
    rate = decision.spawnRate;
    if (decision.stop.length > 0) lastKill = now;
    idleWorkers = idleWorkers.filter((w) => !decision.stop.includes(w.id));
    for (let i = 0; i < decision.spawn; i++) starting.push(nextId++);
    // Served workers are idle again at the end of the step.
    idleWorkers.push(...serving.map((w) => ({ id: w.id, idleSince: now + 100 })));
    totals.push(idleWorkers.length + starting.length);
  }
  return totals;
}

describe('over time', () => {
  test('dynamic: grows under a burst to max_workers, then trims to max_spare one per second', () => {
    const totals = simulate(base, (step) => (step >= 5 && step < 25 ? 20 : 0), 120);
    assert.equal(totals[4], 3, 'start_workers before the burst');
    assert.equal(Math.max(...totals), 10, 'max_workers during the burst');
    const peakAt = totals.indexOf(10);
    assert.ok(peakAt <= 10, `reached max_workers within half a second of the burst (step ${peakAt})`);
    assert.equal(totals.at(-1), 5, 'max_spare after the burst');
    const afterBurst = totals.slice(26);
    for (let i = 1; i < afterBurst.length; i++) assert.ok(afterBurst[i]! >= afterBurst[i - 1]! - 1, 'never more than one worker stopped per step');
    const trimSteps = afterBurst.findIndex((t) => t === 5);
    assert.ok(trimSteps >= 40, `trimming 5 workers takes about 5 s at one per second (took ${trimSteps} steps)`);
  });

  test('ondemand: none at boot, one per request, all gone after idle_timeout', () => {
    const config: PmConfig = { ...base, manager: 'ondemand', maxWorkers: 5, idleTimeoutMs: 2000 };
    const totals = simulate(config, (step) => (step === 10 ? 3 : 0), 60);
    assert.equal(totals[0], 0);
    assert.equal(totals[10], 3);
    assert.equal(totals[30], 3, 'still within idle_timeout');
    assert.equal(totals.at(-1), 0);
  });

  test('static: constant', () => {
    const totals = simulate({ ...base, manager: 'static', maxWorkers: 4 }, (step) => (step % 7 === 0 ? 9 : 0), 50);
    assert.ok(totals.every((t) => t === 4));
  });
});

describe('max_workers lowered on a reload', () => {
  test('idle workers beyond it are stopped, the longest idle first, and nothing is spawned', () => {
    for (const manager of ['static', 'dynamic', 'ondemand'] as const) {
      const config: PmConfig = { ...base, manager, maxWorkers: 2, minSpareWorkers: 1, maxSpareWorkers: 2, startWorkers: 1 };
      const workers = [
        { id: 1, idleSince: 300 },
        { id: 2, idleSince: 100 },
        { id: 3, idleSince: 200 },
      ];
      const decision = decide(config, snap({ now: 1000, idle: workers, active: 1, lastSpareKillAt: 1000 }));
      assert.deepEqual([...decision.stop].sort(), [2, 3], manager);
      assert.equal(decision.spawn, 0, manager);
    }
  });

  test('busy workers are not stopped by the policy', () => {
    assert.deepEqual(decide({ ...base, manager: 'static', maxWorkers: 1 }, snap({ active: 3 })).stop, []);
  });
});
