// PHP error log lines: every line names its request (id, pid, method, URI, script), multi-line
// messages become one log line per line, control characters cannot break a line, and a php-cgi
// process's own output is attributed to the request it ran last.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Backend, PoolStatus } from '../backend.js';
import type { RequestController, RequestOptions, ResponseHandler } from '../fastcgi/client.js';
import { LogFile } from '../log-file.js';
import type { RequestInfo } from '../supervisor/worker.js';
import { formatPhpErrorLine, PhpErrorLog, PhpErrorLogBackend, splitLines, type PhpRequestContext } from './php-error-log.js';

const AT = Date.UTC(2024, 4, 1, 10, 0, 0);
const CONTEXT: PhpRequestContext = { id: 'rid-9', method: 'GET', uri: '/blog/log.php?lines=3', script: 'log.php', pid: 4242 };

const dir = mkdtempSync(join(tmpdir(), 'tq-php-error-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function fileHas(path: string, lines: number): Promise<string[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // not created yet
    }
    const got = text.split('\n').filter(Boolean);
    if (got.length >= lines) return got;
    if (Date.now() > deadline) assert.fail(`${path} has ${got.length} lines, expected ${lines}:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('PHP error log lines', () => {
  test('a line names the request it came from', () => {
    assert.equal(
      formatPhpErrorLine('fcgi_stderr', CONTEXT, 4242, 'PHP Warning:  Undefined variable $x in /app/public/log.php on line 3', AT, 0),
      '[01/May/2024:10:00:00 +0000] fcgi_stderr rid=rid-9 pid=4242 "GET /blog/log.php?lines=3" script=log.php: PHP Warning:  Undefined variable $x in /app/public/log.php on line 3',
    );
  });

  test('output no request is known for (a startup warning)', () => {
    assert.equal(formatPhpErrorLine('stderr', null, 77, 'PHP Warning:  Module "x" is already loaded', AT, 0), '[01/May/2024:10:00:00 +0000] stderr rid=- pid=77 "-" script=-: PHP Warning:  Module "x" is already loaded');
  });

  test('control characters in the message or the request cannot start a new line', () => {
    const line = formatPhpErrorLine('fcgi_stderr', { ...CONTEXT, uri: '/x"\n[fake] rid=admin' }, 1, 'a\rb\x1b[2Jc', AT, 0);
    assert.ok(!/[\n\r\x1b]/.test(line));
    assert.ok(line.endsWith(': a\\x0Db\\x1B[2Jc'));
    assert.ok(line.includes('"GET /x\\x22\\x0A[fake] rid=admin"'));
  });

  test('splitLines: every kind of line end, no empty lines', () => {
    assert.deepEqual(splitLines('one\ntwo\r\nthree\rfour\n\n'), ['one', 'two', 'three', 'four']);
    assert.deepEqual(splitLines('\n'), []);
  });
});

describe('PhpErrorLog and its backend wrapper', () => {
  test('FCGI_STDERR through the wrapper: each line in the file with the request id; process output attributed to the last request of its pid', async () => {
    const path = join(dir, 'php_error.log');
    const file = new LogFile(path);
    let counted = 0;
    const errors = new PhpErrorLog(file, { onLines: (n) => (counted += n), clock: () => AT });
    const passedOn: string[] = [];
    // A backend that runs the request on "pid 4242" and writes two stderr records.
    const inner: Backend = {
      kind: 'php-cgi',
      dispatch(_options: RequestOptions, handler: ResponseHandler): RequestController {
        handler.onDispatch?.({ pid: 4242 });
        handler.onStderr(Buffer.from('PHP Fatal error:  Uncaught Exception: boom in /app/a.php:3\nStack trace:\n#0 {main}\n'));
        handler.onStdout(Buffer.from('Status: 500\r\n\r\n'));
        handler.onEnd({ appStatus: 0, protocolStatus: 0 } as never);
        return { abort() {}, resume() {}, started: true, bodySent: true };
      },
      status: () => ({}) as PoolStatus,
      stop: async () => {},
    };
    const info: RequestInfo = { method: 'GET', uri: '/blog/a.php', script: 'a.php', requestId: 'from-client-1' };
    for (const passOn of [false, true]) {
      const wrapped = new PhpErrorLogBackend(inner, errors, passOn);
      assert.equal(wrapped.kind, 'php-cgi');
      let ended = false;
      wrapped.dispatch({ params: {} }, { onStdout: () => true, onStderr: (c) => passedOn.push(c.toString()), onEnd: () => (ended = true), onError: assert.fail }, info);
      assert.ok(ended, 'the front still gets the end');
    }
    assert.equal(passedOn.length, 1, 'only the FastCGI front (passOn) gets FCGI_STDERR too');
    errors.processOutput(4242, 'stdout', 'stdout line');
    errors.processOutput(5555, 'stderr', 'a worker nobody used yet');
    errors.forget(4242);
    errors.processOutput(4242, 'stderr', 'after the worker exited');
    const lines = await fileHas(path, 9);
    const request = 'rid=from-client-1 pid=4242 "GET /blog/a.php" script=a.php';
    assert.deepEqual(lines, [
      `[${lines[0]!.slice(1, 27)}] fcgi_stderr ${request}: PHP Fatal error:  Uncaught Exception: boom in /app/a.php:3`,
      `[${lines[0]!.slice(1, 27)}] fcgi_stderr ${request}: Stack trace:`,
      `[${lines[0]!.slice(1, 27)}] fcgi_stderr ${request}: #0 {main}`,
      `[${lines[0]!.slice(1, 27)}] fcgi_stderr ${request}: PHP Fatal error:  Uncaught Exception: boom in /app/a.php:3`,
      `[${lines[0]!.slice(1, 27)}] fcgi_stderr ${request}: Stack trace:`,
      `[${lines[0]!.slice(1, 27)}] fcgi_stderr ${request}: #0 {main}`,
      `[${lines[0]!.slice(1, 27)}] stdout ${request}: stdout line`,
      `[${lines[0]!.slice(1, 27)}] stderr rid=- pid=5555 "-" script=-: a worker nobody used yet`,
      `[${lines[0]!.slice(1, 27)}] stderr rid=- pid=4242 "-" script=-: after the worker exited`,
    ]);
    assert.equal(counted, 9);
    await file.close();
  });
});
