// Codec section: throughput of the pure FastCGI codec (record framing, the record decoder, params),
// each case run for a fixed time after a warm-up, repeated, median reported. One core, no I/O.

import { RecordDecoder, type DecoderSink } from '../src/fastcgi/decoder.js';
import { decodeParams, encodeParams, measureParams, paramsToMap } from '../src/fastcgi/params.js';
import { HEADER_BYTES, MAX_CONTENT_BYTES, RecordType, Role } from '../src/fastcgi/protocol.js';
import { encodeRequestHead, encodeStream, frameStream, paddingFor, writeHeader } from '../src/fastcgi/records.js';
import { typicalParams } from './lib/cgi-params.js';
import type { BenchOptions, Row, Section } from './lib/section.js';
import { measureThroughput, type Operation, type TimingPlan } from './lib/timing.js';

const KiB = 1024;
const MB = 1e6;
const REQUEST_ID = 1;

/** Results are folded in here so no optimizer can decide the work is unused. */
let blackhole = 0;

interface CodecCase {
  readonly name: string;
  /** Records one op produces or consumes (on average); null where records are not the unit. */
  readonly recordsPerOp: number | null;
  readonly op: Operation;
}

/**
 * A 64 KiB (65536-byte) chunk, as a socket or a file stream hands it on. A record holds at most
 * 65535 bytes, so it becomes two records: 65535 bytes, then 1 byte and 7 of padding.
 */
function framingCases(): CodecCase[] {
  const chunk = Buffer.alloc(64 * KiB, 0x61);
  const records = Math.ceil(chunk.length / MAX_CONTENT_BYTES);
  return [
    {
      name: `frameStream: 64 KiB chunk into ${records} STDIN records (zero-copy)`,
      recordsPerOp: records,
      op: () => {
        const out: Buffer[] = [];
        frameStream(RecordType.Stdin, REQUEST_ID, chunk, out);
        blackhole += out.length;
        return chunk.length;
      },
    },
    {
      name: `encodeStream: 64 KiB chunk into ${records} records in one buffer (copying)`,
      recordsPerOp: records,
      op: () => {
        blackhole += encodeStream(RecordType.Stdin, REQUEST_ID, chunk).length;
        return chunk.length;
      },
    },
  ];
}

/** `count` STDOUT records of `contentBytes` each, framed back to back as a peer sends them. */
function stdoutRun(contentBytes: number, count: number): Buffer {
  const padding = paddingFor(contentBytes);
  const recordBytes = HEADER_BYTES + contentBytes + padding;
  const stream = Buffer.alloc(recordBytes * count, 0x62);
  for (let i = 0; i < count; i++) {
    const at = i * recordBytes;
    writeHeader(stream, at, RecordType.Stdout, REQUEST_ID, contentBytes, padding);
    stream.fill(0, at + HEADER_BYTES + contentBytes, at + recordBytes);
  }
  return stream;
}

/** Cuts `stream` into pieces of `pieceBytes` (the last may be shorter), as socket reads would. */
function pieces(stream: Buffer, pieceBytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < stream.length; at += pieceBytes) out.push(stream.subarray(at, at + pieceBytes));
  return out;
}

function decodeCase(name: string, contentBytes: number, pieceBytes: number): CodecCase {
  // About 16 MiB of records, a long response; the decoder only slices the content, never reads it.
  const count = Math.max(1, Math.round((16 * KiB * KiB) / contentBytes));
  const stream = stdoutRun(contentBytes, count);
  const chunks = pieces(stream, pieceBytes);
  const sink: DecoderSink = {
    onStreamData: (_type, _requestId, data) => {
      blackhole += data.length;
    },
    onStreamEnd: () => {},
    onRecord: () => {},
  };
  const decoder = new RecordDecoder('client', sink);
  let next = 0;
  return {
    name,
    recordsPerOp: count / chunks.length,
    op: () => {
      const piece = chunks[next]!;
      next = next + 1 === chunks.length ? 0 : next + 1;
      decoder.push(piece);
      return piece.length;
    },
  };
}

function decodingCases(): CodecCase[] {
  return [
    decodeCase('RecordDecoder: 65535-byte STDOUT records, 64 KiB reads', MAX_CONTENT_BYTES, 64 * KiB),
    decodeCase('RecordDecoder: 65535-byte STDOUT records, 16 KiB reads', MAX_CONTENT_BYTES, 16 * KiB),
    decodeCase('RecordDecoder: 8 KiB framed STDOUT records, 64 KiB reads', 8 * KiB - HEADER_BYTES, 64 * KiB),
  ];
}

function paramsCases(): CodecCase[] {
  const params = typicalParams('/var/www/example/public', '/blog/index.php');
  const measured = measureParams(params);
  const encoded = encodeParams(params);
  const label = `${Object.keys(params).length} params, ${(encoded.length / 1000).toFixed(1)} KB`;
  return [
    {
      name: `measureParams + encodeRequestHead (as dispatch does): ${label}`,
      recordsPerOp: 3,
      op: () => {
        blackhole += encodeRequestHead(REQUEST_ID, Role.Responder, true, measureParams(params)).length;
        return measured.totalBytes;
      },
    },
    {
      name: `encodeRequestHead alone (params measured once): ${label}`,
      recordsPerOp: 3,
      op: () => {
        blackhole += encodeRequestHead(REQUEST_ID, Role.Responder, true, measured).length;
        return measured.totalBytes;
      },
    },
    {
      name: `decodeParams: ${label}`,
      recordsPerOp: null,
      op: () => {
        blackhole += decodeParams(encoded).length;
        return encoded.length;
      },
    },
    {
      name: `decodeParams + paramsToMap (as the server does): ${label}`,
      recordsPerOp: null,
      op: () => {
        blackhole += paramsToMap(decodeParams(encoded)).size;
        return encoded.length;
      },
    },
  ];
}

function plan(options: BenchOptions): TimingPlan {
  return options.quick ? { warmupMs: 100, durationMs: 150, repeats: 3 } : { warmupMs: 300, durationMs: 400, repeats: 5 };
}

export const codecSection = {
  name: 'codec',
  title: 'Codec (pure functions, one core, no I/O)',
  description:
    'Each case runs in a tight loop for a fixed time after a warm-up; the figure is the median of the repeats, ' +
    '"spread" how far the fastest and slowest repeat were apart. MB/s counts input bytes (10^6 bytes); ' +
    'for the decoder an op is one socket-sized piece pushed; for params an op is one request and MB/s counts ' +
    'the encoded name-value bytes. records/s counts FastCGI records (BEGIN_REQUEST, PARAMS and its terminator for a request head).',
  columns: [
    { key: 'mbPerSec', label: 'MB/s' },
    { key: 'opsPerSec', label: 'ops/s' },
    { key: 'recordsPerSec', label: 'records/s' },
    { key: 'spreadPct', label: 'spread %', digits: 1 },
  ],
  async run(options: BenchOptions): Promise<Row[]> {
    const cases = [...framingCases(), ...decodingCases(), ...paramsCases()];
    const rows: Row[] = [];
    for (const c of cases) {
      options.log(`codec: ${c.name}`);
      const result = await measureThroughput(c.op, plan(options));
      rows.push({
        case: c.name,
        values: {
          mbPerSec: result.bytesPerSec / MB,
          opsPerSec: result.opsPerSec,
          recordsPerSec: c.recordsPerOp === null ? null : result.opsPerSec * c.recordsPerOp,
          spreadPct: result.spreadPct,
        },
      });
    }
    if (blackhole === -1) options.log('unreachable: keeps the results alive');
    return rows;
  },
} satisfies Section;
