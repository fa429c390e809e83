// Property tests for the CGI environment under hostile requests (issue 9): arbitrary header names and
// values, targets and hosts go in; no request header may set or bend a variable the server owns, the
// HTTP_* names stay plain, the bytes PHP gets are the bytes the client sent, and the encoded params
// survive the FastCGI params codec. env.ts caches header names and the last Host (issue 8): the
// cached answers are checked against a fresh model on interleaved inputs, and the cache's memory
// against a flood of invented names.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { decodeParams, encodeParams } from '../fastcgi/params.js';
import { buildCgiEnv, encodeCgiParams, hostName, requestUri, type CgiParams, type CgiRequest, type CgiRoute, type ConnectionMemo } from './env.js';

// ---- generators ----

/** A string of chars 0..255: what Node's parser hands over for raw bytes (latin1, one char per byte). */
const latin1 = (maxLength: number) => fc.array(fc.integer({ min: 0, max: 255 }), { maxLength }).map((codes) => String.fromCharCode(...codes));

/** Names that look like CGI variables, the httpoxy header, the framing headers, and their near-misses. */
const TRICKY_NAMES = [
  'Script-Filename', 'SCRIPT_FILENAME', 'Script_Filename', 'Content_Length', 'Content-Length', 'content-type', 'CONTENT-TYPE',
  'Path-Info', 'Path_Info', 'Remote-Addr', 'Remote-Port', 'Https', 'HTTPS', 'Proxy', 'pRoXy', 'Proxy-Authorization',
  'Transfer-Encoding', 'Host', 'HOST', 'X-Request-Id', 'x-request-id', 'Cookie', 'Redirect-Status', 'Document-Root',
  'Document-Uri', 'Server-Name', 'Server_Port', 'Server-Software', 'Request-Method', 'Request-Uri', 'Query-String',
  'Gateway-Interface', 'Php-Value', 'PHP_VALUE', 'Php-Admin-Value', 'Auth-Type', 'Remote-User', 'Path-Translated',
  'X-Forwarded-For', 'X_Forwarded_For', 'Accept', 'User-Agent', 'X-A', 'x-a', '', '-', '_', 'HTTP-', 'Http-Host',
] as const;

const tokenName = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);
const headerNameArb = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...TRICKY_NAMES) },
  { weight: 3, arbitrary: tokenName },
  // Anything at all: spaces, colons, CR/LF, NUL, non-ASCII bytes.
  { weight: 2, arbitrary: latin1(20) },
  { weight: 1, arbitrary: fc.constantFrom('a'.repeat(5000), `X-${'Long-'.repeat(900)}Name`, 'X\r\nInjected', 'X\0Nul', 'Caf\xe9', 'X Y', 'X:Y') },
);

const hostArb = fc.oneof(
  fc.constantFrom('example.com', 'EXAMPLE.com:8080', '[::1]:80', '[2001:db8::1]', '127.0.0.1', 'a b', 'evil.com@good.com', 'good.com/..', 'h:99999', '[::1]x', ' spaced.test '),
  fc.domain(),
  fc.tuple(fc.domain(), fc.integer({ min: 0, max: 99999 })).map(([host, port]) => `${host}:${port}`),
  fc.ipV4(),
  fc.ipV6().map((ip) => `[${ip}]`),
  latin1(40),
);

const headerValueArb = fc.oneof(
  { weight: 6, arbitrary: latin1(40) },
  { weight: 2, arbitrary: hostArb },
  { weight: 1, arbitrary: fc.constantFrom('', 'http://evil:8080', '/etc/passwd', 'on', '\r\nX-Injected: 1', '%00', '../../x.php') },
  // Huge values: one past 127 bytes (a 4-byte length prefix) and far beyond.
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 128, max: 70_000 }), fc.integer({ min: 0, max: 255 })).map(([n, c]) => String.fromCharCode(c).repeat(n)) },
);

