// Tests for turning zod issues into operator sentences: did-you-mean, the keys a path knows, and one
// sentence per kind of issue, checked on small schemas so each row shows one rule.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { describeIssue, editDistance, knownKeysAt, suggest, type KeyProblem } from './issues.js';

describe('editDistance', () => {
  const rows: Array<[string, string, number]> = [
    ['', '', 0],
    ['a', '', 1],
    ['', 'abc', 3],
    ['max_workers', 'max_workers', 0],
    ['max_worker', 'max_workers', 1],
    ['kitten', 'sitting', 3],
    ['flaw', 'lawn', 2],
  ];
  for (const [a, b, want] of rows) test(`${JSON.stringify(a)} ~ ${JSON.stringify(b)} = ${want}`, () => {
    assert.equal(editDistance(a, b), want);
    assert.equal(editDistance(b, a), want);
  });
});

describe('suggest', () => {
  const pool = ['manager', 'max_workers', 'start_workers', 'min_workers', 'max_spare_workers', 'max_requests', 'idle_timeout', 'request_timeout'];
  const rows: Array<[key: string, known: readonly string[], want: string | null]> = [
    ['max_worker', pool, 'max_workers'],
    ['maxworkers', pool, 'max_workers'],
    ['max-workers', pool, 'max_workers'],
    ['Max_Workers', pool, 'max_workers'],
    ['max.workers', pool, 'max_workers'],
    ['manger', pool, 'manager'],
    ['idle_timout', pool, 'idle_timeout'],
    ['request_timeot', pool, 'request_timeout'],
    ['prot', ['host', 'port', 'log_file'], 'port'],
    ['colour', ['path', 'type', 'enabled'], null],
    ['completely_unrelated', pool, null],
    ['x', ['a', 'b'], null],
    ['zz', ['php'], null],
    ['max_workers', [], null],
  ];
  for (const [key, known, want] of rows) test(`${key} -> ${want}`, () => assert.equal(suggest(key, known), want));
});

describe('knownKeysAt', () => {
  const schema = z
    .object({
      a: z.object({ b: z.number(), c: z.object({ d: z.string() }).default({ d: '' }) }).optional(),
      list: z.array(z.object({ x: z.number() })),
      map: z.record(z.object({ y: z.number() })),
      n: z.number(),
    })
    .strict();
  const rows: Array<[path: Array<string | number>, keys: string[]]> = [
    [[], ['a', 'list', 'map', 'n']],
    [['a'], ['b', 'c']],
    [['a', 'c'], ['d']],
    [['list', 0], ['x']],
    [['map', 'anything'], ['y']],
    [['n'], []],
    [['missing'], []],
    [['a', 'b', 'deeper'], []],
  ];
  for (const [path, keys] of rows) test(`${path.join('.') || '(root)'} -> ${keys.join(',') || 'none'}`, () => assert.deepEqual(knownKeysAt(schema, path), keys));
});

/** Every sentence zod's issues for `raw` turn into. */
function sentences(schema: z.ZodTypeAny, raw: unknown): KeyProblem[] {
  const result = schema.safeParse(raw);
  assert.equal(result.success, false, 'the schema accepted the value');
  if (result.success) return [];
  return result.error.issues.flatMap((issue) => describeIssue(schema, issue, raw));
}

