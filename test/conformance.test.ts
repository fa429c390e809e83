// One suite of request cases run against every way TQServer serves a PHP app, on both backends (its
// own php-cgi pool and a php-fpm master): its own HTTP front, and real nginx (configured from
// docs/nginx.md) in front of its FastCGI front, over TCP and over a unix socket. Same PHP app, same
// answers; where php-fpm legitimately differs (its "PHP message: " prefix on stderr, a script that
// outlives an abort) each backend's documented behaviour is asserted. Then the FastCGI front's own
// rules, checked with a real FastCGI client (cgi-fcgi) and through nginx (a client abort is passed on).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Address } from '../src/fastcgi/address.js';
import { FpmBackend } from '../src/fpm/fpm-backend.js';
import {
  makeProject,
  REPO_ROOT,
  request,
  serverYaml,
  startFront,
  waitForPool,
  workerYaml,
  type Project,
  type Reply,
  type RequestSpec,
  type RunningFront,
} from './helpers/front.js';
import { freePort, parseCgiResponse, runCgiFcgi, startNginx, type Peer } from './helpers/peers.js';
import { until } from './helpers/supervisor.js';

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');

/** The two backends an app can run on; every case runs on both. */
const BACKENDS = ['php-cgi', 'php-fpm'] as const;
type BackendName = (typeof BACKENDS)[number];

/** Where a case is sent, and what differs legitimately between targets (port, document root, backend). */
interface Target {
  name: string;
  port: number;
  docRoot: string;
  backend: BackendName;
  /** What PHP wrote to FCGI_STDERR, as this target reports it (TQServer's log, or nginx's error log). */
  stderr(): string[];
}

type Expected<T> = T | ((target: Target) => T);
const resolveExpected = <T>(value: Expected<T>, target: Target): T => (typeof value === 'function' ? (value as (t: Target) => T)(target) : value);

interface Case {
  name: string;
  request: Expected<RequestSpec>;
  status: number;
  /** Response headers: exact text or a pattern (names lower-case); null means absent. */
  headers?: Expected<Record<string, string | RegExp | null>>;
  /** Keys of $_SERVER (env.php) or of the fixture's JSON that must have these values. */
  server?: Expected<Record<string, unknown>>;
  json?: Expected<Record<string, unknown>>;
  body?: Expected<string | RegExp>;
  /** Number of Set-Cookie (or other repeated) header lines. */
  repeated?: Record<string, number>;
  /** A line PHP wrote to FCGI_STDERR, as the target must report it. */
  stderr?: Expected<string>;
}

const UPLOAD = randomBytes(200_000);
const BOUNDARY = '----tqserverconformance';
const MULTIPART = Buffer.concat([
  Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nholiday\r\n`),
  Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="photo"; filename="photo.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`),
  UPLOAD,
  Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
]);
const CHUNKED = ['{"chunked":', 'true,', '"n":3}'];
const JSON_BODY = JSON.stringify({ hello: 'wörld', list: [1, 2, 3] });

/** nginx's and TQServer's ETag: hex mtime and size. */
function etagOf(file: string): string {
  const stats = statSync(file);
  return `"${Math.floor(stats.mtimeMs / 1000).toString(16)}-${stats.size.toString(16)}"`;
}

