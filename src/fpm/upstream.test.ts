import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FastCGIClient } from '../fastcgi/client-pool.js';
import { fpmIdleTimeoutMs } from './fpm-backend.js';
import { chooseUpstream, Upstream } from './upstream.js';

/** Upstreams with idle clients (nothing is dispatched, so nothing connects). */
function upstreams(n: number): Upstream[] {
  return Array.from({ length: n }, (_, i) => {
    const address = { host: '127.0.0.1', port: 9000 + i };
    return new Upstream(address, new FastCGIClient({ address, maxConns: 4, idleTimeoutMs: 0 }), 4);
  });
}

test('equally idle upstreams take turns; tried ones and open circuits are skipped', () => {
  const list = upstreams(3);
  assert.deepEqual([0, 1, 2, 3].map((turn) => list.indexOf(chooseUpstream(list, new Set(), turn, 0)!)), [0, 1, 2, 0]);
  assert.equal(chooseUpstream(list, new Set([list[0]!]), 0, 0), list[1]);
  for (let i = 0; i < 3; i++) list[1]!.breaker.failure(0, 'refused');
  assert.equal(list[1]!.breaker.state, 'open');
  assert.equal(chooseUpstream(list, new Set([list[0]!]), 1, 0), list[2], 'the open one is passed over');
  assert.equal(chooseUpstream(list, new Set([list[0]!, list[2]!]), 0, 100), null, 'its cooldown has not passed: nothing to try');
  assert.equal(chooseUpstream(list, new Set([list[0]!, list[2]!]), 0, 10_000), list[1], 'due for a trial when no closed one is left');
  assert.equal(list[1]!.breaker.state, 'half-open');
});

test('idle connections close at a tenth of request_terminate_timeout, between 250 ms and 5 s; never without one', () => {
  assert.deepEqual([0, 1000, 2600, 30_000, 60_000, 300_000].map(fpmIdleTimeoutMs), [0, 250, 260, 3000, 5000, 5000]);
});
