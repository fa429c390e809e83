// Dev mode's browser live reload: a small script is added to HTML pages, it listens to a Server-Sent
// Events stream, and the stream says "reload" when a page source under an app's document root
// changes or the configuration is reloaded. Nothing here exists in production: the HTTP front only
// calls in when a LiveReload was given to it (src/app.ts builds one in dev mode only).

import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, watch, type Dirent, type FSWatcher } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { basename, extname, join, relative, sep } from 'node:path';
import type { Logger } from '../log.js';

/** The event stream pages listen to. Reserved in dev mode: no app sees requests for it. */
export const LIVE_RELOAD_EVENTS_PATH = '/.tqserver/live-reload';
/** The script pages load. */
export const LIVE_RELOAD_SCRIPT_PATH = '/.tqserver/live-reload.js';
/** What goes into every HTML page, before its first </body> (or at its end when it has none). */
export const LIVE_RELOAD_TAG = `<script src="${LIVE_RELOAD_SCRIPT_PATH}" defer></script>`;

/**
 * The script. It reloads the page on a "reload" event, and also when the stream comes back from a
 * different server process (TQServer restarted: the page may be stale). A window flag keeps a page
 * that got the tag twice (an HTML fragment inserted by script) to one stream.
 */
export const LIVE_RELOAD_SCRIPT = `// TQServer dev mode: reloads this page when a file of the app or the configuration changes.
(function () {
  if (window.__tqserverLiveReload) return;
  window.__tqserverLiveReload = true;
  var boot = null;
  var source = new EventSource(${JSON.stringify(LIVE_RELOAD_EVENTS_PATH)});
  function reload() {
    source.close();
    location.reload();
  }
  source.addEventListener('hello', function (event) {
    var hello = JSON.parse(event.data);
    if (boot !== null && hello.boot !== boot) return reload();
    boot = hello.boot;
  });
  source.addEventListener('reload', reload);
})();
`;

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

/** Folders never watched: dotfolders (.git, .idea) are skipped by name, these by their whole name. */
const SKIPPED_FOLDERS = new Set(['node_modules']);

/** Most folders watched per document root (one inotify watch each); more are left out, with a warning. */
const DEFAULT_FOLDER_LIMIT = 4000;

// ---- injection ----

const EMPTY = Buffer.alloc(0);
const NEEDLE = '</body';

/** Index of the first "</body" (any case) in `data`, or -1. */
function findBodyEnd(data: Buffer): number {
  for (let at = data.indexOf('</'); at >= 0 && at + NEEDLE.length <= data.length; at = data.indexOf('</', at + 1)) {
    let match = true;
    for (let i = 2; i < NEEDLE.length; i += 1) {
      // ASCII letters only: setting 0x20 lowercases them.
      if ((data[at + i]! | 0x20) !== NEEDLE.charCodeAt(i)) {
        match = false;
        break;
      }
    }
    if (match) return at;
  }
  return -1;
}

/** Length of the longest end of `data` that could be the start of "</body" (0 to 5 bytes). */
function partialBodyEnd(data: Buffer): number {
  for (let keep = Math.min(NEEDLE.length - 1, data.length); keep > 0; keep -= 1) {
    let match = true;
    for (let i = 0; i < keep; i += 1) {
      const byte = data[data.length - keep + i]!;
      const wanted = NEEDLE.charCodeAt(i);
      if ((i < 2 ? byte : byte | 0x20) !== wanted) {
        match = false;
        break;
      }
    }
    if (match) return keep;
  }
  return 0;
}

/**
 * Adds the tag to an HTML body as it streams: before the first "</body" (found across chunk
 * boundaries by holding back at most 5 bytes), or at the end when there is none. Exactly one tag is
 * added either way, so a known Content-Length grows by exactly the tag's length.
 */
export class HtmlInjector {
  readonly #tag: Buffer;
  #pending: Buffer = EMPTY;
  #done = false;