/** The cases: each is a request and the answer every target must give. */
const CASES: Case[] = [
  {
    name: 'GET a script with a query: the CGI variables',
    request: { path: '/env.php?x=1&y=%20z' },
    status: 200,
    headers: { 'content-type': 'application/json' },
    server: (t) => ({
      GATEWAY_INTERFACE: 'CGI/1.1',
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/env.php?x=1&y=%20z',
      QUERY_STRING: 'x=1&y=%20z',
      SCRIPT_NAME: '/env.php',
      SCRIPT_FILENAME: `${t.docRoot}/env.php`,
      DOCUMENT_ROOT: t.docRoot,
      DOCUMENT_URI: '/env.php',
      PHP_SELF: '/env.php',
      PATH_INFO: '',
      PATH_TRANSLATED: undefined,
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_PORT: String(t.port),
      REQUEST_SCHEME: 'http',
      REMOTE_ADDR: '127.0.0.1',
      HTTP_HOST: `127.0.0.1:${t.port}`,
      CONTENT_LENGTH: '',
      REDIRECT_STATUS: '200',
    }),
    json: { get: { x: '1', y: ' z' } },
  },
  {
    name: 'GET with PATH_INFO: split at .php, decoded, PATH_TRANSLATED and PHP_SELF php-fpm style',
    request: { path: '/env.php/a%20b/c.txt?q=1' },
    status: 200,
    server: (t) => ({
      SCRIPT_NAME: '/env.php',
      SCRIPT_FILENAME: `${t.docRoot}/env.php`,
      PATH_INFO: '/a b/c.txt',
      PATH_TRANSLATED: `${t.docRoot}/a b/c.txt`,
      PHP_SELF: '/env.php/a b/c.txt',
      DOCUMENT_URI: '/env.php/a b/c.txt',
      REQUEST_URI: '/env.php/a%20b/c.txt?q=1',
      QUERY_STRING: 'q=1',
    }),
  },
  {
    name: 'request headers become HTTP_*; Content-Type/Length become CONTENT_*',
    request: { method: 'POST', path: '/env.php', headers: { 'x-custom-thing': 'one', cookie: 'a=1; b=2', 'content-type': 'text/plain' }, body: 'hello' },
    status: 200,
    server: { HTTP_X_CUSTOM_THING: 'one', HTTP_COOKIE: 'a=1; b=2', CONTENT_TYPE: 'text/plain', CONTENT_LENGTH: '5', HTTP_CONTENT_TYPE: undefined, HTTP_CONTENT_LENGTH: undefined },
    json: { cookie: { a: '1', b: '2' }, input: { length: 5, md5: md5('hello') } },
  },
  {
    name: 'POST application/x-www-form-urlencoded',
    request: { method: 'POST', path: '/env.php', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1&b=two+words' },
    status: 200,
    json: { post: { a: '1', b: 'two words' } },
  },
  {
    name: 'POST application/json, byte for byte',
    request: { method: 'POST', path: '/env.php', headers: { 'content-type': 'application/json' }, body: JSON_BODY },
    status: 200,
    json: { input: { length: Buffer.byteLength(JSON_BODY), md5: md5(JSON_BODY) } },
  },
  {
    name: 'multipart/form-data upload',
    request: { method: 'POST', path: '/env.php', headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }, body: MULTIPART },
    status: 200,
    json: { post: { title: 'holiday' }, files: { photo: { name: 'photo.jpg', size: UPLOAD.length, error: 0, md5: md5(UPLOAD) } } },
  },
  {
    name: 'a chunked request body reaches PHP with CONTENT_LENGTH',
    request: { method: 'POST', path: '/env.php', headers: { 'content-type': 'application/json' }, chunks: CHUNKED },
    status: 200,
    server: { CONTENT_LENGTH: String(CHUNKED.join('').length), HTTP_TRANSFER_ENCODING: undefined },
    json: { input: { length: CHUNKED.join('').length, md5: md5(CHUNKED.join('')) } },
  },
  {
    name: 'a pretty URL reaches the front controller with REQUEST_URI as sent',
    request: { path: '/blog/2024/hello-world?page=2' },
    status: 200,
    headers: { 'x-script': 'index.php' },
    json: (t) => ({ front: 'index', REQUEST_URI: '/blog/2024/hello-world?page=2', SCRIPT_NAME: '/index.php', SCRIPT_FILENAME: `${t.docRoot}/index.php`, get: { page: '2' } }),
  },
  {
    name: 'the site root runs index.php',
    request: { path: '/' },
    status: 200,
    json: { front: 'index', REQUEST_URI: '/', SCRIPT_NAME: '/index.php' },
  },
  {
    name: 'a POST to a pretty URL reaches the front controller with its body',
    request: { method: 'POST', path: '/api/items', headers: { 'content-type': 'application/json' }, body: '{"id":1}' },
    status: 200,
    json: { front: 'index', REQUEST_URI: '/api/items', input_md5: md5('{"id":1}') },
  },
  {
    name: 'a directory with index.php redirects to its trailing-slash URL',
    request: { path: '/sub?x=1' },
    status: 301,
    headers: { location: '/sub/?x=1' },
  },
  {
    name: 'the directory with a trailing slash runs its index.php',
    request: { path: '/sub/' },
    status: 200,
    json: { front: 'sub', SCRIPT_NAME: '/sub/index.php', REQUEST_URI: '/sub/' },
  },
  {
    name: 'a script in a folder with PATH_INFO',
    request: { path: '/sub/page.php/one/two' },
    status: 200,
    json: { front: 'sub/page', SCRIPT_NAME: '/sub/page.php', PATH_INFO: '/one/two' },
  },
  {
    name: 'a folder without an index goes to the front controller, never a listing',
    request: { path: '/uploads/' },
    status: 200,
    json: { front: 'index', REQUEST_URI: '/uploads/' },
  },
  {
    name: 'a folder with index.html serves it',
    request: { path: '/plain/' },
    status: 200,
    headers: { 'content-type': /^text\/html/ },
    body: /plain index/,
  },
  {
    name: 'two Set-Cookie and two X-Multi header lines are kept apart',
    request: { path: '/cookies.php' },
    status: 200,
    repeated: { 'set-cookie': 2, 'x-multi': 2 },
    body: 'cookies set\n',
  },
  {
    name: 'a redirect PHP makes (303 with Location)',
    request: { path: '/redirect.php?code=303&to=%2Fnext%3Fx%3D1' },
    status: 303,
    headers: { location: '/next?x=1' },
  },
  {
    name: 'a Location without Status is a 302',
    request: { path: '/redirect.php?bare=1&to=/elsewhere' },
    status: 302,
    headers: { location: '/elsewhere' },
  },
  {
    name: 'a Status with a custom reason phrase',
    request: { path: `/redirect.php?status=${encodeURIComponent('404 Gone Fishing')}` },
    status: 404,
    body: 'custom status\n',
  },
  {
    name: 'a static file: Content-Type, ETag, Last-Modified, Content-Length',
    request: { path: '/assets/style.css' },
    status: 200,
    headers: (t) => ({
      'content-type': /^text\/css/,
      etag: etagOf(`${t.docRoot}/assets/style.css`),
      'last-modified': new Date(Math.floor(statSync(`${t.docRoot}/assets/style.css`).mtimeMs / 1000) * 1000).toUTCString(),
      'content-length': '21',
    }),
    body: 'body { color: red; }\n',
  },
  {
    name: 'a static file revalidated with If-None-Match: 304',
    request: (t) => ({ path: '/assets/hello.txt', headers: { 'if-none-match': etagOf(`${t.docRoot}/assets/hello.txt`) } }),
    status: 304,
    body: '',
  },
  {
    name: 'a static byte range: 206',
    request: { path: '/assets/hello.txt', headers: { range: 'bytes=6-11' } },
    status: 206,
    headers: { 'content-range': 'bytes 6-11/19' },
    body: 'static',
  },
  {
    name: 'HEAD on a script: headers, no body',
    request: { method: 'HEAD', path: '/cookies.php' },
    status: 200,
    repeated: { 'set-cookie': 2 },
    body: '',
  },
  {
    name: 'PHP source is run, never served',
    request: { path: '/source.php' },
    status: 200,
    body: 'ran source.php\n',
  },
  {
    name: 'a dotfile (.env) is never served',
    request: { path: '/.env' },
    status: 404,
    body: /^(?![\s\S]*SECRET-SOURCE-MARKER)/,
  },
  {
    name: 'a dot-folder file (.git/config) is never served',
    request: { path: '/.git/config' },
    status: 404,
    body: /^(?![\s\S]*SECRET-SOURCE-MARKER)/,
  },
  {
    name: 'an editor backup (index.php~) is never served',
    request: { path: '/index.php~' },
    status: 404,
    body: /^(?![\s\S]*SECRET-SOURCE-MARKER)/,
  },
  {
    name: 'a .phps file is never served',
    request: { path: '/source.phps' },
    status: 404,
    body: /^(?![\s\S]*SECRET-SOURCE-MARKER)/,
  },
  {
    name: 'an upper-case .PHP is neither run nor served',
    request: { path: '/upper.PHP' },
    status: 404,
    body: /^(?![\s\S]*(UPPER-RAN|<\?php))/,
  },
  {
    name: 'an upload reached as /uploads/evil.jpg/x.php is never run (front controller)',
    request: { path: '/uploads/evil.jpg/x.php' },
    status: 200,
    json: { front: 'index', REQUEST_URI: '/uploads/evil.jpg/x.php', SCRIPT_NAME: '/index.php' },
  },
  {
    name: 'PATH_INFO naming an upload runs the script, not the upload',
    request: { path: '/env.php/uploads/evil.jpg' },
    status: 200,
    server: (t) => ({ SCRIPT_FILENAME: `${t.docRoot}/env.php`, PATH_INFO: '/uploads/evil.jpg' }),
    body: /^(?![\s\S]*EVIL-RAN)/,
  },
  {
    name: 'httpoxy: a Proxy header never becomes HTTP_PROXY',
    request: { path: '/env.php', headers: { proxy: 'http://attacker.example:8080' } },
    status: 200,
    server: { HTTP_PROXY: undefined },
    json: { getenv_http_proxy: false },
  },
  {
    name: 'an underscore header never becomes an HTTP_* variable',
    request: { path: '/env.php', headers: { x_forwarded_for: '6.6.6.6' } },
    status: 200,
    server: { HTTP_X_FORWARDED_FOR: undefined },
  },
  {
    name: 'error_log() reaches the operator as FCGI_STDERR (php-fpm prefixes "PHP message: ")',
    request: (t) => ({ path: `/log.php?msg=${encodeURIComponent(`conformance ${t.name}`)}` }),
    status: 200,
    body: 'logged\n',
    stderr: (t) => `${t.backend === 'php-fpm' ? 'PHP message: ' : ''}conformance ${t.name}`,
  },
  {
    name: 'encoded dot segments above the root are refused',
    request: { path: '/%2e%2e/%2e%2e/etc/passwd' },
    status: 400,
    body: /^(?![\s\S]*root:x:0:0)/,
  },
];

