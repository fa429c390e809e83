// FastCGI name-value pairs (spec 3.4): 1-byte lengths up to 127, 4-byte lengths with the high bit set
// beyond; encoded whole, decoded from a stream whose pairs may straddle records. Nothing is truncated.

import { FastCGIProtocolError } from '../errors.js';
import type { ParamPairs, ParamValue } from './protocol.js';

/** Spec 3.4: a 4-byte length has 31 bits. */
export const MAX_PAIR_PART_BYTES = 0x7fffffff;
/** Default limit on one request's encoded name-value stream (names, values and length prefixes). */
export const DEFAULT_MAX_PARAMS_BYTES = 1024 * 1024;

/** A decoded pair: the name as text, the value as the exact bytes sent. */
export type RawParam = readonly [name: string, value: Buffer];

function lengthBytes(length: number): number {
  return length > 127 ? 4 : 1;
}

function writeLength(target: Buffer, offset: number, length: number): number {
  if (length > 127) {
    target.writeUInt32BE((length | 0x80000000) >>> 0, offset);
    return offset + 4;
  }
  target[offset] = length;
  return offset + 1;
}

/** The pairs as an array: an array of pairs is used as it is (the usual case), anything else copied. */
function entriesOf(pairs: ParamPairs): ReadonlyArray<readonly [string, ParamValue]> {
  if (Array.isArray(pairs)) return pairs as ReadonlyArray<readonly [string, ParamValue]>;
  return Symbol.iterator in pairs
    ? [...(pairs as Iterable<readonly [string, ParamValue]>)]
    : Object.entries(pairs as Readonly<Record<string, ParamValue>>);
}

/**
 * UTF-8 length of a string. CGI names and most values are short ASCII: counted here, where the
 * call into C++ that Buffer.byteLength makes costs more than the count (50 of them per request).
 */
function utf8Length(text: string): number {
  const length = text.length;
  if (length > 64) return Buffer.byteLength(text, 'utf8');
  for (let i = 0; i < length; i++) if (text.charCodeAt(i) > 0x7f) return Buffer.byteLength(text, 'utf8');
  return length;
}

/** Pairs measured once so that encoding can size its buffer exactly. */
export interface MeasuredParams {
  /** The pairs, in order. */
  entries: ReadonlyArray<readonly [string, ParamValue]>;
  /** Encoded lengths: the name of pair i at 2i, its value at 2i + 1 (null when `latin1` holds the stream). */
  lengths: number[] | null;
  /** Bytes of the encoded name-value stream. */
  totalBytes: number;
  /**
   * The whole encoded stream as a string of byte values (each character one byte), when every name
   * and value is an ASCII string: written with one call instead of a loop per character.
   */
  latin1: string | null;
  /** The whole encoded stream as bytes, when the pairs came as EncodedParams: copied as it is. */
  bytes?: Buffer;
}

/**
 * Pairs already encoded as a name-value stream, sent on as these bytes (the FastCGI front passes
 * nginx's params on to PHP this way, see ParamsIndex.pass). Iterating decodes them, for the few callers
 * that look at a pair (the php-fpm pool reads REQUEST_METHOD to know whether a request may be sent
 * again).
 */
export class EncodedParams implements Iterable<RawParam> {
  readonly bytes: Buffer;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  [Symbol.iterator](): Iterator<RawParam> {
    return decodeParams(this.bytes)[Symbol.iterator]();
  }
}

/**
 * Pairs already encoded as a name-value stream held in a string of byte values (each character one
 * byte, 0-255), sent on as those bytes. The HTTP front builds the CGI environment this way
 * (cgi/env.ts encodeCgiParams): runs of pairs that repeat from request to request are kept encoded,
 * and the stream is written into the request's head with one call. Iterating decodes it, like
 * EncodedParams.
 */
export class ByteStringParams implements Iterable<RawParam> {
  readonly stream: string;

  constructor(stream: string) {
    this.stream = stream;
  }

  [Symbol.iterator](): Iterator<RawParam> {
    return decodeParams(Buffer.from(this.stream, 'latin1'))[Symbol.iterator]();
  }
}

/** The one-byte length prefixes (0-127) as one-character strings, made once. */
const SHORT_LENGTHS = Array.from({ length: 128 }, (_, n) => String.fromCharCode(n));

