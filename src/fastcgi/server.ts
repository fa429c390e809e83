// A FastCGI responder (the application side, as php-fpm is to nginx): TCP and unix listeners,
// allowed clients, connection and request limits, graceful shutdown. Each accepted connection is a
// ServerConnection (server-connection.ts); the handler's request and response are in server-request.ts.

import { EventEmitter } from 'node:events';
import { chmod, lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { FastCGIAbortError, FastCGIUnavailableError } from '../errors.js';
import { definedOnly } from '../util.js';
import { formatAddress, toAddress, type Address } from './address.js';
import { ClientAllowList } from './allow-list.js';
import { DEFAULT_MAX_PARAMS_BYTES } from './params.js';
import { ServerConnection } from './server-connection.js';
import type { FastCGIServerRequest, FastCGIServerResponse } from './server-request.js';

export { FastCGIServerRequest, FastCGIServerResponse } from './server-request.js';

export interface ServerOptions {
  /** Connections served at once; more are closed on accept. Answered as FCGI_MAX_CONNS. Default 1024. */
  maxConns?: number;
  /** Requests served at once across connections; more get FCGI_OVERLOADED. Answered as FCGI_MAX_REQS. Default 1024. */
  maxReqs?: number;
  /** Accept several requests per connection (FCGI_MPXS_CONNS=1). Default false: a second gets FCGI_CANT_MPX_CONN. */
  multiplex?: boolean;
  /**
   * Client addresses (IPs or CIDR ranges) allowed on a TCP listener, like php-fpm's
   * listen.allowed_clients; 'any' allows all. Default loopback only: an open FastCGI port runs code.
   */
  allowedClients?: readonly string[] | 'any';
  /** Limit on one request's params (FCGI_PARAMS_TOO_LARGE, answered with a 431 response). Default 1 MiB. */
  maxParamsBytes?: number;
  /** Close a connection that carries no request for this long; 0 keeps it. Default 300000. */
  idleTimeoutMs?: number;
  /** File mode of a unix socket (php-fpm's listen.mode). Default 0o660. */
  socketMode?: number;
}

export type FastCGIHandler = (request: FastCGIServerRequest, response: FastCGIServerResponse) => void | Promise<void>;

const DEFAULTS = {
  maxConns: 1024,
  maxReqs: 1024,
  multiplex: false,
  allowedClients: ['127.0.0.0/8', '::1'] as readonly string[] | 'any',
  maxParamsBytes: DEFAULT_MAX_PARAMS_BYTES,
  idleTimeoutMs: 300_000,
  socketMode: 0o660,
} satisfies Required<ServerOptions>;

export class FastCGIServer extends EventEmitter {
  readonly handler: FastCGIHandler;
  readonly #options: Required<ServerOptions>;
  readonly #connections = new Set<ServerConnection>();
  readonly #allow: ClientAllowList | null;
  #server: net.Server | null = null;
  #address: Address | null = null;
  #activeRequests = 0;
  #closing = false;
  #idleWaiters: Array<() => void> = [];

  constructor(handler: FastCGIHandler, options: ServerOptions = {}) {
    super();
    this.handler = handler;
    this.#options = { ...DEFAULTS, ...definedOnly(options) };
    this.#allow = this.#options.allowedClients === 'any' ? null : new ClientAllowList(this.#options.allowedClients);
  }

  get activeRequests(): number {
    return this.#activeRequests;
  }

  get connections(): number {
    return this.#connections.size;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** The bound address (with the real port when listening on port 0). */
  get address(): Address | null {
    return this.#address;
  }

  /** Listens on a TCP address or a unix socket path; rejects with FCGI_LISTEN_FAILED. */
  async listen(address: Address | string): Promise<Address> {
    const target = toAddress(address);
    if ('path' in target) await removeStaleSocket(target.path);
    const server = net.createServer((socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) =>
        reject(new FastCGIUnavailableError('FCGI_LISTEN_FAILED', `cannot listen on ${formatAddress(target)}: ${error.message}`, { cause: error })),
      );
      if ('path' in target) server.listen({ path: target.path, backlog: 511 }, resolve);
      else server.listen({ host: target.host, port: target.port, backlog: 511 }, resolve);
    });
    server.on('error', (error) => this.emit('error', error));
    if ('path' in target) {
      await chmod(target.path, this.#options.socketMode);
      this.#address = target;
    } else {
      const bound = server.address() as net.AddressInfo;
      this.#address = { host: target.host, port: bound.port };
    }
    this.#server = server;
    return this.#address;
  }

  /**
   * Graceful shutdown: stop accepting, let requests in progress finish for up to `graceMs`, then
   * close every connection (and abort what is left). Resolves when the last connection is gone.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.#closing = true;
    const server = this.#server;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const connection of this.#connections) connection.closeWhenIdle();
    if (this.#connections.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      const expired = new Promise<'expired'>((resolve) => {
        timer = setTimeout(() => resolve('expired'), graceMs);
      });
      const outcome = await Promise.race([idle, expired]);
      clearTimeout(timer);
      if (outcome === 'expired') {
        for (const connection of this.#connections) {
          connection.destroy(new FastCGIAbortError(`server shutting down; request not finished within ${graceMs} ms`));
        }
        // A destroyed socket reports 'close' a tick later; the promise is that they are all gone.
        await idle;
      }
    }
    await closed;
  }

  // ---- called by ServerConnection ----

  /** @internal */
  requestStarted(): void {
    this.#activeRequests += 1;
  }

  /** @internal */
  requestFinished(): void {
    this.#activeRequests -= 1;
  }

  /** @internal */
  connectionClosed(connection: ServerConnection): void {
    this.#connections.delete(connection);
    if (this.#connections.size === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** @internal */
  reportConnectionError(connection: ServerConnection, error: unknown): void {
    this.emit('connectionError', error, { remoteAddress: connection.socket.remoteAddress });
  }

  #accept(socket: net.Socket): void {
    const remote = socket.remoteAddress;
    if (this.#allow && remote !== undefined && !this.#allow.allows(remote)) {
      this.emit('refused', { remoteAddress: remote, reason: 'not in allowedClients' });
      socket.destroy();
      return;
    }
    if (this.#closing || this.#connections.size >= this.#options.maxConns) {
      this.emit('refused', { remoteAddress: remote, reason: this.#closing ? 'shutting down' : `maxConns (${this.#options.maxConns}) reached` });
      socket.destroy();
      return;
    }
    this.#connections.add(new ServerConnection(this, socket, this.#options));
  }
}

/** A unix socket file left by a process that died is removed; one that someone listens on is not. */
async function removeStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => null);
  if (!stat) return;
  if (!stat.isSocket()) {
    throw new FastCGIUnavailableError('FCGI_LISTEN_FAILED', `cannot listen on unix:${path}: a file that is not a socket is in the way`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new FastCGIUnavailableError('FCGI_LISTEN_FAILED', `cannot listen on unix:${path}: another process is listening there`);
  await unlink(path);
}
