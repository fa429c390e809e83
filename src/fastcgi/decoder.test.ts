// Tests for the resumable record decoder: vectors fed whole, split at every byte and byte by byte,
// and its typed protocol errors. Properties over random records and bytes are in
// decoder-properties.test.ts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FastCGIProtocolError } from '../errors.js';
import { byteByByte, data, decode, end, hex, rawRecord, record, Recorder, type SinkCall } from '../../test/helpers/decoder-calls.js';
import { RecordDecoder, type DecoderRole } from './decoder.js';
import { ProtocolStatus, RecordType, Role, type RecordHeader } from './protocol.js';
import { measureParams } from './params.js';
import {
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeRecord,
  encodeRequestHead,
  encodeStream,
  encodeStreamEnd,
  encodeUnknownType,
} from './records.js';

const T = RecordType;

/** The vector fed whole, split in two at every byte boundary, and byte by byte gives `expected`. */
function assertEveryFeeding(role: DecoderRole, bytes: Buffer, expected: SinkCall[]): void {
  assert.deepEqual(decode(role, [bytes]), expected, 'fed whole');
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.deepEqual(decode(role, [bytes.subarray(0, cut), bytes.subarray(cut)]), expected, `split at byte ${cut}`);
  }
  assert.deepEqual(decode(role, byteByByte(bytes)), expected, 'fed byte by byte');
}

interface Vector {
  name: string;
  role: DecoderRole;
  bytes: Buffer;
  calls: SinkCall[];
}

const PARAMS = measureParams([['SCRIPT_FILENAME', '/srv/index.php'], ['REQUEST_METHOD', 'POST']]);
const PARAMS_HEX = Buffer.concat([hex('0f 0e'), Buffer.from('SCRIPT_FILENAME/srv/index.php'), hex('0e 04'), Buffer.from('REQUEST_METHODPOST')]);

