// Security regression tests for the HTTP front, one per attack class, each named after its CVE or
// class, run through TQServer with real php-cgi workers. Requests go over raw sockets where an HTTP
// client would normalise them (dot segments, NUL bytes, smuggling); every answer is checked for
// leaks: no file outside a document root, no PHP source, no execution of anything but a checked
// .php script.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  get,
  makeProject,
  rawGet,
  rawRequest,
  request,
  SECRET_FILES,
  SECRET_MARKER,
  serverYaml,
  startFront,
  statusJson,
  workerYaml,
  type Project,
  type RawResponse,
  type RunningFront,
} from './helpers/front.js';

/** Text that must never appear in an answer: file contents from outside, PHP source, injected code output. */
const LEAKS: ReadonlyArray<[string, RegExp]> = [
  ['a secret or source file', new RegExp(SECRET_MARKER)],
  ['/etc/passwd', /root:x:0:0/],
  ['an uploaded image executed as PHP', /EVIL-RAN-42/],
  ['injected PHP code', /INJECTED-42/],
  ['the prepend proof file', /PWNED-MARKER/],
  ['PHP source', /<\?php/],
  ['worker.yaml', /manager: static/],
];

function assertNoLeak(body: Buffer | string, what: string): void {
  const text = Buffer.isBuffer(body) ? body.toString('latin1') : body;
  for (const [name, pattern] of LEAKS) assert.doesNotMatch(text, pattern, `${what}: the answer leaks ${name}: ${JSON.stringify(text.slice(0, 300))}`);
}

