// The tqserver command as operators run it (node dist/src/cli.js in a child process): --check on
// good and broken configs, --version, --help, bad flags, --quiet with the log file, and a graceful
// shutdown under load that loses no request and leaves no php-cgi process behind.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VERSION } from '../src/version.js';
import { alive, get, makeProject, REPO_ROOT, runCli, serverYaml, startCli, statusJson, workerYaml, type Project } from './helpers/front.js';

/** Runs the CLI to its end; resolves with its exit code and output. */
async function runToEnd(args: string[], cwd = REPO_ROOT): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = runCli(args, { cwd });
  let stdout = '';
  let stderr = '';
  cli.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  cli.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const { code } = await cli.exited;
  return { code, stdout, stderr };
}

/** Checks every `intervalMs` until `read()` returns something; fails after `timeoutMs`. For files no event announces. */
async function poll<T>(read: () => T | undefined, what: string, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

describe('tqserver --check, --version, --help and flags', () => {
  test('--check on the repository\'s own config: exit 0 and a summary of the apps', async () => {
    const result = await runToEnd(['--check']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^configuration OK: 1 app \(blog at \/blog\)\n$/);
    assert.equal(result.stderr, '');
  });

  test('--check on broken configs: exit 1 and every problem printed as "file: key: message"', async () => {
    const project = await makeProject({
      server: 'server:\n  port: eighty\n  log_fil: x.log\n',
      apps: [
        { name: 'badpath', worker: 'path: blog\n', site: false },
        { name: 'badtype', worker: 'path: /node\ntype: node\n', site: false },
        { name: 'badpool', worker: 'path: /pool\nphp:\n  pool:\n    manager: dynamic\n    max_workers: 0\n', site: false },
        { name: 'badroot', worker: 'path: /root\ndocument_root: nowhere\n', site: false },
        { name: 'badyaml', worker: 'path: /yaml\nphp: [unclosed\n', site: false },
        { name: 'off', worker: 'path: /off\nenabled: false\n', site: false },
      ],
    });
    try {
      const result = await runToEnd(['--check', '--root', project.root]);
      assert.equal(result.code, 1);
      const lines = result.stderr.trimEnd().split('\n');
      const expected: Array<[string, RegExp]> = [
        ['config/server.yaml: server.port: ', /config\/server\.yaml: server\.port: .+/],
        ['config/server.yaml: server.log_fil: ', /config\/server\.yaml: server\.log_fil: .*(unknown|not a known|did you mean).*log_file/i],
        ['badpath path', /workers\/badpath\/config\/worker\.yaml: path: must start with \//],
        ['badtype type', /workers\/badtype\/config\/worker\.yaml: type: only php workers are supported.*"node"/],
        ['badpool max_workers', /workers\/badpool\/config\/worker\.yaml: php\.pool\.max_workers: .+/],
        ['badroot document_root', /workers\/badroot\/config\/worker\.yaml: document_root: .*nowhere is not a folder/],
        ['badyaml YAML', /workers\/badyaml\/config\/worker\.yaml: YAML: .+/],
      ];
      for (const [what, pattern] of expected) assert.ok(lines.some((line) => pattern.test(line)), `${what}: no line matches ${pattern} in:\n${result.stderr}`);
      assert.match(lines.at(-1)!, /^tqserver: \d+ configuration problems; nothing was started$/);
      assert.ok(!result.stderr.includes('/off'), 'a disabled app is not checked as an app to start');
      assert.equal(result.stdout, '');
    } finally {
      await project.cleanup();
    }
  });

  test('--check with a php binary that does not exist: exit 1, the app\'s file named', async () => {
    const project = await makeProject({ server: serverYaml(), apps: [{ name: 'app', worker: 'path: /app\nphp:\n  binary: /nonexistent/php-cgi\n' }] });
    try {
      const result = await runToEnd(['--check', '--root', project.root]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /workers\/app\/config\/worker\.yaml: .*\/nonexistent\/php-cgi/);
    } finally {
      await project.cleanup();
    }
  });

  test('--check counts only enabled apps', async () => {
    const project = await makeProject({
      server: serverYaml(),
      apps: [
        { name: 'on', worker: workerYaml('/on') },
        { name: 'off', worker: 'path: /off\nenabled: false\n', site: false },
      ],
    });
    try {
      const result = await runToEnd(['--check', '--root', project.root]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, 'configuration OK: 1 app (on at /on)\n');
    } finally {
      await project.cleanup();
    }
  });

  test('--check with a missing --config file: exit 1', async () => {
    const result = await runToEnd(['--check', '--config', '/nonexistent/server.yaml']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /\/nonexistent\/server\.yaml: file not found \(given with --config\)/);
  });

  test('--version prints the version', async () => {
    const result = await runToEnd(['--version']);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, `tqserver ${VERSION}\n`);
  });

  test('--help prints the usage with every flag', async () => {
    const result = await runToEnd(['--help']);
    assert.equal(result.code, 0);
    for (const flag of ['--config FILE', '--root DIR', '--mode', '--quiet', '--check', '--version', '--help']) assert.ok(result.stdout.includes(flag), flag);
    assert.match(result.stdout, /^Usage: tqserver \[--config FILE\] \[--root DIR\] \[--mode dev\|prod\] \[--quiet\] \[--check\]/);
  });

  test('a bad flag, a bad --mode or a stray argument: exit 2 with the usage', async () => {
    for (const args of [['--bogus'], ['--mode', 'staging'], ['serve']]) {
      const result = await runToEnd(args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, /^tqserver: .+\n\nUsage: tqserver/, args.join(' '));
      assert.equal(result.stdout, '');
    }
  });
});

describe('tqserver running', () => {
  let project: Project;

  before(async () => {
    project = await makeProject({
      server: serverYaml({ log_file: 'logs/tq_{date}.log', shutdown_timeout_seconds: 10 }),
      apps: [{ name: 'app', worker: workerYaml('/', { max_workers: 4, queue_limit: 64 }) }],
    });
  });

  after(async () => {
    await project?.cleanup();
  });

  test('--quiet prints nothing on the console; the log file (server.log_file with {date}) gets every line', async () => {
    const cli = runCli(['--root', project.root, '--quiet']);
    const now = new Date();
    const date = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
    const logFile = join(project.root, 'logs', `tq_${date}.log`);
    const listening = await poll(() => {
      if (!existsSync(logFile)) return undefined;
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(readFileSync(logFile, 'utf8'));
      return match ? Number(match[1]) : undefined;
    }, 'the log file says where TQServer listens');
    assert.equal((await get(listening, '/sleep.php?ms=0')).status, 200);
    cli.kill('SIGTERM');
    const exit = await cli.exited;
    assert.equal(exit.code, 0);
    assert.equal(cli.output(), '', 'nothing on stdout or stderr');
    const lines = readFileSync(logFile, 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as { msg: string; level: number; time: string });
    assert.ok(lines.some((l) => /pool app started/.test(l.msg)));
    assert.ok(lines.some((l) => /SIGTERM: stopping gracefully/.test(l.msg)));
    assert.match(lines.at(-1)!.msg, /^stopped after \d+ ms$/, 'the last line is written before the process exits');
    assert.ok(lines.every((l) => typeof l.time === 'string' && typeof l.level === 'number'));
    // The app's access log is there too; its slow and PHP error logs are only created by a first line.
    assert.deepEqual(readdirSync(join(project.root, 'logs')).sort(), [`app_access_${date}.log`, `tq_${date}.log`]);
  });

  test('graceful shutdown under load: every request that started before SIGTERM completes with 200, new connections are refused, exit 0, no php-cgi left', async (t) => {
    const cli = await startCli(project.root);
    // An assertion that fails before the SIGTERM must not leave the CLI holding this test file open.
    t.after(() => {
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.kill('SIGKILL');
    });
    const port = cli.port;
    const statuses: number[] = [];
    const failures: string[] = [];
    let phase: 'load' | 'final' = 'load';
    let finalSent = 0;
    const finals: Array<Promise<number>> = [];

    /** One request on a new connection: its status, or -1 (and the reason in failures). */
    const once = (path: string): Promise<number> =>
      new Promise((resolve) => {
        const failed = (error: Error) => {
          failures.push(`${path}: ${error.message}`);
          resolve(-1);
        };
        const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', failed);
        });
        req.on('error', failed);
      });

    // 16 loops: half ask for a script that sleeps 300 ms (4 workers: most of them queue), half for
    // quick ones (PHP and static). Each loop sends its next request when the previous one ended.
    const loops = Array.from({ length: 16 }, async (_, i) => {
      const path = i % 2 === 0 ? '/sleep.php?ms=300' : i % 4 === 1 ? '/sleep.php?ms=0' : '/assets/hello.txt';
      while (phase === 'load') statuses.push(await once(path));
      // The final request of each loop is a slow one, in flight when the signal comes.
      finalSent += 1;
      finals.push(once('/sleep.php?ms=300'));
    });
    await poll(() => (statuses.length >= 64 ? true : undefined), 'load: 64 requests done');
    phase = 'final';
    await Promise.all(loops);
    assert.equal(finalSent, 16);
    // Wait until all 16 final requests are on the server: running in PHP or waiting in the pool's
    // queue (the status page is answered without a worker).
    let snapshot = (await statusJson(port)).pools[0]!;
    const deadline = Date.now() + 10_000;
    while (snapshot['active processes'] + snapshot['listen queue'] < 16 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      snapshot = (await statusJson(port)).pools[0]!;
    }
    assert.equal(snapshot['active processes'] + snapshot['listen queue'], 16, `16 requests on the server: ${JSON.stringify(snapshot)}`);
    const pids = (snapshot.processes as Array<{ pid: number }>).map((p) => p.pid);
    assert.equal(pids.length, 4);
    assert.ok(pids.every(alive));

    const signalledAt = Date.now();
    cli.kill('SIGTERM');
    await cli.waitForOutput(/SIGTERM: stopping gracefully/);
    // The listener is closed as soon as the stop starts, while the 16 requests still run.
    const refused = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    assert.equal(refused, 'ECONNREFUSED');

    const finalStatuses = await Promise.all(finals);
    assert.deepEqual(finalStatuses, Array(16).fill(200), `every request in flight at SIGTERM completed: ${failures.join('; ')}`);
    const exit = await cli.exited;
    const tookMs = Date.now() - signalledAt;
    assert.equal(exit.code, 0, cli.output().slice(-2000));
    assert.ok(tookMs < 10_000, `exited within the grace period (took ${tookMs} ms)`);
    assert.ok(statuses.length >= 64 && statuses.every((s) => s === 200), `every request under load succeeded: ${JSON.stringify(statuses.filter((s) => s !== 200))} ${failures.join('; ')}`);
    const left = pids.filter(alive);
    assert.deepEqual(left, [], `php-cgi processes left behind: ${left.join(', ')}`);
    assert.match(cli.output(), /stopped after \d+ ms/);
  });

  test('SIGINT stops gracefully too', async () => {
    const cli = await startCli(project.root);
    const snapshot = (await statusJson(cli.port)).pools[0]!;
    const pids = (snapshot.processes as Array<{ pid: number }>).map((p) => p.pid);
    cli.kill('SIGINT');
    const exit = await cli.exited;
    assert.equal(exit.code, 0);
    assert.match(cli.output(), /SIGINT: stopping gracefully/);
    assert.deepEqual(pids.filter(alive), []);
  });
});

