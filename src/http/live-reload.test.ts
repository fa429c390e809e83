// Tests for dev mode's live reload: the injector over every chunk split, injectInto behind a real
// node:http server (the PHP proxy's way of answering, the static file pipeline, and the responses
// that must stay untouched), the event stream and script, and the document root watcher (sources
// reload, dotfolders and files apps write do not, folders that appear are watched).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { memoryLogger } from '../log.js';
import {
  HtmlInjector,
  injectInto,
  LIVE_RELOAD_EVENTS_PATH,
  LIVE_RELOAD_SCRIPT,
  LIVE_RELOAD_SCRIPT_PATH,
  LIVE_RELOAD_TAG,
  LiveReload,
  wantsInjection,
} from './live-reload.js';
import { serveStatic } from './static.js';

const TAG = LIVE_RELOAD_TAG;

describe('HtmlInjector', () => {
  const rows: Array<{ name: string; html: string; want: string }> = [
    { name: 'before </body>', html: '<html><body><p>hi</p></body></html>', want: `<html><body><p>hi</p>${TAG}</body></html>` },
    { name: 'any case', html: '<HTML><BODY>x</BODY></HTML>', want: `<HTML><BODY>x${TAG}</BODY></HTML>` },
    { name: 'the first </body> only', html: 'a</body>b</body>', want: `a${TAG}</body>b</body>` },
    { name: 'no </body>: at the end', html: '<p>fragment</p>', want: `<p>fragment</p>${TAG}` },
    { name: 'an empty body', html: '', want: TAG },
    { name: 'near misses are not </body>', html: '</bod></b></</bodx</ body>', want: `</bod></b></</bodx</ body>${TAG}` },
    { name: 'after a near miss', html: '</bo</BoDy >', want: `</bo${TAG}</BoDy >` },
    { name: 'a near miss at the very end', html: '<p>x</p></bo', want: `<p>x</p></bo${TAG}` },
    { name: 'UTF-8 around it', html: '<body>é ü 漢字</body>', want: `<body>é ü 漢字${TAG}</body>` },
  ];
  for (const row of rows) {
    test(`${row.name}, whole and split at every byte`, () => {
      const bytes = Buffer.from(row.html);
      const whole = new HtmlInjector();
      assert.equal(Buffer.concat([whole.push(bytes), whole.finish()]).toString(), row.want);
      for (let cut = 0; cut <= bytes.length; cut += 1) {
        for (const second of [cut, Math.min(bytes.length, cut + 3)]) {
          const injector = new HtmlInjector();
          const out = Buffer.concat([injector.push(bytes.subarray(0, cut)), injector.push(bytes.subarray(cut, second)), injector.push(bytes.subarray(second)), injector.finish()]);
          assert.equal(out.toString(), row.want, `split at ${cut} and ${second}`);
          assert.equal(out.length, bytes.length + injector.tagLength);
        }
      }
    });
  }

  test('holds back at most the 5 bytes that could start "</body"', () => {
    const injector = new HtmlInjector();
    assert.equal(injector.push(Buffer.from('abc</BOD')).toString(), 'abc');
    assert.equal(injector.push(Buffer.from('Y>')).toString(), `${TAG}</BODY>`);
    assert.equal(injector.push(Buffer.from('</body>')).toString(), '</body>', 'after the tag, bytes pass as they are');
    assert.equal(injector.finish().length, 0);
  });
});

describe('wantsInjection', () => {
  const request = (method: string, headers: Record<string, string> = {}) => ({ method, headers }) as unknown as IncomingMessage;
  test('page loads only', () => {
    assert.equal(wantsInjection(request('GET')), true);
    assert.equal(wantsInjection(request('GET', { 'sec-fetch-dest': 'document' })), true);
    assert.equal(wantsInjection(request('GET', { 'sec-fetch-dest': 'iframe' })), true);
    assert.equal(wantsInjection(request('GET', { 'sec-fetch-dest': 'empty' })), false, 'fetch() of an HTML fragment');
    assert.equal(wantsInjection(request('GET', { 'x-requested-with': 'XMLHttpRequest' })), false);
    assert.equal(wantsInjection(request('HEAD')), false);
    assert.equal(wantsInjection(request('POST')), false, 'a reload would post the form again');
  });
});

