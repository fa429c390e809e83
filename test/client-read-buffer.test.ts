// Client sockets read into one buffer they share (net's `onread`, src/fastcgi/client-connect.ts):
// what a response keeps of a read must be its own copy before the next read of any socket lands.
// Distinct random bodies sent back by PHP over several connections at once, read fast and slowly,
// must each come back byte for byte; a repeated pattern would hide an overwrite, random bytes do not.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { FastCGIClient, type EndResult, type RequestController } from '../src/fastcgi/index.js';
import type { Peer } from './helpers/peers.js';
import { phpParams, startFpm } from './client-support.js';

const CHILDREN = 4;
let fpm: Peer;

before(async () => {
  fpm = await startFpm({ pool: { 'pm.max_children': String(CHILDREN) } });
});

after(async () => {
  await fpm.stop();
});

interface Mirrored {
  body: Buffer;
  result: EndResult;
  /** Times onStdout returned false (the socket was paused). */
  pauses: number;
}

/** POSTs `body` to mirror.php; a slow reader pauses after every stdout chunk and resumes a tick later. */
function mirror(client: FastCGIClient, body: Buffer, piece: number, slow: boolean): Promise<Mirrored> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let pauses = 0;
    let controller: RequestController | null = null;
    controller = client.dispatch(
      {
        params: phpParams('mirror.php', { REQUEST_METHOD: 'POST', QUERY_STRING: `piece=${piece}`, CONTENT_LENGTH: String(body.length), CONTENT_TYPE: 'application/octet-stream' }),
        body,
      },
      {
        onStdout: (chunk) => {
          chunks.push(chunk);
          if (!slow) return true;
          pauses += 1;
          setImmediate(() => controller?.resume());
          return false;
        },
        onStderr: () => {},
        onEnd: (result) => {
          const whole = Buffer.concat(chunks);
          const head = whole.indexOf('\r\n\r\n');
          resolve({ body: whole.subarray(head + 4), result, pauses });
        },
        onError: reject,
      },
    );
  });
}

const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex');

test('concurrent responses over every connection, fast and slow readers: each body comes back byte for byte', { timeout: 60_000 }, async (t) => {
  const client = new FastCGIClient({ address: fpm.address, maxConns: CHILDREN });
  t.after(() => client.destroy());
  // Sizes around the client's read thresholds (16 KiB: a socket switches to buffers of its own;
  // 64 KiB: one read) and pieces from one byte (a record per byte) to whole reads.
  const sizes = [0, 1, 7, 100, 4095, 8192, 16_383, 16_384, 16_385, 40_000, 65_535, 65_536, 65_537, 200_000, 1_000_000];
  const pieces = [1, 13, 4096, 8192, 65_536];
  const jobs = sizes.flatMap((size, i) => pieces.filter((piece) => piece >= 13 || size <= 4096).map((piece, j) => ({ size, piece, slow: (i + j) % 2 === 0 })));
  const results = await Promise.all(
    jobs.map(async (job) => {
      const body = randomBytes(job.size);
      const got = await mirror(client, body, job.piece, job.slow);
      return { ...job, ok: got.body.equals(body), sent: md5(body), got: md5(got.body), length: got.body.length, pauses: got.pauses, appStatus: got.result.appStatus };
    }),
  );
  const wrong = results.filter((r) => !r.ok || r.appStatus !== 0);
  assert.deepEqual(wrong, [], `${wrong.length} of ${results.length} bodies came back different`);
  assert.ok(results.some((r) => r.slow && r.pauses > 10), 'slow readers paused their sockets');
  assert.ok(results.length > 60, `${results.length} requests`);
});

test('a response read while other sockets keep reading: bytes kept across pauses are not overwritten', { timeout: 60_000 }, async (t) => {
  const client = new FastCGIClient({ address: fpm.address, maxConns: CHILDREN });
  t.after(() => client.destroy());
  // One slow reader of 2 MB in small records while three fast ones stream beside it, round after round.
  for (let round = 0; round < 3; round++) {
    const slowBody = randomBytes(2_000_000);
    const fastBodies = [randomBytes(3_000_000), randomBytes(500_000), randomBytes(3_000)];
    const [slow, ...fast] = await Promise.all([mirror(client, slowBody, 1000, true), ...fastBodies.map((body, i) => mirror(client, body, [65_536, 8192, 100][i]!, false))]);
    assert.equal(md5(slow.body), md5(slowBody), `round ${round}: the slow reader's body`);
    fast.forEach((got, i) => assert.equal(md5(got.body), md5(fastBodies[i]!), `round ${round}: fast reader ${i}`));
  }
});
