// The generated php-fpm configuration: every worker.yaml key mapped to its php-fpm directive, the
// global settings php-fpm gets wrong by default, and values that must not break the INI syntax.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PoolSettings } from '../config/load.js';
import { fpmSeconds, renderGlobalConfig, renderPoolConfig, type FpmPoolInput } from './fpm-config.js';

const pool: PoolSettings = {
  manager: 'dynamic',
  maxWorkers: 12,
  startWorkers: 4,
  minSpareWorkers: 3,
  maxSpareWorkers: 6,
  maxSpawnRate: 16,
  maxRequests: 500,
  idleTimeoutMs: 15_000,
  requestTimeoutMs: 45_000,
  queueLimit: 100,
  queueTimeoutMs: 5000,
  maxWorkerMemoryBytes: 0,
  transport: 'unix',
  portRange: [9100, 9199],
};

function input(overrides: Partial<FpmPoolInput> = {}): FpmPoolInput {
  return {
    name: 'blog',
    listen: { path: '/run/tq/blog.sock' },
    pool,
    settings: { memory_limit: '256M' },
    env: { APP_ENV: 'production' },
    extensions: ['.php'],
    documentRoot: '/srv/blog/public',
    user: null,
    pingPath: '/ping',
    statusPath: '/fpm-status',
    allowedClients: ['127.0.0.1'],
    version: { major: 8, minor: 2, patch: 36, text: '8.2.36' },
    ...overrides,
  };
}

/** The directives of a rendered file as a map (later lines win, as in php-fpm). */
function directives(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([^;=\s][^=]*?)\s*=\s*(.*)$/.exec(line);
    if (match) map.set(match[1]!, match[2]!);
  }
  return map;
}

describe('pool file', () => {
  test('maps every pool key to its php-fpm directive (dynamic)', () => {
    const d = directives(renderPoolConfig(input()));
    const expected: Record<string, string> = {
      pm: 'dynamic',
      'pm.max_children': '12',
      'pm.start_servers': '4',
      'pm.min_spare_servers': '3',
      'pm.max_spare_servers': '6',
      'pm.max_spawn_rate': '16',
      'pm.max_requests': '500',
      request_terminate_timeout: '45s',
      listen: '/run/tq/blog.sock',
      'listen.mode': '0660',
      'listen.backlog': '511',
      'ping.path': '/ping',
      'ping.response': 'pong',
      'pm.status_path': '/fpm-status',
      chdir: '/srv/blog/public',
      clear_env: 'yes',
      'security.limit_extensions': '.php',
      'env[APP_ENV]': 'production',
      'php_admin_value[memory_limit]': '256M',
      'php_admin_value[cgi.fix_pathinfo]': '1',
      'php_admin_value[cgi.discard_path]': '1',
    };
    for (const [key, value] of Object.entries(expected)) assert.equal(d.get(key), value, key);
    assert.equal(d.has('pm.process_idle_timeout'), false, 'only ondemand uses the idle timeout');
    assert.match(renderPoolConfig(input()), /^\[blog\]$/m);
  });

  test('ondemand writes pm.process_idle_timeout and no spare settings', () => {
    const d = directives(renderPoolConfig(input({ pool: { ...pool, manager: 'ondemand' } })));
    assert.equal(d.get('pm'), 'ondemand');
    assert.equal(d.get('pm.process_idle_timeout'), '15s');
    assert.equal(d.has('pm.start_servers'), false);
  });

  test('static writes only max_children', () => {
    const d = directives(renderPoolConfig(input({ pool: { ...pool, manager: 'static' } })));
    assert.equal(d.get('pm'), 'static');
    assert.equal(d.get('pm.max_children'), '12');
    assert.equal(d.has('pm.min_spare_servers'), false);
  });

  test('pm.max_spawn_rate only for PHP 8.1 and later', () => {
    const old = directives(renderPoolConfig(input({ version: { major: 8, minor: 0, patch: 30, text: '8.0.30' } })));
    assert.equal(old.has('pm.max_spawn_rate'), false);
  });

  test('a TCP listen gets listen.allowed_clients instead of a socket mode', () => {
    const d = directives(renderPoolConfig(input({ listen: { host: '127.0.0.1', port: 9500 }, allowedClients: ['127.0.0.1', '::1'] })));
    assert.equal(d.get('listen'), '127.0.0.1:9500');
    assert.equal(d.get('listen.allowed_clients'), '127.0.0.1,::1');
    assert.equal(d.has('listen.mode'), false);
  });

  test('request_timeout 0 writes no request_terminate_timeout', () => {
    assert.equal(directives(renderPoolConfig(input({ pool: { ...pool, requestTimeoutMs: 0 } }))).has('request_terminate_timeout'), false);
  });

  test('user and group when given', () => {
    const d = directives(renderPoolConfig(input({ user: { user: 'www-data', group: 'www-data' } })));
    assert.equal(d.get('user'), 'www-data');
    assert.equal(d.get('group'), 'www-data');
  });

  test('values that would break INI syntax are quoted, line breaks refused', () => {
    const d = directives(renderPoolConfig(input({ settings: { error_prepend_string: 'a;b=c', error_reporting: 'E_ALL & ~E_NOTICE' } })));
    assert.equal(d.get('php_admin_value[error_prepend_string]'), "'a;b=c'");
    assert.equal(d.get('php_admin_value[error_reporting]'), 'E_ALL & ~E_NOTICE');
    assert.throws(() => renderPoolConfig(input({ settings: { x: 'a\nextension=evil.so' } })), /line break/);
    assert.throws(() => renderPoolConfig(input({ env: { A: 'x\ny' } })), /line break/);
  });

  test('a setting from the config overrides the cgi.fix_pathinfo default', () => {
    assert.equal(directives(renderPoolConfig(input({ settings: { 'cgi.fix_pathinfo': 0 } }))).get('php_admin_value[cgi.fix_pathinfo]'), '0');
  });
});

describe('global file', () => {
  test('sets process_control_timeout so a reload lets requests finish, and includes the pools', () => {
    const d = directives(
      renderGlobalConfig(
        { pidFile: '/x/php-fpm.pid', errorLog: '/x/php-fpm.log', processControlTimeoutMs: 30_000, emergencyRestartThreshold: 10, emergencyRestartIntervalMs: 60_000 },
        '/x/pool.d/*.conf',
      ),
    );
    assert.equal(d.get('process_control_timeout'), '30s');
    assert.equal(d.get('daemonize'), 'no');
    assert.equal(d.get('include'), '/x/pool.d/*.conf');
    assert.equal(d.get('emergency_restart_threshold'), '10');
    assert.equal(d.get('emergency_restart_interval'), '60s');
    assert.equal(d.get('pid'), '/x/php-fpm.pid');
  });

  test('durations become whole seconds, at least 1', () => {
    assert.equal(fpmSeconds(0), '1s');
    assert.equal(fpmSeconds(500), '1s');
    assert.equal(fpmSeconds(1500), '2s');
    assert.equal(fpmSeconds(60_000), '60s');
  });
});
