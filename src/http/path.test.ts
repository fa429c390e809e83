// Tests for request-target normalisation: traversal in every encoding, control characters (the
// CVE-2019-11043 class), bad escapes and invalid UTF-8 refused, absolute-form, fragments, the raw
// query, and a property: whatever comes in, an accepted path cannot climb or hide a "..".

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { normalizeTarget, percentDecode, removeDotSegments } from './path.js';

/** A string of raw bytes as Node's parser hands a request target over (latin1). */
function latin1(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

describe('normalizeTarget', () => {
  const accepted: Array<{ name: string; target: string; path: string; query?: string }> = [
    { name: 'the root', target: '/', path: '/' },
    { name: 'a plain path', target: '/blog/index.php', path: '/blog/index.php' },
    { name: 'escapes decoded once and dots removed', target: '/blog/a%20b/../c', path: '/blog/c' },
    { name: 'a trailing slash is kept', target: '/blog/', path: '/blog/' },
    { name: '/./ removed', target: '/./a/./b', path: '/a/b' },
    { name: '// merged', target: '//a//b///c', path: '/a/b/c' },
    { name: 'a trailing /. keeps the directory slash', target: '/a/.', path: '/a/' },
    { name: 'a trailing /.. keeps the directory slash', target: '/a/b/..', path: '/a/' },
    { name: '.. inside the tree', target: '/a/b/../../c', path: '/c' },
    { name: '%2e%2e inside the tree', target: '/a/%2e%2e/b', path: '/b' },
    { name: '%2f decodes to a separator before dot removal', target: '/a%2fb%2F..%2fc', path: '/a/c' },
    { name: 'trailing dots in a name are a literal name', target: '/a/b...', path: '/a/b...' },
    { name: 'three dots is a name, not a climb', target: '/.../x', path: '/.../x' },
    { name: 'dots glued to a name', target: '/..a/b..', path: '/..a/b..' },
    { name: 'double encoding stays literal (%252e%252e is the name %2e%2e)', target: '/%252e%252e/%252e%252e/etc', path: '/%2e%2e/%2e%2e/etc' },
    { name: 'a backslash is a literal byte on POSIX', target: '/..\\..\\etc', path: '/..\\..\\etc' },
    { name: 'a plus stays a plus in the path', target: '/a+b', path: '/a+b' },
    { name: 'UTF-8 escapes', target: '/caf%C3%A9', path: '/café' },
    // Regression: raw bytes without any "%" skipped UTF-8 decoding and reached the file system as mojibake.
    { name: 'raw UTF-8 bytes decode like their escapes', target: latin1('/café/ü'), path: '/café/ü' },
    { name: 'raw and escaped UTF-8 bytes mixed', target: `${latin1('/é')}%C3%A9`, path: '/éé' },
    { name: 'the query is kept raw', target: '/a?x=%2F%00&y=../..', path: '/a', query: 'x=%2F%00&y=../..' },
    { name: 'an empty query', target: '/a?', path: '/a', query: '' },
    { name: 'a second ? belongs to the query', target: '/a?b?c', path: '/a', query: 'b?c' },
    { name: 'a fragment is not part of the path', target: '/a#b/../../..', path: '/a' },
    { name: 'a fragment is not part of the query', target: '/a?x=1#frag', path: '/a', query: 'x=1' },
    { name: 'a ? after the fragment is not a query', target: '/a#b?c', path: '/a', query: '' },
    { name: 'absolute-form', target: 'http://example.com/a/b?q=1', path: '/a/b', query: 'q=1' },
    { name: 'absolute-form with a port and https', target: 'HTTPS://example.com:8443/x/', path: '/x/' },
    { name: 'absolute-form without a path', target: 'http://example.com', path: '/' },
    { name: 'absolute-form without a path but with a query', target: 'http://example.com?x', path: '/', query: 'x' },
    { name: 'absolute-form with dot segments', target: 'http://h/a/../b', path: '/b' },
  ];
  for (const row of accepted) {
    test(`accepted: ${row.name}`, () => {
      assert.deepEqual(normalizeTarget(row.target), { ok: true, path: row.path, query: row.query ?? '' });
    });
  }

  const refused: Array<{ name: string; target: string; reason: RegExp }> = [
    { name: '../ above the root', target: '/../etc/passwd', reason: /climbs above the root/ },
    { name: '../ above the root after a descent', target: '/a/../../etc/passwd', reason: /climbs above the root/ },
    { name: '/.. alone', target: '/..', reason: /climbs above the root/ },
    { name: '%2e%2e above the root', target: '/%2e%2e/etc/passwd', reason: /climbs above the root/ },
    { name: '%2E%2e%2f (mixed case, encoded slash)', target: '/%2E%2e%2fetc%2fpasswd', reason: /climbs above the root/ },
    { name: '..%2f', target: '/a/..%2f..%2fetc', reason: /climbs above the root/ },
    { name: '.%2e', target: '/.%2e/etc', reason: /climbs above the root/ },
    { name: 'traversal in absolute-form', target: 'http://h/%2e%2e/x', reason: /climbs above the root/ },
    { name: 'NUL (%00) truncates C strings', target: '/index.php%00.jpg', reason: /control character/ },
    // CVE-2019-11043: a %0a in the path broke nginx's fastcgi_split_path_info regex and underflowed php-fpm.
    { name: 'CVE-2019-11043: %0a in the path', target: '/index.php/PHP_VALUE%0Asession.auto_start=1;;;', reason: /control character/ },
    { name: '%0d in the path', target: '/a%0d', reason: /control character/ },
    { name: '%09 in the path', target: '/a%09b', reason: /control character/ },
    { name: '%7f (DEL) in the path', target: '/a%7f', reason: /control character/ },
    { name: 'a raw control character', target: '/a\u0001b', reason: /control character/ },
    { name: 'a lone %', target: '/a%', reason: /malformed percent escape/ },
    { name: 'a short escape', target: '/a%2', reason: /malformed percent escape/ },
    { name: 'a non-hex escape', target: '/a%zz', reason: /malformed percent escape/ },
    { name: '%% then hex', target: '/a%%41', reason: /malformed percent escape/ },
    { name: 'a truncated UTF-8 sequence', target: '/%c3', reason: /not valid UTF-8/ },
    { name: 'a bad UTF-8 continuation', target: '/%c3%28', reason: /not valid UTF-8/ },
    { name: 'an overlong "/" (%c0%af)', target: '/..%c0%af..%c0%afetc', reason: /not valid UTF-8/ },
    { name: 'an overlong "." (%c0%ae)', target: '/%c0%ae%c0%ae/etc', reason: /not valid UTF-8/ },
    { name: 'an encoded UTF-16 surrogate', target: '/%ed%a0%80', reason: /not valid UTF-8/ },
    { name: 'a lone 0xff byte escaped', target: '/%ff', reason: /not valid UTF-8/ },
    { name: 'a lone raw 0xff byte', target: '/a\u00ffb', reason: /not valid UTF-8/ },
    { name: 'a char that no byte string holds', target: '/a\u20acb', reason: /not valid UTF-8/ },
    { name: 'an empty target', target: '', reason: /is not a path/ },
    { name: 'asterisk-form', target: '*', reason: /"\*" is not a path/ },
    { name: 'authority-form', target: 'example.com:443', reason: /is not a path/ },
    { name: 'a relative path', target: 'a/b', reason: /is not a path/ },
    { name: 'a scheme without //', target: 'http:/a', reason: /is not a path/ },
  ];
  for (const row of refused) {
    test(`refused: ${row.name}`, () => {
      const result = normalizeTarget(row.target);
      assert.equal(result.ok, false, `accepted as ${JSON.stringify(result)}`);
      if (!result.ok) assert.match(result.reason, row.reason);
    });
  }
});

describe('percentDecode', () => {
  const rows: Array<[input: string, want: string | null]> = [
    ['', ''],
    ['/plain/ascii', '/plain/ascii'],
    ['%41%62', 'Ab'],
    ['%2541', '%41'],
    ['a+b', 'a+b'],
    ['%e2%82%ac', '€'],
    [latin1('€'), '€'],
    ['%F0%9F%98%80', '😀'],
    ['%EF%BF%BD', '\ufffd'],
    ['%', null],
    ['%4', null],
    ['%4g', null],
    ['%80', null],
    ['%c0%80', null],
    ['%f4%90%80%80', null],
    ['\u0100', null],
  ];
  for (const [input, want] of rows) {
    test(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => assert.equal(percentDecode(input), want));
  }
});

describe('removeDotSegments', () => {
  const rows: Array<[input: string, want: string | null]> = [
    ['/', '/'],
    ['', '/'],
    ['/a/b/c/./../../g', '/a/g'],
    ['/mid/content=5/../6', '/mid/6'],
    ['/a/b/', '/a/b/'],
    ['/a//b//', '/a/b/'],
    ['/a/./', '/a/'],
    ['/a/..', '/'],
    ['/a/../', '/'],
    ['/..', null],
    ['/a/../..', null],
    ['/../a', null],
    ['a/b', '/a/b'],
  ];
  for (const [input, want] of rows) {
    test(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => assert.equal(removeDotSegments(input), want));
  }
});

describe('properties', () => {
  // Pieces that matter for traversal, mixed with arbitrary text so the whole space is covered too.
  const piece = fc.oneof(
    fc.constantFrom('/', '/', '.', '..', '%2e', '%2E', '%2f', '%2F', '%252e', '%25', '%', 'a', 'x.php', '\\', '?', '#', '%00', '%0a', '%c3%a9', '%c0%ae', '\u00c3\u00a9', '\u00ff', '%5c'),
    fc.string({ maxLength: 3 }),
    fc.fullUnicodeString({ maxLength: 2 }),
  );
  const target = fc.array(piece, { maxLength: 24 }).map((pieces) => pieces.join(''));
  const rooted = fc.oneof(target.map((t) => `/${t}`), target.map((t) => `http://h/${t}`), target);

  test('an accepted path starts with /, has no "." or ".." segment, no "//" and no control character', () => {
    fc.assert(
      fc.property(rooted, (input) => {
        const result = normalizeTarget(input);
        if (!result.ok) return;
        assert.ok(result.path.startsWith('/'), `${JSON.stringify(input)} -> ${JSON.stringify(result.path)}`);
        const segments = result.path.split('/');
        assert.ok(!segments.includes('..'), `${JSON.stringify(input)} -> ${JSON.stringify(result.path)}`);
        assert.ok(!segments.includes('.'), `${JSON.stringify(input)} -> ${JSON.stringify(result.path)}`);
        assert.ok(!result.path.includes('//'), `${JSON.stringify(input)} -> ${JSON.stringify(result.path)}`);
        assert.ok(!/[\x00-\x1f\x7f]/.test(result.path), `${JSON.stringify(input)} -> ${JSON.stringify(result.path)}`);
      }),
      { numRuns: 5000 },
    );
  });

  test('normalising is idempotent: an accepted path is its own normal form', () => {
    fc.assert(
      fc.property(rooted, (input) => {
        const result = normalizeTarget(input);
        if (!result.ok) return;
        assert.equal(removeDotSegments(result.path), result.path);
      }),
      { numRuns: 2000 },
    );
  });

  test('any path plus enough ".." is refused, never resolved above the root', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', '.', ''), { maxLength: 6 }), fc.constantFrom('..', '%2e%2e', '%2E%2E', '.%2e'), (segments, dots) => {
        const climbs = segments.filter((s) => s !== '.' && s !== '').length + 1;
        const input = `/${segments.join('/')}${`/${dots}`.repeat(climbs)}/etc/passwd`;
        assert.equal(normalizeTarget(input).ok, false, input);
      }),
    );
  });
});
