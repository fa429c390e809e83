// Watches the config files for a reload: server.yaml's folder, the workers folder (apps appearing or
// disappearing), every app folder (its config folder or document root appearing after the folder)
// and every app's config folder. Folders rather than files, because editors save by writing a new
// file and renaming it over the old one. Changes are debounced into one callback.

import { existsSync, readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface ConfigWatcherOptions {
  /** server.yaml (it need not exist yet). */
  configFile: string;
  workersDir: string;
  debounceMs: number;
  onChange: (changed: string[]) => void;
  onError?: (error: Error) => void;
}

/** Files whose change means a reload: YAML in the watched folders, and the app folders themselves. */
function relevant(dir: string, name: string | null, options: ConfigWatcherOptions): boolean {
  if (name === null) return true;
  if (dir === options.workersDir) return true; // an app folder added, removed or renamed
  if (dir === dirname(options.configFile)) return name === basename(options.configFile);
  if (dirname(dir) === options.workersDir) {
    // An app folder: its config folder, or a folder (the document root) created after the
    // worker.yaml that names it, which left the app invalid until now. Files (a log written into
    // the app folder on every request) are no reason to reload.
    if (name === 'config') return true;
    try {
      return statSync(join(dir, name)).isDirectory();
    } catch {
      return false;
    }
  }
  return name === 'worker.yaml';
}

export class ConfigWatcher {
  readonly #options: ConfigWatcherOptions;
  readonly #watchers = new Map<string, FSWatcher>();
  #timer: NodeJS.Timeout | null = null;
  #changed = new Set<string>();
  #closed = false;

  constructor(options: ConfigWatcherOptions) {
    this.#options = options;
    this.refresh();
  }

  /** The folders being watched now. */
  get folders(): string[] {
    return [...this.#watchers.keys()].sort();
  }

  /** Watches what exists now (call after a reload: apps may have come or gone). */
  refresh(): void {
    if (this.#closed) return;
    const wanted = new Set<string>([dirname(this.#options.configFile), this.#options.workersDir]);
    if (existsSync(this.#options.workersDir)) {
      for (const entry of readdirSync(this.#options.workersDir, { withFileTypes: true })) {
        if (!entry.isDirectory() && !entry.isSymbolicLink()) continue;
        // The app folder itself too: a config folder made after the app folder is seen only there.
        wanted.add(join(this.#options.workersDir, entry.name));
        wanted.add(join(this.#options.workersDir, entry.name, 'config'));
      }
    }
    for (const [dir, watcher] of this.#watchers) {
      if (!wanted.has(dir)) {
        watcher.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      if (this.#watchers.has(dir) || !existsSync(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (relevant(dir, name === null ? null : String(name), this.#options)) this.#schedule(name === null ? dir : join(dir, String(name)));
        });
        watcher.on('error', (error) => {
          // The folder went away (an app removed): the workers folder's own event triggers the reload.
          watcher.close();
          this.#watchers.delete(dir);
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'EPERM') this.#options.onError?.(error);
        });
        this.#watchers.set(dir, watcher);
      } catch (error) {
        this.#options.onError?.(error as Error);
      }
    }
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  #schedule(path: string): void {
    if (this.#closed) return;
    this.#changed.add(path);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const changed = [...this.#changed].sort();
      this.#changed.clear();
      this.refresh();
      this.#options.onChange(changed);
    }, this.#options.debounceMs);
  }
}
