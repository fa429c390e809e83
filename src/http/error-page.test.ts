// Tests for error responses: Accept negotiation, the JSON and HTML bodies, Retry-After on 503, HEAD
// without a body, a cut connection once headers are out, and the error-to-status sentences.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CgiHeadError } from '../cgi/response.js';
import { FastCGIAbortError, FastCGIConnectionError, FastCGIProtocolError, FastCGITimeoutError, PoolUnavailableError } from '../errors.js';
import { describeFailure, RETRY_AFTER_SECONDS, sendError, wantsJson } from './error-page.js';

describe('wantsJson', () => {
  const rows: Array<[accept: string | undefined, want: boolean]> = [
    [undefined, false],
    ['', false],
    ['*/*', false],
    ['text/html', false],
    ['text/plain', false],
    ['application/*', false],
    ['application/json', true],
    ['APPLICATION/JSON', true],
    ['application/json; charset=utf-8', true],
    ['application/problem+json', true],
    ['application/vnd.api+json', true],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8', false],
    ['application/json, text/plain, */*', true],
    ['text/html, application/json', true],
    ['application/json;q=0.5, text/html', false],
    ['text/html;q=0.5, application/json', true],
    ['application/json;q=0', false],
    ['application/json;q=0.001', true],
    ['application/json;q=nope', false],
    ['application/json;level=1;q=0.4, text/html;q=0.3', true],
    // Regression: whitespace before ";" (allowed OWS) made the type "application/json ".
    ['application/json ; q=0.9', true],
    ['text/html ;q=1, application/json ;q=0.1', false],
  ];
  for (const [accept, want] of rows) test(`${JSON.stringify(accept)} -> ${want}`, () => assert.equal(wantsJson(accept), want));
});

describe('describeFailure', () => {
  const rows: Array<{ name: string; error: unknown; status: number; code: string | undefined; message: RegExp }> = [
    { name: 'a full pool queue', error: new PoolUnavailableError('POOL_QUEUE_FULL', 'pool blog: queue full (256 waiting)'), status: 503, code: 'POOL_QUEUE_FULL', message: /busy; please retry/ },
    { name: 'a pool in a crash loop', error: new PoolUnavailableError('POOL_CRASH_LOOP', 'pool blog: workers keep crashing'), status: 503, code: 'POOL_CRASH_LOOP', message: /^The application is temporarily unavailable; please retry shortly\.$/ },
    { name: 'a read timeout', error: new FastCGITimeoutError('FCGI_READ_TIMEOUT', 'no data for 30000 ms'), status: 504, code: 'FCGI_READ_TIMEOUT', message: /did not answer in time/ },
    { name: 'a refused connection', error: new FastCGIConnectionError('FCGI_CONNECT_REFUSED', 'ECONNREFUSED'), status: 502, code: 'FCGI_CONNECT_REFUSED', message: /failed to produce a response/ },
    { name: 'params too large', error: new FastCGIProtocolError('FCGI_PARAMS_TOO_LARGE', 'too big'), status: 431, code: 'FCGI_PARAMS_TOO_LARGE', message: /headers are too large/ },
    { name: 'an aborted request', error: new FastCGIAbortError(), status: 499, code: 'FCGI_REQUEST_ABORTED', message: /failed to handle/ },
    // Regression: a broken CGI head from PHP was a 500 (our fault) instead of a 502 (the upstream's).
    { name: 'a malformed CGI head from PHP', error: new CgiHeadError('PHP sent a malformed header line'), status: 502, code: 'CGI_BAD_HEAD', message: /failed to produce a response/ },
    { name: 'an unknown error', error: new Error('boom'), status: 500, code: undefined, message: /^The server failed to handle the request\.$/ },
    { name: 'a thrown string', error: 'boom', status: 500, code: undefined, message: /failed to handle/ },
  ];
  for (const row of rows) {
    test(`${row.name} -> ${row.status}`, () => {
      const failure = describeFailure(row.error);
      assert.equal(failure.status, row.status);
      assert.equal(failure.code, row.code);
      assert.match(failure.message, row.message);
    });
  }
  test('the client sentence never carries the internal message', () => {
    assert.doesNotMatch(describeFailure(new FastCGIConnectionError('FCGI_CONNECT_REFUSED', 'connect ECONNREFUSED /run/secret.sock')).message, /secret/);
  });
});

