// The dashboard's time series: requests filed by the second they ended in, rates per status class,
// percentiles within a bin's precision, occupancy samples, the ring wrapping over old slots, views
// after a given time, and the slowest recent requests.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { record, T0 } from '../../test/helpers/snapshot.js';
import { AppSeries, binValueMs, LATENCY_BINS, latencyBin, quantileOfBins, Series, statusClassIndex } from './series.js';

/** T0 rounded down to a whole second, so slot arithmetic reads plainly. */
const S0 = Math.floor(T0 / 1000) * 1000;

test('latency bins: every value is within 10% of the value its bin stands for', () => {
  for (const ms of [0.06, 0.3, 1, 4.2, 17, 99, 250, 1234, 9999, 60_000]) {
    const standsFor = binValueMs(latencyBin(ms));
    assert.ok(Math.abs(standsFor - ms) / ms <= 0.1, `${ms} ms reads as ${standsFor}`);
  }
  assert.equal(latencyBin(0), 0);
  assert.equal(latencyBin(-5), 0);
  assert.equal(latencyBin(Number.NaN), 0);
  assert.equal(latencyBin(10 * 60_000), LATENCY_BINS - 1, 'slower than the last edge lands in the last bin');
});

test('quantiles of bins: nearest rank', () => {
  const bins = new Uint32Array(LATENCY_BINS);
  // 90 requests at 10 ms, 9 at 100 ms, 1 at 1000 ms.
  bins[latencyBin(10)] = 90;
  bins[latencyBin(100)] = 9;
  bins[latencyBin(1000)] = 1;
  const near = (value: number | null, expected: number) => assert.ok(value !== null && Math.abs(value - expected) / expected <= 0.1, `${value} ≈ ${expected}`);
  near(quantileOfBins(bins, 0, 100, 0.5), 10);
  near(quantileOfBins(bins, 0, 100, 0.9), 10);
  near(quantileOfBins(bins, 0, 100, 0.95), 100);
  near(quantileOfBins(bins, 0, 100, 0.99), 100);
  near(quantileOfBins(bins, 0, 100, 1), 1000);
  assert.equal(quantileOfBins(bins, 0, 0, 0.5), null);
});

test('status classes: 1xx-5xx, anything else is "other"', () => {
  assert.deepEqual([100, 200, 204, 301, 404, 499, 503, 0, 600, 99].map(statusClassIndex), [0, 1, 1, 2, 3, 3, 4, 5, 5, 5]);
});

test('requests are filed under the second they ended in; the view stops at the last complete second', () => {
  const series = new AppSeries({ slots: 60 });
  // Arrived in second 0 but took 1.5 s: it ended in second 1.
  series.record(record({ startedAt: S0 + 100, durationMs: 1500, status: 200 }));
  for (let i = 0; i < 4; i++) series.record(record({ startedAt: S0 + 2000 + i, durationMs: 5, status: 200 }));
  series.record(record({ startedAt: S0 + 2000, durationMs: 5, status: 503, phpMs: null, queueMs: 5 }));
  series.record(record({ startedAt: S0 + 2000, durationMs: 5, status: 404, kind: 'not-found', phpMs: null, queueMs: null }));
  const view = series.view(S0 + 3500, S0 - 1);
  assert.deepEqual(view.t, [S0, S0 + 1000, S0 + 2000], 'seconds 0, 1 and 2; second 3 is still filling');
  assert.deepEqual(view.rps['2xx'], [0, 1, 4]);
  assert.deepEqual(view.rps['5xx'], [0, 0, 1]);
  assert.deepEqual(view.rps['4xx'], [0, 0, 1]);
  assert.equal(view.p50[0], null, 'nothing ended in second 0');
  assert.ok(Math.abs(view.p50[1]! - 1500) / 1500 <= 0.1, `p50 of second 1: ${view.p50[1]}`);
  assert.ok(Math.abs(view.p99[2]! - 5) / 5 <= 0.1, `p99 of second 2: ${view.p99[2]}`);
  // Queue and PHP time are means over the PHP requests (the 404 had none; the 503 never reached PHP).
  assert.deepEqual(view.phpMs, [null, 9, 9]);
  assert.deepEqual(view.queueMs, [null, 1, 1]);
});