const VECTORS: Vector[] = [
  // What an application (the server role) receives.
  { name: 'BEGIN_REQUEST, responder, keep-conn', role: 'server', bytes: encodeBeginRequest(1, Role.Responder, true), calls: [record(T.BeginRequest, 1, '0001 01 0000000000')] },
  { name: 'BEGIN_REQUEST, filter, id 0xffff', role: 'server', bytes: encodeBeginRequest(0xffff, Role.Filter, false), calls: [record(T.BeginRequest, 0xffff, '0003 00 0000000000')] },
  { name: 'ABORT_REQUEST', role: 'server', bytes: encodeAbortRequest(3), calls: [record(T.AbortRequest, 3, '')] },
  { name: 'PARAMS content then the empty PARAMS record', role: 'server', bytes: encodeStream(T.Params, 1, PARAMS_HEX, true), calls: [data(T.Params, 1, PARAMS_HEX), end(T.Params, 1)] },
  { name: 'STDIN content then the empty STDIN record', role: 'server', bytes: encodeStream(T.Stdin, 2, Buffer.from('a=1&b=2'), true), calls: [data(T.Stdin, 2, 'a=1&b=2'), end(T.Stdin, 2)] },
  { name: 'DATA content then the empty DATA record', role: 'server', bytes: encodeStream(T.Data, 2, Buffer.from('filtered'), true), calls: [data(T.Data, 2, 'filtered'), end(T.Data, 2)] },
  {
    name: 'empty stream terminators only',
    role: 'server',
    bytes: Buffer.concat([encodeStreamEnd(T.Params, 1), encodeStreamEnd(T.Stdin, 1), encodeStreamEnd(T.Data, 1)]),
    calls: [end(T.Params, 1), end(T.Stdin, 1), end(T.Data, 1)],
  },
  {
    name: 'GET_VALUES asking for FCGI_MPXS_CONNS',
    role: 'server',
    bytes: encodeRecord(T.GetValues, 0, hex('0f 00 464347495f4d5058535f434f4e4e53')),
    calls: [record(T.GetValues, 0, '0f 00 464347495f4d5058535f434f4e4e53')],
  },
  { name: 'empty GET_VALUES', role: 'server', bytes: encodeRecord(T.GetValues, 0), calls: [record(T.GetValues, 0, '')] },
  { name: 'type 12 (unknown) with content, passed on whole', role: 'server', bytes: rawRecord(12, 0, hex('010203')), calls: [record(12, 0, '010203')] },
  { name: 'type 0 (unknown), passed on whole', role: 'server', bytes: rawRecord(0, 0, hex('')), calls: [record(0, 0, '')] },
  { name: 'type 255 with a request id and padding', role: 'server', bytes: rawRecord(255, 7, hex('ff'), 3), calls: [record(255, 7, 'ff', 3)] },
  {
    name: 'a whole request head: BEGIN_REQUEST, PARAMS, STDIN',
    role: 'server',
    bytes: encodeRequestHead(1, Role.Responder, false, PARAMS, Buffer.from('a=1')),
    calls: [record(T.BeginRequest, 1, '0001 00 0000000000'), data(T.Params, 1, PARAMS_HEX), end(T.Params, 1), data(T.Stdin, 1, 'a=1'), end(T.Stdin, 1)],
  },
  {
    name: 'two multiplexed requests, interleaved, then an abort',
    role: 'server',
    bytes: Buffer.concat([
      encodeBeginRequest(1, Role.Responder, true),
      encodeBeginRequest(2, Role.Responder, true),
      encodeRecord(T.Params, 1, Buffer.from('ab')),
      encodeRecord(T.Params, 2, Buffer.from('cd')),
      encodeRecord(T.Params, 1, Buffer.from('ef')),
      encodeRecord(T.Params, 1, Buffer.from('gh')),
      encodeStreamEnd(T.Params, 1),
      encodeAbortRequest(2),
    ]),
    calls: [
      record(T.BeginRequest, 1, '0001 01 0000000000'),
      record(T.BeginRequest, 2, '0001 01 0000000000'),
      data(T.Params, 1, 'ab'),
      data(T.Params, 2, 'cd'),
      data(T.Params, 1, 'efgh'),
      end(T.Params, 1),
      record(T.AbortRequest, 2, ''),
    ],
  },
  {
    name: 'STDIN records with padding 0, 1, 7, 8 and 255 of non-zero bytes',
    role: 'server',
    bytes: Buffer.concat([0, 1, 7, 8, 255].map((padding) => rawRecord(T.Stdin, 1, Buffer.from(`p${padding};`), padding, 0xff))),
    calls: [data(T.Stdin, 1, 'p0;p1;p7;p8;p255;')],
  },
  {
    name: 'BEGIN_REQUEST and an empty record with padding',
    role: 'server',
    bytes: Buffer.concat([rawRecord(T.BeginRequest, 1, hex('0001000000000000'), 9), rawRecord(T.Stdin, 1, hex(''), 5)]),
    calls: [record(T.BeginRequest, 1, '0001000000000000', 9), end(T.Stdin, 1)],
  },
  // What a web server (the client role) receives.
  {
    name: 'a whole response: STDOUT, STDERR, both ends, END_REQUEST',
    role: 'client',
    bytes: Buffer.concat([
      encodeRecord(T.Stdout, 1, Buffer.from('Status: 200 OK\r\n\r\n')),
      encodeRecord(T.Stderr, 1, Buffer.from('PHP Notice')),
      encodeRecord(T.Stdout, 1, Buffer.from('hello')),
      encodeStreamEnd(T.Stdout, 1),
      encodeStreamEnd(T.Stderr, 1),
      encodeEndRequest(1, 0, ProtocolStatus.RequestComplete),
    ]),
    calls: [
      data(T.Stdout, 1, 'Status: 200 OK\r\n\r\n'),
      data(T.Stderr, 1, 'PHP Notice'),
      data(T.Stdout, 1, 'hello'),
      end(T.Stdout, 1),
      end(T.Stderr, 1),
      record(T.EndRequest, 1, '00000000 00 000000'),
    ],
  },
  {
    name: 'STDOUT in several records is one stream',
    role: 'client',
    bytes: Buffer.concat([encodeRecord(T.Stdout, 1, Buffer.from('a')), encodeRecord(T.Stdout, 1, Buffer.from('bcdefghij')), encodeStreamEnd(T.Stdout, 1)]),
    calls: [data(T.Stdout, 1, 'abcdefghij'), end(T.Stdout, 1)],
  },
  {
    name: 'END_REQUEST with appStatus 0xFFFFFFFF and FCGI_OVERLOADED',
    role: 'client',
    bytes: encodeEndRequest(0xffff, 0xffffffff, ProtocolStatus.Overloaded),
    calls: [record(T.EndRequest, 0xffff, 'ffffffff 02 000000')],
  },
  {
    name: 'GET_VALUES_RESULT',
    role: 'client',
    bytes: encodeRecord(T.GetValuesResult, 0, hex('0e 02 464347495f4d41585f434f4e4e53 3530')),
    calls: [record(T.GetValuesResult, 0, '0e 02 464347495f4d41585f434f4e4e53 3530')],
  },
  { name: 'UNKNOWN_TYPE naming type 12', role: 'client', bytes: encodeUnknownType(12), calls: [record(T.UnknownType, 0, '0c 00000000000000')] },
  { name: 'an empty STDERR stream', role: 'client', bytes: encodeStreamEnd(T.Stderr, 1), calls: [end(T.Stderr, 1)] },
];

