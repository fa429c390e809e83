#!/usr/bin/env node
// Sets up whatever is missing before `npm start`, `npm test` or `npm run bench`: npm dependencies,
// the TypeScript build, and the Debian/Ubuntu packages the chosen task needs (php-cgi, php-fpm, and
// for tests nginx, cgi-fcgi, MariaDB and the PHP apps the app tests run, for benchmarks wrk and
// caddy). Plain Node, no dependencies, so it
// runs on a fresh clone. Usage: node scripts/setup.mjs [start|test|bench]

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const task = process.argv[2] ?? 'start';

/**
 * What each task needs from the system: a binary to look for (names), a file that must exist (file)
 * or a check function (check), and the apt package(s) that provide it (pkg).
 */
const SYSTEM = {
  start: [
    { what: 'php-cgi', names: ['php-cgi', /^php-cgi\d+(\.\d+)?$/], pkg: 'php-cgi' },
    { what: 'php-fpm', names: ['php-fpm', /^php-fpm\d+(\.\d+)?$/], pkg: 'php-fpm' },
  ],
  test: [
    { what: 'nginx', names: ['nginx'], pkg: 'nginx' },
    { what: 'cgi-fcgi', names: ['cgi-fcgi'], pkg: 'libfcgi-bin' },
    // The dashboard test drives a real headless Chromium.
    { what: 'chromium', names: ['chromium'], pkg: 'chromium' },
    { what: 'fonts for its screenshot', file: '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf', pkg: 'fonts-liberation' },
    // The metrics tests parse /metrics with Prometheus' own Python client parser (text and OpenMetrics).
    { what: 'python3-prometheus-client', file: '/usr/lib/python3/dist-packages/prometheus_client/openmetrics/parser.py', pkg: 'python3-prometheus-client' },
    // Real applications from Debian's archive (test/apps-*.test.ts), with a MariaDB the tests start.
    { what: 'MariaDB server', names: ['mariadbd'], pkg: 'mariadb-server' },
    { what: "PHP's mysqli", check: () => phpModule('mysqli'), pkg: 'php-mysql' },
    { what: "PHP's GD", check: () => phpModule('gd'), pkg: 'php-gd' },
    { what: "PHP's XML", check: () => phpModule('xml'), pkg: 'php-xml' },
    { what: "PHP's mbstring", check: () => phpModule('mbstring'), pkg: 'php-mbstring' },
    // With the php metapackage, or apt answers wordpress's "libapache2-mod-php | php" with Apache's module.
    { what: 'WordPress', file: '/usr/share/wordpress/wp-settings.php', pkg: ['wordpress', 'php'] },
    { what: "WordPress's default theme", file: '/usr/share/wordpress/wp-content/themes/twentytwentythree/style.css', pkg: 'wordpress-theme-twentytwentythree' },
    { what: 'DokuWiki', file: '/usr/share/dokuwiki/doku.php', pkg: 'dokuwiki' },
    { what: 'Adminer', file: '/etc/adminer/conf.php', pkg: 'adminer' },
  ],
  bench: [
    { what: 'nginx', names: ['nginx'], pkg: 'nginx' },
    { what: 'wrk', names: ['wrk'], pkg: 'wrk' },
    { what: 'caddy', names: ['caddy'], pkg: 'caddy' },
  ],
};

function log(message) {
  process.stderr.write(`[setup] ${message}\n`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 10)) {
    log(`Node.js ${process.versions.node} is too old: TQServer needs Node.js 20.10 or newer.`);
    process.exit(1);
  }
}

/** Directories searched for binaries: PATH plus the sbin directories Debian puts php-fpm and nginx in. */
function searchDirs() {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin']) if (!dirs.includes(extra)) dirs.push(extra);
  return dirs;
}

function findBinary(names) {
  for (const dir of searchDirs()) {
    let entries;
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const hit = typeof name === 'string' ? entries.find((e) => e === name) : entries.find((e) => name.test(e));
      if (!hit) continue;
      try {
        accessSync(join(dir, hit), constants.X_OK);
        return join(dir, hit);
      } catch {
        // not executable: keep looking
      }
    }
  }
  return null;
}

/** True when a PHP extension is installed for some PHP version (/usr/lib/php/API/NAME.so). */
function phpModule(name) {
  let apis;
  try {
    apis = readdirSync('/usr/lib/php');
  } catch {
    return false;
  }
  return apis.some((api) => existsSync(join('/usr/lib/php', api, `${name}.so`)));
}

/** An item is there when its check passes, its file exists, or one of its binaries is found. */
function present(item) {
  if (item.check) return item.check();
  return item.file ? existsSync(item.file) : findBinary(item.names) !== null;
}

function ensureSystemPackages() {
  const needed = task === 'start' ? SYSTEM.start : [...SYSTEM.start, ...SYSTEM[task]];
  const missing = needed.filter((item) => !present(item));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.flatMap((item) => item.pkg))];
  const what = missing.map((item) => item.what).join(', ');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = findBinary(['apt-get']) !== null;
  if (!isRoot || !hasApt) {
    const how = hasApt
      ? `sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}`
      : `install ${packages.join(', ')} with your system's package manager`;
    log(`missing: ${what}. TQServer ${task === 'start' ? 'runs PHP through them' : `needs them to ${task}`}.`);
    log(`Run: ${how}`);
    log(`then run this command again.`);
    process.exit(1);
  }
  log(`installing ${packages.join(' ')} (for ${what}) with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update', '-q'], { env }) !== 0) {
    log('apt-get update failed; check the network and /etc/apt/sources.list, then run this command again.');
    process.exit(1);
  }
  if (run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], { env }) !== 0) {
    log(`apt-get install ${packages.join(' ')} failed; see the messages above.`);
    process.exit(1);
  }
  const still = needed.filter((item) => !present(item));
  if (still.length > 0) {
    log(`installed packages, but still cannot find: ${still.map((item) => item.what).join(', ')}`);
    process.exit(1);
  }
}

function ensureDependencies() {
  const installed = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  const stale =
    !existsSync(installed) ||
    (existsSync(lock) && statSync(lock).mtimeMs > statSync(installed).mtimeMs) ||
    statSync(join(root, 'package.json')).mtimeMs > statSync(installed).mtimeMs;
  if (!stale) return;
  log('installing npm dependencies');
  const args = existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  if (run('npm', args, { env: { ...process.env, npm_config_ignore_scripts: 'true' } }) !== 0) {
    log(`npm ${args[0]} failed; see the messages above.`);
    process.exit(1);
  }
}

function ensureBuild() {
  // Always incremental: tsc skips what did not change, and a failed type check never goes unnoticed.
  if (run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']) !== 0) {
    log('the TypeScript build failed; see the errors above.');
    process.exit(1);
  }
}

if (!['start', 'test', 'bench'].includes(task)) {
  log(`unknown task ${JSON.stringify(task)}: use start, test or bench`);
  process.exit(2);
}
checkNode();
ensureDependencies();
ensureBuild();
ensureSystemPackages();
