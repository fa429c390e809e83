// Tests for durations and sizes as operators write them: every unit, whitespace and case, numbers,
// and everything that is not a duration or a size.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatDuration, parseDuration, parseSize } from './units.js';

describe('parseDuration', () => {
  const rows: Array<[input: unknown, ms: number | null]> = [
    [0, 0],
    [30, 30_000],
    [1.5, 1500],
    [0.001, 1],
    ['30', 30_000],
    ['2.5', 2500],
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['0.5m', 30_000],
    [' 10s ', 10_000],
    ['10 s', 10_000],
    ['10S', 10_000],
    ['250MS', 250],
    ['0s', 0],
    [-1, null],
    [Number.NaN, null],
    [Number.POSITIVE_INFINITY, null],
    ['-5s', null],
    ['', null],
    ['s', null],
    ['10x', null],
    ['10d', null],
    ['10 minutes', null],
    ['1e3', null],
    ['0x10', null],
    ['.5s', null],
    ['10s5', null],
    ['1h30m', null],
    [true, null],
    [null, null],
    [undefined, null],
    [['10s'], null],
    [{ s: 10 }, null],
  ];
  for (const [input, ms] of rows) test(`${JSON.stringify(input) ?? String(input)} -> ${ms}`, () => assert.equal(parseDuration(input), ms));
});

describe('parseSize', () => {
  const rows: Array<[input: unknown, bytes: number | null]> = [
    [0, 0],
    [1048576, 1048576],
    [1.4, 1],
    ['1024', 1024],
    ['512K', 512 * 1024],
    ['512k', 512 * 1024],
    ['128M', 128 * 1024 ** 2],
    ['128m', 128 * 1024 ** 2],
    ['1G', 1024 ** 3],
    ['1.5M', 1.5 * 1024 ** 2],
    ['128MB', 128 * 1024 ** 2],
    ['100B', 100],
    ['100b', 100],
    [' 16K ', 16 * 1024],
    ['16 K', 16 * 1024],
    [-1, null],
    [Number.NaN, null],
    [Number.POSITIVE_INFINITY, null],
    ['', null],
    ['M', null],
    ['KB', null],
    ['1T', null],
    ['-1M', null],
    ['1 000', null],
    ['1e6', null],
    ['ten', null],
    [false, null],
    [null, null],
    [undefined, null],
  ];
  for (const [input, bytes] of rows) test(`${JSON.stringify(input) ?? String(input)} -> ${bytes}`, () => assert.equal(parseSize(input), bytes));
});

describe('formatDuration', () => {
  const rows: Array<[ms: number, text: string]> = [
    [0, '0ms'],
    [1, '1ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [90_000, '90s'],
    [60_000, '1m'],
    [120_000, '2m'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
  ];
  for (const [ms, text] of rows) test(`${ms} -> ${text}`, () => assert.equal(formatDuration(ms), text));
  test('round-trips through parseDuration', () => {
    for (const [ms] of rows) assert.equal(parseDuration(formatDuration(ms)), ms);
  });
});
