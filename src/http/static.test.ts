// Tests for static files: the Range parser against RFC 9110 14.1-14.2, Content-Type by extension,
// then serveStatic behind a real node:http server on a free loopback port (200, 304 by ETag and by
// date, 206, 416, If-Range, HEAD, 405, an empty file).

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CACHED_FILE_BYTES, StaticFileCache } from './static-cache.js';
import { contentTypeFor, etagFor, parseRange, serveStatic, type ByteRange } from './static.js';

describe('parseRange', () => {
  const rows: Array<{ header: string | undefined; size?: number; want: ByteRange | 'unsatisfiable' | null }> = [
    { header: undefined, want: null },
    { header: '', want: null },
    { header: 'bytes=0-0', want: { start: 0, end: 0 } },
    { header: 'bytes=0-99', want: { start: 0, end: 99 } },
    { header: 'bytes=10-19', want: { start: 10, end: 19 } },
    { header: 'bytes=99-99', want: { start: 99, end: 99 } },
    { header: 'bytes=0-', want: { start: 0, end: 99 } },
    { header: 'bytes=10-', want: { start: 10, end: 99 } },
    { header: 'bytes=-10', want: { start: 90, end: 99 } },
    { header: 'bytes=-100', want: { start: 0, end: 99 } },
    { header: 'bytes=-1000', want: { start: 0, end: 99 } },
    { header: 'bytes=50-1000', want: { start: 50, end: 99 } },
    { header: 'BYTES=0-1', want: { start: 0, end: 1 } },
    { header: 'Bytes=-1', want: { start: 99, end: 99 } },
    // RFC 9110 14.1.3: a suffix-length of zero is unsatisfiable.
    { header: 'bytes=-0', want: 'unsatisfiable' },
    // RFC 9110 14.1.1: a first-pos past the end is unsatisfiable.
    { header: 'bytes=100-', want: 'unsatisfiable' },
    { header: 'bytes=100-200', want: 'unsatisfiable' },
    { header: 'bytes=99999999999999999999-', want: 'unsatisfiable' },
    // Invalid ranges are ignored (the whole file is sent).
    { header: 'bytes=5-4', want: null },
    { header: 'bytes=', want: null },
    { header: 'bytes=-', want: null },
    { header: 'bytes=a-b', want: null },
    { header: 'bytes=1-2-3', want: null },
    { header: 'bytes=0x1-2', want: null },
    { header: 'bytes=+1-2', want: null },
    { header: 'bytes=1.5-2', want: null },
    { header: 'bytes 0-1', want: null },
    { header: 'items=0-1', want: null },
    { header: '0-1', want: null },
    // Several ranges would need multipart/byteranges; sending the whole file is allowed.
    { header: 'bytes=0-1,5-6', want: null },
    { header: 'bytes=0-1, 5-6', want: null },
    { header: 'bytes=0-1,', want: null },
    { header: 'bytes=0-', size: 0, want: 'unsatisfiable' },
    { header: 'bytes=0-0', size: 0, want: 'unsatisfiable' },
    { header: 'bytes=-0', size: 0, want: 'unsatisfiable' },
    // Regression: gave { start: 0, end: -1 }, sent as 206 "bytes 0--1/0".
    { header: 'bytes=-5', size: 0, want: null },
    { header: 'bytes=-5', size: 1, want: { start: 0, end: 0 } },
  ];
  for (const row of rows) {
    const size = row.size ?? 100;
    test(`${JSON.stringify(row.header)} of ${size} bytes -> ${JSON.stringify(row.want)}`, () => assert.deepEqual(parseRange(row.header, size), row.want));
  }
});

describe('contentTypeFor', () => {
  const rows: Array<[string, string]> = [
    ['/a/index.html', 'text/html; charset=utf-8'],
    ['/a/INDEX.HTML', 'text/html; charset=utf-8'],
    ['/style.css', 'text/css; charset=utf-8'],
    ['/app.js', 'application/javascript; charset=utf-8'],
    ['/data.json', 'application/json; charset=utf-8'],
    ['/photo.jpg', 'image/jpeg'],
    ['/a.svg', 'image/svg+xml'],
    ['/archive.tar.gz', 'application/gzip'],
    ['/file.unknownext', 'application/octet-stream'],
    ['/README', 'application/octet-stream'],
    // Regression: mime-types looked these bare names up as extensions and sent HTML / JSON.
    ['/uploads/html', 'application/octet-stream'],
    ['/json', 'application/octet-stream'],
    ['/.html', 'application/octet-stream'],
  ];
  for (const [file, want] of rows) test(`${file} -> ${want}`, () => assert.equal(contentTypeFor(file), want));
});

