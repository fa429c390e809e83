// Tests for the CGI environment: one table row per variable, then the security regressions named
// after the CVE or bug class they pin (httpoxy, header-name collisions, Host junk, reserved names).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildCgiEnv, hostName, requestUri, type CgiParams, type CgiRequest, type CgiRoute } from './env.js';

const REQUEST: CgiRequest = {
  method: 'GET',
  target: '/blog/index.php?a=1',
  query: 'a=1',
  httpVersion: '1.1',
  rawHeaders: ['Host', 'example.com'],
  remoteAddress: '203.0.113.7',
  remotePort: 51234,
  localAddress: '127.0.0.1',
  localPort: 8080,
  tls: false,
  contentLength: null,
};

const ROUTE: CgiRoute = {
  documentRoot: '/srv/blog/public',
  prefix: '/blog',
  script: '/index.php',
  pathInfo: '',
  serverName: 'fallback.test',
  serverSoftware: 'TQServer/0.1.0',
};

/** The params as a map, after checking that no name appears twice (PHP would keep only one). */
function envOf(request: Partial<CgiRequest> = {}, route: Partial<CgiRoute> = {}): Map<string, string | Buffer> {
  const params: CgiParams = buildCgiEnv({ ...REQUEST, ...request }, { ...ROUTE, ...route });
  const map = new Map<string, string | Buffer>();
  for (const [name, value] of params) {
    assert.ok(!map.has(name), `${name} appears twice`);
    map.set(name, value);
  }
  return map;
}

/** A latin1 string as Node's parser hands over raw header bytes. */
function latin1(bytes: number[]): string {
  return Buffer.from(bytes).toString('latin1');
}

type Want = string | Buffer | undefined;

interface Row {
  name: string;
  request?: Partial<CgiRequest>;
  route?: Partial<CgiRoute>;
  want: Record<string, Want>;
}

function check(rows: readonly Row[]): void {
  for (const row of rows) {
    test(row.name, () => {
      const env = envOf(row.request, row.route);
      for (const [key, want] of Object.entries(row.want)) {
        const got = env.get(key);
        if (want === undefined) assert.equal(got, undefined, `${key} must be absent`);
        else if (Buffer.isBuffer(want)) {
          assert.ok(Buffer.isBuffer(got), `${key} must be a Buffer, got ${typeof got}`);
          assert.equal(got.toString('hex'), want.toString('hex'), key);
        } else assert.equal(got, want, key);
      }
    });
  }
}

