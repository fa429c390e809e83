// Slow log lines: which requests are slow, and the exact line with the URL, method, request id,
// duration, queue wait, PHP time, pid and script (what php-fpm's slowlog lacks); the server-log form.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { memoryLogger } from '../log.js';
import type { RequestRecord } from './request-record.js';
import { formatSlowLine, isSlow, SlowLog, slowLogEntry } from './slow-log.js';

function record(overrides: Partial<RequestRecord> = {}): RequestRecord {
  return {
    id: 'abc-7',
    front: 'http',
    app: 'blog',
    kind: 'php',
    method: 'POST',
    uri: '/blog/report.php?year=2024',
    httpVersion: '1.1',
    remoteAddress: '127.0.0.1',
    status: 200,
    bytesSent: 512,
    startedAt: Date.UTC(2024, 4, 1, 10, 0, 0),
    durationMs: 6012.4,
    queueMs: 1500.2,
    phpMs: 4510,
    backend: 'php-cgi',
    workerPid: 31337,
    script: 'report.php',
    userAgent: 'curl/8',
    referer: '',
    error: null,
    aborted: false,
    ...overrides,
  };
}

describe('slow log', () => {
  const slow: Array<[string, Partial<RequestRecord>, number, boolean]> = [
    ['over the threshold', { durationMs: 6000 }, 5000, true],
    ['exactly the threshold', { durationMs: 5000 }, 5000, true],
    ['under it', { durationMs: 4999.9 }, 5000, false],
    ['threshold 0 turns it off', { durationMs: 60_000 }, 0, false],
    ['a static file is never slow PHP', { durationMs: 60_000, kind: 'static' }, 5000, false],
    ['a slow request that failed is still slow', { durationMs: 30_000, status: 504, error: 'PHP_REQUEST_TIMEOUT' }, 5000, true],
  ];
  for (const [name, overrides, thresholdMs, expected] of slow) test(`isSlow: ${name}`, () => assert.equal(isSlow(record(overrides), thresholdMs), expected));

  test('the line names the request and where its time went', () => {
    assert.equal(
      formatSlowLine(record(), 0),
      '[01/May/2024:10:00:00 +0000] app=blog "POST /blog/report.php?year=2024 HTTP/1.1" 200 rt=6.012 qt=1.500 pt=4.510 be=php-cgi pid=31337 script=report.php rid=abc-7 err=-',
    );
    assert.equal(
      formatSlowLine(record({ status: 504, error: 'PHP_REQUEST_TIMEOUT', backend: 'php-fpm', workerPid: null, front: 'fastcgi', httpVersion: '' }), 60),
      '[01/May/2024:11:00:00 +0100] app=blog "POST /blog/report.php?year=2024" 504 rt=6.012 qt=1.500 pt=4.510 be=php-fpm pid=- script=report.php rid=abc-7 err=PHP_REQUEST_TIMEOUT',
    );
  });

  test('a hostile URI or script name stays one line', () => {
    const line = formatSlowLine(record({ uri: '/x"\n[01/May/2024:10:00:00 +0000] app=admin', script: 'a b\n.php' }), 0);
    assert.match(line, /^[\x20-\x7e]+$/);
    assert.ok(line.includes('"POST /x\\x22\\x0A[01/May/2024:10:00:00 +0000] app=admin HTTP/1.1"'));
    assert.ok(line.includes('script=a\\x20b\\x0A.php'));
  });

  test('without a file: one warning in the server log with the same facts', () => {
    const { log, records } = memoryLogger();
    const slowLog = new SlowLog({ thresholdMs: 5000, file: null, log });
    assert.equal(slowLog.write(record({ durationMs: 100 })), false);
    assert.equal(slowLog.write(record()), true);
    assert.equal(records.length, 1);
    const [line] = records;
    assert.equal(line!.level, 40);
    assert.equal(line!.msg, 'slow request: POST /blog/report.php?year=2024 took 6.012 s (slow_log.threshold 5.000 s; queued 1.500 s, PHP 4.510 s, php-cgi pid 31337, script report.php), status 200');
    assert.deepEqual(
      { req: line!.req, app: line!.app, method: line!.method, uri: line!.uri, pid: line!.pid, script: line!.script, durationMs: line!.durationMs, queueMs: line!.queueMs },
      { req: 'abc-7', app: 'blog', method: 'POST', uri: '/blog/report.php?year=2024', pid: 31337, script: 'report.php', durationMs: 6012.4, queueMs: 1500.2 },
    );
    assert.equal(slowLogEntry(record({ backend: 'php-fpm', workerPid: null }), 5000).msg.includes(', php-fpm, script report.php'), true);
  });
});
