// Dev mode's browser live reload: a small script is added to HTML pages, it listens to a Server-Sent
// Events stream, and the stream says "reload" when a page source under an app's document root
// changes or the configuration is reloaded. Nothing here exists in production: the HTTP front only
// calls in when a LiveReload was given to it (src/app.ts builds one in dev mode only).

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, extname, relative, sep } from 'node:path';
import type { Logger } from '../log.js';
import { injectInto, wantsInjection } from './live-reload-inject.js';
import { LIVE_RELOAD_EVENTS_PATH, LIVE_RELOAD_SCRIPT, LIVE_RELOAD_SCRIPT_PATH } from './live-reload-script.js';
import { TreeWatcher } from './tree-watcher.js';

export { HtmlInjector, injectInto, wantsInjection } from './live-reload-inject.js';
export { LIVE_RELOAD_EVENTS_PATH, LIVE_RELOAD_SCRIPT, LIVE_RELOAD_SCRIPT_PATH, LIVE_RELOAD_TAG } from './live-reload-script.js';
export { TreeWatcher, type TreeWatcherOptions } from './tree-watcher.js';

/**
 * File extensions whose change reloads pages, besides the app's PHP extensions: page and asset
 * sources. A list rather than "any file" because apps write files under their own document root
 * while they serve (caches, SQLite databases, logs, sessions, uploads); reacting to those would
 * reload a page, which writes again, which reloads it again.
 */
export const SOURCE_EXTENSIONS: readonly string[] = [
  '.html', '.htm', '.css', '.js', '.mjs', '.svg', '.png', '.jpg', '.jpeg', '.gif', '.webp', '.avif', '.ico',
  '.inc', '.phtml', '.twig', '.tpl', '.latte', '.mustache',
];

export interface LiveReloadRoot {
  documentRoot: string;
  /** The app's PHP extensions (php.extensions): their files are sources too. */
  extensions: readonly string[];
}

export interface LiveReloadOptions {
  log: Logger;
  /** How long file changes settle before pages are told (file_watcher.debounce_ms). */
  debounceMs: number;
  /** Comment lines keep idle streams open through proxies; every this many ms. */
  heartbeatMs?: number;
  folderLimit?: number;
}

/**
 * The live reload hub: watches the apps' document roots, answers the reserved paths (the script and
 * the event stream), and adds the tag to pages (`inject`). One per dev-mode server.
 */
export class LiveReload {
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #heartbeatMs: number;
  readonly #folderLimit: number | undefined;
  /** Tells a page's stream which server process it talks to (a restart reloads the page). */
  readonly #boot = randomBytes(8).toString('hex');
  readonly #clients = new Set<ServerResponse>();
  readonly #trees = new Map<string, TreeWatcher>();
  #extensions = new Map<string, Set<string>>();
  #changed = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #reloads = 0;
  #closed = false;

  constructor(options: LiveReloadOptions) {
    this.#log = options.log;
    this.#debounceMs = options.debounceMs;
    this.#heartbeatMs = options.heartbeatMs ?? 25_000;
    this.#folderLimit = options.folderLimit;
  }

  /** Pages listening now. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Reload events sent so far. */
  get reloads(): number {
    return this.#reloads;
  }