describe('one row per CGI variable', () => {
  check([
    { name: 'GATEWAY_INTERFACE is CGI/1.1', want: { GATEWAY_INTERFACE: 'CGI/1.1' } },
    { name: 'SERVER_SOFTWARE comes from the route', want: { SERVER_SOFTWARE: 'TQServer/0.1.0' } },
    { name: 'SERVER_PROTOCOL HTTP/1.1', want: { SERVER_PROTOCOL: 'HTTP/1.1' } },
    { name: 'SERVER_PROTOCOL HTTP/1.0', request: { httpVersion: '1.0' }, want: { SERVER_PROTOCOL: 'HTTP/1.0' } },
    { name: 'SERVER_NAME from the Host header', want: { SERVER_NAME: 'example.com' } },
    { name: 'SERVER_NAME without the Host port', request: { rawHeaders: ['Host', 'example.com:8080'] }, want: { SERVER_NAME: 'example.com' } },
    { name: 'SERVER_NAME lower-cased', request: { rawHeaders: ['host', 'Example.COM'] }, want: { SERVER_NAME: 'example.com' } },
    { name: 'SERVER_NAME for an IPv6 Host', request: { rawHeaders: ['Host', '[::1]:8080'] }, want: { SERVER_NAME: '[::1]' } },
    { name: 'SERVER_NAME falls back without a Host header', request: { rawHeaders: [] }, want: { SERVER_NAME: 'fallback.test' } },
    { name: 'SERVER_NAME falls back for an empty Host header', request: { rawHeaders: ['Host', ''] }, want: { SERVER_NAME: 'fallback.test' } },
    { name: 'SERVER_ADDR and SERVER_PORT from the local socket', want: { SERVER_ADDR: '127.0.0.1', SERVER_PORT: '8080' } },
    { name: 'SERVER_ADDR for an IPv6 listener', request: { localAddress: '::1', localPort: 443 }, want: { SERVER_ADDR: '::1', SERVER_PORT: '443' } },
    { name: 'REQUEST_SCHEME http without TLS', want: { REQUEST_SCHEME: 'http' } },
    { name: 'REQUEST_SCHEME https under TLS', request: { tls: true }, want: { REQUEST_SCHEME: 'https' } },
    { name: 'REQUEST_METHOD as sent', request: { method: 'PATCH' }, want: { REQUEST_METHOD: 'PATCH' } },
    { name: 'REQUEST_URI exactly as sent, escapes and all', request: { target: '/blog/a%20b/../c.php?x=%2F&y' }, want: { REQUEST_URI: '/blog/a%20b/../c.php?x=%2F&y' } },
    { name: 'REQUEST_URI from an absolute-form target is origin-form', request: { target: 'http://example.com/blog/?q=1' }, want: { REQUEST_URI: '/blog/?q=1' } },
    { name: 'REQUEST_URI from an absolute-form target without a path is /', request: { target: 'https://example.com' }, want: { REQUEST_URI: '/' } },
    { name: 'REQUEST_URI without a fragment (not part of a request-target, RFC 9112 3.2)', request: { target: '/a.php?x#frag' }, want: { REQUEST_URI: '/a.php?x' } },
    { name: 'QUERY_STRING raw, not decoded', request: { query: 'a=%26b&c=d+e' }, want: { QUERY_STRING: 'a=%26b&c=d+e' } },
    { name: 'QUERY_STRING empty without a query', request: { query: '' }, want: { QUERY_STRING: '' } },
    { name: 'DOCUMENT_ROOT is the app document root', want: { DOCUMENT_ROOT: '/srv/blog/public' } },
    { name: 'DOCUMENT_URI is the prefixed script plus PATH_INFO', route: { pathInfo: '/x/y' }, want: { DOCUMENT_URI: '/blog/index.php/x/y' } },
    { name: 'SCRIPT_FILENAME joins the root and the script, not the prefix', route: { script: '/sub/page.php' }, want: { SCRIPT_FILENAME: '/srv/blog/public/sub/page.php' } },
    { name: 'SCRIPT_NAME under an app prefix', want: { SCRIPT_NAME: '/blog/index.php' } },
    { name: 'SCRIPT_NAME for an app at the site root', route: { prefix: '' }, want: { SCRIPT_NAME: '/index.php', DOCUMENT_URI: '/index.php' } },
    { name: 'PATH_INFO decoded, as the route gives it', route: { pathInfo: '/a b/ü' }, want: { PATH_INFO: '/a b/ü' } },
    { name: 'PATH_INFO empty without one', want: { PATH_INFO: '' } },
    { name: 'PATH_TRANSLATED only with PATH_INFO (RFC 3875 4.1.6)', route: { pathInfo: '/x' }, want: { PATH_TRANSLATED: '/srv/blog/public/x' } },
    { name: 'PATH_TRANSLATED absent without PATH_INFO', want: { PATH_TRANSLATED: undefined } },
    { name: 'REMOTE_ADDR and REMOTE_PORT from the peer', want: { REMOTE_ADDR: '203.0.113.7', REMOTE_PORT: '51234' } },
    { name: 'CONTENT_TYPE from the header', request: { rawHeaders: ['Content-Type', 'application/json'] }, want: { CONTENT_TYPE: 'application/json' } },
    { name: 'CONTENT_TYPE empty without the header', want: { CONTENT_TYPE: '' } },
    { name: 'CONTENT_TYPE is the first of two, like request.headers', request: { rawHeaders: ['Content-Type', 'text/plain', 'content-type', 'text/html'] }, want: { CONTENT_TYPE: 'text/plain' } },
    { name: 'CONTENT_LENGTH empty for a request without a body', want: { CONTENT_LENGTH: '' } },
    { name: 'CONTENT_LENGTH set for a body', request: { contentLength: 42 }, want: { CONTENT_LENGTH: '42' } },
    { name: 'CONTENT_LENGTH 0 for an empty body', request: { contentLength: 0 }, want: { CONTENT_LENGTH: '0' } },
    { name: 'REDIRECT_STATUS 200 (php-cgi cgi.force_redirect)', want: { REDIRECT_STATUS: '200' } },
    { name: 'HTTPS=on under TLS', request: { tls: true }, want: { HTTPS: 'on' } },
    { name: 'HTTPS absent without TLS', want: { HTTPS: undefined } },
  ]);
});

