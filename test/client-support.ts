// Shared by the FastCGI client tests against real peers: a php-fpm starter that can restart at the
// same address, CGI params for the PHP fixtures, response parsing, waiting for a state by polling,
// and a measure of live Buffer memory.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Address } from '../src/fastcgi/address.js';
import type { ParamPairs } from '../src/fastcgi/protocol.js';
import { PHP_FIXTURES, findBinary, freePort, isRoot, parseCgiResponse, spawnPeer, tempDir, waitForListening, type Peer } from './helpers/peers.js';

export interface FpmOptions {
  transport?: 'tcp' | 'unix';
  /** Listen here instead of a new address (to restart php-fpm where clients already connect). */
  address?: Address;
  /** Pool directives, e.g. { 'pm.max_children': '4' }. */
  pool?: Record<string, string>;
}

/**
 * Starts php-fpm in the foreground from a generated config and waits for "ready to handle
 * connections", like helpers/peers.ts's startPhpFpm, and can listen at a given address so a test can
 * restart php-fpm where its clients already connect. php-fpm cannot open /proc/self/fd/2 when stderr
 * is a socket, as Node's piped stdio is (ENXIO, "FPM initialization failed"): it logs to a file, and
 * -O copies every line to stderr, where waitForOutput sees it.
 */
export async function startFpm(options: FpmOptions = {}): Promise<Peer> {
  const binary = findBinary(['php-fpm', /^php-fpm\d+(\.\d+)?$/]);
  const dir = await tempDir('tqserver-client-fpm-');
  const address: Address =
    options.address ?? (options.transport === 'unix' ? { path: join(dir.path, 'php-fpm.sock') } : { host: '127.0.0.1', port: await freePort() });
  const listen = 'path' in address ? address.path : `${address.host}:${address.port}`;
  const pool: Record<string, string> = {
    listen,
    pm: 'static',
    'pm.max_children': '2',
    catch_workers_output: 'yes',
    clear_env: 'no',
    ...options.pool,
  };
  if (isRoot) {
    pool.user = 'root';
    pool.group = 'root';
  }
  const config = [
    '[global]',
    `pid = ${join(dir.path, 'php-fpm.pid')}`,
    `error_log = ${join(dir.path, 'php-fpm.log')}`,
    'log_level = notice',
    'daemonize = no',
    '',
    '[test]',
    ...Object.entries(pool).map(([key, value]) => `${key} = ${value}`),
    '',
  ].join('\n');
  const file = join(dir.path, 'php-fpm.conf');
  await writeFile(file, config, { mode: 0o600 });
  const peer = spawnPeer(binary, ['-F', '-O', '-y', file, ...(isRoot ? ['-R'] : [])], { address, stopSignal: 'SIGQUIT', cleanup: dir.cleanup });
  try {
    await peer.waitForOutput('ready to handle connections');
    await waitForListening(address, peer.process);
  } catch (error) {
    await peer.stop('SIGKILL');
    throw error;
  }
  return peer;
}

/** CGI params that run one fixture script, as a web server would send them. */
export function phpParams(script: string, extra: Record<string, string> = {}): ParamPairs {
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_SOFTWARE: 'tqserver-test',
    REQUEST_METHOD: 'GET',
    QUERY_STRING: '',
    SCRIPT_FILENAME: join(PHP_FIXTURES, script),
    SCRIPT_NAME: `/${script}`,
    REQUEST_URI: `/${script}`,
    DOCUMENT_ROOT: PHP_FIXTURES,
    REMOTE_ADDR: '127.0.0.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REDIRECT_STATUS: '200',
    ...extra,
  };
}

/** Params for a POST of `bytes` bytes to a fixture (CONTENT_LENGTH is required by php-fpm). */
export function postParams(script: string, bytes: number, extra: Record<string, string> = {}): ParamPairs {
  return phpParams(script, { REQUEST_METHOD: 'POST', CONTENT_TYPE: 'application/octet-stream', CONTENT_LENGTH: String(bytes), ...extra });
}

/** The CGI response split into its head (lower-case names) and body. */
export function cgi(stdout: string | Buffer): { headers: Map<string, string>; body: string } {
  const { headers, body } = parseCgiResponse(Buffer.isBuffer(stdout) ? stdout : Buffer.from(stdout, 'utf8'));
  return { headers, body: body.toString('utf8') };
}

/** Resolves once `predicate` holds, checking every few milliseconds; rejects after `timeoutMs`. */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Resolves with the error a promise rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`rejected with a non-Error: ${String(error)}`);
  }
  throw new Error('expected a rejection, but the promise resolved');
}

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/**
 * Bytes held in Buffers and ArrayBuffers that are still reachable: a full garbage collection first,
 * so garbage waiting to be collected does not count as memory a stream holds on to.
 */
export function liveBufferBytes(): number {
  collectGarbage();
  return process.memoryUsage().arrayBuffers;
}

/**
 * Resolves after the client pool has put connections freed by the requests just ended back into
 * its idle list (it does so once the socket read that carried END_REQUEST has been handled).
 */
export function releasesSettled(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}
