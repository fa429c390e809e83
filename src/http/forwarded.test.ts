import assert from 'node:assert/strict';
import { test } from 'node:test';
import { entryAddress, expandTrustedProxies, TrustedProxies, type ForwardedHeaders } from './forwarded.js';

test('X-Forwarded-For entries: addresses with or without a port; anything else is not one', () => {
  const cases: Array<[string, string | null]> = [
    ['203.0.113.7', '203.0.113.7'],
    [' 203.0.113.7 ', '203.0.113.7'],
    ['203.0.113.7:51234', '203.0.113.7'],
    ['2001:db8::1', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['unknown', null],
    ['', null],
    ['_hidden', null],
    ['example.com', null],
    ['256.1.1.1', null],
    ['1.2.3', null],
    ['2001:db8::1:443', '2001:db8::1:443'],
    ['[2001:db8::zz]', null],
    ['1.2.3.4:', null],
  ];
  for (const [entry, want] of cases) assert.equal(entryAddress(entry), want, JSON.stringify(entry));
});

test('private_ranges stands for loopback and the private ranges', () => {
  assert.deepEqual(expandTrustedProxies(['192.0.2.10', 'private_ranges']), ['192.0.2.10', '127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '::1', 'fc00::/7']);
  const trusted = new TrustedProxies(['private_ranges']);
  for (const address of ['127.0.0.1', '10.1.2.3', '172.31.255.255', '192.168.1.1', '::1', 'fd12::1', '::ffff:10.0.0.1']) assert.ok(trusted.trusts(address), address);
  for (const address of ['172.32.0.1', '8.8.8.8', '2001:db8::1', '::ffff:8.8.8.8']) assert.ok(!trusted.trusts(address), address);
});

test('the client behind a trusted proxy: the first untrusted address from the right, and the scheme and port it was reached on', () => {
  const trusted = new TrustedProxies(['10.0.0.0/8', '::1']);
  const cases: Array<[string, string, ForwardedHeaders, ReturnType<TrustedProxies['clientOf']>]> = [
    ['a peer that is not trusted: its headers count for nothing', '203.0.113.9', { 'x-forwarded-for': '198.51.100.1', 'x-forwarded-proto': 'https' }, null],
    ['a trusted peer that forwards nothing', '10.0.0.2', {}, null],
    ['one proxy', '10.0.0.2', { 'x-forwarded-for': '198.51.100.1' }, { address: '198.51.100.1', tls: null, port: null }],
    ['over IPv6 loopback', '::1', { 'x-forwarded-for': '198.51.100.1' }, { address: '198.51.100.1', tls: null, port: null }],
    ['IPv4-mapped peer', '::ffff:10.0.0.2', { 'x-forwarded-for': '198.51.100.1' }, { address: '198.51.100.1', tls: null, port: null }],
    ['a chain of trusted proxies is skipped', '10.0.0.2', { 'x-forwarded-for': '198.51.100.1, 10.0.0.7, 10.0.0.3' }, { address: '198.51.100.1', tls: null, port: null }],
    ['what the client wrote at the left is not believed', '10.0.0.2', { 'x-forwarded-for': '1.1.1.1, 198.51.100.1' }, { address: '198.51.100.1', tls: null, port: null }],
    ['every entry trusted: the leftmost', '10.0.0.2', { 'x-forwarded-for': '10.0.0.9, 10.0.0.3' }, { address: '10.0.0.9', tls: null, port: null }],
    ['an entry that is not an address ends the walk: the header is not used', '10.0.0.2', { 'x-forwarded-for': '198.51.100.1, unknown' }, null],
    ['… but the scheme still counts', '10.0.0.2', { 'x-forwarded-for': 'garbage', 'x-forwarded-proto': 'https' }, { address: '10.0.0.2', tls: true, port: 443 }],
    ['entries with ports', '10.0.0.2', { 'x-forwarded-for': '[2001:db8::5]:5555, 10.0.0.3:80' }, { address: '2001:db8::5', tls: null, port: null }],
    ['lines joined as node:http joins them', '10.0.0.2', { 'x-forwarded-for': ['198.51.100.1', '10.0.0.3'] }, { address: '198.51.100.1', tls: null, port: null }],
    ['https: port 443', '10.0.0.2', { 'x-forwarded-for': '198.51.100.1', 'x-forwarded-proto': 'https' }, { address: '198.51.100.1', tls: true, port: 443 }],
    ['HTTPS in capitals', '10.0.0.2', { 'x-forwarded-proto': 'HTTPS' }, { address: '10.0.0.2', tls: true, port: 443 }],
    ['http: port 80', '10.0.0.2', { 'x-forwarded-proto': 'http' }, { address: '10.0.0.2', tls: false, port: 80 }],
    ['the nearest proxy\'s scheme (the last value)', '10.0.0.2', { 'x-forwarded-proto': 'https, http' }, { address: '10.0.0.2', tls: false, port: 80 }],
    ['an unknown scheme is ignored', '10.0.0.2', { 'x-forwarded-proto': 'gopher' }, null],
    ['X-Forwarded-Port wins over the scheme\'s', '10.0.0.2', { 'x-forwarded-proto': 'https', 'x-forwarded-port': '8443' }, { address: '10.0.0.2', tls: true, port: 8443 }],
    ['a port out of range is ignored', '10.0.0.2', { 'x-forwarded-proto': 'https', 'x-forwarded-port': '70000' }, { address: '10.0.0.2', tls: true, port: 443 }],
    ['a port that is not a number is ignored', '10.0.0.2', { 'x-forwarded-port': '80abc' }, null],
  ];
  for (const [what, peer, headers, want] of cases) assert.deepEqual(trusted.clientOf(peer, headers), want, what);
});

test('entries that are not addresses or ranges are refused', () => {
  assert.throws(() => new TrustedProxies(['localhost']), { message: 'trusted proxy "localhost" is not an IP address, a CIDR range or private_ranges' });
  assert.throws(() => new TrustedProxies(['private-ranges']), /trusted proxy "private-ranges" is not/);
  assert.throws(() => new TrustedProxies(['10.0.0.0/33']), { message: 'trusted proxy "10.0.0.0/33" has a prefix length outside 0-32' });
});