/**
 * True when one of `texts` holds `line` as PHP wrote it: a line that does not itself start with
 * php-fpm's "PHP message: " must not carry that prefix where it is reported.
 */
function reportsLine(texts: readonly string[], line: string): boolean {
  return texts.some((text) => {
    for (let at = text.indexOf(line); at >= 0; at = text.indexOf(line, at + 1)) {
      if (line.startsWith('PHP message: ') || !text.slice(0, at).endsWith('PHP message: ')) return true;
    }
    return false;
  });
}

/** Waits until the target reports the case's stderr line (a log file may be written a moment later). */
async function checkStderr(c: Case, target: Target): Promise<void> {
  if (c.stderr === undefined) return;
  const expected = resolveExpected(c.stderr, target);
  try {
    await until(`${target.name}: stderr ${JSON.stringify(expected)} reported`, () => reportsLine(target.stderr(), expected), 3000);
  } catch (error) {
    assert.fail(`${(error as Error).message}; got ${JSON.stringify(target.stderr().slice(-5))}`);
  }
}

/** Checks one reply against a case for one target. */
function check(c: Case, reply: Reply, target: Target): void {
  const where = `${target.name}: ${c.name}`;
  assert.equal(reply.status, c.status, `${where}: status (body ${JSON.stringify(reply.text.slice(0, 200))})`);
  for (const [name, expected] of Object.entries(c.headers ? resolveExpected(c.headers, target) : {})) {
    const actual = reply.headers[name];
    if (expected === null) assert.equal(actual, undefined, `${where}: ${name} absent`);
    else if (expected instanceof RegExp) assert.match(String(actual), expected, `${where}: ${name}`);
    else assert.equal(actual, expected, `${where}: ${name}`);
  }
  for (const [name, count] of Object.entries(c.repeated ?? {})) {
    const lines = reply.rawHeaders.filter((value, i) => i % 2 === 0 && value.toLowerCase() === name).length;
    assert.equal(lines, count, `${where}: ${name} header lines`);
  }
  if (c.body !== undefined) {
    const expected = resolveExpected(c.body, target);
    if (expected instanceof RegExp) assert.match(reply.text, expected, `${where}: body`);
    else assert.equal(reply.text, expected, `${where}: body`);
  }
  if (c.server !== undefined || c.json !== undefined) {
    const json = reply.json();
    for (const [name, expected] of Object.entries(c.server ? resolveExpected(c.server, target) : {})) {
      assert.deepEqual(json.server[name], expected, `${where}: $_SERVER['${name}']`);
    }
    for (const [name, expected] of Object.entries(c.json ? resolveExpected(c.json, target) : {})) {
      assert.deepEqual(json[name], expected, `${where}: ${name}`);
    }
  }
}

