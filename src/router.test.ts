// Tests for the route table: longest prefix on segment boundaries (/blog never matches /blogger), a
// root app, nested prefixes, trailing slashes, no match, and prefixes the table refuses.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Router } from './router.js';

type Want = { prefix: string; target: string; rest: string } | null;

function check(routes: ReadonlyArray<readonly [string, string]>, rows: ReadonlyArray<readonly [path: string, want: Want]>): void {
  const router = new Router(routes);
  for (const [path, want] of rows) {
    test(`${JSON.stringify(path)} -> ${want ? `${want.target} rest ${JSON.stringify(want.rest)}` : 'no match'}`, () => {
      assert.deepEqual(router.match(path), want);
    });
  }
}

describe('one app at /blog', () => {
  check(
    [['/blog', 'blog']],
    [
      ['/blog', { prefix: '/blog', target: 'blog', rest: '' }],
      ['/blog/', { prefix: '/blog', target: 'blog', rest: '/' }],
      ['/blog/x', { prefix: '/blog', target: 'blog', rest: '/x' }],
      ['/blog/x/y.php/z', { prefix: '/blog', target: 'blog', rest: '/x/y.php/z' }],
      ['/blog/x/', { prefix: '/blog', target: 'blog', rest: '/x/' }],
      ['/blogger', null],
      ['/blog.php', null],
      ['/blo', null],
      ['/Blog', null],
      ['/', null],
      ['/other/blog', null],
    ],
  );
});

describe('a root app beside /blog', () => {
  check(
    [
      ['/', 'site'],
      ['/blog', 'blog'],
    ],
    [
      ['/', { prefix: '/', target: 'site', rest: '/' }],
      ['/index.php', { prefix: '/', target: 'site', rest: '/index.php' }],
      ['/blogger', { prefix: '/', target: 'site', rest: '/blogger' }],
      ['/blogger/x', { prefix: '/', target: 'site', rest: '/blogger/x' }],
      ['/blog', { prefix: '/blog', target: 'blog', rest: '' }],
      ['/blog/a', { prefix: '/blog', target: 'blog', rest: '/a' }],
      ['/a/b/c/', { prefix: '/', target: 'site', rest: '/a/b/c/' }],
    ],
  );
});

describe('nested prefixes /a and /a/b', () => {
  check(
    [
      ['/a', 'outer'],
      ['/a/b', 'inner'],
    ],
    [
      ['/a', { prefix: '/a', target: 'outer', rest: '' }],
      ['/a/', { prefix: '/a', target: 'outer', rest: '/' }],
      ['/a/x', { prefix: '/a', target: 'outer', rest: '/x' }],
      ['/a/bc', { prefix: '/a', target: 'outer', rest: '/bc' }],
      ['/a/b', { prefix: '/a/b', target: 'inner', rest: '' }],
      ['/a/b/', { prefix: '/a/b', target: 'inner', rest: '/' }],
      ['/a/b/c/d', { prefix: '/a/b', target: 'inner', rest: '/c/d' }],
      ['/ab', null],
      ['/b', null],
    ],
  );
});

describe('a deep prefix without its parents', () => {
  check(
    [['/x/y/z', 'deep']],
    [
      ['/x/y/z/w', { prefix: '/x/y/z', target: 'deep', rest: '/w' }],
      ['/x/y', null],
      ['/x/y/', null],
      ['/x/y/zz', null],
    ],
  );
});

describe('an empty table', () => {
  check([], [['/', null], ['/a', null]]);
});

describe('the constructor', () => {
  test('size counts the routes', () => {
    assert.equal(new Router([['/', 1], ['/a', 2]]).size, 2);
  });
  for (const prefix of ['', 'blog', '/blog/', '//']) {
    test(`refuses the prefix ${JSON.stringify(prefix)}`, () => {
      assert.throws(() => new Router([[prefix, 1]]), /must start with \/ and not end with \//);
    });
  }
  test('refuses a prefix defined twice', () => {
    assert.throws(() => new Router([['/a', 1], ['/a', 2]]), /route prefix \/a is defined twice/);
  });
});
