// Tests for ClientAllowList: which peer addresses a TCP listener accepts, and which entries it refuses.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientAllowList } from './allow-list.js';

describe('ClientAllowList.allows', () => {
  const cases = [
    { name: 'one IPv4 address', entries: ['127.0.0.1'], allowed: ['127.0.0.1', '::ffff:127.0.0.1', '::FFFF:127.0.0.1', '::ffff:7f00:1'], refused: ['127.0.0.2', '10.0.0.1', '::1'] },
    { name: 'an IPv4 /8', entries: ['10.0.0.0/8'], allowed: ['10.0.0.0', '10.255.255.255', '::ffff:10.1.2.3'], refused: ['11.0.0.0', '9.255.255.255', '::ffff:11.0.0.1'] },
    { name: 'an IPv4 /32', entries: ['192.168.1.1/32'], allowed: ['192.168.1.1'], refused: ['192.168.1.2'] },
    { name: 'IPv4 /0 allows every IPv4 address', entries: ['0.0.0.0/0'], allowed: ['1.2.3.4', '255.255.255.255', '::ffff:8.8.8.8'], refused: ['::1', '2001:db8::1'] },
    { name: 'IPv6 loopback', entries: ['::1'], allowed: ['::1', '0:0:0:0:0:0:0:1'], refused: ['::2', '127.0.0.1'] },
    { name: 'an IPv6 /32', entries: ['2001:db8::/32'], allowed: ['2001:db8::1', '2001:db8:ffff::1'], refused: ['2001:db9::1', '::1'] },
    { name: 'an IPv4-mapped IPv6 entry matches both spellings', entries: ['::ffff:127.0.0.1'], allowed: ['::ffff:127.0.0.1', '127.0.0.1'], refused: ['127.0.0.2', '::1'] },
    { name: 'entries are trimmed', entries: [' 127.0.0.1 ', '\t10.0.0.0/8\n'], allowed: ['127.0.0.1', '10.9.9.9'], refused: ['192.168.0.1'] },
    { name: 'several entries of both families', entries: ['127.0.0.1', '::1', '172.16.0.0/12'], allowed: ['127.0.0.1', '::1', '172.31.255.255'], refused: ['172.32.0.0', '::2'] },
    { name: 'an empty list allows nobody', entries: [], allowed: [], refused: ['127.0.0.1', '::1'] },
  ];
  for (const { name, entries, allowed, refused } of cases) {
    test(name, () => {
      const list = new ClientAllowList(entries);
      assert.deepEqual(list.entries, entries);
      for (const address of allowed) assert.equal(list.allows(address), true, `${address} is allowed`);
      for (const address of refused) assert.equal(list.allows(address), false, `${address} is refused`);
    });
  }

  test('what is not an IP address is never allowed', () => {
    const list = new ClientAllowList(['0.0.0.0/0', '::/0']);
    for (const address of ['', 'localhost', '127.0.0.1:9000', '::ffff:999.0.0.1', 'undefined']) {
      assert.equal(list.allows(address), false, JSON.stringify(address));
    }
  });
});

describe('ClientAllowList refuses bad entries with a TypeError naming them', () => {
  const cases = [
    { entry: '', message: /allowed client "" is not an IP address or CIDR range/ },
    { entry: 'localhost', message: /allowed client "localhost" is not an IP address or CIDR range/ },
    { entry: '256.0.0.1', message: /"256.0.0.1" is not an IP address/ },
    { entry: '10.0.0', message: /"10.0.0" is not an IP address/ },
    { entry: '/8', message: /"\/8" is not an IP address/ },
    { entry: '10.0.0.0/8/9', message: /"10.0.0.0\/8\/9" is not an IP address or CIDR range/ },
    { entry: '10.0.0.0/33', message: /"10.0.0.0\/33" has a prefix length outside 0-32/ },
    { entry: '::/129', message: /"::\/129" has a prefix length outside 0-128/ },
    // An empty prefix must not read as /0 (which would allow every address).
    { entry: '10.0.0.0/', message: /"10.0.0.0\/" has a prefix length outside 0-32/ },
    // Number('-0') is -0, which passed a range check and then aborted the process in BlockList.addSubnet.
    { entry: '10.0.0.0/-0', message: /"10.0.0.0\/-0" has a prefix length outside 0-32/ },
    { entry: '10.0.0.0/-1', message: /prefix length outside 0-32/ },
    { entry: '10.0.0.0/8.0', message: /prefix length outside 0-32/ },
    { entry: '10.0.0.0/0x8', message: /prefix length outside 0-32/ },
    { entry: '10.0.0.0/ 8', message: /prefix length outside 0-32/ },
    { entry: '10.0.0.0/1e1', message: /prefix length outside 0-32/ },
  ];
  for (const { entry, message } of cases) {
    test(JSON.stringify(entry), () => {
      assert.throws(() => new ClientAllowList(['127.0.0.1', entry]), (error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, message);
        return true;
      });
    });
  }
});
