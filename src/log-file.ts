// The server log file: a path with an optional {date} placeholder (a new file each day), opened for
// appending, reopened on demand (SIGUSR1, for logrotate), folders created as needed.

import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';

/** The file name for a moment: {date} becomes YYYY-MM-DD (local time, as operators read it). */
export function logFileName(template: string, now: Date): string {
  const date = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
  return template.replaceAll('{date}', date);
}

export class LogFile extends Writable {
  readonly template: string;
  readonly #clock: () => Date;
  #stream: WriteStream | null = null;
  #path = '';
  #checkedAt = 0;

  constructor(template: string, clock: () => Date = () => new Date()) {
    super();
    this.template = template;
    this.#clock = clock;
    this.#open();
  }

  /** The file written to now. */
  get path(): string {
    return this.#path;
  }

  /** Closes and reopens the file (after logrotate moved it). */
  reopen(): void {
    this.#stream?.end();
    this.#stream = null;
    this.#open();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const now = this.#clock();
    // The date can only change between writes; check it at most once a second.
    if (now.getTime() - this.#checkedAt >= 1000 || now.getTime() < this.#checkedAt) {
      this.#checkedAt = now.getTime();
      if (logFileName(this.template, now) !== this.#path) this.reopen();
    }
    if (this.#stream!.write(chunk)) callback();
    else this.#stream!.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#stream) this.#stream.end(() => callback());
    else callback();
  }

  #open(): void {
    this.#path = logFileName(this.template, this.#clock());
    mkdirSync(dirname(this.#path), { recursive: true });
    this.#stream = createWriteStream(this.#path, { flags: 'a', mode: 0o640 });
    this.#stream.on('error', (error) => this.emit('error', error));
  }
}
