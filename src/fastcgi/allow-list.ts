// Which client addresses may talk to a TCP listener (php-fpm's listen.allowed_clients, with CIDR ranges).

import net from 'node:net';

export class ClientAllowList {
  readonly #list = new net.BlockList();
  readonly entries: readonly string[];

  /** Entries are IPv4/IPv6 addresses or CIDR ranges ("10.0.0.0/8", "::1"); anything else throws. */
  constructor(entries: readonly string[]) {
    this.entries = entries;
    for (const entry of entries) {
      const parts = entry.trim().split('/');
      const ip = parts[0]!;
      const family = net.isIP(ip);
      if (family === 0 || parts.length > 2) {
        throw new TypeError(`allowed client ${JSON.stringify(entry)} is not an IP address or CIDR range`);
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      const prefixText = parts[1];
      if (prefixText === undefined) {
        this.#list.addAddress(ip, type);
        continue;
      }
      // Decimal digits only: Number('') is 0, which would allow every address ("10.0.0.0/" meaning
      // "/0"), and Number('-0') is -0, which makes BlockList.addSubnet abort the whole process.
      const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
      const max = family === 4 ? 32 : 128;
      if (prefix < 0 || prefix > max) {
        throw new TypeError(`allowed client ${JSON.stringify(entry)} has a prefix length outside 0-${max}`);
      }
      this.#list.addSubnet(ip, prefix, type);
    }
  }

  /** True if `address` (as a socket reports it, IPv4-mapped IPv6 included) is on the list. */
  allows(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return this.#list.check(mapped[1]!, 'ipv4');
    const family = net.isIP(address);
    if (family === 0) return false;
    return this.#list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}