const rawHeadersArb = fc.array(fc.tuple(headerNameArb, headerValueArb), { maxLength: 24 }).map((pairs) => pairs.flat());

const targetArb = fc.oneof(
  fc.webPath().map((path) => path || '/'),
  fc.tuple(fc.webPath(), fc.webQueryParameters(), fc.webFragments()).map(([p, q, f]) => `/${p}?${q}#${f}`),
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.constantFrom('*', 'example.com:443', 'http://h', 'http://h?q', 'HTTP://H:1/p#f', '//double', '/a/../../b', '/%00/%2e%2e%2f', 'x'),
  latin1(60),
);

/** Any code points, surrogate halves included (fc.string's 'binary' unit is slow to generate): strings no parser makes. */
const anyString = fc.array(fc.integer({ min: 0, max: 0x10ffff }), { maxLength: 30 }).map((codes) => codes.map((c) => (c <= 0xffff ? String.fromCharCode(c) : String.fromCodePoint(c))).join(''));

const requestArb: fc.Arbitrary<CgiRequest> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'BREW'),
  target: targetArb,
  query: latin1(30),
  httpVersion: fc.constantFrom('1.1', '1.0'),
  rawHeaders: rawHeadersArb,
  remoteAddress: fc.oneof(fc.ipV4(), fc.ipV6()),
  remotePort: fc.integer({ min: 1, max: 65535 }),
  localAddress: fc.oneof(fc.ipV4(), fc.ipV6()),
  localPort: fc.integer({ min: 1, max: 65535 }),
  tls: fc.boolean(),
  contentLength: fc.option(fc.nat({ max: 1 << 30 }), { nil: null }),
});

const RESERVED_NAMES = [
  'GATEWAY_INTERFACE', 'SERVER_SOFTWARE', 'SERVER_PROTOCOL', 'SERVER_NAME', 'SERVER_ADDR', 'SERVER_PORT', 'REQUEST_METHOD',
  'REQUEST_URI', 'REQUEST_SCHEME', 'QUERY_STRING', 'DOCUMENT_ROOT', 'DOCUMENT_URI', 'SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO',
  'PATH_TRANSLATED', 'REMOTE_ADDR', 'REMOTE_PORT', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'REDIRECT_STATUS', 'HTTPS', 'AUTH_TYPE',
  'REMOTE_USER', 'REMOTE_IDENT', 'REMOTE_HOST', 'PHP_VALUE', 'PHP_ADMIN_VALUE',
];

const routeArb: fc.Arbitrary<CgiRoute> = fc.record(
  {
    documentRoot: fc.constantFrom('/srv/site/public', '/srv/caf\u00e9/public', '/tmp/x'),
    prefix: fc.constantFrom('', '/blog', '/a/b'),
    script: fc.constantFrom('/index.php', '/sub/page.php', '/\u00fcber.php'),
    pathInfo: fc.constantFrom('', '/x', '/a b/\u00fc', '/../../etc/passwd'),
    serverName: fc.constantFrom('fallback.test', '127.0.0.1'),
    serverSoftware: fc.constant('TQServer/0.1.0'),
    // The caller's extras: reserved names in any case, HTTP_* names, non-environment names, and fine ones.
    extra: fc.dictionary(
      fc.oneof(fc.constantFrom(...RESERVED_NAMES, 'script_filename', 'Php_Value', 'HTTP_HOST', 'HTTP_PROXY', 'http_x', 'A=B', '', 'X Y', 'TQ_ID'), fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/)),
      fc.string({ maxLength: 10 }),
      { maxKeys: 5 },
    ),
    requestId: fc.stringMatching(/^[a-z0-9-]{1,16}$/),
  },
  { requiredKeys: ['documentRoot', 'prefix', 'script', 'pathInfo', 'serverName', 'serverSoftware'] },
);

// ---- an independent model of what the environment must be ----