describe('serveStatic', () => {
  const content = Buffer.from('0123456789abcdefghij');
  // A fixed mtime with a fraction: Last-Modified and ETag use whole seconds.
  const mtime = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 500));
  const lastModified = 'Tue, 02 Jan 2024 03:04:05 GMT';
  let dir: string;
  let server: http.Server;
  let port: number;
  let etag: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tq-static-'));
    writeFileSync(join(dir, 'file.txt'), content);
    writeFileSync(join(dir, 'empty.txt'), '');
    writeFileSync(join(dir, 'page.html'), '<p>hi</p>');
    for (const name of ['file.txt', 'empty.txt', 'page.html']) utimesSync(join(dir, name), mtime, mtime);
    etag = etagFor(statSync(join(dir, 'file.txt')));
    server = http.createServer((request, response) => {
      const file = join(dir, (request.url ?? '/').slice(1));
      serveStatic(request, response, file, statSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: Buffer;
  }

  function fetchRaw(path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const request = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
        response.on('error', reject);
      });
      request.on('error', reject);
      request.end(options.method === 'POST' ? 'posted' : undefined);
    });
  }

  test('the ETag is hex mtime seconds and size, quoted', () => {
    assert.equal(etag, `"${Math.floor(mtime.getTime() / 1000).toString(16)}-14"`);
  });

  test('200 with Content-Type, Content-Length, ETag, Last-Modified, Accept-Ranges and the body', async () => {
    const reply = await fetchRaw('/file.txt');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(reply.headers['content-length'], '20');
    assert.equal(reply.headers.etag, etag);
    assert.equal(reply.headers['last-modified'], lastModified);
    assert.equal(reply.headers['accept-ranges'], 'bytes');
    assert.equal(reply.headers['x-content-type-options'], 'nosniff');
    assert.deepEqual(reply.body, content);
  });

  test('Content-Type follows the extension', async () => {
    const reply = await fetchRaw('/page.html');
    assert.equal(reply.headers['content-type'], 'text/html; charset=utf-8');
  });

  const conditional: Array<{ name: string; headers: () => Record<string, string>; status: number }> = [
    { name: 'If-None-Match with the ETag', headers: () => ({ 'If-None-Match': etag }), status: 304 },
    { name: 'If-None-Match with the weak ETag (weak comparison, RFC 9110 13.1.2)', headers: () => ({ 'If-None-Match': `W/${etag}` }), status: 304 },
    { name: 'If-None-Match with a list holding the ETag', headers: () => ({ 'If-None-Match': `"nope", ${etag} , "other"` }), status: 304 },
    { name: 'If-None-Match: *', headers: () => ({ 'If-None-Match': '*' }), status: 304 },
    { name: 'If-None-Match with another ETag', headers: () => ({ 'If-None-Match': '"other"' }), status: 200 },
    { name: 'If-None-Match with the ETag unquoted', headers: () => ({ 'If-None-Match': etag.slice(1, -1) }), status: 200 },
    { name: 'If-Modified-Since at Last-Modified', headers: () => ({ 'If-Modified-Since': lastModified }), status: 304 },
    { name: 'If-Modified-Since after Last-Modified', headers: () => ({ 'If-Modified-Since': 'Wed, 03 Jan 2024 00:00:00 GMT' }), status: 304 },
    { name: 'If-Modified-Since one second before', headers: () => ({ 'If-Modified-Since': 'Tue, 02 Jan 2024 03:04:04 GMT' }), status: 200 },
    { name: 'If-Modified-Since not a date', headers: () => ({ 'If-Modified-Since': 'yesterday' }), status: 200 },
    { name: 'If-None-Match beats If-Modified-Since (RFC 9110 13.2.2): no match, recent date', headers: () => ({ 'If-None-Match': '"other"', 'If-Modified-Since': 'Wed, 03 Jan 2024 00:00:00 GMT' }), status: 200 },
    { name: 'If-None-Match beats If-Modified-Since: match, old date', headers: () => ({ 'If-None-Match': etag, 'If-Modified-Since': 'Mon, 01 Jan 2024 00:00:00 GMT' }), status: 304 },
  ];
  for (const row of conditional) {
    test(`${row.status} for ${row.name}`, async () => {
      const reply = await fetchRaw('/file.txt', { headers: row.headers() });
      assert.equal(reply.status, row.status);
      assert.equal(reply.headers.etag, etag);
      if (row.status === 304) assert.equal(reply.body.length, 0);
      else assert.deepEqual(reply.body, content);
    });
  }

  const ranges: Array<{ name: string; headers: () => Record<string, string>; status: number; range?: string; body: string }> = [
    { name: 'a first-last range', headers: () => ({ Range: 'bytes=0-4' }), status: 206, range: 'bytes 0-4/20', body: '01234' },
    { name: 'a suffix range', headers: () => ({ Range: 'bytes=-3' }), status: 206, range: 'bytes 17-19/20', body: 'hij' },
    { name: 'an open-ended range', headers: () => ({ Range: 'bytes=15-' }), status: 206, range: 'bytes 15-19/20', body: 'fghij' },
    { name: 'a range past the end, clipped', headers: () => ({ Range: 'bytes=18-1000' }), status: 206, range: 'bytes 18-19/20', body: 'ij' },
    { name: 'several ranges send the whole file', headers: () => ({ Range: 'bytes=0-1,4-5' }), status: 200, body: content.toString() },
    { name: 'an invalid range sends the whole file', headers: () => ({ Range: 'bytes=5-1' }), status: 200, body: content.toString() },
    { name: 'If-Range with the current ETag', headers: () => ({ Range: 'bytes=0-1', 'If-Range': etag }), status: 206, range: 'bytes 0-1/20', body: '01' },
    { name: 'If-Range with a stale ETag sends the whole file', headers: () => ({ Range: 'bytes=0-1', 'If-Range': '"stale"' }), status: 200, body: content.toString() },
    { name: 'If-Range with a weak ETag sends the whole file (strong comparison)', headers: () => ({ Range: 'bytes=0-1', 'If-Range': `W/${etag}` }), status: 200, body: content.toString() },
    { name: 'If-Range with Last-Modified', headers: () => ({ Range: 'bytes=0-1', 'If-Range': lastModified }), status: 206, range: 'bytes 0-1/20', body: '01' },
    { name: 'If-Range with another date sends the whole file', headers: () => ({ Range: 'bytes=0-1', 'If-Range': 'Mon, 01 Jan 2024 00:00:00 GMT' }), status: 200, body: content.toString() },
  ];
  for (const row of ranges) {
    test(`${row.status} for ${row.name}`, async () => {
      const reply = await fetchRaw('/file.txt', { headers: row.headers() });
      assert.equal(reply.status, row.status);
      assert.equal(reply.headers['content-range'], row.range);
      assert.equal(reply.headers['content-length'], String(Buffer.byteLength(row.body)));
      assert.equal(reply.body.toString(), row.body);
    });
  }

  test('416 for a range past the end, with the size in Content-Range', async () => {
    const reply = await fetchRaw('/file.txt', { headers: { Range: 'bytes=20-' } });
    assert.equal(reply.status, 416);
    assert.equal(reply.headers['content-range'], 'bytes */20');
    assert.equal(reply.body.length, 0);
  });

  test('416 for a zero suffix', async () => {
    const reply = await fetchRaw('/file.txt', { headers: { Range: 'bytes=-0' } });
    assert.equal(reply.status, 416);
  });

  test('HEAD answers the headers of GET without a body', async () => {
    const reply = await fetchRaw('/file.txt', { method: 'HEAD' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], '20');
    assert.equal(reply.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(reply.headers.etag, etag);
    assert.equal(reply.body.length, 0);
  });

  // RFC 9110 14.2: range handling is defined for GET only.
  test('HEAD with Range ignores the range', async () => {
    const reply = await fetchRaw('/file.txt', { method: 'HEAD', headers: { Range: 'bytes=0-4' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], '20');
    assert.equal(reply.headers['content-range'], undefined);
  });

  test('HEAD with If-None-Match is a 304', async () => {
    const reply = await fetchRaw('/file.txt', { method: 'HEAD', headers: { 'If-None-Match': etag } });
    assert.equal(reply.status, 304);
  });

  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    test(`405 for ${method}, with Allow`, async () => {
      const reply = await fetchRaw('/file.txt', { method });
      assert.equal(reply.status, 405);
      assert.equal(reply.headers.allow, 'GET, HEAD');
      assert.equal(reply.headers.etag, undefined);
      assert.equal(reply.body.length, 0);
    });
  }

  test('a zero-byte file is a 200 with Content-Length 0', async () => {
    const reply = await fetchRaw('/empty.txt');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], '0');
    assert.equal(reply.headers.etag, etagFor(statSync(join(dir, 'empty.txt'))));
    assert.equal(reply.body.length, 0);
  });

  test('a zero-byte file with a suffix range is a 200, not "bytes 0--1/0"', async () => {
    const reply = await fetchRaw('/empty.txt', { headers: { Range: 'bytes=-5' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-range'], undefined);
    assert.equal(reply.headers['content-length'], '0');
  });

  test('a zero-byte file with bytes=0- is a 416', async () => {
    const reply = await fetchRaw('/empty.txt', { headers: { Range: 'bytes=0-' } });
    assert.equal(reply.status, 416);
    assert.equal(reply.headers['content-range'], 'bytes */0');
  });

  test('serveStatic returns the status it sent', async () => {
    const statuses: number[] = [];
    const probe = http.createServer((request, response) => {
      statuses.push(serveStatic(request, response, join(dir, 'file.txt'), statSync(join(dir, 'file.txt'))));
    });
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const probePort = (probe.address() as AddressInfo).port;
    const ask = (headers: Record<string, string>) =>
      new Promise<void>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: probePort, path: '/', headers, agent: false }, (response) => response.resume().on('end', resolve)).on('error', reject);
      });
    await ask({});
    await ask({ Range: 'bytes=0-0' });
    await ask({ 'If-None-Match': etag });
    await ask({ Range: 'bytes=99-' });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    assert.deepEqual(statuses, [200, 206, 304, 416]);
  });

  test('a small file is read once, then answered from memory until it changes; then the new bytes at once', async () => {
    const path = join(dir, 'style.css');
    writeFileSync(path, 'body { color: red }');
    const first = await fetchRaw('/style.css');
    assert.equal(first.body.toString(), 'body { color: red }');
    assert.equal(first.headers['content-type'], 'text/css; charset=utf-8');
    // Edited in place (same length, so only the modification time tells): the next request sees it.
    writeFileSync(path, 'body { color: tan }');
    utimesSync(path, new Date(Date.now() + 5000), new Date(Date.now() + 5000));
    assert.equal((await fetchRaw('/style.css')).body.toString(), 'body { color: tan }');
    // Replaced by a rename (a deploy): another inode, read again.
    writeFileSync(join(dir, 'style.new'), 'body { color: blue; margin: 0 }');
    renameSync(join(dir, 'style.new'), path);
    const replaced = await fetchRaw('/style.css');
    assert.equal(replaced.body.toString(), 'body { color: blue; margin: 0 }');
    assert.equal(replaced.headers['content-length'], String('body { color: blue; margin: 0 }'.length));
    // Ranges come from memory too.
    const range = await fetchRaw('/style.css', { headers: { Range: 'bytes=7-11' } });
    assert.equal(range.status, 206);
    assert.equal(range.body.toString(), 'color');
  });

  test('a file larger than the cache takes is streamed whole', async () => {
    const big = Buffer.alloc(CACHED_FILE_BYTES * 2 + 3, 'x');
    big.write('end', big.length - 3);
    writeFileSync(join(dir, 'big.bin'), big);
    const reply = await fetchRaw('/big.bin');
    assert.equal(reply.status, 200);
    assert.ok(reply.body.equals(big));
  });
});

