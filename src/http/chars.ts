// HTTP/1.1 character classes as lookup tables checked by a loop. Header names and values are short,
// and on the hot path of every request (the fast path's parser, each response header's validation)
// a regular expression call costs several times what this loop does (issue 8).

function table(chars: string): Uint8Array {
  const flags = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) flags[chars.charCodeAt(i)] = 1;
  return flags;
}

function range(from: number, to: number): string {
  let chars = '';
  for (let code = from; code <= to; code++) chars += String.fromCharCode(code);
  return chars;
}

/** RFC 9110 5.6.2 tchar. */
const TCHAR = table(`!#$%&'*+-.^_\`|~${range(0x30, 0x39)}${range(0x41, 0x5a)}${range(0x61, 0x7a)}`);
/** HTAB, SP and VCHAR: a field value without obs-text. */
const PLAIN_VALUE = table(`\t${range(0x20, 0x7e)}`);
/** What Node lets through in a response header value (HTAB, SP, VCHAR and obs-text 0x80-0xFF). */
const HEADER_TEXT = table(`\t${range(0x20, 0x7e)}${range(0x80, 0xff)}`);
/** Printable ASCII but "%": a path that needs no percent-decoding and holds no control character. */
const PLAIN_PATH = table(range(0x20, 0x7e).replace('%', ''));
/** VCHAR: a request target's characters (no space, no control). */
const VCHAR = table(range(0x21, 0x7e));

function all(text: string, flags: Uint8Array): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff || flags[code] === 0) return false;
  }
  return true;
}

/** A header name (a token, RFC 9110 5.6.2): at least one tchar and nothing else. */
export function isToken(text: string): boolean {
  return text.length > 0 && all(text, TCHAR);
}

/** A field value made of HTAB, SP and VCHAR only (empty included). */
export function isPlainFieldValue(text: string): boolean {
  return all(text, PLAIN_VALUE);
}

/** A value Node's validateHeaderValue accepts as a string: no control character but HTAB, nothing above 0xFF. */
export function isHeaderText(text: string): boolean {
  return all(text, HEADER_TEXT);
}

/** An origin-form request target: "/" then VCHARs. */
export function isOriginTarget(text: string): boolean {
  return text.charCodeAt(0) === 0x2f && all(text, VCHAR);
}

/** Printable ASCII without "%": decoding leaves it as it is, and it holds no control character. */
export function isPlainPath(text: string): boolean {
  return all(text, PLAIN_PATH);
}
