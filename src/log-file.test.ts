// Log files against the real file system: {date} rotation with a fake clock (a new file each day,
// every line in the file of its day), reopen after logrotate's rename, reopen while a write waits
// for the disk, a file that cannot be written, a disk that stalls (a FIFO nobody reads: lines past
// the cap are dropped, counted and told), and the registry SIGUSR1 uses.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { type DroppedLines, LogFile, logFileName, LogFiles } from './log-file.js';

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

/**
 * A disk that stalls: a FIFO whose read end is open (non-blocking, so the writer's open does not
 * block) and not read, so the writer stops once the pipe's 64 KiB are full. read() takes what the
 * writer managed to write since and returns everything read so far; close() lets a writer still
 * blocked in write() go (it gets EPIPE), so the process can exit even when a test failed midway.
 */
function stalledDisk(name: string): { path: string; read: () => string; close: () => void } {
  const path = join(dir, `${name}.fifo`);
  execFileSync('mkfifo', [path]);
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const buffer = Buffer.alloc(1 << 16);
  let text = '';
  let open = true;
  return {
    path,
    read: () => {
      for (let n = 1; open && n > 0; ) {
        try {
          n = readSync(fd, buffer);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break;
          throw error;
        }
        text += buffer.toString('latin1', 0, n);
      }
      return text;
    },
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

/** Waits until `done()` holds, with a deadline, checking once per event-loop turn (I/O included). */
async function until(what: string, done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Ends a file on a stalled disk: reads until it is closed, then closes the read end (a writer still blocked gets EPIPE). */
async function closeStalled(close: () => Promise<void>, file: LogFile, disk: { read: () => string; close: () => void }): Promise<void> {
  const closed = close();
  await until('the file is closed', () => (disk.read(), file.writableFinished)).catch(() => undefined);
  disk.close();
  await closed;
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

describe('a log disk that does not keep up (it grew the server until the OOM killer came)', () => {
  const maxHeldBytes = 256 * 1024;
  const batchBytes = 64 * 1024;

  test('past maxHeldBytes lines are dropped and counted; the file says how many before the next lines, once writes go through again', async () => {
    const disk = stalledDisk('text');
    const file = new LogFile(disk.path, undefined, { maxHeldBytes });
    const drops: DroppedLines[] = [];
    const errors: Error[] = [];
    file.on('dropped', (dropped: DroppedLines) => drops.push(dropped));
    file.on('error', (error: Error) => errors.push(error));
    try {
      // Numbered lines of one length, 100 a turn: the pipe fills, then LogFile's own buffer, then lines are dropped.
      const line = (i: number) => `line ${String(i).padStart(7, '0')} ${'x'.repeat(86)}`;
      const lineBytes = line(0).length + 1;
      let written = 0;
      let mostHeldBytes = 0;
      const writeRound = () => {
        for (let end = written + 100; written < end; written++) file.writeLine(line(written));
        mostHeldBytes = Math.max(mostHeldBytes, file.writableLength);
      };
      await until('lines are dropped', () => (writeRound(), drops.length > 0));
      // The disk stays stalled for 50 more turns: lines are dropped, nothing more is held.
      for (let round = 0; round < 50; round++) {
        writeRound();
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.ok(mostHeldBytes <= maxHeldBytes + batchBytes, `held ${mostHeldBytes} bytes: more than the cap and a batch`);
      assert.equal(drops.length, 1, 'told once per episode');
      assert.equal(drops[0]!.maxHeldBytes, maxHeldBytes);
      assert.equal(drops[0]!.bytes, drops[0]!.lines * lineBytes);

      // The disk comes back: what was held is written, then the next line brings the notice before it.
      await until('the held lines are written', () => (disk.read(), file.writableLength === 0));
      file.writeLine('after the stall');
      await until('the line after the stall arrives', () => disk.read().endsWith('after the stall\n'));
      const lines = disk.read().split('\n').slice(0, -1);
      assert.equal(lines.at(-1), 'after the stall');
      // The notice stands where lines are missing: lines written during the stall that were still in
      // the batch when it ended follow it.
      const at = lines.findIndex((text) => !text.startsWith('line '));
      assert.equal(lines.filter((text) => !text.startsWith('line ')).length, 2, 'one notice, then the line after the stall');
      const time = String.raw`\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}`;
      const match = new RegExp(String.raw`^\[${time}\] tqserver: (\d+) lines \((\d+) bytes\) dropped from this log since ${time}: the disk did not keep up \(more than 256 KiB waited to be written\); check the disk it is on$`).exec(lines[at]!);
      assert.ok(match, `the notice line: ${lines[at]}`);
      const dropped = Number(match[1]);
      assert.equal(Number(match[2]), dropped * lineBytes);
      // Every line written is in the file, in order, except the ones the notice counts, all at its place.
      const number = (text: string) => (text === 'after the stall' ? written : Number(text.split(' ')[1]));
      const kept = lines.filter((text) => text.startsWith('line ')).map(number);
      assert.deepEqual(kept, Array.from({ length: written - dropped }, (_, i) => (i < at ? i : i + dropped)));
      assert.equal(number(lines[at + 1]!) - number(lines[at - 1]!) - 1, dropped);

      // The episode is over: a later line comes without a notice, and nothing more is told.
      file.writeLine('later');
      await until('the later line arrives', () => disk.read().endsWith('after the stall\nlater\n'));
      assert.equal(drops.length, 1);
      assert.deepEqual(errors, []);
    } finally {
      await closeStalled(() => file.close(), file, disk);
    }
  });

  test('JSON lines (the server log) get a JSON notice; the registry warns once per episode', async () => {
    const disk = stalledDisk('json');
    const warnings: string[] = [];
    const files = new LogFiles({ maxHeldBytes, onDropped: (_file, warning) => warnings.push(warning) });
    const file = files.open(disk.path);
    const log = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, file);
    try {
      let written = 0;
      const writeRound = () => {
        for (let end = written + 100; written < end; written++) log.info({ n: written }, 'x'.repeat(100));
      };
      await until('lines are dropped', () => (writeRound(), warnings.length > 0));
      for (let round = 0; round < 50; round++) {
        writeRound();
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.deepEqual(warnings, [`the log file ${disk.path} does not keep up: more than 256 KiB wait for its disk, so lines are dropped until it does; the file will say how many. Check the disk it is on`]);

      await until('the held lines are written', () => (disk.read(), file.writableLength === 0));
      log.info('after the stall');
      await until('the line after the stall arrives', () => disk.read().includes('after the stall'));
      const records = disk.read().trimEnd().split('\n').map((text) => JSON.parse(text) as Record<string, unknown>);
      const notice = records.at(-2)!;
      assert.deepEqual(Object.keys(notice), ['level', 'time', 'msg', 'droppedLines', 'droppedBytes', 'since']);
      assert.equal(notice.level, 40, 'a warning, as pino writes it');
      assert.match(String(notice.msg), /^\d+ lines \(\d+ bytes\) dropped from this log since \d{4}-\d\d-\d\dT[\d:.]+Z: the disk did not keep up \(more than 256 KiB waited to be written\); check the disk it is on$/);
      assert.equal(records.length - 2 + Number(notice.droppedLines), written);
      assert.equal(records.at(-1)!.msg, 'after the stall');
      assert.equal(warnings.length, 1);
    } finally {
      await closeStalled(() => files.release(file), file, disk);
    }
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
