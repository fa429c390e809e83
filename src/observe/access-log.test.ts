// Access log lines from request records: exact common, combined and JSON lines, and escaping that
// keeps every request-supplied byte from adding a line or a field (log injection).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LogFile } from '../log-file.js';
import { AccessLog, formatAccessLine, putAccessLine } from './access-log.js';
import { clfTime, escapeField, escapeMessage, seconds } from './log-text.js';
import type { RequestRecord } from './request-record.js';

/** 2024-05-01 10:00:00.123 UTC. */
const AT = Date.UTC(2024, 4, 1, 10, 0, 0, 123);

function record(overrides: Partial<RequestRecord> = {}): RequestRecord {
  return {
    id: 'req-1',
    front: 'http',
    app: 'blog',
    kind: 'php',
    method: 'GET',
    uri: '/blog/index.php?x=1',
    httpVersion: '1.1',
    remoteAddress: '127.0.0.1',
    status: 200,
    bytesSent: 1234,
    startedAt: AT,
    durationMs: 12.3456,
    queueMs: 1.2,
    phpMs: 11.0004,
    backend: 'php-cgi',
    workerPid: 4242,
    script: 'index.php',
    userAgent: 'curl/8.5.0',
    referer: 'http://example.com/',
    error: null,
    aborted: false,
    ...overrides,
  };
}

describe('access log formats', () => {
  const cases: Array<[string, RequestRecord, 'common' | 'combined', string]> = [
    [
      'combined, a PHP request',
      record(),
      'combined',
      '127.0.0.1 - - [01/May/2024:12:00:00 +0200] "GET /blog/index.php?x=1 HTTP/1.1" 200 1234 "http://example.com/" "curl/8.5.0" rt=0.012 qt=0.001 pt=0.011 be=php-cgi pid=4242 rid=req-1 err=-',
    ],
    [
      'common, a PHP request',
      record(),
      'common',
      '127.0.0.1 - - [01/May/2024:12:00:00 +0200] "GET /blog/index.php?x=1 HTTP/1.1" 200 1234 rt=0.012 qt=0.001 pt=0.011 be=php-cgi pid=4242 rid=req-1 err=-',
    ],
    [
      'combined, a static file: no referer or agent, no PHP fields',
      record({ kind: 'static', uri: '/blog/app.css', queueMs: null, phpMs: null, backend: null, workerPid: null, script: null, referer: '', userAgent: '', durationMs: 0.4 }),
      'combined',
      '127.0.0.1 - - [01/May/2024:12:00:00 +0200] "GET /blog/app.css HTTP/1.1" 200 1234 "-" "-" rt=0.000 qt=- pt=- be=- pid=- rid=req-1 err=-',
    ],
    [
      'combined, a 503 from a full queue: queue time only, the error code',
      record({ status: 503, queueMs: 0.05, phpMs: null, workerPid: null, error: 'POOL_QUEUE_FULL', durationMs: 2 }),
      'combined',
      '127.0.0.1 - - [01/May/2024:12:00:00 +0200] "GET /blog/index.php?x=1 HTTP/1.1" 503 1234 "http://example.com/" "curl/8.5.0" rt=0.002 qt=0.000 pt=- be=php-cgi pid=- rid=req-1 err=POOL_QUEUE_FULL',
    ],
    [
      'combined, from the FastCGI front on php-fpm (no pid, no protocol known)',
      record({ front: 'fastcgi', backend: 'php-fpm', workerPid: null, httpVersion: '', remoteAddress: '10.0.0.7' }),
      'combined',
      '10.0.0.7 - - [01/May/2024:12:00:00 +0200] "GET /blog/index.php?x=1" 200 1234 "http://example.com/" "curl/8.5.0" rt=0.012 qt=0.001 pt=0.011 be=php-fpm pid=- rid=req-1 err=-',
    ],
  ];
  for (const [name, input, format, expected] of cases) {
    test(name, () => assert.equal(formatAccessLine(input, format, 120), expected));
  }

  test('json: every field, numbers rounded to microseconds, UTC time', () => {
    const line = formatAccessLine(record(), 'json');
    assert.equal(
      line,
      '{"time":"2024-05-01T10:00:00.123Z","req":"req-1","app":"blog","front":"http","kind":"php","remote_addr":"127.0.0.1","method":"GET",' +
        '"uri":"/blog/index.php?x=1","protocol":"HTTP/1.1","status":200,"bytes_sent":1234,"referer":"http://example.com/","user_agent":"curl/8.5.0",' +
        '"duration_ms":12.346,"queue_ms":1.2,"php_ms":11,"backend":"php-cgi","pid":4242,"script":"index.php","error":null,"aborted":false}',
    );
  });

  test('the time is local with its offset, as nginx writes $time_local', () => {
    assert.equal(clfTime(AT, 0), '01/May/2024:10:00:00 +0000');
    assert.equal(clfTime(AT, -300), '01/May/2024:05:00:00 -0500');
    assert.equal(clfTime(AT, 330), '01/May/2024:15:30:00 +0530');
    assert.equal(clfTime(Date.UTC(2023, 11, 31, 23, 30), 60), '01/Jan/2024:00:30:00 +0100');
    assert.match(clfTime(AT), /^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$/);
  });

  test('seconds with millisecond resolution', () => {
    assert.deepEqual([seconds(0), seconds(0.4), seconds(0.5), seconds(1234.5), seconds(null), seconds(-1)], ['0.000', '0.000', '0.001', '1.234', '-', '0.000']);
  });
});

