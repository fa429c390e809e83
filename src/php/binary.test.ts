// Finding PHP: version parsing and features (tables), -d escaping (a table, then every tricky value
// read back by the real php-cgi), the argument list, and detectPhp against real and fake binaries.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigValueError, PhpBinaryError } from '../errors.js';
import { findBinary, tempDir } from '../../test/helpers/peers.js';
import {
  DEFAULT_PHP_CGI_SETTINGS,
  buildPhpCgiArgs,
  candidates,
  detectPhp,
  featuresFor,
  formatIniSetting,
  isIniExpression,
  parsePhpVersion,
  type PhpVersion,
} from './binary.js';

const PHP_CGI_V = `PHP 8.2.36 (cgi-fcgi) (built: Nov 18 2026 20:02:04)
Copyright (c) The PHP Group
Zend Engine v4.2.36, Copyright (c) Zend Technologies
    with Zend OPcache v8.2.36, Copyright (c), by Zend Technologies
`;

function version(text: string): PhpVersion {
  const parsed = parsePhpVersion(`PHP ${text} (cgi-fcgi)`);
  assert.ok(parsed, text);
  return parsed;
}

describe('parsePhpVersion', () => {
  const table: Array<[string, PhpVersion | null]> = [
    [PHP_CGI_V, { major: 8, minor: 2, patch: 36, text: '8.2.36' }],
    ['PHP 8.3.0-dev (cli) (built: Jan  1 2024)', { major: 8, minor: 3, patch: 0, text: '8.3.0-dev' }],
    ['PHP 7.4.3-4ubuntu2.19 (cgi-fcgi) (built: Jun 27 2023)', { major: 7, minor: 4, patch: 3, text: '7.4.3-4ubuntu2.19' }],
    ['PHP 5.6.40 (fpm-fcgi) (built: Jan 12 2019)', { major: 5, minor: 6, patch: 40, text: '5.6.40' }],
    ['X-Powered-By: nothing\nPHP 8.1.2 (cgi-fcgi)', { major: 8, minor: 1, patch: 2, text: '8.1.2' }],
    ['', null],
    ['Python 3.11.2', null],
    ['PHP 8.2 (cli)', null],
    ['php 8.2.1 (cli)', null],
    ['  PHP 8.2.1 (cli)', null],
  ];
  for (const [output, expected] of table) {
    test(`${JSON.stringify(output.split('\n')[0])} -> ${expected ? expected.text : 'null'}`, () => {
      assert.deepEqual(parsePhpVersion(output), expected);
    });
  }
});

describe('featuresFor', () => {
  const table: Array<[string, string, { opcache: boolean; jit: boolean; fibers: boolean }]> = [
    ['8.2.36', PHP_CGI_V, { opcache: true, jit: true, fibers: true }],
    ['8.2.36', 'PHP 8.2.36 (cgi-fcgi)', { opcache: false, jit: true, fibers: true }],
    ['8.1.0', 'with Zend OPcache v8.1.0', { opcache: true, jit: true, fibers: true }],
    ['8.0.30', 'with Zend OPcache v8.0.30', { opcache: true, jit: true, fibers: false }],
    ['7.4.33', 'with Zend OPcache v7.4.33', { opcache: true, jit: false, fibers: false }],
    ['5.5.0', 'with Zend OPcache v7.0.3', { opcache: true, jit: false, fibers: false }],
    ['5.4.45', 'with Zend OPcache v7.0.3', { opcache: false, jit: false, fibers: false }],
    ['9.0.0', '', { opcache: false, jit: true, fibers: true }],
  ];
  for (const [text, output, expected] of table) {
    test(`${text}${output.includes('OPcache') ? ' with OPcache' : ''}`, () => {
      assert.deepEqual(featuresFor(version(text), output), expected);
    });
  }
});

