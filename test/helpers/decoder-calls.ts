// Helpers for the record decoder's tests: hand-built records with any padding, and a sink that
// records every call in a normalised form (stream pieces joined) to compare with what is expected.

import assert from 'node:assert/strict';
import { RecordDecoder, type DecoderRole, type DecoderSink } from '../../src/fastcgi/decoder.js';
import type { RecordHeader } from '../../src/fastcgi/protocol.js';
import { encodeHeader, paddingFor } from '../../src/fastcgi/records.js';

export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** A record with any padding, whose padding bytes are `padByte` (spec 3.3: the receiver ignores them). */
export function rawRecord(type: number, requestId: number, content: Buffer, padding = paddingFor(content.length), padByte = 0xaa): Buffer {
  return Buffer.concat([encodeHeader(type, requestId, content.length, padding), content, Buffer.alloc(padding, padByte)]);
}

/** One sink call, normalised: stream pieces of the same type and request that follow each other are joined. */
export type SinkCall =
  | { call: 'data'; type: number; requestId: number; hex: string }
  | { call: 'end'; type: number; requestId: number }
  | { call: 'record'; header: RecordHeader; hex: string };

export const data = (type: number, requestId: number, content: string | Buffer): SinkCall => ({
  call: 'data',
  type,
  requestId,
  hex: typeof content === 'string' ? Buffer.from(content).toString('hex') : content.toString('hex'),
});
export const end = (type: number, requestId: number): SinkCall => ({ call: 'end', type, requestId });
export const record = (type: number, requestId: number, contentHex: string, paddingLength = paddingFor(hex(contentHex).length)): SinkCall => ({
  call: 'record',
  header: { version: 1, type, requestId, contentLength: hex(contentHex).length, paddingLength },
  hex: hex(contentHex).toString('hex'),
});

/** Records every sink call; checks that no stream piece is empty. */
export class Recorder implements DecoderSink {
  readonly calls: SinkCall[] = [];
  onStreamData(type: number, requestId: number, piece: Buffer): void {
    assert.ok(piece.length > 0, 'the decoder never hands on an empty stream piece');
    const last = this.calls.at(-1);
    if (last?.call === 'data' && last.type === type && last.requestId === requestId) last.hex += piece.toString('hex');
    else this.calls.push(data(type, requestId, piece));
  }
  onStreamEnd(type: number, requestId: number): void {
    this.calls.push(end(type, requestId));
  }
  onRecord(header: RecordHeader, content: Buffer): void {
    assert.equal(content.length, header.contentLength);
    this.calls.push({ call: 'record', header: { ...header }, hex: content.toString('hex') });
  }
}

/** Feeds `pieces` in order to a fresh decoder and returns the normalised sink calls. */
export function decode(role: DecoderRole, pieces: readonly Buffer[]): SinkCall[] {
  const recorder = new Recorder();
  const decoder = new RecordDecoder(role, recorder);
  let total = 0;
  for (const piece of pieces) {
    decoder.push(piece);
    total += piece.length;
    assert.equal(decoder.bytesIn, total);
  }
  assert.ok(decoder.atRecordBoundary, 'a whole vector ends on a record boundary');
  return recorder.calls;
}

export function byteByByte(bytes: Buffer): Buffer[] {
  return Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
}

/** Cuts `bytes` at the given seeds (taken modulo its length). */
export function cutAt(bytes: Buffer, seeds: readonly number[]): Buffer[] {
  const cuts = [...new Set(seeds.map((seed) => seed % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    pieces.push(bytes.subarray(from, cut));
    from = cut;
  }
  return pieces;
}
