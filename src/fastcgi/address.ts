// FastCGI endpoint addresses as operators write them ("127.0.0.1:9000", "[::1]:9000", "/run/php.sock").

import { isIPv6 } from 'node:net';

/** A TCP endpoint or a unix socket path. */
export type Address = { readonly host: string; readonly port: number } | { readonly path: string };

/**
 * Parses an address the way php-fpm's `listen` reads one: a path (absolute, or prefixed `unix:`)
 * is a unix socket; `host:port` or `[v6]:port` is TCP; a bare port means 127.0.0.1.
 */
export function parseAddress(text: string): Address {
  const value = text.trim();
  if (value.startsWith('unix:')) {
    if (value.length === 5) throw new TypeError(`no socket path after "unix:" in ${JSON.stringify(text)}`);
    return { path: value.slice(5) };
  }
  if (value.startsWith('/') || value.startsWith('./') || value.startsWith('../')) return { path: value };
  if (/^\d+$/.test(value)) return { host: '127.0.0.1', port: parsePort(value, text) };
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(value);
  if (v6) {
    if (!isIPv6(v6[1]!)) throw new TypeError(`${JSON.stringify(v6[1])} in brackets is not an IPv6 address in ${JSON.stringify(text)}`);
    return { host: v6[1]!, port: parsePort(v6[2]!, text) };
  }
  const colon = value.lastIndexOf(':');
  // A host never contains brackets or whitespace; "[]:9000" and "a b:9000" are typos, not hosts.
  if (colon > 0 && value.indexOf(':') === colon && !/[\s[\]]/.test(value.slice(0, colon))) {
    return { host: value.slice(0, colon), port: parsePort(value.slice(colon + 1), text) };
  }
  throw new TypeError(`not a FastCGI address: ${JSON.stringify(text)} (expected host:port, [ipv6]:port, a port, or a socket path)`);
}

function parsePort(digits: string, text: string): number {
  // Decimal digits only: Number() alone would also take " 90", "0x10", "1e3" and "90.0".
  if (!/^\d+$/.test(digits)) throw new TypeError(`port ${JSON.stringify(digits)} is not a decimal number in ${JSON.stringify(text)}`);
  const port = Number(digits);
  if (port < 1 || port > 65535) {
    throw new TypeError(`port ${port} out of range in ${JSON.stringify(text)} (expected 1-65535)`);
  }
  return port;
}

/** The address as text, for logs and status pages. */
export function formatAddress(address: Address): string {
  if ('path' in address) return `unix:${address.path}`;
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

export function toAddress(address: Address | string): Address {
  return typeof address === 'string' ? parseAddress(address) : address;
}