describe('formatIniSetting', () => {
  test('plain values, INI keywords and constant expressions go raw', () => {
    const raw: Array<[string | number | boolean, string]> = [
      ['128M', '128M'],
      [0, '0'],
      [-1, '-1'],
      [1.5, '1.5'],
      [true, '1'],
      [false, '0'],
      ['', ''],
      ['/var/lib/php/sessions', '/var/lib/php/sessions'],
      ['http://proxy.local:3128/', 'http://proxy.local:3128/'],
      ['Europe/Paris', 'Europe/Paris'],
      ['off', 'off'],
      ['E_ALL', 'E_ALL'],
      ['E_ALL & ~E_NOTICE', 'E_ALL & ~E_NOTICE'],
      ['E_ALL&~E_DEPRECATED&~E_STRICT', 'E_ALL&~E_DEPRECATED&~E_STRICT'],
      ['E_ALL & ~(E_NOTICE | E_DEPRECATED)', 'E_ALL & ~(E_NOTICE | E_DEPRECATED)'],
    ];
    for (const [value, expected] of raw) assert.equal(formatIniSetting('x.y', value), `x.y=${expected}`, JSON.stringify(value));
  });

  test('an expression starting with an operator gets 0| so php-cgi does not quote it', () => {
    assert.equal(formatIniSetting('error_reporting', '~E_NOTICE'), 'error_reporting=0|~E_NOTICE');
    assert.equal(formatIniSetting('error_reporting', '(E_ALL)'), 'error_reporting=0|(E_ALL)');
    assert.equal(formatIniSetting('error_reporting', '!E_ALL'), 'error_reporting=0|!E_ALL');
  });

  test("values with ; = \" ' $ spaces and the like are quoted", () => {
    const quoted: Array<[string, string]> = [
      ['a b', `'a b'`],
      ['a;b', `'a;b'`],
      ['a=b', `'a=b'`],
      ['say "hi"', `'say "hi"'`],
      ['${HOME}', `'\${HOME}'`],
      ['a\\b', `'a\\b'`],
      ['~x', `'~x'`],
      ['HELLO WORLD', `'HELLO WORLD'`],
      ["it's", `"it's"`],
      [`it's "x"`, `"it's \\"x\\""`],
      ["it's ${HOME}", `"it's \\\${HOME}"`],
      ["it's a\\", `"it's a\\\\"`],
    ];
    for (const [value, expected] of quoted) assert.equal(formatIniSetting('user_agent', value), `user_agent=${expected}`, JSON.stringify(value));
  });

  test('newline, carriage return and NUL are refused with ConfigValueError', () => {
    for (const value of ['a\nextension=evil.so', 'a\rb', 'a\0b', '\n']) {
      assert.throws(() => formatIniSetting('user_agent', value), (error: unknown) => {
        assert.ok(error instanceof ConfigValueError);
        assert.equal(error.code, 'CONFIG_INVALID');
        assert.match(error.message, /user_agent: value contains a line break or NUL/);
        return true;
      });
    }
  });

  test('a malformed constant expression is refused: php-cgi would drop every -d after it', () => {
    for (const value of ['E_ALL |', 'E_ALL && E_NOTICE', 'E_ALL & (E_NOTICE', 'E_ALL ~E_NOTICE', 'E_ALL & ~E_NOTICE ']) {
      assert.throws(() => formatIniSetting('error_reporting', value), (error: unknown) => {
        assert.ok(error instanceof ConfigValueError);
        assert.match(error.message, /error_reporting: .* looks like a constant expression but is not a well-formed one/);
        return true;
      }, JSON.stringify(value));
    }
  });

  test('bad names are refused', () => {
    for (const name of ['', 'a b', 'a=b', 'a;b', 'a\nb', 'x[]', "'x'"]) {
      assert.throws(() => formatIniSetting(name, '1'), (error: unknown) => {
        assert.ok(error instanceof ConfigValueError);
        assert.match(error.message, /ini setting name .* has characters an ini name cannot have/);
        return true;
      }, JSON.stringify(name));
    }
  });

  test('isIniExpression follows the INI grammar', () => {
    for (const text of ['E_ALL', '1', 'E_ALL & ~E_NOTICE', '~E_NOTICE', '!(A|B)^C', '((E_ALL))', ' E_ALL ']) assert.equal(isIniExpression(text), true, text);
    for (const text of ['', 'E_ALL |', 'A B', '& A', 'A & & B', '(A', 'A)', 'a & b', 'E_ALL + 1']) assert.equal(isIniExpression(text), false, text);
  });
});