describe('vectors fed whole, split at every byte, and byte by byte', () => {
  for (const { name, role, bytes, calls } of VECTORS) {
    test(`${role}: ${name}`, () => assertEveryFeeding(role, bytes, calls));
  }

  test('server: STDIN with every padding length 0..255', () => {
    for (let padding = 0; padding <= 255; padding++) {
      const bytes = Buffer.concat([rawRecord(T.Stdin, 1, Buffer.from('abc'), padding, padding), encodeStreamEnd(T.Stdin, 1)]);
      assertEveryFeeding('server', bytes, [data(T.Stdin, 1, 'abc'), end(T.Stdin, 1)]);
    }
  });

  test('client: 66000 bytes of STDOUT in two full-size records', () => {
    const body = Buffer.alloc(66000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 13 + 5) & 0xff;
    const bytes = Buffer.concat([encodeStream(T.Stdout, 1, body, true), encodeEndRequest(1, 0, 0)]);
    const expected = [data(T.Stdout, 1, body), end(T.Stdout, 1), record(T.EndRequest, 1, '0000000000000000')];
    assert.deepEqual(decode('client', [bytes]), expected, 'fed whole');
    assert.deepEqual(decode('client', byteByByte(bytes)), expected, 'fed byte by byte');
    // Every cut near a record edge: the first header, the end of the first record and its padding,
    // the second header, and the tail.
    const edges = [0, 8 + 65535, 8 + 65535 + 1 + 8, 8 + 65535 + 1 + 8 + 465, bytes.length - 16, bytes.length];
    for (const edge of edges) {
      for (let cut = Math.max(0, edge - 9); cut <= Math.min(bytes.length, edge + 9); cut++) {
        assert.deepEqual(decode('client', [bytes.subarray(0, cut), bytes.subarray(cut)]), expected, `split at byte ${cut}`);
      }
    }
  });
});

describe('the server role passes unknown types on, to be answered with UNKNOWN_TYPE', () => {
  for (const type of [0, 12, 100, 255]) {
    test(`type ${type}`, () => {
      const headers: RecordHeader[] = [];
      const decoder = new RecordDecoder('server', {
        onStreamData: () => assert.fail('not a stream'),
        onStreamEnd: () => assert.fail('not a stream'),
        onRecord: (header, content) => {
          headers.push(header);
          assert.equal(content.toString('hex'), '0102');
        },
      });
      decoder.push(rawRecord(type, 0, hex('0102')));
      assert.deepEqual(headers, [{ version: 1, type, requestId: 0, contentLength: 2, paddingLength: 6 }]);
      // What an application answers (spec 4.2).
      assert.equal(encodeUnknownType(headers[0]!.type).toString('hex'), hex(`01 0b 0000 0008 00 00 ${type.toString(16).padStart(2, '0')} 00000000000000`).toString('hex'));
    });
  }
});

interface ErrorVector {
  name: string;
  role: DecoderRole;
  /** Valid records decoded before the offending header. */
  before?: Buffer;
  calls?: SinkCall[];
  /** The offending record (its header is what fails). */
  bad: Buffer;
  code: string;
  message: RegExp;
}

const STDOUT_HELLO = encodeRecord(T.Stdout, 1, Buffer.from('hello world')); // 24 bytes