/** A name-value pair's length prefix as a string of byte values (spec 3.4). */
function lengthPrefix(length: number): string {
  return length > 127 ? longLength(length) : SHORT_LENGTHS[length]!;
}

/** One pair encoded as a string of byte values; `name` and `value` must be byte strings themselves. */
export function bytePair(name: string, value: string): string {
  return lengthPrefix(name.length) + lengthPrefix(value.length) + name + value;
}

/**
 * The encoded stream as a latin1 string when every part is an ASCII string, else null. The usual
 * CGI environment is all ASCII (Node hands non-ASCII header bytes over as Buffers, see cgi/env.ts),
 * and counting and copying it character by character in JavaScript cost about 3 µs a request
 * (issue 8). Whether it is all ASCII is settled by one UTF-8 count of the whole string: each
 * non-ASCII character takes at least two bytes, and so does each prefix byte of 0x80 or above (the
 * first byte of a 4-byte length, and any of its others that high), which are counted here.
 */
function latin1Stream(entries: ReadonlyArray<readonly [string, ParamValue]>): string | null {
  let stream = '';
  let highPrefixBytes = 0;
  for (let i = 0; i < entries.length; i++) {
    const [name, value] = entries[i]!;
    if (typeof value !== 'string') return null;
    const nl = name.length;
    const vl = value.length;
    stream += lengthPrefix(nl);
    if (nl > 127) highPrefixBytes += highBytes(nl);
    stream += lengthPrefix(vl);
    if (vl > 127) highPrefixBytes += highBytes(vl);
    stream += name;
    stream += value;
  }
  return Buffer.byteLength(stream, 'utf8') === stream.length + highPrefixBytes ? stream : null;
}

