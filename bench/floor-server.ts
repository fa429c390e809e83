// The floor TQServer's hello-world cost is measured against (bench/ab.ts --kind bare|floor): a bare
// node:http server answering "Hello, world!" itself, and the least a Node gateway to php-fpm can do:
// node:http plus this project's pooled FastCGI client, a fixed CGI environment per request, the CGI
// head split off by hand, no routing, no checks, no observers; and with --raw the same without
// node:http: requests cut out of a net socket's bytes by hand (GET only, no bodies, no checks), the
// response head and body written in one write. Not servers to use: yardsticks.
//
//   node dist/bench/floor-server.js --port 8080 [--fpm /path/to/php-fpm.sock --root DIR [--raw]]

import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { FastCGIClient } from '../src/fastcgi/client-pool.js';

const { values } = parseArgs({ options: { port: { type: 'string' }, fpm: { type: 'string' }, root: { type: 'string' }, raw: { type: 'boolean' } } });
const port = Number(values.port);
const HELLO = Buffer.from('Hello, world!\n');

function bare(_request: http.IncomingMessage, response: http.ServerResponse): void {
  response.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': HELLO.length });
  response.end(HELLO);
}

/** Runs `url` on php-fpm with a fixed CGI environment; `done` gets the body (the CGI head cut off) or the error. */
function askFpm(client: FastCGIClient, root: string, method: string, url: string, remote: string, done: (body: Buffer | null, error?: Error) => void): void {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const params: Array<[string, string]> = [
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_METHOD', method],
    ['REQUEST_URI', url],
    ['QUERY_STRING', ''],
    ['DOCUMENT_ROOT', root],
    ['SCRIPT_FILENAME', root + path],
    ['SCRIPT_NAME', path],
    ['REMOTE_ADDR', remote],
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
        done(out.subarray(out.indexOf('\r\n\r\n') + 4));
      },
      onError: (error) => done(null, error),
    },
  );
}

function viaFpm(socket: string, root: string): http.RequestListener {
  const client = new FastCGIClient({ address: { path: socket }, maxConns: 4 });
  return (request, response) => {
    askFpm(client, root, request.method ?? 'GET', request.url ?? '/', request.socket.remoteAddress ?? '', (body, error) => {
      if (!body) {
        response.writeHead(502);
        response.end(error!.message);
        return;
      }
      response.writeHead(200, { 'Content-Type': 'text/html; charset=UTF-8', 'Content-Length': body.length });
      response.end(body);
    });
  };
}

/** The floor without node:http: GET heads cut out of the socket's bytes, no validation, one write per response. */
function rawFloor(socketPath: string, root: string): net.Server {
  const client = new FastCGIClient({ address: { path: socketPath }, maxConns: 4 });
  return net.createServer({ noDelay: true }, (socket) => {
    let pending: Buffer | null = null;
    socket.on('data', (data: Buffer) => {
      let buf = pending ? Buffer.concat([pending, data]) : data;
      pending = null;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buf.length) pending = buf;
          return;
        }
        const head = buf.toString('latin1', 0, end);
        buf = buf.subarray(end + 4);
        const sp1 = head.indexOf(' ');
        const sp2 = head.indexOf(' ', sp1 + 1);
        askFpm(client, root, head.slice(0, sp1), head.slice(sp1 + 1, sp2), socket.remoteAddress ?? '', (body, error) => {
          if (!body) {
            socket.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Length: ${Buffer.byteLength(error!.message)}\r\n\r\n${error!.message}`);
            return;
          }
          const head = `HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: ${body.length}\r\nDate: ${new Date().toUTCString()}\r\n\r\n`;
          socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]));
        });
      }
    });
    socket.on('error', () => {});
  });
}

const server = values.raw ? rawFloor(values.fpm!, values.root ?? '/') : http.createServer(values.fpm ? viaFpm(values.fpm, values.root ?? '/') : bare);
if (server instanceof http.Server) server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
