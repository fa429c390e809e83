// The HTTP front's flow control end to end: the configured idle, read and write timeouts, and a
// 20 MB download relayed to a slow reader through the real CLI (a child process) with bounded memory.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { get, makeProject, memoryOf, serverYaml, startCli, startFront, statusJson, waitForPool, workerYaml, type Project, type RunningFront } from './helpers/front.js';

/** Resolves once an http.ClientRequest's response has started; hands the response over unread. */
function startRequest(port: number, path: string): { req: http.ClientRequest; response: Promise<http.IncomingMessage> } {
  const req = http.request({ host: '127.0.0.1', port, path, agent: false });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  response.catch(() => {});
  return { req, response };
}

describe('HTTP front timeouts', () => {
  let project: Project;
  let front: RunningFront;

  before(async () => {
    project = await makeProject({
      server: serverYaml({ read_timeout_seconds: 1, write_timeout_seconds: 1, idle_timeout_seconds: 1 }),
      apps: [{ name: 'app', worker: workerYaml('/', { max_workers: 1 }) }],
    });
    front = await startFront(project.root);
  });

  after(async () => {
    await front?.stop();
    await project?.cleanup();
  });

  test('idle_timeout: an idle keep-alive connection is closed by the server', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: front.port });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.write('GET /assets/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const started = Date.now();
    await new Promise((resolve) => socket.once('close', resolve));
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.match(text, /Keep-Alive: timeout=1/);
    assert.ok(Date.now() - started < 5000, 'closed about idle_timeout after the response');
  });

  test('read_timeout: a request whose headers never finish is cut off (slowloris)', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: front.port });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.write('GET /assets/hello.txt HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    const started = Date.now();
    await new Promise((resolve) => socket.once('close', resolve));
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 4000, `closed within a few seconds of read_timeout (1 s), took ${tookMs} ms`);
    assert.match(text, /^HTTP\/1\.1 408 /);
  });

  test('write_timeout: a client that stops reading a large response is dropped and the worker freed', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: front.port });
    socket.on('error', () => {});
    socket.write('GET /download.php?mb=64 HTTP/1.1\r\nHost: localhost\r\n\r\n');
    // Never read: the socket buffers fill, PHP blocks, then the front gives up after write_timeout.
    socket.pause();
    await waitForPool(front, 'app', (s) => s.active === 1);
    await waitForPool(front, 'app', (s) => s.active === 0 && s.idle === 1, 10_000);
    assert.ok(front.find(/GET \/download\.php\?mb=64: the client accepted no data for 1000 ms; closing/));
    socket.destroy();
  });
});

describe('a 20 MB download through the CLI (child process)', () => {
  let project: Project;

  before(async () => {
    project = await makeProject({ server: serverYaml(), apps: [{ name: 'app', worker: workerYaml('/', { max_workers: 1 }) }] });
  });

  after(async () => {
    await project?.cleanup();
  });

  test('is streamed with bounded memory: a paused reader holds PHP back instead of TQServer buffering the 20 MB', async () => {
    const cli = await startCli(project.root);
    try {
      // Warm up the code paths (and the worker's connection) with a small download.
      const warm = await get(cli.port, '/download.php?mb=1');
      assert.equal(warm.body.length, 1024 * 1024);
      const before = memoryOf(cli.pid);

      const { req, response } = startRequest(cli.port, '/download.php?mb=20');
      req.end();
      const res = await response;
      assert.equal(res.headers['transfer-encoding'], 'chunked', 'streamed, not buffered into a Content-Length');
      const hash = createHash('md5');
      let bytes = 0;
      const first = await new Promise<Buffer>((resolve) => res.once('data', resolve));
      res.pause();
      hash.update(first);
      bytes += first.length;
      // The client is slow: it reads nothing for a while. PHP writes 20 MB in a fraction of this
      // time, so a relay without backpressure would now hold all of it and the worker would be idle.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const pool = (await statusJson(cli.port)).pools[0]!;
      assert.equal(pool['active processes'], 1, 'PHP is still writing: it is held back by the paused client');
      const paused = memoryOf(cli.pid);
      const grewBytes = paused.hwm - before.hwm;
      assert.ok(grewBytes < 8 * 1024 * 1024, `while the reader paused, peak RSS grew by ${(grewBytes / 1048576).toFixed(1)} MiB (from ${(before.hwm / 1048576).toFixed(1)} MiB)`);

      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.resume();
      await new Promise((resolve, reject) => {
        res.once('end', resolve);
        res.once('error', reject);
      });
      assert.equal(bytes, 20 * 1024 * 1024);
      const expected = createHash('md5');
      const piece = Buffer.from('0123456789abcdef'.repeat(4096));
      for (let i = 0; i < 20 * 16; i++) expected.update(piece);
      assert.equal(hash.digest('hex'), expected.digest('hex'), 'every byte arrived in order');
    } finally {
      cli.kill('SIGTERM');
      const exit = await cli.exited;
      assert.equal(exit.code, 0);
    }
  });
});
