// Zero failed requests through every change: continuous concurrent load on the real CLI while the
// config is edited (pool resized, ini env changed, php-cgi switched to php-fpm and back, php-fpm's
// pool reloaded), workers recycle every few requests, SIGHUP and SIGUSR1 arrive. Every request must
// succeed, PHP must see each change, and nothing may take longer than the request timeout.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { makeProject, serverYaml, startCli, stopCli, type CliProcess, type Project } from './helpers/front.js';
import { runLoad, type Sent } from './helpers/http-load.js';

const WORK_PHP = `<?php
// Echoes what the request and the worker look like, so each config change can be seen.
usleep(1000);
$body = file_get_contents('php://input');
header('Content-Type: application/json');
echo json_encode(['sapi' => PHP_SAPI, 'pid' => getmypid(), 'version' => getenv('VERSION'), 'body' => $body]);
`;

/** worker.yaml for one stage of the test. */
function worker(options: { fpm?: boolean; version: string; pool: string }): string {
  return [
    'path: /site',
    'access_log:',
    '  path: ~',
    'php:',
    '  env:',
    `    VERSION: "${options.version}"`,
    '  pool:',
    ...options.pool.split('\n').map((line) => `    ${line}`),
    '    max_requests: 5',
    '    request_timeout: 10s',
    ...(options.fpm ? ['php_fpm:', '  enabled: true'] : []),
    '',
  ].join('\n');
}

/** Requests sent between two changes, so each stage runs under load for a few seconds. */
const PER_STAGE = 250;

interface Reply {
  sapi: string;
  version: string;
  body: string;
}

describe('hot reload under load', () => {
  let project: Project;
  let cli: CliProcess & { port: number };

  after(async () => {
    if (cli) await stopCli(cli);
    await project?.cleanup();
  });

  test('every change applied while requests keep flowing: zero failures, every change seen by PHP', { timeout: 120_000 }, async () => {
    project = await makeProject({
      server: serverYaml({ shutdown_timeout_seconds: 10 }),
      apps: [{ name: 'site', worker: worker({ version: '1', pool: 'manager: static\nmax_workers: 3' }), site: false }],
    });
    writeFileSync(join(project.docRoot('site'), 'work.php'), WORK_PHP);
    const workerFile = join(project.root, 'workers', 'site', 'config', 'worker.yaml');
    cli = await startCli(project.root);

    let stop = false;
    let sent = 0;
    const load = runLoad({
      port: cli.port,
      clients: 12,
      done: () => stop,
      request: (client, n) => {
        sent += 1;
        // Half GETs, half POSTs with a body: a body must never be lost or sent twice.
        if ((client + n) % 2 === 0) return { path: '/site/work.php', headers: { accept: 'application/json' } };
        return { method: 'POST', path: '/site/work.php', body: `client ${client} request ${n}`, headers: { 'content-type': 'text/plain', accept: 'application/json' } };
      },
    });

    /** Waits for the next reload's "done" line, then for more traffic to have flowed. */
    let reloadsSeen = 0;
    const reloaded = async () => {
      reloadsSeen += 1;
      await cli.waitForCount(/reload \([^)]*\) done/, reloadsSeen, 30_000);
      const mark = sent;
      while (sent < mark + PER_STAGE) await new Promise((resolve) => setImmediate(resolve));
    };
    const change = async (text: string) => {
      writeFileSync(workerFile, text);
      await reloaded();
    };

    const traffic = async (count: number) => {
      const mark = sent;
      while (sent < mark + count) await new Promise((resolve) => setImmediate(resolve));
    };
    await traffic(PER_STAGE);
    // 1. The pool resized in place.
    await change(worker({ version: '1', pool: 'manager: dynamic\nmax_workers: 5\nstart_workers: 2\nmin_workers: 1\nmax_spare_workers: 3' }));
    // 2. New env: a new php-cgi backend, the old one drained.
    await change(worker({ version: '2', pool: 'manager: static\nmax_workers: 3' }));
    // 3. Switched to php-fpm.
    await change(worker({ fpm: true, version: '3', pool: 'manager: static\nmax_workers: 3' }));
    // 4. php-fpm's pool reloaded (SIGUSR2) with more children.
    await change(worker({ fpm: true, version: '3', pool: 'manager: static\nmax_workers: 4' }));
    // 5. Logs reopened.
    cli.kill('SIGUSR1');
    await cli.waitForOutput(/SIGUSR1: \d+ log files? reopened/);
    await traffic(PER_STAGE);
    // 6. Back to php-cgi with a smaller pool (idle workers over the new limit stop, busy ones after their request).
    await change(worker({ version: '4', pool: 'manager: static\nmax_workers: 4' }));
    await change(worker({ version: '4', pool: 'manager: static\nmax_workers: 2' }));
    // 7. By SIGHUP (the watcher sees the file too; both reloads are applied in turn).
    writeFileSync(workerFile, worker({ version: '5', pool: 'manager: ondemand\nmax_workers: 3' }));
    cli.kill('SIGHUP');
    await reloaded();
    await traffic(PER_STAGE);

    stop = true;
    const results: Sent[] = await load;
    const failures = results.filter((r) => r.status !== 200);
    assert.deepEqual(
      failures.slice(0, 5).map((r) => `${r.status} ${r.error ?? r.body.slice(0, 200)}`),
      [],
      `${failures.length} of ${results.length} requests failed; the server's warnings and errors:\n${cli
        .output()
        .split('\n')
        .filter((line) => /\b(WARN|ERROR|FATAL)\b/.test(line))
        .slice(-30)
        .join('\n')}`,
    );
    const replies = results.map((r) => JSON.parse(r.body) as Reply);
    // Each POST body reached PHP whole, exactly once per request (the bodies are unique).
    const bodies = replies.map((r) => r.body).filter((body) => body !== '');
    assert.ok(bodies.length > 100, `POSTs went through (${bodies.length})`);
    for (const body of bodies) assert.match(body, /^client \d+ request \d+$/);
    assert.equal(new Set(bodies).size, bodies.length, 'no POST was run twice');
    // Every stage was really served: both SAPIs and every VERSION the config gave.
    assert.deepEqual([...new Set(replies.map((r) => r.sapi))].sort(), ['cgi-fcgi', 'fpm-fcgi']);
    assert.deepEqual([...new Set(replies.map((r) => r.version))].sort(), ['1', '2', '3', '4', '5']);
    const slowest = Math.max(...results.map((r) => r.ms));
    assert.ok(slowest < 10_000, `no request took longer than request_timeout (slowest ${slowest} ms)`);
    // And the log never reported a failed step.
    assert.doesNotMatch(cli.output(), /reload: .*failed/);
  });
});
