// FastCGIServer against real web-server peers: libfcgi's cgi-fcgi, and nginx 1.22 with fastcgi_pass
// over TCP and a unix socket, with upstream keep-alive and without.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FastCGIServer, formatAddress, type Address, type FastCGIHandler, type FastCGIServerRequest, type ServerOptions } from '../src/fastcgi/index.js';
import { parseCgiResponse, runCgiFcgi, startNginx, tempDir, type Peer } from './helpers/peers.js';
import { until } from './helpers/raw-fcgi.js';

/** What the test application saw of one request. */
interface Seen {
  requestId: number;
  keepConn: boolean;
  params: Record<string, string>;
  bodyBytes: number;
  bodySha256: string;
}

/** Requests of the 'hold' route, which run until their signal fires. */
const held: FastCGIServerRequest[] = [];

const STREAM_CHUNK = Buffer.alloc(64 * 1024, 0).map((_, i) => (i * 7 + 13) & 0xff);

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The expected digest of `bytes` bytes of STREAM_CHUNK repeated. */
function streamSha256(bytes: number): string {
  const hash = createHash('sha256');
  for (let sent = 0; sent < bytes; sent += STREAM_CHUNK.length) hash.update(STREAM_CHUNK.subarray(0, Math.min(STREAM_CHUNK.length, bytes - sent)));
  return hash.digest('hex');
}

/** The application behind every peer: routes on the last path segment of DOCUMENT_URI (or SCRIPT_NAME). */
function application(seen: Seen[]): FastCGIHandler {
  return async (request, response) => {
    const path = request.params.get('DOCUMENT_URI') || request.params.get('SCRIPT_NAME') || '';
    const route = path.slice(path.lastIndexOf('/') + 1);
    const hash = createHash('sha256');
    let bodyBytes = 0;
    for await (const chunk of request.stdin) {
      hash.update(chunk as Buffer);
      bodyBytes += (chunk as Buffer).length;
    }
    const record: Seen = {
      requestId: request.requestId,
      keepConn: request.keepConn,
      params: Object.fromEntries(request.params),
      bodyBytes,
      bodySha256: hash.digest('hex'),
    };
    seen.push(record);
    const out = response.stdout;
    switch (route) {
      case 'echo':
        out.write('Content-Type: application/json\r\n\r\n');
        out.write(JSON.stringify(record));
        return;
      case 'stream': {
        const total = Number(request.params.get('QUERY_STRING')!.replace('bytes=', ''));
        out.write(`Content-Type: application/octet-stream\r\nContent-Length: ${total}\r\n\r\n`);
        for (let sent = 0; sent < total; sent += STREAM_CHUNK.length) {
          if (!out.write(STREAM_CHUNK.subarray(0, Math.min(STREAM_CHUNK.length, total - sent)))) await once(out, 'drain');
        }
        return;
      }
      case 'headers':
        out.write('Status: 201 Created\r\nContent-Type: text/plain\r\nSet-Cookie: first=1; Path=/\r\nSet-Cookie: second=2; HttpOnly\r\n');
        out.write('X-Powered-By: TQServer\r\n\r\ncreated\n');
        return;
      case 'status':
        out.write('Content-Type: text/plain\r\n\r\n');
        response.end(Number(request.params.get('APP_STATUS') ?? 0));
        return;
      case 'throw':
        throw new Error('the application failed');
      case 'hold':
        held.push(request);
        await new Promise((resolve) => request.signal.addEventListener('abort', resolve));
        return;
      default:
        out.write(`Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno route ${route}\n`);
    }
  };
}

interface Variant {
  name: string;
  transport: 'tcp' | 'unix';
  keepAlive: boolean;
  server: FastCGIServer;
  seen: Seen[];
}

const cleanups: Array<() => Promise<void>> = [];
let socketDir = '';

