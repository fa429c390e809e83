// Logs against a real TQServer with real php-cgi: access log lines for PHP, static and failed
// requests (text and JSON), the slow log with the URL, a request id followed from the client through
// PHP into every log, the FastCGI front, advice after a burst against max_workers 1, and the CLI:
// SIGUSR1 reopening moved files, --quiet still writing them.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeParams } from '../src/fastcgi/params.js';
import { RecordType } from '../src/fastcgi/protocol.js';
import { encodeBeginRequest, encodeStream } from '../src/fastcgi/records.js';
import { logFileName } from '../src/log-file.js';
import { get, makeProject, request, runCli, serverYaml, startFront, waitForPool, workerYaml, type Project, type RunningFront } from './helpers/front.js';
import { freePort } from './helpers/peers.js';
import { RawPeer } from './helpers/raw-fcgi.js';

/** A script that reports its request id and writes to PHP's error log and to its process's stderr. */
const STDERR_PHP = `<?php
error_log('from php ' . ($_SERVER['HTTP_X_REQUEST_ID'] ?? 'none'));
file_put_contents('php://stderr', "process stderr of " . ($_SERVER['HTTP_X_REQUEST_ID'] ?? 'none') . "\\n");
header('Content-Type: application/json');
echo json_encode(['rid' => $_SERVER['HTTP_X_REQUEST_ID'] ?? null, 'pid' => getmypid()]);
`;