describe('formatIniSetting against the real php-cgi', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let phpCgi: string;
  before(async () => {
    phpCgi = findBinary(['php-cgi', /^php-cgi\d+(\.\d+)?$/]);
    dir = await tempDir();
    await writeFile(
      join(dir.path, 'ini.php'),
      `<?php echo json_encode(['ua' => ini_get('user_agent'), 'er' => ini_get('error_reporting'), 'fix' => ini_get('cgi.fix_pathinfo')]);\n`,
    );
  });
  after(() => dir.cleanup());

  /** Runs php-cgi in CGI mode with these -d arguments (and a last one to prove none were dropped). */
  function iniGet(args: string[]): Promise<{ ua: string | false; er: string | false; fix: string | false; stderr: string }> {
    return new Promise((resolve, reject) => {
      execFile(phpCgi, ['-n', '-q', ...args, '-d', 'cgi.fix_pathinfo=0', join(dir.path, 'ini.php')], { env: {} }, (error, stdout, stderr) => {
        if (error) reject(error);
        else resolve({ ...JSON.parse(stdout), stderr });
      });
    });
  }

  const tricky = [
    'a b',
    'a;b',
    'x ; y',
    'a=b',
    'a # b',
    '#comment',
    '[section]',
    'say "hi"',
    '"',
    "'",
    "it's",
    `it's "x"`,
    `a'b"c`,
    '${HOME}',
    'a${',
    '$x',
    "it's ${HOME}",
    "it's $x",
    'a\\b',
    'a\\\\b',
    'ends\\',
    "it's a\\",
    '\\"',
    "\\'",
    '~x',
    '!x',
    '{x}',
    'HELLO WORLD',
    '  leading and trailing  ',
    'tab\there',
    'é ü 漢字',
    '/var/lib/php',
    'user@example.org',
    '50%',
    'a:b,c',
  ];
  test('every tricky value is read back by ini_get exactly as given', async () => {
    const results = await Promise.all(tricky.map((value) => iniGet(['-d', formatIniSetting('user_agent', value)])));
    results.forEach((result, i) => {
      assert.equal(result.stderr, '', `php-cgi complained about ${JSON.stringify(tricky[i])}`);
      assert.equal(result.ua, tricky[i], `${JSON.stringify(tricky[i])} sent as ${formatIniSetting('user_agent', tricky[i]!)}`);
      assert.equal(result.fix, '0', 'the -d after it was kept');
    });
  });

  test('all tricky values in one command line: none cuts or injects another', async () => {
    // Each value goes to user_agent in turn; the last one wins and every other setting survives.
    const args = tricky.flatMap((value) => ['-d', formatIniSetting('user_agent', value)]);
    const result = await iniGet([...args, '-d', formatIniSetting('error_reporting', 'E_ALL & ~E_NOTICE')]);
    assert.equal(result.stderr, '');
    assert.equal(result.ua, tricky.at(-1));
    assert.equal(result.er, String(32767 & ~8));
  });

  test('constant expressions are evaluated as php.ini would, including one starting with ~', async () => {
    const cases: Array<[string, number]> = [
      ['E_ALL & ~E_NOTICE', 32767 & ~8],
      ['E_ALL & ~(E_NOTICE | E_DEPRECATED)', 32767 & ~(8 | 8192)],
      ['~E_NOTICE', ~8],
      ['(E_ALL)', 32767],
      ['E_ALL', 32767],
    ];
    for (const [value, expected] of cases) {
      const result = await iniGet(['-d', formatIniSetting('error_reporting', value)]);
      assert.equal(result.er, String(expected), value);
      assert.equal(result.stderr, '');
    }
  });

  test('INI keywords keep their php.ini meaning', async () => {
    for (const [value, expected] of [['on', '1'], ['off', ''], ['none', ''], ['true', '1']] as const) {
      assert.equal((await iniGet(['-d', formatIniSetting('user_agent', value)])).ua, expected, value);
    }
  });

  test('why values are checked: a raw newline or a broken expression costs the settings after it', async () => {
    const injected = await iniGet(['-d', 'user_agent=a\nerror_reporting=1']);
    assert.equal(injected.er, '1', 'the newline injected a second directive');
    const broken = await iniGet(['-d', 'user_agent=E_ALL |']);
    assert.match(broken.stderr, /syntax error/);
    assert.equal(broken.fix, '1', 'cgi.fix_pathinfo=0 after the syntax error was lost');
  });
});