describe('describeIssue', () => {
  const pool = z.object({ manager: z.enum(['static', 'dynamic', 'ondemand']).optional(), max_workers: z.number().int().min(1) }).strict();
  const schema = z
    .object({
      name: z.string().min(1),
      port: z.number().int().min(0).max(65535),
      timeout: z.number().positive(),
      ratio: z.number().lt(1),
      enabled: z.boolean(),
      tags: z.array(z.string()).min(1).max(2),
      mode: z.literal('fast'),
      clients: z.union([z.array(z.string()), z.literal('any')]),
      pool,
    })
    .partial()
    .strict();
  const rows: Array<{ name: string; raw: unknown; want: KeyProblem[] }> = [
    { name: 'an unknown key with a close known one', raw: { pool: { max_workers: 1, max_worker: 3 } }, want: [{ key: 'pool.max_worker', message: 'unknown key; did you mean max_workers?' }] },
    {
      name: 'an unknown key with nothing close lists the known keys',
      raw: { pool: { max_workers: 1, colour: 'red' } },
      want: [{ key: 'pool.colour', message: 'unknown key (known keys here: manager, max_workers)' }],
    },
    {
      name: 'two unknown keys at the root',
      raw: { nmae: 'x', portt: 1 },
      want: [
        { key: 'nmae', message: 'unknown key; did you mean name?' },
        { key: 'portt', message: 'unknown key; did you mean port?' },
      ],
    },
    { name: 'a required key', raw: { pool: { manager: 'static' } }, want: [{ key: 'pool.max_workers', message: 'is required' }] },
    { name: 'a string for a number', raw: { port: 'eighty' }, want: [{ key: 'port', message: 'must be a number, got "eighty"' }] },
    { name: 'a fraction for an integer', raw: { port: 80.5 }, want: [{ key: 'port', message: 'must be an integer, got 80.5' }] },
    { name: 'a string for a boolean', raw: { enabled: 'yes' }, want: [{ key: 'enabled', message: 'must be true or false, got "yes"' }] },
    { name: 'null for a number', raw: { port: null }, want: [{ key: 'port', message: 'must be a number, got null (~)' }] },
    { name: 'a list for a mapping', raw: { pool: [1] }, want: [{ key: 'pool', message: 'must be a mapping of keys, got [1]' }] },
    { name: 'a mapping for a list', raw: { tags: { a: 1 } }, want: [{ key: 'tags', message: 'must be a list, got {"a":1}' }] },
    { name: 'a bad enum with a close option', raw: { pool: { manager: 'dynamc', max_workers: 1 } }, want: [{ key: 'pool.manager', message: 'must be one of static, dynamic, ondemand, got "dynamc"; did you mean dynamic?' }] },
    { name: 'a bad enum with nothing close', raw: { pool: { manager: 'fork', max_workers: 1 } }, want: [{ key: 'pool.manager', message: 'must be one of static, dynamic, ondemand, got "fork"' }] },
    { name: 'below an inclusive minimum', raw: { pool: { manager: 'static', max_workers: 0 } }, want: [{ key: 'pool.max_workers', message: 'must be >= 1, got 0' }] },
    // Regression: positive() said "must be >= 0, got 0".
    { name: 'not above an exclusive minimum', raw: { timeout: 0 }, want: [{ key: 'timeout', message: 'must be > 0, got 0' }] },
    { name: 'above an inclusive maximum', raw: { port: 70000 }, want: [{ key: 'port', message: 'must be <= 65535, got 70000' }] },
    { name: 'not below an exclusive maximum', raw: { ratio: 1 }, want: [{ key: 'ratio', message: 'must be < 1, got 1' }] },
    { name: 'an empty string', raw: { name: '' }, want: [{ key: 'name', message: 'must not be empty' }] },
    { name: 'too few entries', raw: { tags: [] }, want: [{ key: 'tags', message: 'must have at least 1 entries' }] },
    { name: 'too many entries', raw: { tags: ['a', 'b', 'c'] }, want: [{ key: 'tags', message: 'must have at most 2 entries' }] },
    { name: 'the wrong type in a list', raw: { tags: ['a', 2] }, want: [{ key: 'tags.1', message: 'must be a string, got 2' }] },
    { name: 'a union where no shape fits names the shapes', raw: { clients: 'everyone' }, want: [{ key: 'clients', message: 'must be a list or "any", got "everyone"' }] },
    { name: 'a wrong literal', raw: { mode: 'slow' }, want: [{ key: 'mode', message: 'invalid literal value, expected "fast" (got "slow")' }] },
  ];
  for (const row of rows) test(row.name, () => assert.deepEqual(sentences(schema, row.raw), row.want));

  test('a custom refinement keeps its own words', () => {
    const refined = z.object({ n: z.number().refine((n) => n % 2 === 0, { message: 'must be even' }) });
    assert.deepEqual(sentences(refined, { n: 3 }), [{ key: 'n', message: 'must be even' }]);
  });

  test('a custom issue inside a union branch is reported with its own words and key', () => {
    const even = z.number().superRefine((n, ctx) => {
      if (n % 2 !== 0) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${n} is odd` });
    });
    const union = z.object({ v: z.union([even, z.array(even)]) });
    assert.deepEqual(sentences(union, { v: [2, 3] }), [{ key: 'v.1', message: '3 is odd' }]);
  });
});
