// Request bodies of unknown length (chunked) read completely before PHP sees them, because php-fpm
// and php-cgi need CONTENT_LENGTH: kept in memory up to a threshold, then in a private temp file.

import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

export interface SpooledBody {
  length: number;
  /** The body: bytes in memory or a stream over the temp file. */
  body: Buffer | Readable;
  /** Removes the temp file, if any. Idempotent. */
  cleanup: () => Promise<void>;
}

export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
  readonly limit: number;
  constructor(limit: number) {
    super(`request body exceeds the limit of ${limit} bytes`);
    this.limit = limit;
  }
}

export const DEFAULT_MEMORY_THRESHOLD = 1024 * 1024;

/**
 * Reads `source` to its end. Rejects with BodyTooLargeError past `maxBytes` (the caller answers 413)
 * and with the stream's error if the client goes away.
 */
export async function spoolBody(source: Readable, maxBytes: number, memoryThreshold = DEFAULT_MEMORY_THRESHOLD): Promise<SpooledBody> {
  const chunks: Buffer[] = [];
  let length = 0;
  let file: { dir: string; path: string; stream: WriteStream } | null = null;
  const cleanup = async () => {
    if (file) {
      file.stream.destroy();
      await rm(file.dir, { recursive: true, force: true });
    }
  };
  try {
    for await (const chunk of source) {
      const data = chunk as Buffer;
      length += data.length;
      if (length > maxBytes) throw new BodyTooLargeError(maxBytes);
      if (!file && length > memoryThreshold) {
        const dir = await mkdtemp(join(tmpdir(), 'tqserver-body-'));
        const path = join(dir, 'body');
        file = { dir, path, stream: createWriteStream(path, { mode: 0o600 }) };
        for (const held of chunks.splice(0)) await write(file.stream, held);
      }
      if (file) await write(file.stream, data);
      else chunks.push(data);
    }
    if (!file) return { length, body: Buffer.concat(chunks, length), cleanup };
    const done = file;
    await new Promise<void>((resolve, reject) => done.stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
    return { length, body: createReadStream(done.path), cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

function write(stream: WriteStream, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.write(data)) resolve();
    else {
      stream.once('drain', resolve);
      stream.once('error', reject);
    }
  });
}