const ERRORS: ErrorVector[] = [
  { name: 'version 0', role: 'server', bad: hex('00 01 0001 0008 00 00  0001000000000000'), code: 'FCGI_BAD_VERSION', message: /version 0, expected 1 \(record at byte 0\)/ },
  { name: 'version 2', role: 'server', bad: hex('02 01 0001 0008 00 00  0001000000000000'), code: 'FCGI_BAD_VERSION', message: /version 2, expected 1 \(record at byte 0\)/ },
  {
    name: 'version 2 after a valid record names where the bad record starts',
    role: 'client',
    before: STDOUT_HELLO,
    calls: [data(T.Stdout, 1, 'hello world')],
    bad: hex('02 06 0001 0000 00 00'),
    code: 'FCGI_BAD_VERSION',
    message: /version 2, expected 1 \(record at byte 24\)/,
  },
  { name: 'BEGIN_REQUEST of 7 bytes', role: 'server', bad: rawRecord(T.BeginRequest, 1, hex('00010000000000')), code: 'FCGI_BAD_LENGTH', message: /BEGIN_REQUEST record has content length 7, the spec requires 8/ },
  { name: 'BEGIN_REQUEST of 9 bytes', role: 'server', bad: rawRecord(T.BeginRequest, 1, hex('000100000000000000')), code: 'FCGI_BAD_LENGTH', message: /BEGIN_REQUEST record has content length 9, the spec requires 8/ },
  { name: 'ABORT_REQUEST with content', role: 'server', bad: rawRecord(T.AbortRequest, 1, hex('00')), code: 'FCGI_BAD_LENGTH', message: /ABORT_REQUEST record has content length 1, the spec requires 0/ },
  { name: 'END_REQUEST of 0 bytes', role: 'client', bad: rawRecord(T.EndRequest, 1, hex('')), code: 'FCGI_BAD_LENGTH', message: /END_REQUEST record has content length 0, the spec requires 8/ },
  { name: 'END_REQUEST of 16 bytes', role: 'client', bad: rawRecord(T.EndRequest, 1, Buffer.alloc(16)), code: 'FCGI_BAD_LENGTH', message: /END_REQUEST record has content length 16, the spec requires 8/ },
  { name: 'UNKNOWN_TYPE of 1 byte', role: 'client', bad: rawRecord(T.UnknownType, 0, hex('0c')), code: 'FCGI_BAD_LENGTH', message: /UNKNOWN_TYPE record has content length 1, the spec requires 8/ },
  { name: 'STDOUT sent to an application', role: 'server', bad: STDOUT_HELLO, code: 'FCGI_UNEXPECTED_RECORD', message: /STDOUT record \(type 6\) is never sent to an application/ },
  { name: 'STDERR sent to an application', role: 'server', bad: encodeStreamEnd(T.Stderr, 1), code: 'FCGI_UNEXPECTED_RECORD', message: /STDERR record \(type 7\) is never sent to an application/ },
  { name: 'END_REQUEST sent to an application', role: 'server', bad: encodeEndRequest(1, 0, 0), code: 'FCGI_UNEXPECTED_RECORD', message: /END_REQUEST record \(type 3\) is never sent to an application/ },
  { name: 'GET_VALUES_RESULT sent to an application', role: 'server', bad: encodeRecord(T.GetValuesResult, 0), code: 'FCGI_UNEXPECTED_RECORD', message: /GET_VALUES_RESULT record \(type 10\)/ },
  { name: 'UNKNOWN_TYPE sent to an application', role: 'server', bad: encodeUnknownType(12), code: 'FCGI_UNEXPECTED_RECORD', message: /UNKNOWN_TYPE record \(type 11\)/ },
  { name: 'BEGIN_REQUEST sent to a web server', role: 'client', bad: encodeBeginRequest(1, 1, false), code: 'FCGI_UNEXPECTED_RECORD', message: /BEGIN_REQUEST record \(type 1\) is never sent to a web server/ },
  { name: 'ABORT_REQUEST sent to a web server', role: 'client', bad: encodeAbortRequest(1), code: 'FCGI_UNEXPECTED_RECORD', message: /ABORT_REQUEST record \(type 2\)/ },
  { name: 'PARAMS sent to a web server', role: 'client', bad: encodeStreamEnd(T.Params, 1), code: 'FCGI_UNEXPECTED_RECORD', message: /PARAMS record \(type 4\) is never sent to a web server/ },
  { name: 'STDIN sent to a web server', role: 'client', bad: encodeRecord(T.Stdin, 1, hex('00')), code: 'FCGI_UNEXPECTED_RECORD', message: /STDIN record \(type 5\) is never sent to a web server/ },
  { name: 'DATA sent to a web server', role: 'client', bad: encodeStreamEnd(T.Data, 1), code: 'FCGI_UNEXPECTED_RECORD', message: /DATA record \(type 8\)/ },
  { name: 'GET_VALUES sent to a web server', role: 'client', bad: encodeRecord(T.GetValues, 0), code: 'FCGI_UNEXPECTED_RECORD', message: /GET_VALUES record \(type 9\)/ },
  { name: 'type 12 sent to a web server', role: 'client', bad: rawRecord(12, 0, hex('')), code: 'FCGI_UNEXPECTED_RECORD', message: /type 12 record \(type 12\) is never sent to a web server/ },
  { name: 'type 0 sent to a web server', role: 'client', bad: rawRecord(0, 1, hex('')), code: 'FCGI_UNEXPECTED_RECORD', message: /type 0 record \(type 0\)/ },
  { name: 'type 255 sent to a web server', role: 'client', bad: rawRecord(255, 1, hex('00')), code: 'FCGI_UNEXPECTED_RECORD', message: /type 255 record \(type 255\)/ },
  { name: 'GET_VALUES with request id 1', role: 'server', bad: encodeRecord(T.GetValues, 1), code: 'FCGI_BAD_REQUEST_ID', message: /GET_VALUES is a management record but has request id 1, expected 0/ },
  { name: 'STDIN with request id 0', role: 'server', bad: encodeRecord(T.Stdin, 0, hex('00')), code: 'FCGI_BAD_REQUEST_ID', message: /STDIN record has request id 0, which is reserved for management records/ },
  { name: 'BEGIN_REQUEST with request id 0', role: 'server', bad: encodeBeginRequest(0, 1, false), code: 'FCGI_BAD_REQUEST_ID', message: /BEGIN_REQUEST record has request id 0/ },
  { name: 'an empty PARAMS record with request id 0', role: 'server', bad: encodeStreamEnd(T.Params, 0), code: 'FCGI_BAD_REQUEST_ID', message: /PARAMS record has request id 0/ },
  { name: 'STDOUT with request id 0', role: 'client', bad: encodeRecord(T.Stdout, 0, hex('00')), code: 'FCGI_BAD_REQUEST_ID', message: /STDOUT record has request id 0/ },
  { name: 'END_REQUEST with request id 0', role: 'client', bad: encodeEndRequest(0, 0, 0), code: 'FCGI_BAD_REQUEST_ID', message: /END_REQUEST record has request id 0/ },
  { name: 'GET_VALUES_RESULT with request id 2', role: 'client', bad: encodeRecord(T.GetValuesResult, 2), code: 'FCGI_BAD_REQUEST_ID', message: /GET_VALUES_RESULT is a management record but has request id 2, expected 0/ },
  { name: 'UNKNOWN_TYPE with request id 1', role: 'client', bad: rawRecord(T.UnknownType, 1, Buffer.alloc(8)), code: 'FCGI_BAD_REQUEST_ID', message: /UNKNOWN_TYPE is a management record but has request id 1/ },
];

