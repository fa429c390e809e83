// Tests for the CGI response head: Status and Location rules, header lines kept apart and in order,
// malformed heads refused, and the incremental parser fed every split of the same output (the body
// after the head must come out byte for byte, and limits must not depend on the chunking).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { httpStatusFor } from '../errors.js';
import { CgiHeadError, CgiResponseParser, DEFAULT_MAX_HEAD_BYTES, parseHead, type CgiHead } from './response.js';

function latin1(bytes: number[]): string {
  return Buffer.from(bytes).toString('latin1');
}

/** Feeds chunks as stdout would arrive; returns the head and every body byte after it. */
function feed(chunks: readonly Buffer[], maxHeadBytes?: number): { head: CgiHead; body: Buffer } {
  const parser = new CgiResponseParser(maxHeadBytes);
  let head: CgiHead | null = null;
  const body: Buffer[] = [];
  for (const chunk of chunks) {
    if (head) {
      body.push(chunk);
      continue;
    }
    const result = parser.push(chunk);
    if (result) {
      head = result.head;
      body.push(result.body);
    }
  }
  parser.finish();
  assert.ok(head, 'the head was never completed');
  assert.deepEqual(parser.head, head);
  return { head, body: Buffer.concat(body) };
}

/** Every way to cut `data` in two, plus one byte at a time. */
function splits(data: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let at = 0; at <= data.length; at++) out.push([data.subarray(0, at), data.subarray(at)]);
  out.push([...data].map((byte) => Buffer.from([byte])));
  return out;
}

function headError(message: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof CgiHeadError, `expected a CgiHeadError, got ${String(error)}`);
    assert.match(error.message, message);
    return true;
  };
}

describe('parseHead', () => {
  const rows: Array<{ name: string; text: string; want: CgiHead }> = [
    { name: 'no Status is 200', text: 'Content-Type: text/html', want: { status: 200, reason: null, headers: [['Content-Type', 'text/html']] } },
    { name: 'Status with a reason', text: 'Status: 404 Not Found', want: { status: 404, reason: 'Not Found', headers: [] } },
    { name: 'Status with a custom reason', text: 'Status: 418 Gone Fishing Today', want: { status: 418, reason: 'Gone Fishing Today', headers: [] } },
    { name: 'Status without a reason', text: 'Status: 503', want: { status: 503, reason: null, headers: [] } },
    { name: 'Status with trailing spaces and no reason', text: 'Status: 204   ', want: { status: 204, reason: null, headers: [] } },
    { name: 'status in any case', text: 'STATUS: 201 Created', want: { status: 201, reason: 'Created', headers: [] } },
    { name: 'Location without Status is 302 (RFC 3875 6.2.3)', text: 'Location: /login', want: { status: 302, reason: null, headers: [['Location', '/login']] } },
    { name: 'Location with Status keeps the Status', text: 'Status: 201 Created\nLocation: /item/7', want: { status: 201, reason: 'Created', headers: [['Location', '/item/7']] } },
    { name: 'Location before Status keeps the Status', text: 'Location: /x\nStatus: 301', want: { status: 301, reason: null, headers: [['Location', '/x']] } },
    {
      name: 'repeated Set-Cookie are kept apart and in order',
      text: 'Set-Cookie: a=1\r\nContent-Type: text/plain\r\nSet-Cookie: b=2; Path=/\r\nset-cookie: c=3',
      want: { status: 200, reason: null, headers: [['Set-Cookie', 'a=1'], ['Content-Type', 'text/plain'], ['Set-Cookie', 'b=2; Path=/'], ['set-cookie', 'c=3']] },
    },
    { name: 'CRLF lines', text: 'A: 1\r\nB: 2\r', want: { status: 200, reason: null, headers: [['A', '1'], ['B', '2']] } },
    { name: 'no space after the colon', text: 'X-A:1', want: { status: 200, reason: null, headers: [['X-A', '1']] } },
    { name: 'an empty value', text: 'X-Empty:', want: { status: 200, reason: null, headers: [['X-Empty', '']] } },
    { name: 'a colon inside the value', text: 'Link: <http://a/b>; rel=x', want: { status: 200, reason: null, headers: [['Link', '<http://a/b>; rel=x']] } },
    { name: 'whitespace before the colon is removed (RFC 9112 5.1)', text: 'X-A : 1', want: { status: 200, reason: null, headers: [['X-A', '1']] } },
    { name: 'tabs around the value are optional whitespace', text: 'X-A:\t1\t', want: { status: 200, reason: null, headers: [['X-A', '1']] } },
    { name: 'an empty head', text: '', want: { status: 200, reason: null, headers: [] } },
    // Regression: String.trim() stripped NBSP, the 0xA0 byte that ends UTF-8 "à" (C3 A0).
    {
      name: 'non-ASCII value bytes are kept exactly, including a trailing 0xA0',
      text: `X-Title: ${latin1([0x76, 0x6f, 0x69, 0x6c, 0xc3, 0xa0])}\nX-B: ${latin1([0xa0, 0x41, 0xa0])}`,
      want: { status: 200, reason: null, headers: [['X-Title', latin1([0x76, 0x6f, 0x69, 0x6c, 0xc3, 0xa0])], ['X-B', latin1([0xa0, 0x41, 0xa0])]] },
    },
  ];
  for (const row of rows) test(row.name, () => assert.deepEqual(parseHead(row.text), row.want));

  const bad: Array<{ name: string; text: string; error: RegExp }> = [
    { name: 'a line without a colon', text: 'Content-Type text/html', error: /malformed header line "Content-Type text\/html"/ },
    { name: 'a line starting with a colon', text: ': value', error: /malformed header line/ },
    { name: 'a space inside the name', text: 'Content Type: x', error: /malformed header line/ },
    { name: 'an NBSP before the colon is not whitespace', text: `X-A${latin1([0xa0])}: 1`, error: /malformed header line/ },
    { name: 'a non-ASCII name', text: `X-${latin1([0xc3, 0xa9])}: 1`, error: /malformed header line/ },
    { name: 'an HTTP status line (NPH output)', text: 'HTTP/1.1 200 OK\nX: y', error: /malformed header line "HTTP\/1.1 200 OK"/ },
    { name: 'a folded line with a space (obs-fold, RFC 9112 5.2)', text: 'X-A: 1\n 2', error: /folded header line/ },
    { name: 'a folded line with a tab', text: 'X-A: 1\r\n\t2', error: /folded header line/ },
    { name: 'a CR inside a value', text: 'X-A: 1\r2', error: /X-A with a control character/ },
    { name: 'a NUL inside a value', text: 'X-A: 1\u00002', error: /control character/ },
    { name: 'another control character inside a value', text: 'X-A: 1\u00012', error: /control character/ },
    { name: 'DEL inside a value', text: 'X-A: 1\u007f', error: /control character/ },
    { name: 'Status not a number', text: 'Status: OK', error: /invalid Status header "OK"/ },
    { name: 'Status with two digits', text: 'Status: 20', error: /invalid Status header "20"/ },
    { name: 'Status with four digits', text: 'Status: 2000', error: /invalid Status header "2000"/ },
    { name: 'Status glued to its reason', text: 'Status: 404Not Found', error: /invalid Status header/ },
    { name: 'Status empty', text: 'Status:', error: /invalid Status header ""/ },
    { name: 'Status negative', text: 'Status: -200', error: /invalid Status header/ },
    { name: 'Status below 100', text: 'Status: 099', error: /Status 99, outside 200-599/ },
    { name: 'Status above 599', text: 'Status: 600', error: /Status 600, outside 200-599/ },
    // A 1xx as the only response leaves the client waiting for the final one (or switches protocols).
    { name: 'Status 100 is interim, never a CGI response', text: 'Status: 100 Continue', error: /Status 100, outside 200-599/ },
    { name: 'Status 101 cannot switch protocols from PHP', text: 'Status: 101 Switching Protocols', error: /Status 101, outside 200-599/ },
  ];
  for (const row of bad) test(`refused: ${row.name}`, () => assert.throws(() => parseHead(row.text), headError(row.error)));
});