describe('security regressions (HTTP front, real php-cgi)', () => {
  let project: Project;
  let front: RunningFront;
  let port: number;
  let rootDoc: string;
  let appDoc: string;

  /** The PHP script that answered, when PHP answered with the fixture's JSON. */
  const scriptOf = (response: RawResponse): string | null => {
    try {
      const json = JSON.parse(response.body.toString('utf8')) as { SCRIPT_FILENAME?: string; server?: { SCRIPT_FILENAME?: string } };
      return json.SCRIPT_FILENAME ?? json.server?.SCRIPT_FILENAME ?? null;
    } catch {
      return null;
    }
  };

  /** Accepted requests of a pool, from the status page. */
  const accepted = async (pool: string): Promise<number> => (await statusJson(port, false)).pools.find((p) => p.pool === pool)!['accepted conn'] as number;

  before(async () => {
    project = await makeProject({
      server: serverYaml(),
      apps: [
        { name: 'root', worker: workerYaml('/') },
        { name: 'app', worker: workerYaml('/app') },
      ],
    });
    front = await startFront(project.root);
    port = front.port;
    rootDoc = project.docRoot('root');
    appDoc = project.docRoot('app');
  });

  after(async () => {
    await front?.stop();
    await project?.cleanup();
  });

  describe('path traversal', () => {
    test('path traversal: raw ../ sent as-is (curl --path-as-is) is refused, never resolved outside the root', async () => {
      for (const target of ['/../../../../etc/passwd', '/app/../../../../etc/passwd', '/assets/../../../../../etc/passwd', '/../config/worker.yaml', '/./../env.php']) {
        const response = await rawGet(port, target);
        assert.equal(response.status, 400, `${target} -> ${response.status}`);
        assertNoLeak(response.body, target);
      }
    });

    test('path traversal: .. inside the site is resolved before routing, so /app/../x is the root app\'s /x and nothing else', async () => {
      const response = await rawGet(port, '/app/../env.php');
      assert.equal(response.status, 200);
      assert.equal(scriptOf(response), `${rootDoc}/env.php`);
      const staticFile = await rawGet(port, '/app/sub/../assets/hello.txt');
      assert.equal(staticFile.status, 200);
      assert.equal(staticFile.body.toString(), 'hello static world\n');
    });

    test('path traversal: percent-encoded dots %2e%2e (any case) are decoded, then refused above the root', async () => {
      for (const target of ['/%2e%2e/%2e%2e/etc/passwd', '/app/%2E%2E/%2e%2E/%2e%2e/etc/passwd', '/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/.%2e/.%2e/etc/passwd', '/%2e%2e%2fconfig%2fworker.yaml']) {
        const response = await rawGet(port, target);
        assert.equal(response.status, 400, `${target} -> ${response.status}`);
        assertNoLeak(response.body, target);
      }
    });

    test('path traversal: double encoding %252e%252e is decoded once only and names a file that does not exist', async () => {
      for (const target of ['/%252e%252e/%252e%252e/etc/passwd', '/app/%252e%252e%252f%252e%252e%252fetc%252fpasswd', '/assets/%252e%252e/hello.txt']) {
        const response = await rawGet(port, target);
        assertNoLeak(response.body, target);
        const script = scriptOf(response);
        // Nothing by that name exists: the front controller answers, from inside its document root.
        assert.ok(response.status === 404 || (response.status === 200 && (script === `${rootDoc}/index.php` || script === `${appDoc}/index.php`)), `${target} -> ${response.status} ${script}`);
      }
    });

    test('path traversal: ..%2f with encoded slashes is refused like ../', async () => {
      for (const target of ['/..%2f..%2f..%2fetc%2fpasswd', '/app/..%2f..%2f..%2f..%2fetc/passwd', '/assets/..%2F..%2F..%2Fetc%2Fpasswd', '/uploads%2f..%2f..%2f..%2fetc%2fpasswd']) {
        const response = await rawGet(port, target);
        assert.equal(response.status, 400, `${target} -> ${response.status}`);
        assertNoLeak(response.body, target);
      }
    });

    test('path traversal: backslashes (raw and %5c) are ordinary file-name characters on Linux, never separators', async () => {
      for (const target of ['/..\\..\\..\\etc\\passwd', '/app/..%5c..%5c..%5cetc%5cpasswd', '/assets\\..\\..\\config\\worker.yaml', '/assets/..%5chello.txt']) {
        const response = await rawGet(port, target);
        assertNoLeak(response.body, target);
        assert.notEqual(response.body.toString(), 'hello static world\n', `${target} must not reach assets/hello.txt`);
        const script = scriptOf(response);
        assert.ok(response.status === 400 || response.status === 404 || script === `${rootDoc}/index.php` || script === `${appDoc}/index.php`, `${target} -> ${response.status} ${script}`);
      }
    });

    test('path traversal: overlong UTF-8 dots (%c0%ae) and invalid UTF-8 are refused', async () => {
      for (const target of ['/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd', '/app/%e0%80%ae%e0%80%ae/etc/passwd', '/%ff/env.php']) {
        const response = await rawGet(port, target);
        assert.equal(response.status, 400, `${target} -> ${response.status}`);
        assertNoLeak(response.body, target);
      }
    });

    test('path traversal: an absolute-form request target is reduced to its path, with the same rules', async () => {
      const escape = await rawGet(port, 'http://localhost/../../etc/passwd');
      assert.equal(escape.status, 400);
      assertNoLeak(escape.body, 'absolute-form ../');
      const normal = await rawGet(port, 'http://localhost/assets/hello.txt');
      assert.equal(normal.status, 200);
      assert.equal(normal.body.toString(), 'hello static world\n');
    });
  });

  describe('NUL bytes and control characters', () => {
    test('NUL byte: %00 in the path is refused (it would truncate the file name in C)', async () => {
      for (const target of ['/uploads/evil.jpg%00.php', '/env.php%00.txt', '/source.php%00', '/app/index.php%00/x']) {
        const response = await rawGet(port, target);
        assert.equal(response.status, 400, `${target} -> ${response.status}`);
        assertNoLeak(response.body, target);
      }
    });

    test('NUL byte: a raw NUL in the request line is refused by the parser', async () => {
      const { responses } = await rawRequest(port, 'GET /uploads/evil.jpg\0.php HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      assert.equal(responses.length, 1);
      assert.equal(responses[0]!.status, 400);
      assertNoLeak(responses[0]!.body, 'raw NUL');
    });
  });

  describe('split path (script vs PATH_INFO)', () => {
    test('CVE-2019-11043: a newline (%0a, %0d) in PATH_INFO is refused before it reaches php-cgi', async () => {
      for (const target of [
        '/index.php/PHP%0Ais_the_shittiest_lang.php?QQQQQQQQQQQQQQQQQQQQQQQQQQQQQ',
        '/app/env.php/%0a',
        '/env.php/x%0d%0aSet-Cookie:%20a=1',
        '/index.php%0a.php',
      ]) {
        const response = await rawGet(port, target);
        assert.equal(response.status, 400, `${target} -> ${response.status}`);
        assertNoLeak(response.body, target);
      }
    });

    test('non-PHP executed as PHP: /uploads/evil.jpg/x.php never runs the uploaded image (the front controller answers)', async () => {
      for (const target of ['/uploads/evil.jpg/x.php', '/uploads/evil.jpg/.php', '/uploads/evil.jpg%2fx.php', '/app/uploads/evil.jpg/index.php', '/uploads/evil.jpg/x.php/y']) {
        const response = await rawGet(port, target);
        assertNoLeak(response.body, target);
        const script = scriptOf(response);
        assert.ok(response.status === 404 || script === `${rootDoc}/index.php` || script === `${appDoc}/index.php`, `${target} -> ${response.status} ${script}`);
      }
    });

    test('non-PHP executed as PHP: PATH_INFO naming the upload (/env.php/uploads/evil.jpg) runs env.php, never the image (PATH_TRANSLATED is not a script)', async () => {
      const response = await rawGet(port, '/env.php/uploads/evil.jpg');
      assert.equal(response.status, 200);
      assertNoLeak(response.body, '/env.php/uploads/evil.jpg');
      const server = JSON.parse(response.body.toString()).server;
      assert.equal(server.SCRIPT_FILENAME, `${rootDoc}/env.php`);
      assert.equal(server.PATH_INFO, '/uploads/evil.jpg');
      assert.equal(server.PATH_TRANSLATED, `${rootDoc}/uploads/evil.jpg`);
    });

    test('split path: PATH_INFO naming another script (/env.php/source.php) runs the script that was split off, never the other one', async () => {
      const response = await rawGet(port, '/env.php/source.php');
      assert.equal(response.status, 200);
      assert.doesNotMatch(response.body.toString(), /ran source\.php/);
      const server = JSON.parse(response.body.toString()).server;
      assert.equal(server.SCRIPT_FILENAME, `${rootDoc}/env.php`);
      assert.equal(server.PHP_SELF, '/env.php/source.php');
    });

    test('non-PHP executed as PHP: the upload itself is served as an image with nosniff, as bytes, never run', async () => {
      const response = await rawGet(port, '/uploads/evil.jpg');
      assert.equal(response.status, 200);
      assert.equal(response.header('content-type'), 'image/jpeg');
      assert.equal(response.header('x-content-type-options'), 'nosniff');
      assert.doesNotMatch(response.body.toString(), /EVIL-RAN-42/);
    });

    test('non-ASCII lookalikes of .php (fullwidth, accented, Unicode case folding) never split the path', async () => {
      for (const target of [
        '/uploads/evil.jpg/x.%EF%BD%90%EF%BD%88%EF%BD%90', // x.ｐｈｐ (fullwidth)
        '/uploads/evil.jpg/x%EF%BC%8Ephp', // x．php (fullwidth full stop)
        '/uploads/evil.jpg/x.p%C4%A5p', // x.pĥp
        '/uploads/evil.jpg/%C8%BA%C8%BA.php', // ȺȺ.php: lower-cases to a longer string (GHSA-3g8v-8r37-cgjm)
        '/uploads/evil.jpg/x.%E2%84%99hp', // x.ℙhp
        '/uploads/evil.jpg%E2%80%AEgpj.php', // right-to-left override
      ]) {
        const response = await rawGet(port, target);
        assertNoLeak(response.body, target);
        const script = scriptOf(response);
        assert.ok(response.status === 404 || script === `${rootDoc}/index.php`, `${target} -> ${response.status} ${script}`);
      }
    });

    test('upper-case extension: /upper.PHP is neither run nor served as source (limit_extensions is exact)', async () => {
      const response = await rawGet(port, '/upper.PHP');
      assert.equal(response.status, 404);
      assertNoLeak(response.body, '/upper.PHP');
      assert.doesNotMatch(response.body.toString(), /UPPER-RAN/);
      const mixed = await rawGet(port, '/source.PhP');
      assertNoLeak(mixed.body, '/source.PhP');
    });
  });

  describe('request headers', () => {
    test('httpoxy (CVE-2016-5385): a Proxy header never becomes HTTP_PROXY', async () => {
      for (const name of ['Proxy', 'proxy', 'PROXY']) {
        const response = await rawGet(port, '/env.php', { [name]: 'http://attacker.example:8080' });
        const json = JSON.parse(response.body.toString());
        assert.equal(json.server.HTTP_PROXY, undefined, `${name}: HTTP_PROXY in $_SERVER`);
        assert.equal(json.getenv_http_proxy, false, `${name}: getenv('HTTP_PROXY')`);
      }
    });

    test('underscore headers: X_Forwarded_For cannot pose as X-Forwarded-For (both would be HTTP_X_FORWARDED_FOR)', async () => {
      const both = await rawGet(port, '/env.php', { 'X-Forwarded-For': '10.0.0.1', X_Forwarded_For: '6.6.6.6' });
      assert.equal(JSON.parse(both.body.toString()).server.HTTP_X_FORWARDED_FOR, '10.0.0.1');
      const spoofed = await rawGet(port, '/env.php', { X_Forwarded_For: '6.6.6.6', 'Client_IP': '6.6.6.6', Remote_Addr: '6.6.6.6' });
      const server = JSON.parse(spoofed.body.toString()).server;
      assert.equal(server.HTTP_X_FORWARDED_FOR, undefined);
      assert.equal(server.HTTP_CLIENT_IP, undefined);
      assert.equal(server.REMOTE_ADDR, '127.0.0.1');
      assert.doesNotMatch(spoofed.body.toString(), /6\.6\.6\.6/);
    });

    test('reserved variables: headers named like CGI variables stay HTTP_* and never override them', async () => {
      const response = await rawGet(port, '/env.php', {
        'Script-Filename': '/etc/passwd',
        'Document-Root': '/etc',
        'Path-Info': '/evil',
        'Redirect-Status': '500',
        Https: 'on',
        'Content-Length-Override': '1',
      });
      assert.equal(response.status, 200);
      const server = JSON.parse(response.body.toString()).server;
      assert.equal(server.SCRIPT_FILENAME, `${rootDoc}/env.php`);
      assert.equal(server.DOCUMENT_ROOT, rootDoc);
      assert.equal(server.PATH_INFO ?? '', '');
      assert.equal(server.REDIRECT_STATUS, '200');
      assert.equal(server.HTTPS, undefined, 'an Https header does not make the request look like TLS');
      assert.equal(server.HTTP_SCRIPT_FILENAME, '/etc/passwd', 'the header itself arrives, prefixed');
      assertNoLeak(response.body, 'reserved names');
    });
  });

  describe('php-cgi argument injection through the query string', () => {
    test('CVE-2012-1823: ?-s does not show the source', async () => {
      for (const target of ['/source.php?-s', '/index.php?-s', '/?-s', '/source.php?-s+%3d']) {
        const response = await rawGet(port, target);
        assertNoLeak(response.body, target);
        assert.doesNotMatch(response.body.toString(), /<code><span style="color/, `${target}: highlighted source`);
      }
      const ran = await rawGet(port, '/source.php?-s');
      assert.equal(ran.body.toString(), 'ran source.php\n', 'the script simply runs');
    });

    test('CVE-2012-1823: ?-d allow_url_include + auto_prepend_file=php://input does not run the POST body', async () => {
      const payload = '<?php echo "INJECTED-" . (6 * 7); ?>';
      for (const query of ['-d+allow_url_include%3d1+-d+auto_prepend_file%3dphp://input', '-d+auto_prepend_file%3d' + encodeURIComponent(`${rootDoc}/pwned.php`)]) {
        const response = await request(port, { method: 'POST', path: `/index.php?${query}`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: payload });
        assert.equal(response.status, 200);
        assertNoLeak(response.body, query);
        assert.equal(response.json().front, 'index');
      }
    });

    test('CVE-2024-4577: the soft hyphen %AD (a "-" after Windows best-fit) injects no argument either', async () => {
      const payload = '<?php echo "INJECTED-" . (6 * 7); ?>';
      const response = await request(port, {
        method: 'POST',
        path: '/index.php?%ADd+allow_url_include%3d1+%ADd+auto_prepend_file%3dphp://input',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: payload,
      });
      assert.equal(response.status, 200);
      assertNoLeak(response.body, '%AD injection');
      const source = await rawGet(port, '/source.php?%ADs');
      assert.equal(source.body.toString(), 'ran source.php\n');
    });
  });

  describe('request smuggling', () => {
    test('request smuggling: Content-Length with Transfer-Encoding is refused and the hidden request never reaches PHP', async () => {
      const before = await accepted('root');
      const { responses } = await rawRequest(
        port,
        'POST /env.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pwned.php HTTP/1.1\r\nHost: localhost\r\n\r\n',
      );
      assert.deepEqual(responses.map((r) => r.status), [400]);
      for (const r of responses) assertNoLeak(r.body, 'CL.TE');
      assert.equal(await accepted('root'), before, 'no request reached a worker');
    });

    test('request smuggling: Transfer-Encoding before Content-Length (TE.CL) is refused the same way', async () => {
      const before = await accepted('root');
      const { responses } = await rawRequest(
        port,
        'POST /env.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n1e\r\nGET /pwned.php HTTP/1.1\r\nX: y\r\n\r\n0\r\n\r\n',
      );
      assert.deepEqual(responses.map((r) => r.status), [400]);
      assert.equal(await accepted('root'), before);
    });

    test('request smuggling: two Content-Length headers (different or equal) are refused', async () => {
      for (const lengths of [['5', '40'], ['5', '5']]) {
        const { responses } = await rawRequest(port, `POST /env.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${lengths[0]}\r\nContent-Length: ${lengths[1]}\r\n\r\nhello`);
        assert.deepEqual(responses.map((r) => r.status), [400], `Content-Length ${lengths.join(' + ')}`);
      }
    });

    test('request smuggling: obfuscated Transfer-Encoding (unknown coding, not last, obs-fold) is refused', async () => {
      for (const te of ['Transfer-Encoding: xchunked', 'Transfer-Encoding: chunked, identity', 'Transfer-Encoding:\r\n chunked', 'Transfer-Encoding: identity']) {
        const before = await accepted('root');
        const { responses } = await rawRequest(port, `POST /env.php HTTP/1.1\r\nHost: localhost\r\n${te}\r\n\r\n0\r\n\r\nGET /pwned.php HTTP/1.1\r\nHost: localhost\r\n\r\n`);
        assert.equal(responses[0]?.status, 400, `${JSON.stringify(te)} -> ${responses.map((r) => r.status)}`);
        for (const r of responses) assertNoLeak(r.body, te);
        assert.equal(await accepted('root'), before, `${JSON.stringify(te)}: nothing reached a worker`);
      }
    });

    test('request smuggling: a smuggled request pipelined after a valid one is never run as a separate request', async () => {
      const before = await accepted('root');
      const { responses } = await rawRequest(
        port,
        'GET /sleep.php?ms=100 HTTP/1.1\r\nHost: localhost\r\n\r\n' +
          'POST /env.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pwned.php HTTP/1.1\r\nHost: localhost\r\n\r\n',
      );
      assert.deepEqual(responses.map((r) => r.status), [200, 400], 'the valid request is answered first, then the refusal');
      assert.match(responses[0]!.body.toString(), /^slept 100 ms/);
      assertNoLeak(Buffer.concat(responses.map((r) => r.body)), 'pipelined smuggling');
      assert.equal(await accepted('root'), before + 1, 'exactly one request reached PHP');
    });
  });

  describe('source and dotfile disclosure', () => {
    test('source disclosure: a .php file is run, never sent as source, whatever the suffix tricks', async () => {
      for (const target of ['/source.php', '/source.php/', '/source.php.', '/source.php%20', '/source.php::$DATA', '/source.%70hp', '/app/source.php']) {
        const response = await rawGet(port, target);
        assertNoLeak(response.body, target);
      }
    });

    test('dotfile disclosure: .env, .git/config, .htaccess, .user.ini, swap files and hidden scripts are never served', async () => {
      const dotted = Object.keys(SECRET_FILES).filter((name) => name.split('/').some((segment) => segment.startsWith('.')));
      assert.ok(dotted.length >= 7);
      for (const name of dotted) {
        for (const target of [`/${name}`, `/app/${name}`, `/${name.replaceAll('.', '%2e')}`, `/assets/..%2f${name}`, `/sub/../${name}`]) {
          const response = await rawGet(port, target);
          assert.ok(response.status === 404 || response.status === 400, `${target} -> ${response.status}`);
          assertNoLeak(response.body, target);
        }
      }
    });

    test('backup and source-extension disclosure: index.php~, .bak, .old, .swp, .phps, .inc, .phtml are never served', async () => {
      const backups = Object.keys(SECRET_FILES).filter((name) => !name.split('/').some((segment) => segment.startsWith('.')));
      assert.ok(backups.includes('index.php~') && backups.includes('source.phps') && backups.includes('index.php.bak'));
      for (const name of backups) {
        for (const target of [`/${name}`, `/app/${name}`, `/${encodeURIComponent(name)}`]) {
          const response = await rawGet(port, target);
          assert.equal(response.status, 404, `${target} -> ${response.status}`);
          assertNoLeak(response.body, target);
        }
      }
    });

    test('directory listing is never shown: a folder without an index goes to the front controller', async () => {
      for (const target of ['/uploads/', '/assets/', '/empty/', '/app/uploads/']) {
        const response = await rawGet(port, target);
        assertNoLeak(response.body, target);
        assert.doesNotMatch(response.body.toString(), /evil\.jpg|hello\.txt|readme\.txt|Index of/, `${target} lists files`);
        const script = scriptOf(response);
        assert.ok(script === `${rootDoc}/index.php` || script === `${appDoc}/index.php`, `${target} -> ${response.status} ${script}`);
      }
    });

    test('a Host header cannot inject into SERVER_NAME', async () => {
      const response = await rawGet(port, '/env.php', { Host: 'evil.example/../x"<script>' });
      if (response.status === 200) {
        const server = JSON.parse(response.body.toString()).server;
        assert.equal(server.SERVER_NAME, '127.0.0.1', 'an invalid Host falls back to the configured host');
      } else {
        assert.equal(response.status, 400);
      }
      const plain = await get(port, '/env.php', { host: 'Example.COM:8080' });
      assert.equal(plain.json().server.SERVER_NAME, 'example.com');
    });
  });
});
