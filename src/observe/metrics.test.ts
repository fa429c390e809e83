// The Prometheus metrics: request records counted and timed, pool and php-fpm figures read from the
// snapshot at scrape time, and both exposition formats accepted by Prometheus' own parsers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseExposition, samples, value } from '../../test/helpers/prometheus.js';
import { pool, record, snapshot } from '../../test/helpers/snapshot.js';
import type { Readiness } from './health.js';
import { Metrics } from './metrics.js';

function setup(): { metrics: Metrics; current: { snapshot: ReturnType<typeof snapshot>; readiness: Readiness[] } } {
  const current = {
    snapshot: snapshot([
      { name: 'blog', path: '/blog', status: pool() },
      {
        name: 'shop',
        path: '/shop',
        status: pool({
          pool: 'shop',
          backend: 'php-fpm',
          processManager: 'static',
          restarts: { master: 2, requestTimeouts: 0 },
          upstreams: [{ address: 'unix:/run/shop.sock', breaker: 'open', open: 3, idle: 1, busy: 2, queued: 5, requests: 77, retries: 1, failures: 4 }],
          processes: [],
        }),
      },
    ]),
    readiness: [
      { app: 'blog', backend: 'php-cgi', ready: true, reason: '1 idle worker' },
      { app: 'shop', backend: 'php-fpm', ready: false, reason: 'circuit open' },
    ] as Readiness[],
  };
  const metrics = new Metrics({ snapshot: () => current.snapshot, readiness: () => current.readiness, processMetrics: false });
  return { metrics, current };
}

test('requests are counted by app, status class, backend and front; PHP time and queue wait are histograms', async () => {
  const { metrics } = setup();
  for (let i = 0; i < 3; i++) metrics.observe(record({ durationMs: 30, queueMs: 10, phpMs: 20 }));
  metrics.observe(record({ status: 503, durationMs: 2, queueMs: 2, phpMs: null, error: 'POOL_QUEUE_FULL' }));
  metrics.observe(record({ app: 'blog', kind: 'static', status: 304, backend: null, phpMs: null, queueMs: null, durationMs: 1 }));
  metrics.observe(record({ app: 'shop', front: 'fastcgi', backend: 'php-fpm', status: 200, durationMs: 4000, queueMs: 0, phpMs: 4000 }));
  metrics.observe(record({ app: null, kind: 'admin', backend: null, phpMs: null, queueMs: null }));
  const { body, contentType } = await metrics.render('prometheus');
  assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
  const m = parseExposition(body);
  assert.equal(value(m, 'tqserver_requests_total', { app: 'blog', status_class: '2xx', backend: 'php-cgi', front: 'http' }), 3);
  assert.equal(value(m, 'tqserver_requests_total', { app: 'blog', status_class: '5xx', backend: 'php-cgi', front: 'http' }), 1);
  assert.equal(value(m, 'tqserver_requests_total', { app: 'blog', status_class: '3xx', backend: 'none', front: 'http' }), 1);
  assert.equal(value(m, 'tqserver_requests_total', { app: 'shop', status_class: '2xx', backend: 'php-fpm', front: 'fastcgi' }), 1);
  assert.equal(value(m, 'tqserver_requests_total', { app: '', status_class: '2xx', backend: 'none', front: 'http' }), 1);
  assert.equal(value(m, 'tqserver_request_errors_total', { app: 'blog', code: 'POOL_QUEUE_FULL' }), 1);
  // PHP time: three of 20 ms (the 503 never reached PHP, so it is not in this histogram).
  assert.equal(value(m, 'tqserver_request_php_seconds_count', { app: 'blog', backend: 'php-cgi' }), 3);
  assert.ok(Math.abs(value(m, 'tqserver_request_php_seconds_sum', { app: 'blog', backend: 'php-cgi' }) - 0.06) < 1e-9);
  assert.equal(value(m, 'tqserver_request_php_seconds_bucket', { app: 'blog', backend: 'php-cgi', le: '0.01' }), 0);
  assert.equal(value(m, 'tqserver_request_php_seconds_bucket', { app: 'blog', backend: 'php-cgi', le: '0.025' }), 3);
  assert.equal(value(m, 'tqserver_request_php_seconds_bucket', { app: 'shop', backend: 'php-fpm', le: '2.5' }), 0);
  assert.equal(value(m, 'tqserver_request_php_seconds_bucket', { app: 'shop', backend: 'php-fpm', le: '5' }), 1);
  assert.equal(value(m, 'tqserver_request_queue_seconds_count', { app: 'blog', backend: 'php-cgi' }), 3);
  assert.equal(value(m, 'tqserver_request_duration_seconds_count', { app: 'blog', kind: 'php' }), 4);
  assert.equal(value(m, 'tqserver_request_duration_seconds_count', { app: 'blog', kind: 'static' }), 1);
  // Every histogram's buckets are cumulative and end in +Inf = _count.
  for (const family of m.filter((f) => f.type === 'histogram')) {
    const series = new Map<string, number[]>();
    for (const s of family.samples.filter((x) => x.name.endsWith('_bucket'))) {
      const key = JSON.stringify({ ...s.labels, le: undefined });
      series.set(key, [...(series.get(key) ?? []), s.value]);
    }
    for (const [key, counts] of series) {
      assert.deepEqual(counts, [...counts].sort((a, b) => a - b), `${family.name} ${key} buckets are cumulative`);
      const labels = JSON.parse(key) as Record<string, string>;
      assert.equal(counts.at(-1), value(m, `${family.name}_count`, labels));
    }
  }
});

