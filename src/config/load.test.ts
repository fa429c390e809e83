// Tests for loading config from project trees built in temp folders: built-in defaults, the
// contract's example files, every default filled, relative paths, skipped and ignored folders, and
// a deep-frozen result. Error messages are in load-errors.test.ts.

import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { app, project, removeProjects } from '../../test/helpers/config-project.js';
import { loadConfig, type AppConfig } from './load.js';

after(removeProjects);

const CONTRACT_SERVER_YAML = `server:
  host: 127.0.0.1
  port: 8080
  read_timeout_seconds: 30
  write_timeout_seconds: 30
  idle_timeout_seconds: 120
  log_file: logs/tqserver_{date}.log    # null, "" or ~ disables file logging
  status_path: /status
workers:
  directory: workers
file_watcher:
  debounce_ms: 50
`;

const CONTRACT_WORKER_YAML = `path: /blog                 # URL prefix, required
type: php
enabled: true
document_root: public       # relative to the worker's folder
php:
  binary: /usr/bin/php-cgi  # optional; found on PATH otherwise
  config_file: ~            # optional base php.ini
  settings:                 # ini overrides (-d for php-cgi, php_admin_value for php-fpm)
    memory_limit: 128M
  env:                      # environment for PHP (getenv / $_SERVER)
    APP_ENV: production
  pool:
    manager: dynamic        # static | dynamic | ondemand
    max_workers: 10         # pm.max_children
    start_workers: 3        # pm.start_servers
    min_workers: 2          # pm.min_spare_servers (idle workers kept ready)
    max_spare_workers: 5    # pm.max_spare_servers
    max_requests: 1000      # pm.max_requests (0 = never recycle)
    idle_timeout: 10s       # pm.process_idle_timeout (ondemand)
    request_timeout: 30s    # request_terminate_timeout (hard kill)
fastcgi:
  listen: 127.0.0.1:9001    # optional FastCGI front for nginx; a path means a unix socket
php_fpm:
  enabled: false            # true: run the app on a php-fpm master instead of php-cgi workers
  binary: ~                 # optional; php-fpm found on PATH otherwise
  listen: ~                 # default: a private unix socket; may be a list of upstreams
  external: false           # true: connect to an already running php-fpm at \`listen\`
  connect_timeout_ms: 1000
  request_timeout_ms: 30000
`;

/** What an app with only `path: /blog` becomes. */
function defaultApp(root: string, overrides: Partial<AppConfig> = {}): AppConfig {
  const dir = join(root, 'workers', 'blog');
  return {
    name: 'blog',
    dir,
    file: join(dir, 'config', 'worker.yaml'),
    path: '/blog',
    documentRoot: join(dir, 'public'),
    indexFiles: ['index.php', 'index.html'],
    frontController: 'index.php',
    php: {
      binary: null,
      configFile: null,
      settings: {},
      env: {},
      extensions: ['.php'],
      pool: {
        manager: 'dynamic',
        maxWorkers: 10,
        startWorkers: 3,
        minSpareWorkers: 2,
        maxSpareWorkers: 5,
        maxSpawnRate: 32,
        maxRequests: 1000,
        idleTimeoutMs: 10_000,
        requestTimeoutMs: 30_000,
        queueLimit: 512,
        queueTimeoutMs: 30_000,
        maxWorkerMemoryBytes: 0,
        transport: 'unix',
        portRange: [9100, 9199],
      },
      errorLog: join(root, 'logs', 'blog_php_error_{date}.log'),
    },
    accessLog: { path: join(root, 'logs', 'blog_access_{date}.log'), format: 'combined' },
    slowLog: { thresholdMs: 5000, path: join(root, 'logs', 'blog_slow_{date}.log') },
    fastcgi: { listen: null, allowedClients: ['127.0.0.1', '::1'] },
    phpFpm: { enabled: false, binary: null, listen: [], external: false, transport: 'unix', poolSize: null, connectTimeoutMs: 1000, requestTimeoutMs: 30_000 },
    ...overrides,
  };
}

