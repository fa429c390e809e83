// Regression: TQServer killed with SIGKILL (the OOM killer, kill -9, systemd's final kill) left its
// php-cgi workers, its php-fpm master and the master's children running for good, listening on
// sockets in temp folders. The kernel now signals them when TQServer dies (setpriv --pdeathsig):
// every one is gone soon after, busy ones included. Its temp folders stay (nothing runs at a
// SIGKILL); the next TQServer to start removes them.

import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { get, makeProject, serverYaml, startCli, workerYaml, type CliProcess, type Project } from './helpers/front.js';
import { childrenOf, until } from './helpers/supervisor.js';

/** A script that never ends: it writes its pid where the test looks, then spins, time limit off. */
const SPIN = `<?php
set_time_limit(0);
file_put_contents($_GET['pidfile'], (string) getmypid());
while (true) {}
`;

/** /proc/PID/comm, or '' when the process is gone. */
function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return '';
  }
}

/** The process state letter from /proc/PID/stat ("R", "S", "Z"), or '' when it is gone. */
function procState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return '';
  }
}

/** Gone, or a zombie its new parent has not reaped yet (a container's pid 1 may reap late or never). */
function ended(pid: number): boolean {
  const state = procState(pid);
  return state === '' || state === 'Z';
}

/** The PHP processes under `pid`, two levels down: php-cgi workers and the php-fpm master, and the master's children. */
function phpTree(pid: number): Map<number, string> {
  const found = new Map<number, string>();
  for (const child of childrenOf(pid)) {
    if (!comm(child).startsWith('php')) continue;
    found.set(child, comm(child));
    for (const grandchild of childrenOf(child)) if (comm(grandchild).startsWith('php')) found.set(grandchild, `${comm(grandchild)} (child of ${child})`);
  }
  return found;
}

/**
 * The private folders TQServer made for these processes (php-cgi's `-b DIR/wN.sock`, php-fpm's
 * "master process (DIR/php-fpm.conf)"): a TQServer killed with SIGKILL cannot remove them, the test does.
 */
function privateFolders(pids: readonly number[], tmp: string): string[] {
  const folders = new Set<string>();
  for (const pid of pids) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    } catch {
      continue;
    }
    const socket = argv[argv.indexOf('-b') + 1];
    if (argv.includes('-b') && socket) folders.add(dirname(socket));
    const fpm = /master process \((\/.+)\/php-fpm\.conf\)/.exec(argv.join(' '));
    if (fpm) folders.add(fpm[1]!);
  }
  return [...folders].filter((folder) => dirname(folder) === tmp && basename(folder).startsWith('tqserver-'));
}

/** Starts a request for spin.php and resolves with the pid of the PHP process running it. */
async function spin(port: number, path: string, pidfile: string, requests: http.ClientRequest[]): Promise<number> {
  const req = http.get({ host: '127.0.0.1', port, path: `${path}?pidfile=${encodeURIComponent(pidfile)}`, agent: false });
  // The answer never comes: TQServer is killed while the script runs.
  req.on('error', () => {});
  req.on('response', (res) => res.resume());
  requests.push(req);
  await until(`${path} to start (${pidfile})`, () => existsSync(pidfile) && readFileSync(pidfile, 'utf8') !== '', 10_000);
  return Number(readFileSync(pidfile, 'utf8'));
}

