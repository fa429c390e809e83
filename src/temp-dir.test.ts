import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import { memoryLogger } from './log.js';
import { makeTempDir, sweepTempDirs } from './temp-dir.js';

const NAMESPACE = Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))![1]);

/** A pid that ran and is gone (not reused within the test's milliseconds on a machine with pid_max in the millions). */
function deadPid(): number {
  const pid = spawnSync('true').pid;
  assert.ok(pid > 0);
  return pid;
}

test('makeTempDir: a private folder in the temp folder, named for our pid namespace and pid', async () => {
  const dir = await makeTempDir('pool/with odd*chars');
  try {
    assert.equal(dirname(dir), tmpdir());
    assert.match(basename(dir), new RegExp(`^tqserver-${NAMESPACE}\\.${process.pid}-pool_with_odd_chars-\\w{6}$`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A zombie: a child of `sleep`, which never reaps it. Resolves with its pid and a way to end its parent. */
async function zombie(): Promise<{ pid: number; end: () => void }> {
  // The child outlives the shell's exec by a second, so the shell (which would reap it) is gone by then.
  const parent = spawn('sh', ['-c', 'sleep 1 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
  const pid = Number(line.toString().trim());
  const state = () => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return stat.charAt(stat.lastIndexOf(')') + 2);
    } catch {
      return '';
    }
  };
  for (let i = 0; i < 1000 && state() !== 'Z'; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(state(), 'Z', `process ${pid} is a zombie`);
  return { pid, end: () => parent.kill('SIGKILL') };
}

test('a TQServer that is a zombie (killed, never reaped) counts as gone', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sweep-test-'));
  const z = await zombie();
  try {
    const name = `tqserver-${NAMESPACE}.${z.pid}-blog-Zz9Zz9`;
    mkdirSync(join(root, name));
    const { log } = memoryLogger('info');
    assert.deepEqual(await sweepTempDirs(log, root), [join(root, name)]);
  } finally {
    z.end();
    rmSync(root, { recursive: true, force: true });
  }
});

test('sweepTempDirs removes only the folders of TQServer processes that are gone, in our namespace, ours, real directories', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sweep-test-'));
  try {
    const dead = deadPid();
    const make = (name: string) => {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, 'w1.sock'), '');
      mkdirSync(join(root, name, 'pool.d'));
      writeFileSync(join(root, name, 'pool.d', 'app.conf'), '[app]\n');
      return name;
    };
    const stale = [make(`tqserver-${NAMESPACE}.${dead}-fpm-shop-Ab12Cd`), make(`tqserver-${NAMESPACE}.${dead}-body-x1y2z3`)];
    const kept = [
      make(`tqserver-${NAMESPACE}.${process.pid}-site-aaaaaa`), // a live process (this one)
      make(`tqserver-${NAMESPACE}.1-site-bbbbbb`), // pid 1 runs
      make(`tqserver-${NAMESPACE + 1}.${dead}-site-cccccc`), // another pid namespace: its pids are not ours to judge
      make(`tqserver-site-dddddd`), // the names before pids were in them
      make(`tqserver-client-fpm-eeeeee`), // a test's folder
    ];
    writeFileSync(join(root, `tqserver-${NAMESPACE}.${dead}-file-ffffff`), 'not a folder');
    const target = make('elsewhere');
    symlinkSync(join(root, target), join(root, `tqserver-${NAMESPACE}.${dead}-link-gggggg`));
    kept.push(`tqserver-${NAMESPACE}.${dead}-file-ffffff`, `tqserver-${NAMESPACE}.${dead}-link-gggggg`, target);

    const { log, records } = memoryLogger('info');
    const removed = await sweepTempDirs(log, root);
    assert.deepEqual(removed.map((path) => basename(path)).sort(), [...stale].sort());
    for (const name of stale) assert.ok(!existsSync(join(root, name)), `${name} removed`);
    for (const name of kept) assert.ok(existsSync(join(root, name)), `${name} kept`);
    assert.ok(existsSync(join(root, target, 'w1.sock')), 'a link is not followed');
    const line = records.find((r) => /^removed 2 temp folders left by TQServer processes that are gone/.test(r.msg));
    assert.ok(line, JSON.stringify(records));

    const again = memoryLogger('info');
    assert.deepEqual(await sweepTempDirs(again.log, root), [], 'nothing left to remove');
    assert.deepEqual(again.records, [], 'and nothing said');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
