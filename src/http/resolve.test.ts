// Tests for what a path inside an app resolves to, against a document root built in a temp folder:
// the .php split (ASCII only: the FrankenPHP GHSA-3g8v-8r37-cgjm class), exact extensions, dotfiles,
// backups and PHP source never served, directory redirects and indexes, the front controller.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isDeniedStatic, isHiddenPath, resolvePath, splitScriptPath, type Resolution, type ResolveOptions } from './resolve.js';

describe('splitScriptPath', () => {
  const php = ['.php'];
  const rows: Array<{ path: string; extensions?: string[]; want: { script: string; pathInfo: string } | null }> = [
    { path: '/a.php', want: { script: '/a.php', pathInfo: '' } },
    { path: '/a.php/b/c', want: { script: '/a.php', pathInfo: '/b/c' } },
    { path: '/a.php/', want: { script: '/a.php', pathInfo: '/' } },
    { path: '/dir/a.php/x', want: { script: '/dir/a.php', pathInfo: '/x' } },
    { path: '/a.PHP/b', want: { script: '/a.PHP', pathInfo: '/b' } },
    { path: '/a.pHp', want: { script: '/a.pHp', pathInfo: '' } },
    { path: '/x/a.php/b.php', want: { script: '/x/a.php', pathInfo: '/b.php' } },
    { path: '/a.phpx/b.php', want: { script: '/a.phpx/b.php', pathInfo: '' } },
    { path: '/a.php.jpg/b.php/c', want: { script: '/a.php.jpg/b.php', pathInfo: '/c' } },
    { path: '/evil.jpg/x.php', want: { script: '/evil.jpg/x.php', pathInfo: '' } },
    { path: '/a.php5', want: null },
    { path: '/a.php.jpg', want: null },
    { path: '/php', want: null },
    { path: '/aphp', want: null },
    { path: '/a.ph', want: null },
    { path: '', want: null },
    { path: '/a.phtml/b.php', extensions: ['.php', '.phtml'], want: { script: '/a.phtml', pathInfo: '/b.php' } },
    { path: '/a.php/b.phtml', extensions: ['.php', '.phtml'], want: { script: '/a.php', pathInfo: '/b.phtml' } },
    { path: '/a.php5/x', extensions: ['.php', '.php5'], want: { script: '/a.php5', pathInfo: '/x' } },
    // GHSA-3g8v-8r37-cgjm / GHSA-v4h7-cj44-8fc8: Unicode lookalikes must not split, nor shift the split.
    { path: '/a.\uff50\uff48\uff50', want: null },
    { path: '/a.\uff0ephp', want: null },
    { path: '/a.\u0440hp', want: null },
    { path: '/a.p\u0125p', want: null },
    { path: '/a.php\u0307', want: null },
    { path: '/a.\u24df\u24d7\u24df', want: null },
    { path: '/a.\u0131nc', extensions: ['.inc'], want: null },
    { path: '/a.\u0130nc', extensions: ['.inc'], want: null },
    { path: '/a.\u212as', extensions: ['.ks'], want: null },
    { path: '/a.k\u017f', extensions: ['.ks'], want: null },
    { path: '/\u0130\u0130\u0130.php/info', want: { script: '/\u0130\u0130\u0130.php', pathInfo: '/info' } },
    { path: '/\u023a\u023a\u023a\u023a.php/x.jpg', want: { script: '/\u023a\u023a\u023a\u023a.php', pathInfo: '/x.jpg' } },
    { path: '/\u212a\u212a.txt/a.php/b', want: { script: '/\u212a\u212a.txt/a.php', pathInfo: '/b' } },
    { path: '/\u0130.jpg/.php.php', want: { script: '/\u0130.jpg/.php.php', pathInfo: '' } },
  ];
  for (const row of rows) {
    test(`${JSON.stringify(row.path)} with ${(row.extensions ?? php).join(',')}`, () => {
      assert.deepEqual(splitScriptPath(row.path, row.extensions ?? php), row.want);
    });
  }
});

