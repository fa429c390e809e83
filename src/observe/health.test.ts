// Readiness as /readyz decides it, from each backend's own figures: a table per backend kind.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fpmReadiness, phpCgiReadiness, type FpmFacts } from './health.js';

const restarts = { recycled: 0, memory: 0, idle: 0, stopped: 0, timeout: 0, aborted: 0, crashed: 12 };
const pool = { crashLoop: false, restarts, idle: 0, starting: 0, total: 4, queueLength: 0, queueLimit: 10 };

test('php-cgi: ready with an idle or starting worker, room to start one, or room in the queue', () => {
  const cases: Array<[string, Partial<typeof pool>, boolean, RegExp]> = [
    ['idle worker', { idle: 2 }, true, /^2 idle workers$/],
    ['starting', { starting: 1 }, true, /1 worker starting/],
    ['may start one', { total: 3 }, true, /can start a worker \(3 of max_workers 4/],
    ['all busy, queue has room', { queueLength: 9 }, true, /all 4 workers busy; 9 of queue_limit 10 waiting/],
    ['all busy, queue full', { queueLength: 10 }, false, /queue is full \(10 waiting, queue_limit 10\)/],
    ['crash loop', { crashLoop: true, idle: 1 }, false, /keep crashing; respawning is paused \(restarts: 12 crashed\)/],
  ];
  for (const [what, stats, ready, reason] of cases) {
    const r = phpCgiReadiness('blog', { ...pool, ...stats }, 4);
    assert.equal(r.ready, ready, what);
    assert.match(r.reason, reason, what);
    assert.equal(r.app, 'blog');
    assert.equal(r.backend, 'php-cgi');
  }
});

test('php-fpm: ready while its master runs and a breaker is closed', () => {
  const up = (breaker: string, breakerReason = '') => ({ address: 'unix:/run/fpm.sock', breaker, breakerReason });
  const cases: Array<[string, FpmFacts, boolean, RegExp]> = [
    ['running, closed', { managed: true, masterState: 'running', upstreams: [up('closed')] }, true, /1 of 1 php-fpm upstream answering/],
    ['master restarting', { managed: true, masterState: 'restarting', upstreams: [up('open', 'php-fpm exited')] }, false, /php-fpm master is restarting/],
    ['open breaker', { managed: true, masterState: 'running', upstreams: [up('open', 'connect ECONNREFUSED')] }, false, /unix:\/run\/fpm.sock: circuit open \(connect ECONNREFUSED\)/],
    ['half-open breaker', { managed: false, masterState: 'external', upstreams: [up('half-open')] }, false, /circuit half-open/],
    ['one of two closed', { managed: false, masterState: 'external', upstreams: [up('open'), { ...up('closed'), address: '10.0.0.2:9000' }] }, true, /1 of 2 php-fpm upstreams answering/],
  ];
  for (const [what, facts, ready, reason] of cases) {
    const r = fpmReadiness('shop', facts);
    assert.equal(r.ready, ready, what);
    assert.match(r.reason, reason, what);
    assert.equal(r.backend, 'php-fpm');
  }
});
