// Live reload's watcher of a document root: one non-recursive fs.watch per folder, folders added and
// dropped as they come and go, changes reported for the files a filter accepts.

import { lstatSync, readdirSync, watch, type Dirent, type FSWatcher } from 'node:fs';
import { join, sep } from 'node:path';

/** Folders never watched: dotfolders (.git, .idea) are skipped by name, these by their whole name. */
const SKIPPED_FOLDERS = new Set(['node_modules']);

/** Most folders watched per document root (one inotify watch each); more are left out, with a warning. */
const DEFAULT_FOLDER_LIMIT = 4000;

export interface TreeWatcherOptions {
  /** Called with the absolute path of a file that was written, created, renamed or removed and passes `include`. */
  onChange: (path: string) => void;
  include: (path: string) => boolean;
  onError?: (error: Error) => void;
  folderLimit?: number;
}

/**
 * Watches a folder tree: one non-recursive fs.watch per folder (dotfolders and node_modules left
 * out), folders that appear are added and folders that go away dropped. Node 20's own recursive
 * watch on Linux watches every file too (and every file in .git), which a big app tree cannot afford.
 */
export class TreeWatcher {
  readonly root: string;
  readonly #options: TreeWatcherOptions;
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #limit: number;
  #limitReported = false;
  #closed = false;

  constructor(root: string, options: TreeWatcherOptions) {
    this.root = root;
    this.#options = options;
    this.#limit = options.folderLimit ?? DEFAULT_FOLDER_LIMIT;
    this.#add(root, false);
  }

  /** Folders watched now. */
  get folders(): number {
    return this.#watchers.size;
  }

  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  /** Watches `dir` and the folders under it; with `report`, says whether a watched file is in there. */
  #add(dir: string, report: boolean): boolean {
    if (this.#closed || this.#watchers.has(dir)) return false;
    if (this.#watchers.size >= this.#limit) {
      if (!this.#limitReported) this.#options.onError?.(new Error(`live reload: more than ${this.#limit} folders under ${this.root}; the rest are not watched`));
      this.#limitReported = true;
      return false;
    }
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name !== null) this.#onEvent(dir, String(name));
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.#options.onError?.(error as Error);
      return false;
    }
    watcher.on('error', () => {
      // The folder went away; its parent's event says so.
      this.#drop(dir);
    });
    this.#watchers.set(dir, watcher);
    let found = false;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return false;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      // Symlinked folders are not followed (they may loop, or point at a whole other tree).
      if (entry.isDirectory()) {
        if (!SKIPPED_FOLDERS.has(entry.name) && this.#add(path, report)) found = true;
      } else if (report && !found && this.#options.include(path)) found = true;
    }
    return found;
  }

  /** Stops watching `dir` and every folder under it. */
  #drop(dir: string): void {
    const prefix = dir + sep;
    for (const [path, watcher] of this.#watchers) {
      if (path === dir || path.startsWith(prefix)) {
        watcher.close();
        this.#watchers.delete(path);
      }
    }
  }

  #onEvent(dir: string, name: string): void {
    if (this.#closed || name.startsWith('.')) return;
    const path = join(dir, name);
    let isFolder = false;
    try {
      isFolder = lstatSync(path).isDirectory();
    } catch {
      // Gone: a removed folder we watched counts as a change, a removed file if it is a source.
      if (this.#watchers.has(path)) {
        this.#drop(path);
        this.#options.onChange(path);
      } else if (this.#options.include(path)) this.#options.onChange(path);
      return;
    }
    if (isFolder) {
      // A folder that appeared (created, or moved in with its files): watched, and a change if it holds sources.
      if (!SKIPPED_FOLDERS.has(name) && !this.#watchers.has(path) && this.#add(path, true)) this.#options.onChange(path);
      return;
    }
    if (this.#options.include(path)) this.#options.onChange(path);
  }
}