describe('request headers as HTTP_*', () => {
  check([
    { name: 'a header becomes HTTP_ with dashes as underscores', request: { rawHeaders: ['X-Request-Id', 'abc'] }, want: { HTTP_X_REQUEST_ID: 'abc' } },
    { name: 'HTTP_HOST as sent', request: { rawHeaders: ['Host', 'Example.com:8080'] }, want: { HTTP_HOST: 'Example.com:8080' } },
    {
      name: 'repeated headers joined with ", " in order',
      request: { rawHeaders: ['Accept', 'text/html', 'X-A', '1', 'accept', 'application/json'] },
      want: { HTTP_ACCEPT: 'text/html, application/json', HTTP_X_A: '1' },
    },
    { name: 'repeated Cookie headers joined with "; " (RFC 9113 8.2.3)', request: { rawHeaders: ['Cookie', 'a=1', 'Cookie', 'b=2; c=3'] }, want: { HTTP_COOKIE: 'a=1; b=2; c=3' } },
    { name: 'an empty header value is kept', request: { rawHeaders: ['X-Empty', ''] }, want: { HTTP_X_EMPTY: '' } },
    {
      name: 'non-ASCII header bytes are passed exactly, as a Buffer',
      request: { rawHeaders: ['X-Name', latin1([0x63, 0x61, 0x66, 0xc3, 0xa9, 0xff])] },
      want: { HTTP_X_NAME: Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0xff]) },
    },
    {
      name: 'non-ASCII bytes in a repeated header survive the join',
      request: { rawHeaders: ['X-N', latin1([0xe9]), 'X-N', latin1([0xc3, 0xa0])] },
      want: { HTTP_X_N: Buffer.from([0xe9, 0x2c, 0x20, 0xc3, 0xa0]) },
    },
    { name: 'non-ASCII bytes in Content-Type are passed exactly', request: { rawHeaders: ['Content-Type', latin1([0x74, 0xe9])] }, want: { CONTENT_TYPE: Buffer.from([0x74, 0xe9]) } },
    { name: 'non-ASCII bytes in REQUEST_URI and QUERY_STRING are passed exactly', request: { target: latin1([0x2f, 0xe9, 0x3f, 0xe8]), query: latin1([0xe8]) }, want: { REQUEST_URI: Buffer.from([0x2f, 0xe9, 0x3f, 0xe8]), QUERY_STRING: Buffer.from([0xe8]) } },
  ]);

  test('variables come in a stable order: those of the script, the connection and the request, then HTTP_*, then extras', () => {
    const names = buildCgiEnv({ ...REQUEST, rawHeaders: ['Host', 'a', 'X-B', '1'], tls: true }, { ...ROUTE, pathInfo: '/p', extra: { TQ_ID: '7' } }).map(([name]) => name);
    assert.deepEqual(names, [
      'GATEWAY_INTERFACE', 'SERVER_SOFTWARE', 'DOCUMENT_ROOT', 'DOCUMENT_URI', 'SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO',
      'PATH_TRANSLATED', 'REDIRECT_STATUS', 'SERVER_ADDR', 'SERVER_PORT', 'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_PROTOCOL',
      'SERVER_NAME', 'REQUEST_SCHEME', 'HTTPS', 'REQUEST_METHOD', 'REQUEST_URI', 'QUERY_STRING', 'CONTENT_TYPE', 'CONTENT_LENGTH',
      'HTTP_HOST', 'HTTP_X_B', 'TQ_ID',
    ]);
  });
});

