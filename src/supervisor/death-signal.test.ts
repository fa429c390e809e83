// The parent-death signal wrapper: the setpriv argv (golden), finding a setpriv that supports
// --pdeathsig, and the wrapped command run for real (same pid, missing programs still ENOENT).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { dieWithParent, findSetpriv, setprivPath, withDeathSignal, type Command } from './death-signal.js';

describe('withDeathSignal', () => {
  const cases: Array<{ name: string; command: Command; signal: NodeJS.Signals; want: Command }> = [
    {
      name: 'php-cgi worker',
      command: { file: '/usr/bin/php-cgi', args: ['-b', '/tmp/w1.sock', '-d', 'display_errors=0'] },
      signal: 'SIGKILL',
      want: { file: '/usr/bin/setpriv', args: ['--pdeathsig', 'SIGKILL', '--', '/usr/bin/php-cgi', '-b', '/tmp/w1.sock', '-d', 'display_errors=0'] },
    },
    {
      name: 'php-fpm master',
      command: { file: '/usr/sbin/php-fpm8.2', args: ['-F', '-O', '-y', '/tmp/x/php-fpm.conf'] },
      signal: 'SIGTERM',
      want: { file: '/usr/bin/setpriv', args: ['--pdeathsig', 'SIGTERM', '--', '/usr/sbin/php-fpm8.2', '-F', '-O', '-y', '/tmp/x/php-fpm.conf'] },
    },
    {
      // "--" ends setpriv's options: a program or argument that looks like one is passed on as it is.
      name: 'arguments that look like setpriv options',
      command: { file: './-odd', args: ['--pdeathsig', 'clear', '--'] },
      signal: 'SIGTERM',
      want: { file: '/usr/bin/setpriv', args: ['--pdeathsig', 'SIGTERM', '--', './-odd', '--pdeathsig', 'clear', '--'] },
    },
    {
      name: 'no arguments',
      command: { file: '/bin/true', args: [] },
      signal: 'SIGTERM',
      want: { file: '/usr/bin/setpriv', args: ['--pdeathsig', 'SIGTERM', '--', '/bin/true'] },
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(withDeathSignal(c.command, c.signal, '/usr/bin/setpriv'), c.want));
  }

  test('does not change the command it was given', () => {
    const command: Command = { file: '/usr/bin/php-cgi', args: ['-b', 'x'] };
    withDeathSignal(command, 'SIGKILL', '/usr/bin/setpriv');
    assert.deepEqual(command, { file: '/usr/bin/php-cgi', args: ['-b', 'x'] });
  });
});

describe('findSetpriv', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tqserver-setpriv-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a folder without setpriv: null', () => {
    assert.equal(findSetpriv([join(dir, 'missing'), dir]), null);
  });

  test('a setpriv without --pdeathsig (an older util-linux) is not taken', () => {
    const folder = mkdtempSync(join(dir, 'old-'));
    writeFileSync(join(folder, 'setpriv'), "#!/bin/sh\necho \"setpriv: unrecognized option '$1'\" >&2\nexit 1\n");
    chmodSync(join(folder, 'setpriv'), 0o755);
    assert.equal(findSetpriv([folder]), null);
  });

  test('a setpriv file that is not executable is skipped', () => {
    const folder = mkdtempSync(join(dir, 'noexec-'));
    writeFileSync(join(folder, 'setpriv'), '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    assert.equal(findSetpriv([folder]), null);
  });

  // util-linux is essential on Debian: setpriv is there wherever the tests run (.ci/run installs nothing for it).
  test("util-linux's setpriv is found, after folders without one", () => {
    assert.equal(findSetpriv([dir, '/usr/bin']), '/usr/bin/setpriv');
  });
});

describe('dieWithParent', () => {
  const setpriv = setprivPath();

  test('setpriv is found on this machine', () => {
    assert.ok(setpriv, 'setpriv (util-linux) with --pdeathsig');
  });

  test('without setpriv the command is unchanged', () => {
    assert.deepEqual(dieWithParent(process.execPath, ['-v'], 'SIGTERM', { setpriv: null }), { file: process.execPath, args: ['-v'] });
  });

  test('a program that exists is wrapped', () => {
    assert.deepEqual(dieWithParent(process.execPath, ['-v'], 'SIGTERM', {}), { file: setpriv!, args: ['--pdeathsig', 'SIGTERM', '--', process.execPath, '-v'] });
  });

  test('a bare name is wrapped when it is on the PATH spawn() will search', () => {
    assert.equal(dieWithParent('sh', [], 'SIGTERM', { env: { PATH: '/usr/bin:/bin' } }).file, setpriv);
    assert.deepEqual(dieWithParent('sh', [], 'SIGTERM', { env: {} }), { file: 'sh', args: [] });
  });

  test('a relative path is looked up from the cwd the child gets', () => {
    assert.equal(dieWithParent('./sh', [], 'SIGTERM', { cwd: '/bin' }).file, setpriv);
    assert.deepEqual(dieWithParent('./sh', [], 'SIGTERM', { cwd: '/nonexistent' }), { file: './sh', args: [] });
  });

  test('a missing program is left unwrapped, so spawn still fails with ENOENT naming it', async () => {
    const missing = '/nonexistent/php-cgi';
    const command = dieWithParent(missing, ['-b', '/tmp/x.sock'], 'SIGKILL', {});
    assert.deepEqual(command, { file: missing, args: ['-b', '/tmp/x.sock'] });
    const error = await new Promise<NodeJS.ErrnoException>((resolve, reject) => {
      const child = spawn(command.file, command.args, { stdio: 'ignore' });
      child.once('error', resolve);
      child.once('exit', (code) => reject(new Error(`spawn did not fail; the process exited with code ${code}`)));
    });
    assert.equal(error.code, 'ENOENT');
    assert.match(error.message, /\/nonexistent\/php-cgi/);
  });

  test('the wrapped process keeps the pid spawn() reports (setpriv execs in place)', async () => {
    const command = dieWithParent(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], 'SIGTERM', {});
    assert.equal(command.file, setpriv);
    const child = spawn(command.file, command.args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0);
    assert.equal(Number(out), child.pid);
  });

  test('the lookup is done once: the same answer every time', () => {
    assert.equal(setprivPath(), setpriv);
  });
});
