// Apps that come and go with their folders, on the real CLI in production mode (the config watcher is
// always on): a folder moved into workers/ starts an app that answers at its path; one whose
// worker.yaml is written before its document root exists starts once the document root appears;
// deleting a folder unroutes its app (404) and stops its php-cgi processes.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { alive, get, makeProject, serverYaml, startCli, stopCli, statusJson, workerYaml, type CliProcess, type Project } from './helpers/front.js';

/** Polls `probe` (a state, not a clock) until it returns a value, or fails after timeoutMs. */
async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const hello = (name: string) => `<?php echo "hello from ${name}, pid ", getmypid();\n`;

/** The pids of an app's php-cgi processes, from the status page. */
async function pidsOf(port: number, app: string): Promise<number[]> {
  const pool = (await statusJson(port)).pools.find((p) => p.pool === app);
  if (!pool) throw new Error(`no pool ${app} on the status page`);
  return (pool.processes as Array<{ pid: number }>).map((p) => p.pid);
}

describe('apps appear and disappear with their folders', () => {
  let project: Project;
  let cli: CliProcess & { port: number };
  let workers: string;

  before(async () => {
    project = await makeProject({
      server: serverYaml(),
      apps: [{ name: 'main', site: false, worker: workerYaml('/main', { max_workers: 1 }, { extra: 'access_log:\n  path: ~' }) }],
    });
    writeFileSync(join(project.docRoot('main'), 'hello.php'), hello('main'));
    workers = join(project.root, 'workers');
    cli = await startCli(project.root);
  });

  after(async () => {
    if (cli) await stopCli(cli);
    await project?.cleanup();
  });

  test('a folder moved into workers/ starts its app; deleting it stops the app and its processes', { timeout: 60_000 }, async () => {
    assert.equal((await get(cli.port, '/extra/hello.php')).status, 404, 'nothing at /extra yet');
    // Built elsewhere and moved in whole, as a deploy does.
    const staging = mkdtempSync(join(tmpdir(), 'tqserver-new-app-'));
    mkdirSync(join(staging, 'config'));
    mkdirSync(join(staging, 'public'));
    writeFileSync(join(staging, 'public', 'hello.php'), hello('extra'));
    writeFileSync(join(staging, 'config', 'worker.yaml'), workerYaml('/extra', { max_workers: 2 }, { extra: 'access_log:\n  path: ~' }));
    renameSync(staging, join(workers, 'extra'));

    await cli.waitForOutput(/reload: app extra added at \/extra/);
    const answer = await get(cli.port, '/extra/hello.php');
    assert.equal(answer.status, 200);
    assert.match(answer.text, /^hello from extra, pid \d+$/);
    const pids = await pidsOf(cli.port, 'extra');
    assert.equal(pids.length, 2);
    assert.ok(pids.every(alive), 'its php-cgi processes run');
    const mainPids = await pidsOf(cli.port, 'main');

    rmSync(join(workers, 'extra'), { recursive: true });
    await cli.waitForOutput(/reload: app extra removed/);
    const gone = await get(cli.port, '/extra/hello.php');
    assert.equal(gone.status, 404);
    assert.match(gone.text, /No application is mounted at this path/);
    await until('the removed app\'s php-cgi processes to exit', () => (pids.some(alive) ? undefined : true));
    assert.deepEqual(
      (await statusJson(cli.port)).pools.map((p) => p.pool),
      ['main'],
    );
    // The other app never noticed.
    assert.deepEqual(await pidsOf(cli.port, 'main'), mainPids);
    assert.match((await get(cli.port, '/main/hello.php')).text, /^hello from main/);
  });

  test('a worker.yaml written before its document root exists: the app starts when the folder appears', { timeout: 60_000 }, async () => {
    const folder = join(workers, 'late');
    mkdirSync(join(folder, 'config'), { recursive: true });
    writeFileSync(join(folder, 'config', 'worker.yaml'), workerYaml('/late', { max_workers: 1 }, { extra: 'access_log:\n  path: ~' }));
    // Invalid for now (no public/): the running config stays, and the log says why.
    await cli.waitForOutput(/late\/config\/worker\.yaml: document_root: .*public is not a folder/);
    assert.equal((await get(cli.port, '/late/')).status, 404);

    // The document root made afterwards, with its script written first so the app serves it at once.
    const staging = mkdtempSync(join(tmpdir(), 'tqserver-late-root-'));
    writeFileSync(join(staging, 'hello.php'), hello('late'));
    renameSync(staging, join(folder, 'public'));
    await cli.waitForOutput(/reload: app late added at \/late/);
    const answer = await get(cli.port, '/late/hello.php');
    assert.equal(answer.status, 200);
    assert.match(answer.text, /^hello from late/);
    const pids = await pidsOf(cli.port, 'late');
    assert.ok(pids.length > 0 && pids.every(alive));

    rmSync(folder, { recursive: true });
    await cli.waitForOutput(/reload: app late removed/);
    assert.equal((await get(cli.port, '/late/hello.php')).status, 404);
    await until('the removed app\'s php-cgi processes to exit', () => (pids.some(alive) ? undefined : true));
  });
  test('server.max_header_size applies on reload, without a restart, to the connections opened from then on', { timeout: 60_000 }, async () => {
    const serverFile = join(project.root, 'config', 'server.yaml');
    const header = (bytes: number) => ({ 'X-Filler': 'x'.repeat(bytes) });
    assert.equal((await get(cli.port, '/main/hello.php', header(10_000))).status, 200, 'under the default 16K');

    writeFileSync(serverFile, serverYaml({ max_header_size: '8K' }));
    await cli.waitForOutput(/server settings updated: server\.max_header_size/);
    assert.equal((await get(cli.port, '/main/hello.php', header(10_000))).status, 431);

    writeFileSync(serverFile, serverYaml({ max_header_size: '32K' }));
    await cli.waitForOutput(/server settings updated: server\.max_header_size[\s\S]*server settings updated: server\.max_header_size/);
    const big = await get(cli.port, '/main/hello.php', header(20_000));
    assert.equal(big.status, 200);
    assert.match(big.text, /^hello from main/);
    assert.doesNotMatch(cli.output(), /waiting for a restart/);
  });
});