test('occupancy: the last sample in a second is kept; seconds without one read as null', () => {
  const series = new AppSeries({ slots: 60 });
  series.sample(S0 + 100, { idle: 1, active: 0, queued: 0, total: 1, limit: 4 });
  series.sample(S0 + 600, { idle: 0, active: 3, queued: 2, total: 3, limit: 4 });
  series.sample(S0 + 2100, { idle: 2, active: 2, queued: 0, total: 4, limit: 4 });
  const view = series.view(S0 + 3000, S0 - 1);
  assert.deepEqual(view.active, [3, null, 2]);
  assert.deepEqual(view.queued, [2, null, 0]);
  assert.deepEqual(view.limit, [4, null, 4]);
});

test('the ring: a slot is reused for a newer second, never overwritten by an older one', () => {
  const series = new AppSeries({ slots: 10 });
  series.record(record({ startedAt: S0, durationMs: 0 }));
  series.record(record({ startedAt: S0 + 10_000, durationMs: 0 }));
  series.record(record({ startedAt: S0 + 10_000, durationMs: 0 }));
  // Ten seconds late: its slot now holds second 10.
  series.record(record({ startedAt: S0, durationMs: 0 }));
  const view = series.view(S0 + 11_000);
  assert.equal(view.t.length, 10, 'at most the window');
  assert.equal(view.t[0], S0 + 1000);
  assert.deepEqual(view.rps['2xx'].slice(-1), [2]);
  assert.equal(view.rps['2xx'].reduce((a, b) => a + b, 0), 2, 'second 0 is gone');
});

test('view(since): only the seconds after it', () => {
  const series = new AppSeries({ slots: 60 });
  for (let s = 0; s < 5; s++) series.record(record({ startedAt: S0 + s * 1000, durationMs: 1 }));
  assert.deepEqual(series.view(S0 + 5000, S0 + 2000).t, [S0 + 3000, S0 + 4000]);
  assert.deepEqual(series.view(S0 + 5000, S0 + 4000).t, []);
});

test('summary: rate, 5xx share and percentiles over the last complete seconds', () => {
  const series = new AppSeries({ slots: 120 });
  for (let s = 0; s < 10; s++) {
    for (let i = 0; i < 9; i++) series.record(record({ startedAt: S0 + s * 1000, durationMs: 20 }));
    series.record(record({ startedAt: S0 + s * 1000, durationMs: 400, status: 500 }));
  }
  const summary = series.summary(S0 + 10_000, 10_000);
  assert.equal(summary.requests, 100);
  assert.equal(summary.rps, 10);
  assert.equal(summary.errorRatio, 0.1);
  assert.ok(Math.abs(summary.p50! - 20) <= 2);
  assert.ok(Math.abs(summary.p99! - 400) <= 40);
});

test('slow requests: PHP requests over the threshold, the N slowest, slowest first, gone after the window', () => {
  const series = new AppSeries({ slots: 60, slowThresholdMs: 100, slowKeep: 3 });
  series.record(record({ id: 'fast', durationMs: 99 }));
  series.record(record({ id: 'static', kind: 'static', durationMs: 5000, phpMs: null, queueMs: null }));
  for (const [id, ms] of [['a', 150], ['b', 900], ['c', 300], ['d', 120], ['e', 600]] as const) series.record(record({ id, durationMs: ms, startedAt: S0 }));
  assert.deepEqual(series.slow(S0 + 1000).map((r) => r.id), ['b', 'e', 'c']);
  const [slowest] = series.slow(S0 + 1000);
  assert.equal(slowest!.uri, '/blog/index.php');
  assert.equal(slowest!.workerPid, 101);
  // A minute later they ended outside the window.
  assert.deepEqual(series.slow(S0 + 62_000), []);
  series.record(record({ id: 'late', durationMs: 101, startedAt: S0 + 70_000 }));
  assert.deepEqual(series.slow(S0 + 71_000).map((r) => r.id), ['late'], 'an old slow request makes room for a newer, faster one');
});

test('Series: one per app; requests without an app are not charted; retain() drops gone apps', () => {
  const series = new Series({ slots: 10 });
  series.record(record({ app: 'blog' }));
  series.record(record({ app: null, kind: 'admin' }));
  assert.equal(series.has('blog'), true);
  series.retain(new Set(['shop']));
  assert.equal(series.has('blog'), false);
});
