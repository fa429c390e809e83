// A resumable FastCGI record decoder: accepts bytes split at any boundary, hands stream content on as
// it arrives (no copy unless the input is transient, no whole-record buffering) and fails with a
// typed protocol error, never deeper.

import { FastCGIProtocolError } from '../errors.js';
import {
  FCGI_VERSION,
  HEADER_BYTES,
  MAX_KNOWN_TYPE,
  NULL_REQUEST_ID,
  RecordType,
  recordTypeName,
  type RecordHeader,
} from './protocol.js';

/**
 * Which side of the protocol decodes: an application (`server`, receiving from a web server) or a
 * web server (`client`, receiving from an application). Each side receives a fixed set of types.
 */
export type DecoderRole = 'server' | 'client';

/**
 * Where decoded records go. Stream data passed to these shares memory with the input chunk, unless
 * it was pushed as transient; a record's content never does.
 */
export interface DecoderSink {
  /** Content of a stream record (PARAMS, STDIN, DATA, STDOUT, STDERR), possibly in several pieces. */
  onStreamData(type: number, requestId: number, data: Buffer): void;
  /** The empty record that closes a stream (spec 3.3). */
  onStreamEnd(type: number, requestId: number): void;
  /** A whole discrete record: BEGIN/END/ABORT_REQUEST, GET_VALUES[_RESULT], UNKNOWN_TYPE, or a type unknown to us. */
  onRecord(header: RecordHeader, content: Buffer): void;
}

const STREAM_TYPES: ReadonlySet<number> = new Set([
  RecordType.Params,
  RecordType.Stdin,
  RecordType.Data,
  RecordType.Stdout,
  RecordType.Stderr,
]);

/** Types each role may receive. The server also takes types above FCGI_MAXTYPE, to answer UNKNOWN_TYPE. */
const RECEIVES: Record<DecoderRole, ReadonlySet<number>> = {
  server: new Set([
    RecordType.BeginRequest,
    RecordType.AbortRequest,
    RecordType.Params,
    RecordType.Stdin,
    RecordType.Data,
    RecordType.GetValues,
  ]),
  client: new Set([
    RecordType.EndRequest,
    RecordType.Stdout,
    RecordType.Stderr,
    RecordType.GetValuesResult,
    RecordType.UnknownType,
  ]),
};

/** Content lengths fixed by the spec (5.1, 5.4, 5.5, 4.2). */
const FIXED_LENGTH: Readonly<Record<number, number>> = {
  [RecordType.BeginRequest]: 8,
  [RecordType.AbortRequest]: 0,
  [RecordType.EndRequest]: 8,
  [RecordType.UnknownType]: 8,
};

const enum Phase {
  Header,
  Content,
  Padding,
}

export class RecordDecoder {
  readonly #role: DecoderRole;
  readonly #sink: DecoderSink;
  readonly #header = Buffer.alloc(HEADER_BYTES);
  #phase = Phase.Header;
  #headerFill = 0;
  #current: RecordHeader = { version: 0, type: 0, requestId: 0, contentLength: 0, paddingLength: 0 };
  #isStream = false;
  #remaining = 0;
  #body: Buffer | null = null;
  #bodyFill = 0;
  #failed = false;
  /** What the first failed push threw: a FastCGIProtocolError, or whatever the sink threw. */
  #failure: unknown = null;
  #bytesIn = 0;
  /** The chunk being pushed is transient: stream data is handed on in copies. */
  #copy = false;

  constructor(role: DecoderRole, sink: DecoderSink) {
    this.#role = role;
    this.#sink = sink;
  }

  /** Bytes consumed so far (for error messages and counters). */
  get bytesIn(): number {
    return this.#bytesIn;
  }

  /** True between records: no header, content or padding is half-read. */
  get atRecordBoundary(): boolean {
    return this.#phase === Phase.Header && this.#headerFill === 0;
  }

