// The lookup-table checks agree with the regular expressions they replaced (and with Node's own
// header validation) on every character and on random strings.

import assert from 'node:assert/strict';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isHeaderText, isOriginTarget, isPlainFieldValue, isPlainPath, isToken } from './chars.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PLAIN_VALUE = /^[\t\x20-\x7e]*$/;
const TARGET = /^\/[\x21-\x7e]*$/;
const PLAIN_PATH = /^[\x20-\x24\x26-\x7e]*$/;

function nodeAcceptsName(name: string): boolean {
  try {
    validateHeaderName(name);
    return true;
  } catch {
    return false;
  }
}

function nodeAcceptsValue(value: string): boolean {
  try {
    validateHeaderValue('x', value);
    return true;
  } catch {
    return false;
  }
}

/** Strings mostly of the interesting range (controls, ASCII, latin1), with now and then a char above 0xFF. */
const text = fc.array(fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 0, max: 0xff }) }, { weight: 1, arbitrary: fc.integer({ min: 0x100, max: 0xffff }) }), { maxLength: 12 }).map((codes) => String.fromCharCode(...codes));

describe('HTTP character classes (chars.ts)', () => {
  test('every single character, and each after a valid one, is classed as the regular expressions and Node class it', () => {
    for (let code = 0; code <= 0x1ff; code++) {
      const c = String.fromCharCode(code);
      for (const s of [c, `a${c}`, `${c}a`]) {
        assert.equal(isToken(s), TOKEN.test(s), `token ${code}`);
        assert.equal(isToken(s), nodeAcceptsName(s), `Node name ${code}`);
        assert.equal(isPlainFieldValue(s), PLAIN_VALUE.test(s), `value ${code}`);
        assert.equal(isHeaderText(s), nodeAcceptsValue(s), `Node value ${code}`);
        assert.equal(isOriginTarget(`/${s}`), TARGET.test(`/${s}`), `target ${code}`);
        assert.equal(isPlainPath(s), PLAIN_PATH.test(s), `path ${code}`);
      }
    }
    assert.equal(isToken(''), false);
    assert.equal(isPlainFieldValue(''), true);
    assert.equal(isHeaderText(''), true);
    assert.equal(isOriginTarget(''), false);
    assert.equal(isOriginTarget('/'), true);
    assert.equal(isOriginTarget('x/'), false);
  });

  test('random strings are classed as the regular expressions and Node class them', () => {
    fc.assert(
      fc.property(text, (s) => {
        assert.equal(isToken(s), TOKEN.test(s));
        assert.equal(isToken(s), nodeAcceptsName(s));
        assert.equal(isPlainFieldValue(s), PLAIN_VALUE.test(s));
        assert.equal(isHeaderText(s), nodeAcceptsValue(s));
        assert.equal(isOriginTarget(s), TARGET.test(s));
        assert.equal(isPlainPath(s), PLAIN_PATH.test(s));
      }),
      { numRuns: 3000 },
    );
  });
});
