// The circuit breaker's states over a fake clock: closed, open after consecutive failures, one trial
// after the cooldown (half-open), closed again on success, cooldown doubling on a failed trial.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from './breaker.js';

test('opens after the threshold of consecutive failures, not before', () => {
  const breaker = new CircuitBreaker({ failureThreshold: 3 });
  assert.equal(breaker.failure(0, 'refused'), false);
  assert.equal(breaker.failure(1, 'refused'), false);
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.failure(2, 'refused'), true);
  assert.equal(breaker.state, 'open');
  assert.equal(breaker.reason, 'refused');
});

test('a success in between resets the count', () => {
  const breaker = new CircuitBreaker({ failureThreshold: 2 });
  breaker.failure(0, 'x');
  breaker.success();
  breaker.failure(1, 'x');
  assert.equal(breaker.state, 'closed');
});

test('refuses while open, lets one trial through after the cooldown, closes on its success', () => {
  const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 500 });
  breaker.failure(1000, 'down');
  assert.equal(breaker.allow(1200), false);
  assert.equal(breaker.retryInMs(1200), 300);
  assert.equal(breaker.allow(1500), true, 'the trial');
  assert.equal(breaker.state, 'half-open');
  assert.equal(breaker.allow(1501), false, 'only one trial at a time');
  assert.equal(breaker.success(), true);
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.allow(1502), true);
});

test('a failed trial reopens with a doubled cooldown, capped', () => {
  const breaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 500, maxCooldownMs: 1500 });
  breaker.failure(0, 'down');
  let now = 500;
  const waits: number[] = [];
  for (let i = 0; i < 4; i++) {
    assert.equal(breaker.allow(now), true);
    breaker.failure(now, 'still down');
    waits.push(breaker.retryInMs(now));
    now += breaker.retryInMs(now);
  }
  assert.deepEqual(waits, [1000, 1500, 1500, 1500]);
  breaker.allow(now);
  breaker.success();
  breaker.failure(now, 'again');
  assert.equal(breaker.retryInMs(now), 500, 'the cooldown starts over after a recovery');
});

test('forceOpen opens at once and says whether it changed anything', () => {
  const breaker = new CircuitBreaker();
  assert.equal(breaker.forceOpen(0, 'master exited'), true);
  assert.equal(breaker.forceOpen(1, 'again'), false);
  assert.equal(breaker.state, 'open');
});
