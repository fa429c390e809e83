// Request bodies read completely before PHP sees them: a chunked one because php-fpm and php-cgi
// need CONTENT_LENGTH, and with server.request_buffering every one, so that a slow upload holds no
// PHP worker. Kept in memory up to a threshold (server.body_buffer_size), then in a private temp file.

import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import { FileBody } from '../fastcgi/client-types.js';
import { makeTempDir } from '../temp-dir.js';

export interface SpooledBody {
  length: number;
  /** The body: bytes in memory, or the temp file (read by the FastCGI client as the socket takes it). */
  body: Buffer | FileBody;
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

/**
 * What spoolBody reads: the part of a Readable it uses ('data', 'end', 'error', 'aborted', 'close',
 * pause and resume). node:http's IncomingMessage, or the fast path's FastBody.
 */
export interface BodySource extends EventEmitter {
  pause(): unknown;
  resume(): unknown;
  readonly readableEnded: boolean;
}

/** server.body_buffer_size's default. */
export const DEFAULT_MEMORY_THRESHOLD = 128 * 1024;

/** Bytes allowed to wait for the temp file before the client is paused. */
const QUEUE_HIGH_BYTES = 4 * 1024 * 1024;

/**
 * Chunks are written to the temp file in batches of this many bytes (one writev each): a 10 MiB
 * body costs 10 writes rather than 160, which was most of what spooling cost (issue 8). The FastCGI
 * client reads it back into reused buffers (FileBody).
 */
const BATCH_BYTES = 1024 * 1024;

/** writev takes at most IOV_MAX (1024 on Linux) buffers; a batch of small chunks is cut before. */
const BATCH_CHUNKS = 512;

interface SpoolFile {
  dir: string;
  path: string;
  handle: FileHandle;
}

/** Writes every byte of `buffers` at the file's position (writev may write less than asked). */
async function writeAll(handle: FileHandle, buffers: Buffer[], bytes: number): Promise<void> {
  let { bytesWritten } = await handle.writev(buffers);
  if (bytesWritten === bytes) return;
  const rest = Buffer.concat(buffers, bytes).subarray(bytesWritten);
  for (let at = 0; at < rest.length; ) at += (await handle.write(rest, at)).bytesWritten;
}

/**
 * Reads `source` to its end. Rejects with BodyTooLargeError past `maxBytes` (the caller answers 413;
 * the source is left paused, not destroyed, so the answer can still be written on its connection)
 * and with the stream's error if the client goes away.
 */
export function spoolBody(source: BodySource, maxBytes: number, memoryThreshold = DEFAULT_MEMORY_THRESHOLD): Promise<SpooledBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let file: SpoolFile | null = null;
    let opening: Promise<SpoolFile> | null = null;
    let settled = false;
    const cleanup = async () => {
      const f = file ?? (opening ? await opening.catch(() => null) : null);
      if (f) {
        await f.handle.close().catch(() => {});
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
    // Chunks gather into batches; each batch is written after the previous one (and the file's
    // creation). The source is paused while more than QUEUE_HIGH_BYTES wait to be written, so a
    // client faster than the disk is held back instead of piling up in memory.
    let writing: Promise<void> = Promise.resolve();
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let queuedBytes = 0;
    let pausedForDisk = false;
    const flush = () => {
      if (batch.length === 0) return;
      const buffers = batch;
      const bytes = batchBytes;
      batch = [];
      batchBytes = 0;
      writing = writing.then(async () => {
        const f = file ?? (await opening!);
        await writeAll(f.handle, buffers, bytes);
        queuedBytes -= bytes;
        if (pausedForDisk && queuedBytes <= QUEUE_HIGH_BYTES / 4 && !settled) {
          pausedForDisk = false;
          source.resume();
        }
      });
      writing.catch((error: Error) => fail(error));
    };
    const toFile = (data: Buffer) => {
      batch.push(data);
      batchBytes += data.length;
      queuedBytes += data.length;
      if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_CHUNKS) flush();
      if (queuedBytes > QUEUE_HIGH_BYTES && !pausedForDisk) {
        pausedForDisk = true;
        source.pause();
      }
    };
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > maxBytes) {
        fail(new BodyTooLargeError(maxBytes));
        return;
      }
      if (!file && !opening && length > memoryThreshold) {
        opening = makeTempDir('body').then(async (dir) => {
          const path = join(dir, 'body');
          const f: SpoolFile = { dir, path, handle: await open(path, 'wx', 0o600) };
          file = f;
          return f;
        });
        // A failure to create the file is reported through the first write (fail), never unhandled.
        opening.catch(() => {});
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
      flush();
      writing
        .then(async () => {
          if (settled) return;
          const f = file ?? (await opening!);
          settled = true;
          // The write handle stays open until cleanup; the file is read by whoever sends it.
          resolve({ length, body: new FileBody(f.path, length), inFile: true, cleanup });
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