/** The nginx server block of docs/nginx.md, pointed at `upstream`, listening on `port`, serving `root`. */
function nginxFromDocs(port: number, root: string, upstream: Address): string {
  const docs = readFileSync(join(REPO_ROOT, 'docs', 'nginx.md'), 'utf8');
  const block = /```nginx\n([\s\S]*?)```/.exec(docs)?.[1];
  assert.ok(block, 'docs/nginx.md has an nginx code block');
  const replace = (text: string, from: RegExp, to: string): string => {
    assert.match(text, from, `docs/nginx.md block has ${from}`);
    return text.replace(from, to);
  };
  let config = replace(block, /^(\s*)server 127\.0\.0\.1:9001;/m, `$1server ${'path' in upstream ? `unix:${upstream.path}` : `${upstream.host}:${upstream.port}`};`);
  config = replace(config, /^(\s*)listen 80;/m, `$1listen 127.0.0.1:${port};`);
  config = replace(config, /^(\s*)root \/srv\/mysite\/workers\/blog\/public;/m, `$1root ${root};`);
  // What every nginx.conf's http block has around the server blocks.
  return `  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n${config}`;
}

/**
 * What TQServer reported: its log messages and every log file under the project root, wherever PHP's
 * FCGI_STDERR lines are configured to go (the line is in there; the wording around it is the log's).
 */