/** RFC 9110 7.2 Host: a DNS name or IPv4 address, or a bracketed IPv6 literal, with an optional port; else null. */
function modelHostName(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^(?:(\[[0-9A-Fa-f:.]+\])|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/.exec(header.trim());
  if (!match) return null;
  const name = match[1] ?? match[2]!;
  if (match[2] !== undefined) {
    if (name.length > 253) return null;
    const labels = name.split('.');
    if (!labels.every((label) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label))) return null;
  }
  return name.toLowerCase();
}

const NEVER_HTTP = new Set(['content-length', 'content-type', 'proxy', 'transfer-encoding']);

/** The HTTP_* variables a request must produce, as latin1 strings, in order of first appearance. */
function modelHttpVars(request: CgiRequest, route: CgiRoute): Map<string, string> {
  const vars = new Map<string, string>();
  let sawHost = false;
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i]!;
    const value = request.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'host') {
      if (sawHost) continue;
      sawHost = true;
    }
    if (!/^[A-Za-z0-9-]+$/.test(name) || NEVER_HTTP.has(lower)) continue;
    if (route.requestId !== undefined && lower === 'x-request-id') continue;
    const key = `HTTP_${name.toUpperCase().replaceAll('-', '_')}`;
    const before = vars.get(key);
    vars.set(key, before === undefined ? value : `${before}${lower === 'cookie' ? '; ' : ', '}${value}`);
  }
  if (route.requestId !== undefined) vars.set('HTTP_X_REQUEST_ID', route.requestId);
  return vars;
}

function firstHeader(request: CgiRequest, lowerName: string): string | undefined {
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) if (request.rawHeaders[i]!.toLowerCase() === lowerName) return request.rawHeaders[i + 1];
  return undefined;
}

/** Every variable the server owns, computed from the request and route alone (never from other headers). */
function modelServerVars(request: CgiRequest, route: CgiRoute): Map<string, string | Buffer> {
  const scriptName = route.prefix + route.script;
  const vars = new Map<string, string | Buffer>([
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', route.serverSoftware],
    ['SERVER_PROTOCOL', `HTTP/${request.httpVersion}`],
    ['SERVER_NAME', modelHostName(firstHeader(request, 'host')) ?? route.serverName],
    ['SERVER_ADDR', request.localAddress],
    ['SERVER_PORT', String(request.localPort)],
    ['REQUEST_SCHEME', request.tls ? 'https' : 'http'],
    ['REQUEST_METHOD', request.method],
    ['REQUEST_URI', Buffer.from(requestUri(request.target), 'latin1')],
    ['QUERY_STRING', Buffer.from(request.query, 'latin1')],
    ['DOCUMENT_ROOT', route.documentRoot],
    ['DOCUMENT_URI', scriptName + route.pathInfo],
    ['SCRIPT_FILENAME', route.documentRoot + route.script],
    ['SCRIPT_NAME', scriptName],
    ['PATH_INFO', route.pathInfo],
    ['REMOTE_ADDR', request.remoteAddress],
    ['REMOTE_PORT', String(request.remotePort)],
    // The only two that come from a request header, and then only from the first one of its name.
    ['CONTENT_TYPE', Buffer.from(firstHeader(request, 'content-type') ?? '', 'latin1')],
    ['CONTENT_LENGTH', request.contentLength === null ? '' : String(request.contentLength)],
    ['REDIRECT_STATUS', '200'],
  ]);
  if (route.pathInfo !== '') vars.set('PATH_TRANSLATED', route.documentRoot + route.pathInfo);
  if (request.tls) vars.set('HTTPS', 'on');
  return vars;
}

