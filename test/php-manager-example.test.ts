// examples/php-manager run as a user would run it: it prints stats while serving, and on SIGTERM
// or SIGINT it stops with exit code 0 and no php-cgi process left behind.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { processGone } from './helpers/supervisor.js';

const MAIN = fileURLToPath(new URL('../examples/php-manager/main.js', import.meta.url));

/** Starts the example; resolves its output so far and the pids of its first stats line with requests in it. */
function run(args: string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const pids = new Set<number>();
  const firstStats = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      for (const match of stdout.matchAll(/pids=([\d,]+)/g)) for (const pid of match[1]!.split(',')) pids.add(Number(pid));
      const line = stdout.split('\n').find((l) => l.startsWith('[stats]') && !/ 0 accepted/.test(l));
      if (line) resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`the example exited (${code}) before printing stats:\n${stdout}\n${stderr}`)));
  });
  return { child, exited, firstStats, pids, output: () => ({ stdout, stderr }) };
}

describe('examples/php-manager', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`prints stats while serving; ${signal} stops it with code 0 and no php-cgi left`, async () => {
      const example = run(['--stats-interval-ms', '200', '--request-interval-ms', '20', '--max-requests', '10']);
      const line = await example.firstStats;
      assert.match(line, /^\[stats\] pool demo \(static\): 2 total, \d idle, \d active, \d+ queued; \d+ accepted, \d+ served, 0 failed; restarts: .* \| pid \d+ (idle|active) \d+ req [\d.]+ MiB; pid \d+ /);
      assert.ok(example.pids.size >= 2);
      for (const pid of example.pids) assert.equal(processGone(pid), false, `php-cgi ${pid} runs while the example runs`);
      example.child.kill(signal);
      const [code, killedBy] = await example.exited;
      const { stdout, stderr } = example.output();
      assert.equal(code, 0, `${stdout}\n${stderr}`);
      assert.equal(killedBy, null);
      assert.match(stdout, new RegExp(`php-manager: ${signal}; stopping`));
      assert.match(stdout, /php-manager: stopped; \d+ php-cgi processes ran, none is left; \d+ requests served, 0 failed\n$/);
      for (const pid of example.pids) assert.ok(processGone(pid), `php-cgi ${pid} is gone`);
    });
  }
});
