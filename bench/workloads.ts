// What the side-by-side sections ask every contender for: the URL, method, body and connection count
// of each workload, which contenders run it, and how one response is checked before loading.

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { CONTENDER_IDS, type ContenderId } from './contenders.js';
import { DOCUMENT_ROOT } from './lib/php-pool.js';

export const WORKLOAD_IDS = ['hello16', 'hello64', 'page100k', 'phpinfo', 'stream50m', 'upload10m', 'static', 'app'] as const;
export type WorkloadId = (typeof WORKLOAD_IDS)[number];

const MiB = 1024 * 1024;
export const STREAM_BYTES = 50 * MiB;
export const UPLOAD_BYTES = 10 * MiB;
export const PAGE_BYTES = 102_400;

export interface Workload {
  readonly id: WorkloadId;
  readonly label: string;
  /** For the chart's axis. */
  readonly short: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** Request body size for POST (wrk sends it with a Lua script). */
  readonly bodyBytes: number;
  readonly connections: number;
  /**
   * Length of one measuring round (wrk -d), in a full run and with --quick: long enough for a few
   * hundred requests even where each moves 50 MiB, short enough that the whole bench fits in minutes.
   */
  readonly durationSec: { readonly full: number; readonly quick: number };
  /** Bytes per request that make the MB/s figure (the streamed response, the upload), or null. */
  readonly payloadBytes: number | null;
  readonly contenders: readonly ContenderId[];
  /** Checks one response: null when right, otherwise what is wrong. */
  check(status: number, body: Buffer): string | null;
}

/** The PHP comparisons beyond hello world: both TQServer backends against the php-fpm gateways. */
const PHP_FPM_SET: readonly ContenderId[] = ['tq-fpm', 'tq-cgi', 'nginx-fpm-ka', 'nginx-fpm', 'caddy-fpm'];
/** A static file involves no PHP: one contender per gateway. */
const STATIC_SET: readonly ContenderId[] = ['tq-fpm', 'nginx-fpm-ka', 'caddy-fpm'];

function expect(status: number, body: Buffer, wanted: { bytes?: number; includes?: string; equals?: string }): string | null {
  if (status !== 200) return `status ${status}, body ${JSON.stringify(body.subarray(0, 300).toString('latin1'))}`;
  if (wanted.bytes !== undefined && body.length !== wanted.bytes) return `${body.length} bytes, expected ${wanted.bytes}`;
  if (wanted.equals !== undefined && body.toString('latin1') !== wanted.equals) return `body ${JSON.stringify(body.subarray(0, 300).toString('latin1'))}, expected ${JSON.stringify(wanted.equals)}`;
  if (wanted.includes !== undefined && !body.includes(wanted.includes)) return `body without ${JSON.stringify(wanted.includes)}: ${JSON.stringify(body.subarray(0, 300).toString('latin1'))}`;
  return null;
}

const hello = (connections: number): Workload => ({
  id: connections === 16 ? 'hello16' : 'hello64',
  label: `hello world, ${connections} connections`,
  short: `hello ×${connections}`,
  method: 'GET',
  path: '/hello.php',
  bodyBytes: 0,
  connections,
  durationSec: { full: 3, quick: 1 },
  payloadBytes: null,
  contenders: CONTENDER_IDS,
  check: (status, body) => expect(status, body, { equals: 'Hello, world!\n' }),
});

let staticFile: Buffer | null = null;

export const WORKLOADS: Readonly<Record<WorkloadId, Workload>> = {
  hello16: hello(16),
  hello64: hello(64),
  page100k: {
    id: 'page100k',
    label: '100 KB HTML page',
    short: '100 KB page',
    method: 'GET',
    path: '/page100k.php',
    bodyBytes: 0,
    connections: 16,
    durationSec: { full: 2, quick: 1 },
    payloadBytes: null,
    contenders: PHP_FPM_SET,
    check: (status, body) => expect(status, body, { bytes: PAGE_BYTES, includes: '</html>' }),
  },
  phpinfo: {
    id: 'phpinfo',
    label: 'phpinfo()',
    short: 'phpinfo()',
    method: 'GET',
    path: '/info.php',
    bodyBytes: 0,
    connections: 16,
    durationSec: { full: 2, quick: 1 },
    payloadBytes: null,
    contenders: PHP_FPM_SET,
    check: (status, body) => expect(status, body, { includes: 'PHP Version' }),
  },
  stream50m: {
    id: 'stream50m',
    label: '50 MB streamed response',
    short: '50 MB stream',
    method: 'GET',
    path: '/stream50m.php',
    bodyBytes: 0,
    connections: 4,
    durationSec: { full: 4, quick: 2 },
    payloadBytes: STREAM_BYTES,
    contenders: PHP_FPM_SET,
    check: (status, body) => expect(status, body, { bytes: STREAM_BYTES }),
  },
  upload10m: {
    id: 'upload10m',
    label: '10 MB upload read by PHP',
    short: '10 MB upload',
    method: 'POST',
    path: '/upload.php',
    bodyBytes: UPLOAD_BYTES,
    connections: 4,
    durationSec: { full: 4, quick: 2 },
    payloadBytes: UPLOAD_BYTES,
    contenders: PHP_FPM_SET,
    check: (status, body) => expect(status, body, { equals: `received ${UPLOAD_BYTES} bytes\n` }),
  },
  static: {
    id: 'static',
    label: 'static file (10 KiB CSS)',
    short: 'static file',
    method: 'GET',
    path: '/assets/style.css',
    bodyBytes: 0,
    connections: 16,
    durationSec: { full: 2, quick: 1 },
    payloadBytes: null,
    contenders: STATIC_SET,
    check: (status, body) => {
      staticFile ??= readFileSync(`${DOCUMENT_ROOT}/assets/style.css`);
      return expect(status, body, { bytes: staticFile.length }) ?? (body.equals(staticFile) ? null : 'body differs from the file');
    },
  },
  app: {
    id: 'app',
    label: 'front controller, pretty URL (/posts/42)',
    short: 'app route',
    method: 'GET',
    path: '/posts/42?sort=date',
    bodyBytes: 0,
    connections: 16,
    durationSec: { full: 2, quick: 1 },
    payloadBytes: null,
    contenders: PHP_FPM_SET,
    check: (status, body) => expect(status, body, { includes: '<h1>post 42</h1>' }),
  },
};

/** Sends the workload's request once and checks the answer: null when right, otherwise what is wrong. */
export function probe(baseUrl: string, workload: Workload, timeoutMs = 30_000): Promise<string | null> {
  return new Promise((resolve) => {
    const body = workload.bodyBytes > 0 ? Buffer.alloc(workload.bodyBytes, 'x') : null;
    const request = http.request(
      `${baseUrl}${workload.path}`,
      {
        method: workload.method,
        headers: body ? { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } : {},
        timeout: timeoutMs,
        agent: false,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve(workload.check(response.statusCode ?? 0, Buffer.concat(chunks))));
        response.on('error', (error) => resolve(`response failed: ${error.message}`));
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', (error) => resolve(`request failed: ${error.message}`));
    request.end(body ?? undefined);
  });
}
