// Log files against the real file system: {date} rotation with a fake clock (a new file each day,
// every line in the file of its day), reopen after logrotate's rename, reopen while a write waits
// for the disk, a file that cannot be written, and the registry SIGUSR1 uses.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { LogFile, logFileName, LogFiles } from './log-file.js';

const dir = mkdtempSync(join(tmpdir(), 'tq-log-file-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The file's text once `done(text)` holds; log writes are asynchronous, so this polls with a deadline. */
async function fileText(path: string, done: (text: string) => boolean, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
    if (done(text)) return text;
    if (Date.now() > deadline) assert.fail(`${path}: not as expected within ${timeoutMs} ms; it holds:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A clock the test moves. */
function fakeClock(start: Date): { now: () => Date; set: (date: Date) => void } {
  let current = start;
  return { now: () => current, set: (date) => (current = date) };
}

describe('LogFile', () => {
  test('logFileName: {date} is the local date, every occurrence', () => {
    assert.equal(logFileName('/var/log/tq/{date}/access_{date}.log', new Date(2024, 0, 5, 23, 59)), '/var/log/tq/2024-01-05/access_2024-01-05.log');
    assert.equal(logFileName('/var/log/tq.log', new Date()), '/var/log/tq.log');
  });

  test('lines wait up to 100 ms to be written together; in the last 100 ms of a day, only to the end of the turn', async () => {
    const clock = fakeClock(new Date(2024, 4, 1, 12, 0, 0));
    const file = new LogFile(join(dir, 'batch', 'app_{date}.log'), clock.now);
    const day = (name: string) => join(dir, 'batch', `app_${name}.log`);
    file.writeLine('the first line opens the file');
    await fileText(day('2024-05-01'), (t) => t.includes('first line'));
    file.writeLine('batched 1');
    file.writeLine('batched 2');
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(!readFileSync(day('2024-05-01'), 'utf8').includes('batched'), 'not written at the end of the turn');
    await fileText(day('2024-05-01'), (t) => t.includes('batched 1\nbatched 2\n'));
    // 50 ms before midnight: the line goes out before the day can end, into that day's file.
    clock.set(new Date(2024, 4, 1, 23, 59, 59, 950));
    file.writeLine('just before midnight');
    await new Promise((resolve) => setImmediate(resolve));
    clock.set(new Date(2024, 4, 2, 0, 0, 0, 10));
    await fileText(day('2024-05-01'), (t) => t.includes('just before midnight'));
    file.writeLine('after midnight');
    await fileText(day('2024-05-02'), (t) => t === 'after midnight\n');
    // More than a batch holds is written at once, in order, nothing lost.
    const long = 'x'.repeat(1000);
    for (let i = 0; i < 200; i++) file.writeLine(`${i} ${long}`);
    const text = await fileText(day('2024-05-02'), (t) => t.includes(`199 ${long}`));
    assert.deepEqual(text.trimEnd().split('\n').slice(1).map((line) => Number(line.split(' ')[0])), Array.from({ length: 200 }, (_, i) => i));
    await file.close();
  });

  test('{date} rotation with a fake clock: a new file each day, every line in the file of its day', async () => {
    const clock = fakeClock(new Date(2024, 1, 28, 23, 59, 59, 900));
    const template = join(dir, 'rotate', 'app_access_{date}.log');
    const file = new LogFile(template, clock.now);
    const day = (name: string) => join(dir, 'rotate', `app_access_${name}.log`);
    assert.equal(file.path, day('2024-02-28'));
    file.writeLine('line 1 on the 28th');
    await fileText(day('2024-02-28'), (t) => t.includes('line 1'));
    file.writeLine('line 2 on the 28th');
    await fileText(day('2024-02-28'), (t) => t.includes('line 2'));
    // 100 ms later it is the 29th (a leap day): the next line goes to a new file at once.
    clock.set(new Date(2024, 1, 29, 0, 0, 0, 0));
    file.writeLine('line 3 on the 29th');
    await fileText(day('2024-02-29'), (t) => t.includes('line 3'));
    assert.equal(file.path, day('2024-02-29'));
    clock.set(new Date(2024, 2, 1, 12, 0));
    file.write('line 4 on March 1st, written as bytes\n');
    await fileText(day('2024-03-01'), (t) => t.includes('line 4'));
    // A clock set back (NTP) writes to the file of the day it says.
    clock.set(new Date(2024, 1, 29, 23, 0));
    file.writeLine('line 5 on the 29th again');
    await fileText(day('2024-02-29'), (t) => t.includes('line 5'));
    await file.close();
    assert.equal(readFileSync(day('2024-02-28'), 'utf8'), 'line 1 on the 28th\nline 2 on the 28th\n');
    assert.equal(readFileSync(day('2024-02-29'), 'utf8'), 'line 3 on the 29th\nline 5 on the 29th again\n');
    assert.equal(readFileSync(day('2024-03-01'), 'utf8'), 'line 4 on March 1st, written as bytes\n');
  });

  test('a pino logger on a LogFile (the server log) rotates by date too', async () => {
    const clock = fakeClock(new Date(2024, 5, 1, 23, 59, 59));
    const file = new LogFile(join(dir, 'pino', 'tq_{date}.log'), clock.now);
    const log = pino({ base: null }, file);
    log.info('before midnight');
    await fileText(join(dir, 'pino', 'tq_2024-06-01.log'), (t) => t.includes('before midnight'));
    clock.set(new Date(2024, 5, 2, 0, 0, 1));
    log.info('after midnight');
    const text = await fileText(join(dir, 'pino', 'tq_2024-06-02.log'), (t) => t.includes('after midnight'));
    assert.equal(JSON.parse(text).msg, 'after midnight');
    assert.ok(!readFileSync(join(dir, 'pino', 'tq_2024-06-01.log'), 'utf8').includes('after midnight'));
    await file.close();
  });

  test("reopen after logrotate's rename: old lines stay in the moved file, new lines go to a new file at the path", async () => {
    const path = join(dir, 'rotated', 'access.log');
    const file = new LogFile(path);
    file.writeLine('before the move');
    await fileText(path, (t) => t.includes('before the move'));
    renameSync(path, `${path}.1`);
    file.writeLine('still the old file: not reopened yet');
    await fileText(`${path}.1`, (t) => t.includes('not reopened yet'));
    file.reopen();
    file.writeLine('after the reopen');
    await fileText(path, (t) => t.includes('after the reopen'));
    await file.close();
    assert.equal(readFileSync(`${path}.1`, 'utf8'), 'before the move\nstill the old file: not reopened yet\n');
    assert.equal(readFileSync(path, 'utf8'), 'after the reopen\n');
  });

  test('a reopen while a big write waits for the disk loses nothing and does not stall', async () => {
    const path = join(dir, 'big', 'big.log');
    const file = new LogFile(path);
    const big = `${'x'.repeat(1 << 20)}\n`;
    for (let i = 0; i < 8; i++) file.write(big);
    file.reopen();
    file.reopen();
    for (let i = 0; i < 8; i++) file.write(big);
    await file.close();
    assert.equal(readFileSync(path, 'utf8').length, 16 * big.length);
  });

  test('the file is created by the first write, so a log nothing is written to leaves no empty file', async () => {
    const path = join(dir, 'lazy', 'slow_{date}.log');
    const file = new LogFile(path);
    assert.ok(existsSync(join(dir, 'lazy')), 'the folder is made at once (a folder that cannot be made fails at start)');
    assert.ok(!existsSync(file.path));
    file.reopen();
    await file.close();
    assert.ok(!existsSync(file.path));
  });

  test('lines written just before close() are in the file when it resolves', async () => {
    const path = join(dir, 'close', 'close.log');
    const file = new LogFile(path);
    for (let i = 0; i < 1000; i++) file.writeLine(`line ${i}`);
    await file.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    assert.equal(lines.length, 1001);
    assert.equal(lines[999], 'line 999');
    file.writeLine('after close: there is no file to write to');
    await file.close();
  });

  test('writeLineWith: a line written straight into the batch, in order with writeLine; one given up on leaves nothing', async () => {
    const path = join(dir, 'with', 'with.log');
    const file = new LogFile(path);
    const put = (buf: Buffer, at: number, text: string) => (text.startsWith('give up') ? (buf.fill(0x21, at, at + 5), -1) : at + buf.write(text, at, 'latin1'));
    file.writeLine('one');
    assert.equal(file.writeLineWith(10, put, 'two'), true);
    assert.equal(file.writeLineWith(10, put, 'give up'), false);
    file.writeLine('three');
    assert.equal(file.writeLineWith(1 << 20, put, 'longer than a batch could be'), false);
    await file.close();
    assert.equal(readFileSync(path, 'utf8'), 'one\ntwo\nthree\n');
    assert.equal(file.writeLineWith(10, put, 'after close: dropped, as writeLine does'), true);
  });

  test('a path that cannot be written: the error is reported, writes do not stall, close resolves', async () => {
    const path = join(dir, 'is-a-folder');
    mkdirSync(path);
    const errors: string[] = [];
    const files = new LogFiles({ onError: (_file, error) => errors.push((error as NodeJS.ErrnoException).code ?? error.message) });
    const file = files.open(path);
    file.writeLine('the first line opens the file');
    const deadline = Date.now() + 5000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(errors[0], 'EISDIR');
    for (let i = 0; i < 100; i++) file.writeLine(`line ${i}`);
    await new Promise<void>((resolve) => file.write('bytes\n', () => resolve()));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(errors.length, 1, `reported once per failure, not per line: ${errors.join(', ')}`);
    await files.release(file);
  });
});

describe('LogFiles (the registry SIGUSR1 reopens)', () => {
  test('one file per template, shared by its users, closed when the last lets go', async () => {
    const files = new LogFiles();
    const a = files.open(join(dir, 'reg', 'shared_{date}.log'));
    const b = files.open(join(dir, 'reg', 'shared_{date}.log'));
    const c = files.open(join(dir, 'reg', 'other.log'));
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.equal(files.size, 2);
    a.writeLine('from a');
    b.writeLine('from b');
    await files.release(a);
    assert.ok(!b.writableEnded, 'still used by b');
    await files.release(b);
    assert.ok(b.writableFinished);
    assert.equal(readFileSync(b.path, 'utf8'), 'from a\nfrom b\n');
    assert.equal(files.size, 1);
    await files.release(c);
    assert.equal(files.size, 0);
  });

  test('reopenAll reopens every file after the moves', async () => {
    const files = new LogFiles();
    const paths = ['one.log', 'two.log'].map((name) => join(dir, 'reopen-all', name));
    const opened = paths.map((path) => files.open(path));
    opened.forEach((file, i) => file.writeLine(`old ${i}`));
    for (const path of paths) await fileText(path, (t) => t.startsWith('old'));
    for (const path of paths) renameSync(path, `${path}.1`);
    assert.deepEqual(files.reopenAll(), paths);
    opened.forEach((file, i) => file.writeLine(`new ${i}`));
    for (const [i, path] of paths.entries()) assert.equal(await fileText(path, (t) => t.includes('new')), `new ${i}\n`);
    await Promise.all(opened.map((file) => files.release(file)));
    for (const [i, path] of paths.entries()) assert.equal(readFileSync(`${path}.1`, 'utf8'), `old ${i}\n`);
  });

  test('a folder that cannot be created: open() names the file', () => {
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, 'a file where a folder should be');
    assert.throws(() => new LogFiles().open(join(blocker, 'logs', 'x.log')), /^Error: cannot open the log file .*blocker\/logs\/x\.log: ENOTDIR/);
  });
});