/** A 4-byte length (spec 3.4: high bit set) as four byte-valued characters. */
function longLength(length: number): string {
  return String.fromCharCode(((length >>> 24) & 0x7f) | 0x80, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

/** How many of a 4-byte length's bytes are 0x80 or above (UTF-8 takes two bytes for each). */
function highBytes(length: number): number {
  return 1 + ((length >>> 16) & 0x80 ? 1 : 0) + ((length >>> 8) & 0x80 ? 1 : 0) + (length & 0x80 ? 1 : 0);
}

/** Measures pairs; throws FCGI_PARAMS_TOO_LARGE past `maxBytes` and RangeError for a part over 2^31-1 bytes. */
export function measureParams(pairs: ParamPairs, maxBytes = DEFAULT_MAX_PARAMS_BYTES): MeasuredParams {
  if (pairs instanceof ByteStringParams) {
    const stream = pairs.stream;
    if (stream.length <= maxBytes) return { entries: [], lengths: null, totalBytes: stream.length, latin1: stream };
    return measureParams(decodeParams(Buffer.from(stream, 'latin1')), maxBytes);
  }
  if (pairs instanceof EncodedParams) {
    const bytes = pairs.bytes;
    if (bytes.length <= maxBytes) return { entries: [], lengths: null, totalBytes: bytes.length, latin1: null, bytes };
    // Over the limit: measured pair by pair, so the error names the pair where it was passed, as
    // it does for the same pairs given one by one (the bytes are the pairs' canonical encoding).
    return measureParams(decodeParams(bytes), maxBytes);
  }
  const entries = entriesOf(pairs);
  // A JavaScript string is far shorter than 2^31-1, so only the total limit applies here; over it,
  // the loop below says where the limit was passed.
  const latin1 = latin1Stream(entries);
  if (latin1 !== null && latin1.length <= maxBytes) return { entries, lengths: null, totalBytes: latin1.length, latin1 };
  const lengths = new Array<number>(entries.length * 2);
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    const [name, value] = entries[i]!;
    const nb = utf8Length(name);
    const vb = typeof value === 'string' ? utf8Length(value) : value.length;
    if (nb > MAX_PAIR_PART_BYTES || vb > MAX_PAIR_PART_BYTES) {
      throw new RangeError(`param ${name.slice(0, 64)} is longer than ${MAX_PAIR_PART_BYTES} bytes`);
    }
    total += lengthBytes(nb) + lengthBytes(vb) + nb + vb;
    if (total > maxBytes) {
      throw new FastCGIProtocolError(
        'FCGI_PARAMS_TOO_LARGE',
        `params exceed the limit of ${maxBytes} bytes (at ${name.slice(0, 64)}, ${total} bytes so far)`,
      );
    }
    lengths[2 * i] = nb;
    lengths[2 * i + 1] = vb;
  }
  return { entries, lengths, totalBytes: total, latin1: null };
}

/**
 * Writes a string whose UTF-8 length is `bytes`. CGI names and most values are short ASCII
 * (byte length equals string length): a plain loop beats Buffer#write's per-call overhead there.
 */
function writeString(target: Buffer, at: number, text: string, bytes: number): number {
  const length = text.length;
  if (bytes !== length) return at + target.write(text, at, 'utf8');
  if (length > 48) return at + target.write(text, at, 'latin1');
  for (let i = 0; i < length; i++) target[at + i] = text.charCodeAt(i);
  return at + length;
}

/** Writes measured pairs into `target` at `offset`; returns the offset after them. */
export function writeParams(target: Buffer, offset: number, measured: MeasuredParams): number {
  if (measured.latin1 !== null) return offset + target.write(measured.latin1, offset, 'latin1');
  if (measured.bytes !== undefined) return offset + measured.bytes.copy(target, offset);
  let at = offset;
  const { entries } = measured;
  const lengths = measured.lengths!;
  for (let i = 0; i < entries.length; i++) {
    const [name, value] = entries[i]!;
    const nb = lengths[2 * i]!;
    const vb = lengths[2 * i + 1]!;
    at = writeLength(target, at, nb);
    at = writeLength(target, at, vb);
    at = writeString(target, at, name, nb);
    if (typeof value === 'string') at = writeString(target, at, value, vb);
    else at += value.copy(target, at);
  }
  return at;
}

/** Encodes pairs into one name-value byte stream (not yet framed into records). */
export function encodeParams(pairs: ParamPairs, maxBytes = DEFAULT_MAX_PARAMS_BYTES): Buffer {
  const measured = measureParams(pairs, maxBytes);
  const out = Buffer.allocUnsafe(measured.totalBytes);
  writeParams(out, 0, measured);
  return out;
}

/**
 * Decodes a complete name-value stream (all PARAMS content up to the empty record). Throws
 * FCGI_BAD_PARAMS when a length runs past the end: a pair cut off is an error, never dropped.
 */
export function decodeParams(stream: Buffer): RawParam[] {
  return indexParams(stream).pairs();
}

/**
 * A decoded name-value stream that hands out names, and values only when asked: a Buffer per value
 * (about 35 a request at the FastCGI front, which reads a few of them) cost more than finding them
 * (issue 8). Made by indexParams; pairs() gives what decodeParams returns.
 */
export class ParamsIndex {
  readonly stream: Buffer;
  /** The stream as latin1 text (see indexParams). */
  readonly text: string;
  readonly names: string[];
  /** Where pair i starts at 2i, where its value starts at 2i + 1 (it ends where pair i + 1 starts); the stream's end last. */
  readonly offsets: number[];
  /**
   * The stream is exactly what encodeParams writes for these pairs: ASCII names (a name that is
   * not valid UTF-8 would be encoded differently) and every length in its short form when it fits
   * one. Only then may its bytes stand for the pairs (pass).
   */
  readonly canonical: boolean;
  #pairs: RawParam[] | null = null;

  constructor(stream: Buffer, text: string, names: string[], offsets: number[], canonical: boolean) {
    this.stream = stream;
    this.text = text;
    this.names = names;
    this.offsets = offsets;
    this.canonical = canonical;
  }

  /** Pair i's value as the bytes sent. */
  value(i: number): Buffer {
    return this.stream.subarray(this.offsets[2 * i + 1]!, this.offsets[2 * i + 2]!);
  }

  /** Pair i's value as UTF-8 text (what paramsToMap gives it); an ASCII value is cut from `text`. */
  valueText(i: number): string {
    const from = this.offsets[2 * i + 1]!;
    // A value ends where the next pair starts, or the stream ends.
    const to = this.offsets[2 * i + 2]!;
    return isAscii(this.stream, from, to) ? this.text.slice(from, to) : this.stream.toString('utf8', from, to);
  }

  /** The pairs, as decodeParams returns them (made once). */
  pairs(): RawParam[] {
    if (this.#pairs !== null) return this.#pairs;
    const pairs: RawParam[] = [];
    const values: Buffer[] = [];
    for (let i = 0; i < this.names.length; i++) {
      const value = this.value(i);
      pairs.push([this.names[i]!, value]);
      values.push(value);
    }
    DECODED.set(pairs, { text: this.text, stream: this.stream, values });
    this.#pairs = pairs;
    return pairs;
  }

  /**
   * The pairs at `kept` (indices, ascending) and then `added`, as one encoded stream: kept pairs
   * copied as the bytes they came in, neighbours in one copy, instead of decoding and encoding each
   * again (at the FastCGI front that was about a third of its instructions; issue 8). Byte for byte
   * what encodeParams writes for those pairs; null when the stream is not canonical or `kept` not
   * ascending (then encode the pairs instead).
   */
  pass(kept: readonly number[], added: ReadonlyArray<readonly [string, ParamValue]>): EncodedParams | null {
    if (!this.canonical) return null;
    const { offsets, stream } = this;
    // Runs of the stream as [from, to].
    const runs: number[] = [];
    let total = 0;
    let previous = -2;
    for (let k = 0; k < kept.length; k++) {
      const i = kept[k]!;
      if (i <= previous) return null;
      const from = offsets[2 * i]!;
      const to = offsets[2 * i + 2]!;
      if (i === previous + 1 && runs.length > 0) runs[runs.length - 1] = to;
      else runs.push(from, to);
      total += to - from;
      previous = i;
    }
    const tail = added.length > 0 ? encodeParams(added, MAX_PAIR_PART_BYTES) : null;
    const out = Buffer.allocUnsafe(total + (tail?.length ?? 0));
    let at = 0;
    for (let r = 0; r < runs.length; r += 2) at += stream.copy(out, at, runs[r]!, runs[r + 1]!);
    if (tail !== null) tail.copy(out, at);
    return new EncodedParams(out);
  }
}

/**
 * The ASCII names of the last streams decoded, by position. A web server sends the same names in
 * the same order with every request: a name whose bytes match the one remembered at its position
 * is that string again instead of a new one. Its hash is then already known to every Set and Map
 * that looks it up, and it is internalized, so comparing it with a string literal (a `switch` over
 * names) is a pointer comparison; new strings cost the FastCGI front about a tenth of its
 * instructions in hashing and comparing (issue 8).
 */
const LAST_NAMES_MAX = 128;
const lastNames: string[] = [];

/** The same text as V8's one internalized copy (property keys are internalized). */
function internalized(text: string): string {
  return Object.keys({ [text]: 0 })[0] ?? text;
}

/**
 * Decodes a complete name-value stream as decodeParams does, without a Buffer per value. Throws
 * FCGI_BAD_PARAMS as decodeParams does.
 */
export function indexParams(stream: Buffer): ParamsIndex {
  const end = stream.length;
  // The stream as latin1 text, made with one call: an ASCII name (the usual) is then a substring of
  // it rather than a call into C++ of its own, about 35 of them per request (issue 8).
  const text = stream.toString('latin1');
  const names: string[] = [];
  const offsets: number[] = [];
  let canonical = true;
  let at = 0;
  while (at < end) {
    const start = at;
    let nameLength = stream[at]!;
    if (nameLength > 127) {
      if (at + 4 > end) throw truncated(start, end - at, 'name');
      nameLength = stream.readUInt32BE(at) & 0x7fffffff;
      if (nameLength <= 127) canonical = false;
      at += 4;
    } else at += 1;
    if (at >= end) throw truncated(start, 0, 'value');
    let valueLength = stream[at]!;
    if (valueLength > 127) {
      if (at + 4 > end) throw truncated(start, end - at, 'value');
      valueLength = stream.readUInt32BE(at) & 0x7fffffff;
      if (valueLength <= 127) canonical = false;
      at += 4;
    } else at += 1;
    if (at + nameLength + valueLength > end) {
      throw new FastCGIProtocolError(
        'FCGI_BAD_PARAMS',
        `name-value pair at byte ${start} declares ${nameLength}+${valueLength} bytes but the stream has ${end - at} left`,
      );
    }
    // Names are decoded as UTF-8, the encoding encodeParams writes them in, so pairs round-trip
    // (for ASCII, UTF-8 and latin1 read the same). A remembered name is ASCII, and `text` has a
    // character per byte: equal characters at `at` are equal bytes.
    const index = names.length;
    const known = index < LAST_NAMES_MAX ? lastNames[index] : undefined;
    let name: string;
    if (known !== undefined && known.length === nameLength && text.startsWith(known, at)) name = known;
    else if (isAscii(stream, at, at + nameLength)) {
      name = internalized(text.slice(at, at + nameLength));
      if (index < LAST_NAMES_MAX) lastNames[index] = name;
    } else {
      name = stream.toString('utf8', at, at + nameLength);
      canonical = false;
    }
    at += nameLength;
    names.push(name);
    offsets.push(start, at);
    at += valueLength;
  }
  offsets.push(end);
  return new ParamsIndex(stream, text, names, offsets, canonical);
}

/**
 * What decodeParams made each array of pairs from: the stream, its latin1 text and the values it
 * handed out, so paramsToMap can take an ASCII value as a substring of that text rather than
 * decoding each value with a call into C++ (about 35 a request at the FastCGI front; issue 8).
 */
const DECODED = new WeakMap<readonly RawParam[], { text: string; stream: Buffer; values: Buffer[] }>();

/** True when bytes from..to are all ASCII. */
function isAscii(bytes: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (bytes[i]! > 0x7f) return false;
  return true;
}

/** A length prefix cut off by the end of the stream: `left` bytes remain where it needs 1 or 4. */
function truncated(start: number, left: number, part: 'name' | 'value'): FastCGIProtocolError {
  const need = left === 0 ? '1 or 4 bytes' : '4 bytes';
  return new FastCGIProtocolError(
    'FCGI_BAD_PARAMS',
    `name-value pair at byte ${start} is cut off in its ${part} length (needs ${need}, the stream has ${left} left)`,
  );
}

/**
 * Collects a name-value stream that arrives in pieces (PARAMS records may split a pair anywhere) and
 * enforces the size limit as bytes arrive, so a hostile peer cannot make it hold more than `maxBytes`.
 */
export class ParamsCollector {
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #bytes = 0;

  constructor(maxBytes = DEFAULT_MAX_PARAMS_BYTES) {
    this.#maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.#maxBytes) {
      throw new FastCGIProtocolError('FCGI_PARAMS_TOO_LARGE', `params exceed the limit of ${this.#maxBytes} bytes (${this.#bytes} received)`);
    }
    // Record content slices may share memory with a socket chunk; copying is done once, in finish().
    this.#chunks.push(chunk);
  }

  /** Decodes everything collected; call at the empty PARAMS record. The collector then starts over empty. */
  finish(): RawParam[] {
    return this.finishIndex().pairs();
  }

  /** As finish, as a ParamsIndex (values made only when asked for). */
  finishIndex(): ParamsIndex {
    const whole = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
    // Reset the count too: a stale count would make the next concat zero-fill phantom pairs.
    this.#chunks = [];
    this.#bytes = 0;
    return indexParams(whole);
  }
}

/** Turns decoded pairs into a map of UTF-8 strings (later duplicates win, as in a CGI environment). */
export function paramsToMap(pairs: readonly RawParam[]): Map<string, string> {
  const map = new Map<string, string>();
  const decoded = DECODED.get(pairs);
  // Pairs as decodeParams returned them, unchanged (the same values in the same places): an ASCII
  // value reads the same in latin1 as in UTF-8, and is cut from the stream's text.
  const values = decoded !== undefined && decoded.values.length === pairs.length ? decoded.values : null;
  const base = decoded?.stream.byteOffset ?? 0;
  for (let i = 0; i < pairs.length; i++) {
    const [name, value] = pairs[i]!;
    if (values !== null && values[i] === value && isAscii(value, 0, value.length)) {
      const from = value.byteOffset - base;
      map.set(name, decoded!.text.slice(from, from + value.length));
    } else map.set(name, value.toString('utf8'));
  }
  return map;
}
