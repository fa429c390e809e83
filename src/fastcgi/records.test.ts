// Golden-byte tests for the FastCGI record encoders: every byte each encoder writes, spelled out in hex.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProtocolStatus, RecordType, Role } from './protocol.js';
import { encodeParams, measureParams } from './params.js';
import {
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeHeader,
  encodeRecord,
  encodeRequestHead,
  encodeStream,
  encodeStreamEnd,
  encodeUnknownType,
  framedLength,
  frameStream,
  paddingFor,
} from './records.js';

/** Hex with spaces for readability ("0101 0001") into bytes. */
function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

/** Compares as hex so a failure shows which byte differs. */
function assertBytes(actual: Buffer, expected: Buffer): void {
  assert.equal(actual.length, expected.length, 'length');
  assert.equal(actual.toString('hex'), expected.toString('hex'));
}

/** Deterministic, position-dependent content, so a misplaced slice cannot go unnoticed. */
function pattern(length: number): Buffer {
  const data = Buffer.alloc(length);
  for (let i = 0; i < length; i++) data[i] = (i * 31 + 7) & 0xff;
  return data;
}

describe('encodeHeader', () => {
  const cases = [
    { type: RecordType.BeginRequest, id: 1, length: 8, padding: 0, bytes: '01 01 0001 0008 00 00' },
    { type: RecordType.Stdout, id: 0x1234, length: 0x0102, padding: 7, bytes: '01 06 1234 0102 07 00' },
    { type: RecordType.Stdin, id: 0xffff, length: 0xffff, padding: 255, bytes: '01 05 ffff ffff ff 00' },
    { type: RecordType.GetValues, id: 0, length: 0, padding: 0, bytes: '01 09 0000 0000 00 00' },
    { type: RecordType.UnknownType, id: 0, length: 8, padding: 0, bytes: '01 0b 0000 0008 00 00' },
    { type: 200, id: 0x0100, length: 0x00ff, padding: 1, bytes: '01 c8 0100 00ff 01 00' },
  ];
  for (const { type, id, length, padding, bytes } of cases) {
    test(`type ${type}, id ${id}, length ${length}, padding ${padding}`, () => {
      assertBytes(encodeHeader(type, id, length, padding), hex(bytes));
    });
  }
});

describe('encodeRecord', () => {
  const cases = [
    { name: 'empty content, no padding', type: RecordType.Stdout, id: 1, content: '', bytes: '01 06 0001 0000 00 00' },
    { name: '1 byte, 7 padding', type: RecordType.Stdout, id: 1, content: '61', bytes: '01 06 0001 0001 07 00  61 00000000000000' },
    { name: '7 bytes, 1 padding', type: RecordType.Stderr, id: 2, content: '61626364656667', bytes: '01 07 0002 0007 01 00  61626364656667 00' },
    { name: '8 bytes, no padding', type: RecordType.Stdin, id: 3, content: '0001020304050607', bytes: '01 05 0003 0008 00 00  0001020304050607' },
    { name: '9 bytes, 7 padding', type: RecordType.Data, id: 0x0102, content: '000102030405060708', bytes: '01 08 0102 0009 07 00  000102030405060708 00000000000000' },
    {
      name: 'GET_VALUES_RESULT carrying FCGI_MPXS_CONNS=0',
      type: RecordType.GetValuesResult,
      id: 0,
      content: '0f 01 464347495f4d5058535f434f4e4e53 30',
      bytes: '01 0a 0000 0012 06 00  0f 01 464347495f4d5058535f434f4e4e53 30  000000000000',
    },
  ];
  for (const { name, type, id, content, bytes } of cases) {
    test(name, () => {
      assertBytes(encodeRecord(type, id, hex(content)), hex(bytes));
    });
  }

  test('defaults to empty content', () => {
    assertBytes(encodeRecord(RecordType.Params, 9), hex('01 04 0009 0000 00 00'));
  });

  test('65535 bytes fit one record, padded by 1', () => {
    const content = pattern(65535);
    const record = encodeRecord(RecordType.Stdout, 1, content);
    assertBytes(record, Buffer.concat([hex('01 06 0001 ffff 01 00'), content, hex('00')]));
  });

  test('65536 bytes are refused with a RangeError naming the length', () => {
    assert.throws(() => encodeRecord(RecordType.Stdout, 1, Buffer.alloc(65536)), {
      name: 'RangeError',
      message: /65536 bytes exceeds 65535/,
    });
  });
});