/** The bytes a param value goes out as (strings are written as UTF-8 by the params codec). */
const wire = (value: string | Buffer): Buffer => (Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'));

/** The params as a map, checking that no name appears twice (PHP would keep only one of them). */
function asMap(params: CgiParams): Map<string, string | Buffer> {
  const map = new Map<string, string | Buffer>();
  for (const [name, value] of params) {
    assert.ok(!map.has(name), `${name} appears twice`);
    map.set(name, value);
  }
  return map;
}

/** The whole result in a form deepEqual compares byte for byte. */
const snapshot = (params: CgiParams): Array<[string, string]> => params.map(([name, value]) => [name, wire(value).toString('hex')]);

/** Checks one environment against the model; returns nothing, throws on the first difference. */
function checkEnv(request: CgiRequest, route: CgiRoute, params: CgiParams): void {
  const env = asMap(params);
  const server = modelServerVars(request, route);
  const http = modelHttpVars(request, route);
  for (const [name, want] of server) {
    const got = env.get(name);
    assert.ok(got !== undefined, `${name} is set`);
    assert.equal(wire(got).toString('hex'), wire(want).toString('hex'), `${name} comes from the request and route only`);
  }
  for (const name of RESERVED_NAMES) if (!server.has(name)) assert.equal(env.get(name), undefined, `${name} is never set by a request or an extra`);
  for (const [name, value] of env) {
    if (server.has(name)) continue;
    if (name.startsWith('HTTP_')) {
      assert.match(name, /^HTTP_[A-Z0-9_]+$/);
      assert.ok(!['HTTP_PROXY', 'HTTP_CONTENT_LENGTH', 'HTTP_CONTENT_TYPE', 'HTTP_TRANSFER_ENCODING'].includes(name), `${name} is never passed`);
      const want = http.get(name);
      assert.ok(want !== undefined, `${name} comes from a request header`);
      // Exact bytes: the latin1 chars of the header are the bytes the client sent.
      assert.equal(wire(value).toString('hex'), Buffer.from(want, 'latin1').toString('hex'), `${name} is the header's bytes`);
    } else {
      // Anything else is a caller's extra: an environment name that is neither reserved nor HTTP_*.
      assert.ok(route.extra && Object.hasOwn(route.extra, name), `${name} is an extra`);
      assert.match(name, /^[A-Za-z_][A-Za-z0-9_]*$/);
      assert.ok(!RESERVED_NAMES.includes(name.toUpperCase()) && !name.toUpperCase().startsWith('HTTP_'), `${name} may not be set by an extra`);
      assert.equal(value, route.extra[name]);
    }
  }
  for (const name of http.keys()) assert.ok(env.has(name), `${name} is passed`);
}

// ---- properties ----

describe('buildCgiEnv under arbitrary requests (fast-check)', () => {
  test('never throws, owns every reserved variable, passes HTTP_* as exact bytes under plain names', () => {
    fc.assert(
      fc.property(requestArb, routeArb, (request, route) => {
        checkEnv(request, route, buildCgiEnv(request, route));
      }),
      { numRuns: 600 },
    );
  });

  test('never throws on strings no parser makes (chars above 0xFF), and still sets no reserved variable from a header', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.oneof(anyString, headerNameArb), anyString), { maxLength: 10 }),
        anyString,
        anyString,
        routeArb,
        (pairs, target, query, route) => {
          const request: CgiRequest = { method: 'GET', target, query, httpVersion: '1.1', rawHeaders: pairs.flat(), remoteAddress: '203.0.113.9', remotePort: 1, localAddress: '127.0.0.1', localPort: 8080, tls: false, contentLength: null };
          const env = asMap(buildCgiEnv(request, route));
          for (const [name] of env) if (name.startsWith('HTTP_')) assert.match(name, /^HTTP_[A-Z0-9_]+$/);
          assert.equal(env.get('SCRIPT_FILENAME'), route.documentRoot + route.script);
          assert.equal(env.get('REMOTE_ADDR'), '203.0.113.9');
          assert.equal(env.get('HTTP_PROXY'), undefined);
          assert.equal(env.get('HTTPS'), undefined);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a rawHeaders list of odd length (a name without a value) ignores the dangling name', () => {
    fc.assert(
      fc.property(requestArb, routeArb, headerNameArb, (request, route, dangling) => {
        const odd = { ...request, rawHeaders: [...request.rawHeaders, dangling] };
        assert.deepEqual(snapshot(buildCgiEnv(odd, route)), snapshot(buildCgiEnv(request, route)));
      }),
      { numRuns: 200 },
    );
  });

  test('the params round-trip through the FastCGI params codec: same names, same order, same bytes', () => {
    fc.assert(
      fc.property(requestArb, routeArb, (request, route) => {
        const params = buildCgiEnv(request, route);
        const decoded = decodeParams(encodeParams(params, Infinity));
        assert.deepEqual(
          decoded.map(([name, value]) => [name, value.toString('hex')]),
          snapshot(params),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('encodeCgiParams (the proxy\'s encoded params, issue 8) sends exactly buildCgiEnv\'s pairs', () => {
  /** What the FastCGI client writes for these params: measured and written as it does for a request head. */
  const sent = (params: Parameters<typeof encodeParams>[0]): string => encodeParams(params, Infinity).toString('hex');

  test('the same bytes for any request and route, with its remembered runs reused in any interleaving', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(requestArb, routeArb, fc.nat({ max: 2 })), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 24 }),
        (inputs, order) => {
          // Three connections, each with its memo: the requests on one change its addresses at times (trusted proxies).
          const memos: ConnectionMemo[] = [{ params: null }, { params: null }, { params: null }];
          const want = inputs.map(([request, route]) => sent(buildCgiEnv(request, route)));
          for (const pick of [...inputs.keys(), ...order]) {
            const i = pick % inputs.length;
            const [request, route, connection] = inputs[i]!;
            assert.equal(sent(encodeCgiParams({ ...request, connection: memos[connection] }, route)), want[i]);
            assert.equal(sent(encodeCgiParams(request, route)), want[i]);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('the same bytes for strings no parser makes (chars above 0xFF) in headers, target, paths and extras', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.oneof(anyString, headerNameArb), anyString), { maxLength: 10 }),
        anyString,
        anyString,
        fc.record({ documentRoot: anyString, prefix: anyString, script: anyString, pathInfo: anyString, serverName: anyString, serverSoftware: anyString, requestId: anyString }),
        fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/), anyString, { maxKeys: 3 }),
        (pairs, target, query, route, extra) => {
          const request: CgiRequest = { method: 'GET', target, query, httpVersion: '1.1', rawHeaders: pairs.flat(), remoteAddress: '203.0.113.9', remotePort: 1, localAddress: '127.0.0.1', localPort: 8080, tls: false, contentLength: 3 };
          const full = { ...route, extra };
          assert.equal(sent(encodeCgiParams(request, full)), sent(buildCgiEnv(request, full)));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('iterating the encoded params gives the pairs, as the php-fpm pool reads REQUEST_METHOD from them', () => {
    fc.assert(
      fc.property(requestArb, routeArb, (request, route) => {
        const pairs = [...encodeCgiParams(request, route)].map(([name, value]) => [name, value.toString('hex')]);
        assert.deepEqual(pairs, snapshot(buildCgiEnv(request, route)));
      }),
      { numRuns: 200 },
    );
  });
});

describe('the header-name and Host caches (issue 8) answer as a fresh computation would', () => {
  test('the same request twice, and requests interleaved in any order, give the same environment each time', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(requestArb, routeArb), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 24 }), (inputs, order) => {
        const first = inputs.map(([request, route]) => snapshot(buildCgiEnv(request, route)));
        // Again, same order (every name and Host now cached), then in a random interleaving.
        inputs.forEach(([request, route], i) => assert.deepEqual(snapshot(buildCgiEnv(request, route)), first[i]));
        for (const pick of order) {
          const i = pick % inputs.length;
          const [request, route] = inputs[i]!;
          const params = buildCgiEnv(request, route);
          assert.deepEqual(snapshot(params), first[i]);
          checkEnv(request, route, params);
        }
      }),
      { numRuns: 200 },
    );
  });

  test('hostName equals the RFC 9110 model for every Host in a sequence with repeats (the last-Host cache)', () => {
    fc.assert(
      fc.property(fc.array(hostArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 30 }), (hosts, picks) => {
        for (const pick of [...picks, ...picks.slice().reverse()]) {
          const host = hosts[pick % hosts.length]!;
          const name = hostName(host);
          assert.equal(name, modelHostName(host), JSON.stringify(host));
          // Whatever the client sent, SERVER_NAME never carries spaces, CR/LF, "@", "/" or a port.
          if (name !== null) assert.match(name, /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])$/);
        }
        assert.equal(hostName(undefined), null);
        assert.equal(hostName(''), null);
      }),
      { numRuns: 500 },
    );
  });

  test('header names that differ only in case or in characters are never confused by the cache', () => {
    // Each pair maps to the same HTTP_* key, or one of them to none; asked in both orders.
    const pairs: Array<[string, string]> = [['X-A', 'x-a'], ['X_A', 'X-A'], ['Proxy', 'Proxy-'], ['Host', 'host'], ['Content-Type', 'Content-Typo'], ['X-\u00e9', 'X-e']];
    for (const [a, b] of pairs) {
      for (const [first, second] of [[a, b], [b, a]] as const) {
        const request: CgiRequest = { method: 'GET', target: '/', query: '', httpVersion: '1.1', rawHeaders: [first, '1', second, '2'], remoteAddress: '::1', remotePort: 1, localAddress: '::1', localPort: 2, tls: false, contentLength: null };
        const route: CgiRoute = { documentRoot: '/r', prefix: '', script: '/i.php', pathInfo: '', serverName: 's', serverSoftware: 'T' };
        checkEnv(request, route, buildCgiEnv(request, route));
      }
    }
  });

  test('the header-name cache stays bounded: 20000 invented 2 KB names leave no more than a few MB behind', () => {
    // V8's collector is made callable for this test, so the heap is measured without garbage in it.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const route: CgiRoute = { documentRoot: '/r', prefix: '', script: '/i.php', pathInfo: '', serverName: 's', serverSoftware: 'T' };
    const request: CgiRequest = { method: 'GET', target: '/', query: '', httpVersion: '1.1', rawHeaders: [], remoteAddress: '::1', remotePort: 1, localAddress: '::1', localPort: 2, tls: false, contentLength: null };
    const pad = 'n'.repeat(2048);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 20_000; i++) {
      const name = `X-${i}-${pad}`;
      const params = buildCgiEnv({ ...request, rawHeaders: [name, 'v'] }, route);
      assert.equal(params.at(-1)![0], `HTTP_X_${i}_${pad.toUpperCase()}`);
    }
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // Unbounded, the cache would hold 20000 names, lower-cased names and keys: about 120 MB.
    // Bounded at 1024 entries it holds about 6 MB.
    assert.ok(grown < 24 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB`);
  });
});

describe('requestUri under arbitrary targets (fast-check)', () => {
  test('never throws, never keeps a fragment, and keeps an origin-form target (up to "#") exactly', () => {
    fc.assert(
      fc.property(targetArb, (target) => {
        const uri = requestUri(target);
        const cut = target.includes('#') ? target.slice(0, target.indexOf('#')) : target;
        assert.ok(!uri.includes('#'), 'no fragment');
        if (cut.startsWith('/')) assert.equal(uri, cut);
        else if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(cut)) {
          // Absolute-form: the path and query of the URL, starting with "/".
          assert.ok(uri.startsWith('/'), uri);
          assert.ok(cut.endsWith(uri) || `/${cut.slice(cut.length - uri.length + 1)}` === uri, `${uri} is the tail of ${cut}`);
        } else assert.equal(uri, cut, 'anything else is passed as it is (PHP sees what was sent)');
      }),
      { numRuns: 1000 },
    );
  });
});
