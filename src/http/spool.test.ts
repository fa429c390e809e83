// spoolBody: small bodies in memory, large ones in a private temp file (removed by cleanup), the
// size limit, and a source that fails.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { FileBody } from '../fastcgi/client-types.js';
import { BodyTooLargeError, spoolBody } from './spool.js';

/** A source that yields `data` in pieces of `size` bytes. */
function source(data: Buffer, size: number): Readable {
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.subarray(at, at + size));
  return Readable.from(pieces, { objectMode: false });
}

/** The body's bytes: in memory, or the first `length` bytes of its file. */
function readAll(body: Buffer | FileBody): Buffer {
  if (Buffer.isBuffer(body)) return body;
  return readFileSync(body.path).subarray(0, body.length);
}

test('a body under the threshold stays in memory', async () => {
  const data = randomBytes(1000);
  const spooled = await spoolBody(source(data, 100), 10_000, 4096);
  assert.equal(spooled.inFile, false);
  assert.equal(spooled.length, 1000);
  assert.deepEqual(readAll(spooled.body), data);
  await spooled.cleanup();
});

test('a body past the threshold goes to a mode 0600 temp file, in order, and cleanup removes it', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 7);
  const spooled = await spoolBody(source(data, 64 * 1024 + 3), 10 * 1024 * 1024, 1024 * 1024);
  assert.equal(spooled.inFile, true);
  assert.equal(spooled.length, data.length);
  assert.ok(spooled.body instanceof FileBody);
  const path = spooled.body.path;
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(readAll(spooled.body), data);
  await spooled.cleanup();
  assert.equal(existsSync(path), false);
  await spooled.cleanup();
});

test('a large body in tiny pieces (more per batch than writev takes) arrives whole and in order', async () => {
  const data = randomBytes(2 * 1024 * 1024 + 11);
  const spooled = await spoolBody(source(data, 1000), 10 * 1024 * 1024, 64 * 1024);
  assert.equal(spooled.inFile, true);
  assert.equal(spooled.length, data.length);
  assert.deepEqual(readAll(spooled.body), data);
  await spooled.cleanup();
});

test('past maxBytes: BodyTooLargeError, the source paused but not destroyed (the 413 can still be written)', async () => {
  const stream = source(randomBytes(50_000), 1000);
  await assert.rejects(spoolBody(stream, 10_000, 4096), (error: unknown) => error instanceof BodyTooLargeError && error.limit === 10_000);
  assert.equal(stream.destroyed, false);
  assert.equal(stream.isPaused(), true);
});

test('past maxBytes after the switch to a file: the temp file is removed', async () => {
  // A private TMPDIR (os.tmpdir() reads it on every call) shows exactly what spoolBody left behind.
  const dir = mkdtempSync(join(tmpdir(), 'spool-test-'));
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    const stream = source(randomBytes(200_000), 10_000);
    await assert.rejects(spoolBody(stream, 150_000, 50_000), BodyTooLargeError);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a source that fails (the client went away) rejects with its error', async () => {
  const stream = new Readable({ read() {} });
  const spooled = spoolBody(stream, 10_000);
  stream.push(Buffer.alloc(100));
  stream.destroy(new Error('socket hang up'));
  await assert.rejects(spooled, /socket hang up/);
});
