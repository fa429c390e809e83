// The HTTP front end to end: temp projects served by TQServer with real php-cgi pools, checked with
// real HTTP requests: the CGI variables PHP sees, bodies both ways, redirects and cookies, the front
// controller, static files, failures mapped to status codes, aborts, the status page, and the
// example app. Timeouts and bounded memory are in http-front-flow.test.ts.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  get,
  makeProject,
  REPO_ROOT,
  rawRequest,
  request,
  serverYaml,
  startFront,
  statusJson,
  waitForPool,
  workerYaml,
  type Project,
  type RunningFront,
} from './helpers/front.js';
import { freePort, parseCgiResponse, runCgiFcgi } from './helpers/peers.js';

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');
const JSON_ACCEPT = { accept: 'application/json' };

/** Checks `condition` every 10 ms until it holds; fails after `timeoutMs`. For states no event announces (a file removed). */
async function waitUntil(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A multipart/form-data body with text fields and one file. */
function multipart(fields: Record<string, string>, file: { field: string; name: string; data: Buffer }): { body: Buffer; type: string } {
  const boundary = `----tqserver${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.field}"; filename="${file.name}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
  parts.push(file.data, Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

/** Resolves once an http.ClientRequest's response has started; hands the response over unread. */
function startRequest(port: number, path: string, options: http.RequestOptions = {}): { req: http.ClientRequest; response: Promise<http.IncomingMessage> } {
  const req = http.request({ host: '127.0.0.1', port, path, agent: false, ...options });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  response.catch(() => {});
  return { req, response };
}

describe('HTTP front', () => {
  let project: Project;
  let front: RunningFront;
  let port: number;
  let tinyFastcgiPort: number;

  before(async () => {
    tinyFastcgiPort = await freePort();
    project = await makeProject({
      server: serverYaml({ max_body_size: '4M', max_header_size: '8K' }),
      apps: [
        { name: 'root', worker: workerYaml('/') },
        { name: 'app', worker: workerYaml('/app', { max_workers: 2 }, { env: { APP_MARKER: 'from-worker-yaml' } }) },
        { name: 'admin', worker: workerYaml('/app/admin', { max_workers: 1 }) },
        { name: 'tiny', worker: workerYaml('/tiny', { max_workers: 1, queue_limit: 0 }, { extra: `fastcgi:\n  listen: 127.0.0.1:${tinyFastcgiPort}` }) },
        { name: 'queued', worker: workerYaml('/queued', { max_workers: 1, queue_limit: 4, queue_timeout: '300ms' }) },
        { name: 'slow', worker: workerYaml('/slow', { max_workers: 1, request_timeout: '1s' }) },
      ],
    });
    front = await startFront(project.root);
    port = front.port;
  });

  after(async () => {
    await front?.stop();
    await project?.cleanup();
  });

  describe('the CGI environment PHP sees', () => {
    test('a script at the site root: php-fpm style variables, REQUEST_URI and QUERY_STRING raw', async () => {
      const reply = await get(port, '/env.php?x=1&y=%20z&x=2', { 'user-agent': 'tq-test/1' });
      assert.equal(reply.status, 200);
      const server = reply.json().server;
      const root = project.docRoot('root');
      assert.equal(server.GATEWAY_INTERFACE, 'CGI/1.1');
      assert.match(server.SERVER_SOFTWARE, /^TQServer\/\d+\.\d+\.\d+/);
      assert.equal(server.SERVER_PROTOCOL, 'HTTP/1.1');
      assert.equal(server.REQUEST_METHOD, 'GET');
      assert.equal(server.REQUEST_URI, '/env.php?x=1&y=%20z&x=2');
      assert.equal(server.QUERY_STRING, 'x=1&y=%20z&x=2');
      assert.equal(server.SCRIPT_NAME, '/env.php');
      assert.equal(server.SCRIPT_FILENAME, `${root}/env.php`);
      assert.equal(server.DOCUMENT_ROOT, root);
      assert.equal(server.DOCUMENT_URI, '/env.php');
      assert.equal(server.PHP_SELF, '/env.php');
      assert.equal(server.PATH_INFO ?? '', '');
      assert.equal(server.PATH_TRANSLATED, undefined, 'RFC 3875 4.1.6: no PATH_TRANSLATED without PATH_INFO');
      assert.equal(server.SERVER_PORT, String(port));
      assert.equal(server.SERVER_ADDR, '127.0.0.1');
      assert.equal(server.REMOTE_ADDR, '127.0.0.1');
      assert.match(server.REMOTE_PORT, /^\d+$/);
      assert.equal(server.REQUEST_SCHEME, 'http');
      assert.equal(server.HTTPS, undefined);
      assert.equal(server.HTTP_HOST, `127.0.0.1:${port}`);
      assert.equal(server.SERVER_NAME, '127.0.0.1');
      assert.equal(server.HTTP_USER_AGENT, 'tq-test/1');
      assert.equal(server.CONTENT_LENGTH, '');
      assert.deepEqual(reply.json().get, { x: '2', y: ' z' });
    });

    test('under a prefix with PATH_INFO: SCRIPT_NAME carries the prefix, PATH_INFO is decoded, PATH_TRANSLATED maps it into the document root', async () => {
      const reply = await get(port, '/app/env.php/a%20b/c.txt?q=%2F1');
      assert.equal(reply.status, 200);
      const server = reply.json().server;
      const root = project.docRoot('app');
      assert.equal(server.SCRIPT_NAME, '/app/env.php');
      assert.equal(server.SCRIPT_FILENAME, `${root}/env.php`);
      assert.equal(server.PATH_INFO, '/a b/c.txt');
      assert.equal(server.PATH_TRANSLATED, `${root}/a b/c.txt`);
      assert.equal(server.DOCUMENT_URI, '/app/env.php/a b/c.txt');
      assert.equal(server.PHP_SELF, '/app/env.php/a b/c.txt', 'php-fpm\'s PHP_SELF: SCRIPT_NAME + PATH_INFO');
      assert.equal(server.DOCUMENT_ROOT, root);
      assert.equal(server.REQUEST_URI, '/app/env.php/a%20b/c.txt?q=%2F1');
      assert.equal(server.QUERY_STRING, 'q=%2F1');
      assert.deepEqual(reply.json().get, { q: '/1' });
    });

    test('the app prefix itself and its trailing slash reach the app (segment boundaries, never /application)', async () => {
      const bare = await get(port, '/app?x=1');
      assert.equal(bare.status, 301, 'the app root is a directory with an index.php');
      assert.equal(bare.headers.location, '/app/?x=1');
      const slash = await get(port, '/app/');
      assert.equal(slash.json().SCRIPT_NAME, '/app/index.php');
      const other = await get(port, '/application/env.php');
      assert.equal(other.status, 200);
      assert.equal(other.json().SCRIPT_NAME, '/index.php', '/application is the root app\'s pretty URL, not the /app app');
      assert.equal(other.json().SCRIPT_FILENAME, `${project.docRoot('root')}/index.php`);
    });

    test('routing: the longest prefix wins on segment boundaries, after decoding and removing dot segments', async () => {
      const cases: Array<[string, string, string]> = [
        ['/app/admin/env.php', 'admin', '/app/admin/env.php'],
        ['/app/admin%2fenv.php', 'admin', '/app/admin/env.php'],
        ['/app/x/../admin/env.php', 'admin', '/app/admin/env.php'],
        ['/app//admin/./env.php', 'admin', '/app/admin/env.php'],
        ['/app/admin/../env.php', 'app', '/app/env.php'],
        ['/app/%61dmin/env.php', 'admin', '/app/admin/env.php'],
      ];
      for (const [target, app, scriptName] of cases) {
        const reply = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
        const server = JSON.parse(reply.responses[0]!.body.toString()).server;
        assert.equal(server.SCRIPT_FILENAME, `${project.docRoot(app)}/env.php`, target);
        assert.equal(server.SCRIPT_NAME, scriptName, target);
        assert.equal(server.REQUEST_URI, target, `${target}: REQUEST_URI stays as sent`);
      }
      const sibling = await get(port, '/app/administrator/env.php');
      assert.equal(sibling.json().SCRIPT_NAME, '/app/index.php', '/app/administrator belongs to /app, not /app/admin');
    });

    test('request headers become HTTP_* (repeated ones joined), Content-Type and Content-Length become CONTENT_*, app env is passed', async () => {
      const reply = await request(port, {
        method: 'POST',
        path: '/app/env.php',
        headers: { 'x-custom-thing': ['one', 'two'], cookie: 'a=1', accept: 'text/plain', 'content-type': 'text/plain; charset=utf-8' },
        body: 'hello',
      });
      const server = reply.json().server;
      assert.equal(server.HTTP_X_CUSTOM_THING, 'one, two');
      assert.equal(server.HTTP_COOKIE, 'a=1');
      assert.equal(server.HTTP_ACCEPT, 'text/plain');
      assert.equal(server.CONTENT_TYPE, 'text/plain; charset=utf-8');
      assert.equal(server.CONTENT_LENGTH, '5');
      assert.equal(server.HTTP_CONTENT_TYPE, undefined);
      assert.equal(server.HTTP_CONTENT_LENGTH, undefined);
      assert.equal(server.APP_MARKER, 'from-worker-yaml', 'php.env from worker.yaml reaches $_SERVER');
      assert.deepEqual(reply.json().cookie, { a: '1' });
    });

    test('HEAD runs the script and sends no body; no Content-Length of 0 is made up', async () => {
      const { responses } = await rawRequest(port, 'HEAD /app/cookies.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', { headRequests: new Set([0]) });
      assert.equal(responses.length, 1);
      const [head] = responses;
      assert.equal(head!.status, 200);
      assert.equal(head!.headers.filter(([name]) => name === 'set-cookie').length, 2);
      assert.notEqual(head!.header('content-length'), '0');
      assert.equal(head!.body.length, 0);
    });
  });

  describe('request bodies', () => {
    test('POST application/x-www-form-urlencoded fills $_POST', async () => {
      const reply = await request(port, { method: 'POST', path: '/env.php', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1&b=two+words&c%5B%5D=x' });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json().post, { a: '1', b: 'two words', c: ['x'] });
      assert.equal(reply.json().server.CONTENT_LENGTH, '25');
    });

    test('POST application/json arrives byte for byte in php://input', async () => {
      const body = JSON.stringify({ name: 'TQServer', list: [1, 2, 3], unicode: 'héllo ✓' });
      const reply = await request(port, { method: 'POST', path: '/app/env.php', headers: { 'content-type': 'application/json' }, body });
      assert.deepEqual(reply.json().input, { length: Buffer.byteLength(body), md5: md5(body) });
      assert.equal(reply.json().server.CONTENT_TYPE, 'application/json');
    });

    test('multipart/form-data upload: $_FILES has the file with its size and digest, $_POST the fields', async () => {
      const data = randomBytes(300_000);
      const { body, type } = multipart({ title: 'holiday', note: 'ünïcödé' }, { field: 'photo', name: 'photo.jpg', data });
      const reply = await request(port, { method: 'POST', path: '/app/env.php', headers: { 'content-type': type }, body });
      assert.equal(reply.status, 200);
      const json = reply.json();
      assert.deepEqual(json.post, { title: 'holiday', note: 'ünïcödé' });
      assert.deepEqual(json.files.photo, { name: 'photo.jpg', size: data.length, error: 0, md5: md5(data) });
    });

    test('a chunked request body is spooled: PHP gets CONTENT_LENGTH and the body intact, never Transfer-Encoding', async () => {
      const pieces = ['{"chunk":', '"one",', '"two":2}'];
      const reply = await request(port, { method: 'POST', path: `/app/spool.php?dir=${encodeURIComponent(tmpdir())}`, headers: { 'content-type': 'application/json' }, chunks: pieces });
      assert.equal(reply.status, 200);
      const json = reply.json();
      const whole = pieces.join('');
      assert.equal(json.CONTENT_LENGTH, String(whole.length));
      assert.equal(json.HTTP_TRANSFER_ENCODING, null);
      assert.deepEqual({ length: json.length, md5: json.md5 }, { length: whole.length, md5: md5(whole) });
      // Spool files of other tests' uploads (files run two at a time) may be there too: none has this size.
      assert.deepEqual(Object.values(json.spooled as Record<string, number>).filter((size) => size === whole.length), [], 'a small body stays in memory');
    });

    test('a large chunked body is spooled to a private temp file that exists while PHP runs and is removed after', async () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const chunks = [data.subarray(0, 1000), data.subarray(1000, 2_000_000), data.subarray(2_000_000)];
      const reply = await request(port, { method: 'POST', path: `/app/spool.php?dir=${encodeURIComponent(tmpdir())}`, chunks });
      assert.equal(reply.status, 200);
      const json = reply.json();
      assert.equal(json.CONTENT_LENGTH, String(data.length));
      assert.deepEqual({ length: json.length, md5: json.md5 }, { length: data.length, md5: md5(data) });
      const files = Object.entries(json.spooled as Record<string, number>).filter(([, size]) => size === data.length);
      assert.equal(files.length, 1, `one spool file of ${data.length} bytes while PHP ran: ${JSON.stringify(json.spooled)}`);
      const [file] = files[0]!;
      await waitUntil(() => !existsSync(file), 'the spool file is removed once the request is done');
    });

    test('413 for a Content-Length over max_body_size, answered before any body is read', async () => {
      const { responses } = await rawRequest(port, 'POST /app/env.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000000\r\nAccept: application/json\r\n\r\n');
      assert.equal(responses.length, 1);
      assert.equal(responses[0]!.status, 413);
      assert.equal(responses[0]!.header('connection'), 'close');
      assert.equal(JSON.parse(responses[0]!.body.toString()).error.status, 413);
      assert.ok(front.find(/413 POST \/app\/env\.php: body of 5000000 bytes is over max_body_size/), 'the log says why');
    });

    test('413 for a chunked body that grows past max_body_size, and PHP never runs it', async () => {
      const accepted = (await statusJson(port, false)).pools.find((p) => p.pool === 'app')!['accepted conn'];
      const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        const got: Buffer[] = [];
        let done = false;
        const piece = Buffer.alloc(64 * 1024, 0x61);
        const chunk = Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]);
        const pump = () => {
          while (!done && socket.writable && socket.write(chunk));
        };
        socket.on('drain', pump);
        socket.on('data', (data: Buffer) => {
          done = true;
          got.push(data);
        });
        socket.on('error', () => {});
        socket.on('close', () => {
          const text = Buffer.concat(got).toString('latin1');
          const status = /^HTTP\/1\.1 (\d{3})/.exec(text);
          if (!status) reject(new Error(`no response before close: ${JSON.stringify(text)}`));
          else resolve({ status: Number(status[1]), text });
        });
        socket.write('POST /app/env.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n');
        pump();
      });
      assert.equal(reply.status, 413);
      const after = (await statusJson(port, false)).pools.find((p) => p.pool === 'app')!['accepted conn'];
      assert.equal(after, accepted, 'the request never reached a worker');
    });

    test('431 for request headers over max_header_size', async () => {
      const { responses } = await rawRequest(port, `GET /app/env.php HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`);
      assert.equal(responses.length, 1);
      assert.equal(responses[0]!.status, 431);
    });
  });

  describe('responses', () => {
    test('a small response goes out with a Content-Length', async () => {
      const reply = await get(port, '/app/sleep.php?ms=0');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-length'], String(reply.body.length));
      assert.equal(reply.headers['transfer-encoding'], undefined);
    });

    test('the body is streamed as PHP writes it: the first bytes arrive while the script still runs', async () => {
      const { req, response } = startRequest(port, '/app/slowstart.php?ms=600');
      req.end();
      const res = await response;
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      const first = await new Promise<string>((resolve) => res.once('data', (chunk: Buffer) => resolve(chunk.toString())));
      assert.equal(first, 'started\n');
      const stats = front.server.apps.get('app')!.backend.status();
      assert.equal(stats.activeProcesses, 1, 'the script is still sleeping when its first line arrives');
      const rest: Buffer[] = [];
      res.on('data', (chunk: Buffer) => rest.push(chunk));
      await new Promise((resolve) => res.once('end', resolve));
      assert.equal(Buffer.concat(rest).toString(), 'finished\n');
    });

    test('two Set-Cookie headers (and any repeated header) are kept apart, never joined', async () => {
      const reply = await get(port, '/app/cookies.php');
      assert.equal(reply.status, 200);
      const cookies = reply.headers['set-cookie'] ?? [];
      assert.equal(cookies.length, 2);
      assert.match(cookies[0]!, /^first=one; expires=.*; path=\//);
      assert.match(cookies[1]!, /^second=two%3B%20x; path=\/; HttpOnly$/);
      const multi = reply.rawHeaders.filter((_, i) => i % 2 === 0 && reply.rawHeaders[i]!.toLowerCase() === 'x-multi').length;
      assert.equal(multi, 2, 'X-Multi arrives as two header lines');
    });

    test('redirects: Location with 301, 302, 303 and 307 as PHP set them', async () => {
      for (const code of [301, 302, 303, 307]) {
        const reply = await get(port, `/app/redirect.php?code=${code}&to=${encodeURIComponent('/app/next?x=1')}`);
        assert.equal(reply.status, code);
        assert.equal(reply.headers.location, '/app/next?x=1');
      }
    });

    test('a Location without a Status is a 302 (RFC 3875 6.2.3); Status with a custom reason phrase is sent as written', async () => {
      const bare = await get(port, '/app/redirect.php?bare=1&to=/elsewhere');
      assert.equal(bare.status, 302);
      assert.equal(bare.headers.location, '/elsewhere');
      const custom = await get(port, `/app/redirect.php?status=${encodeURIComponent('404 Gone Fishing')}`);
      assert.equal(custom.status, 404);
      assert.equal(custom.statusMessage, 'Gone Fishing');
      assert.equal(custom.text, 'custom status\n');
    });
  });

  describe('front controller and directories (php_fastcgi semantics)', () => {
    test('pretty URLs reach the app\'s index.php with REQUEST_URI as sent', async () => {
      const root = await get(port, '/blog/2024/hello-world?page=2');
      assert.equal(root.status, 200);
      assert.deepEqual(
        { front: root.json().front, uri: root.json().REQUEST_URI, script: root.json().SCRIPT_NAME, get: root.json().get },
        { front: 'index', uri: '/blog/2024/hello-world?page=2', script: '/index.php', get: { page: '2' } },
      );
      const prefixed = await get(port, '/app/users/42/edit');
      assert.equal(prefixed.json().SCRIPT_NAME, '/app/index.php');
      assert.equal(prefixed.json().SCRIPT_FILENAME, `${project.docRoot('app')}/index.php`);
      assert.equal(prefixed.json().REQUEST_URI, '/app/users/42/edit');
    });

    test('a POST to a pretty URL reaches the front controller with its body', async () => {
      const reply = await request(port, { method: 'POST', path: '/app/api/items', headers: { 'content-type': 'application/json' }, body: '{"id":1}' });
      assert.equal(reply.status, 200);
      assert.equal(reply.json().input_md5, md5('{"id":1}'));
    });

    test('a directory with an index.php redirects to the trailing-slash URL (query kept), then runs that index.php', async () => {
      const redirect = await get(port, '/app/sub?x=1');
      assert.equal(redirect.status, 301);
      assert.equal(redirect.headers.location, '/app/sub/?x=1');
      const post = await request(port, { method: 'POST', path: '/sub', body: 'x' });
      assert.equal(post.status, 308, 'a POST keeps its method through the redirect');
      assert.equal(post.headers.location, '/sub/');
      const index = await get(port, '/app/sub/');
      assert.deepEqual(index.json(), { front: 'sub', SCRIPT_NAME: '/app/sub/index.php', REQUEST_URI: '/app/sub/' });
    });

    test('{path}/file.php/extra splits at .php: the script runs with PATH_INFO', async () => {
      const reply = await get(port, '/sub/page.php/one/two');
      assert.deepEqual(reply.json(), { front: 'sub/page', SCRIPT_NAME: '/sub/page.php', PATH_INFO: '/one/two' });
    });

    test('a directory with index.html serves it; one without an index goes to the front controller, never a listing', async () => {
      const plain = await get(port, '/app/plain/');
      assert.equal(plain.status, 200);
      assert.match(plain.text, /plain index/);
      assert.match(String(plain.headers['content-type']), /^text\/html/);
      const empty = await get(port, '/app/empty/');
      assert.equal(empty.json().front, 'index');
      assert.doesNotMatch(empty.text, /readme\.txt/);
    });
  });

  describe('static files', () => {
    test('served straight from the document root with Content-Type, ETag, Last-Modified, without PHP', async () => {
      const before = (await statusJson(port, false)).pools.find((p) => p.pool === 'app')!['accepted conn'];
      const css = await get(port, '/app/assets/style.css');
      assert.equal(css.status, 200);
      assert.equal(css.text, 'body { color: red; }\n');
      assert.match(String(css.headers['content-type']), /^text\/css/);
      assert.match(String(css.headers.etag), /^"[0-9a-f]+-[0-9a-f]+"$/);
      const mtime = statSync(`${project.docRoot('app')}/assets/style.css`).mtime;
      assert.equal(css.headers['last-modified'], new Date(Math.floor(mtime.getTime() / 1000) * 1000).toUTCString());
      assert.equal(css.headers['content-length'], '21');
      assert.equal(css.headers['accept-ranges'], 'bytes');
      const bin = await get(port, '/app/assets/random.bin');
      assert.equal(bin.headers['content-type'], 'application/octet-stream');
      assert.equal(md5(bin.body), md5(readFileSync(`${project.docRoot('app')}/assets/random.bin`)));
      const after = (await statusJson(port, false)).pools.find((p) => p.pool === 'app')!['accepted conn'];
      assert.equal(after, before, 'no PHP worker served a static file');
    });

    test('304 Not Modified for a matching If-None-Match or If-Modified-Since', async () => {
      const first = await get(port, '/app/assets/hello.txt');
      const etag = String(first.headers.etag);
      const byTag = await get(port, '/app/assets/hello.txt', { 'if-none-match': etag });
      assert.equal(byTag.status, 304);
      assert.equal(byTag.body.length, 0);
      assert.equal(byTag.headers.etag, etag);
      const byDate = await get(port, '/app/assets/hello.txt', { 'if-modified-since': String(first.headers['last-modified']) });
      assert.equal(byDate.status, 304);
      const changed = await get(port, '/app/assets/hello.txt', { 'if-none-match': '"other"' });
      assert.equal(changed.status, 200);
    });

    test('Range requests: 206 with Content-Range, suffix ranges, 416 past the end', async () => {
      const file = readFileSync(`${project.docRoot('app')}/assets/random.bin`);
      const part = await get(port, '/app/assets/random.bin', { range: 'bytes=10-19' });
      assert.equal(part.status, 206);
      assert.equal(part.headers['content-range'], `bytes 10-19/${file.length}`);
      assert.deepEqual(part.body, file.subarray(10, 20));
      const suffix = await get(port, '/app/assets/random.bin', { range: 'bytes=-5' });
      assert.equal(suffix.status, 206);
      assert.deepEqual(suffix.body, file.subarray(file.length - 5));
      const past = await get(port, '/app/assets/random.bin', { range: `bytes=${file.length + 10}-` });
      assert.equal(past.status, 416);
      assert.equal(past.headers['content-range'], `bytes */${file.length}`);
    });

    test('HEAD gets the headers and the length, no body; other methods get 405', async () => {
      const { responses } = await rawRequest(port, 'HEAD /app/assets/hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', { headRequests: new Set([0]) });
      assert.equal(responses[0]!.status, 200);
      assert.equal(responses[0]!.header('content-length'), '19');
      assert.equal(responses[0]!.body.length, 0);
      const post = await request(port, { method: 'POST', path: '/app/assets/hello.txt', body: 'x' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.allow, 'GET, HEAD');
    });
  });

  describe('failures map to status codes (errors.ts httpStatusFor)', () => {
    test('503 with Retry-After when the pool is busy and its queue is full (queue_limit 0), JSON when asked', async () => {
      const { req, response } = startRequest(port, '/tiny/sleep.php?ms=800');
      req.end();
      await waitForPool(front, 'tiny', (s) => s.active === 1);
      const reply = await get(port, '/tiny/sleep.php?ms=0', JSON_ACCEPT);
      assert.equal(reply.status, 503);
      assert.match(String(reply.headers['retry-after']), /^\d+$/);
      assert.match(String(reply.headers['content-type']), /^application\/json/);
      assert.equal(reply.json().error.code, 'POOL_QUEUE_FULL');
      assert.equal((await response).statusCode, 200, 'the request that held the worker is unharmed');
      assert.ok(front.find(/503 GET \/tiny\/sleep\.php\?ms=0: pool tiny: all workers busy and the queue is full/), 'the log line says what happened');
    });

    test('the FastCGI front answers a full pool the same way: 503, Retry-After and the same sentence', async () => {
      const { req, response } = startRequest(port, '/tiny/sleep.php?ms=800');
      req.end();
      await waitForPool(front, 'tiny', (s) => s.active === 1);
      const script = join(project.docRoot('tiny'), 'sleep.php');
      const { stdout } = await runCgiFcgi(
        { host: '127.0.0.1', port: tinyFastcgiPort },
        { GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: 'GET', SCRIPT_FILENAME: script, SCRIPT_NAME: '/sleep.php', REQUEST_URI: '/sleep.php?ms=0', QUERY_STRING: 'ms=0', SERVER_PROTOCOL: 'HTTP/1.1', REMOTE_ADDR: '127.0.0.1' },
      );
      const { headers, body } = parseCgiResponse(stdout);
      assert.equal(headers.get('status'), '503');
      assert.match(headers.get('retry-after') ?? '', /^\d+$/);
      assert.equal(body.toString(), 'The application is busy; please retry shortly.\n');
      assert.equal((await response).statusCode, 200, 'the request that held the worker is unharmed');
    });

    test('503 with Retry-After when no worker frees up within queue_timeout; an HTML page by default', async () => {
      const { req, response } = startRequest(port, '/queued/sleep.php?ms=1500');
      req.end();
      await waitForPool(front, 'queued', (s) => s.active === 1);
      const started = Date.now();
      const reply = await get(port, '/queued/sleep.php?ms=0');
      const waitedMs = Date.now() - started;
      assert.equal(reply.status, 503);
      assert.ok(reply.headers['retry-after']);
      assert.match(String(reply.headers['content-type']), /^text\/html/);
      assert.match(reply.text, /503 Service Unavailable/);
      assert.ok(waitedMs >= 250 && waitedMs < 1400, `waited about queue_timeout (300 ms), not for the worker: ${waitedMs} ms`);
      assert.ok(front.find(/no worker became free within 300 ms \(queue_timeout\)/));
      await response;
    });

    test('504 when request_timeout kills a script; the pool replaces the worker', async () => {
      const reply = await get(port, '/slow/sleep.php?ms=10000', JSON_ACCEPT);
      assert.equal(reply.status, 504);
      assert.equal(reply.json().error.code, 'PHP_REQUEST_TIMEOUT');
      assert.ok(front.find(/pool slow: request GET \/slow\/sleep\.php\?ms=10000 ran over request_timeout \(1000 ms\)/));
      const stats = await waitForPool(front, 'slow', (s) => s.idle === 1);
      assert.equal(stats.restarts.timeout, 1);
      assert.equal((await get(port, '/slow/sleep.php?ms=0')).status, 200);
    });

    test('502 when the worker is SIGKILLed mid-request (its pid read from the status page)', async () => {
      const { req, response } = startRequest(port, '/tiny/sleep.php?ms=10000', { headers: JSON_ACCEPT });
      req.end();
      await waitForPool(front, 'tiny', (s) => s.active === 1);
      const pool = (await statusJson(port)).pools.find((p) => p.pool === 'tiny')!;
      const running = (pool.processes as Array<Record<string, any>>).find((p) => p.state === 'Running');
      assert.ok(running, `a Running process on the status page: ${JSON.stringify(pool.processes)}`);
      // php-fpm's JSON spells it "request uri" (its text format "request URI").
      assert.equal(running['request uri'], '/tiny/sleep.php?ms=10000');
      process.kill(running.pid, 'SIGKILL');
      const res = await response;
      const body = await new Promise<string>((resolve) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve(text));
      });
      assert.equal(res.statusCode, 502);
      assert.equal(JSON.parse(body).error.status, 502);
      assert.ok(front.find(/^502 GET \/tiny\/sleep\.php\?ms=10000: /), 'the log line names the request');
      await waitForPool(front, 'tiny', (s) => s.idle === 1);
    });
  });

  describe('aborts: a client that goes away frees the worker', () => {
    test('mid-download: the worker is free again long before the script would have ended', async () => {
      const { req, response } = startRequest(port, '/app/slowstart.php?ms=30000');
      req.end();
      const res = await response;
      await new Promise((resolve) => res.once('data', resolve));
      assert.equal(front.server.apps.get('app')!.backend.status().activeProcesses, 1);
      const started = Date.now();
      req.destroy();
      await waitForPool(front, 'app', (s) => s.active === 0 && s.idle === 2, 5000);
      assert.ok(Date.now() - started < 5000);
      assert.ok(front.find(/GET \/app\/slowstart\.php\?ms=30000: the HTTP client closed the connection/), 'the log says the client went away');
    });

    test('mid-upload: no worker is taken while the body arrives (request buffering), and nothing is left when the client goes away', async () => {
      const { req } = startRequest(port, '/app/env.php', { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(3 * 1024 * 1024) } });
      req.on('error', () => {});
      req.write(Buffer.alloc(512 * 1024));
      await waitUntil(() => front.server.http.inFlight === 1, 'the front has the request');
      assert.deepEqual({ active: front.server.apps.get('app')!.backend.status().activeProcesses }, { active: 0 });
      req.destroy();
      await waitUntil(() => front.server.http.inFlight === 0, 'the front let the request go');
      await waitForPool(front, 'app', (s) => s.active === 0 && s.idle === 2, 5000);
      assert.equal((await get(port, '/app/sleep.php?ms=0')).status, 200);
    });
  });

  describe('the status page', () => {
    test('text in php-fpm\'s vocabulary, ?json, and ?full with a row per process, from loopback', async () => {
      const text = await get(port, '/status');
      assert.equal(text.status, 200);
      assert.match(String(text.headers['content-type']), /^text\/plain/);
      for (const field of ['pool:', 'process manager:', 'accepted conn:', 'listen queue:', 'idle processes:', 'active processes:', 'total processes:', 'max children reached:']) {
        assert.ok(text.text.includes(field), `text has ${field}`);
      }
      assert.match(text.text, /pool:\s+tiny/);
      const json = (await get(port, '/status?json')).json();
      const app = json.pools.find((p: Record<string, unknown>) => p.pool === 'app');
      assert.equal(app['process manager'], 'static');
      assert.equal(app['total processes'], 2);
      assert.equal(app.path, '/app');
      assert.equal(app.processes, undefined);
      const full = await statusJson(port, true);
      const processes = full.pools.find((p) => p.pool === 'app')!.processes as Array<Record<string, any>>;
      assert.equal(processes.length, 2);
      for (const row of processes) {
        assert.ok(Number.isInteger(row.pid) && row.pid > 0);
        assert.equal(row.state, 'Idle');
      }
      const textFull = await get(port, '/status?full');
      assert.match(textFull.text, /\*{10,}\npid:\s+\d+/);
    });

    test('HEAD is answered, other methods get 405, a malformed query is not an error', async () => {
      const post = await request(port, { method: 'POST', path: '/status', body: '' });
      assert.equal(post.status, 405);
      const odd = await get(port, '/status?%zz&json');
      assert.equal(odd.status, 200);
      assert.ok(Array.isArray(odd.json().pools));
    });
  });

  describe('connections', () => {
    test('keep-alive: pipelined requests on one connection are all answered, in order', async () => {
      const { responses } = await rawRequest(
        port,
        'GET /app/sleep.php?ms=50 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /app/assets/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\nGET /app/sleep.php?ms=0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      );
      assert.deepEqual(
        responses.map((r) => [r.status, r.body.toString().split(' in pid')[0]]),
        [
          [200, 'slept 50 ms'],
          [200, 'hello static world\n'],
          [200, 'slept 0 ms'],
        ],
      );
      assert.equal(responses[0]!.header('connection'), 'keep-alive');
    });
  });
});

describe('the example app (workers/blog)', () => {
  let project: Project;
  let front: RunningFront;

  before(async () => {
    project = await makeProject({ server: serverYaml(), apps: [] });
    const blog = join(project.root, 'workers', 'blog');
    cpSync(join(REPO_ROOT, 'workers', 'blog'), blog, { recursive: true });
    // The FastCGI port of the example (9001) may be taken on this machine; the HTTP front is what is tested.
    const yaml = readFileSync(join(blog, 'config', 'worker.yaml'), 'utf8');
    assert.match(yaml, /\nfastcgi:\n  listen: 127\.0\.0\.1:9001/);
    writeFileSync(join(blog, 'config', 'worker.yaml'), yaml.replace(/\nfastcgi:\n[^\n]*\n?/, '\n'));
    front = await startFront(project.root);
  });

  after(async () => {
    await front?.stop();
    await project?.cleanup();
  });

  test('its front page, hello.php and a pretty URL run under /blog', async () => {
    const page = await get(front.port, '/blog/');
    assert.equal(page.status, 200);
    assert.match(page.text, /TQServer is running PHP/);
    assert.match(page.text, /<td>SCRIPT_NAME<\/td><td><code>\/blog\/index\.php<\/code>/);
    assert.equal((await get(front.port, '/blog')).headers.location, '/blog/');
    const hello = await get(front.port, '/blog/hello.php');
    assert.equal(hello.text, 'Hello from TQServer!\n');
    const pretty = await get(front.port, '/blog/pretty/url/handled/by/index.php');
    assert.equal(pretty.status, 200);
    assert.match(pretty.text, /<td>REQUEST_URI<\/td><td><code>\/blog\/pretty\/url\/handled\/by\/index\.php<\/code>/);
    const status = (await statusJson(front.port)).pools[0]!;
    assert.equal(status.pool, 'blog');
    assert.equal(status['process manager'], 'dynamic');
  });
});