describe('isHiddenPath', () => {
  const rows: Array<[string, boolean]> = [
    ['/.env', true],
    ['/.git/config', true],
    ['/.git', true],
    ['/sub/.htaccess', true],
    ['/.user.ini', true],
    ['/a/.svn/entries', true],
    ['/.well-known/acme-challenge/x', false],
    ['/.well-known/.git', true],
    ['/.WELL-KNOWN/x', true],
    ['/index.php', false],
    ['/a.b/c.d', false],
    ['/', false],
    ['', false],
  ];
  for (const [path, want] of rows) test(`${path || '""'} -> ${want}`, () => assert.equal(isHiddenPath(path), want));
});

describe('isDeniedStatic', () => {
  const denied = [
    '/x.php', '/x.PHP', '/x.php5', '/x.php7', '/x.phtml', '/x.pht', '/x.phps', '/x.phar', '/x.inc', '/x.module', '/x.install',
    '/index.php~', '/index.php.bak', '/index.php.BAK', '/index.php.old', '/index.php.orig', '/index.php.save',
    '/index.php.swp', '/index.php.swo', '/config.php.dist', '/x.rej', '/#index.php#', '/a/#notes#',
    '/index.php.tmp', '/index.php.backup', '/index.php.copy', '/index.php_old', '/index.php-2024', '/index.php.1',
  ];
  const allowed = ['/style.css', '/app.js', '/index.html', '/photo.jpg', '/php.png', '/a.php.html', '/styles.module.css.map.json', '/README', '/x.phpx', '/#hash', '/a~b.txt'];
  for (const path of denied) test(`denied: ${path}`, () => assert.equal(isDeniedStatic(path, ['.php']), true));
  for (const path of allowed) test(`served: ${path}`, () => assert.equal(isDeniedStatic(path, ['.php']), false));
  test('a configured PHP extension is never static', () => {
    assert.equal(isDeniedStatic('/page.tpl', ['.php', '.tpl']), true);
    assert.equal(isDeniedStatic('/page.TPL', ['.php', '.tpl']), true);
  });
});

