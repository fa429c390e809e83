// Tests for loading config from project trees built in temp folders: built-in defaults, the
// contract's example files, every default filled, relative paths, skipped and ignored folders, and
// every error message exactly as an operator reads it ("file: key: problem"), all in one ConfigError.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ConfigError, formatProblem, loadConfig, type AppConfig, type LoadOptions } from './load.js';

const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A project tree: a path ending in "/" is a folder, anything else a file with that text. */
function project(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tq-config-'));
  made.push(root);
  for (const [path, text] of Object.entries(files)) {
    const full = join(root, path);
    if (path.endsWith('/')) {
      mkdirSync(full, { recursive: true });
    } else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, text);
    }
  }
  return root;
}

/** One app folder (worker.yaml and its public/ folder). */
function app(name: string, yaml: string): Record<string, string> {
  return { [`workers/${name}/config/worker.yaml`]: yaml, [`workers/${name}/public/`]: '' };
}

/** The lines of the ConfigError loading `root` throws. */
function problemsOf(root: string, options: Partial<LoadOptions> = {}): string[] {
  try {
    loadConfig({ root, ...options });
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.message, error.problems.map(formatProblem).join('\n'));
    return error.message.split('\n');
  }
  assert.fail('the config loaded without errors');
}

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

describe('error messages', () => {
  const W = 'workers/blog/config/worker.yaml';
  const S = 'config/server.yaml';
  /** Rows: the tree (worker.yaml text for "blog", or whole files) and every line expected. */
  const rows: Array<{ name: string; worker?: string; files?: Record<string, string>; options?: Partial<LoadOptions>; want: Array<string | RegExp> | ((root: string) => string[]) }> = [
    {
      name: 'max_workers below min_workers',
      worker: 'path: /blog\nphp:\n  pool:\n    min_workers: 2\n    max_workers: 1\n    start_workers: 2\n    max_spare_workers: 2\n',
      want: [`${W}: php.pool.max_workers: must be >= min_workers (2), got 1`, `${W}: php.pool.start_workers: must be <= max_workers (1), got 2`],
    },
    {
      name: 'start_workers outside min and max spare',
      worker: 'path: /blog\nphp:\n  pool: { min_workers: 2, max_spare_workers: 4, start_workers: 5 }\n',
      want: [`${W}: php.pool.start_workers: must be between min_workers (2) and max_spare_workers (4), got 5`],
    },
    {
      name: 'max_spare_workers below min_workers',
      worker: 'path: /blog\nphp:\n  pool: { min_workers: 3, max_spare_workers: 2, start_workers: 3 }\n',
      want: [`${W}: php.pool.max_spare_workers: must be >= min_workers (3), got 2`, `${W}: php.pool.start_workers: must be between min_workers (3) and max_spare_workers (2), got 3`],
    },
    {
      name: 'static pools do not need the dynamic rules',
      worker: 'path: /blog\nphp:\n  pool: { manager: static, max_workers: 1 }\nfastcgi:\n  listen: nope\n',
      want: [`${W}: fastcgi.listen: not a FastCGI address: "nope" (expected host:port, [ipv6]:port, a port, or a socket path)`],
    },
    {
      name: 'a tcp port range smaller than max_workers',
      worker: 'path: /blog\nphp:\n  pool: { transport: tcp, port_range: [9100, 9104] }\n',
      want: [`${W}: php.pool.port_range: has 5 ports but max_workers is 10`],
    },
    { name: 'an unknown key with did-you-mean', worker: 'path: /blog\nphp:\n  pool:\n    max_worker: 5\n', want: [`${W}: php.pool.max_worker: unknown key; did you mean max_workers?`] },
    { name: 'an unknown key in server.yaml', files: { 'config/server.yaml': 'server:\n  prot: 80\n', 'workers/': '' }, want: [`${S}: server.prot: unknown key; did you mean port?`] },
    { name: 'an unknown section in server.yaml', files: { 'config/server.yaml': 'worker:\n  directory: x\n', 'workers/': '' }, want: [`${S}: worker: unknown key; did you mean workers?`] },
    {
      name: 'an unknown key with nothing close lists the known keys',
      worker: 'path: /blog\ncolour: red\n',
      want: [`${W}: colour: unknown key (known keys here: path, type, enabled, document_root, index_files, front_controller, php, fastcgi, access_log, slow_log, php_fpm)`],
    },
    { name: 'a string for a number', files: { 'config/server.yaml': 'server:\n  port: eighty\n', 'workers/': '' }, want: [`${S}: server.port: must be a number, got "eighty"`] },
    { name: 'a port out of range', files: { 'config/server.yaml': 'server:\n  port: 70000\n', 'workers/': '' }, want: [`${S}: server.port: must be <= 65535, got 70000`] },
    { name: 'yes is a string in YAML 1.2, not a boolean', worker: 'path: /blog\nenabled: yes\n', want: [`${W}: enabled: must be true or false, got "yes"`] },
    { name: 'a fraction for an integer', worker: 'path: /blog\nphp:\n  pool:\n    max_workers: 2.5\n', want: [`${W}: php.pool.max_workers: must be an integer, got 2.5`] },
    // Regression: the cross-key rules ran on the broken value too ("must be <= max_workers (2.5), got 3").
    { name: 'a zero max_workers is reported once', worker: 'path: /blog\nphp:\n  pool:\n    max_workers: 0\n', want: [`${W}: php.pool.max_workers: must be >= 1, got 0`] },
    { name: 'a number for the path', worker: 'path: 5\n', want: [`${W}: path: must be a string, got 5`] },
    { name: 'a missing path', worker: 'type: php\n', want: [`${W}: path: is required`] },
    { name: 'an empty worker.yaml', worker: '', want: [`${W}: path: is required`] },
    { name: 'a worker.yaml that is a list', worker: '- a\n- b\n', want: [`${W}: must be a mapping of keys, got ["a","b"]`] },
    { name: 'a scalar for a mapping', worker: 'path: /blog\nphp:\n  settings: 5\n', want: [`${W}: php.settings: must be a mapping of keys, got 5`] },
    {
      name: 'a bad enum with did-you-mean',
      worker: 'path: /blog\nphp:\n  pool:\n    manager: dynamc\n',
      want: [`${W}: php.pool.manager: must be one of static, dynamic, ondemand, got "dynamc"; did you mean dynamic?`],
    },
    { name: 'a bad log level', files: { 'config/server.yaml': 'server:\n  log_level: verbose\n', 'workers/': '' }, want: [`${S}: server.log_level: must be one of fatal, error, warn, info, debug, trace, got "verbose"`] },
    {
      name: 'a duration with an unknown unit',
      worker: 'path: /blog\nphp:\n  pool:\n    idle_timeout: 10 minutes\n',
      want: [`${W}: php.pool.idle_timeout: must be a duration (seconds, or a number with ms, s, m or h), got "10 minutes"`],
    },
    { name: 'a boolean for a duration', worker: 'path: /blog\nphp:\n  pool:\n    request_timeout: true\n', want: [`${W}: php.pool.request_timeout: must be a duration (seconds, or a number with ms, s, m or h), got true`] },
    { name: 'a negative duration', worker: 'path: /blog\nphp:\n  pool:\n    request_timeout: -5\n', want: [`${W}: php.pool.request_timeout: must be a duration (seconds, or a number with ms, s, m or h), got -5`] },
    // Regression: setTimeout() turns a delay over 2^31-1 ms into 1 ms, so "600h" would time out at once.
    { name: 'a duration too long for a timer', worker: 'path: /blog\nphp:\n  pool:\n    request_timeout: 600h\n', want: [`${W}: php.pool.request_timeout: must be at most 24 days (2147483647 ms), got "600h"`] },
    { name: 'seconds too long for a timer', files: { 'config/server.yaml': 'server:\n  idle_timeout_seconds: 10000000\n', 'workers/': '' }, want: [`${S}: server.idle_timeout_seconds: must be <= 2147483, got 10000000`] },
    // Regression: positive() read "must be >= 0, got 0".
    { name: 'a zero timeout', files: { 'config/server.yaml': 'server:\n  read_timeout_seconds: 0\n', 'workers/': '' }, want: [`${S}: server.read_timeout_seconds: must be > 0, got 0`] },
    { name: 'a bad size', files: { 'config/server.yaml': 'server:\n  max_body_size: 10X\n', 'workers/': '' }, want: [`${S}: server.max_body_size: must be a size (bytes, or a number with K, M or G), got "10X"`] },
    { name: 'a bad pool memory size', worker: 'path: /blog\nphp:\n  pool:\n    max_worker_memory: lots\n', want: [`${W}: php.pool.max_worker_memory: must be a size (bytes, or a number with K, M or G), got "lots"`] },
    { name: 'YAML: tabs as indentation, with the line', worker: 'path: /blog\n\tphp: 1\n', want: [`${W}: YAML: line 2 column 1: Tabs are not allowed as indentation`] },
    { name: 'YAML: a duplicate key, with the line', worker: 'path: /a\npath: /b\n', want: [`${W}: YAML: line 2 column 1: Map keys must be unique`] },
    { name: 'YAML: an unclosed quote in server.yaml', files: { 'config/server.yaml': 'server:\n  host: "x\n', 'workers/': '' }, want: [`${S}: YAML: line 3 column 1: Missing closing "quote`] },
    {
      name: 'duplicate app paths (a trailing slash is the same path)',
      files: { ...app('a', 'path: /blog\n'), ...app('b', 'path: /blog/\n') },
      want: ['workers/b/config/worker.yaml: path: /blog is also the path of workers/a/config/worker.yaml'],
    },
    { name: 'an app at status_path', worker: 'path: /status\n', want: [`${W}: path: /status is shadowed by server.status_path /status`] },
    { name: 'an app under status_path', worker: 'path: /status/api\n', want: [`${W}: path: /status/api is shadowed by server.status_path /status`] },
    {
      name: 'an app at a status_path given with a trailing slash',
      files: { 'config/server.yaml': 'server:\n  status_path: /admin/status/\n', ...app('blog', 'path: /admin/status\n') },
      want: [`${W}: path: /admin/status is shadowed by server.status_path /admin/status`],
    },
    { name: 'an app at metrics_path', worker: 'path: /metrics\n', want: [`${W}: path: /metrics is shadowed by server.metrics_path /metrics`] },
    { name: 'an app at /readyz', worker: 'path: /readyz\n', want: [`${W}: path: /readyz is shadowed by the readiness endpoint /readyz`] },
    { name: 'an admin_allowed_clients entry that is not an address', files: { 'config/server.yaml': 'server:\n  admin_allowed_clients: [localhost]\n', 'workers/': '' }, want: [`${S}: server.admin_allowed_clients: allowed client "localhost" is not an IP address or CIDR range`] },
    { name: 'a bad admin_listen', files: { 'config/server.yaml': 'server:\n  admin_listen: "nowhere"\n', 'workers/': '' }, want: [`${S}: server.admin_listen: not a FastCGI address: "nowhere" (expected host:port, [ipv6]:port, a port, or a socket path)`] },
    { name: 'a type other than php', worker: 'path: /blog\ntype: node\n', want: [`${W}: type: only php workers are supported (other types may come later), got "node"`] },
    { name: 'a path without a leading slash', worker: 'path: blog\n', want: [`${W}: path: must start with /`] },
    {
      name: 'a path with an empty segment could never match',
      worker: 'path: /a//b\n',
      want: [`${W}: path: must be a plain URL path (no ?, #, %, \\, spaces, control characters, empty, . or .. segments)`],
    },
    { name: 'a path with ..', worker: 'path: /a/../b\n', want: [`${W}: path: must be a plain URL path (no ?, #, %, \\, spaces, control characters, empty, . or .. segments)`] },
    {
      name: 'a bad fastcgi.listen',
      worker: 'path: /blog\nfastcgi:\n  listen: nowhere\n',
      want: [`${W}: fastcgi.listen: not a FastCGI address: "nowhere" (expected host:port, [ipv6]:port, a port, or a socket path)`],
    },
    { name: 'a fastcgi.listen port out of range', worker: 'path: /blog\nfastcgi:\n  listen: 127.0.0.1:99999\n', want: [`${W}: fastcgi.listen: port 99999 out of range in "127.0.0.1:99999" (expected 1-65535)`] },
    { name: 'a boolean fastcgi.listen', worker: 'path: /blog\nfastcgi:\n  listen: true\n', want: [`${W}: fastcgi.listen: must be a string or a number, got true`] },
    { name: "fastcgi.listen on the HTTP server's port", worker: 'path: /blog\nfastcgi:\n  listen: 8080\n', want: [`${W}: fastcgi.listen: port 8080 is the HTTP server's port (server.port)`] },
    {
      name: 'two apps on one fastcgi.listen',
      files: { ...app('a', 'path: /a\nfastcgi:\n  listen: 127.0.0.1:9001\n'), ...app('b', 'path: /b\nfastcgi:\n  listen: 127.0.0.1:9001\n') },
      want: ['workers/b/config/worker.yaml: fastcgi.listen: 127.0.0.1:9001 is also used by workers/a/config/worker.yaml'],
    },
    {
      name: 'a bad php_fpm.listen entry in a list',
      worker: 'path: /blog\nphp_fpm:\n  listen: [127.0.0.1:9000, "bad host:x"]\n',
      want: [`${W}: php_fpm.listen.1: not a FastCGI address: "bad host:x" (expected host:port, [ipv6]:port, a port, or a socket path)`],
    },
    { name: 'an external php-fpm without listen', worker: 'path: /blog\nphp_fpm:\n  external: true\n', want: [`${W}: php_fpm.listen: is required when php_fpm.external is true (where does php-fpm listen?)`] },
    { name: 'an allowed client prefix too long', worker: 'path: /blog\nfastcgi:\n  allowed_clients: [10.0.0.0/33]\n', want: [`${W}: fastcgi.allowed_clients: allowed client "10.0.0.0/33" has a prefix length outside 0-32`] },
    { name: 'an allowed client that is not an address', worker: 'path: /blog\nfastcgi:\n  allowed_clients: [localhost]\n', want: [`${W}: fastcgi.allowed_clients: allowed client "localhost" is not an IP address or CIDR range`] },
    { name: 'allowed_clients neither a list nor any', worker: 'path: /blog\nfastcgi:\n  allowed_clients: everyone\n', want: [`${W}: fastcgi.allowed_clients: must be a list or "any", got "everyone"`] },
    {
      name: 'a php.settings value with a newline',
      worker: 'path: /blog\nphp:\n  settings:\n    memory_limit: "128M\\nauto_prepend_file=/tmp/x"\n',
      // The sentence after the key is php/ini's (owned there); the key and the cause are this loader's.
      want: [/^workers\/blog\/config\/worker\.yaml: php\.settings\.memory_limit: value contains a line break or NUL, which would inject other settings/],
    },
    { name: 'a php.env name that is not a variable name', worker: 'path: /blog\nphp:\n  env:\n    1BAD: x\n', want: [`${W}: php.env.1BAD: is not a valid environment variable name`] },
    { name: 'a php.env value with NUL', worker: 'path: /blog\nphp:\n  env:\n    X: "a\\0b"\n', want: [`${W}: php.env.X: must not contain a NUL character`] },
    { name: 'an index file with a path', worker: 'path: /blog\nindex_files: [../secret.php]\n', want: [`${W}: index_files.0: must be a file name, without /`] },
    { name: 'a hidden index file', worker: 'path: /blog\nindex_files: [index.php, .index.php]\n', want: [`${W}: index_files.1: must stay inside the document root (no empty, hidden, . or .. segments)`] },
    { name: 'a front controller outside the document root', worker: 'path: /blog\nfront_controller: ../outside.php\n', want: [`${W}: front_controller: must stay inside the document root (no empty, hidden, . or .. segments)`] },
    { name: 'an extension without a dot', worker: 'path: /blog\nphp:\n  extensions: [php]\n', want: [`${W}: php.extensions.0: must look like .php (got "php")`] },
    { name: 'a missing document root', files: { 'workers/blog/config/worker.yaml': 'path: /blog\n' }, want: (root) => [`${W}: document_root: ${join(root, 'workers', 'blog', 'public')} is not a folder`] },
    { name: '--config pointing at a missing file', files: { 'workers/': '' }, options: { configFile: 'etc/missing.yaml' }, want: ['etc/missing.yaml: file not found (given with --config)'] },
    { name: 'no workers folder', files: {}, want: [`${S}: workers.directory: workers is not a folder`] },
    { name: 'a workers folder that is a file', files: { 'config/server.yaml': 'workers:\n  directory: apps\n', apps: 'file' }, want: [`${S}: workers.directory: apps is not a folder`] },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const root = project(row.files ?? app('blog', row.worker ?? ''));
      const want = typeof row.want === 'function' ? row.want(root) : row.want;
      const got = problemsOf(root, row.options);
      if (want.every((line) => typeof line === 'string')) assert.deepEqual(got, want);
      else {
        assert.equal(got.length, want.length, got.join('\n'));
        want.forEach((line, i) => (typeof line === 'string' ? assert.equal(got[i], line) : assert.match(got[i]!, line)));
      }
    });
  }

  test('--config pointing at a missing file outside the root shows the absolute path', () => {
    const root = project({ 'workers/': '' });
    const missing = join(tmpdir(), 'tq-no-such-dir', 'server.yaml');
    assert.deepEqual(problemsOf(root, { configFile: missing }), [`${missing}: file not found (given with --config)`]);
  });

  test('every problem of every file in one ConfigError, in file order', () => {
    const root = project({
      'config/server.yaml': 'server:\n  port: x\n  log_level: loud\n',
      ...app('a', 'path: /a\nphp:\n  pool:\n    max_worker: 5\n'),
      ...app('b', 'path: /b\nphp:\n  pool:\n    manager: fork\n'),
      ...app('c', 'path: /c\n\tbad: 1\n'),
      ...app('d', 'path: /a\n'),
    });
    let error: unknown;
    try {
      loadConfig({ root });
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.message.split('\n'), [
      'config/server.yaml: server.port: must be a number, got "x"',
      'config/server.yaml: server.log_level: must be one of fatal, error, warn, info, debug, trace, got "loud"',
      'workers/a/config/worker.yaml: php.pool.max_worker: unknown key; did you mean max_workers?',
      'workers/b/config/worker.yaml: php.pool.manager: must be one of static, dynamic, ondemand, got "fork"',
      'workers/c/config/worker.yaml: YAML: line 2 column 1: Tabs are not allowed as indentation',
    ]);
    assert.deepEqual(error.problems[0], { file: 'config/server.yaml', key: 'server.port', message: 'must be a number, got "x"' });
    assert.equal(error.name, 'ConfigError');
  });

  test('cross-app checks still run when server.yaml is valid and workers have errors', () => {
    const root = project({ ...app('a', 'path: /x\n'), ...app('b', 'path: /x\n'), ...app('c', 'path: /c\nenabled: maybe\n') });
    assert.deepEqual(problemsOf(root), [
      'workers/c/config/worker.yaml: enabled: must be true or false, got "maybe"',
      'workers/b/config/worker.yaml: path: /x is also the path of workers/a/config/worker.yaml',
    ]);
  });

  test('formatProblem without a key', () => {
    assert.equal(formatProblem({ file: 'f.yaml', key: '', message: 'broken' }), 'f.yaml: broken');
    assert.equal(formatProblem({ file: 'f.yaml', key: 'a.b', message: 'broken' }), 'f.yaml: a.b: broken');
  });
});
