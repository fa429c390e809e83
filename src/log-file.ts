// Log files: a path with an optional {date} placeholder (a new file each day), opened for appending
// by the first write, lines batched into one write every 100 ms, reopened on demand (SIGUSR1,
// after logrotate moved the file), never holding more than a cap for a disk that does not keep up;
// and LogFiles, the one registry of open files SIGUSR1 reopens.

import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { clfTime } from './observe/log-text.js';

/** The file name for a moment: {date} becomes YYYY-MM-DD (local time, as operators read it). */
export function logFileName(template: string, now: Date): string {
  const date = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
  return template.replaceAll('{date}', date);
}

/** How long after a failed open (a missing folder, a full disk) the file is tried again. */
const RETRY_MS = 1000;

/**
 * Lines wait at most this long before they are written, all together (issue 8). Each write goes
 * through libuv's thread pool (a thread woken, the write, the loop woken to complete it): done once
 * per event-loop turn, as before, it cost a busy server about 30 µs of CPU per request on 2 cores.
 */
export const FLUSH_INTERVAL_MS = 100;
/**
 * Lines are encoded into a buffer of this size as they come (strings kept for 100 ms would outlive
 * the young generation and cost the garbage collector more); a full buffer is written at once.
 */
const BATCH_BYTES = 64 * 1024;

/**
 * Past this many bytes waiting for the disk, a file drops lines instead of holding them: a hung NFS
 * mount, or a flood on a slow disk, would otherwise grow the server's memory until it is killed.
 */
export const MAX_HELD_BYTES = 64 * 1024 * 1024;

export interface LogFileOptions {
  /** Bytes that may wait for the disk before lines are dropped (counted, and the file says so); MAX_HELD_BYTES by default. */
  maxHeldBytes?: number;
}

/** What a LogFile's 'dropped' event tells, once per episode: the first chunk it dropped, and the cap. */
export interface DroppedLines {
  lines: number;
  bytes: number;
  maxHeldBytes: number;
}

type WriteCallback = (error?: Error | null) => void;