describe('StaticFileCache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tq-static-cache-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, bytes: number) => {
    const path = join(dir, name);
    writeFileSync(path, Buffer.alloc(bytes, name));
    return { path, stats: statSync(path), body: Buffer.alloc(bytes, name) };
  };

  test('keeps files within its budget, the least recently used leaving first', () => {
    const cache = new StaticFileCache(250);
    const a = file('a', 100);
    const b = file('b', 100);
    const c = file('c', 100);
    cache.put(a.path, a.stats, a.body);
    cache.put(b.path, b.stats, b.body);
    assert.ok(cache.get(a.path, a.stats), 'a used: b is now the least recent');
    cache.put(c.path, c.stats, c.body);
    assert.equal(cache.get(b.path, b.stats), null);
    assert.ok(cache.get(a.path, a.stats));
    assert.ok(cache.get(c.path, c.stats));
    assert.equal(cache.bytes, 200);
  });

  test('does not keep bytes that are not the file its stat describes, or a file too large', () => {
    const cache = new StaticFileCache();
    const a = file('d', 10);
    cache.put(a.path, a.stats, Buffer.alloc(9));
    assert.equal(cache.get(a.path, a.stats), null);
    const big = file('e', CACHED_FILE_BYTES + 1);
    cache.put(big.path, big.stats, big.body);
    assert.equal(cache.get(big.path, big.stats), null);
    assert.equal(cache.bytes, 0);
  });
});