/** A loopback server whose handler is chosen per test. */
function startServer(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  return new Promise((resolve) => {
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () => {
          server.closeAllConnections();
          return new Promise<void>((done) => server.close(() => done()));
        },
      });
    });
  });
}

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function fetchRaw(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (chunk: Buffer) => parts.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(parts) }));
      response.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('injectInto behind node:http', () => {
  let server: { port: number; close: () => Promise<void> };
  let dir: string;
  const page = '<!doctype html><html><body><h1>Static</h1></body></html>';
  /** How each path answers; injectInto is applied to every response first. */
  const routes: Record<string, (request: IncomingMessage, response: ServerResponse) => void> = {
    // The PHP proxy's small answer: writeHead with a flat list and a Content-Length, then end(body).
    '/php-whole': (_q, s) => {
      const body = Buffer.from('<html><body>whole</body></html>');
      s.writeHead(200, ['X-Request-Id', 'r1', 'Content-Type', 'text/html; charset=UTF-8', 'Content-Length', String(body.length)]);
      s.end(body);
    },
    // The PHP proxy streaming: a reason phrase, no length, several writes, "</body>" cut in two.
    '/php-stream': (_q, s) => {
      s.writeHead(200, 'Fine', ['Content-Type', 'text/html']);
      s.write('<html><body>streamed</bo');
      s.write(Buffer.from('dy></html>'));
      s.end();
    },
    // PHP setting its own Content-Length and streaming.
    '/php-length-stream': (_q, s) => {
      const body = '<p>no body tag, length given</p>';
      s.writeHead(200, { 'content-type': 'text/html', 'content-length': String(Buffer.byteLength(body)) });
      s.write(body.slice(0, 5));
      s.end(body.slice(5));
    },
    '/json': (_q, s) => {
      s.writeHead(200, ['Content-Type', 'application/json', 'Content-Length', '2']);
      s.end('{}');
    },
    '/gzip': (_q, s) => {
      const body = gzipSync('<html><body>zipped</body></html>');
      s.writeHead(200, { 'Content-Type': 'text/html', 'Content-Encoding': 'gzip', 'Content-Length': String(body.length) });
      s.end(body);
    },
    '/not-found': (_q, s) => {
      s.writeHead(404, { 'Content-Type': 'text/html', 'Content-Length': '22' });
      s.end('<body>not here</body>\n');
    },
    '/static': (q, s) => {
      const file = join(dir, 'page.html');
      serveStatic(q, s, file, statSync(file));
    },
    '/static-big': (q, s) => {
      const file = join(dir, 'big.html');
      serveStatic(q, s, file, statSync(file));
    },
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tqserver-live-'));
    writeFileSync(join(dir, 'page.html'), page);
    // Larger than a read stream's 64 KiB chunks, "</body>" near the end.
    writeFileSync(join(dir, 'big.html'), `<html><body>${'x'.repeat(300_000)}</body></html>`);
    server = await startServer((request, response) => {
      injectInto(response);
      const route = routes[request.url!.split('?')[0]!];
      if (route) route(request, response);
      else response.writeHead(500).end();
    });
  });

  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a whole PHP answer: tag before </body>, Content-Length grown by the tag', async () => {
    const got = await fetchRaw(server.port, '/php-whole');
    assert.equal(got.body.toString(), `<html><body>whole${TAG}</body></html>`);
    assert.equal(Number(got.headers['content-length']), got.body.length);
    assert.equal(got.headers['x-request-id'], 'r1', 'the other headers pass');
  });

  test('a streamed PHP answer: "</body>" found across writes, chunked as before', async () => {
    const got = await fetchRaw(server.port, '/php-stream');
    assert.equal(got.body.toString(), `<html><body>streamed${TAG}</body></html>`);
    assert.equal(got.headers['content-length'], undefined);
    assert.equal(got.headers['transfer-encoding'], 'chunked');
  });

  test('a streamed answer with its own Content-Length and no </body>: tag at the end, length right', async () => {
    const got = await fetchRaw(server.port, '/php-length-stream');
    assert.equal(got.body.toString(), `<p>no body tag, length given</p>${TAG}`);
    assert.equal(Number(got.headers['content-length']), got.body.length);
  });

  test('a static .html file through serveStatic: tag in, Content-Length right', async () => {
    const got = await fetchRaw(server.port, '/static');
    assert.equal(got.body.toString(), page.replace('</body>', `${TAG}</body>`));
    assert.equal(Number(got.headers['content-length']), got.body.length);
  });

  test('a static file larger than a read chunk streams through with one tag', async () => {
    const got = await fetchRaw(server.port, '/static-big');
    assert.equal(Number(got.headers['content-length']), got.body.length);
    assert.equal(got.body.length, 300_000 + '<html><body></body></html>'.length + TAG.length);
    assert.ok(got.body.toString().endsWith(`${TAG}</body></html>`));
    assert.equal(got.body.toString().split(TAG).length, 2);
  });

  test('untouched: not HTML, compressed, not 200, ranges, 304', async () => {
    assert.equal((await fetchRaw(server.port, '/json')).body.toString(), '{}');
    const zipped = await fetchRaw(server.port, '/gzip');
    assert.equal(Number(zipped.headers['content-length']), zipped.body.length);
    assert.equal(zipped.body[0], 0x1f, 'still gzip');
    const missing = await fetchRaw(server.port, '/not-found');
    assert.equal(missing.body.toString(), '<body>not here</body>\n');
    const partial = await fetchRaw(server.port, '/static', { range: 'bytes=0-9' });
    assert.equal(partial.status, 206);
    assert.equal(partial.body.toString(), page.slice(0, 10));
    const full = await fetchRaw(server.port, '/static');
    const cached = await fetchRaw(server.port, '/static', { 'if-none-match': String(full.headers.etag) });
    assert.equal(cached.status, 304);
    assert.equal(cached.body.length, 0);
  });
});