async function startServer(listen: Address | string, options: ServerOptions = {}): Promise<{ server: FastCGIServer; seen: Seen[]; address: Address }> {
  const seen: Seen[] = [];
  const server = new FastCGIServer(application(seen), options);
  server.on('handlerError', () => {}); // the 'throw' route fails on purpose
  const address = await server.listen(listen);
  cleanups.unshift(() => server.close(1000));
  return { server, seen, address };
}

after(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

before(async () => {
  const dir = await tempDir('tqserver-server-peers-');
  socketDir = dir.path;
  cleanups.push(dir.cleanup);
});

describe('FastCGIServer with cgi-fcgi (libfcgi) as the web server', () => {
  for (const transport of ['tcp', 'unix'] as const) {
    test(`params and a POST body arrive over ${transport}; the CGI response and appStatus come back`, async () => {
      const { seen, address } = await startServer(transport === 'tcp' ? { host: '127.0.0.1', port: 0 } : join(socketDir, 'cgi-fcgi.sock'));
      const body = randomBytes(200_000);
      const env = {
        REQUEST_METHOD: 'POST',
        CONTENT_LENGTH: String(body.length),
        CONTENT_TYPE: 'application/octet-stream',
        DOCUMENT_URI: '/cgi/echo',
        QUERY_STRING: 'a=1&b=two',
        HTTP_X_UNICODE: 'héllo ✓',
        EMPTY_VALUE: '',
      };
      const result = await runCgiFcgi(address, env, body);
      assert.equal(result.code, 0, `cgi-fcgi failed: ${result.stderr}`);
      const { headers, body: json } = parseCgiResponse(result.stdout);
      assert.equal(headers.get('content-type'), 'application/json');
      const answer = JSON.parse(json.toString()) as Seen;
      // cgi-fcgi sends its whole environment as params, request id 1, no FCGI_KEEP_CONN.
      assert.deepEqual(answer.params, env);
      assert.equal(answer.requestId, 1);
      assert.equal(answer.keepConn, false);
      assert.equal(answer.bodyBytes, body.length);
      assert.equal(answer.bodySha256, sha256(body));
      assert.equal(seen.length, 1);

      // cgi-fcgi exits with the appStatus of END_REQUEST.
      const status = await runCgiFcgi(address, { DOCUMENT_URI: '/cgi/status', APP_STATUS: '7' });
      assert.equal(status.code, 7);
    });
  }
});

interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function http(port: number, path: string, options: { method?: string; body?: Buffer; headers?: Record<string, string> } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...options.headers };
    if (options.body !== undefined) headers['content-length'] = options.body.length;
    const request = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
    });
    request.on('error', reject);
    request.setTimeout(20_000, () => request.destroy(new Error(`no answer from nginx for ${path} within 20 s`)));
    request.end(options.body);
  });
}

const FASTCGI_PARAMS = [
  'fastcgi_param QUERY_STRING $query_string;',
  'fastcgi_param REQUEST_METHOD $request_method;',
  'fastcgi_param CONTENT_TYPE $content_type;',
  'fastcgi_param CONTENT_LENGTH $content_length;',
  'fastcgi_param SCRIPT_NAME $fastcgi_script_name;',
  'fastcgi_param REQUEST_URI $request_uri;',
  'fastcgi_param DOCUMENT_URI $document_uri;',
  'fastcgi_param SERVER_PROTOCOL $server_protocol;',
  'fastcgi_param GATEWAY_INTERFACE CGI/1.1;',
  'fastcgi_param REMOTE_ADDR $remote_addr;',
  'fastcgi_param SERVER_PORT $server_port;',
].join(' ');

