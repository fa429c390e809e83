// Pure FastCGI record encoders: headers, fixed bodies, and byte streams framed into padded records.

import {
  FCGI_VERSION,
  FLAG_KEEP_CONN,
  HEADER_BYTES,
  MAX_CONTENT_BYTES,
  NULL_REQUEST_ID,
  RecordType,
} from './protocol.js';
import { writeParams, type MeasuredParams } from './params.js';

/** Spec 3.3 recommends 8-byte aligned records; this is the padding that gets a content length there. */
export function paddingFor(contentLength: number): number {
  return -contentLength & 7;
}

/** Writes an 8-byte record header into `target` at `offset`; returns the offset after it. */
export function writeHeader(
  target: Buffer,
  offset: number,
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number,
): number {
  target[offset] = FCGI_VERSION;
  target[offset + 1] = type;
  target[offset + 2] = requestId >>> 8;
  target[offset + 3] = requestId & 0xff;
  target[offset + 4] = contentLength >>> 8;
  target[offset + 5] = contentLength & 0xff;
  target[offset + 6] = paddingLength;
  target[offset + 7] = 0;
  return offset + HEADER_BYTES;
}

/** One 8-byte record header. */
export function encodeHeader(type: number, requestId: number, contentLength: number, paddingLength: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  writeHeader(header, 0, type, requestId, contentLength, paddingLength);
  return header;
}

/** One whole record (header, content, zero padding to 8 bytes). Content must fit in one record. */
export function encodeRecord(type: number, requestId: number, content: Buffer = EMPTY): Buffer {
  if (content.length > MAX_CONTENT_BYTES) {
    throw new RangeError(`record content of ${content.length} bytes exceeds ${MAX_CONTENT_BYTES}; frame it with encodeStream`);
  }
  const padding = paddingFor(content.length);
  const record = Buffer.alloc(HEADER_BYTES + content.length + padding);
  writeHeader(record, 0, type, requestId, content.length, padding);
  content.copy(record, HEADER_BYTES);
  return record;
}

/** Spec 5.1: {FCGI_BEGIN_REQUEST, R, {role, flags}} (16 bytes). */
export function encodeBeginRequest(requestId: number, role: number, keepConn: boolean): Buffer {
  const record = Buffer.alloc(16);
  writeBeginRequest(record, 0, requestId, role, keepConn);
  return record;
}

/** Writes a BEGIN_REQUEST record into a zero-filled `target`; returns the offset after it. */
export function writeBeginRequest(target: Buffer, offset: number, requestId: number, role: number, keepConn: boolean): number {
  writeHeader(target, offset, RecordType.BeginRequest, requestId, 8, 0);
  target[offset + 8] = role >>> 8;
  target[offset + 9] = role & 0xff;
  target[offset + 10] = keepConn ? FLAG_KEEP_CONN : 0;
  return offset + 16;
}

/** Spec 5.5: {FCGI_END_REQUEST, R, {appStatus, protocolStatus}} (16 bytes). */
export function encodeEndRequest(requestId: number, appStatus: number, protocolStatus: number): Buffer {
  const record = Buffer.alloc(16);
  writeHeader(record, 0, RecordType.EndRequest, requestId, 8, 0);
  record.writeUInt32BE(appStatus >>> 0, 8);
  record[12] = protocolStatus;
  return record;
}

/** Spec 5.4: {FCGI_ABORT_REQUEST, R, {}} (8 bytes). */
export function encodeAbortRequest(requestId: number): Buffer {
  return encodeHeader(RecordType.AbortRequest, requestId, 0, 0);
}

/** Spec 4.2: {FCGI_UNKNOWN_TYPE, 0, {type}} (16 bytes). */
export function encodeUnknownType(type: number): Buffer {
  const record = Buffer.alloc(16);
  writeHeader(record, 0, RecordType.UnknownType, NULL_REQUEST_ID, 8, 0);
  record[8] = type;
  return record;
}

/** Spec 3.3: a stream ends with a record of contentLength 0 (8 bytes). */
export function encodeStreamEnd(type: number, requestId: number): Buffer {
  return encodeHeader(type, requestId, 0, 0);
}

/** How many bytes `dataLength` bytes of stream content take once framed (without the terminator). */
export function framedLength(dataLength: number): number {
  const full = Math.floor(dataLength / MAX_CONTENT_BYTES);
  const rest = dataLength - full * MAX_CONTENT_BYTES;
  let total = full * (HEADER_BYTES + MAX_CONTENT_BYTES + paddingFor(MAX_CONTENT_BYTES));
  if (rest > 0) total += HEADER_BYTES + rest + paddingFor(rest);
  return total;
}