/**
 * Feeds `pieces`; expects the push that completes the bad header to throw the vector's error, then
 * every later push (valid bytes, the rest of the record, nothing at all) to throw the same object.
 */
function assertFailsAt(vector: ErrorVector, pieces: Buffer[], badHeaderEnd: number, how: string): void {
  const recorder = new Recorder();
  const decoder = new RecordDecoder(vector.role, recorder);
  let fed = 0;
  let failure: unknown;
  for (const piece of pieces) {
    if (failure === undefined) {
      try {
        decoder.push(piece);
      } catch (error) {
        failure = error;
        assert.ok(fed + piece.length >= badHeaderEnd && fed < badHeaderEnd, `${how}: thrown by the push that completes the header`);
        assert.ok(error instanceof FastCGIProtocolError, `${how}: ${String(error)}`);
        assert.equal(error.code, vector.code, how);
        assert.match(error.message, vector.message, how);
        assert.deepEqual(recorder.calls, vector.calls ?? [], `${how}: records before the bad one were delivered, nothing of it`);
      }
      fed += piece.length;
    } else {
      assert.throws(() => decoder.push(piece), (error) => error === failure, `${how}: a later push throws the same error`);
    }
  }
  assert.notEqual(failure, undefined, `${how}: an error was thrown`);
  assert.throws(() => decoder.push(Buffer.alloc(0)), (error) => error === failure);
  assert.throws(() => decoder.push(encodeStreamEnd(T.Stdin, 1)), (error) => error === failure);
  assert.deepEqual(recorder.calls, vector.calls ?? [], `${how}: nothing is delivered after the error`);
}

describe('protocol errors have stable codes and name the offending value', () => {
  for (const vector of ERRORS) {
    test(`${vector.role}: ${vector.name} -> ${vector.code}`, () => {
      const before = vector.before ?? Buffer.alloc(0);
      const bytes = Buffer.concat([before, vector.bad]);
      const badHeaderEnd = before.length + 8;
      assertFailsAt(vector, [bytes], badHeaderEnd, 'fed whole');
      for (let cut = 1; cut < bytes.length; cut++) {
        assertFailsAt(vector, [bytes.subarray(0, cut), bytes.subarray(cut)], badHeaderEnd, `split at byte ${cut}`);
      }
      assertFailsAt(vector, byteByByte(bytes), badHeaderEnd, 'fed byte by byte');
    });
  }
});

