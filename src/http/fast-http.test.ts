// parseHead: the fast path takes only heads it can check completely; everything else returns null
// and goes to node:http.

import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import { FAST_BODY_BYTES, parseHead } from './fast-http.js';

const socket = {} as Socket;

test('a plain GET or HEAD: method, target, headers by lower-case name, raw headers as sent', () => {
  const request = parseHead('GET /index.php?a=1&b=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/8 \t\r\nAccept: */*\r\nConnection: Keep-Alive', socket);
  assert.ok(request);
  assert.equal(request.method, 'GET');
  assert.equal(request.url, '/index.php?a=1&b=%20');
  assert.equal(request.httpVersion, '1.1');
  assert.deepEqual({ ...request.headers }, { host: 'example.com', 'user-agent': 'curl/8', accept: '*/*', connection: 'keep-alive' });
  assert.deepEqual(request.rawHeaders, ['Host', 'example.com', 'User-Agent', 'curl/8', 'Accept', '*/*', 'Connection', 'Keep-Alive']);
  assert.equal(request.socket, socket);
  assert.equal(parseHead('HEAD / HTTP/1.1\r\nhost: a', socket)?.method, 'HEAD');
  assert.equal(parseHead('GET / HTTP/1.1\r\nHost: a\r\nX-Empty:', socket)?.headers['x-empty'], '');
  assert.equal(parseHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: close', socket)?.headers.connection, 'close');
});

test('POST, PUT, PATCH and DELETE with a Content-Length of digits only, or none', () => {
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    const request = parseHead(`${method} /form.php HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 12`, socket);
    assert.equal(request?.method, method);
    assert.equal(request?.contentLength, 12);
    assert.equal(request?.fastBody, null, 'the connection cuts the body from its bytes');
  }
  assert.equal(parseHead('POST / HTTP/1.1\r\nHost: a', socket)?.contentLength, 0, 'no Content-Length: no body');
  assert.equal(parseHead('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0', socket)?.contentLength, 0);
  assert.equal(parseHead(`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${FAST_BODY_BYTES}`, socket)?.contentLength, FAST_BODY_BYTES);
  assert.equal(parseHead('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10485760', socket)?.contentLength, 10_485_760, 'a larger body streams in (FastBody)');
  assert.equal(parseHead('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999', socket)?.contentLength, 999_999_999_999_999, '15 digits: the proxy answers 413');
});

test('anything else is left to node:http', () => {
  const refused: Array<[string, string]> = [
    ['OPTIONS', 'OPTIONS * HTTP/1.1\r\nHost: a'],
    ['OPTIONS with a path', 'OPTIONS / HTTP/1.1\r\nHost: a'],
    ['CONNECT', 'CONNECT a:443 HTTP/1.1\r\nHost: a'],
    ['a WebDAV method', 'PROPFIND / HTTP/1.1\r\nHost: a'],
    ['a Content-Length with a sign', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5'],
    ['a Content-Length list', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5'],
    ['two Content-Lengths', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5'],
    ['an empty Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length:'],
    ['a Content-Length of 16 digits', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000'],
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked'],
    ['a chunked POST', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked'],
    ['a POST with Expect', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue'],
    ['Content-Length on HEAD', 'HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 0'],
    ['a lower-case method', 'get / HTTP/1.1\r\nHost: a'],
    ['HTTP/1.0', 'GET / HTTP/1.0\r\nHost: a'],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: a'],
    ['no version', 'GET /\r\nHost: a'],
    ['two spaces', 'GET  / HTTP/1.1\r\nHost: a'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: a'],
    ['an absolute-form target', 'GET http://a/ HTTP/1.1\r\nHost: a'],
    ['a control character in the target', 'GET /a\x01 HTTP/1.1\r\nHost: a'],
    ['a byte above ASCII in the target', 'GET /caf\xe9 HTTP/1.1\r\nHost: a'],
    ['no Host', 'GET / HTTP/1.1\r\nAccept: */*'],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b'],
    ['two Hosts in other cases', 'GET / HTTP/1.1\r\nHost: a\r\nhOST: b'],
    ['a repeated header', 'GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\nCookie: y=2'],
    ['Content-Length', 'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0'],
    ['Transfer-Encoding', 'GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked'],
    ['Upgrade', 'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade'],
    ['Expect', 'GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue'],
    ['a Connection list', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-hop'],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost : a'],
    ['no colon', 'GET / HTTP/1.1\r\nHost: a\r\nBroken'],
    ['an empty name', 'GET / HTTP/1.1\r\nHost: a\r\n: x'],
    ['a name with a separator', 'GET / HTTP/1.1\r\nHost: a\r\nX(y): z'],
    ['a folded line', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c'],
    ['a bare LF', 'GET / HTTP/1.1\r\nHost: a\nX-A: b'],
    ['a bare CR in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc'],
    ['a NUL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c'],
    ['DEL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc'],
    ['Latin-1 in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9'],
    ['a header named like a prototype property', 'GET / HTTP/1.1\r\nHost: a\r\n__proto__: x'],
    ['a header named constructor', 'GET / HTTP/1.1\r\nHost: a\r\nConstructor: x'],
    ['too many headers', `GET / HTTP/1.1\r\nHost: a${Array.from({ length: 70 }, (_, i) => `\r\nX-${i}: v`).join('')}`],
  ];
  for (const [name, head] of refused) assert.equal(parseHead(head, socket), null, name);
});