describe('security regressions', () => {
  check([
    // httpoxy (CVE-2016-5385): PHP HTTP clients read HTTP_PROXY as their proxy.
    { name: 'httpoxy CVE-2016-5385: a Proxy header never becomes HTTP_PROXY', request: { rawHeaders: ['Proxy', 'http://evil:8080'] }, want: { HTTP_PROXY: undefined } },
    { name: 'httpoxy CVE-2016-5385: in any casing', request: { rawHeaders: ['pRoXy', 'http://evil:8080', 'PROXY', 'http://evil'] }, want: { HTTP_PROXY: undefined } },
    { name: 'httpoxy: Proxy-Authorization is a different header and passes', request: { rawHeaders: ['Proxy-Authorization', 'Basic x'] }, want: { HTTP_PROXY_AUTHORIZATION: 'Basic x' } },
    // Caddy's replacer maps both X_Forwarded_For and X-Forwarded-For to HTTP_X_FORWARDED_FOR.
    {
      name: 'underscore header collision: X_Forwarded_For cannot pose as X-Forwarded-For',
      request: { rawHeaders: ['X_Forwarded_For', '127.0.0.1', 'X-Forwarded-For', '203.0.113.9'] },
      want: { HTTP_X_FORWARDED_FOR: '203.0.113.9' },
    },
    { name: 'underscore header collision: a lone underscore header is dropped', request: { rawHeaders: ['X_Real_IP', '127.0.0.1'] }, want: { HTTP_X_REAL_IP: undefined } },
    { name: 'Content-Length never becomes HTTP_CONTENT_LENGTH', request: { rawHeaders: ['Content-Length', '5'], contentLength: 5 }, want: { HTTP_CONTENT_LENGTH: undefined, CONTENT_LENGTH: '5' } },
    { name: 'Content-Type never becomes HTTP_CONTENT_TYPE', request: { rawHeaders: ['Content-Type', 'text/plain'] }, want: { HTTP_CONTENT_TYPE: undefined } },
    { name: 'Transfer-Encoding never becomes HTTP_TRANSFER_ENCODING', request: { rawHeaders: ['Transfer-Encoding', 'chunked'] }, want: { HTTP_TRANSFER_ENCODING: undefined } },
    {
      name: 'CONTENT_LENGTH comes from the body PHP reads, never from the header',
      request: { rawHeaders: ['Content-Length', '999999'], contentLength: 3 },
      want: { CONTENT_LENGTH: '3' },
    },
    { name: 'header names with other non-token-ish characters are dropped', request: { rawHeaders: ['X.Dot', '1', 'X~Tilde', '2'] }, want: { HTTP_X_DOT: undefined, HTTP_X_TILDE: undefined } },
    {
      name: 'extra cannot override reserved variables',
      route: { extra: { SCRIPT_FILENAME: '/etc/passwd', DOCUMENT_ROOT: '/', REMOTE_ADDR: '127.0.0.1', HTTPS: 'on', REDIRECT_STATUS: '302' } },
      want: { SCRIPT_FILENAME: '/srv/blog/public/index.php', DOCUMENT_ROOT: '/srv/blog/public', REMOTE_ADDR: '203.0.113.7', HTTPS: undefined, REDIRECT_STATUS: '200' },
    },
    { name: 'extra cannot set HTTP_* variables', route: { extra: { HTTP_HOST: 'evil', HTTP_PROXY: 'http://evil' } }, want: { HTTP_HOST: 'example.com', HTTP_PROXY: undefined } },
    { name: 'extra cannot set php-fpm ini overrides (PHP_VALUE, PHP_ADMIN_VALUE)', route: { extra: { PHP_VALUE: 'auto_prepend_file=php://input', PHP_ADMIN_VALUE: 'x=1' } }, want: { PHP_VALUE: undefined, PHP_ADMIN_VALUE: undefined } },
    { name: 'extra cannot sneak in a reserved name in another case', route: { extra: { script_filename: '/etc/passwd', Php_Value: 'x=1' } }, want: { script_filename: undefined, Php_Value: undefined } },
    { name: 'extra names that are not environment names are left out', route: { extra: { 'A=B': '1', '': '2', 'X Y': '3' } }, want: { 'A=B': undefined, '': undefined, 'X Y': undefined } },
    { name: 'extra sets its own variables', route: { extra: { TQSERVER_REQUEST_ID: 'r-1' } }, want: { TQSERVER_REQUEST_ID: 'r-1' } },
    { name: 'Host with spaces is not SERVER_NAME', request: { rawHeaders: ['Host', 'a b'] }, want: { SERVER_NAME: 'fallback.test', HTTP_HOST: 'a b' } },
    { name: 'Host with CRLF is not SERVER_NAME', request: { rawHeaders: ['Host', 'a.com\r\nX-Evil: 1'] }, want: { SERVER_NAME: 'fallback.test' } },
    { name: 'Host with userinfo (@) is not SERVER_NAME', request: { rawHeaders: ['Host', 'evil.com@good.com'] }, want: { SERVER_NAME: 'fallback.test' } },
    { name: 'Host with a path (/) is not SERVER_NAME', request: { rawHeaders: ['Host', 'good.com/../evil'] }, want: { SERVER_NAME: 'fallback.test' } },
    {
      name: 'a second Host header cannot reach HTTP_HOST or SERVER_NAME (RFC 9112 3.2)',
      request: { rawHeaders: ['Host', 'good.com', 'Host', 'evil.com'] },
      want: { SERVER_NAME: 'good.com', HTTP_HOST: 'good.com' },
    },
  ]);
});