/** "64 MiB", "256 KiB" or "1000 bytes", as operators set a cap. */
function formatBytes(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)} MiB`;
  if (bytes >= 1 << 10 && bytes % (1 << 10) === 0) return `${bytes / (1 << 10)} KiB`;
  return `${bytes} bytes`;
}

/** The lines in a chunk: its "\n" characters (0x0a bytes). */
function countLines(chunk: string | Uint8Array): number {
  let lines = 0;
  if (typeof chunk === 'string') for (let at = chunk.indexOf('\n'); at >= 0; at = chunk.indexOf('\n', at + 1)) lines += 1;
  else for (let at = chunk.indexOf(0x0a); at >= 0; at = chunk.indexOf(0x0a, at + 1)) lines += 1;
  return lines;
}

/** When the local day of `now` began and the next begins, in epoch ms: a {date} file is current between them. */
function dayBounds(now: Date): [number, number] {
  const start = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  return [start, new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1).getTime()];
}

export class LogFile extends Writable {
  readonly template: string;
  readonly #clock: () => Date;
  /** Opened by the first write, so a log nobody writes to (no slow requests today) leaves no empty file. */
  #stream: WriteStream | null = null;
  #path: string;
  /** The file is current from #validFrom to #validUntil (a day for a {date} template, forever otherwise). */
  #validFrom = -Infinity;
  #validUntil = Infinity;
  #retryAt = 0;
  /** Lines waiting to be written, as UTF-8, each ending in "\n". */
  #batch: Buffer | null = null;
  #batchBytes = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  #flushImmediate: NodeJS.Immediate | null = null;
  readonly #maxHeldBytes: number;
  /**
   * An episode of drops: when the first chunk was dropped (epoch ms; null while the disk keeps up),
   * what was dropped since, and whether the lines were JSON (the notice is written in their format).
   */
  #droppedSince: number | null = null;
  #droppedLines = 0;
  #droppedBytes = 0;
  #droppedJson = false;

  /** Creates the file's folder (throws when it cannot); the file itself is created by the first write. */
  constructor(template: string, clock: () => Date = () => new Date(), options: LogFileOptions = {}) {
    super();
    this.template = template;
    this.#clock = clock;
    this.#maxHeldBytes = options.maxHeldBytes ?? MAX_HELD_BYTES;
    this.#path = logFileName(template, clock());
    mkdirSync(dirname(this.#path), { recursive: true });
  }

  /** The file written to now (or next, before the first write). */
  get path(): string {
    return this.#path;
  }

  /**
   * Closes the file; the next write opens the template's file for that moment (logrotate moved the
   * old one away). Bytes already handed to the old file still land in it.
   */
  reopen(): void {
    const old = this.#stream;
    this.#stream = null;
    this.#retryAt = 0;
    this.#path = logFileName(this.template, this.#clock());
    old?.end();
  }

  /**
   * Appends one line (without its "\n"). Lines are collected and written together FLUSH_INTERVAL_MS
   * after the first of them (at once when BATCH_BYTES are waiting), so a request costs a copy into
   * a buffer, not a write; they are held in memory while the disk is slow, up to maxHeldBytes (past
   * that they are dropped and counted: see write()). In the last interval before a {date} file's day
   * ends, lines are written at the end of the event-loop turn instead, so every line still lands in
   * the file of its day. After end() there is no file left to write to, and the line is not written.
   */
  writeLine(line: string): void {
    if (this.writableEnded) return;
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const mostBytes = line.length * 3 + 1;
    if (this.#batch && this.#batchBytes + mostBytes > this.#batch.length) this.#flush();
    if (mostBytes > BATCH_BYTES) {
      this.write(`${line}\n`);
      return;
    }
    this.#batch ??= Buffer.allocUnsafe(BATCH_BYTES);
    this.#batchBytes += this.#batch.write(line, this.#batchBytes, 'utf8');
    this.#batch[this.#batchBytes++] = 0x0a;
    this.#scheduleFlush();
  }

  /**
   * Appends one line (without its "\n") that `fill` writes straight into the batch from `item`,
   * at most `mostBytes` of them: no string is built for it (issue 8: the access log's line cost
   * about 40 concatenations and a UTF-8 copy). `fill` returns where its bytes end, or -1 to give
   * up (what it wrote is then ignored). Returns false when the line was not written, because fill
   * gave up or it might not fit a batch: the caller then writes it with writeLine. The same
   * batching and day rules as writeLine.
   */
  writeLineWith<T>(mostBytes: number, fill: (batch: Buffer, at: number, item: T) => number, item: T): boolean {
    if (this.writableEnded) return true;
    if (mostBytes + 1 > BATCH_BYTES) return false;
    if (this.#batch && this.#batchBytes + mostBytes + 1 > this.#batch.length) this.#flush();
    this.#batch ??= Buffer.allocUnsafe(BATCH_BYTES);
    const end = fill(this.#batch, this.#batchBytes, item);
    if (end < 0) return false;
    this.#batch[end] = 0x0a;
    this.#batchBytes = end + 1;
    this.#scheduleFlush();
    return true;
  }

  #scheduleFlush(): void {
    if (this.#flushTimer || this.#flushImmediate) return;
    const untilDayEndMs = this.#validUntil - this.#clock().getTime();
    if (untilDayEndMs > FLUSH_INTERVAL_MS) this.#flushTimer = setTimeout(() => this.#flush(), FLUSH_INTERVAL_MS);
    else this.#flushImmediate = setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#cancelFlush();
    const lines = this.#takeLines();
    if (lines && !this.writableEnded) this.write(lines);
  }

  #cancelFlush(): void {
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    if (this.#flushImmediate) clearImmediate(this.#flushImmediate);
    this.#flushTimer = null;
    this.#flushImmediate = null;
  }

  /**
   * Writable's write, with a cap on what waits for the disk: when this chunk would make more than
   * maxHeldBytes wait (the disk stalls: a hung NFS mount, a flood on a slow disk), it is dropped
   * instead, counted, and its callback called. The first drop of an episode emits 'dropped'; the
   * episode lasts until a chunk fits in half the cap, and that chunk is preceded in the file by one
   * line saying how many lines and bytes were dropped and why (a JSON line when the dropped lines
   * were JSON). Lines reach this once per batch (#flush), so the check costs nothing per line; a
   * chunk written to an idle file always goes through.
   */
  override write(chunk: unknown, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    const held = this.writableLength;
    if (held > 0 && !this.writableEnded) {
      const text = typeof chunk === 'string';
      const bytes = text ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : 'utf8') : (chunk as Uint8Array).byteLength;
      // Once dropping, it goes on until half the cap is free again: an episode does not flap at the cap.
      const limit = this.#droppedSince === null ? this.#maxHeldBytes : this.#maxHeldBytes / 2;
      if (held + bytes > limit) {
        this.#drop(chunk as string | Uint8Array, bytes);
        const done = typeof encoding === 'function' ? encoding : callback;
        if (done) process.nextTick(done, null);
        return true;
      }
    }
    if (this.#droppedSince !== null && !this.writableEnded) super.write(this.#takeNotice());
    return super.write(chunk, encoding as BufferEncoding, callback);
  }

  #drop(chunk: string | Uint8Array, bytes: number): void {
    const lines = countLines(chunk);
    this.#droppedLines += lines;
    this.#droppedBytes += bytes;
    if (this.#droppedSince !== null) return;
    this.#droppedSince = this.#clock().getTime();
    this.#droppedJson = typeof chunk === 'string' ? chunk.startsWith('{') : chunk[0] === 0x7b;
    this.emit('dropped', { lines, bytes, maxHeldBytes: this.#maxHeldBytes } satisfies DroppedLines);
  }

  /** The line that ends an episode of drops, in the file's format (a pino-style warning for JSON lines); resets the counts. */
  #takeNotice(): string {
    const now = this.#clock().getTime();
    const since = this.#droppedSince ?? now;
    const lines = this.#droppedLines;
    const bytes = this.#droppedBytes;
    this.#droppedSince = null;
    this.#droppedLines = 0;
    this.#droppedBytes = 0;
    const what = `${lines} line${lines === 1 ? '' : 's'} (${bytes} bytes) dropped from this log`;
    const why = `the disk did not keep up (more than ${formatBytes(this.#maxHeldBytes)} waited to be written); check the disk it is on`;
    if (this.#droppedJson) {
      const at = new Date(since).toISOString();
      return `${JSON.stringify({ level: 40, time: new Date(now).toISOString(), msg: `${what} since ${at}: ${why}`, droppedLines: lines, droppedBytes: bytes, since: at })}\n`;
    }
    return `[${clfTime(now)}] tqserver: ${what} since ${clfTime(since)}: ${why}\n`;
  }

  /** Ends the file once every line written so far is handed to the system. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.writableFinished || this.destroyed) resolve();
      else this.end(() => resolve());
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#send(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#cancelFlush();
    // Drops are told even when nothing fits again before the end.
    const notice = this.#droppedSince === null ? null : this.#takeNotice();
    const lines = this.#takeLines();
    const stream = lines || notice ? this.#current() : this.#stream;
    this.#stream = null;
    if (!stream || stream.destroyed) {
      callback();
      return;
    }
    if (notice) stream.write(notice);
    if (lines) stream.write(lines);
    stream.end(() => callback());
  }

  #takeLines(): Buffer | null {
    if (!this.#batch || this.#batchBytes === 0) return null;
    // The stream holds on to these bytes until written: the next line starts a new buffer.
    const lines = this.#batch.subarray(0, this.#batchBytes);
    this.#batch = null;
    this.#batchBytes = 0;
    return lines;
  }

  /** The stream for now: opened on first use, on a new day (or a clock set back), or again after a failure. */
  #current(): WriteStream | null {
    const now = this.#clock();
    const at = now.getTime();
    const stream = this.#stream;
    const stale = stream === null || stream.destroyed || at >= this.#validUntil || at < this.#validFrom;
    if (!stale || at < this.#retryAt) return stream;
    try {
      this.#open(now);
    } catch (error) {
      this.#retryAt = at + RETRY_MS;
      this.emit('error', error);
      return this.#stream;
    }
    // A day's file ends once its last bytes are written.
    if (stream && stream !== this.#stream) stream.end();
    return this.#stream;
  }

  #send(chunk: Buffer, callback: (error?: Error | null) => void): void {
    const stream = this.#current();
    if (!stream || stream.destroyed) {
      // The failure was reported when it happened ('error'); a later write tries the file again.
      callback();
      return;
    }
    if (stream.write(chunk)) {
      callback();
      return;
    }
    // A stream that is ended (reopen) or fails while full never drains: its close releases the write too.
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      callback();
    };
    stream.on('drain', done);
    stream.on('close', done);
  }

  #open(now: Date): void {
    const path = logFileName(this.template, now);
    mkdirSync(dirname(path), { recursive: true });
    const stream = createWriteStream(path, { flags: 'a', mode: 0o640 });
    stream.on('error', (error) => {
      this.#retryAt = this.#clock().getTime() + RETRY_MS;
      this.emit('error', error);
    });
    this.#stream = stream;
    this.#path = path;
    if (this.template.includes('{date}')) [this.#validFrom, this.#validUntil] = dayBounds(now);
  }
}

