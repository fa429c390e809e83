// Request bodies in a file (FileBody: a spooled upload) sent by the FastCGI client to a real php-fpm:
// whole and in order however large, several at once (the piece buffers are shared), a file shorter
// than announced failing cleanly, and sent again when php-fpm proves it never ran the request.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FastCGIClient, FastCGIResponse, FileBody } from '../src/fastcgi/index.js';
import type { Peer } from './helpers/peers.js';
import { cgi, postParams, rejection, startFpm } from './client-support.js';

const LIMIT = { timeout: 30_000 };
const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

let fpm: Peer;
let dir: string;

before(async () => {
  fpm = await startFpm({ transport: 'unix', pool: { 'pm.max_children': '4' } });
  dir = mkdtempSync(join(tmpdir(), 'tqserver-file-body-'));
});

after(async () => {
  await fpm.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A file of `bytes` random bytes; returns its body (for `length` bytes, default all) and the bytes. */
function fileOf(name: string, bytes: number, length = bytes): { body: FileBody; data: Buffer } {
  const data = randomBytes(bytes);
  const path = join(dir, name);
  writeFileSync(path, data);
  return { body: new FileBody(path, length), data: data.subarray(0, length) };
}

async function post(client: FastCGIClient, body: FileBody): Promise<{ bodyBytes: number; bodyMd5: string }> {
  const { stdout } = await new FastCGIResponse((handler) => client.dispatch({ params: postParams('echo.php', body.length), body }, handler)).text();
  return JSON.parse(cgi(stdout).body) as { bodyBytes: number; bodyMd5: string };
}

describe('FileBody', () => {
  test('a body of several pieces arrives whole and in order; an empty one and a part of a file too', LIMIT, async (t) => {
    const client = new FastCGIClient({ address: fpm.address, maxConns: 1 });
    t.after(() => client.destroy());
    for (const [name, bytes, length] of [
      ['large', 3 * 1024 * 1024 + 5, undefined],
      ['empty', 0, undefined],
      ['prefix', 700_000, 300_001],
    ] as const) {
      const { body, data } = fileOf(name, bytes, length);
      const seen = await post(client, body);
      assert.equal(seen.bodyBytes, data.length, name);
      assert.equal(seen.bodyMd5, md5(data), name);
    }
  });

  test('four at once on four connections, each whole (the piece buffers are reused between them)', LIMIT, async (t) => {
    const client = new FastCGIClient({ address: fpm.address, maxConns: 4 });
    t.after(() => client.destroy());
    for (let round = 0; round < 3; round++) {
      const files = Array.from({ length: 4 }, (_, i) => fileOf(`many-${round}-${i}`, 1024 * 1024 + i * 4099));
      const seen = await Promise.all(files.map((f) => post(client, f.body)));
      assert.deepEqual(
        seen.map((s) => s.bodyMd5),
        files.map((f) => md5(f.data)),
      );
    }
  });

  test('a file shorter than its announced length fails the request with a message naming it', LIMIT, async (t) => {
    const client = new FastCGIClient({ address: fpm.address, maxConns: 1 });
    t.after(() => client.destroy());
    const { body } = fileOf('short', 1000);
    const short = new FileBody(body.path, 500_000);
    const error = await rejection(new FastCGIResponse((handler) => client.dispatch({ params: postParams('echo.php', short.length), body: short }, handler)).text());
    assert.match(error.message, /request body failed: .*short ended after 1000 of 500000 bytes/);
    // The client is still usable.
    const { body: fine, data } = fileOf('after-short', 70_000);
    assert.equal((await post(client, fine)).bodyMd5, md5(data));
  });

  test('a missing file fails the request, not the process', LIMIT, async (t) => {
    const client = new FastCGIClient({ address: fpm.address, maxConns: 1 });
    t.after(() => client.destroy());
    const missing = new FileBody(join(dir, 'no-such-file'), 100_000);
    const error = await rejection(new FastCGIResponse((handler) => client.dispatch({ params: postParams('echo.php', missing.length), body: missing }, handler)).text());
    assert.match(error.message, /request body failed: .*ENOENT/);
  });

  test('sent again, whole, when a php-fpm child closing after its last request proves it never ran it (pm.max_requests 1)', LIMIT, async (t) => {
    const recycling = await startFpm({ transport: 'unix', pool: { 'pm.max_children': '2', 'pm.max_requests': '1' } });
    const client = new FastCGIClient({ address: recycling.address, maxConns: 2 });
    t.after(async () => {
      client.destroy();
      await recycling.stop();
    });
    const files = Array.from({ length: 40 }, (_, i) => fileOf(`recycled-${i}`, 200_000 + i));
    const seen = await Promise.all(files.map((f) => post(client, f.body)));
    assert.deepEqual(
      seen.map((s) => s.bodyMd5),
      files.map((f) => md5(f.data)),
    );
    t.diagnostic(`${client.stats.retries} of 40 file bodies were sent again`);
  });
});
