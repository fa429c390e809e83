// What a path inside an app is: a PHP script (with PATH_INFO), a static file, a directory redirect,
// the front controller, or nothing. Caddy's php_fastcgi semantics: split at ".php", then try the
// file, the directory's index, and the app's index.php; never run or reveal anything else.

import { statSync, type Stats } from 'node:fs';

export type Resolution =
  | { kind: 'php'; script: string; pathInfo: string; filename: string }
  | { kind: 'static'; file: string; stats: Stats }
  | { kind: 'redirect'; path: string }
  | { kind: 'not-found'; reason: string };

export interface ResolveOptions {
  documentRoot: string;
  indexFiles: readonly string[];
  frontController: string | null;
  /** Extensions run as PHP, exactly as written (".php"). */
  extensions: readonly string[];
}

/**
 * Finds the first `.php` (any allowed extension, ASCII case-insensitive) that ends a path segment.
 * Returns the script part and the PATH_INFO part. Only ASCII is folded: a Unicode case mapping can
 * change string lengths and shift the split point (the FrankenPHP GHSA-3g8v-8r37-cgjm class).
 */
export function splitScriptPath(path: string, extensions: readonly string[]): { script: string; pathInfo: string } | null {
  let best = -1;
  let bestLength = 0;
  for (const extension of extensions) {
    const at = indexOfAsciiInsensitive(path, extension);
    if (at >= 0 && (best < 0 || at < best)) {
      best = at;
      bestLength = extension.length;
    }
  }
  if (best < 0) return null;
  const end = best + bestLength;
  return { script: path.slice(0, end), pathInfo: path.slice(end) };
}

/** First index where `needle` occurs followed by "/" or the end, comparing ASCII letters without case. */
function indexOfAsciiInsensitive(haystack: string, needle: string): number {
  const n = needle.length;
  outer: for (let i = 0; i + n <= haystack.length; i++) {
    for (let j = 0; j < n; j++) {
      let a = haystack.charCodeAt(i + j);
      let b = needle.charCodeAt(j);
      if (a >= 0x41 && a <= 0x5a) a |= 0x20;
      if (b >= 0x41 && b <= 0x5a) b |= 0x20;
      if (a !== b) continue outer;
    }
    const after = i + n;
    if (after === haystack.length || haystack.charCodeAt(after) === 0x2f) return i;
  }
  return -1;
}

/** Extensions whose files hold PHP source in some setup: never served as static files. */
const SOURCE_EXTENSIONS = /\.(php\d?|phtml|phar|phps|pht|inc|module|install)$/i;
/** Editor and backup leftovers that often hold source or secrets. */
const BACKUP_NAMES = /(~|\.(bak|bkp|backup|old|orig|save|swp|swo|swn|tmp|temp|copy|dist|rej))$|^#.*#$/i;
/** Hand-made copies of PHP source: "x.php_old", "x.php-2024", "x.php.1". */
const SOURCE_COPIES = /\.(php\d?|phtml|phar|inc)([_~-]|\.\d+$)/i;

/**
 * True for a path no one may fetch or run: a segment starting with "." (.env, .git, .htaccess,
 * .user.ini) except /.well-known (RFC 8615).
 */
export function isHiddenPath(path: string): boolean {
  // Every "." that starts a segment, found without splitting the path (this runs for every request).
  for (let at = path.indexOf('.'); at >= 0; at = path.indexOf('.', at + 1)) {
    if (at > 0 && path.charCodeAt(at - 1) !== 0x2f) continue;
    const end = path.indexOf('/', at);
    if ((end < 0 ? path.slice(at) : path.slice(at, end)) !== '.well-known') return true;
  }
  return false;
}

/** True for a file name that must never be served as a static file (source or backup). */
export function isDeniedStatic(path: string, extensions: readonly string[]): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  if (SOURCE_EXTENSIONS.test(name) || BACKUP_NAMES.test(name) || SOURCE_COPIES.test(name)) return true;
  const lower = name.toLowerCase();
  return extensions.some((extension) => lower.endsWith(extension.toLowerCase()));
}