  /**
   * Decodes `chunk`, calling the sink for each piece. Throws FastCGIProtocolError on the first
   * violation, and again on every later push: a connection that broke the protocol stays broken.
   * An error thrown by the sink propagates unchanged and ends the decoder the same way.
   * `transient`: the chunk is overwritten once push() returns (a socket read into a reused buffer),
   * so stream data goes to the sink in copies. Nothing else kept between pushes refers to a chunk.
   */
  push(chunk: Buffer, transient = false): void {
    if (this.#failed) throw this.#failure;
    this.#copy = transient;
    try {
      this.#decode(chunk);
    } catch (error) {
      // A sink that throws leaves a record half-delivered (its content consumed or not, its phase not
      // yet advanced); decoding on would misframe the stream or deliver the record twice.
      this.#failed = true;
      this.#failure = error;
      throw error;
    }
    this.#bytesIn += chunk.length;
  }

  #decode(chunk: Buffer): void {
    const length = chunk.length;
    let at = 0;
    while (at < length) {
      switch (this.#phase) {
        case Phase.Header: {
          // Fast path: a whole header inside this chunk needs no copy.
          if (this.#headerFill === 0 && length - at >= HEADER_BYTES) {
            this.#beginRecord(chunk, at, this.#bytesIn + at);
            at += HEADER_BYTES;
          } else {
            const take = Math.min(HEADER_BYTES - this.#headerFill, length - at);
            chunk.copy(this.#header, this.#headerFill, at, at + take);
            this.#headerFill += take;
            at += take;
            if (this.#headerFill === HEADER_BYTES) {
              this.#headerFill = 0;
              // The header's first byte came HEADER_BYTES before `at`, possibly in an earlier chunk.
              this.#beginRecord(this.#header, 0, this.#bytesIn + at - HEADER_BYTES);
            }
          }
          break;
        }
        case Phase.Content: {
          const take = Math.min(this.#remaining, length - at);
          const type = this.#current.type;
          if (this.#isStream) {
            let data: Buffer;
            if (this.#copy) {
              data = Buffer.allocUnsafe(take);
              chunk.copy(data, 0, at, at + take);
            } else {
              data = chunk.subarray(at, at + take);
            }
            this.#sink.onStreamData(type, this.#current.requestId, data);
          } else {
            chunk.copy(this.#body!, this.#bodyFill, at, at + take);
            this.#bodyFill += take;
          }
          at += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#endContent();
          break;
        }
        case Phase.Padding: {
          const take = Math.min(this.#remaining, length - at);
          at += take;
          this.#remaining -= take;
          if (this.#remaining === 0) this.#phase = Phase.Header;
          break;
        }
        default: {
          const never: never = this.#phase;
          throw new Error(`decoder phase ${String(never)}`);
        }
      }
    }
  }

  /** `streamOffset` is where the header starts in the whole byte stream, for error messages. */
  #beginRecord(source: Buffer, offset: number, streamOffset: number): void {
    const header: RecordHeader = {
      version: source[offset]!,
      type: source[offset + 1]!,
      requestId: (source[offset + 2]! << 8) | source[offset + 3]!,
      contentLength: (source[offset + 4]! << 8) | source[offset + 5]!,
      paddingLength: source[offset + 6]!,
    };
    this.#check(header, streamOffset);
    this.#current = header;
    this.#isStream = STREAM_TYPES.has(header.type);
    if (header.contentLength === 0) {
      this.#body = null;
      this.#endContent();
      return;
    }
    this.#remaining = header.contentLength;
    if (!this.#isStream) {
      this.#body = Buffer.allocUnsafe(header.contentLength);
      this.#bodyFill = 0;
    }
    this.#phase = Phase.Content;
  }

  #endContent(): void {
    const header = this.#current;
    if (this.#isStream) {
      if (header.contentLength === 0) this.#sink.onStreamEnd(header.type, header.requestId);
    } else {
      const content = this.#body ?? EMPTY;
      this.#body = null;
      this.#sink.onRecord(header, content);
    }
    if (header.paddingLength > 0) {
      this.#remaining = header.paddingLength;
      this.#phase = Phase.Padding;
    } else {
      this.#phase = Phase.Header;
    }
  }

  #check(header: RecordHeader, at: number): void {
    if (header.version !== FCGI_VERSION) {
      this.#fail('FCGI_BAD_VERSION', `record header has version ${header.version}, expected ${FCGI_VERSION} (record at byte ${at})`);
    }
    const type = header.type;
    const known = type >= 1 && type <= MAX_KNOWN_TYPE;
    if (known ? !RECEIVES[this.#role].has(type) : this.#role === 'client') {
      const side = this.#role === 'server' ? 'an application' : 'a web server';
      this.#fail('FCGI_UNEXPECTED_RECORD', `${recordTypeName(type)} record (type ${type}) is never sent to ${side}`);
    }
    const fixed = FIXED_LENGTH[type];
    if (known && fixed !== undefined && header.contentLength !== fixed) {
      this.#fail(
        'FCGI_BAD_LENGTH',
        `${recordTypeName(type)} record has content length ${header.contentLength}, the spec requires ${fixed}`,
      );
    }
    const management = type === RecordType.GetValues || type === RecordType.GetValuesResult || type === RecordType.UnknownType;
    if (known && management && header.requestId !== NULL_REQUEST_ID) {
      this.#fail('FCGI_BAD_REQUEST_ID', `${recordTypeName(type)} is a management record but has request id ${header.requestId}, expected 0`);
    }
    if (known && !management && header.requestId === NULL_REQUEST_ID) {
      this.#fail('FCGI_BAD_REQUEST_ID', `${recordTypeName(type)} record has request id 0, which is reserved for management records`);
    }
  }

  #fail(code: FastCGIProtocolError['code'], message: string): never {
    throw new FastCGIProtocolError(code, message);
  }
}

const EMPTY = Buffer.alloc(0);
