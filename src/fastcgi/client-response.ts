// A FastCGI request as streams and a promise: a ResponseHandler that feeds stdout and stderr
// Readables and settles `done` at END_REQUEST.

import { Readable } from 'node:stream';
import { FastCGIAbortError } from '../errors.js';
import type { EndResult, RequestController, ResponseHandler } from './client-types.js';

/**
 * A request as streams: `stdout` is a Readable fed as records arrive (reading pauses the socket
 * when it is not consumed), `stderr` a Readable of the peer's error output, `done` settles at
 * END_REQUEST. Destroying `stdout` before its end aborts the request.
 */
export class FastCGIResponse {
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly done: Promise<EndResult>;
  readonly #controller: RequestController;
  #settled = false;

  constructor(start: (handler: ResponseHandler) => RequestController) {
    let resolveDone!: (result: EndResult) => void;
    let rejectDone!: (error: Error) => void;
    this.done = new Promise<EndResult>((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    // Callers that only read stdout should not see an unhandled rejection; awaiting `done` still throws.
    this.done.catch(() => {});
    this.stdout = new Readable({ read: () => this.#controller?.resume() });
    this.stderr = new Readable({ read: () => {} });
    // Errors reach readers through iteration or their own listeners; an unread stream must not crash the process.
    this.stdout.on('error', () => {});
    this.stderr.on('error', () => {});
    this.#controller = start({
      onStdout: (chunk) => this.stdout.push(chunk),
      onStderr: (chunk) => {
        this.stderr.push(chunk);
      },
      onEnd: (result) => {
        this.#settled = true;
        this.stdout.push(null);
        this.stderr.push(null);
        resolveDone(result);
      },
      onError: (error) => {
        this.#settled = true;
        this.stdout.destroy(error);
        this.stderr.destroy(error);
        rejectDone(error);
      },
    });
    this.stdout.once('close', () => {
      if (!this.#settled) this.#controller.abort(new FastCGIAbortError('stdout was closed by its reader before the response ended'));
    });
  }

  abort(reason?: unknown): void {
    this.#controller.abort(reason);
  }

  /** Reads the whole response into memory (for tests and small responses). */
  async text(): Promise<{ stdout: string; stderr: string; result: EndResult }> {
    const [stdout, stderr] = await Promise.all([collect(this.stdout), collect(this.stderr)]);
    const result = await this.done;
    return { stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8'), result };
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