/**
 * The paths a reload names ("a, b changed"). A test checks that its path is among them rather than
 * alone: a late second event from an earlier test's write may share the batch on a busy machine.
 */
function named(why: string | undefined): string[] {
  return (why ?? '').replace(/ changed$/, '').split(', ');
}

/** An event stream client: collects events, and waits for the next one of a kind. */
class EventClient {
  readonly events: Array<{ event: string; data: string }> = [];
  #buffer = '';
  #waiters: Array<() => void> = [];
  #request: http.ClientRequest;
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  ended = false;
  readonly ready: Promise<void>;

  constructor(port: number) {
    let opened!: () => void;
    let failed!: (error: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    this.#request = http.get({ host: '127.0.0.1', port, path: LIVE_RELOAD_EVENTS_PATH, agent: false }, (response) => {
      this.status = response.statusCode ?? 0;
      this.headers = response.headers;
      response.setEncoding('utf8');
      response.on('data', (text: string) => {
        this.#buffer += text;
        for (let end = this.#buffer.indexOf('\n\n'); end >= 0; end = this.#buffer.indexOf('\n\n')) {
          const block = this.#buffer.slice(0, end);
          this.#buffer = this.#buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1] ?? '';
          if (event) this.events.push({ event, data });
        }
        for (const wake of this.#waiters.splice(0)) wake();
      });
      response.on('end', () => {
        this.ended = true;
        for (const wake of this.#waiters.splice(0)) wake();
      });
      opened();
    });
    this.#request.on('error', failed);
  }

  /** The `count`th event named `name` (1-based), waited for. */
  async nth(name: string, count: number, timeoutMs = 10_000): Promise<{ event: string; data: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.filter((e) => e.event === name);
      if (found.length >= count) return found[count - 1]!;
      if (this.ended) throw new Error(`the stream ended before ${name} #${count}; got ${JSON.stringify(this.events)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${name} #${count} within ${timeoutMs} ms; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Waits for a reload whose reason matches `want`; returns the reasons of every reload so far. (A
   * change left over from an earlier test may still arrive first: callers check what is in the list.)
   */
  async reloadFor(want: RegExp, timeoutMs = 10_000, after = 0): Promise<string[]> {
    for (let n = after + 1; ; n += 1) {
      const why = JSON.parse((await this.nth('reload', n, timeoutMs)).data).why as string;
      if (want.test(why)) return this.events.filter((e) => e.event === 'reload').slice(0, n).map((e) => JSON.parse(e.data).why as string);
    }
  }

  untilEnded(timeoutMs = 5000): Promise<void> {
    return this.nth('never', 1, timeoutMs).then(
      () => undefined,
      (error: Error) => {
        if (!this.ended) throw error;
      },
    );
  }

  close(): void {
    this.#request.destroy();
  }
}

describe('LiveReload: the stream, the script, the watcher', () => {
  let root: string;
  let live: LiveReload;
  let server: { port: number; close: () => Promise<void> };
  const { log, find } = memoryLogger('debug');

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'tqserver-live-root-'));
    mkdirSync(join(root, 'sub', 'deeper'), { recursive: true });
    mkdirSync(join(root, '.git'));
    mkdirSync(join(root, 'node_modules'));
    live = new LiveReload({ log, debounceMs: 30 });
    live.setRoots([{ documentRoot: root, extensions: ['.php', '.php8'] }]);
    server = await startServer((request, response) => {
      const path = request.url!.split('?')[0]!;
      if (live.claims(path)) live.answer(request, response, path);
      else response.writeHead(404).end();
    });
  });

  after(async () => {
    live?.close();
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('the script is served as JavaScript; other methods get 405', async () => {
    const script = await fetchRaw(server.port, LIVE_RELOAD_SCRIPT_PATH);
    assert.equal(script.status, 200);
    assert.match(String(script.headers['content-type']), /^text\/javascript/);
    assert.equal(script.body.toString(), LIVE_RELOAD_SCRIPT);
    assert.equal(Number(script.headers['content-length']), script.body.length);
    assert.match(LIVE_RELOAD_SCRIPT, new RegExp(`EventSource\\("${LIVE_RELOAD_EVENTS_PATH.replace(/[.]/g, '\\.')}"\\)`));
    assert.equal((await fetchRaw(server.port, LIVE_RELOAD_EVENTS_PATH, {}, 'POST')).status, 405);
    assert.equal(live.claims('/.tqserver/other'), false);
  });

  test('a stream says hello, then reload on notify', async () => {
    const client = new EventClient(server.port);
    try {
      await client.ready;
      assert.equal(client.status, 200);
      assert.match(String(client.headers['content-type']), /^text\/event-stream/);
      const hello = JSON.parse((await client.nth('hello', 1)).data);
      assert.match(hello.boot, /^[0-9a-f]{16}$/);
      assert.ok(find(/live reload: a page is listening/));
      live.notify('a test says so');
      assert.equal(JSON.parse((await client.nth('reload', 1)).data).why, 'a test says so');
    } finally {
      client.close();
    }
  });

  test('a source under the root reloads; dotfolders, node_modules and files apps write do not', async () => {
    const client = new EventClient(server.port);
    try {
      await client.nth('hello', 1);
      // Ignored first: had any counted, it would be named in the first reload (or come before it).
      writeFileSync(join(root, '.git', 'index.php'), 'x');
      writeFileSync(join(root, 'node_modules', 'lib.js'), 'x');
      writeFileSync(join(root, 'sub', 'cache.sqlite'), 'x');
      writeFileSync(join(root, 'sub', 'app.log'), 'x');
      writeFileSync(join(root, 'sub', '.page.php.swp'), 'x');
      writeFileSync(join(root, 'sub', 'deeper', 'page.php'), '<?php echo 1;');
      const seen = await client.reloadFor(/page\.php/);
      assert.ok(named(seen.at(-1)).includes('sub/deeper/page.php'), seen.at(-1));
      assert.deepEqual(seen.filter((why) => /git|node_modules|sqlite|log|swp/.test(why)), [], 'ignored files never counted');
      // The app's own PHP extensions count too.
      writeFileSync(join(root, 'legacy.php8'), 'x');
      assert.ok(named((await client.reloadFor(/legacy/)).at(-1)).includes('legacy.php8'));
      writeFileSync(join(root, 'style.css'), 'body{}');
      assert.ok(named((await client.reloadFor(/style/)).at(-1)).includes('style.css'));
    } finally {
      client.close();
    }
  });

  test('a folder moved in with pages reloads, and is watched from then on', async () => {
    const client = new EventClient(server.port);
    try {
      await client.nth('hello', 1);
      const staging = mkdtempSync(join(tmpdir(), 'tqserver-live-staging-'));
      mkdirSync(join(staging, 'inner'));
      writeFileSync(join(staging, 'inner', 'index.html'), '<p>new</p>');
      renameSync(staging, join(root, 'moved'));
      assert.ok(named((await client.reloadFor(/moved/)).at(-1)).includes('moved'), 'the folder that appeared holds a page');
      writeFileSync(join(root, 'moved', 'inner', 'index.html'), '<p>edited</p>');
      assert.ok(named((await client.reloadFor(/inner/)).at(-1)).includes('moved/inner/index.html'), 'a file in it is watched');
      const reloads = client.events.filter((e) => e.event === 'reload').length;
      rmSync(join(root, 'moved'), { recursive: true });
      await client.reloadFor(/(?:^|, )moved(?:, | changed$)/, 10_000, reloads);
    } finally {
      client.close();
    }
  });

  test('setRoots moves the watch; close ends every stream', async () => {
    const other = mkdtempSync(join(tmpdir(), 'tqserver-live-other-'));
    const client = new EventClient(server.port);
    try {
      await client.nth('hello', 1);
      live.setRoots([{ documentRoot: other, extensions: ['.php'] }]);
      assert.deepEqual(live.roots, [other]);
      // The old root is no longer watched: its change would be named in the first reload.
      writeFileSync(join(root, 'gone.php'), 'x');
      writeFileSync(join(other, 'here.php'), 'x');
      const seen = await client.reloadFor(/here\.php/);
      assert.ok(named(seen.at(-1)).includes('here.php'));
      assert.deepEqual(seen.filter((why) => why.includes('gone')), [], 'the old root is not watched');
      assert.equal(live.clients, 1);
      live.close();
      await client.untilEnded();
      assert.equal(live.clients, 0);
      assert.deepEqual(live.roots, []);
    } finally {
      client.close();
      rmSync(other, { recursive: true, force: true });
    }
  });
});
