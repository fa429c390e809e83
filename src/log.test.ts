// Console lines for people: level, message and fields on one line, whatever the message holds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { humanLine } from './log.js';

test('humanLine: time, level, message, then the fields', () => {
  const json = JSON.stringify({ level: 40, time: '2024-05-01T10:00:00.123Z', msg: 'pool blog reached max_workers (10); consider raising it', app: 'blog', count: 3, extra: null });
  assert.equal(humanLine(json), '10:00:00.123 WARN  pool blog reached max_workers (10); consider raising it  app=blog count=3\n');
});

test('humanLine: a URI or PHP message with line breaks and terminal escapes stays one console line', () => {
  const json = JSON.stringify({ level: 30, time: '2024-05-01T10:00:00.000Z', msg: '404 GET /x\nFAKE 10:00:00.000 ERROR forged\x1b[2J', uri: '/a\r\nb', req: 'r1' });
  const line = humanLine(json);
  assert.equal(line, '10:00:00.000 INFO  404 GET /x\\x0AFAKE 10:00:00.000 ERROR forged\\x1B[2J  uri=/a\\x0D\\x0Ab req=r1\n');
  assert.equal(line.indexOf('\n'), line.length - 1);
});

test('humanLine: a line that is not JSON is passed through', () => {
  assert.equal(humanLine('plain text'), 'plain text');
});