describe('sink errors', () => {
  test('propagate unchanged and end the decoder like a protocol error', () => {
    const boom = new Error('handler failed');
    let calls = 0;
    const decoder = new RecordDecoder('client', {
      onStreamData: () => {
        calls++;
        throw boom;
      },
      onStreamEnd: () => calls++,
      onRecord: () => calls++,
    });
    const bytes = Buffer.concat([encodeRecord(T.Stdout, 1, Buffer.from('abc')), encodeStreamEnd(T.Stdout, 1), encodeEndRequest(1, 0, 0)]);
    assert.throws(() => decoder.push(bytes), (error) => error === boom);
    assert.throws(() => decoder.push(encodeStreamEnd(T.Stdout, 1)), (error) => error === boom);
    assert.equal(calls, 1, 'nothing is delivered after the sink failed');
  });

  test('a record is never delivered twice after onRecord throws', () => {
    const boom = new Error('handler failed');
    const seen: number[] = [];
    const decoder = new RecordDecoder('server', {
      onStreamData: () => {},
      onStreamEnd: () => {},
      onRecord: (header) => {
        seen.push(header.type);
        throw boom;
      },
    });
    const begin = encodeBeginRequest(1, Role.Responder, false);
    assert.throws(() => decoder.push(begin.subarray(0, 16)), (error) => error === boom);
    assert.throws(() => decoder.push(encodeStreamEnd(T.Params, 1)), (error) => error === boom);
    assert.deepEqual(seen, [T.BeginRequest]);
  });
});

describe('transient input (a socket read into a reused buffer)', () => {
  /** A client response: stdout in records that straddle any cut, stderr, padding, END_REQUEST. */
  const stdout = Buffer.from(Array.from({ length: 700 }, (_, i) => (i * 7 + 3) & 0xff));
  const response = Buffer.concat([
    rawRecord(T.Stdout, 1, stdout.subarray(0, 300), 5),
    rawRecord(T.Stderr, 1, Buffer.from('warning\n'), 0),
    rawRecord(T.Stdout, 1, stdout.subarray(300, 301), 7),
    rawRecord(T.Stdout, 1, stdout.subarray(301), 0),
    encodeStreamEnd(T.Stdout, 1),
    encodeEndRequest(1, 0x01020304, ProtocolStatus.RequestComplete),
  ]);

  /** Feeds `response` in pieces of `size` through one buffer overwritten after every push; keeps what the sink got. */
  function throughOneBuffer(size: number, transient: boolean): { stdout: Buffer[]; stderr: Buffer[]; end: Buffer[] } {
    const kept = { stdout: [] as Buffer[], stderr: [] as Buffer[], end: [] as Buffer[] };
    const decoder = new RecordDecoder('client', {
      onStreamData: (type, _requestId, piece) => (type === T.Stdout ? kept.stdout : kept.stderr).push(piece),
      onStreamEnd: () => {},
      onRecord: (_header, content) => kept.end.push(content),
    });
    const buffer = Buffer.alloc(size);
    for (let at = 0; at < response.length; at += size) {
      const length = response.copy(buffer, 0, at, at + size);
      decoder.push(buffer.subarray(0, length), transient);
      buffer.fill(0xee);
    }
    assert.ok(decoder.atRecordBoundary);
    return kept;
  }

  test('what the sink keeps survives the buffer being overwritten, at every read size', () => {
    for (let size = 1; size <= response.length; size++) {
      const kept = throughOneBuffer(size, true);
      assert.ok(Buffer.concat(kept.stdout).equals(stdout), `stdout, reads of ${size} bytes`);
      assert.equal(Buffer.concat(kept.stderr).toString(), 'warning\n', `stderr, reads of ${size} bytes`);
      assert.deepEqual(kept.end, [encodeEndRequest(1, 0x01020304, ProtocolStatus.RequestComplete).subarray(8)], `END_REQUEST, reads of ${size} bytes`);
    }
  });

  test('pushed as not transient, stream data shares the input (the test above would see the overwrites)', () => {
    const kept = throughOneBuffer(64, false);
    assert.ok(!Buffer.concat(kept.stdout).equals(stdout));
  });
});
