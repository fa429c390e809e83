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
  for (const segment of path.split('/')) {
    if (segment.startsWith('.') && segment !== '.well-known') return true;
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
 * True for a configured name (index file, front controller) that stays inside the document root and
 * is not hidden: no "..", ".", empty or dot-led segments. Config validation refuses the others too;
 * this keeps the resolver safe on its own.
 */
function isContainedName(name: string): boolean {
  return name.split('/').every((segment) => segment !== '' && !segment.startsWith('.') && !segment.includes('\0'));
}

/** True when the script's extension is exactly one of the allowed ones (security.limit_extensions). */
function hasAllowedExtension(script: string, extensions: readonly string[]): boolean {
  return extensions.some((extension) => script.endsWith(extension));
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
    if (hasAllowedExtension(split.script, options.extensions) && statOf(filename)?.isFile()) {
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
    if (hasAllowedExtension(script, options.extensions) && statOf(filename)?.isFile()) {
      return { kind: 'php', script, pathInfo: '', filename };
    }
  }
  return { kind: 'not-found', reason };
}