describe('CgiResponseParser', () => {
  const outputs: Array<{ name: string; data: Buffer; status: number; headers: Array<[string, string]>; body: Buffer }> = [
    {
      name: 'CRLF head and a body',
      data: Buffer.from('Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot here'),
      status: 404,
      headers: [['Content-Type', 'text/plain']],
      body: Buffer.from('not here'),
    },
    {
      name: 'LF-only head and a body',
      data: Buffer.from('Content-Type: text/html\nX-A: 1\n\n<p>hi</p>\n'),
      status: 200,
      headers: [['Content-Type', 'text/html'], ['X-A', '1']],
      body: Buffer.from('<p>hi</p>\n'),
    },
    {
      name: 'a body that holds blank lines and another head',
      data: Buffer.from('X-A: 1\r\n\r\n\r\n\r\nStatus: 500\r\n\r\n\n\n'),
      status: 200,
      headers: [['X-A', '1']],
      body: Buffer.from('\r\n\r\nStatus: 500\r\n\r\n\n\n'),
    },
    {
      name: 'mixed endings: LF lines ended by CRLF',
      data: Buffer.from('X-A: 1\n\r\nbody'),
      status: 200,
      headers: [['X-A', '1']],
      body: Buffer.from('body'),
    },
    { name: 'an empty head (CRLF) then a body', data: Buffer.from('\r\nbody'), status: 200, headers: [], body: Buffer.from('body') },
    { name: 'an empty head (LF) then a body', data: Buffer.from('\nbody'), status: 200, headers: [], body: Buffer.from('body') },
    { name: 'a head and no body', data: Buffer.from('Status: 204\r\n\r\n'), status: 204, headers: [], body: Buffer.alloc(0) },
    {
      name: 'binary body bytes after the head',
      data: Buffer.concat([Buffer.from('Content-Type: image/png\n\n'), Buffer.from([0x89, 0x50, 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0xff])]),
      status: 200,
      headers: [['Content-Type', 'image/png']],
      body: Buffer.from([0x89, 0x50, 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0xff]),
    },
    {
      name: 'repeated Set-Cookie and a Location',
      data: Buffer.from('Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nLocation: /next\r\n\r\n'),
      status: 302,
      headers: [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['Location', '/next']],
      body: Buffer.alloc(0),
    },
  ];
  for (const output of outputs) {
    test(`${output.name}, split at every byte boundary`, () => {
      for (const chunks of splits(output.data)) {
        const { head, body } = feed(chunks);
        const where = `chunks ${chunks.map((c) => c.length).join('+')}`;
        assert.equal(head.status, output.status, where);
        assert.deepEqual(head.headers, output.headers, where);
        assert.equal(body.toString('hex'), output.body.toString('hex'), where);
      }
    });
  }

  test('non-ASCII header bytes come out as latin1, byte for byte', () => {
    const value = [0x64, 0xc3, 0xa9, 0x6a, 0xc3, 0xa0];
    const { head } = feed([Buffer.concat([Buffer.from('X-Title: '), Buffer.from(value), Buffer.from('\r\n\r\n')])]);
    assert.equal(Buffer.from(head.headers[0]![1], 'latin1').toString('hex'), Buffer.from(value).toString('hex'));
  });

  test('the body returned with the head is only what followed it in that chunk', () => {
    const parser = new CgiResponseParser();
    assert.equal(parser.push(Buffer.from('X-A: 1\r\n')), null);
    assert.equal(parser.pendingBytes, 8);
    const result = parser.push(Buffer.from('\r\nfirst'));
    assert.ok(result);
    assert.equal(result.body.toString(), 'first');
    assert.equal(parser.pendingBytes, 0);
  });

  test('push after the head is a caller bug', () => {
    const parser = new CgiResponseParser();
    assert.ok(parser.push(Buffer.from('\n')));
    assert.throws(() => parser.push(Buffer.from('more')), /already parsed/);
  });

  test('finish() with no output at all', () => {
    const parser = new CgiResponseParser();
    assert.throws(() => parser.finish(), headError(/^PHP sent no output at all$/));
  });

  test('finish() with only empty chunks is no output', () => {
    const parser = new CgiResponseParser();
    assert.equal(parser.push(Buffer.alloc(0)), null);
    assert.throws(() => parser.finish(), headError(/no output at all/));
  });

  test('finish() with a truncated head', () => {
    const parser = new CgiResponseParser();
    assert.equal(parser.push(Buffer.from('Content-Type: text/html\r\n')), null);
    assert.throws(() => parser.finish(), headError(/ended inside its response head \(25 bytes, no empty line\)/));
  });

  test('finish() after the head is fine', () => {
    const parser = new CgiResponseParser();
    assert.ok(parser.push(Buffer.from('X: 1\n\n')));
    assert.doesNotThrow(() => parser.finish());
  });

  test('a malformed head is refused whatever the chunking', () => {
    for (const chunks of splits(Buffer.from('Bad Line\r\n\r\nbody'))) {
      const parser = new CgiResponseParser();
      assert.throws(() => {
        for (const chunk of chunks) if (parser.push(chunk)) break;
      }, headError(/malformed header line "Bad Line"/));
    }
  });

  test('a bad head is a 502 with the stable code CGI_BAD_HEAD', () => {
    const error = new CgiHeadError('PHP sent no output at all');
    assert.equal(error.code, 'CGI_BAD_HEAD');
    assert.equal(error.name, 'CgiHeadError');
    assert.equal(httpStatusFor(error), 502);
  });

  test('the default head limit is 1 MiB', () => {
    assert.equal(DEFAULT_MAX_HEAD_BYTES, 1024 * 1024);
  });

  describe('head size limit', () => {
    const limit = 32;
    /** A CRLF head whose text (everything before the terminator's first LF) is `size` bytes. */
    function headOf(size: number, crlf: boolean): Buffer {
      const ending = crlf ? '\r\n\r\n' : '\n\n';
      // The head text is the line plus the CR of the first CRLF.
      const line = `X: ${'a'.repeat(size - 3 - (crlf ? 1 : 0))}`;
      return Buffer.from(`${line}${ending}body`);
    }
    for (const crlf of [true, false]) {
      const style = crlf ? 'CRLF' : 'LF';
      test(`a ${style} head of exactly the limit is accepted at every split`, () => {
        for (const chunks of splits(headOf(limit, crlf))) {
          const { body } = feed(chunks, limit);
          assert.equal(body.toString(), 'body');
        }
      });
      test(`a ${style} head one byte over the limit is refused at every split`, () => {
        for (const chunks of splits(headOf(limit + 1, crlf))) {
          const parser = new CgiResponseParser(limit);
          assert.throws(() => {
            for (const chunk of chunks) if (parser.push(chunk)) break;
          }, headError(/response head|without ending its response head/));
        }
      });
    }

    test('output without a head end is refused once it is certainly over the limit', () => {
      const parser = new CgiResponseParser(limit);
      assert.equal(parser.push(Buffer.alloc(limit + 2, 0x61)), null);
      assert.throws(() => parser.push(Buffer.from('a')), headError(/more than 32 bytes without ending its response head/));
    });
  });
});
