// Small static files kept in memory, so a stylesheet or an icon costs one write instead of an open,
// a read and a close through the thread pool and a stream (issue 8: a 10 KiB file cost the gateway
// 200-340 µs a request). An entry is used only while the stat resolve.ts made for the request still
// describes it (inode, size, modification and change times: a chmod counts too), so an edited,
// replaced or re-permissioned file is read again at once. Least recently used entries leave first
// when the budget is full.

import type { Stats } from 'node:fs';

/** Files up to this size are kept. */
export const CACHED_FILE_BYTES = 256 * 1024;
/** The whole cache's budget. */
const CACHE_BYTES = 32 * 1024 * 1024;

interface Entry {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  body: Buffer;
}

export class StaticFileCache {
  readonly #entries = new Map<string, Entry>();
  readonly #budget: number;
  #bytes = 0;

  constructor(budget = CACHE_BYTES) {
    this.#budget = budget;
  }

  /** The file's bytes if they are here and `stats` (taken for this request) still describes them. */
  get(file: string, stats: Stats): Buffer | null {
    const entry = this.#entries.get(file);
    if (!entry) return null;
    if (entry.ino !== stats.ino || entry.size !== stats.size || entry.mtimeMs !== stats.mtimeMs || entry.ctimeMs !== stats.ctimeMs) {
      this.#remove(file, entry);
      return null;
    }
    // Most recently used last: Map keeps insertion order.
    this.#entries.delete(file);
    this.#entries.set(file, entry);
    return entry.body;
  }

  /** Keeps `body` as the file `stats` describes, when it is that file (same size) and small enough. */
  put(file: string, stats: Stats, body: Buffer): void {
    if (body.length !== stats.size || body.length > CACHED_FILE_BYTES || body.length > this.#budget) return;
    const old = this.#entries.get(file);
    if (old) this.#remove(file, old);
    for (const [name, entry] of this.#entries) {
      if (this.#bytes + body.length <= this.#budget) break;
      this.#remove(name, entry);
    }
    this.#entries.set(file, { ino: stats.ino, size: stats.size, mtimeMs: stats.mtimeMs, ctimeMs: stats.ctimeMs, body });
    this.#bytes += body.length;
  }

  get bytes(): number {
    return this.#bytes;
  }

  #remove(file: string, entry: Entry): void {
    this.#entries.delete(file);
    this.#bytes -= entry.body.length;
  }
}
