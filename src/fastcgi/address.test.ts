// Tests for FastCGI endpoint addresses: parsing what operators write, refusing typos, formatting back.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatAddress, parseAddress, toAddress, type Address } from './address.js';

describe('parseAddress and formatAddress', () => {
  const cases: Array<{ text: string; address: Address; formatted: string }> = [
    { text: '127.0.0.1:9000', address: { host: '127.0.0.1', port: 9000 }, formatted: '127.0.0.1:9000' },
    { text: 'localhost:1', address: { host: 'localhost', port: 1 }, formatted: 'localhost:1' },
    { text: 'php.internal:65535', address: { host: 'php.internal', port: 65535 }, formatted: 'php.internal:65535' },
    { text: '[::1]:9000', address: { host: '::1', port: 9000 }, formatted: '[::1]:9000' },
    { text: '[2001:db8::7]:9001', address: { host: '2001:db8::7', port: 9001 }, formatted: '[2001:db8::7]:9001' },
    { text: '[::ffff:127.0.0.1]:9000', address: { host: '::ffff:127.0.0.1', port: 9000 }, formatted: '[::ffff:127.0.0.1]:9000' },
    { text: '9000', address: { host: '127.0.0.1', port: 9000 }, formatted: '127.0.0.1:9000' },
    { text: '  9000\n', address: { host: '127.0.0.1', port: 9000 }, formatted: '127.0.0.1:9000' },
    { text: '09000', address: { host: '127.0.0.1', port: 9000 }, formatted: '127.0.0.1:9000' },
    { text: '/run/php/php-fpm.sock', address: { path: '/run/php/php-fpm.sock' }, formatted: 'unix:/run/php/php-fpm.sock' },
    { text: 'unix:/run/php.sock', address: { path: '/run/php.sock' }, formatted: 'unix:/run/php.sock' },
    { text: 'unix:relative.sock', address: { path: 'relative.sock' }, formatted: 'unix:relative.sock' },
    { text: './php.sock', address: { path: './php.sock' }, formatted: 'unix:./php.sock' },
    { text: '../run/php.sock', address: { path: '../run/php.sock' }, formatted: 'unix:../run/php.sock' },
  ];
  for (const { text, address, formatted } of cases) {
    test(JSON.stringify(text), () => {
      assert.deepEqual(parseAddress(text), address);
      assert.equal(formatAddress(address), formatted);
      assert.deepEqual(parseAddress(formatted), address, 'the formatted address parses back');
    });
  }
});

describe('parseAddress refuses what is not an address, naming it', () => {
  const cases = [
    { text: '', message: /not a FastCGI address: "" \(expected host:port, \[ipv6\]:port, a port, or a socket path\)/ },
    { text: 'localhost', message: /not a FastCGI address: "localhost"/ },
    { text: ':9000', message: /not a FastCGI address: ":9000"/ },
    { text: '::1:9000', message: /not a FastCGI address: "::1:9000"/ },
    { text: '[::1]', message: /not a FastCGI address: "\[::1\]"/ },
    { text: '[]:9000', message: /not a FastCGI address: "\[\]:9000"/ },
    { text: 'php host:9000', message: /not a FastCGI address: "php host:9000"/ },
    { text: '[localhost]:9000', message: /"localhost" in brackets is not an IPv6 address in "\[localhost\]:9000"/ },
    { text: 'unix:', message: /no socket path after "unix:" in "unix:"/ },
    { text: '0', message: /port 0 out of range in "0" \(expected 1-65535\)/ },
    { text: '65536', message: /port 65536 out of range in "65536"/ },
    { text: 'host:0', message: /port 0 out of range in "host:0"/ },
    { text: '[::1]:70000', message: /port 70000 out of range in "\[::1\]:70000"/ },
    { text: 'host:', message: /port "" is not a decimal number in "host:"/ },
    { text: 'host:http', message: /port "http" is not a decimal number in "host:http"/ },
    { text: 'host:0x10', message: /port "0x10" is not a decimal number/ },
    { text: 'host:1e3', message: /port "1e3" is not a decimal number/ },
    { text: 'host:9000.0', message: /port "9000.0" is not a decimal number/ },
    { text: 'host: 9000', message: /port " 9000" is not a decimal number/ },
    { text: 'host:+9000', message: /port "\+9000" is not a decimal number/ },
    { text: 'host:-1', message: /port "-1" is not a decimal number/ },
  ];
  for (const { text, message } of cases) {
    test(JSON.stringify(text), () => {
      assert.throws(() => parseAddress(text), (error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, message);
        return true;
      });
    });
  }
});

describe('toAddress', () => {
  test('parses a string and passes an Address through as it is', () => {
    assert.deepEqual(toAddress('[::1]:9000'), { host: '::1', port: 9000 });
    const address = { path: '/run/php.sock' };
    assert.equal(toAddress(address), address);
  });
});