  constructor(tag: Buffer = Buffer.from(LIVE_RELOAD_TAG)) {
    this.#tag = tag;
  }

  get tagLength(): number {
    return this.#tag.length;
  }

  /** The bytes to send now for `chunk` (possibly fewer: a possible "</body" start waits for the next). */
  push(chunk: Buffer): Buffer {
    if (this.#done) return chunk;
    const data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = EMPTY;
    const at = findBodyEnd(data);
    if (at >= 0) {
      this.#done = true;
      return Buffer.concat([data.subarray(0, at), this.#tag, data.subarray(at)]);
    }
    const keep = partialBodyEnd(data);
    // A copy: the caller may reuse its buffer after the write.
    if (keep > 0) this.#pending = Buffer.from(data.subarray(data.length - keep));
    return data.subarray(0, data.length - keep);
  }

  /** The last bytes: what was held back, and the tag if no "</body" came. */
  finish(): Buffer {
    if (this.#done) return EMPTY;
    this.#done = true;
    const rest = this.#pending;
    this.#pending = EMPTY;
    return Buffer.concat([rest, this.#tag]);
  }
}

function headerValue(value: OutgoingHttpHeader | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

type WriteHeadHeaders = OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined;

/** A header from writeHead's argument (an object, a flat [name, value, ...] list or pairs), or undefined. */
function fromWriteHead(headers: WriteHeadHeaders, name: string): string | undefined {
  if (!headers) return undefined;
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0])) {
      for (const pair of headers as unknown as Array<[string, OutgoingHttpHeader]>) if (String(pair[0]).toLowerCase() === name) return headerValue(pair[1]);
      return undefined;
    }
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === name) return headerValue(headers[i + 1]);
    return undefined;
  }
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return headerValue(headers[key]);
  return undefined;
}

/** writeHead's headers with Content-Length set to `length` (or removed when null). */
function withLength(headers: WriteHeadHeaders, length: number | null): WriteHeadHeaders {
  if (!headers) return headers;
  const value = length === null ? null : String(length);
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0])) {
      const pairs = (headers as unknown as Array<[string, OutgoingHttpHeader]>).filter((pair) => String(pair[0]).toLowerCase() !== 'content-length');
      if (value !== null) pairs.push(['Content-Length', value]);
      return pairs as unknown as OutgoingHttpHeader[];
    }
    const flat: OutgoingHttpHeader[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() !== 'content-length') flat.push(headers[i]!, headers[i + 1]!);
    if (value !== null) flat.push('Content-Length', value);
    return flat;
  }
  const out: OutgoingHttpHeaders = {};
  for (const [key, entry] of Object.entries(headers)) if (key.toLowerCase() !== 'content-length') out[key] = entry;
  if (value !== null) out['Content-Length'] = value;
  return out;
}

/**
 * Whether a response gets the tag: a whole (200) HTML page, not compressed. Its head is read from
 * writeHead's argument or, when the page is sent with implicit headers, from the response.
 */
function injectable(response: ServerResponse, status: number, headers: WriteHeadHeaders): boolean {
  if (status !== 200) return false;
  const type = fromWriteHead(headers, 'content-type') ?? headerValue(response.getHeader('content-type'));
  if (!type || !/^\s*text\/html\s*(;|$)/i.test(type)) return false;
  const encoding = fromWriteHead(headers, 'content-encoding') ?? headerValue(response.getHeader('content-encoding'));
  return encoding === undefined || encoding.trim() === '' || encoding.trim().toLowerCase() === 'identity';
}

/**
 * Makes `response` add the tag if it turns out to be an HTML page. The decision is taken when its
 * head goes out (writeHead, or the first write); the body then passes through an HtmlInjector. A
 * Content-Length is kept and grows by the tag's length; nothing is buffered beyond 5 bytes.
 * Works on whatever writes the response (the PHP proxy, the static file pipeline) without them
 * knowing.
 */
