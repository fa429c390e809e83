// FastBody: a request body that streams in after its head (fast-http.ts), read by spool.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FastBody } from './fast-response.js';

function body(length: number): { body: FastBody; seen: string[]; flow: string[] } {
  const flow: string[] = [];
  const b = new FastBody(length, { pause: () => flow.push('pause'), resume: () => flow.push('resume') });
  const seen: string[] = [];
  b.on('data', (chunk: Buffer) => seen.push(chunk.toString()));
  b.on('end', () => seen.push('<end>'));
  b.on('aborted', () => seen.push('<aborted>'));
  return { body: b, seen, flow };
}

test('bytes up to Content-Length are handed on, then end; what follows is returned', () => {
  const { body: b, seen } = body(10);
  assert.equal(b.push(Buffer.from('abc')), null);
  assert.equal(b.push(Buffer.from('defg')), null);
  const rest = b.push(Buffer.from('hijGET / HTTP/1.1'));
  assert.equal(rest?.toString(), 'GET / HTTP/1.1');
  assert.deepEqual(seen, ['abc', 'defg', 'hij', '<end>']);
  assert.equal(b.readableEnded, true);
  b.abort();
  assert.deepEqual(seen, ['abc', 'defg', 'hij', '<end>'], 'nothing after the end');
});

test('pause and resume go to the connection; abort before the end says aborted and close', () => {
  const { body: b, seen, flow } = body(5);
  b.pause();
  b.resume();
  assert.deepEqual(flow, ['pause', 'resume']);
  let closed = false;
  b.on('close', () => (closed = true));
  b.push(Buffer.from('ab'));
  b.abort();
  assert.deepEqual(seen, ['ab', '<aborted>']);
  assert.ok(closed);
});

test('a timeout is an error for its reader, and nothing at all without one', () => {
  const { body: b } = body(5);
  const errors: Array<Error & { code?: string }> = [];
  b.on('error', (error) => errors.push(error));
  b.timeOut(2000);
  assert.equal(errors[0]?.code, 'ERR_HTTP_REQUEST_TIMEOUT');
  assert.match(errors[0]!.message, /within 2000 ms \(read_timeout\)/);
  const lone = new FastBody(5, { pause: () => {}, resume: () => {} });
  assert.doesNotThrow(() => lone.timeOut(2000), 'no listener: no throw');
});