describe('buildPhpCgiArgs', () => {
  test('-c, -b, the defaults cgi.fix_pathinfo=1 and cgi.discard_path=1, then one -d per setting in order', () => {
    assert.deepEqual(buildPhpCgiArgs({ configFile: '/etc/php.ini', bind: '/run/w1.sock', settings: { memory_limit: '64M', 'session.name': 'my sid' } }), [
      '-c',
      '/etc/php.ini',
      '-b',
      '/run/w1.sock',
      '-d',
      'cgi.fix_pathinfo=1',
      '-d',
      'cgi.discard_path=1',
      '-d',
      'memory_limit=64M',
      '-d',
      "session.name='my sid'",
    ]);
  });

  test('no -c without a config file; a TCP bind; settings override the defaults', () => {
    assert.deepEqual(DEFAULT_PHP_CGI_SETTINGS, { 'cgi.fix_pathinfo': 1, 'cgi.discard_path': 1 });
    assert.deepEqual(buildPhpCgiArgs({ bind: '127.0.0.1:9100' }), ['-b', '127.0.0.1:9100', '-d', 'cgi.fix_pathinfo=1', '-d', 'cgi.discard_path=1']);
    assert.deepEqual(buildPhpCgiArgs({ configFile: null, bind: '127.0.0.1:9100', settings: { 'cgi.fix_pathinfo': 0 } }), [
      '-b',
      '127.0.0.1:9100',
      '-d',
      'cgi.fix_pathinfo=0',
      '-d',
      'cgi.discard_path=1',
    ]);
  });

  test('a bad value is refused before anything runs', () => {
    assert.throws(() => buildPhpCgiArgs({ bind: '/run/w.sock', settings: { user_agent: 'a\nb' } }), ConfigValueError);
  });
});