describe('encodeBeginRequest', () => {
  const cases = [
    { name: 'responder without keep-conn', id: 1, role: Role.Responder, keepConn: false, bytes: '01 01 0001 0008 00 00  0001 00 0000000000' },
    { name: 'responder with keep-conn', id: 1, role: Role.Responder, keepConn: true, bytes: '01 01 0001 0008 00 00  0001 01 0000000000' },
    { name: 'authorizer, id 0xffff', id: 0xffff, role: Role.Authorizer, keepConn: false, bytes: '01 01 ffff 0008 00 00  0002 00 0000000000' },
    { name: 'filter with keep-conn', id: 2, role: Role.Filter, keepConn: true, bytes: '01 01 0002 0008 00 00  0003 01 0000000000' },
    { name: 'unknown 16-bit role 0x0102', id: 0x0304, role: 0x0102, keepConn: false, bytes: '01 01 0304 0008 00 00  0102 00 0000000000' },
  ];
  for (const { name, id, role, keepConn, bytes } of cases) {
    test(name, () => {
      assertBytes(encodeBeginRequest(id, role, keepConn), hex(bytes));
    });
  }
});

describe('encodeEndRequest', () => {
  const cases = [
    { name: 'complete, appStatus 0', id: 1, app: 0, status: ProtocolStatus.RequestComplete, bytes: '01 03 0001 0008 00 00  00000000 00 000000' },
    { name: 'appStatus 255', id: 1, app: 255, status: ProtocolStatus.RequestComplete, bytes: '01 03 0001 0008 00 00  000000ff 00 000000' },
    { name: 'appStatus 0x12345678', id: 7, app: 0x12345678, status: ProtocolStatus.RequestComplete, bytes: '01 03 0007 0008 00 00  12345678 00 000000' },
    { name: 'appStatus 0x80000000', id: 1, app: 0x80000000, status: ProtocolStatus.RequestComplete, bytes: '01 03 0001 0008 00 00  80000000 00 000000' },
    { name: 'appStatus 0xFFFFFFFF', id: 1, app: 0xffffffff, status: ProtocolStatus.RequestComplete, bytes: '01 03 0001 0008 00 00  ffffffff 00 000000' },
    { name: 'appStatus -1 is written as its 32-bit pattern', id: 1, app: -1, status: ProtocolStatus.RequestComplete, bytes: '01 03 0001 0008 00 00  ffffffff 00 000000' },
    { name: 'FCGI_CANT_MPX_CONN', id: 2, app: 0, status: ProtocolStatus.CantMpxConn, bytes: '01 03 0002 0008 00 00  00000000 01 000000' },
    { name: 'FCGI_OVERLOADED', id: 0xffff, app: 0, status: ProtocolStatus.Overloaded, bytes: '01 03 ffff 0008 00 00  00000000 02 000000' },
    { name: 'FCGI_UNKNOWN_ROLE', id: 0x0100, app: 1, status: ProtocolStatus.UnknownRole, bytes: '01 03 0100 0008 00 00  00000001 03 000000' },
  ];
  for (const { name, id, app, status, bytes } of cases) {
    test(name, () => {
      assertBytes(encodeEndRequest(id, app, status), hex(bytes));
    });
  }
});

describe('encodeAbortRequest, encodeUnknownType, encodeStreamEnd', () => {
  const cases = [
    { name: 'ABORT_REQUEST id 1', bytes: () => encodeAbortRequest(1), expected: '01 02 0001 0000 00 00' },
    { name: 'ABORT_REQUEST id 0xfffe', bytes: () => encodeAbortRequest(0xfffe), expected: '01 02 fffe 0000 00 00' },
    { name: 'UNKNOWN_TYPE for type 0', bytes: () => encodeUnknownType(0), expected: '01 0b 0000 0008 00 00  00 00000000000000' },
    { name: 'UNKNOWN_TYPE for type 12', bytes: () => encodeUnknownType(12), expected: '01 0b 0000 0008 00 00  0c 00000000000000' },
    { name: 'UNKNOWN_TYPE for type 255', bytes: () => encodeUnknownType(255), expected: '01 0b 0000 0008 00 00  ff 00000000000000' },
    { name: 'PARAMS end', bytes: () => encodeStreamEnd(RecordType.Params, 1), expected: '01 04 0001 0000 00 00' },
    { name: 'STDIN end', bytes: () => encodeStreamEnd(RecordType.Stdin, 7), expected: '01 05 0007 0000 00 00' },
    { name: 'STDOUT end', bytes: () => encodeStreamEnd(RecordType.Stdout, 0x1234), expected: '01 06 1234 0000 00 00' },
    { name: 'STDERR end', bytes: () => encodeStreamEnd(RecordType.Stderr, 1), expected: '01 07 0001 0000 00 00' },
    { name: 'DATA end', bytes: () => encodeStreamEnd(RecordType.Data, 1), expected: '01 08 0001 0000 00 00' },
  ];
  for (const { name, bytes, expected } of cases) {
    test(name, () => {
      assertBytes(bytes(), hex(expected));
    });
  }
});

