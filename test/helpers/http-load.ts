// HTTP load for the php-fpm tests: keep-alive clients that loop requests until told to stop, every
// answer recorded (status, latency, body; a transport error as status 0), percentiles, and which
// process a PHP pid belongs to.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { TestContext } from 'node:test';

export interface Sent {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Milliseconds from sending to the end of the body. */
  ms: number;
  /** When the answer ended (Date.now()). */
  at: number;
  body: string;
  /** Why there is no answer (status 0). */
  error?: string;
}

export interface LoadRequest {
  method?: string;
  path: string;
  body?: string | Buffer;
  headers?: http.OutgoingHttpHeaders;
}

/** One request on `agent` (kept-alive connections); never rejects. */
export function send(port: number, spec: LoadRequest, agent: http.Agent | false = false, timeoutMs = 15_000): Promise<Sent> {
  const started = Date.now();
  return new Promise((resolve) => {
    const headers: http.OutgoingHttpHeaders = { ...spec.headers };
    if (spec.body !== undefined) headers['content-length'] = Buffer.byteLength(spec.body);
    const req = http.request({ host: '127.0.0.1', port, method: spec.method ?? 'GET', path: spec.path, headers, agent }, (response) => {
      const parts: Buffer[] = [];
      response.on('data', (chunk: Buffer) => parts.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, ms: Date.now() - started, at: Date.now(), body: Buffer.concat(parts).toString('utf8') }));
      response.on('error', (error) => resolve({ status: 0, headers: {}, ms: Date.now() - started, at: Date.now(), body: '', error: error.message }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) => resolve({ status: 0, headers: {}, ms: Date.now() - started, at: Date.now(), body: '', error: error.message }));
    req.end(spec.body);
  });
}

export interface LoadOptions {
  port: number;
  clients: number;
  /** The n-th request of client c. */
  request: (client: number, n: number) => LoadRequest;
  /** Checked before each request: true ends that client's loop. */
  done: () => boolean;
}

/** `clients` concurrent keep-alive clients, each with its own connection, looping until done(). */
export async function runLoad(options: LoadOptions): Promise<Sent[]> {
  const results: Sent[] = [];
  const agents = Array.from({ length: options.clients }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  await Promise.all(
    agents.map(async (agent, client) => {
      for (let n = 0; !options.done(); n++) results.push(await send(options.port, options.request(client, n), agent));
    }),
  );
  for (const agent of agents) agent.destroy();
  return results;
}

/** The p-th percentile (0-100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The parent pid of a process (its php-fpm master, for a child), or 0 when it is gone. */
export function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/**
 * Connections waiting in the kernel's accept queue of a TCP listening socket on `port` (127.0.0.1),
 * not yet taken by the server: /proc/net/tcp's rx_queue of a LISTEN socket.
 */
export function acceptQueue(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === `0100007F:${hexPort}` && fields[3] === '0A') return parseInt(fields[4]!.split(':')[1]!, 16);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** How many statuses of each kind: { 200: 312, 502: 2 }. */
export function countStatuses(results: readonly Sent[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}

/** What everyone else sees meanwhile: small requests on `clients` kept-alive connections until the returned function is called. */
export function sideStream(port: number, path: string, clients = 2): () => Promise<Sent[]> {
  let stop = false;
  const results = runLoad({ port, clients, done: () => stop, request: () => ({ path }) });
  return () => {
    stop = true;
    return results;
  };
}

/**
 * Checks and reports a side stream: every request answered 200, p90 under `p90Ms`. p90 rather than
 * p99: a starved pool or a blocked event loop slows nearly every request, a busy machine a few.
 */
export function checkSide(t: TestContext, label: string, results: Sent[], p90Ms = 300): void {
  const ms = results.map((r) => r.ms);
  const failed = results.filter((r) => r.status !== 200);
  t.diagnostic(`${label}: side stream ${results.length} requests, ${failed.length} failed, p50 ${percentile(ms, 50)} ms, p90 ${percentile(ms, 90)} ms, p99 ${percentile(ms, 99)} ms, max ${Math.max(...ms)} ms`);
  assert.ok(results.length >= 5, `${label}: the side stream ran (${results.length} requests)`);
  assert.deepEqual(countStatuses(results), { 200: results.length }, `${label}: every side request answered 200: ${JSON.stringify(failed.slice(0, 3))}`);
  assert.ok(percentile(ms, 90) < p90Ms, `${label}: side stream p90 ${percentile(ms, 90)} ms is under ${p90Ms} ms`);
}

/** The error code of a JSON error page, or the first bytes of whatever else came. */
export function errorCode(reply: Sent): string {
  try {
    return (JSON.parse(reply.body) as { error?: { code?: string } }).error?.code ?? reply.body.slice(0, 120);
  } catch {
    return reply.error ?? reply.body.slice(0, 120);
  }
}
