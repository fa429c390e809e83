// The side-by-side bench's pure parts: wrk's report, /proc parsing, ratios, targets, generated configs.
// Run with `node --test dist/bench/lib/` (npm test covers src/ and test/ only).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { caddyfile } from './caddy.js';
import { nginxConfig } from './nginx.js';
import { parseStat, parseStatusMemory } from './proc.js';
import { sideBySideRows, type Cell, type Sample } from './side-by-side-rows.js';
import { checkTargets, verdict } from './targets.js';
import { parseWrk } from './wrk.js';

const WRK_OUTPUT = `Running 3s test @ http://127.0.0.1:18080/hello.php
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.92ms    1.82ms   1.01s    89.91%
    Req/Sec     2.91k     1.01k    4.33k    58.33%
  Latency Distribution
     50%  245.00us
     75%    3.10ms
     90%    4.71ms
     99%    1.48s
  17326 requests in 3.00s, 3.42MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   5772.47
Transfer/sec:      1.14MB
`;

describe('parseWrk', () => {
  it('reads rate, percentiles in every unit, bytes and errors', () => {
    const r = parseWrk(WRK_OUTPUT);
    assert.equal(r.requests, 17326);
    assert.equal(r.seconds, 3);
    assert.equal(r.requestsPerSec, 5772.47);
    assert.equal(r.p50Ms, 0.245);
    assert.equal(r.p75Ms, 3.1);
    assert.equal(r.p99Ms, 1480);
    assert.equal(r.maxMs, 1010);
    assert.equal(r.bytesRead, Math.round(3.42 * 1024 * 1024 * 100) / 100);
    assert.equal(r.errors, 8);
    assert.equal(r.errorText, 'Socket errors: connect 0, read 2, write 0, timeout 1; Non-2xx or 3xx responses: 5');
  });

  it('reports no errors when wrk printed none', () => {
    const clean = WRK_OUTPUT.replace(/ {2}Socket errors.*\n/, '').replace(/ {2}Non-2xx.*\n/, '');
    assert.equal(parseWrk(clean).errors, 0);
    assert.equal(parseWrk(clean).errorText, '');
  });

  it('refuses output without the latency distribution', () => {
    assert.throws(() => parseWrk(WRK_OUTPUT.replace(/ {5}50%.*\n/, '')), /50% latency/);
  });
});

describe('/proc parsing', () => {
  it('counts stat fields from the last parenthesis, whatever the command name holds', () => {
    const line = '4242 (php-fpm: pool (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 1 0 98765 1000 200 18446744073709551615';
    assert.deepEqual(parseStat(line), { pid: 4242, ppid: 17, utimeTicks: 123, stimeTicks: 45, startTicks: 98765 });
  });

  it('reads VmRSS and VmHWM in bytes', () => {
    assert.deepEqual(parseStatusMemory('Name:\tnode\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n'), { rssBytes: 1024 * 1024, peakBytes: 2048 * 1024 });
  });
});

function sample(requestsPerSec: number, p99Ms: number, growthBytes = 0): Sample {
  return { requestsPerSec, requests: requestsPerSec * 3, p50Ms: 1, p99Ms, errors: 0, errorText: '', cpuSec: requestsPerSec * 3 * 50e-6, startRssBytes: 10e6, peakRssBytes: 10e6 + growthBytes };
}

function cell(contenderId: string, samples: Sample[], failure: string | null = null): Cell {
  return { workloadId: 'hello64', workloadLabel: 'hello', contenderId, contenderLabel: contenderId, connections: 64, payloadBytes: null, samples, failure, notes: null };
}

describe('sideBySideRows and targets', () => {
  const rows = sideBySideRows(
    [cell('base', [sample(1000, 500), sample(1200, 700), sample(800, 600)]), cell('tq', [sample(1100, 50, 3 * 1024 * 1024)]), cell('down', [], 'did not start')],
    'base',
  );

  it('takes medians over rounds and ratios to the baseline', () => {
    assert.equal(rows[0]!.values.requestsPerSec, 1000);
    assert.equal(rows[0]!.values.p99Ms, 600);
    assert.equal(rows[1]!.values.rpsRatio, 1.1);
    assert.equal(rows[1]!.values.p99Ratio, 50 / 600);
    assert.equal(rows[1]!.values.cpuUsPerRequest, 50);
    assert.equal(rows[1]!.values.rssGrowthMiB, 3);
    assert.equal(rows[2]!.values.requestsPerSec, null);
    assert.equal(rows[2]!.values.failure, 'did not start');
  });

  it('says by how much a target is missed', () => {
    assert.deepEqual(verdict(0.25, '>=', 1), { met: false, text: 'missed by 75 % (needs 4.00× more)' });
    assert.deepEqual(verdict(0.5, '<=', 0.2), { met: false, text: 'missed: 2.50× the limit' });
    assert.deepEqual(verdict(0.1, '<=', 0.2), { met: true, text: 'met' });
  });

  it('checks targets against the rows, and names what was not measured', () => {
    const [faster, tail, missing] = checkTargets(rows, [
      { text: 'req/s', workloadId: 'hello64', measure: { kind: 'ratio', metric: 'requestsPerSec', of: 'tq', to: 'base' }, op: '>=', threshold: 1 },
      { text: 'p99', workloadId: 'hello64', measure: { kind: 'ratio', metric: 'p99Ms', of: 'tq', to: 'base' }, op: '<=', threshold: 0.2 },
      { text: 'down', workloadId: 'hello64', measure: { kind: 'ratio', metric: 'requestsPerSec', of: 'down', to: 'base' }, op: '>=', threshold: 1 },
    ]);
    assert.equal(faster!.met, true);
    assert.equal(tail!.met, true);
    assert.equal(missing!.met, null);
    assert.match(missing!.verdict, /not measured \(no figures for down\)/);
  });
});

describe('generated configs', () => {
  const site = { dir: '/tmp/x', port: 8081, documentRoot: '/srv/php', upstreams: ['/tmp/x/php-fpm.sock'] };

  it('nginx keeps upstream connections only when asked, and then with fastcgi_keep_conn', () => {
    const kept = nginxConfig({ ...site, keepalive: 4 });
    assert.match(kept, /server unix:\/tmp\/x\/php-fpm\.sock;\n {4}keepalive 4;/);
    assert.match(kept, /fastcgi_keep_conn on;/);
    assert.match(kept, /worker_processes 1;/);
    const plain = nginxConfig({ ...site, keepalive: null });
    assert.doesNotMatch(plain, /keepalive \d|fastcgi_keep_conn/);
    assert.match(plain, /try_files \$uri \$uri\/ \/index\.php\?\$args;/);
    assert.match(plain, /listen 127\.0\.0\.1:8081;/);
  });

  it('Caddy listens on loopback only, without its admin endpoint or automatic HTTPS', () => {
    const text = caddyfile({ dir: '/tmp/c', port: 8082, documentRoot: '/srv/php', phpFpmSocket: '/tmp/c/php-fpm.sock' });
    assert.match(text, /admin off/);
    assert.match(text, /auto_https off/);
    assert.match(text, /bind 127\.0\.0\.1/);
    assert.match(text, /php_fastcgi unix\/\/tmp\/c\/php-fpm\.sock/);
  });
});
