// The pieces every text log line is made of (access, slow and PHP error logs): escaping that makes
// log injection impossible, nginx's time format, seconds with millisecond resolution. Pure.

const HEX = '0123456789ABCDEF';

function hexByte(byte: number): string {
  return `\\x${HEX[byte >> 4]}${HEX[byte & 15]}`;
}

/**
 * A request field (URI, user agent, referer, method) as nginx writes it with `escape=default`: `"`,
 * `\`, control characters and everything outside printable ASCII become \xHH, so a line holds only
 * printable ASCII and no field can end early or start a new line. Characters up to U+00FF are the
 * bytes as they came (Node reads request lines and headers as latin1); anything above is escaped as
 * its UTF-8 bytes. With `bare`, spaces are escaped too, for fields that are not in quotes.
 */
export function escapeField(text: string, bare = false): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x21 && code <= 0x7e && code !== 0x22 && code !== 0x5c) continue;
    if (code === 0x20 && !bare) continue;
    out += text.slice(from, i);
    if (code <= 0xff) out += hexByte(code);
    else {
      const point = text.codePointAt(i)!;
      if (point > 0xffff) i += 1;
      for (const byte of Buffer.from(String.fromCodePoint(point), 'utf8')) out += hexByte(byte);
    }
    from = i + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** A field for a text log: escaped, and `-` when empty (nginx's convention for "no value"). */
export function field(text: string | null | undefined, bare = true): string {
  return text ? escapeField(text, bare) : '-';
}

/**
 * A free-text message (what PHP wrote): readable Unicode kept, but every control character (C0,
 * DEL, C1, and the Unicode line and paragraph separators) escaped as \xHH or \uHHHH, so one message
 * line stays one log line.
 */
export function escapeMessage(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? hexByte(code) : `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
  });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const two = (n: number) => String(n).padStart(2, '0');

/** The local UTC offset at a moment, in minutes east of UTC (+120 for CEST). */
export function localOffsetMinutes(epochMs: number): number {
  return -new Date(epochMs).getTimezoneOffset();
}

/** The last clfTime() result: a busy server formats the same second many times. */
let cached = { second: NaN, offset: NaN as number | undefined, text: '' };

/** nginx's $time_local: "10/Oct/2000:13:55:36 -0700", at the given UTC offset (default local). */
export function clfTime(epochMs: number, offsetMinutes?: number): string {
  const second = Math.floor(epochMs / 1000);
  if (second === cached.second && offsetMinutes === cached.offset) return cached.text;
  const text = formatClfTime(epochMs, offsetMinutes ?? localOffsetMinutes(epochMs));
  cached = { second, offset: offsetMinutes, text };
  return text;
}

function formatClfTime(epochMs: number, offsetMinutes: number): string {
  const d = new Date(epochMs + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} ${sign}${two(Math.floor(abs / 60))}${two(abs % 60)}`;
}

/** Milliseconds as seconds with millisecond resolution ("0.012"), as nginx's $request_time; `-` for none. */
export function seconds(ms: number | null): string {
  if (ms === null) return '-';
  const value = Math.max(0, ms);
  // The result is toFixed(3) of value / 1000, which costs a call into V8's C++ per field, three
  // times per access log line (issue 8). Rounding `value` to an integer gives the same digits unless
  // its fraction is within rounding error of a half (where toFixed decides by the exact binary value
  // of value / 1000, e.g. 1234.5 ms is "1.234"): those, and huge values, still go to toFixed.
  const fraction = value - Math.floor(value);
  if (value >= 1e9 || Math.abs(fraction - 0.5) < 1e-6) return (value / 1000).toFixed(3);
  const thousandths = Math.round(value);
  const rest = thousandths % 1000;
  return `${(thousandths - rest) / 1000}.${rest < 10 ? '00' : rest < 100 ? '0' : ''}${rest}`;
}

/** Milliseconds rounded to microseconds, for JSON. */
export function roundMs(ms: number | null): number | null {
  return ms === null ? null : Math.round(Math.max(0, ms) * 1000) / 1000;
}