/** stat, or undefined for anything that is not there as far as a request is concerned (ENOENT, ENOTDIR, ENAMETOOLONG, EACCES...). */
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * PHP scripts seen to be regular files, and when: a script is looked at again after
 * SCRIPT_CHECK_TTL_MS. A stat per PHP request costs a system call and a Stats object (issue 8);
 * nginx's try_files and php-fpm stat each request as well, but PHP itself trusts its realpath cache
 * for 120 s and opcache a compiled file for 2 s. Only "it is a file" is remembered, never "it is
 * not there" (a script just created is found at once), and static files are always looked at (their
 * size and time go into the response). A script deleted less than a second ago still goes to PHP,
 * which answers 404 itself.
 */
const SCRIPT_CHECK_TTL_MS = 1000;
const SCRIPT_CHECK_MAX = 4096;
const scriptSeenAt = new Map<string, number>();

/** True when `filename` is a regular file (PHP scripts only: see SCRIPT_CHECK_TTL_MS). The FastCGI front uses it too. */
export function isScriptFile(filename: string): boolean {
  const now = Date.now();
  const seen = scriptSeenAt.get(filename);
  if (seen !== undefined && now - seen < SCRIPT_CHECK_TTL_MS) return true;
  if (!statOf(filename)?.isFile()) {
    scriptSeenAt.delete(filename);
    return false;
  }
  if (scriptSeenAt.size >= SCRIPT_CHECK_MAX) scriptSeenAt.clear();
  scriptSeenAt.set(filename, now);
  return true;
}

/**
 * True for a configured name (index file, front controller) that stays inside the document root and
 * is not hidden: no "..", ".", empty or dot-led segments. Config validation refuses the others too;
 * this keeps the resolver safe on its own.
 */
function isContainedName(name: string): boolean {
  return name.split('/').every((segment) => segment !== '' && !segment.startsWith('.') && !segment.includes('\0'));
}

/** True when the script's extension is exactly one of the allowed ones (security.limit_extensions). */
function hasAllowedExtension(script: string, extensions: readonly string[]): boolean {
  for (const extension of extensions) if (script.endsWith(extension)) return true;
  return false;
}

/**
 * Resolves `path` (decoded, normalised, relative to the app: "" or starting with "/") against the
 * document root. `path` never contains ".." (normalisation removed it), so every file is inside.
 */
export function resolvePath(path: string, options: ResolveOptions): Resolution {
  const root = options.documentRoot;
  if (isHiddenPath(path)) return { kind: 'not-found', reason: 'hidden path (a segment starts with .)' };

  const split = splitScriptPath(path, options.extensions);
  if (split) {
    const filename = root + split.script;
    if (hasAllowedExtension(split.script, options.extensions) && isScriptFile(filename)) {
      return { kind: 'php', script: split.script, pathInfo: split.pathInfo, filename };
    }
  }

  const target = path === '' ? root : root + path;
  const stats = statOf(target);
  if (stats?.isFile()) {
    if (path.endsWith('/')) return fallback(options, 'a file asked for as a directory');
    if (isDeniedStatic(path, options.extensions)) return { kind: 'not-found', reason: 'source or backup file is never served' };
    return { kind: 'static', file: target, stats };
  }
  if (stats?.isDirectory()) {
    const dirPath = path.endsWith('/') ? path : `${path}/`;
    for (const index of options.indexFiles) {
      if (index.includes('/') || !isContainedName(index)) continue;
      const indexFile = root + dirPath + index;
      const indexStats = statOf(indexFile);
      if (!indexStats?.isFile()) continue;
      // A directory asked for without its slash is redirected first, so relative links in the page work.
      if (!path.endsWith('/')) return { kind: 'redirect', path: dirPath };
      const script = dirPath + index;
      if (hasAllowedExtension(index, options.extensions)) return { kind: 'php', script, pathInfo: '', filename: indexFile };
      if (isDeniedStatic(index, options.extensions)) continue;
      return { kind: 'static', file: indexFile, stats: indexStats };
    }
  }
  return fallback(options, stats ? 'directory without an index file' : 'no such file');
}

/** Pretty URLs: anything not found goes to the front controller (try_files ... /index.php). */
function fallback(options: ResolveOptions, reason: string): Resolution {
  const front = options.frontController;
  if (front !== null && isContainedName(front.replace(/^\/+/, ''))) {
    const script = `/${front.replace(/^\/+/, '')}`;
    const filename = options.documentRoot + script;
    if (hasAllowedExtension(script, options.extensions) && isScriptFile(filename)) {
      return { kind: 'php', script, pathInfo: '', filename };
    }
  }
  return { kind: 'not-found', reason };
}
