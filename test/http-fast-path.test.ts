// The fast HTTP/1.1 path (src/http/fast-http.ts): plain GET and HEAD requests are parsed and answered
// without node:http, with the same answer node:http would give; anything else, and everything after
// it on the same connection, is left to node:http.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { FAST_BODY_BYTES } from '../src/http/fast-http.js';
import { makeProject, parseResponses, rawRequest, serverYaml, startFront, statusJson, workerYaml, type Project, type RawResponse, type RunningFront } from './helpers/front.js';
import type { RequestRecord } from '../src/observe/request-record.js';
import { until } from './helpers/supervisor.js';

/** Headers that differ from response to response whichever path answers. */
const VARYING = new Set(['date', 'x-request-id']);

function comparable(response: RawResponse): { status: number; reason: string; headers: Array<[string, string]>; md5: string } {
  return {
    status: response.status,
    reason: response.reason,
    headers: response.headers.filter(([name]) => !VARYING.has(name)),
    md5: createHash('md5').update(response.body).digest('hex'),
  };
}

describe('the fast HTTP/1.1 path', () => {
  let project: Project;
  let front: RunningFront;

  before(async () => {
    project = await makeProject({ server: serverYaml({ idle_timeout_seconds: 7, read_timeout_seconds: 2, max_body_size: '20K' }), apps: [{ name: 'app', worker: workerYaml('/', { max_workers: 2 }) }] });
    front = await startFront(project.root);
  });

  after(async () => {
    await front?.stop();
    await project?.cleanup();
  });

  const counts = () => ({ ...front.server.http.fastPath });

  /** One request on its own connection; `viaNode` adds a repeated header, which the fast path leaves to node:http. */
  async function ask(method: 'GET' | 'HEAD', target: string, viaNode: boolean, extra: string[] = []): Promise<RawResponse> {
    const lines = [`${method} ${target} HTTP/1.1`, 'Host: localhost', 'Accept: */*', ...extra, ...(viaNode ? ['X-Twice: 1', 'X-Twice: 2'] : []), 'Connection: close', '', ''];
    const { responses, text } = await rawRequest(front.port, lines.join('\r\n'), { headRequests: method === 'HEAD' ? new Set([0]) : new Set() });
    assert.equal(responses.length, 1, `one response to ${method} ${target}: ${text.slice(0, 300)}`);
    return responses[0]!;
  }

  const cases: Array<{ method: 'GET' | 'HEAD'; target: string; extra?: string[]; status: number }> = [
    { method: 'GET', target: '/index.php?a=1&b=%20', status: 200 },
    { method: 'GET', target: '/pretty/url?x=1', status: 200 },
    { method: 'GET', target: '/cookies.php', status: 200 },
    { method: 'GET', target: '/redirect.php?code=301&to=/elsewhere', status: 301 },
    { method: 'GET', target: '/redirect.php?status=299%20Custom%20Reason', status: 299 },
    { method: 'GET', target: '/download.php?mb=1', status: 200 },
    { method: 'GET', target: '/slowstart.php?ms=50', status: 200 },
    { method: 'GET', target: '/sub/', status: 200 },
    { method: 'GET', target: '/assets/style.css', status: 200 },
    { method: 'GET', target: '/assets/hello.txt', extra: ['Range: bytes=0-3'], status: 206 },
    { method: 'GET', target: '/assets/hello.txt', extra: ['Range: bytes=9999-'], status: 416 },
    { method: 'HEAD', target: '/index.php', status: 200 },
    { method: 'HEAD', target: '/download.php?mb=1', status: 200 },
    { method: 'HEAD', target: '/assets/page.html', status: 200 },
  ];

  test('plain GET and HEAD requests are answered on the fast path, exactly as node:http answers them', async () => {
    for (const { method, target, extra = [], status } of cases) {
      const before = counts();
      const fast = await ask(method, target, false, extra);
      const middle = counts();
      const slow = await ask(method, target, true, extra);
      const last = counts();
      assert.deepEqual([middle.requests - before.requests, middle.handoffs - before.handoffs], [1, 0], `${method} ${target}: fast path`);
      assert.deepEqual([last.requests - middle.requests, last.handoffs - middle.handoffs], [0, 1], `${method} ${target} with a repeated header: node:http`);
      assert.equal(fast.status, status, `${method} ${target}`);
      assert.deepEqual(comparable(fast), comparable(slow), `${method} ${target}: the same status, headers in the same order, and body on both paths`);
      assert.ok(fast.header('x-request-id'), `${method} ${target}: X-Request-Id`);
      assert.match(fast.header('date') ?? '', /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    }
  });

  test('the bytes sent that the access log records are the bytes the client received, on both paths', async () => {
    const sent = new Map<string, number>();
    const waiting = new Map<string, () => void>();
    const observer = (record: RequestRecord) => {
      sent.set(record.id, record.bytesSent);
      waiting.get(record.id)?.();
    };
    /** The record of a request: already seen, or when the observer sees it. */
    const recorded = (id: string) => (sent.has(id) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(id, resolve)));
    front.server.observers.add(observer);
    try {
      for (const { method, target, extra = [] } of cases) {
        for (const viaNode of [false, true]) {
          const lines = [`${method} ${target} HTTP/1.1`, 'Host: localhost', ...extra, ...(viaNode ? ['X-Twice: 1', 'X-Twice: 2'] : []), 'Connection: close', '', ''];
          const { raw, responses } = await rawRequest(front.port, lines.join('\r\n'), { headRequests: method === 'HEAD' ? new Set([0]) : new Set() });
          const id = responses[0]?.header('x-request-id') ?? '';
          await recorded(id);
          assert.equal(sent.get(id), raw.length, `${method} ${target} ${viaNode ? 'through node:http' : 'on the fast path'}`);
        }
      }
    } finally {
      front.server.observers.delete(observer);
    }
  });

  test('a kept-alive connection stays on the fast path, and its headers say so as node:http would', async () => {
    const before = counts();
    const requests = Array.from({ length: 3 }, (_, i) => `GET /index.php?n=${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    const socket = net.connect({ host: '127.0.0.1', port: front.port });
    socket.on('error', () => {});
    let data = Buffer.alloc(0);
    const answers: RawResponse[] = [];
    for (const request of requests) {
      socket.write(request);
      // Each answer is read whole before the next request goes out.
      await new Promise<void>((resolve) => {
        const onData = (chunk: Buffer) => {
          data = Buffer.concat([data, chunk]);
          const parsed = parseResponses(data);
          if (parsed.length === 1) {
            answers.push(parsed[0]!);
            data = Buffer.alloc(0);
            socket.off('data', onData);
            resolve();
          }
        };
        socket.on('data', onData);
      });
    }
    socket.destroy();
    assert.deepEqual(
      answers.map((answer) => [answer.status, answer.header('connection'), answer.header('keep-alive'), JSON.parse(answer.body.toString()).QUERY_STRING]),
      [0, 1, 2].map((n) => [200, 'keep-alive', 'timeout=7', `n=${n}`]),
    );
    const now = counts();
    assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], [3, 0]);
  });

  test('pipelined requests are answered in order; the first one the fast path leaves hands the connection to node:http for good', async () => {
    const before = counts();
    const body = 'hello';
    const bytes = [
      'GET /index.php?n=1 HTTP/1.1\r\nHost: localhost\r\n\r\n',
      'GET /index.php?n=2 HTTP/1.1\r\nHost: localhost\r\n\r\n',
      `POST /index.php?n=3 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      'GET /index.php?n=4 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    ].join('');
    const { responses } = await rawRequest(front.port, bytes);
    assert.deepEqual(
      responses.map((response) => [response.status, JSON.parse(response.body.toString()).QUERY_STRING]),
      [1, 2, 3, 4].map((n) => [200, `n=${n}`]),
    );
    assert.equal(JSON.parse(responses[2]!.body.toString()).input_md5, createHash('md5').update(body).digest('hex'), 'the POST body reached PHP');
    const now = counts();
    assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], [2, 1]);
  });

  test('small bodies that come with their head are read on the fast path; PHP gets them as through node:http', async () => {
    const json = JSON.stringify({ name: 'ünïcödé', list: [1, 2, 3] });
    const big = 'x'.repeat(FAST_BODY_BYTES);
    const cases: Array<{ name: string; method: string; target: string; type?: string; body?: string; status: number; fast?: boolean }> = [
      { name: 'a form post', method: 'POST', target: '/form.php?q=1', type: 'application/x-www-form-urlencoded', body: 'user=ada&note=hello+world&tags%5B%5D=a&tags%5B%5D=b', status: 200 },
      { name: 'a JSON post', method: 'POST', target: '/form.php', type: 'application/json', body: json, status: 200 },
      { name: 'a PUT', method: 'PUT', target: '/form.php', type: 'text/plain', body: 'replace me', status: 200 },
      { name: 'a PATCH', method: 'PATCH', target: '/form.php', type: 'application/json', body: '{"a":1}', status: 200 },
      { name: 'a DELETE with a body', method: 'DELETE', target: '/form.php', type: 'text/plain', body: 'gone', status: 200 },
      { name: 'a DELETE without one', method: 'DELETE', target: '/form.php', status: 200 },
      { name: 'a POST with Content-Length: 0', method: 'POST', target: '/form.php', type: 'text/plain', body: '', status: 200 },
      { name: 'a POST without Content-Length', method: 'POST', target: '/form.php', status: 200 },
      { name: 'a body of 16 KiB (one read on loopback)', method: 'POST', target: '/form.php', type: 'text/plain', body: 'z'.repeat(16 * 1024), status: 200 },
      { name: 'a body over max_body_size that streams in after its head', method: 'POST', target: '/form.php', type: 'text/plain', body: `${big}x`, status: 413 },
      { name: 'a POST to a static file: node:http (405)', method: 'POST', target: '/assets/hello.txt', type: 'text/plain', body: 'x', status: 405, fast: false },
      { name: 'a body over max_body_size', method: 'POST', target: '/form.php', type: 'text/plain', body: 'y'.repeat(24 * 1024), status: 413 },
    ];
    for (const { name, method, target, type, body, status, fast = true } of cases) {
      const head = (viaNode: boolean) =>
        [
          `${method} ${target} HTTP/1.1`,
          'Host: localhost',
          ...(type ? [`Content-Type: ${type}`] : []),
          ...(body !== undefined ? [`Content-Length: ${Buffer.byteLength(body)}`] : []),
          ...(viaNode ? ['X-Twice: 1', 'X-Twice: 2'] : []),
          'Connection: close',
          '',
          '',
        ].join('\r\n');
      const before = counts();
      // One write each: the head in latin1 as sent on the wire, the body as UTF-8.
      const bytes = (viaNode: boolean) => Buffer.concat([Buffer.from(head(viaNode), 'latin1'), Buffer.from(body ?? '', 'utf8')]);
      const first = await rawRequest(front.port, bytes(false));
      const middle = counts();
      const second = await rawRequest(front.port, bytes(true));
      const last = counts();
      assert.deepEqual([middle.requests - before.requests, middle.handoffs - before.handoffs], fast ? [1, 0] : [0, 1], `${name}: ${fast ? 'the fast path' : 'node:http'}`);
      assert.deepEqual([last.requests - middle.requests, last.handoffs - middle.handoffs], [0, 1], `${name} with a repeated header: node:http`);
      assert.equal(first.responses[0]?.status, status, `${name}: ${first.text.slice(0, 300)}`);
      assert.deepEqual(comparable(first.responses[0]!), comparable(second.responses[0]!), `${name}: the same answer on both paths`);
      if (status === 200) {
        const seen = JSON.parse(first.responses[0]!.body.toString()) as Record<string, unknown>;
        assert.equal(seen.method, method, name);
        assert.equal(seen.input_md5, createHash('md5').update(body ?? '').digest('hex'), `${name}: the body reached PHP whole`);
        assert.equal(seen.HTTP_CONTENT_LENGTH, null, `${name}: Content-Length is CONTENT_LENGTH only`);
      }
    }
  });

  test('a body that comes after its head streams in on the fast path (spooled as through node:http); pipelined POSTs stay on it', async () => {
    const before = counts();
    const socket = net.connect({ host: '127.0.0.1', port: front.port });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('POST /form.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nfirst');
    // The head (and the body's first half) are taken; the rest follows in another read.
    await until('the request to be taken', () => counts().requests > before.requests);
    socket.write('-last');
    await closed;
    const [answer] = parseResponses(Buffer.from(text, 'latin1'));
    assert.equal(answer?.status, 200, text.slice(0, 300));
    assert.equal(JSON.parse(answer!.body.toString()).input_md5, createHash('md5').update('first-last').digest('hex'));
    assert.equal(counts().handoffs, before.handoffs, 'no handoff');

    const middle = counts();
    const posts = [1, 2, 3].map((n) => `POST /form.php?n=${n} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n\r\nn=${n}`);
    const { responses } = await rawRequest(front.port, posts.join('') + 'GET /form.php?n=4 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    assert.deepEqual(
      responses.map((response) => { const seen = JSON.parse(response.body.toString()); return [response.status, seen.method, seen.get.n, seen.post.n ?? null]; }),
      [[200, 'POST', '1', '1'], [200, 'POST', '2', '2'], [200, 'POST', '3', '3'], [200, 'GET', '4', null]],
    );
    const now = counts();
    assert.deepEqual([now.requests - middle.requests, now.handoffs - middle.handoffs], [4, 0], 'all four on the fast path');
  });

  test('a flood of pipelined requests is read as the answers go out (the client is paused, nothing is lost)', async () => {
    const before = counts();
    const n = 3000;
    const one = 'GET /assets/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n';
    const bytes = one.repeat(n - 1) + 'GET /assets/hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
    assert.ok(bytes.length > 128 * 1024, 'more than the fast path holds unread');
    const { responses } = await rawRequest(front.port, bytes, { timeoutMs: 30_000 });
    assert.equal(responses.length, n);
    const bodies = new Set(responses.map((response) => `${response.status} ${response.body.toString()}`));
    assert.equal(bodies.size, 1, `one answer repeated: ${[...bodies].join(' | ').slice(0, 200)}`);
    assert.equal(responses[n - 1]!.header('connection'), 'close');
    const now = counts();
    assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], [n, 0]);
  });

  test('a pipelined request cut off in its head waits for the rest, and gets 408 at read_timeout when it never comes', async () => {
    const before = counts();
    const started = Date.now();
    const { responses, text } = await rawRequest(front.port, 'GET /assets/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\nGET /assets/hel');
    const tookMs = Date.now() - started;
    assert.deepEqual(
      responses.map((response) => response.status),
      [200, 408],
      text.slice(0, 400),
    );
    assert.ok(tookMs >= 1900 && tookMs < 6000, `the 408 came at read_timeout (2 s): ${tookMs} ms`);
    const now = counts();
    assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], [1, 0]);
    assert.ok(front.find(/^408: malformed or incomplete request/), 'logged as node:http would log it');
  });

  test('/metrics counts the requests the fast path answered and the connections it handed on', async () => {
    const before = counts();
    const reply = await rawRequest(front.port, 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    const body = reply.responses[0]!.body.toString();
    // The scrape itself is a handoff (the status and metrics paths are node:http's), counted before it renders.
    assert.match(body, new RegExp(`^tqserver_http_fast_path_requests_total ${before.requests}$`, 'm'));
    assert.match(body, new RegExp(`^tqserver_http_handoffs_total ${before.handoffs + 1}$`, 'm'));
  });

  test('anything but a plain request goes to node:http, which answers it as before', async () => {
    const cases: Array<{ name: string; bytes: string; status: number }> = [
      { name: 'two Host headers', bytes: 'GET /assets/hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', status: 400 },
      { name: 'no Host header', bytes: 'GET /assets/hello.txt HTTP/1.1\r\n\r\n', status: 400 },
      { name: 'a lower-case method', bytes: 'get /assets/hello.txt HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
      { name: 'a space before the colon', bytes: 'GET /assets/hello.txt HTTP/1.1\r\nHost : a\r\n\r\n', status: 400 },
      { name: 'a bare LF in a header value', bytes: 'GET /assets/hello.txt HTTP/1.1\r\nHost: a\r\nX-A: b\nc\r\n\r\n', status: 400 },
      { name: 'HTTP/1.0', bytes: 'GET /assets/hello.txt HTTP/1.0\r\nHost: a\r\n\r\n', status: 200 },
      { name: 'an absolute-form target', bytes: 'GET http://a/assets/hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', status: 200 },
      { name: 'a Latin-1 byte in a header value', bytes: 'GET /assets/hello.txt HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\nConnection: close\r\n\r\n', status: 200 },
      { name: 'a Connection list', bytes: 'GET /assets/hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close, x-foo\r\n\r\n', status: 200 },
      { name: 'the status page', bytes: 'GET /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', status: 200 },
      { name: 'a directory without its slash', bytes: 'GET /sub HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', status: 301 },
      { name: 'a backup of PHP source', bytes: 'GET /index.php.bak HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', status: 404 },
      { name: 'a dotfile', bytes: 'GET /.env HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', status: 404 },
      { name: 'a path with an encoded NUL', bytes: 'GET /index.php%00.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', status: 400 },
    ];
    for (const { name, bytes, status } of cases) {
      const before = counts();
      const { responses, text } = await rawRequest(front.port, bytes);
      assert.equal(responses[0]?.status, status, `${name}: ${text.slice(0, 200)}`);
      const now = counts();
      assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], [0, 1], `${name}: left to node:http`);
    }
  });
});