describe('tqserver killed with SIGKILL', () => {
  test('leaves no php-cgi worker, php-fpm master or php-fpm child behind, busy ones included; the next start removes its temp folders', async () => {
    let project: Project | undefined;
    let cli: (CliProcess & { port: number }) | undefined;
    let next: (CliProcess & { port: number }) | undefined;
    // A TMPDIR of its own: a TQServer of another test starting meanwhile would sweep these folders too.
    const tmp = mkdtempSync(join(tmpdir(), 'sigkill-tmp-'));
    const env = { ...process.env, TMPDIR: tmp };
    let pids: number[] = [];
    let folders: string[] = [];
    const requests: http.ClientRequest[] = [];
    try {
      project = await makeProject({
        server: serverYaml(),
        apps: [
          { name: 'cgi', worker: workerYaml('/cgi', { max_workers: 2 }) },
          { name: 'fpm', worker: workerYaml('/fpm', { max_workers: 2 }, { extra: 'php_fpm:\n  enabled: true' }) },
        ],
      });
      for (const app of ['cgi', 'fpm']) writeFileSync(join(project.docRoot(app), 'spin.php'), SPIN);
      cli = await startCli(project.root, [], env);
      for (const app of ['cgi', 'fpm']) {
        const reply = await get(cli.port, `/${app}/index.php`);
        assert.equal(reply.status, 200, `${app} serves a request: ${reply.text.slice(0, 300)}`);
      }
      const busyCgi = await spin(cli.port, '/cgi/spin.php', join(project.root, 'cgi.pid'), requests);
      const busyFpm = await spin(cli.port, '/fpm/spin.php', join(project.root, 'fpm.pid'), requests);

      const tree = phpTree(cli.pid);
      pids = [...tree.keys()];
      folders = privateFolders(pids, tmp);
      const described = [...tree].map(([pid, name]) => `${pid} ${name}`).join(', ');
      const direct = new Set(childrenOf(cli.pid));
      const workers = pids.filter((pid) => direct.has(pid) && comm(pid).startsWith('php-cgi'));
      const masters = pids.filter((pid) => direct.has(pid) && comm(pid).startsWith('php-fpm'));
      assert.equal(workers.length, 2, `two php-cgi workers: ${described}`);
      assert.equal(masters.length, 1, `one php-fpm master: ${described}`);
      const fpmChildren = childrenOf(masters[0]!).filter((pid) => tree.has(pid));
      assert.ok(fpmChildren.length >= 1, `php-fpm children: ${described}`);
      assert.ok(workers.includes(busyCgi), `the busy php-cgi ${busyCgi} is a worker: ${described}`);
      assert.ok(fpmChildren.includes(busyFpm), `the busy php-fpm child ${busyFpm} is the master's: ${described}`);
      assert.equal(folders.length, 2, `the php-cgi pool's and php-fpm's private folders: ${folders.join(', ')}`);

      cli.kill('SIGKILL');
      assert.equal((await cli.exited).signal, 'SIGKILL');
      await until('every PHP process to end after TQServer was killed', () => pids.every(ended), 10_000).catch((error: Error) => {
        const left = pids.filter((pid) => !ended(pid)).map((pid) => `${pid} ${comm(pid)} (${procState(pid)})`);
        throw new Error(`${error.message}; still running: ${left.join(', ')}`);
      });

      // The folders outlive it; the next TQServer removes them before it starts its apps, and its own
      // folders are gone after a graceful stop.
      assert.ok(folders.every((folder) => existsSync(folder)), 'nothing removed the folders at the SIGKILL');
      next = await startCli(project.root, [], env);
      const line = await next.waitForOutput(/removed (\d+) temp folders left by TQServer processes that are gone/);
      assert.equal(Number(line[1]), 2, line[0]);
      assert.deepEqual(folders.filter((folder) => existsSync(folder)), [], 'both folders removed');
      assert.equal((await get(next.port, '/cgi/index.php')).status, 200, 'the next TQServer serves');
      next.kill('SIGTERM');
      assert.equal((await next.exited).code, 0);
      assert.deepEqual(readdirSync(tmp).filter((name) => name.startsWith('tqserver-')), [], 'a graceful stop leaves no temp folder');
    } finally {
      for (const req of requests) req.destroy();
      if (cli && cli.child.exitCode === null && cli.child.signalCode === null) {
        cli.kill('SIGKILL');
        await cli.exited;
      }
      // Whatever the kernel did not end is ended here, by pid, so a failure leaves nothing behind.
      for (const pid of pids) {
        if (ended(pid)) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      if (next && next.child.exitCode === null && next.child.signalCode === null) {
        next.kill('SIGKILL');
        await next.exited;
      }
      rmSync(tmp, { recursive: true, force: true });
      await project?.cleanup();
    }
  });
});