  /** The document roots watched now. */
  get roots(): string[] {
    return [...this.#trees.keys()].sort();
  }

  /** Watches these document roots (and stops watching others): call at start and after a reload. */
  setRoots(roots: readonly LiveReloadRoot[]): void {
    if (this.#closed) return;
    const wanted = new Map<string, Set<string>>();
    for (const root of roots) {
      const set = wanted.get(root.documentRoot) ?? new Set<string>();
      for (const extension of root.extensions) set.add(extension);
      wanted.set(root.documentRoot, set);
    }
    this.#extensions = wanted;
    for (const [dir, tree] of this.#trees) {
      if (!wanted.has(dir)) {
        tree.close();
        this.#trees.delete(dir);
      }
    }
    for (const dir of wanted.keys()) {
      if (this.#trees.has(dir)) continue;
      const tree = new TreeWatcher(dir, {
        include: (path) => this.#isSource(dir, path),
        onChange: (path) => this.#schedule(path),
        onError: (error) => this.#log.warn({ dir }, error.message),
        folderLimit: this.#folderLimit,
      });
      this.#trees.set(dir, tree);
      this.#log.debug({ dir, folders: tree.folders }, `live reload: watching ${dir} (${tree.folders} folder${tree.folders === 1 ? '' : 's'})`);
    }
  }

  #isSource(root: string, path: string): boolean {
    const name = basename(path);
    if (name.startsWith('.')) return false;
    const extension = extname(name);
    return extension !== '' && (SOURCE_EXTENSIONS.includes(extension) || (this.#extensions.get(root)?.has(extension) ?? false));
  }

  #schedule(path: string): void {
    if (this.#closed) return;
    this.#changed.add(path);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const paths = [...this.#changed].sort();
      this.#changed.clear();
      const shown = paths.slice(0, 3).map((path) => {
        const root = [...this.#trees.keys()].find((dir) => path.startsWith(dir + sep));
        return root ? relative(root, path) : path;
      });
      this.notify(`${shown.join(', ')}${paths.length > 3 ? ` and ${paths.length - 3} more` : ''} changed`);
    }, this.#debounceMs);
    this.#timer.unref();
  }

  /** Tells every listening page to reload. */
  notify(why: string): void {
    if (this.#closed) return;
    this.#reloads += 1;
    const listening = this.#clients.size;
    this.#log.info({ pages: listening }, `live reload: ${why}; reloading ${listening} page${listening === 1 ? '' : 's'}`);
    this.#broadcast(`event: reload\ndata: ${JSON.stringify({ why })}\n\n`);
  }

  /** Whether `path` is one of the reserved paths this answers. */
  claims(path: string): boolean {
    return path === LIVE_RELOAD_EVENTS_PATH || path === LIVE_RELOAD_SCRIPT_PATH;
  }

  /** Answers a request for a reserved path (see claims). */
  answer(request: IncomingMessage, response: ServerResponse, path: string): void {
    const method = request.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Length': '0' });
      response.end();
      return;
    }
    if (path === LIVE_RELOAD_SCRIPT_PATH) {
      const body = Buffer.from(LIVE_RELOAD_SCRIPT);
      response.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Content-Length': String(body.length), 'Cache-Control': 'no-store' });
      response.end(method === 'HEAD' ? undefined : body);
      return;
    }
    response.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', 'X-Accel-Buffering': 'no' });
    if (method === 'HEAD' || this.#closed) {
      response.end();
      return;
    }
    // A stream is idle for minutes: no socket timeout may end it (the browser would only reconnect).
    request.socket.setTimeout(0);
    response.write(`retry: 1000\n\nevent: hello\ndata: ${JSON.stringify({ boot: this.#boot })}\n\n`);
    this.#clients.add(response);
    response.on('close', () => {
      this.#clients.delete(response);
      if (this.#clients.size === 0 && this.#heartbeat) {
        clearInterval(this.#heartbeat);
        this.#heartbeat = null;
      }
    });
    if (!this.#heartbeat) {
      this.#heartbeat = setInterval(() => this.#broadcast(': ping\n\n'), this.#heartbeatMs);
      this.#heartbeat.unref();
    }
    this.#log.debug({ pages: this.#clients.size }, `live reload: a page is listening (${this.#clients.size} open)`);
  }

  /** Adds the tag to the response if it is a page (see injectInto, wantsInjection). */
  inject(request: IncomingMessage, response: ServerResponse): void {
    if (!this.#closed && wantsInjection(request)) injectInto(response);
  }

  #broadcast(text: string): void {
    for (const client of this.#clients) client.write(text);
  }

  /** Ends every stream (so a graceful stop does not wait for them) and stops watching. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#timer = null;
    this.#heartbeat = null;
    for (const tree of this.#trees.values()) tree.close();
    this.#trees.clear();
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }
}