describe('sendError', () => {
  let server: http.Server;
  let port: number;

  before(async () => {
    // /STATUS?detail=...&code=...&partial sends that error; "partial" sends headers first.
    server = http.createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://x');
      const send = () => sendError(request, response, Number(url.pathname.slice(1)), url.searchParams.get('detail') ?? undefined, url.searchParams.get('code') ?? undefined);
      if (url.searchParams.has('partial')) {
        response.writeHead(200, { 'Content-Length': '100' });
        // Only once the first bytes are on the wire, so the client sees them before the cut.
        response.write('partial', send);
        return;
      }
      send();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
    complete: boolean;
  }

  function ask(path: string, options: { method?: string; accept?: string } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const headers = options.accept ? { Accept: options.accept } : {};
      const request = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('close', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body, complete: response.complete }));
      });
      request.on('error', reject);
      request.end();
    });
  }

  test('HTML by default, with the status, title and detail', async () => {
    const reply = await ask('/404?detail=No%20such%20page.');
    assert.equal(reply.status, 404);
    assert.equal(reply.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(reply.headers['cache-control'], 'no-store');
    assert.equal(reply.headers['x-content-type-options'], 'nosniff');
    assert.equal(reply.headers['content-length'], String(Buffer.byteLength(reply.body)));
    assert.match(reply.body, /<title>404 Not Found<\/title>/);
    assert.match(reply.body, /<p>No such page\.<\/p>/);
    assert.equal(reply.headers['retry-after'], undefined);
  });

  test('the detail is HTML-escaped', async () => {
    const reply = await ask(`/400?detail=${encodeURIComponent('<script>alert("x")</script>&')}`);
    assert.doesNotMatch(reply.body, /<script>/);
    assert.match(reply.body, /&#60;script&#62;alert\(&#34;x&#34;\)&#60;\/script&#62;&#38;/);
  });

  test('the title is the detail when none is given', async () => {
    const reply = await ask('/502');
    assert.match(reply.body, /<h1>502 Bad Gateway<\/h1><p>Bad Gateway<\/p>/);
  });

  test('JSON for an API client: {"error": {status, title, message, code}}', async () => {
    const reply = await ask('/503?detail=Busy.&code=POOL_QUEUE_FULL', { accept: 'application/json' });
    assert.equal(reply.status, 503);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.body, '{"error":{"status":503,"title":"Service Unavailable","message":"Busy.","code":"POOL_QUEUE_FULL"}}\n');
    assert.deepEqual(JSON.parse(reply.body), { error: { status: 503, title: 'Service Unavailable', message: 'Busy.', code: 'POOL_QUEUE_FULL' } });
  });

  test('JSON without a code leaves the key out', async () => {
    const reply = await ask('/404', { accept: 'application/json' });
    assert.deepEqual(JSON.parse(reply.body), { error: { status: 404, title: 'Not Found', message: 'Not Found' } });
  });

  test('503 carries Retry-After', async () => {
    const reply = await ask('/503');
    assert.equal(reply.headers['retry-after'], String(RETRY_AFTER_SECONDS));
  });

  test('an unknown status gets the title "Error"', async () => {
    const reply = await ask('/599', { accept: 'application/json' });
    assert.equal(reply.status, 599);
    assert.equal(JSON.parse(reply.body).error.title, 'Error');
  });

  test('HEAD has the headers of GET and no body', async () => {
    const get = await ask('/503?detail=Busy.');
    const head = await ask('/503?detail=Busy.', { method: 'HEAD' });
    assert.equal(head.status, 503);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], get.headers['content-length']);
    assert.equal(head.headers['retry-after'], String(RETRY_AFTER_SECONDS));
  });

  test('once headers are out, the connection is cut so the client sees a truncated response', async () => {
    const reply = await ask('/502?partial');
    assert.equal(reply.status, 200);
    assert.equal(reply.complete, false);
    assert.equal(reply.body, 'partial');
  });
});