describe('paddingFor', () => {
  const expected = [0, 7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0];
  for (const [length, padding] of expected.entries()) {
    test(`${length} bytes need ${padding} padding`, () => {
      assert.equal(paddingFor(length), padding);
    });
  }
  test('65534 bytes need 2 padding, 65535 need 1', () => {
    assert.equal(paddingFor(65534), 2);
    assert.equal(paddingFor(65535), 1);
  });
});

/**
 * Stream framing vectors: the record headers each length must produce, after Go's net/http/fcgi
 * streamTests (66000 bytes: a 65535-byte record padded by 1, then 465 bytes padded by 7).
 */
const STREAMS = [
  { length: 0, records: [] },
  { length: 1, records: [{ header: '01 06 0001 0001 07 00', from: 0, to: 1, padding: 7 }] },
  { length: 7, records: [{ header: '01 06 0001 0007 01 00', from: 0, to: 7, padding: 1 }] },
  { length: 8, records: [{ header: '01 06 0001 0008 00 00', from: 0, to: 8, padding: 0 }] },
  { length: 9, records: [{ header: '01 06 0001 0009 07 00', from: 0, to: 9, padding: 7 }] },
  { length: 65535, records: [{ header: '01 06 0001 ffff 01 00', from: 0, to: 65535, padding: 1 }] },
  {
    length: 65536,
    records: [
      { header: '01 06 0001 ffff 01 00', from: 0, to: 65535, padding: 1 },
      { header: '01 06 0001 0001 07 00', from: 65535, to: 65536, padding: 7 },
    ],
  },
  {
    length: 66000,
    records: [
      { header: '01 06 0001 ffff 01 00', from: 0, to: 65535, padding: 1 },
      { header: '01 06 0001 01d1 07 00', from: 65535, to: 66000, padding: 7 },
    ],
  },
] as const;

/** The exact framed bytes of a STREAMS vector, built from its golden headers. */
function framedBytes(data: Buffer, records: (typeof STREAMS)[number]['records']): Buffer {
  const parts: Buffer[] = [];
  for (const { header, from, to, padding } of records) parts.push(hex(header), data.subarray(from, to), Buffer.alloc(padding));
  return Buffer.concat(parts);
}

describe('framedLength', () => {
  const expected: Record<number, number> = { 0: 0, 1: 16, 7: 16, 8: 16, 9: 24, 65535: 65544, 65536: 65560, 66000: 66024 };
  for (const { length, records } of STREAMS) {
    test(`${length} bytes frame into ${expected[length]} bytes`, () => {
      assert.equal(framedLength(length), expected[length]);
      assert.equal(framedLength(length), framedBytes(pattern(length), records).length);
    });
  }
});

describe('encodeStream', () => {
  for (const { length, records } of STREAMS) {
    test(`${length} bytes`, () => {
      const data = pattern(length);
      assertBytes(encodeStream(RecordType.Stdout, 1, data), framedBytes(data, records));
    });
    test(`${length} bytes with the terminator`, () => {
      const data = pattern(length);
      const expected = Buffer.concat([framedBytes(data, records), hex('01 06 0001 0000 00 00')]);
      assertBytes(encodeStream(RecordType.Stdout, 1, data, true), expected);
    });
  }
});

describe('frameStream', () => {
  for (const { length, records } of STREAMS) {
    test(`${length} bytes, appended to what is already in out`, () => {
      const data = pattern(length);
      const sentinel = hex('ee');
      const out: Buffer[] = [sentinel];
      frameStream(RecordType.Stdout, 1, data, out);
      assert.equal(out[0], sentinel);
      assertBytes(Buffer.concat(out.slice(1)), framedBytes(data, records));
      const lastPadding = records.length === 0 ? 0 : records[records.length - 1]!.padding;
      assert.equal(out.length - 1, 2 * records.length + (lastPadding > 0 ? 1 : 0));
    });
  }

  for (const { length, records } of STREAMS.filter((s) => s.length > 0)) {
    test(`${length} bytes: the content pieces share memory with the input`, () => {
      const data = pattern(length);
      const out: Buffer[] = [];
      frameStream(RecordType.Stdout, 1, data, out);
      for (const [i, { from, to }] of records.entries()) {
        // Pieces alternate: header (with the previous record's padding in front), then content.
        const piece = out[2 * i + 1]!;
        assert.equal(piece.buffer, data.buffer);
        assert.equal(piece.byteOffset, data.byteOffset + from);
        assert.equal(piece.length, to - from);
        data[from] = data[from]! ^ 0xff;
        assert.equal(piece[0], data[from], 'a write to the input shows through the piece');
      }
    });
  }
});

