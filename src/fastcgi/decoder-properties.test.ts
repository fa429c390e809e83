// Properties of the resumable record decoder (fast-check): random valid records, concatenated and
// cut anywhere, decode to the same records; random bytes only ever throw a typed error.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FastCGIProtocolError } from '../errors.js';
import { cutAt, data, decode, end, rawRecord, type SinkCall } from '../../test/helpers/decoder-calls.js';
import { RecordDecoder } from './decoder.js';
import { RecordType } from './protocol.js';

const T = RecordType;

// Random valid records for each role, with random padding bytes.
const anyId = fc.integer({ min: 1, max: 0xffff });
const bytesArb = (maxLength: number) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));
const fixed8 = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b));
interface GeneratedRecord {
  type: number;
  requestId: number;
  content: Buffer;
  padding: number;
  padByte: number;
}
const recordArb = (types: fc.Arbitrary<{ type: number; requestId: number; content: Buffer }>) =>
  fc.record({ r: types, padding: fc.integer({ min: 0, max: 255 }), padByte: fc.integer({ min: 0, max: 255 }) }).map(
    ({ r, padding, padByte }): GeneratedRecord => ({ ...r, padding, padByte }),
  );
const SERVER_RECORDS = recordArb(
  fc.oneof(
    fc.record({ type: fc.constant(T.BeginRequest as number), requestId: anyId, content: fixed8 }),
    fc.record({ type: fc.constant(T.AbortRequest as number), requestId: anyId, content: fc.constant(Buffer.alloc(0)) }),
    fc.record({ type: fc.constantFrom<number>(T.Params, T.Stdin, T.Data), requestId: anyId, content: bytesArb(300) }),
    fc.record({ type: fc.constant(T.GetValues as number), requestId: fc.constant(0), content: bytesArb(40) }),
    fc.record({ type: fc.oneof(fc.constant(0), fc.integer({ min: 12, max: 255 })), requestId: fc.integer({ min: 0, max: 0xffff }), content: bytesArb(40) }),
  ),
);
const CLIENT_RECORDS = recordArb(
  fc.oneof(
    fc.record({ type: fc.constant(T.EndRequest as number), requestId: anyId, content: fixed8 }),
    fc.record({ type: fc.constantFrom<number>(T.Stdout, T.Stderr), requestId: anyId, content: bytesArb(300) }),
    fc.record({ type: fc.constant(T.GetValuesResult as number), requestId: fc.constant(0), content: bytesArb(40) }),
    fc.record({ type: fc.constant(T.UnknownType as number), requestId: fc.constant(0), content: fixed8 }),
  ),
);
const STREAM_TYPES = new Set<number>([T.Params, T.Stdin, T.Data, T.Stdout, T.Stderr]);

function encodeAll(records: readonly GeneratedRecord[]): Buffer {
  return Buffer.concat(records.map((r) => rawRecord(r.type, r.requestId, r.content, r.padding, r.padByte)));
}

/** The normalised sink calls a sequence of records must produce. */
function expectedCalls(records: readonly GeneratedRecord[]): SinkCall[] {
  const calls: SinkCall[] = [];
  for (const { type, requestId, content, padding } of records) {
    if (!STREAM_TYPES.has(type)) {
      calls.push({ call: 'record', header: { version: 1, type, requestId, contentLength: content.length, paddingLength: padding }, hex: content.toString('hex') });
    } else if (content.length === 0) {
      calls.push(end(type, requestId));
    } else {
      const last = calls.at(-1);
      if (last?.call === 'data' && last.type === type && last.requestId === requestId) last.hex += content.toString('hex');
      else calls.push(data(type, requestId, content));
    }
  }
  return calls;
}

describe('properties', () => {
  for (const [role, records] of [['server', SERVER_RECORDS], ['client', CLIENT_RECORDS]] as const) {
    test(`${role}: random valid records, concatenated and cut anywhere, decode to the same records`, () => {
      fc.assert(
        fc.property(fc.array(records, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 20 }), (sequence, seeds) => {
          const bytes = encodeAll(sequence);
          assert.deepEqual(decode(role, cutAt(bytes, seeds)), expectedCalls(sequence));
        }),
        { numRuns: 300 },
      );
    });
  }

  // Random bytes, and valid sequences with random bytes overwritten, so that decoding gets past the
  // first header often enough to reach every check.
  const mutated = (records: fc.Arbitrary<GeneratedRecord>) =>
    fc
      .tuple(fc.array(records, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
      .map(([sequence, changes]) => {
        const bytes = encodeAll(sequence);
        for (const [at, value] of changes) bytes[at % bytes.length] = value;
        return bytes;
      });

  for (const [role, records] of [['server', SERVER_RECORDS], ['client', CLIENT_RECORDS]] as const) {
    test(`${role}: random bytes only ever throw FastCGIProtocolError or the sink's error, and always return`, () => {
      class SinkError extends Error {}
      fc.assert(
        fc.property(
          fc.oneof(bytesArb(600), mutated(records)),
          fc.array(fc.nat(), { maxLength: 12 }),
          fc.option(fc.nat({ max: 20 }), { nil: undefined }),
          (bytes, seeds, failOnCall) => {
            let calls = 0;
            const maybeFail = (): void => {
              if (++calls === failOnCall) throw new SinkError(`sink call ${calls}`);
            };
            const decoder = new RecordDecoder(role, { onStreamData: maybeFail, onStreamEnd: maybeFail, onRecord: maybeFail });
            let failure: unknown;
            let fed = 0;
            for (const piece of cutAt(bytes, seeds)) {
              try {
                decoder.push(piece);
                fed += piece.length;
                assert.equal(decoder.bytesIn, fed);
              } catch (error) {
                if (failure === undefined) {
                  assert.ok(error instanceof FastCGIProtocolError || error instanceof SinkError, String(error));
                  failure = error;
                } else {
                  assert.equal(error, failure, 'later pushes throw the first error');
                }
              }
            }
          },
        ),
        { numRuns: 2000 },
      );
    });
  }
});
