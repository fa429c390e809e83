// The floor TQServer's hello-world cost is measured against (bench/ab.ts --kind bare|floor): a bare
// node:http server answering "Hello, world!" itself, and the least a Node gateway to php-fpm can do:
// node:http plus this project's pooled FastCGI client, a fixed CGI environment per request, the CGI
// head split off by hand, no routing, no checks, no observers. Not a server to use: a yardstick.
//
//   node dist/bench/floor-server.js --port 8080 [--fpm /path/to/php-fpm.sock --root DIR]

import http from 'node:http';
import { parseArgs } from 'node:util';
import { FastCGIClient } from '../src/fastcgi/client-pool.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, fpm: { type: 'string' }, root: { type: 'string' } } });
const port = Number(values.port);
const HELLO = Buffer.from('Hello, world!\n');

function bare(_request: http.IncomingMessage, response: http.ServerResponse): void {
  response.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': HELLO.length });
  response.end(HELLO);
}

function viaFpm(socket: string, root: string): http.RequestListener {
  const client = new FastCGIClient({ address: { path: socket }, maxConns: 4 });
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0]!;
    const params: Array<[string, string]> = [
      ['GATEWAY_INTERFACE', 'CGI/1.1'],
      ['SERVER_PROTOCOL', `HTTP/${request.httpVersion}`],
      ['REQUEST_METHOD', request.method ?? 'GET'],
      ['REQUEST_URI', request.url ?? '/'],
      ['QUERY_STRING', ''],
      ['DOCUMENT_ROOT', root],
      ['SCRIPT_FILENAME', root + path],
      ['SCRIPT_NAME', path],
      ['REMOTE_ADDR', request.socket.remoteAddress ?? ''],
      ['CONTENT_LENGTH', ''],
      ['REDIRECT_STATUS', '200'],
    ];
    const chunks: Buffer[] = [];
    client.dispatch(
      { params },
      {
        onStdout: (chunk) => {
          chunks.push(chunk);
          return true;
        },
        onStderr: () => {},
        onEnd: () => {
          const out = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          const split = out.indexOf('\r\n\r\n');
          const body = out.subarray(split + 4);
          response.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': body.length });
          response.end(body);
        },
        onError: (error) => {
          response.writeHead(502);
          response.end(error.message);
        },
      },
    );
  };
}

const server = http.createServer(values.fpm ? viaFpm(values.fpm, values.root ?? '/') : bare);
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
