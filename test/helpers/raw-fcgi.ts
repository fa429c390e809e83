// A raw FastCGI peer for server tests: a plain socket that sends hand-built records and parses what
// comes back with its own small reader (independent of src/fastcgi/decoder.ts, which is under test).

import { once } from 'node:events';
import net from 'node:net';
import type { Address } from '../../src/fastcgi/address.js';
import { encodeParams } from '../../src/fastcgi/params.js';
import { RecordType, Role } from '../../src/fastcgi/protocol.js';
import { encodeBeginRequest, encodeStream } from '../../src/fastcgi/records.js';

/** One record as it arrived on the wire. */
export interface WireRecord {
  version: number;
  type: number;
  requestId: number;
  content: Buffer;
  paddingLength: number;
}

/** What one request got back: its records, the concatenated streams and the END_REQUEST body. */
export interface WireResponse {
  records: WireRecord[];
  stdout: Buffer;
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
}

export interface RequestBytesOptions {
  keepConn?: boolean;
  role?: number;
  /** Omit the STDIN stream (and its terminator) entirely. */
  noStdin?: boolean;
}

/** BEGIN_REQUEST, the PARAMS stream and its terminator, the STDIN stream and its terminator. */
export function requestBytes(
  requestId: number,
  params: Record<string, string | Buffer>,
  body: Buffer | string = '',
  options: RequestBytesOptions = {},
): Buffer {
  const parts = [
    encodeBeginRequest(requestId, options.role ?? Role.Responder, options.keepConn ?? false),
    encodeStream(RecordType.Params, requestId, encodeParams(params), true),
  ];
  if (!options.noStdin) parts.push(encodeStream(RecordType.Stdin, requestId, Buffer.from(body), true));
  return Buffer.concat(parts);
}

/** A raw 8-byte header with every field chosen by the caller (for malformed input). */
export function rawHeader(version: number, type: number, requestId: number, contentLength: number, paddingLength: number, reserved = 0): Buffer {
  const header = Buffer.alloc(8);
  header[0] = version;
  header[1] = type;
  header.writeUInt16BE(requestId, 2);
  header.writeUInt16BE(contentLength, 4);
  header[6] = paddingLength;
  header[7] = reserved;
  return header;
}

/** Polls a state until it holds (for states no event announces, such as a server's counters). */
export async function until(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A deferred: a promise and its resolve, for handlers that wait on the test. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export class RawPeer {
  readonly socket: net.Socket;
  /** Every record received so far, in order. */
  readonly records: WireRecord[] = [];
  /** Resolves when the socket has closed (either side). */
  readonly closed: Promise<void>;
  /** True once the server sent FIN or the socket closed. */
  ended = false;
  /** Socket errors seen (ECONNRESET and the like); kept for assertions instead of thrown. */
  readonly errors: Error[] = [];
  #buffer: Buffer = Buffer.alloc(0);
  #waiters = new Set<() => void>();

  static async connect(address: Address | net.NetConnectOpts): Promise<RawPeer> {
    const socket = net.connect(address as net.NetConnectOpts);
    const peer = new RawPeer(socket);
    await Promise.race([
      once(socket, 'connect'),
      once(socket, 'close').then(() => {
        throw new Error(`connect failed: ${peer.errors.map((e) => e.message).join('; ') || 'closed'}`);
      }),
    ]);
    return peer;
  }

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => this.errors.push(error));
    socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.#wake();
        resolve();
      }),
    );
  }

  send(...chunks: Buffer[]): void {
    for (const chunk of chunks) this.socket.write(chunk);
  }

  /** Waits for a record matching `predicate` that arrives at or after index `from`; returns its index. */
  async waitRecord(predicate: (record: WireRecord) => boolean, from = 0, timeoutMs = 5000): Promise<number> {
    const find = () => this.records.findIndex((record, i) => i >= from && predicate(record));
    await this.#wait(() => find() >= 0 || this.ended, timeoutMs, 'a matching record');
    const index = find();
    if (index < 0) throw new Error(`connection ended before a matching record arrived; got ${describeRecords(this.records)}`);
    return index;
  }

  /** Waits for END_REQUEST of `requestId` and gathers that request's records since `from`. */
  async response(requestId: number, from = 0, timeoutMs = 5000): Promise<WireResponse> {
    const endAt = await this.waitRecord((r) => r.type === RecordType.EndRequest && r.requestId === requestId, from, timeoutMs);
    const records = this.records.slice(from, endAt + 1).filter((r) => r.requestId === requestId);
    const end = records.at(-1)!.content;
    return {
      records,
      stdout: Buffer.concat(records.filter((r) => r.type === RecordType.Stdout).map((r) => r.content)),
      stderr: Buffer.concat(records.filter((r) => r.type === RecordType.Stderr).map((r) => r.content)),
      appStatus: end.readUInt32BE(0),
      protocolStatus: end[4]!,
    };
  }

  /** Resolves when the socket has fully closed; rejects after `timeoutMs` (a server that keeps it open). */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the connection was still open after ${timeoutMs} ms; got ${describeRecords(this.records)}`)), timeoutMs);
    });
    try {
      await Promise.race([this.closed, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the server has closed the connection (FIN or reset). */
  async waitEnded(timeoutMs = 5000): Promise<void> {
    await this.#wait(() => this.ended, timeoutMs, 'the server to close the connection');
  }

  destroy(): void {
    this.socket.destroy();
  }

  #wait(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!ready()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${describeRecords(this.records)}`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    while (this.#buffer.length >= 8) {
      const contentLength = this.#buffer.readUInt16BE(4);
      const paddingLength = this.#buffer[6]!;
      const total = 8 + contentLength + paddingLength;
      if (this.#buffer.length < total) break;
      this.records.push({
        version: this.#buffer[0]!,
        type: this.#buffer[1]!,
        requestId: this.#buffer.readUInt16BE(2),
        content: Buffer.from(this.#buffer.subarray(8, 8 + contentLength)),
        paddingLength,
      });
      this.#buffer = this.#buffer.subarray(total);
    }
    this.#wake();
  }
}

const NAMES: Record<number, string> = { 3: 'END_REQUEST', 6: 'STDOUT', 7: 'STDERR', 10: 'GET_VALUES_RESULT', 11: 'UNKNOWN_TYPE' };

function describeRecords(records: readonly WireRecord[]): string {
  if (records.length === 0) return 'no records';
  return records.map((r) => `${NAMES[r.type] ?? `type ${r.type}`}#${r.requestId}(${r.content.length})`).join(' ');
}
