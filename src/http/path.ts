// Request-target handling before routing (pure): split path and query, percent-decode once, refuse
// what no file name should hold, merge slashes and remove dot segments so no encoding can climb out.

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
  const decoded = percentDecode(rawPath);
  if (decoded === null) return { ok: false, reason: 'the path has a malformed percent escape or is not valid UTF-8' };
  // Control characters have no business in a file name; NUL truncates C strings (php), CR/LF split
  // log lines and once split nginx's PATH_INFO regex (CVE-2019-11043).
  if (/[\x00-\x1f\x7f]/.test(decoded)) return { ok: false, reason: 'the path contains a control character (NUL, CR, LF, ...)' };
  const normal = removeDotSegments(decoded);
  if (normal === null) return { ok: false, reason: 'the path climbs above the root with ..' };
  return { ok: true, path: normal, query };
}

/** Decodes %XX escapes once; null for a malformed escape or bytes that are not UTF-8. */
export function percentDecode(text: string): string | null {
  if (!text.includes('%')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (code < 0x80) {
      bytes.push(code);
    } else {
      // Already a character (Node decoded the target as latin1): keep its UTF-8 bytes.
      for (const b of Buffer.from(text[i]!, 'latin1')) bytes.push(b);
    }
  }
  const buffer = Buffer.from(bytes);
  const decoded = buffer.toString('utf8');
  if (!Buffer.from(decoded, 'utf8').equals(buffer)) return null;
  return decoded;
}

/** RFC 3986 5.2.4 on a decoded path, with repeated slashes merged; null if `..` climbs above "/". */
export function removeDotSegments(path: string): string | null {
  const segments = path.split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const segment = segments[i]!;
    if (segment === '..') {
      if (out.length === 0) return null;
      out.pop();
      if (i === last) out.push('');
    } else if (segment === '.' || segment === '') {
      if (i === last) out.push('');
    } else {
      out.push(segment);
    }
  }
  // A trailing '' keeps the trailing slash ("/a/" stays a directory request).
  const joined = `/${out.join('/')}`;
  return joined.replace(/\/{2,}/g, '/');
}
