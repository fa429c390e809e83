// Request bodies read completely before PHP sees them: a chunked one because php-fpm and php-cgi
// need CONTENT_LENGTH, and with server.request_buffering every one, so that a slow upload holds no
// PHP worker. Kept in memory up to a threshold (server.body_buffer_size), then in a private temp file.

import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

export interface SpooledBody {
  length: number;
  /** The body: bytes in memory or a stream over the temp file. */
  body: Buffer | Readable;
  /** True when the body went to a temp file. */
  inFile: boolean;
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

/** server.body_buffer_size's default. */
export const DEFAULT_MEMORY_THRESHOLD = 128 * 1024;

/** Bytes allowed to wait for the temp file before the client is paused. */
const QUEUE_HIGH_BYTES = 1024 * 1024;

interface SpoolFile {
  dir: string;
  path: string;
  stream: WriteStream;
  error: Error | null;
}

/**
 * Reads `source` to its end. Rejects with BodyTooLargeError past `maxBytes` (the caller answers 413;
 * the source is left paused, not destroyed, so the answer can still be written on its connection)
 * and with the stream's error if the client goes away.
 */
export function spoolBody(source: Readable, maxBytes: number, memoryThreshold = DEFAULT_MEMORY_THRESHOLD): Promise<SpooledBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let file: SpoolFile | null = null;
    let opening: Promise<SpoolFile> | null = null;
    let settled = false;
    let reader: Readable | null = null;
    const cleanup = async () => {
      reader?.destroy();
      const f = file ?? (opening ? await opening.catch(() => null) : null);
      if (f) {
        f.stream.destroy();
        await rm(f.dir, { recursive: true, force: true });
      }
    };
    const detach = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      source.off('aborted', onAborted);
      source.off('close', onClose);
    };
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      detach();
      source.pause();
      void cleanup().finally(() => reject(error));
    };
    // Chunks are written in order: each waits for the previous write (and the file's creation).
    // The source is paused while more than QUEUE_HIGH_BYTES wait to be written, so a client faster
    // than the disk is held back instead of piling up in memory.
    let writing: Promise<void> = Promise.resolve();
    let queuedBytes = 0;
    let pausedForDisk = false;
    const toFile = (data: Buffer) => {
      queuedBytes += data.length;
      if (queuedBytes > QUEUE_HIGH_BYTES && !pausedForDisk) {
        pausedForDisk = true;
        source.pause();
      }
      writing = writing.then(async () => {
        const f = file ?? (await opening!);
        if (f.error) throw f.error;
        if (!f.stream.write(data)) {
          await new Promise<void>((done, failed) => {
            const onDrain = () => {
              f.stream.off('error', onWriteError);
              done();
            };
            const onWriteError = (error: Error) => {
              f.stream.off('drain', onDrain);
              failed(error);
            };
            f.stream.once('drain', onDrain);
            f.stream.once('error', onWriteError);
          });
        }
        queuedBytes -= data.length;
        if (pausedForDisk && queuedBytes <= QUEUE_HIGH_BYTES / 4 && !settled) {
          pausedForDisk = false;
          source.resume();
        }
      });
      writing.catch((error: Error) => fail(error));
    };
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > maxBytes) {
        fail(new BodyTooLargeError(maxBytes));
        return;
      }
      if (!file && !opening && length > memoryThreshold) {
        opening = mkdtemp(join(tmpdir(), 'tqserver-body-')).then((dir) => {
          const path = join(dir, 'body');
          const f: SpoolFile = { dir, path, stream: createWriteStream(path, { mode: 0o600 }), error: null };
          // Kept for the whole life of the stream: an error with no listener would crash the process.
          f.stream.on('error', (error) => (f.error ??= error));
          file = f;
          return f;
        });
        for (const held of chunks.splice(0)) toFile(held);
      }
      if (opening) toFile(chunk);
      else chunks.push(chunk);
    };
    const onEnd = () => {
      detach();
      if (!opening) {
        settled = true;
        resolve({ length, body: Buffer.concat(chunks, length), inFile: false, cleanup });
        return;
      }
      writing
        .then(async () => {
          const f = file!;
          await new Promise<void>((done, failed) => f.stream.end((error?: Error | null) => (error ? failed(error) : done())));
          if (f.error) throw f.error;
          if (settled) return;
          settled = true;
          reader = createReadStream(f.path);
          resolve({ length, body: reader, inFile: true, cleanup });
        })
        .catch((error: Error) => fail(error));
    };
    const onError = (error: Error) => fail(error);
    const onAborted = () => fail(new Error('the client closed the connection during the request body'));
    const onClose = () => {
      if (!source.readableEnded) onAborted();
    };
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
    source.once('aborted', onAborted);
    source.once('close', onClose);
  });
}