export interface LogFilesOptions {
  /** Told about a file that cannot be written (once per failure, not per line). */
  onError?: (file: LogFile, error: Error) => void;
  /** Told that a file drops lines because its disk does not keep up, once per episode; `warning` says so for the operator. */
  onDropped?: (file: LogFile, warning: string) => void;
  clock?: () => Date;
  /** Every file's cap on bytes waiting for the disk (LogFileOptions.maxHeldBytes). */
  maxHeldBytes?: number;
}

/**
 * The open log files of a process, in one place: opened once per path template however many users
 * share it (two apps may write one access log), reopened together on SIGUSR1, closed when the last
 * user lets go.
 */
export class LogFiles {
  readonly #files = new Map<string, { file: LogFile; users: number }>();
  readonly #options: LogFilesOptions;

  constructor(options: LogFilesOptions = {}) {
    this.#options = options;
  }

  /** The file for a template, opened now if nobody has it open; throws when it cannot be created. */
  open(template: string): LogFile {
    const entry = this.#files.get(template);
    if (entry) {
      entry.users += 1;
      return entry.file;
    }
    let file: LogFile;
    try {
      file = new LogFile(template, this.#options.clock, { maxHeldBytes: this.#options.maxHeldBytes });
    } catch (error) {
      throw new Error(`cannot open the log file ${template}: ${(error as Error).message}`, { cause: error });
    }
    file.on('error', (error: Error) => {
      if (this.#options.onError) this.#options.onError(file, error);
      else process.stderr.write(`tqserver: cannot write the log file ${file.path}: ${error.message}\n`);
    });
    file.on('dropped', (dropped: DroppedLines) => {
      const warning = `the log file ${file.path} does not keep up: more than ${formatBytes(dropped.maxHeldBytes)} wait for its disk, so lines are dropped until it does; the file will say how many. Check the disk it is on`;
      if (this.#options.onDropped) this.#options.onDropped(file, warning);
      else process.stderr.write(`tqserver: ${warning}\n`);
    });
    this.#files.set(template, { file, users: 1 });
    return file;
  }

  /** Lets go of a file; the last user's release closes it. */
  async release(file: LogFile): Promise<void> {
    const entry = this.#files.get(file.template);
    if (!entry || entry.file !== file) return;
    entry.users -= 1;
    if (entry.users > 0) return;
    this.#files.delete(file.template);
    await file.close();
  }

  /** Reopens every open file (SIGUSR1); returns the paths now written to. */
  reopenAll(): string[] {
    const paths: string[] = [];
    for (const { file } of this.#files.values()) {
      file.reopen();
      paths.push(file.path);
    }
    return paths;
  }

  get size(): number {
    return this.#files.size;
  }
}
