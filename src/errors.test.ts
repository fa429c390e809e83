// The error registry: every code is documented in docs/errors.md with its status, and the one map
// from error to HTTP status follows the registry.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRORS, FastCGIAbortError, httpStatusFor, PhpTimeoutError, PoolUnavailableError, TQServerError, type ErrorCode } from './errors.js';

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

test('every error code has a section in docs/errors.md with its HTTP status', () => {
  for (const [code, { status }] of Object.entries(ERRORS)) {
    const heading = new RegExp(`^###.*\\b${code}\\b — ${status}`, 'm');
    assert.match(docs, heading, `docs/errors.md needs a "### ${code} — ${status}" heading`);
  }
});

test('docs/errors.md documents no code the registry lacks', () => {
  const documented = [...docs.matchAll(/\b([A-Z]+(?:_[A-Z]+)+)\b — \d{3}/g)].map((m) => m[1]!);
  for (const code of documented) assert.ok(code in ERRORS, `docs/errors.md documents ${code}, which src/errors.ts does not define`);
});

test('httpStatusFor follows the registry and treats unknown errors as 500', () => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) assert.equal(httpStatusFor(new TQServerError(code, 'x')), ERRORS[code].status);
  assert.equal(httpStatusFor(new Error('plain')), 500);
  assert.equal(httpStatusFor('not even an error'), 500);
  assert.equal(httpStatusFor(new PoolUnavailableError('POOL_QUEUE_FULL', 'full')), 503);
  assert.equal(httpStatusFor(new PhpTimeoutError('slow')), 504);
  assert.equal(httpStatusFor(new FastCGIAbortError()), 499);
});

test('errors carry their class name and code', () => {
  const error = new PoolUnavailableError('POOL_QUEUE_TIMEOUT', 'pool blog: no worker');
  assert.equal(error.name, 'PoolUnavailableError');
  assert.equal(error.code, 'POOL_QUEUE_TIMEOUT');
  assert.ok(error instanceof TQServerError);
});