describe('hostName', () => {
  const rows: Array<[input: string | undefined, want: string | null]> = [
    ['example.com', 'example.com'],
    ['EXAMPLE.com', 'example.com'],
    ['example.com:80', 'example.com'],
    ['127.0.0.1:8080', '127.0.0.1'],
    ['localhost', 'localhost'],
    ['[::1]', '[::1]'],
    ['[2001:db8::1]:443', '[2001:db8::1]'],
    [' example.com ', 'example.com'],
    [undefined, null],
    ['', null],
    ['a b', null],
    ['a.com\r\nx', null],
    ['user@a.com', null],
    ['a.com/x', null],
    ['a.com:', null],
    ['a.com:http', null],
    ['a.com:123456', null],
    ['a.com:80:80', null],
    ['-a.com', null],
    ['a..com', null],
    ['a.com.', null],
    ['a_b.com', null],
    ['[::1', null],
    ['[::1]junk', null],
    ['[::1]/x', null],
    ['[::1]:', null],
    ['[evil.com]', null],
    ['é.com', null],
    [`${'a'.repeat(64)}.com`, null],
  ];
  for (const [input, want] of rows) {
    test(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => assert.equal(hostName(input), want));
  }
});

describe('requestUri', () => {
  const rows: Array<[input: string, want: string]> = [
    ['/', '/'],
    ['/a/b?c=d', '/a/b?c=d'],
    ['/a/../b', '/a/../b'],
    ['//double', '//double'],
    ['http://h/p?q', '/p?q'],
    ['HTTP://h:8080/p', '/p'],
    ['http://h', '/'],
    ['http://h?q=1', '/?q=1'],
    ['/x#y', '/x'],
    ['*', '*'],
  ];
  for (const [input, want] of rows) {
    test(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => assert.equal(requestUri(input), want));
  }
});
