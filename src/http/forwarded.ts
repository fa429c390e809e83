// Who the client is behind a proxy TQServer trusts (server.trusted_proxies; nginx's real_ip module
// with real_ip_recursive on, Caddy's trusted_proxies). A request from a trusted address may say,
// in X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Port, whom and how it forwards; from any
// other address those headers change nothing (PHP still sees them as HTTP_X_FORWARDED_*). Pure.

import { isIP } from 'node:net';
import { ClientAllowList } from '../fastcgi/allow-list.js';

/** `private_ranges` in the list stands for these: loopback and the private and unique-local ranges. */
export const PRIVATE_RANGES: readonly string[] = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '::1', 'fc00::/7'];

/** The list as written, with `private_ranges` replaced by the ranges it stands for. */
export function expandTrustedProxies(entries: readonly string[]): string[] {
  return entries.flatMap((entry) => (entry.trim() === 'private_ranges' ? PRIVATE_RANGES : [entry]));
}

/** What a trusted proxy said about the client. */
export interface ForwardedClient {
  /** The client's address: the first untrusted one from the right of X-Forwarded-For. */
  address: string;
  /** From X-Forwarded-Proto (https or http); null when it did not say. */
  tls: boolean | null;
  /** From X-Forwarded-Port, else the scheme's port when X-Forwarded-Proto said; null otherwise. */
  port: number | null;
}

/** Request headers by lower-case name, as node:http (or the fast path) gives them: repeated lines joined with ", ". */
export type ForwardedHeaders = Readonly<Record<string, string | string[] | undefined>>;

const IPV4_WITH_PORT = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/;
const BRACKETED_IPV6 = /^\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?$/;

/** An X-Forwarded-For entry's address ("1.2.3.4", "1.2.3.4:5678", "::1", "[::1]:80"), or null. */
export function entryAddress(entry: string): string | null {
  const text = entry.trim();
  if (isIP(text) !== 0) return text;
  const v4 = IPV4_WITH_PORT.exec(text);
  if (v4 && isIP(v4[1]!) === 4) return v4[1]!;
  const v6 = BRACKETED_IPV6.exec(text);
  if (v6 && isIP(v6[1]!) === 6) return v6[1]!;
  return null;
}

/** The last of a header's comma-separated values: the one the nearest proxy added. */
function lastValue(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : value;
  const at = text.lastIndexOf(',');
  const last = (at < 0 ? text : text.slice(at + 1)).trim();
  return last === '' ? null : last;
}

export class TrustedProxies {
  readonly #list: ClientAllowList;

  /** Entries: addresses, CIDR ranges or `private_ranges`; anything else throws (config checks first). */
  constructor(entries: readonly string[]) {
    try {
      this.#list = new ClientAllowList(expandTrustedProxies(entries));
    } catch (error) {
      // Said in this key's words: the allow list speaks of "allowed clients".
      throw new TypeError((error as Error).message.replace(/^allowed client/, 'trusted proxy').replace('is not an IP address or CIDR range', 'is not an IP address, a CIDR range or private_ranges'));
    }
  }

  trusts(address: string): boolean {
    return this.#list.allows(address);
  }

  /**
   * The client behind `peer`, or null when `peer` is not trusted or forwarded nothing usable.
   * X-Forwarded-For is read from the right, past every trusted address, to the first one that is
   * not (a client can put anything at the left end; only what trusted proxies appended counts). An
   * entry that is not an address ends the walk and the header is not used.
   */
  clientOf(peer: string, headers: ForwardedHeaders): ForwardedClient | null {
    if (!this.#list.allows(peer)) return null;
    let address: string | null = null;
    const forwardedFor = headers['x-forwarded-for'];
    if (forwardedFor !== undefined) {
      const entries = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
      for (let i = entries.length - 1; i >= 0; i--) {
        const entry = entryAddress(entries[i]!);
        if (entry === null) {
          address = null;
          break;
        }
        address = entry;
        if (!this.#list.allows(entry)) break;
      }
    }
    const proto = lastValue(headers['x-forwarded-proto'])?.toLowerCase();
    const tls = proto === 'https' ? true : proto === 'http' ? false : null;
    const portText = lastValue(headers['x-forwarded-port']);
    const forwardedPort = portText !== null && /^\d{1,5}$/.test(portText) && Number(portText) >= 1 && Number(portText) <= 65535 ? Number(portText) : null;
    const port = forwardedPort ?? (tls === null ? null : tls ? 443 : 80);
    if (address === null && tls === null && port === null) return null;
    return { address: address ?? peer, tls, port };
  }
}