describe('detectPhp', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  before(async () => {
    dir = await tempDir();
  });
  after(() => dir.cleanup());

  /** A folder holding fake binaries: name -> shell script body (or a symlink target). */
  async function binDir(name: string, files: Record<string, string | { link: string }>): Promise<string> {
    const path = join(dir.path, name);
    await mkdir(path);
    for (const [file, content] of Object.entries(files)) {
      if (typeof content === 'string') {
        await writeFile(join(path, file), `#!/bin/sh\n${content}\n`);
        await chmod(join(path, file), 0o755);
      } else {
        await symlink(content.link, join(path, file));
      }
    }
    return path;
  }

  function assertBinaryError(error: unknown, ...patterns: RegExp[]): true {
    assert.ok(error instanceof PhpBinaryError, String(error));
    assert.equal(error.code, 'PHP_BINARY_NOT_FOUND');
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  }

  test('finds the real php-cgi on PATH with its version and features', async () => {
    const found = await detectPhp('php-cgi');
    assert.equal(found.kind, 'php-cgi');
    assert.match(found.path, /\/php-cgi(\d+(\.\d+)?)?$/);
    assert.equal(found.version.major, 8);
    assert.equal(found.features.fibers, found.version.minor >= 1);
    assert.equal(found.features.jit, true);
  });

  test('finds the real php-fpm under its versioned name in sbin', async () => {
    const found = await detectPhp('php-fpm', null, '/usr/bin:/bin');
    assert.equal(found.kind, 'php-fpm');
    assert.match(found.path, /\/php-fpm\d+\.\d+$|\/php-fpm$/);
    assert.equal(found.version.major, 8);
  });

  test('finds php-cgi8.2 when only the versioned name exists, newest version first', async () => {
    const real = findBinary([/^php-cgi\d+(\.\d+)?$/, 'php-cgi']);
    const path = await binDir('versioned', {
      'php-cgi7.4': 'echo "PHP 7.4.33 (cgi-fcgi)"',
      'php-cgi8.2': { link: real },
      'php-cgi8.10': 'exit 1',
      'php-cgi-not-a-version': 'exit 1',
    });
    assert.deepEqual(candidates('php-cgi', [path]), ['8.10', '8.2', '7.4'].map((v) => join(path, `php-cgi${v}`)));
    // php-cgi8.10 fails to run, so the next one, the real 8.2, is taken.
    const found = await detectPhp('php-cgi', null, path);
    assert.equal(found.path, join(path, 'php-cgi8.2'));
    assert.equal(found.version.major, 8);
  });

  test('the plain name comes before versioned ones in the same folder', async () => {
    const path = await binDir('plain-first', {
      'php-cgi': 'echo "PHP 8.1.27 (cgi-fcgi) (built: today)"',
      'php-cgi8.3': 'echo "PHP 8.3.1 (cgi-fcgi)"',
    });
    const found = await detectPhp('php-cgi', null, path);
    assert.equal(found.path, join(path, 'php-cgi'));
    assert.equal(found.version.text, '8.1.27');
  });

  test('a configured bare name is looked up on PATH', async () => {
    const path = await binDir('bare', { 'php-cgi8.2': { link: findBinary(['php-cgi', /^php-cgi\d/]) } });
    assert.equal((await detectPhp('php-cgi', 'php-cgi8.2', path)).path, join(path, 'php-cgi8.2'));
    await assert.rejects(detectPhp('php-cgi', 'php-cgi9.9', path), (error) =>
      assertBinaryError(error, /php-cgi binary "php-cgi9\.9" not found in /, new RegExp(path), /apt-get install php-cgi/),
    );
  });

  test('nothing on PATH: one error naming what was looked for, where, and how to install', async () => {
    const path = await binDir('empty', {});
    await assert.rejects(detectPhp('php-cgi', null, path), (error) =>
      assertBinaryError(error, /no php-cgi found: looked for php-cgi and php-cgiX\.Y in /, new RegExp(path), /sudo apt-get install php-cgi/, /worker\.yaml/),
    );
  });

  test('a configured path that does not exist', async () => {
    await assert.rejects(detectPhp('php-cgi', '/nonexistent/bin/php-cgi'), (error) =>
      assertBinaryError(error, /no working php-cgi: \/nonexistent\/bin\/php-cgi does not exist/, /apt-get install php-cgi/),
    );
  });

  test('a configured path that is not PHP: /bin/true, a silent script, a failing one, a non-executable file', async () => {
    const path = await binDir('not-php', { silent: '', failing: 'echo "segfault in module init" >&2; exit 139' });
    await writeFile(join(path, 'data'), 'not a program');
    await assert.rejects(detectPhp('php-cgi', '/bin/true'), (error) =>
      assertBinaryError(error, /no working php-cgi: \/bin\/true -v printed no PHP version/, /apt-get install php-cgi/),
    );
    await assert.rejects(detectPhp('php-fpm', join(path, 'silent')), (error) =>
      assertBinaryError(error, /silent -v printed no PHP version/, /apt-get install php-fpm/),
    );
    await assert.rejects(detectPhp('php-cgi', join(path, 'failing')), (error) =>
      assertBinaryError(error, /failing failed to run \(segfault in module init\)/),
    );
    await assert.rejects(detectPhp('php-cgi', join(path, 'data')), (error) => assertBinaryError(error, /data is not executable/));
  });

  test('the PHP CLI or php-fpm configured as php-cgi is refused by its SAPI', async () => {
    const php = findBinary(['php', /^php\d+(\.\d+)?$/]);
    await assert.rejects(detectPhp('php-cgi', php), (error) => assertBinaryError(error, /is the cli SAPI, not php-cgi \(cgi-fcgi\)/));
    const fpm = findBinary(['php-fpm', /^php-fpm\d+(\.\d+)?$/]);
    await assert.rejects(detectPhp('php-cgi', fpm), (error) => assertBinaryError(error, /is the fpm-fcgi SAPI, not php-cgi/));
    const cgi = findBinary(['php-cgi', /^php-cgi\d/]);
    await assert.rejects(detectPhp('php-fpm', cgi), (error) => assertBinaryError(error, /is the cgi-fcgi SAPI, not php-fpm \(fpm-fcgi\)/));
  });
});
