import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QUEUE_WAIT_BUCKETS_MS, QueueWait } from './queue-wait.js';

test('an empty record: zero count, sum and max, every bucket empty', () => {
  const stats = new QueueWait().stats;
  assert.deepEqual({ count: stats.count, sumMs: stats.sumMs, maxMs: stats.maxMs }, { count: 0, sumMs: 0, maxMs: 0 });
  assert.equal(stats.buckets.length, QUEUE_WAIT_BUCKETS_MS.length);
  assert.ok(stats.buckets.every((b) => b.count === 0));
});

test('waits land in cumulative le buckets; a wait on a bound counts in that bucket; above the last only in count', () => {
  const wait = new QueueWait();
  for (const ms of [0, 1, 3, 5, 60, 20_000, -2]) wait.record(ms);
  const stats = wait.stats;
  assert.equal(stats.count, 7);
  assert.equal(stats.sumMs, 0 + 1 + 3 + 5 + 60 + 20_000 + 0);
  assert.equal(stats.maxMs, 20_000);
  const le = (bound: number) => stats.buckets.find((b) => b.leMs === bound)!.count;
  assert.equal(le(1), 3, '0, 1 and the negative wait (as 0)');
  assert.equal(le(5), 5);
  assert.equal(le(50), 5);
  assert.equal(le(100), 6);
  assert.equal(le(10_000), 6, '20 s is above the last bucket');
  for (let i = 1; i < stats.buckets.length; i++) assert.ok(stats.buckets[i]!.count >= stats.buckets[i - 1]!.count, 'cumulative');
});