describe('the fast path with bodies that stream in after their head', () => {
  for (const requestBuffering of [true, false]) {
    describe(`request_buffering: ${requestBuffering}`, () => {
      let project: Project;
      let front: RunningFront;

      before(async () => {
        project = await makeProject({
          server: serverYaml({ read_timeout_seconds: 2, max_body_size: '8M', body_buffer_size: '64K', request_buffering: requestBuffering ? 'true' : 'false' }).replace(/"(true|false)"/, '$1'),
          apps: [{ name: 'app', worker: workerYaml('/', { max_workers: 2 }) }],
        });
        front = await startFront(project.root);
      });

      after(async () => {
        await front?.stop();
        await project?.cleanup();
      });

      const counts = () => ({ ...front.server.http.fastPath });

      test(requestBuffering ? 'a 3 MB body written in pieces reaches PHP whole, without node:http' : 'a body still coming is left to node:http, which streams it to PHP', async () => {
        const body = randomBytes(3 * 1024 * 1024 + 7);
        const head = Buffer.from(`POST /form.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1');
        const before = counts();
        const socket = net.connect({ host: '127.0.0.1', port: front.port });
        socket.on('error', () => {});
        let raw = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => (raw = Buffer.concat([raw, chunk])));
        const answered = new Promise<void>((resolve) => {
          const check = () => {
            if (parseResponses(raw).length === 1) {
              socket.off('data', check);
              resolve();
            }
          };
          socket.on('data', check);
        });
        await new Promise((resolve) => socket.once('connect', resolve));
        socket.write(Buffer.concat([head, body.subarray(0, 1000)]));
        for (let at = 1000; at < body.length; at += 256 * 1024) {
          if (!socket.write(body.subarray(at, at + 256 * 1024))) await new Promise((resolve) => socket.once('drain', resolve));
        }
        await answered;
        socket.destroy();
        const [answer] = parseResponses(raw);
        assert.equal(answer!.status, 200, answer!.body.toString().slice(0, 300));
        const seen = JSON.parse(answer!.body.toString()) as { input_bytes: number; input_md5: string; CONTENT_LENGTH: string };
        assert.deepEqual([seen.input_bytes, seen.input_md5, seen.CONTENT_LENGTH], [body.length, createHash('md5').update(body).digest('hex'), String(body.length)]);
        const now = counts();
        assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], requestBuffering ? [1, 0] : [0, 1]);
      });

      if (!requestBuffering) return;

      test('a body that stops coming is answered 408 at read_timeout, and PHP never sees it', async () => {
        // The status page goes through node:http: read before the counts are.
        const acceptedBefore = (await statusJson(front.port, false)).pools[0]!['accepted conn'];
        const before = counts();
        const started = Date.now();
        const { responses, text } = await rawRequest(front.port, 'POST /form.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nonly this much', { timeoutMs: 8000 });
        const tookMs = Date.now() - started;
        assert.equal(responses[0]?.status, 408, text.slice(0, 300));
        assert.equal(responses[0]!.header('connection'), 'close');
        assert.ok(tookMs >= 1900 && tookMs < 6000, `at read_timeout (2 s): ${tookMs} ms`);
        const now = counts();
        assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], [1, 0]);
        assert.ok(front.find(/^408 POST \/form\.php: the request body did not arrive within 2000 ms/), 'the log says why');
        assert.equal((await statusJson(front.port, false)).pools[0]!['accepted conn'], acceptedBefore, 'PHP never saw it');
      });

      test('pipelined after a streamed body, the next request is answered on the same connection', async () => {
        const body = 'b'.repeat(200_000);
        const before = counts();
        const { responses } = await rawRequest(
          front.port,
          `POST /form.php?n=1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}GET /form.php?n=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
        );
        assert.deepEqual(
          responses.map((response) => {
            const seen = JSON.parse(response.body.toString());
            return [response.status, seen.method, seen.get.n, seen.input_bytes];
          }),
          [
            [200, 'POST', '1', body.length],
            [200, 'GET', '2', 0],
          ],
        );
        const now = counts();
        assert.deepEqual([now.requests - before.requests, now.handoffs - before.handoffs], [2, 0]);
      });
    });
  }
});