describe('tqserver stopping with requests that outlive the grace period', () => {
  /** Starts the CLI on a one-worker app, with a 10 s request running; returns the worker pid. */
  async function busyServer(shutdownSeconds: number) {
    const project = await makeProject({ server: serverYaml({ shutdown_timeout_seconds: shutdownSeconds }), apps: [{ name: 'app', worker: workerYaml('/', { max_workers: 1 }) }] });
    const cli = await startCli(project.root);
    const req = http.get({ host: '127.0.0.1', port: cli.port, path: '/sleep.php?ms=10000', agent: false });
    const outcome = new Promise<string>((resolve) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(`status ${res.statusCode}`));
        res.on('error', (error) => resolve(error.message));
      });
      req.on('error', (error) => resolve(error.message));
    });
    let snapshot = (await statusJson(cli.port)).pools[0]!;
    while (snapshot['active processes'] !== 1) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      snapshot = (await statusJson(cli.port)).pools[0]!;
    }
    const pid = (snapshot.processes as Array<{ pid: number }>)[0]!.pid;
    return { project, cli, outcome, pid };
  }

  test('shutdown_timeout passes: the request is cut, the worker killed, the process exits 0 soon after', async () => {
    const { project, cli, outcome, pid } = await busyServer(1);
    try {
      const signalledAt = Date.now();
      cli.kill('SIGTERM');
      const exit = await cli.exited;
      const tookMs = Date.now() - signalledAt;
      assert.equal(exit.code, 0);
      assert.ok(tookMs >= 900 && tookMs < 5000, `waited about the 1 s grace period, took ${tookMs} ms`);
      assert.doesNotMatch(await outcome, /^status 200$/, 'the 10 s request did not get to finish');
      assert.equal(alive(pid), false, `php-cgi ${pid} is gone`);
      assert.match(cli.output(), /1 requests still running after 1000 ms; closing their connections/);
    } finally {
      await project.cleanup();
    }
  });

  test('a second SIGTERM stops at once (exit 1), without waiting for the grace period', async () => {
    const { project, cli, outcome, pid } = await busyServer(30);
    try {
      cli.kill('SIGTERM');
      await cli.waitForOutput(/SIGTERM: stopping gracefully/);
      const againAt = Date.now();
      cli.kill('SIGTERM');
      const exit = await cli.exited;
      assert.equal(exit.code, 1);
      assert.ok(Date.now() - againAt < 3000, `stopped at once, took ${Date.now() - againAt} ms`);
      assert.match(cli.output(), /SIGTERM again: stopping now/);
      assert.doesNotMatch(await outcome, /^status 200$/);
      assert.equal(alive(pid), false, `php-cgi ${pid} is gone`);
    } finally {
      await project.cleanup();
    }
  });
});

describe('tqserver with a config it cannot start', () => {
  test('a FastCGI listen address already in use: exit 1, the reason printed, no php-cgi left', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    const project = await makeProject({ server: serverYaml(), apps: [{ name: 'app', worker: workerYaml('/', { max_workers: 1 }, { extra: `fastcgi:\n  listen: 127.0.0.1:${taken}` }) }] });
    try {
      // dev mode logs each worker's pid as it comes up.
      const result = await runToEnd(['--root', project.root, '--mode', 'dev']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /cannot start: .*(EADDRINUSE|in use)/i);
      const pids = [...result.stderr.matchAll(/\(pid (\d+)\) ready/g)].map((m) => Number(m[1]));
      assert.equal(pids.length, 1, `the worker started before the FastCGI front failed: ${result.stderr}`);
      assert.deepEqual(pids.filter(alive), [], 'and was stopped');
    } finally {
      blocker.close();
      await project.cleanup();
    }
  });
});