function frontStderr(front: RunningFront, root: string): string[] {
  const files = (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.log')).map((f) => readFileSync(join(root, f), 'utf8'));
  return [...front.records.map((r) => r.msg), ...files];
}

/** The lines PHP sent as FCGI_STDERR, from nginx's error log ('FastCGI sent in stderr: "text" while ...'). */
function nginxStderr(peer: Peer & { dir: string }): string[] {
  const log = readFileSync(join(peer.dir, 'error.log'), 'utf8');
  return [...log.matchAll(/FastCGI sent in stderr: "([\s\S]*?)" while /g)].map((m) => m[1]!);
}

for (const backend of BACKENDS) {
  describe(`conformance on ${backend}: the same requests through the HTTP front and through nginx + the FastCGI front`, () => {
    let project: Project;
    let front: RunningFront;
    let fcgiPort: number;
    let socketPath: string;
    const nginx: Peer[] = [];
    const targets = new Map<string, Target>();
    // The same app on either backend: php_fpm.enabled is the only difference.
    const fpm = backend === 'php-fpm' ? '\nphp_fpm:\n  enabled: true' : '';

    before(async () => {
      fcgiPort = await freePort();
      project = await makeProject({
        server: serverYaml(),
        apps: [
          { name: 'site', worker: workerYaml('/', { max_workers: 2 }, { extra: `fastcgi:\n  listen: 127.0.0.1:${fcgiPort}${fpm}` }) },
          // The same site again, for nginx over a unix socket (an app has one FastCGI listen address).
          { name: 'mirror', worker: workerYaml('/mirror', { max_workers: 2 }, { extra: `fastcgi:\n  listen: ./fcgi.sock${fpm}` }) },
        ],
      });
      socketPath = join(project.root, 'workers', 'mirror', 'fcgi.sock');
      front = await startFront(project.root);
      assert.equal(front.server.apps.get('site')!.backend.kind, backend);
      const tcp = await startNginx((port) => nginxFromDocs(port, project.docRoot('site'), { host: '127.0.0.1', port: fcgiPort }));
      nginx.push(tcp);
      const unix = await startNginx((port) => nginxFromDocs(port, project.docRoot('mirror'), { path: socketPath }));
      nginx.push(unix);
      const add = (name: string, port: number, docRoot: string, stderr: () => string[]) => targets.set(name, { name, port, docRoot, backend, stderr });
      add('http front', front.port, project.docRoot('site'), () => frontStderr(front, project.root));
      add('nginx -> FastCGI front (TCP)', tcp.port, project.docRoot('site'), () => nginxStderr(tcp));
      add('nginx -> FastCGI front (unix socket)', unix.port, project.docRoot('mirror'), () => nginxStderr(unix));
    });

    after(async () => {
      for (const peer of nginx) await peer.stop();
      await front?.stop();
      await project?.cleanup();
    });

    for (const name of ['http front', 'nginx -> FastCGI front (TCP)', 'nginx -> FastCGI front (unix socket)']) {
      describe(name, () => {
        for (const c of CASES) {
          test(c.name, async () => {
            const target = targets.get(name)!;
            const reply = await request(target.port, resolveExpected(c.request, target));
            check(c, reply, target);
            await checkStderr(c, target);
          });
        }
      });
    }

    describe('the FastCGI front\'s own rules (like php-fpm)', () => {
      const fcgi = (): Address => ({ host: '127.0.0.1', port: fcgiPort });
      const params = (scriptFilename: string, extra: Record<string, string> = {}): Record<string, string> => ({
        GATEWAY_INTERFACE: 'CGI/1.1',
        REQUEST_METHOD: 'GET',
        SCRIPT_FILENAME: scriptFilename,
        SCRIPT_NAME: '/x.php',
        REQUEST_URI: '/x.php',
        QUERY_STRING: '',
        DOCUMENT_ROOT: project.docRoot('site'),
        SERVER_PROTOCOL: 'HTTP/1.1',
        REMOTE_ADDR: '127.0.0.1',
        ...extra,
      });

      test('a SCRIPT_FILENAME outside the document root, a missing file, a non-.php file, a hidden one: 404 "File not found."', async () => {
        const doc = project.docRoot('site');
        for (const script of [
          '/etc/passwd',
          `${doc}/../config/worker.yaml`,
          `${doc}/../../mirror/public/env.php`,
          `${doc}/missing.php`,
          `${doc}/uploads/evil.jpg`,
          `${doc}/uploads/.hidden.php`,
          `${doc}/upper.PHP`,
          `${doc}/env.php/x`,
          'env.php',
        ]) {
          const { stdout } = await runCgiFcgi(fcgi(), params(script));
          const { headers, body } = parseCgiResponse(stdout);
          assert.equal(headers.get('status'), '404', `${script}: ${stdout.toString().slice(0, 200)}`);
          assert.equal(body.toString(), 'File not found.\n', script);
        }
        assert.ok(front.find(/FastCGI front site: 404: .*missing\.php is not a file/), 'the log says why');
      });

      test('a SCRIPT_FILENAME with dot segments that stay inside runs, with the path resolved', async () => {
        const doc = project.docRoot('site');
        const { stdout } = await runCgiFcgi(fcgi(), params(`${doc}/sub/../env.php`));
        const { body } = parseCgiResponse(stdout);
        assert.equal(JSON.parse(body.toString()).server.SCRIPT_FILENAME, `${doc}/env.php`);
      });

      test('httpoxy: an HTTP_PROXY param is dropped before PHP sees it', async () => {
        const { stdout } = await runCgiFcgi(fcgi(), params(`${project.docRoot('site')}/env.php`, { HTTP_PROXY: 'http://attacker.example:8080', HTTP_X_OTHER: 'kept' }));
        const json = JSON.parse(parseCgiResponse(stdout).body.toString());
        assert.equal(json.server.HTTP_PROXY, undefined);
        assert.equal(json.getenv_http_proxy, false);
        assert.equal(json.server.HTTP_X_OTHER, 'kept');
      });

      test('a request body streams through to PHP', async () => {
        const body = randomBytes(300_000);
        const { stdout } = await runCgiFcgi(
          fcgi(),
          params(`${project.docRoot('site')}/env.php`, { REQUEST_METHOD: 'POST', CONTENT_TYPE: 'application/octet-stream', CONTENT_LENGTH: String(body.length) }),
          body,
        );
        const json = JSON.parse(parseCgiResponse(stdout).body.toString());
        assert.deepEqual(json.input, { length: body.length, md5: md5(body) });
      });

      // PHP ignores FCGI_ABORT_REQUEST while a script runs (php bug #76419). On php-cgi, TQServer
      // ends the worker after a short grace and starts another.
      if (backend === 'php-cgi') {
        test('an nginx client abort is passed on: the worker is freed without waiting for the script', async () => {
          const tcp = targets.get('nginx -> FastCGI front (TCP)')!;
          const req = http.request({ host: '127.0.0.1', port: tcp.port, path: '/slowstart.php?ms=30000', agent: false });
          req.on('error', () => {});
          req.end();
          // nginx buffers the response, so wait for the script to be running rather than for bytes.
          await waitForPool(front, 'site', (s) => s.active === 1);
          req.destroy();
          await waitForPool(front, 'site', (s) => s.active === 0 && s.idle === 2, 8000);
          assert.ok(front.find(/FastCGI front site: .*aborted|the web server aborted the request/), 'the abort is logged');
        });
      } else {
        // As nginx does with php-fpm, TQServer closes the connection after a short grace; PHP notices
        // at the script's next output and ends it there (a script that called ignore_user_abort runs
        // on, within request_terminate_timeout). slowstart.php sleeps, then writes.
        test('an nginx client abort is passed on: TQServer\'s connection is freed after the grace; php-fpm ends the script at its next output', async () => {
          const fpmBackend = front.server.apps.get('site')!.backend as FpmBackend;
          const upstream = () => fpmBackend.stats().upstreams[0]!;
          /** php-fpm's own view (its status page, read now): is a child running slowstart.php? */
          const running = async () => {
            await fpmBackend.checkHealth();
            return (upstream().php?.processes ?? []).some((p) => p.state === 'Running' && p.requestUri.startsWith('/slowstart.php'));
          };
          const tcp = targets.get('nginx -> FastCGI front (TCP)')!;
          const req = http.request({ host: '127.0.0.1', port: tcp.port, path: '/slowstart.php?ms=2500', agent: false });
          req.on('error', () => {});
          req.end();
          await until('the script to run', () => upstream().busy === 1);
          req.destroy();
          await until('the abort to be logged', () => front.find(/FastCGI front site: .*aborted|the web server aborted the request/) !== undefined);
          await until('TQServer to close the aborted connection', () => upstream().busy === 0, 5000);
          assert.ok(await running(), 'php-fpm still runs the script: it cannot be stopped mid-sleep');
          const ended = Date.now() + 8000;
          while (await running()) {
            assert.ok(Date.now() < ended, 'php-fpm ends the script at its next output');
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          assert.equal((await request(front.port, { path: '/sleep.php?ms=0' })).status, 200);
        });
      }
    });
  });
}