describe('FastCGIServer behind nginx (fastcgi_pass)', () => {
  const variants: Variant[] = [];
  let nginx: Peer & { port: number; dir: string };
  let limited: FastCGIServer;

  before(async () => {
    for (const transport of ['tcp', 'unix'] as const) {
      for (const keepAlive of [true, false]) {
        const name = `${transport}-${keepAlive ? 'keepalive' : 'plain'}`;
        const { server, seen } = await startServer(transport === 'tcp' ? { host: '127.0.0.1', port: 0 } : join(socketDir, `${name}.sock`));
        variants.push({ name, transport, keepAlive, server, seen });
      }
    }
    limited = (await startServer({ host: '127.0.0.1', port: 0 }, { maxParamsBytes: 2048 })).server;
    const target = (server: FastCGIServer) => formatAddress(server.address!);
    nginx = await startNginx((port) =>
      [
        ...variants
          .filter((v) => v.keepAlive)
          .map((v) => `upstream ${v.name} { server ${target(v.server)}; keepalive 4; }`),
        'server {',
        `  listen 127.0.0.1:${port};`,
        '  client_max_body_size 64m;',
        ...variants.map((v) =>
          v.keepAlive
            ? `  location /${v.name}/ { fastcgi_pass ${v.name}; fastcgi_keep_conn on; ${FASTCGI_PARAMS} }`
            : `  location /${v.name}/ { fastcgi_pass ${target(v.server)}; ${FASTCGI_PARAMS} }`,
        ),
        `  location /limited/ { fastcgi_pass ${target(limited)}; ${FASTCGI_PARAMS} }`,
        '}',
      ].join('\n'),
    );
    cleanups.unshift(() => nginx.stop());
  });

  for (const index of [0, 1, 2, 3]) {
    // Names are known before `before` runs; the variant objects are filled in by it.
    const transport = index < 2 ? 'tcp' : 'unix';
    const keepAlive = index % 2 === 0;
    const name = `${transport}-${keepAlive ? 'keepalive' : 'plain'}`;
    const variant = () => variants.find((v) => v.name === name)!;

    describe(`over ${transport === 'tcp' ? 'TCP' : 'a unix socket'}, ${keepAlive ? 'fastcgi_keep_conn on with upstream keepalive' : 'a connection per request'}`, () => {
      test('GET with a query string: params as nginx builds them', async () => {
        const result = await http(nginx.port, `/${name}/app/echo?a=1&b=%C3%A9&flag`, { headers: { 'X-Test': 'yes', Cookie: 'c=d' } });
        assert.equal(result.status, 200);
        assert.equal(result.headers['content-type'], 'application/json');
        const seen = JSON.parse(result.body.toString()) as Seen;
        assert.equal(seen.params.REQUEST_METHOD, 'GET');
        assert.equal(seen.params.QUERY_STRING, 'a=1&b=%C3%A9&flag');
        assert.equal(seen.params.REQUEST_URI, `/${name}/app/echo?a=1&b=%C3%A9&flag`);
        assert.equal(seen.params.DOCUMENT_URI, `/${name}/app/echo`);
        assert.equal(seen.params.CONTENT_LENGTH, '');
        assert.equal(seen.params.HTTP_X_TEST, 'yes');
        assert.equal(seen.params.HTTP_COOKIE, 'c=d');
        assert.equal(seen.params.REMOTE_ADDR, '127.0.0.1');
        assert.equal(seen.params.SERVER_PORT, String(nginx.port));
        assert.equal(seen.requestId, 1, 'nginx always uses request id 1');
        assert.equal(seen.keepConn, keepAlive, 'FCGI_KEEP_CONN follows fastcgi_keep_conn');
        assert.equal(seen.bodyBytes, 0);
      });

      test('POST bodies: empty, small and 5 MB', async () => {
        for (const body of [Buffer.alloc(0), Buffer.from('name=value&x=%20y'), randomBytes(5 * 1024 * 1024)]) {
          const result = await http(nginx.port, `/${name}/app/echo`, {
            method: 'POST',
            body,
            headers: { 'Content-Type': 'application/octet-stream' },
          });
          assert.equal(result.status, 200);
          const seen = JSON.parse(result.body.toString()) as Seen;
          assert.equal(seen.params.REQUEST_METHOD, 'POST');
          assert.equal(seen.params.CONTENT_LENGTH, String(body.length));
          assert.equal(seen.params.CONTENT_TYPE, 'application/octet-stream');
          assert.equal(seen.bodyBytes, body.length);
          assert.equal(seen.bodySha256, sha256(body));
        }
      });

      test('a multi-MB streamed response reaches the HTTP client intact', async () => {
        const bytes = 8 * 1024 * 1024 + 123;
        const result = await http(nginx.port, `/${name}/app/stream?bytes=${bytes}`);
        assert.equal(result.status, 200);
        assert.equal(result.headers['content-type'], 'application/octet-stream');
        assert.equal(result.body.length, bytes);
        assert.equal(sha256(result.body), streamSha256(bytes));
      });

      test('response headers: Status and two Set-Cookie lines reach the HTTP client', async () => {
        const result = await http(nginx.port, `/${name}/app/headers`);
        assert.equal(result.status, 201);
        assert.deepEqual(result.headers['set-cookie'], ['first=1; Path=/', 'second=2; HttpOnly']);
        assert.equal(result.headers['x-powered-by'], 'TQServer');
        assert.equal(result.body.toString(), 'created\n');
      });

      test('a failing handler becomes a 500 for the HTTP client', async () => {
        const result = await http(nginx.port, `/${name}/app/throw`);
        assert.equal(result.status, 500);
        assert.match(result.body.toString(), /handler failed/);
        // nginx logs the STDERR record as "FastCGI sent in stderr".
        const log = join(nginx.dir, 'error.log');
        await until(() => readFileSync(log, 'utf8').includes('FastCGI sent in stderr: "handler error: the application failed'), 'the stderr line in the nginx log');
      });

      test('an HTTP client that goes away aborts the handler: nginx closes the FastCGI connection (no ABORT_REQUEST)', async () => {
        const { server } = variant();
        const count = held.length;
        const client = httpRequest({ host: '127.0.0.1', port: nginx.port, path: `/${name}/app/hold`, agent: false });
        const failed = once(client, 'error');
        client.end();
        await until(() => held.length > count, 'the request to reach the handler');
        const request = held.at(-1)!;
        assert.equal(request.signal.aborted, false);
        client.destroy();
        await failed;
        await until(() => request.signal.aborted, 'the handler to be aborted');
        assert.match((request.signal.reason as Error).message, /connection to the web server was lost/);
        await until(() => server.activeRequests === 0 && server.connections === 0, 'the aborted connection to be released');
      });

      test(keepAlive ? 'connections are reused: one connection carries many requests' : 'each request gets its own connection, closed after END_REQUEST', async () => {
        const { server, seen } = variant();
        const before = seen.length;
        for (let i = 0; i < 25; i++) {
          const result = await http(nginx.port, `/${name}/app/echo?i=${i}`);
          assert.equal(result.status, 200);
          if (keepAlive) assert.equal(server.connections, 1, `after request ${i} the server holds ${server.connections} connections`);
          // The server closes the connection right after END_REQUEST; nginx may answer its client first.
          else await until(() => server.connections === 0, `the connection of request ${i} to be closed`);
        }
        const mine = seen.slice(before);
        assert.equal(mine.length, 25);
        assert.ok(mine.every((s) => s.keepConn === keepAlive));
        assert.equal(server.activeRequests, 0);
      });
    });
  }

  test('params past maxParamsBytes: nginx relays the 431 response', async () => {
    const result = await http(nginx.port, '/limited/app/echo', { headers: { 'X-Large': 'x'.repeat(3000) } });
    assert.equal(result.status, 431);
    assert.match(result.body.toString(), /2048 bytes/);
    const small = await http(nginx.port, '/limited/app/echo');
    assert.equal(small.status, 200);
    assert.equal(limited.activeRequests, 0);
  });
});