/** The line of a log file that `match` accepts, once it is there (log writes are asynchronous). */
async function lineIn(path: string, match: (line: string) => boolean, what: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    const line = text.split('\n').find((l) => l && match(l));
    if (line !== undefined) return line;
    if (Date.now() > deadline) assert.fail(`${what}: no such line in ${path} within ${timeoutMs} ms; it holds:\n${text.slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Today's file of a {date} template. */
const today = (template: string) => logFileName(template, new Date());

/** nginx's combined format plus TQServer's fields, as named groups. */
const COMBINED =
  /^(?<remote>\S+) - - \[(?<time>[^\]]+)\] "(?<request>[^"]*)" (?<status>\d{3}) (?<bytes>\d+) "(?<referer>[^"]*)" "(?<agent>[^"]*)" rt=(?<rt>\S+) qt=(?<qt>\S+) pt=(?<pt>\S+) be=(?<be>\S+) pid=(?<pid>\S+) rid=(?<rid>\S+) err=(?<err>\S+)$/;

function parseCombined(line: string): Record<string, string> {
  const match = COMBINED.exec(line);
  assert.ok(match?.groups, `not a combined line: ${line}`);
  return match.groups;
}

describe('logs of a running TQServer (in-process, real php-cgi)', () => {
  let project: Project;
  let front: RunningFront;
  let fcgiPort: number;
  const logs = (name: string) => join(project.root, 'logs', name);
  const siteAccess = () => today(logs('site_access_{date}.log'));
  const siteSlow = () => today(logs('site_slow_{date}.log'));
  const siteErrors = () => today(logs('site_php_error_{date}.log'));

  before(async () => {
    fcgiPort = await freePort();
    project = await makeProject({
      server: serverYaml({ max_body_size: '1K' }),
      apps: [
        { name: 'site', worker: workerYaml('/site', { max_workers: 2 }, { extra: `slow_log:\n  threshold: 300ms\nfastcgi:\n  listen: 127.0.0.1:${fcgiPort}` }) },
        {
          name: 'tiny',
          worker: [
            'path: /tiny',
            'php:',
            '  error_log: ~',
            '  settings: { display_errors: "0", log_errors: "1" }',
            '  pool: { manager: static, max_workers: 1, queue_timeout: 10s }',
            'access_log:',
            '  path: logs/access.jsonl',
            '  format: json',
            'slow_log:',
            '  threshold: 0',
            '',
          ].join('\n'),
        },
      ],
    });
    for (const app of ['site', 'tiny']) writeFileSync(join(project.docRoot(app), 'stderr.php'), STDERR_PHP);
    front = await startFront(project.root);
  });

  after(async () => {
    await front?.stop();
    await project?.cleanup();
  });

  test('access log (combined): a PHP request, a static file and a 404, each with its fields', async () => {
    const php = await get(front.port, '/site/env.php?x=1', { 'x-request-id': 'acc-php', 'user-agent': 'logs-test/1.0', referer: 'http://example.test/from' });
    assert.equal(php.status, 200);
    const pid = php.json<{ pid: number }>().pid;
    const phpLine = parseCombined(await lineIn(siteAccess(), (l) => l.includes('rid=acc-php'), 'the PHP request'));
    assert.equal(phpLine.remote, '127.0.0.1');
    assert.match(phpLine.time!, /^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$/);
    assert.equal(phpLine.request, 'GET /site/env.php?x=1 HTTP/1.1');
    assert.equal(phpLine.status, '200');
    assert.ok(Number(phpLine.bytes) > php.body.length, 'bytes sent, headers included');
    assert.equal(phpLine.referer, 'http://example.test/from');
    assert.equal(phpLine.agent, 'logs-test/1.0');
    assert.match(phpLine.rt!, /^\d+\.\d{3}$/);
    assert.match(phpLine.qt!, /^\d+\.\d{3}$/);
    assert.match(phpLine.pt!, /^\d+\.\d{3}$/);
    assert.ok(Number(phpLine.qt) + Number(phpLine.pt) <= Number(phpLine.rt) + 0.002, 'queue and PHP time fit in the request time');
    assert.equal(phpLine.be, 'php-cgi');
    assert.equal(phpLine.pid, String(pid), 'the php-cgi pid that served it');
    assert.equal(phpLine.err, '-');

    const file = await get(front.port, '/site/assets/hello.txt', { 'x-request-id': 'acc-static' });
    assert.equal(file.status, 200);
    const staticLine = parseCombined(await lineIn(siteAccess(), (l) => l.includes('rid=acc-static'), 'the static file'));
    assert.equal(staticLine.request, 'GET /site/assets/hello.txt HTTP/1.1');
    assert.deepEqual([staticLine.status, staticLine.qt, staticLine.pt, staticLine.be, staticLine.pid, staticLine.referer, staticLine.agent], ['200', '-', '-', '-', '-', '-', '-']);

    const hidden = await get(front.port, '/site/.env', { 'x-request-id': 'acc-404' });
    assert.equal(hidden.status, 404);
    const notFound = parseCombined(await lineIn(siteAccess(), (l) => l.includes('rid=acc-404'), 'the 404'));
    assert.deepEqual([notFound.request, notFound.status, notFound.be], ['GET /site/.env HTTP/1.1', '404', '-']);
  });

  test('access log (json, a relative path from the app folder): every field, one parseable line', async () => {
    const reply = await get(front.port, '/tiny/env.php', { 'x-request-id': 'acc-json' });
    assert.equal(reply.status, 200);
    const path = join(project.root, 'workers', 'tiny', 'logs', 'access.jsonl');
    const entry = JSON.parse(await lineIn(path, (l) => l.includes('"acc-json"'), 'the JSON line')) as Record<string, unknown>;
    assert.equal(entry.req, 'acc-json');
    assert.equal(entry.app, 'tiny');
    assert.equal(entry.method, 'GET');
    assert.equal(entry.uri, '/tiny/env.php');
    assert.equal(entry.status, 200);
    assert.equal(entry.backend, 'php-cgi');
    assert.equal(entry.pid, reply.json<{ pid: number }>().pid);
    assert.equal(entry.script, '/env.php', 'the script inside the document root');
    assert.equal(typeof entry.duration_ms, 'number');
    assert.equal(typeof entry.queue_ms, 'number');
    assert.equal(typeof entry.php_ms, 'number');
    assert.ok(!existsSync(today(logs('tiny_access_{date}.log'))), 'the configured path replaces the default');
  });

  test('a request over slow_log.threshold is in the slow log with URL, method, request id, duration, queue wait, pid and script; a quick one is not', async () => {
    const quick = await get(front.port, '/site/sleep.php?ms=0', { 'x-request-id': 'quick-1' });
    assert.equal(quick.status, 200);
    const slow = await request(front.port, { method: 'GET', path: '/site/sleep.php?ms=450&from=slowlog', headers: { 'x-request-id': 'slow-1' } });
    assert.equal(slow.status, 200);
    const pid = /in pid (\d+)/.exec(slow.text)![1];
    const line = await lineIn(siteSlow(), (l) => l.includes('rid=slow-1'), 'the slow request');
    const match = /^\[[^\]]+\] app=site "GET \/site\/sleep\.php\?ms=450&from=slowlog HTTP\/1\.1" 200 rt=(\d+\.\d{3}) qt=(\d+\.\d{3}) pt=(\d+\.\d{3}) be=php-cgi pid=(\d+) script=\/sleep\.php rid=slow-1 err=-$/.exec(line);
    assert.ok(match, line);
    assert.ok(Number(match[1]) >= 0.45, `duration ${match[1]} s`);
    assert.ok(Number(match[3]) >= 0.45, `PHP time ${match[3]} s`);
    assert.equal(match[4], pid);
    // Everything is in by now (the slow line came after the quick request's lines).
    await lineIn(siteAccess(), (l) => l.includes('rid=slow-1'), 'the slow request in the access log');
    assert.ok(!readFileSync(siteSlow(), 'utf8').includes('quick-1'), 'a quick request is not slow');
    const advice = front.find(/^app site: a request took longer than slow_log\.threshold \(300 ms\); see /);
    assert.ok(advice, 'the server log says where slow requests are');
    assert.equal(advice.msg, `app site: a request took longer than slow_log.threshold (300 ms); see ${siteSlow()}`);
  });

  test('X-Request-Id from the client: in the response, in PHP, in the access log and in the PHP error log lines', async () => {
    const reply = await get(front.port, '/site/stderr.php', { 'x-request-id': 'trace-abc-123' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-request-id'], 'trace-abc-123');
    const { rid, pid } = reply.json<{ rid: string; pid: number }>();
    assert.equal(rid, 'trace-abc-123', "PHP's $_SERVER['HTTP_X_REQUEST_ID']");
    parseCombined(await lineIn(siteAccess(), (l) => l.includes('rid=trace-abc-123'), 'the access log line'));
    const request = `rid=trace-abc-123 pid=${pid} "GET /site/stderr.php" script=/stderr.php`;
    const fromPhp = await lineIn(siteErrors(), (l) => l.includes('from php trace-abc-123'), "error_log()'s line (FCGI_STDERR)");
    assert.match(fromPhp, new RegExp(`^\\[[^\\]]+\\] fcgi_stderr ${request.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: .*from php trace-abc-123$`));
    const processLine = await lineIn(siteErrors(), (l) => l.includes('process stderr of trace-abc-123'), "the process's own stderr");
    assert.ok(processLine.includes(` stderr ${request}: process stderr of trace-abc-123`), processLine);
    assert.ok(!front.records.some((r) => r.msg.includes('from php trace-abc-123')), 'with a PHP error log, PHP errors stay out of the server log');
    assert.ok(front.find(`app site: PHP writes errors; see ${siteErrors()}`), 'the server log hears that PHP writes errors');
  });

  test('without a PHP error log (php.error_log: null) the server log line carries the request id', async () => {
    const reply = await get(front.port, '/tiny/stderr.php', { 'x-request-id': 'to-server-log' });
    assert.equal(reply.status, 200);
    const deadline = Date.now() + 5000;
    while (!front.find('from php to-server-log') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    const line = front.find('from php to-server-log');
    assert.ok(line, 'the PHP stderr line is in the server log');
    assert.equal(line.req, 'to-server-log');
    assert.equal(line.app, 'tiny');
  });

  test('an unusable X-Request-Id is replaced, and the new id is the one everywhere', async () => {
    const reply = await get(front.port, '/site/stderr.php', { 'x-request-id': 'has spaces and "quotes"' });
    const id = reply.headers['x-request-id'] as string;
    assert.match(id, /^[0-9a-f]{8}-[0-9a-z]+$/);
    assert.equal(reply.json<{ rid: string }>().rid, id);
    await lineIn(siteAccess(), (l) => l.includes(`rid=${id} `), 'the access log line');
    await lineIn(siteErrors(), (l) => l.includes(`rid=${id} `) && l.includes(`from php ${id}`), 'the PHP error log line');
  });

  test('a 413 (proxy error): its server log line and its access log line carry the request id', async () => {
    const reply = await request(front.port, { method: 'POST', path: '/site/env.php', body: 'x'.repeat(5000), headers: { 'x-request-id': 'too-big-1' } });
    assert.equal(reply.status, 413);
    const line = front.find(/^413 POST \/site\/env\.php: body of 5000 bytes/);
    assert.equal(line?.req, 'too-big-1');
    const access = parseCombined(await lineIn(siteAccess(), (l) => l.includes('rid=too-big-1'), 'the 413'));
    assert.equal(access.status, '413');
  });

  test('the FastCGI front: the request id nginx passes is in the access log and the PHP error log, and FCGI_STDERR still reaches nginx', async () => {
    const script = join(project.docRoot('site'), 'stderr.php');
    const params = {
      GATEWAY_INTERFACE: 'CGI/1.1',
      REQUEST_METHOD: 'GET',
      SCRIPT_FILENAME: script,
      SCRIPT_NAME: '/stderr.php',
      REQUEST_URI: '/stderr.php?via=nginx',
      QUERY_STRING: 'via=nginx',
      DOCUMENT_ROOT: project.docRoot('site'),
      SERVER_PROTOCOL: 'HTTP/1.1',
      REMOTE_ADDR: '192.0.2.10',
      HTTP_USER_AGENT: 'nginx-test',
      HTTP_X_REQUEST_ID: 'fcgi-rid-1',
    };
    const peer = await RawPeer.connect({ host: '127.0.0.1', port: fcgiPort });
    try {
      peer.send(encodeBeginRequest(1, 1, false), encodeStream(RecordType.Params, 1, encodeParams(params), true), encodeStream(RecordType.Stdin, 1, Buffer.alloc(0), true));
      const response = await peer.response(1);
      assert.match(response.stdout.toString(), /"rid":"fcgi-rid-1"/);
      assert.match(response.stderr.toString(), /from php fcgi-rid-1/, 'nginx gets FCGI_STDERR, as from php-fpm');
    } finally {
      peer.destroy();
    }
    const access = parseCombined(await lineIn(siteAccess(), (l) => l.includes('rid=fcgi-rid-1'), 'the FastCGI request'));
    assert.deepEqual([access.remote, access.request, access.status, access.agent, access.be], ['192.0.2.10', 'GET /stderr.php?via=nginx HTTP/1.1', '200', 'nginx-test', 'php-cgi']);
    const error = await lineIn(siteErrors(), (l) => l.includes('from php fcgi-rid-1'), 'the PHP error log line');
    assert.ok(error.includes(' fcgi_stderr rid=fcgi-rid-1 '), error);
    assert.ok(error.includes(`"GET /stderr.php?via=nginx" script=${script}:`), error);

    // The front's own 404 (php-fpm's "Primary script unknown") is logged with the id too.
    const missing = await RawPeer.connect({ host: '127.0.0.1', port: fcgiPort });
    try {
      missing.send(
        encodeBeginRequest(1, 1, false),
        encodeStream(RecordType.Params, 1, encodeParams({ ...params, SCRIPT_FILENAME: join(project.docRoot('site'), 'nope.php'), HTTP_X_REQUEST_ID: 'fcgi-404' }), true),
        encodeStream(RecordType.Stdin, 1, Buffer.alloc(0), true),
      );
      await missing.response(1);
    } finally {
      missing.destroy();
    }
    assert.equal(front.find(/^FastCGI front site: 404: .*nope\.php is not a file/)?.req, 'fcgi-404');
    await lineIn(siteAccess(), (l) => l.includes('rid=fcgi-404') && / 404 /.test(l), 'the 404 in the access log');
  });

  test('bursts against max_workers 1: one advice line saying to raise it, not one per episode', async () => {
    for (let round = 0; round < 2; round++) {
      const burst = await Promise.all(Array.from({ length: 4 }, (_, i) => get(front.port, `/tiny/sleep.php?ms=100&round=${round}&n=${i}`)));
      assert.ok(burst.every((r) => r.status === 200));
      // The episode ends when the queue is empty and the worker idle again.
      await waitForPool(front, 'tiny', (s) => s.idle === 1 && s.queueLength === 0);
    }
    const episodes = front.server.apps.get('tiny')!.backend.status().maxChildrenReached;
    assert.ok(episodes >= 2, `two episodes at the limit (${episodes})`);
    const advice = front.records.filter((r) => /reached max_workers/.test(r.msg));
    assert.equal(advice.length, 1, advice.map((r) => r.msg).join('\n'));
    assert.equal(advice[0]!.msg, 'pool tiny reached max_workers (1); consider raising it');
    assert.equal(advice[0]!.level, 40);
    assert.equal(advice[0]!.advice, 'max-workers');
  });
});

describe('the CLI: SIGUSR1 reopens every log file after logrotate moved them; --quiet still writes them', () => {
  let project: Project;

  before(async () => {
    project = await makeProject({
      server: serverYaml({ log_file: 'logs/tq_{date}.log' }),
      apps: [{ name: 'site', worker: workerYaml('/', { max_workers: 1 }, { extra: `access_log:\n  path: ../../logs/access.log\nslow_log:\n  threshold: 1ms` }) }],
    });
    writeFileSync(join(project.docRoot('site'), 'stderr.php'), STDERR_PHP);
  });

  after(async () => {
    await project?.cleanup();
  });

  test('move, SIGUSR1, and the next lines are in new files at the configured paths', async () => {
    const cli = runCli(['--root', project.root, '--quiet']);
    try {
      const serverLog = today(join(project.root, 'logs', 'tq_{date}.log'));
      const access = join(project.root, 'logs', 'access.log');
      const slow = today(join(project.root, 'logs', 'site_slow_{date}.log'));
      const errors = today(join(project.root, 'logs', 'site_php_error_{date}.log'));
      const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(await lineIn(serverLog, (l) => l.includes('listening on'), 'the server log says where it listens', 15_000))![1]);

      assert.equal((await get(port, '/stderr.php', { 'x-request-id': 'before-move' })).status, 200);
      for (const [path, what] of [
        [access, 'access log'],
        [slow, 'slow log'],
        [errors, 'PHP error log'],
      ] as const) {
        await lineIn(path, (l) => l.includes('before-move'), `${what} before the move`);
      }
      for (const path of [serverLog, access, slow, errors]) renameSync(path, `${path}.1`);

      cli.kill('SIGUSR1');
      const reopened = JSON.parse(await lineIn(serverLog, (l) => l.includes('SIGUSR1'), 'the reopen line in a new server log')) as { msg: string; files: string[] };
      assert.equal(reopened.msg, 'SIGUSR1: 4 log files reopened');
      assert.deepEqual([...reopened.files].sort(), [serverLog, access, slow, errors].sort());

      assert.equal((await get(port, '/stderr.php', { 'x-request-id': 'after-move' })).status, 200);
      for (const [path, what] of [
        [access, 'access log'],
        [slow, 'slow log'],
        [errors, 'PHP error log'],
      ] as const) {
        await lineIn(path, (l) => l.includes('after-move'), `${what} after the reopen`);
        assert.ok(!readFileSync(path, 'utf8').includes('before-move'), `${what}: the new file has only new lines`);
        assert.ok(!readFileSync(`${path}.1`, 'utf8').includes('after-move'), `${what}: the moved file has only old lines`);
      }
      cli.kill('SIGTERM');
      assert.equal((await cli.exited).code, 0);
      assert.equal(cli.output(), '', '--quiet: nothing on the console');
      assert.match(readFileSync(serverLog, 'utf8').trimEnd().split('\n').at(-1)!, /"msg":"stopped after \d+ ms"/);
    } finally {
      cli.kill('SIGKILL');
      await cli.exited;
    }
  });
});