describe('resolvePath', () => {
  let parent: string;
  let root: string;
  let options: ResolveOptions;

  const files: Record<string, string> = {
    'index.php': '<?php echo "front";',
    'hello.php': '<?php echo "hello";',
    'x.PHP': '<?php echo "upper";',
    'info.phtml': '<?php phpinfo();',
    'lib.inc': '<?php $secret = 1;',
    'app.phar': 'phar',
    'page.html': '<p>page</p>',
    'evil.jpg': '<?php system($_GET["c"]);',
    'file.txt': 'text',
    'a.\uff50\uff48\uff50': '<?php echo "fullwidth";',
    'caf\u00e9.php': '<?php echo "café";',
    '\u0130\u0130.php': '<?php echo "dotted";',
    '.env': 'SECRET=1',
    '.git/config': '[core]',
    '.htaccess': 'Deny from all',
    '.user.ini': 'auto_prepend_file=x',
    '.well-known/acme-challenge/token': 'acme',
    'index.php~': 'backup',
    'index.php.bak': 'backup',
    'index.php.swp': 'swap',
    '#index.php#': 'autosave',
    'index.php_old': 'copy',
    'sub/index.php': '<?php echo "sub";',
    'static/index.html': '<p>static</p>',
    'both/index.php': '<?php echo "both";',
    'both/index.html': '<p>both</p>',
    'htmlonly/index.html': '<p>html</p>',
    'noindex/a.txt': 'a',
    'dir.php/index.php': '<?php echo "dir";',
    'srcindex/index.phtml': '<?php',
  };

  before(() => {
    parent = mkdtempSync(join(tmpdir(), 'tq-resolve-'));
    root = join(parent, 'public');
    for (const [name, content] of Object.entries(files)) {
      const path = join(root, name);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, content);
    }
    writeFileSync(join(parent, 'outside.php'), '<?php echo "outside";');
    options = { documentRoot: root, indexFiles: ['index.php', 'index.html'], frontController: 'index.php', extensions: ['.php'] };
  });
  after(() => rmSync(parent, { recursive: true, force: true }));

  /** The expected resolution: `file` is relative to the document root. */
  type Want = { kind: Resolution['kind']; script?: string; pathInfo?: string; file?: string; path?: string; reason?: string };
  const php = (script: string, pathInfo = ''): Want => ({ kind: 'php', script, pathInfo });
  const front = php('/index.php');

  function expect(path: string, want: Want, overrides: Partial<ResolveOptions> = {}): void {
    const got = resolvePath(path, { ...options, ...overrides });
    const shown = `${JSON.stringify(path)} resolved to ${JSON.stringify(got)}`;
    assert.equal(got.kind, want.kind, shown);
    if (got.kind === 'php') {
      assert.equal(got.script, want.script, shown);
      assert.equal(got.pathInfo, want.pathInfo, shown);
      assert.equal(got.filename, root + got.script, shown);
    } else if (got.kind === 'static') {
      assert.equal(got.file, join(root, want.file!), shown);
      assert.ok(got.stats.isFile(), shown);
    } else if (got.kind === 'redirect') {
      assert.equal(got.path, want.path, shown);
    } else if (want.reason !== undefined) {
      assert.equal(got.reason, want.reason, shown);
    }
  }

  const rows: Array<{ name: string; path: string; want: Want; options?: Partial<ResolveOptions> }> = [
    { name: 'a PHP script', path: '/hello.php', want: php('/hello.php') },
    { name: 'a PHP script with PATH_INFO', path: '/hello.php/a/b', want: php('/hello.php', '/a/b') },
    { name: 'a PHP script with a non-ASCII name', path: '/caf\u00e9.php/x', want: php('/caf\u00e9.php', '/x') },
    { name: 'GHSA-3g8v-8r37-cgjm: a name whose lower case is longer splits at the real .php', path: '/\u0130\u0130.php/info', want: php('/\u0130\u0130.php', '/info') },
    { name: 'GHSA-3g8v-8r37-cgjm: fullwidth .ｐｈｐ is not PHP', path: '/a.\uff50\uff48\uff50', want: { kind: 'static', file: 'a.\uff50\uff48\uff50' } },
    { name: '/evil.jpg/x.php never runs evil.jpg (CVE-2019-11043 class)', path: '/evil.jpg/x.php', want: front },
    { name: '/evil.jpg/x.php without a front controller is not found', path: '/evil.jpg/x.php', want: { kind: 'not-found' }, options: { frontController: null } },
    { name: 'evil.jpg itself is a static file', path: '/evil.jpg', want: { kind: 'static', file: 'evil.jpg' } },
    { name: '/x.PHP is not run (extensions match exactly) nor served', path: '/x.PHP', want: { kind: 'not-found' } },
    { name: '/x.PHP/info is not run as x.PHP', path: '/x.PHP/info', want: front },
    { name: 'a missing script falls back to the front controller', path: '/missing.php', want: front },
    { name: '.phtml is not run with extensions [.php], nor served', path: '/info.phtml', want: { kind: 'not-found' } },
    { name: '.inc is never served', path: '/lib.inc', want: { kind: 'not-found' } },
    { name: '.phar is never served', path: '/app.phar', want: { kind: 'not-found' } },
    { name: 'a static file', path: '/page.html', want: { kind: 'static', file: 'page.html' } },
    { name: '.env is not found', path: '/.env', want: { kind: 'not-found', reason: 'hidden path (a segment starts with .)' } },
    { name: '.git/config is not found', path: '/.git/config', want: { kind: 'not-found' } },
    { name: '.git/ is not found', path: '/.git/', want: { kind: 'not-found' } },
    { name: '.htaccess is not found', path: '/.htaccess', want: { kind: 'not-found' } },
    { name: '.user.ini is not found', path: '/.user.ini', want: { kind: 'not-found' } },
    { name: 'a missing dotfile is not found, not the front controller', path: '/.missing', want: { kind: 'not-found' } },
    { name: 'PATH_INFO with a dotfile is not found', path: '/hello.php/.env', want: { kind: 'not-found' } },
    { name: '/.well-known is allowed (RFC 8615)', path: '/.well-known/acme-challenge/token', want: { kind: 'static', file: '.well-known/acme-challenge/token' } },
    { name: 'index.php~ is never static', path: '/index.php~', want: { kind: 'not-found' } },
    { name: 'index.php.bak is never static', path: '/index.php.bak', want: { kind: 'not-found' } },
    { name: 'index.php.swp is never static', path: '/index.php.swp', want: { kind: 'not-found' } },
    { name: '#index.php# is never static', path: '/#index.php#', want: { kind: 'not-found' } },
    { name: 'index.php_old is never static', path: '/index.php_old', want: { kind: 'not-found' } },
    { name: 'the app root without a slash redirects', path: '', want: { kind: 'redirect', path: '/' } },
    { name: 'the app root runs index.php', path: '/', want: php('/index.php') },
    { name: 'a directory without a slash redirects', path: '/sub', want: { kind: 'redirect', path: '/sub/' } },
    { name: 'a directory runs its index.php', path: '/sub/', want: php('/sub/index.php') },
    { name: 'a directory serves its index.html', path: '/static/', want: { kind: 'static', file: 'static/index.html' } },
    { name: 'a static-index directory without a slash redirects', path: '/static', want: { kind: 'redirect', path: '/static/' } },
    { name: 'index files are tried in order', path: '/both/', want: php('/both/index.php') },
    { name: 'index order follows the config', path: '/both/', want: { kind: 'static', file: 'both/index.html' }, options: { indexFiles: ['index.html', 'index.php'] } },
    { name: 'a directory named like a script redirects', path: '/dir.php', want: { kind: 'redirect', path: '/dir.php/' } },
    { name: 'a directory named like a script runs its index', path: '/dir.php/', want: php('/dir.php/index.php') },
    { name: 'a directory without an index goes to the front controller', path: '/noindex/', want: front },
    { name: 'a directory without an index and a slash goes to the front controller', path: '/noindex', want: front },
    { name: 'a directory without an index and no front controller', path: '/noindex/', want: { kind: 'not-found', reason: 'directory without an index file' }, options: { frontController: null } },
    { name: 'an index in a source extension not run is skipped, not served', path: '/srcindex/', want: front, options: { indexFiles: ['index.phtml'] } },
    { name: 'pretty URLs go to the front controller', path: '/blog/2024/hello-world', want: front },
    { name: 'the front controller may be given with a leading slash', path: '/pretty', want: front, options: { frontController: '/index.php' } },
    { name: 'no front controller: not found', path: '/pretty', want: { kind: 'not-found', reason: 'no such file' }, options: { frontController: null } },
    { name: 'a front controller that does not exist: not found', path: '/pretty', want: { kind: 'not-found' }, options: { frontController: 'missing.php' } },
    { name: 'a front controller that is not PHP is not run', path: '/pretty', want: { kind: 'not-found' }, options: { frontController: 'page.html' } },
    { name: 'a front controller outside the root is never run', path: '/pretty', want: { kind: 'not-found' }, options: { frontController: '../outside.php' } },
    { name: 'an index file outside the root is never run', path: '/sub/', want: php('/sub/index.php'), options: { indexFiles: ['../outside.php', 'index.php'] } },
    { name: 'an index file outside the root is never used at the root', path: '/', want: { kind: 'not-found' }, options: { indexFiles: ['../outside.php'], frontController: null } },
    { name: 'a file asked for as a directory goes to the front controller', path: '/file.txt/', want: front },
    { name: 'a file asked for as a directory without a front controller', path: '/file.txt/', want: { kind: 'not-found' }, options: { frontController: null } },
    { name: 'a path below a file', path: '/file.txt/x', want: { kind: 'not-found' }, options: { frontController: null } },
  ];
  for (const row of rows) test(row.name, () => expect(row.path, row.want, row.options));

  test('a static resolution carries the file stats', () => {
    const got = resolvePath('/file.txt', options);
    assert.equal(got.kind, 'static');
    if (got.kind === 'static') assert.equal(got.stats.size, 4);
  });
});