test('pool figures come from the snapshot at scrape time', async () => {
  const { metrics, current } = setup();
  let m = parseExposition((await metrics.render('prometheus')).body);
  assert.equal(value(m, 'tqserver_pool_active_processes', { app: 'blog', backend: 'php-cgi' }), 2);
  assert.equal(value(m, 'tqserver_pool_idle_processes', { app: 'blog' }), 1);
  assert.equal(value(m, 'tqserver_pool_total_processes', { app: 'blog' }), 3);
  assert.equal(value(m, 'tqserver_pool_listen_queue', { app: 'blog' }), 3);
  assert.equal(value(m, 'tqserver_pool_listen_queue_limit', { app: 'blog' }), 512);
  assert.equal(value(m, 'tqserver_pool_max_children', { app: 'blog' }), 4);
  assert.equal(value(m, 'tqserver_pool_max_children_reached_total', { app: 'blog' }), 5);
  assert.equal(value(m, 'tqserver_pool_accepted_connections_total', { app: 'blog' }), 42);
  assert.equal(value(m, 'tqserver_worker_restarts_total', { app: 'blog', reason: 'crashed' }), 3);
  assert.equal(value(m, 'tqserver_worker_restarts_total', { app: 'blog', reason: 'recycled' }), 2);
  assert.deepEqual(samples(m, 'tqserver_worker_restarts_total', { app: 'shop' }), [], 'php-fpm children are not php-cgi workers');
  assert.equal(value(m, 'tqserver_phpfpm_master_restarts_total', { app: 'shop' }), 2);
  const upstream = { app: 'shop', upstream: 'unix:/run/shop.sock' };
  assert.equal(value(m, 'tqserver_phpfpm_upstream_open_connections', upstream), 3);
  assert.equal(value(m, 'tqserver_phpfpm_upstream_idle_connections', upstream), 1);
  assert.equal(value(m, 'tqserver_phpfpm_upstream_busy_connections', upstream), 2);
  assert.equal(value(m, 'tqserver_phpfpm_upstream_queued_requests', upstream), 5);
  assert.equal(value(m, 'tqserver_phpfpm_upstream_requests_total', upstream), 77);
  assert.deepEqual(
    samples(m, 'tqserver_phpfpm_breaker_state', upstream).map((s) => [s.labels.state, s.value]),
    [['closed', 0], ['open', 1], ['half-open', 0]],
  );
  assert.equal(value(m, 'tqserver_app_ready', { app: 'blog' }), 1);
  assert.equal(value(m, 'tqserver_app_ready', { app: 'shop' }), 0);
  assert.equal(value(m, 'tqserver_build_info', { version: '9.9.9' }), 1);
  assert.equal(value(m, 'tqserver_http_fast_path_requests_total', {}), 41);
  assert.equal(value(m, 'tqserver_http_handoffs_total', {}), 3);

  // The next scrape sees the pools as they are then.
  current.snapshot.pools[0]!.status = pool({ activeProcesses: 0, idleProcesses: 3, restarts: { crashed: 4 } });
  current.snapshot.pools[1]!.status.upstreams = [{ ...current.snapshot.pools[1]!.status.upstreams[0]!, breaker: 'closed' }];
  m = parseExposition((await metrics.render('prometheus')).body);
  assert.equal(value(m, 'tqserver_pool_active_processes', { app: 'blog' }), 0);
  assert.equal(value(m, 'tqserver_worker_restarts_total', { app: 'blog', reason: 'crashed' }), 4);
  assert.equal(value(m, 'tqserver_phpfpm_breaker_state', { app: 'shop', state: 'closed' }), 1);
});

test('OpenMetrics: accepted by the strict OpenMetrics parser; the Prometheus text keeps its _total names after it', async () => {
  const { metrics } = setup();
  metrics.observe(record());
  const open = await metrics.render('openmetrics');
  assert.equal(open.contentType, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
  assert.ok(open.body.endsWith('# EOF\n'));
  const om = parseExposition(open.body, 'openmetrics');
  assert.equal(om.find((f) => f.name === 'tqserver_requests')?.type, 'counter');
  assert.equal(value(om, 'tqserver_requests_total', { app: 'blog', status_class: '2xx' }), 1);
  // prom-client strips "_total" from the counter objects for OpenMetrics; Prometheus text must not lose it.
  const [a, b] = await Promise.all([metrics.render('prometheus'), metrics.render('openmetrics')]);
  const text = parseExposition(a.body);
  // (The Python client names counter families without "_total"; the samples keep it.)
  assert.equal(text.find((f) => f.name === 'tqserver_requests')?.type, 'counter');
  assert.equal(value(text, 'tqserver_requests_total', { app: 'blog', status_class: '2xx' }), 1);
  assert.match(a.body, /^# TYPE tqserver_requests_total counter$/m);
  assert.equal(value(parseExposition(b.body, 'openmetrics'), 'tqserver_requests_total', { app: 'blog' }), 1);
});

test('the Node.js process metrics are there too by default', async () => {
  const metrics = new Metrics({ snapshot: () => snapshot(), readiness: () => [] });
  const m = parseExposition((await metrics.render('prometheus')).body);
  assert.ok(value(m, 'process_resident_memory_bytes') > 0);
  assert.ok(samples(m, 'nodejs_eventloop_lag_seconds').length === 1);
});