/**
 * Frames stream content into records of at most 65535 bytes, without copying the content: pushes
 * onto `out` alternating header/padding buffers and slices of `data`. An empty `data` adds nothing
 * (use encodeStreamEnd for the terminator, which is an empty record).
 */
export function frameStream(type: number, requestId: number, data: Buffer, out: Buffer[]): void {
  const length = data.length;
  if (length === 0) return;
  const records = Math.ceil(length / MAX_CONTENT_BYTES);
  // One scratch buffer holds every header and the padding of the record before it.
  const glue = Buffer.alloc(records * HEADER_BYTES + records * 7);
  let glueAt = 0;
  let offset = 0;
  let previousPadding = 0;
  while (offset < length) {
    const size = Math.min(MAX_CONTENT_BYTES, length - offset);
    const padding = paddingFor(size);
    const start = glueAt;
    glueAt += previousPadding; // zero bytes: the padding of the previous record
    glueAt = writeHeader(glue, glueAt, type, requestId, size, padding);
    out.push(glue.subarray(start, glueAt));
    out.push(data.subarray(offset, offset + size));
    offset += size;
    previousPadding = padding;
  }
  if (previousPadding > 0) out.push(glue.subarray(glueAt, glueAt + previousPadding));
}

/** Frames stream content into one contiguous buffer (copying); handy for small payloads and tests. */
export function encodeStream(type: number, requestId: number, data: Buffer, withEnd = false): Buffer {
  const target = Buffer.alloc(framedLength(data.length) + (withEnd ? HEADER_BYTES : 0));
  let at = writeStream(target, 0, type, requestId, data);
  if (withEnd) at = writeHeader(target, at, type, requestId, 0, 0);
  return target;
}

/** Writes framed stream content into a zero-filled `target`; returns the offset after it. */
export function writeStream(target: Buffer, offset: number, type: number, requestId: number, data: Buffer): number {
  let at = offset;
  let read = 0;
  while (read < data.length) {
    const size = Math.min(MAX_CONTENT_BYTES, data.length - read);
    const padding = paddingFor(size);
    at = writeHeader(target, at, type, requestId, size, padding);
    data.copy(target, at, read, read + size);
    at += size + padding;
    read += size;
  }
  return at;
}

const EMPTY = Buffer.alloc(0);

/**
 * The opening of a request in one buffer, so a typical GET costs one socket write: BEGIN_REQUEST,
 * the PARAMS records and their terminator, then (when `stdin` is given) the whole STDIN stream and
 * its terminator. Pairs may straddle PARAMS records, as spec 3.4 allows.
 */
export function encodeRequestHead(
  requestId: number,
  role: number,
  keepConn: boolean,
  params: MeasuredParams,
  stdin?: Buffer,
): Buffer {
  const paramsBytes = params.totalBytes;
  const stdinFramed = stdin === undefined ? 0 : framedLength(stdin.length) + HEADER_BYTES;
  // Zero-filled, as the reserved bytes and the padding must be; allocUnsafe takes a typical head
  // (under 4 KiB) from Node's shared pool instead of a new ArrayBuffer per request (issue 8).
  const target = Buffer.allocUnsafe(16 + framedLength(paramsBytes) + HEADER_BYTES + stdinFramed).fill(0);
  let at = writeBeginRequest(target, 0, requestId, role, keepConn);
  if (paramsBytes > 0 && paramsBytes <= MAX_CONTENT_BYTES) {
    // The usual case: every pair fits one record, written in place with no intermediate buffer.
    const padding = paddingFor(paramsBytes);
    at = writeHeader(target, at, RecordType.Params, requestId, paramsBytes, padding);
    at = writeParams(target, at, params) + padding;
  } else if (paramsBytes > 0) {
    const stream = Buffer.allocUnsafe(paramsBytes);
    writeParams(stream, 0, params);
    at = writeStream(target, at, RecordType.Params, requestId, stream);
  }
  at = writeHeader(target, at, RecordType.Params, requestId, 0, 0);
  if (stdin !== undefined) {
    at = writeStream(target, at, RecordType.Stdin, requestId, stdin);
    writeHeader(target, at, RecordType.Stdin, requestId, 0, 0);
  }
  return target;
}