export function injectInto(response: ServerResponse, tag: Buffer = Buffer.from(LIVE_RELOAD_TAG)): void {
  const realWriteHead = response.writeHead;
  const realWrite = response.write;
  const realEnd = response.end;
  /** null: not decided yet; false: passes through. */
  let injector: HtmlInjector | false | null = null;

  /** Decides from the head; returns writeHead's headers, adjusted. */
  const decide = (status: number, headers: WriteHeadHeaders): WriteHeadHeaders => {
    if (injector !== null) return headers;
    if (response.headersSent || !injectable(response, status, headers)) {
      injector = false;
      return headers;
    }
    injector = new HtmlInjector(tag);
    const given = fromWriteHead(headers, 'content-length') ?? headerValue(response.getHeader('content-length'));
    const length = given !== undefined && /^\s*\d+\s*$/.test(given) ? Number(given) + tag.length : null;
    if (response.hasHeader('content-length')) {
      if (length === null) response.removeHeader('content-length');
      else response.setHeader('Content-Length', String(length));
    }
    return fromWriteHead(headers, 'content-length') !== undefined ? withLength(headers, length) : headers;
  };

  const toBuffer = (chunk: unknown, encoding: unknown): Buffer =>
    Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.from(chunk as Uint8Array);

  response.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    // writeHead(status, headers) or writeHead(status, reason, headers).
    const at = typeof rest[0] === 'string' ? 1 : 0;
    const args = [...rest];
    args[at] = decide(status, args[at] as WriteHeadHeaders);
    return (realWriteHead as (...a: unknown[]) => ServerResponse).call(this, status, ...args);
  } as ServerResponse['writeHead'];

  response.write = function (this: ServerResponse, chunk: unknown, encoding?: unknown, callback?: unknown) {
    if (injector === null) decide(response.statusCode, undefined);
    if (!injector) return (realWrite as (...a: unknown[]) => boolean).call(this, chunk, encoding, callback);
    const done = typeof encoding === 'function' ? encoding : callback;
    const out = injector.push(toBuffer(chunk, encoding));
    if (out.length === 0) {
      // Everything held back (a possible "</body" start): nothing to write yet.
      if (typeof done === 'function') process.nextTick(done as () => void);
      return true;
    }
    return (realWrite as (...a: unknown[]) => boolean).call(this, out, done);
  } as ServerResponse['write'];

  response.end = function (this: ServerResponse, chunk?: unknown, encoding?: unknown, callback?: unknown) {
    if (typeof chunk === 'function') return (response.end as (...a: unknown[]) => ServerResponse).call(this, undefined, undefined, chunk);
    if (injector === null) decide(response.statusCode, undefined);
    if (!injector) return (realEnd as (...a: unknown[]) => ServerResponse).call(this, chunk, encoding, callback);
    const done = typeof encoding === 'function' ? encoding : callback;
    const head = chunk === undefined || chunk === null ? EMPTY : injector.push(toBuffer(chunk, encoding));
    const tail = injector.finish();
    return (realEnd as (...a: unknown[]) => ServerResponse).call(this, head.length === 0 ? tail : Buffer.concat([head, tail]), done);
  } as ServerResponse['end'];
}

/**
 * Whether a request is one a page is loaded by. Browsers say what a fetch is for (Sec-Fetch-Dest);
 * script fetches of HTML fragments get no tag, and neither does anything but GET.
 */
export function wantsInjection(request: IncomingMessage): boolean {
  if (request.method !== 'GET') return false;
  const dest = request.headers['sec-fetch-dest'];
  if (dest !== undefined && dest !== 'document' && dest !== 'iframe' && dest !== 'frame') return false;
  return String(request.headers['x-requested-with'] ?? '').toLowerCase() !== 'xmlhttprequest';
}

// ---- watching document roots ----

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

// ---- the hub ----

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