describe('encodeRequestHead', () => {
  const BEGIN_KEEP = '01 01 0001 0008 00 00  0001 01 0000000000';
  const BEGIN_CLOSE = '01 01 0001 0008 00 00  0001 00 0000000000';
  const PARAMS_END = '01 04 0001 0000 00 00';
  const STDIN_END = '01 05 0001 0000 00 00';
  // One pair A=b: lengths 01 01, then "A" "b" (4 bytes, padded by 4).
  const PARAMS_AB = '01 04 0001 0004 04 00  01 01 41 62  00000000';

  const cases = [
    { name: 'no params, no stdin', keepConn: true, params: [], stdin: undefined, bytes: [BEGIN_KEEP, PARAMS_END] },
    { name: 'no params, empty inline stdin', keepConn: true, params: [], stdin: '', bytes: [BEGIN_KEEP, PARAMS_END, STDIN_END] },
    { name: 'one pair in one record, no stdin', keepConn: false, params: [['A', 'b']], stdin: undefined, bytes: [BEGIN_CLOSE, PARAMS_AB, PARAMS_END] },
    {
      name: 'one pair in one record, inline stdin "hi"',
      keepConn: true,
      params: [['A', 'b']],
      stdin: '6869',
      bytes: [BEGIN_KEEP, PARAMS_AB, PARAMS_END, '01 05 0001 0002 06 00  6869 000000000000', STDIN_END],
    },
    {
      name: 'two pairs filling exactly 8 bytes (no padding)',
      keepConn: true,
      params: [['AB', 'c'], ['D', '']],
      stdin: undefined,
      bytes: [BEGIN_KEEP, '01 04 0001 0008 00 00  02 01 4142 63  01 00 44', PARAMS_END],
    },
  ] as const;
  for (const { name, keepConn, params, stdin, bytes } of cases) {
    test(name, () => {
      const head = encodeRequestHead(1, Role.Responder, keepConn, measureParams(params), stdin === undefined ? undefined : hex(stdin));
      assertBytes(head, hex(bytes.join('')));
    });
  }

  test('params over 65535 bytes straddle two records, the pair split between them', () => {
    // BIG=<70000 bytes>: name length 03, value length 80011170 (70000 with the high bit), "BIG".
    const value = pattern(70000);
    const stream = Buffer.concat([hex('03 80011170 424947'), value]);
    assert.equal(stream.length, 70008);
    const head = encodeRequestHead(1, Role.Responder, true, measureParams([['BIG', value]]));
    const expected = Buffer.concat([
      hex(BEGIN_KEEP),
      hex('01 04 0001 ffff 01 00'),
      stream.subarray(0, 65535),
      hex('00'),
      hex('01 04 0001 1179 07 00'), // 70008 - 65535 = 4473 = 0x1179, padded by 7
      stream.subarray(65535),
      Buffer.alloc(7),
      hex(PARAMS_END),
    ]);
    assertBytes(head, expected);
  });

  test('params over 65535 bytes with an inline stdin body', () => {
    const value = pattern(70000);
    const stdin = pattern(66000);
    const head = encodeRequestHead(3, Role.Responder, false, measureParams([['BIG', value]]), stdin);
    const expected = Buffer.concat([
      encodeBeginRequest(3, Role.Responder, false),
      encodeStream(RecordType.Params, 3, encodeParams([['BIG', value]]), true),
      hex('01 05 0003 ffff 01 00'),
      stdin.subarray(0, 65535),
      hex('00'),
      hex('01 05 0003 01d1 07 00'),
      stdin.subarray(65535),
      Buffer.alloc(7),
      hex('01 05 0003 0000 00 00'),
    ]);
    assertBytes(head, expected);
  });

  // Both branches (pairs written in place into one record, and framed through a copy) agree with
  // the general encoders at and around the 65535-byte boundary.
  const boundaryValueBytes = [65535 - 10, 65535 - 9, 65535 - 8, 65535 - 7, 65535 - 6];
  for (const valueBytes of boundaryValueBytes) {
    const pairs = [['NAME', 'x'.repeat(valueBytes)]] as const; // 1 + 4 + 4 prefix/name bytes
    test(`a params stream of ${valueBytes + 9} bytes matches encodeStream`, () => {
      const stdin = pattern(9);
      const head = encodeRequestHead(0x0102, Role.Authorizer, true, measureParams(pairs), stdin);
      const expected = Buffer.concat([
        encodeBeginRequest(0x0102, Role.Authorizer, true),
        encodeStream(RecordType.Params, 0x0102, encodeParams(pairs), true),
        encodeStream(RecordType.Stdin, 0x0102, stdin, true),
      ]);
      assertBytes(head, expected);
    });
  }
});