describe('loading', () => {
  test('built-in defaults when there is no server.yaml', () => {
    const root = project({ 'workers/': '' });
    const config = loadConfig({ root });
    assert.deepEqual(config, {
      root,
      configFile: null,
      mode: 'prod',
      server: {
        host: '127.0.0.1',
        port: 8080,
        readTimeoutMs: 30_000,
        writeTimeoutMs: 30_000,
        idleTimeoutMs: 120_000,
        logFile: join(root, 'logs', 'tqserver_{date}.log'),
        logLevel: 'info',
        statusPath: '/status',
        metricsPath: '/metrics',
        adminAllowedClients: ['127.0.0.0/8', '::1'],
        adminListen: null,
        trustedProxies: [],
        maxBodyBytes: 100 * 1024 ** 2,
        requestBuffering: true,
        bodyBufferBytes: 128 * 1024,
        maxHeaderBytes: 16 * 1024,
        shutdownTimeoutMs: 30_000,
        liveReload: true,
      },
      workersDir: join(root, 'workers'),
      debounceMs: 50,
      apps: [],
    });
  });

  test("the contract's example server.yaml and worker.yaml", () => {
    const root = project({ 'config/server.yaml': CONTRACT_SERVER_YAML, ...app('blog', CONTRACT_WORKER_YAML) });
    const config = loadConfig({ root, mode: 'dev' });
    assert.equal(config.configFile, join(root, 'config', 'server.yaml'));
    assert.equal(config.mode, 'dev');
    assert.equal(config.server.logFile, join(root, 'logs', 'tqserver_{date}.log'));
    assert.deepEqual(config.apps, [
      defaultApp(root, {
        php: { ...defaultApp(root).php, binary: '/usr/bin/php-cgi', settings: { memory_limit: '128M' }, env: { APP_ENV: 'production' } },
        fastcgi: { listen: { host: '127.0.0.1', port: 9001 }, allowedClients: ['127.0.0.1', '::1'] },
      }),
    ]);
  });

  test('the repository example (config/server.yaml and workers/blog) loads', () => {
    const repository = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
    const config = loadConfig({ root: repository });
    assert.ok(config.apps.some((a) => a.name === 'blog' && a.path === '/blog'));
  });

  test('a worker.yaml with only a path gets every default', () => {
    const root = project(app('blog', 'path: /blog\n'));
    assert.deepEqual(loadConfig({ root }).apps, [defaultApp(root)]);
  });

  test('server.yaml relative paths resolve against the root, even with --config elsewhere', () => {
    const root = project({
      'etc/tq.yaml': 'server:\n  log_file: var/log/tq.log\nworkers:\n  directory: apps\n',
      'apps/site/config/worker.yaml': 'path: /\n',
      'apps/site/public/': '',
    });
    const config = loadConfig({ root, configFile: 'etc/tq.yaml' });
    assert.equal(config.configFile, join(root, 'etc', 'tq.yaml'));
    assert.equal(config.server.logFile, join(root, 'var', 'log', 'tq.log'));
    assert.equal(config.workersDir, join(root, 'apps'));
    assert.equal(config.apps[0]!.path, '/');
    assert.equal(config.apps[0]!.documentRoot, join(root, 'apps', 'site', 'public'));
  });

  test('an absolute --config outside the root', () => {
    const elsewhere = project({ 'tq.yaml': 'server:\n  port: 9999\n' });
    const root = project({ 'workers/': '' });
    const config = loadConfig({ root, configFile: join(elsewhere, 'tq.yaml') });
    assert.equal(config.server.port, 9999);
    assert.equal(config.configFile, join(elsewhere, 'tq.yaml'));
  });

  test('worker.yaml relative paths resolve against the worker folder', () => {
    const root = project({
      'workers/blog/config/worker.yaml': [
        'path: /blog/',
        'document_root: web',
        'php:',
        '  binary: bin/php-cgi',
        '  config_file: php.ini',
        'fastcgi:',
        '  listen: ./run/fcgi.sock',
        'php_fpm:',
        '  listen: [unix:run/a.sock, "127.0.0.1:9000", /abs/b.sock]',
        '',
      ].join('\n'),
      'workers/blog/web/': '',
    });
    const [blog] = loadConfig({ root }).apps;
    const dir = join(root, 'workers', 'blog');
    assert.equal(blog!.path, '/blog');
    assert.equal(blog!.documentRoot, join(dir, 'web'));
    assert.equal(blog!.php.binary, join(dir, 'bin', 'php-cgi'));
    assert.equal(blog!.php.configFile, join(dir, 'php.ini'));
    assert.deepEqual(blog!.fastcgi.listen, { path: join(dir, 'run', 'fcgi.sock') });
    assert.deepEqual(blog!.phpFpm.listen, [{ path: join(dir, 'run', 'a.sock') }, { host: '127.0.0.1', port: 9000 }, { path: '/abs/b.sock' }]);
  });

  test('log files: relative paths from the app folder, null or "" for none (access) or the server log (slow, PHP errors)', () => {
    const root = project({
      ...app('a', 'path: /a\naccess_log:\n  path: logs/access.log\n  format: json\nslow_log:\n  threshold: 1500ms\n  path: /var/log/a_slow.log\nphp:\n  error_log: ~\n'),
      ...app('b', 'path: /b\naccess_log:\n  path: ~\nslow_log:\n  threshold: 0\n  path: ""\nphp:\n  error_log: ""\n'),
    });
    const [a, b] = loadConfig({ root }).apps;
    assert.deepEqual(a!.accessLog, { path: join(root, 'workers', 'a', 'logs', 'access.log'), format: 'json' });
    assert.deepEqual(a!.slowLog, { thresholdMs: 1500, path: '/var/log/a_slow.log' });
    assert.equal(a!.php.errorLog, null);
    assert.deepEqual(b!.accessLog, { path: null, format: 'combined' });
    assert.deepEqual(b!.slowLog, { thresholdMs: 0, path: null });
    assert.equal(b!.php.errorLog, null);
    assert.throws(() => loadConfig({ root: project(app('c', 'path: /c\naccess_log:\n  format: apache\n')) }), /access_log\.format: .*combined/);
  });

  test('a bare binary name stays a PATH lookup', () => {
    const root = project(app('blog', 'path: /blog\nphp:\n  binary: php-cgi8.3\n'));
    assert.equal(loadConfig({ root }).apps[0]!.php.binary, 'php-cgi8.3');
  });

  for (const value of ['~', 'null', '""']) {
    test(`log_file: ${value} disables file logging`, () => {
      const root = project({ 'config/server.yaml': `server:\n  log_file: ${value}\n`, 'workers/': '' });
      assert.equal(loadConfig({ root }).server.logFile, null);
    });
  }

  test('durations, sizes and php.env values are converted', () => {
    const root = project(
      app(
        'blog',
        [
          'path: /blog',
          'php:',
          '  env: { A: 1, B: true, C: false, D: text }',
          '  pool: { idle_timeout: 500ms, request_timeout: 2m, queue_timeout: 5, max_worker_memory: 256M }',
          '',
        ].join('\n'),
      ),
    );
    const pool = loadConfig({ root }).apps[0]!.php;
    assert.deepEqual(pool.env, { A: '1', B: '1', C: '0', D: 'text' });
    assert.equal(pool.pool.idleTimeoutMs, 500);
    assert.equal(pool.pool.requestTimeoutMs, 120_000);
    assert.equal(pool.pool.queueTimeoutMs, 5000);
    assert.equal(pool.pool.maxWorkerMemoryBytes, 256 * 1024 ** 2);
  });

  // Regression: the docs promise "a port" works for fastcgi.listen, but YAML reads 9001 as a number.
  test('fastcgi.listen as a bare port number', () => {
    const root = project(app('blog', 'path: /blog\nfastcgi:\n  listen: 9001\n'));
    assert.deepEqual(loadConfig({ root }).apps[0]!.fastcgi.listen, { host: '127.0.0.1', port: 9001 });
  });

  test('admin_listen: status, metrics and health move there, and apps may use those paths on the main port', () => {
    const root = project({ 'config/server.yaml': 'server:\n  admin_listen: ./run/admin.sock\n  admin_allowed_clients: any\n  metrics_path: /prom/\n', ...app('blog', 'path: /status\n') });
    const config = loadConfig({ root });
    assert.deepEqual(config.server.adminListen, { path: join(root, 'run', 'admin.sock') }, 'a relative socket path resolves against the root');
    assert.equal(config.server.adminAllowedClients, 'any');
    assert.equal(config.server.metricsPath, '/prom');
    assert.equal(config.apps[0]!.path, '/status');
    assert.deepEqual(loadConfig({ root: project({ 'config/server.yaml': 'server:\n  admin_listen: 9145\n', 'workers/': '' }) }).server.adminListen, { host: '127.0.0.1', port: 9145 });
  });

  test('allowed_clients: any', () => {
    const root = project(app('blog', 'path: /blog\nfastcgi:\n  listen: 127.0.0.1:9001\n  allowed_clients: any\n'));
    assert.equal(loadConfig({ root }).apps[0]!.fastcgi.allowedClients, 'any');
  });

  test('a front controller in a subfolder', () => {
    const root = project(app('blog', 'path: /blog\nfront_controller: app/front.php\n'));
    assert.equal(loadConfig({ root }).apps[0]!.frontController, 'app/front.php');
  });

  // Regression: the admin handler compares normalised paths, which never end in "/".
  test('status_path loses a trailing slash', () => {
    const root = project({ 'config/server.yaml': 'server:\n  status_path: /admin/status/\n', 'workers/': '' });
    assert.equal(loadConfig({ root }).server.statusPath, '/admin/status');
  });

  test('disabled apps are skipped, even with a missing document root', () => {
    const root = project({
      ...app('blog', 'path: /blog\n'),
      'workers/old/config/worker.yaml': 'path: /old\nenabled: false\ndocument_root: gone\n',
    });
    assert.deepEqual(
      loadConfig({ root }).apps.map((a) => a.name),
      ['blog'],
    );
  });

  test('folders without worker.yaml, plain files and dangling symlinks in workers/ are ignored', () => {
    const root = project({
      ...app('blog', 'path: /blog\n'),
      'workers/notes/README.md': 'not an app',
      'workers/README.md': 'hello',
      'workers/empty/': '',
      'workers/half/config/': '',
    });
    // Regression: statSync threw ENOENT for a dangling symlink and crashed --check.
    symlinkSync(join(root, 'nowhere'), join(root, 'workers', 'broken'));
    assert.deepEqual(
      loadConfig({ root }).apps.map((a) => a.name),
      ['blog'],
    );
  });

  test('apps come in folder-name order', () => {
    const root = project({ ...app('zeta', 'path: /z\n'), ...app('alpha', 'path: /a\n'), ...app('mid', 'path: /\n') });
    assert.deepEqual(
      loadConfig({ root }).apps.map((a) => a.name),
      ['alpha', 'mid', 'zeta'],
    );
  });

  test('the result is deep-frozen', () => {
    const root = project(app('blog', 'path: /blog\nphp:\n  settings: { memory_limit: 64M }\n'));
    const config = loadConfig({ root });
    const blog = config.apps[0]!;
    for (const value of [config, config.server, config.apps, blog, blog.php, blog.php.settings, blog.php.pool, blog.php.pool.portRange, blog.indexFiles, blog.fastcgi.allowedClients, blog.phpFpm.listen]) {
      assert.ok(Object.isFrozen(value), `${JSON.stringify(value)} is not frozen`);
    }
    assert.throws(() => {
      (config.server as { port: number }).port = 1;
    }, TypeError);
    assert.throws(() => {
      (blog.php.settings as Record<string, string>).memory_limit = '1G';
    }, TypeError);
  });
});
