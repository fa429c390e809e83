// Tests for the config loader's error messages, exactly as an operator reads them ("file: key:
// problem"), every problem of every file in one ConfigError. Loading itself is in load.test.ts.

import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { app, project, removeProjects } from '../../test/helpers/config-project.js';
import { ConfigError, formatProblem, loadConfig, type LoadOptions } from './load.js';

after(removeProjects);

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
    { name: 'a trusted_proxies entry that is not an address', files: { 'config/server.yaml': 'server:\n  trusted_proxies: [10.0.0.0/8, lb.internal]\n', 'workers/': '' }, want: [`${S}: server.trusted_proxies: trusted proxy "lb.internal" is not an IP address, a CIDR range or private_ranges`] },
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