describe('log injection is impossible', () => {
  const escapes: Array<[string, string, string]> = [
    ['a quote', 'a"b', 'a\\x22b'],
    ['a backslash', 'a\\b', 'a\\x5Cb'],
    ['a line feed and carriage return', 'a\r\nb', 'a\\x0D\\x0Ab'],
    ['an escape sequence for terminals', '\x1b[31mred', '\\x1B[31mred'],
    ['a tab, NUL and DEL', '\t\0\x7f', '\\x09\\x00\\x7F'],
    ['latin1 bytes as Node reads them', '/caf\xe9', '/caf\\xE9'],
    ['characters above U+00FF as their UTF-8 bytes', '/€/😀', '/\\xE2\\x82\\xAC/\\xF0\\x9F\\x98\\x80'],
    ['a lone surrogate', 'a\ud800b', 'a\\xEF\\xBF\\xBDb'],
    ['plain text is left alone', '/blog/index.php?a=1&b=%22', '/blog/index.php?a=1&b=%22'],
  ];
  for (const [name, input, expected] of escapes) test(`escapeField: ${name}`, () => assert.equal(escapeField(input), expected));

  test('spaces are escaped only in fields without quotes', () => {
    assert.equal(escapeField('a b'), 'a b');
    assert.equal(escapeField('a b', true), 'a\\x20b');
  });

  const hostile = record({
    method: 'GET\nFAKE',
    uri: '/x" 200 1 "-" "-" rt=0.001\n127.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET /admin HTTP/1.1',
    userAgent: 'Mozilla"\r\n\x1b[2J',
    referer: 'http://a/"b',
    remoteAddress: '1.2.3.4 evil',
  });

  for (const format of ['common', 'combined'] as const) {
    test(`${format}: one printable ASCII line with exactly its fields, whatever the request held`, () => {
      const line = formatAccessLine(hostile, format, 0);
      assert.match(line, /^[\x20-\x7e]+$/, 'printable ASCII only, no line break');
      const combined = /^(\S+) - - \[([^\]]+)\] "((?:[^"\\]|\\x[0-9A-F]{2})*)" (\d{3}) (\d+)(?: "((?:[^"\\]|\\x[0-9A-F]{2})*)" "((?:[^"\\]|\\x[0-9A-F]{2})*)")? rt=\S+ qt=\S+ pt=\S+ be=\S+ pid=\S+ rid=\S+ err=\S+$/;
      const match = combined.exec(line);
      assert.ok(match, line);
      assert.equal(match[1], '1.2.3.4\\x20evil');
      assert.equal(match[3], 'GET\\x0AFAKE /x\\x22 200 1 \\x22-\\x22 \\x22-\\x22 rt=0.001\\x0A127.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \\x22GET /admin HTTP/1.1 HTTP/1.1');
      if (format === 'combined') {
        assert.equal(match[6], 'http://a/\\x22b');
        assert.equal(match[7], 'Mozilla\\x22\\x0D\\x0A\\x1B[2J');
      }
    });
  }

  test('json: one line that parses back to exactly what the request held', () => {
    const line = formatAccessLine(hostile, 'json');
    assert.ok(!/[\n\r]/.test(line));
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed.uri, hostile.uri);
    assert.equal(parsed.user_agent, hostile.userAgent);
    assert.equal(parsed.method, hostile.method);
  });

  test('escapeMessage keeps readable text and escapes every control character', () => {
    assert.equal(escapeMessage('PHP Warning:  Undefined variable $x in /app/a.php on line 3'), 'PHP Warning:  Undefined variable $x in /app/a.php on line 3');
    assert.equal(escapeMessage('naïve – ünïcode 😀'), 'naïve – ünïcode 😀');
    assert.equal(escapeMessage('a\nb\rc\x1b\x7f\x85\u2028'), 'a\\x0Ab\\x0Dc\\x1B\\x7F\\x85\\u2028');
  });
});

