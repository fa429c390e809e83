// Request-target handling before routing (pure): split path and query, percent-decode once, refuse
// what no file name should hold, merge slashes and remove dot segments so no encoding can climb out.

import { isPlainPath } from './chars.js';

export type PathResult = { ok: true; path: string; query: string } | { ok: false; reason: string };

/**
 * From the request target as sent ("/blog/a%20b/../c?x=1") to a decoded, normalised path
 * ("/blog/c") and the raw query ("x=1"). Refused: anything but origin-form or absolute-form, bad or
 * overlong percent escapes, invalid UTF-8, NUL and other control characters, and `..` that would
 * climb above the root. The caller answers a refusal with 400.
 */
export function normalizeTarget(target: string): PathResult {
  let rawPath: string;
  let query = '';
  const hash = target.indexOf('#');
  const cut = hash >= 0 ? target.slice(0, hash) : target;
  const questionMark = cut.indexOf('?');
  if (questionMark >= 0) {
    rawPath = cut.slice(0, questionMark);
    query = cut.slice(questionMark + 1);
  } else {
    rawPath = cut;
  }
  if (!rawPath.startsWith('/')) {
    // RFC 9112 3.2.2 absolute-form ("http://host/path"): only the path matters here.
    const absolute = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*(\/.*)?$/.exec(rawPath);
    if (!absolute) return { ok: false, reason: `request target ${JSON.stringify(target.slice(0, 100))} is not a path` };
    rawPath = absolute[1] ?? '/';
  }
  // The usual path (printable ASCII, no escapes) is settled by one pass over a table.
  const plain = isPlainPath(rawPath);
  const decoded = plain ? rawPath : percentDecode(rawPath);
  if (decoded === null) return { ok: false, reason: 'the path has a malformed percent escape or is not valid UTF-8' };
  // Control characters have no business in a file name; NUL truncates C strings (php), CR/LF split
  // log lines and once split nginx's PATH_INFO regex (CVE-2019-11043).
  if (!plain && /[\x00-\x1f\x7f]/.test(decoded)) return { ok: false, reason: 'the path contains a control character (NUL, CR, LF, ...)' };
  const normal = removeDotSegments(decoded);
  if (normal === null) return { ok: false, reason: 'the path climbs above the root with ..' };
  return { ok: true, path: normal, query };
}

/**
 * Decodes %XX escapes once; null for a malformed escape or bytes that are not UTF-8. The input is a
 * byte string as Node's parser makes one (latin1: one char per byte); raw bytes above 0x7F are
 * decoded together with the escaped ones, so "caf\xc3\xa9" and "caf%C3%A9" both give "café".
 * A char above 0xFF cannot come from the wire and is refused rather than guessed at.
 */
export function percentDecode(text: string): string | null {
  if (/^[\x00-\x24\x26-\x7f]*$/.test(text)) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (code <= 0xff) {
      bytes.push(code);
    } else {
      return null;
    }
  }
  const buffer = Buffer.from(bytes);
  const decoded = buffer.toString('utf8');
  // Invalid or overlong sequences and encoded surrogates decode to U+FFFD and do not round-trip.
  if (!Buffer.from(decoded, 'utf8').equals(buffer)) return null;
  return decoded;
}

/**
 * RFC 3986 5.2.4 on a decoded path, with empty segments (repeated slashes) dropped; null if `..`
 * climbs above "/". The result starts with "/", and keeps a trailing slash when the path ends in a
 * directory ("/a/", "/a/.", "/a/b/..").
 */
export function removeDotSegments(path: string): string | null {
  // Most paths have nothing to remove: no empty segment ("//") and no segment starting with "."
  // (so no "." or ".."). They are returned as they are, without splitting and joining them.
  if (path.charCodeAt(0) === 0x2f && !path.includes('//') && !path.includes('/.')) return path;
  const out: string[] = [];
  let directory = false;
  for (const segment of path.split('/')) {
    if (segment === '..') {
      if (out.length === 0) return null;
      out.pop();
      directory = true;
    } else if (segment === '.' || segment === '') {
      directory = true;
    } else {
      out.push(segment);
      directory = false;
    }
  }
  if (out.length === 0) return '/';
  return `/${out.join('/')}${directory ? '/' : ''}`;
}