describe('the text formats written straight into the batch (putAccessLine)', () => {
  /** Characters a request can hold: plain ASCII, what must be escaped, latin1, and beyond (the writer gives up there). */
  const ALPHABET = ['a', 'Z', '0', '/', '?', '=', ' ', '"', '\\', '\n', '\r', '\x00', '\x1b', '\x7f', '\x85', 'é', '\xff', 'ü', '–', '😀', '-'];
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const text = (max: number) => Array.from({ length: Math.floor(random() * max) }, () => pick(ALPHABET)).join('');
  const number = () => pick([null, 0, 0.4, 1.5, 1234.5, 12.3456, 999.9995, 1e9, 1e12, -3, NaN, random() * 5000, Math.floor(random() * 100000)]);

  test('the same bytes as formatAccessLine, or -1 (the string path then writes them), on random records', () => {
    const buf = Buffer.alloc(16 * 1024);
    let written = 0;
    for (let i = 0; i < 5000; i++) {
      const r = record({
        remoteAddress: pick(['127.0.0.1', '::1', '', text(20)]),
        method: pick(['GET', 'POST', '', text(8)]),
        uri: pick(['/blog/index.php?x=1', '', text(60)]),
        httpVersion: pick(['1.1', '1.0', '', text(4)]),
        status: pick([200, 404, 503, 200.5]),
        bytesSent: pick([0, 1234, 98765432, 1e16, 2.5]),
        startedAt: AT + Math.floor(random() * 3e9),
        durationMs: pick([0, 0.4, 1234.5, 12.3456, 999.9995, 1e9, -3, NaN, random() * 5000]),
        queueMs: number(),
        phpMs: number(),
        backend: pick(['php-cgi', 'php-fpm', null]),
        workerPid: pick([null, 4242, 1, 2.5]),
        id: pick(['req-1', '1a2b3c4d-7z', text(10)]),
        userAgent: pick(['curl/8.5.0', '', text(40)]),
        referer: pick(['http://example.com/', '', text(40)]),
        error: pick([null, '', 'POOL_QUEUE_FULL', text(6)]),
      });
      for (const format of ['common', 'combined'] as const) {
        const offset = pick([undefined, 0, 120, -420]);
        const end = putAccessLine(buf, 0, r, format === 'combined', offset);
        if (end < 0) continue;
        written += 1;
        assert.equal(buf.toString('latin1', 0, end), formatAccessLine(r, format, offset));
      }
    }
    assert.ok(written > 300, `only ${written} lines took the fast path`);
  });

  test('AccessLog writes every format to its file as formatAccessLine, fast path or not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tq-access-log-'));
    try {
      for (const format of ['common', 'combined', 'json'] as const) {
        const path = join(dir, `${format}.log`);
        const file = new LogFile(path);
        const log = new AccessLog(file, format);
        const records = [record(), record({ uri: '/ü?😀', userAgent: 'naïve' }), record({ durationMs: 1234.5, queueMs: null, phpMs: null, backend: null, workerPid: null })];
        for (const r of records) log.write(r);
        await file.close();
        assert.equal(readFileSync(path, 'utf8'), records.map((r) => `${formatAccessLine(r, format)}\n`).join(''));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
