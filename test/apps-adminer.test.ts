// Adminer from Debian's `adminer` package (a single-file PHP app), end to end on TQServer against a
// private MariaDB: Debian's layout served as it is installed (document root /etc/adminer, index file
// conf.php, which includes /usr/share/adminer/adminer.php), sessions in a private folder. A user
// logs in to MariaDB, runs SQL from the SQL command form (a multipart POST), edits a row with the
// edit form, exports the table as a gzip download, and logs out; Adminer's own assets are served by
// PHP with 304s. Once on php-cgi at /adminer, once on php-fpm at /.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Browser, brokenAssets, findForm, titleOf, type Page } from './helpers/browser.js';
import { makeProject, serverYaml, startFront, type Project, type RunningFront } from './helpers/front.js';
import { startMariaDb, type MariaDb } from './helpers/mariadb.js';
import { tempDir } from './helpers/peers.js';

/** Debian's entry point (Apache: Alias /adminer /etc/adminer, DirectoryIndex conf.php). */
const ADMINER_ROOT = '/etc/adminer';

interface Run {
  name: string;
  path: string;
  fpm: boolean;
}

const RUNS: Run[] = [
  { name: 'php-cgi workers, mounted at /adminer', path: '/adminer', fpm: false },
  { name: 'php-fpm, mounted at /', path: '/', fpm: true },
];

function workerYaml(run: Run, sessions: string): string {
  return [
    `path: ${run.path}`,
    `document_root: ${ADMINER_ROOT}`,
    'index_files: [conf.php]',
    // A single-file app: every page is conf.php with a query string; nothing else exists.
    'front_controller: ~',
    'php:',
    '  settings:',
    `    session.save_path: ${sessions}`,
    '    display_errors: "0"',
    '    log_errors: "1"',
    '  pool:',
    '    manager: static',
    '    max_workers: 2',
    `php_fpm:\n  enabled: ${run.fpm}`,
    '',
  ].join('\n');
}

/** The text of a page without tags, whitespace collapsed (Adminer's tables are easier to read so). */
function textOf(page: Page): string {
  return page.text.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
}

describe('Adminer from Debian on TQServer', { timeout: 120_000 }, () => {
  let db: MariaDb;

  before(async () => {
    assert.ok(existsSync(join(ADMINER_ROOT, 'conf.php')), `Debian's adminer package is installed (${ADMINER_ROOT}); npm test installs it`);
    db = await startMariaDb();
  });

  after(async () => {
    await db?.stop();
  });

  for (const [index, run] of RUNS.entries()) {
    describe(run.name, () => {
      const account = { db: `shop_${index}`, user: `adminer${index}`, password: `pw-${randomBytes(6).toString('hex')}` };
      const browser = new Browser();
      let project: Project;
      let front: RunningFront;
      /** PHP's session files, in a folder of this run's own. */
      let sessions: { path: string; cleanup: () => Promise<void> };
      let base: string;
      let prefix: string;
      /** The page Adminer sends a logged-in user to: ?server=...&username=...&db=... */
      let home: URL;

      before(async () => {
        await db.createDatabase(account.db, account.user, account.password);
        sessions = await tempDir('tqserver-adminer-sessions-');
        project = await makeProject({ server: serverYaml(), apps: [{ name: 'adminer', worker: workerYaml(run, sessions.path), site: false }] });
        front = await startFront(project.root);
        prefix = run.path === '/' ? '' : run.path;
        base = `http://127.0.0.1:${front.port}${prefix}`;
      });

      after(async () => {
        await front?.stop();
        await project?.cleanup();
        await sessions?.cleanup();
      });

      test('the login page is conf.php, the directory index; its cookies are scoped to the prefix', async () => {
        if (prefix !== '') {
          const bare = await browser.fetch(base);
          assert.equal(bare.status, 301, 'the folder without its slash is redirected');
          assert.equal(bare.headers.get('location'), `${prefix}/`);
        }
        const login = await browser.get(`${base}/`);
        assert.equal(login.status, 200);
        assert.match(titleOf(login), /^Login - Adminer$/);
        assert.deepEqual(await brokenAssets(browser, login), [], 'its styles, scripts and icon (all from conf.php) load');
        findForm(login, (f) => f.fields.some((field) => field.name === 'auth[username]'), 'login');
        const sid = browser.jar.all().find((c) => c.name === 'adminer_sid');
        assert.ok(sid, 'a session cookie');
        assert.equal(sid.path, `${prefix}/`);
        assert.equal(sid.httpOnly, true);
      });

      test('logging in to MariaDB (POST, then the redirect to a query-only Location)', async () => {
        const login = await browser.get(`${base}/`);
        const form = findForm(login, (f) => f.fields.some((field) => field.name === 'auth[username]'), 'login');
        const done = await browser.submit(form, {
          'auth[driver]': 'server',
          'auth[server]': `localhost:${db.socket}`,
          'auth[username]': account.user,
          'auth[password]': account.password,
          'auth[db]': account.db,
        });
        assert.equal(done.redirects.length, 1, done.text.slice(0, 1000));
        home = new URL(done.redirects[0]!.location);
        assert.equal(home.pathname, `${prefix}/`, 'Location "?server=..." resolves against the folder');
        assert.equal(home.searchParams.get('username'), account.user);
        assert.equal(home.searchParams.get('db'), account.db);
        assert.equal(done.status, 200);
        assert.equal(titleOf(done), `Database: ${account.db} - localhost:${db.socket} - Adminer`);
        assert.match(done.text, /name="logout"/, 'logged in: a logout button');
        assert.deepEqual(await brokenAssets(browser, done), []);
      });

      test('SQL runs from the SQL command form (a multipart POST with its token) and its results are shown', async () => {
        const sqlUrl = new URL(home);
        sqlUrl.searchParams.set('sql', '');
        const page = await browser.get(sqlUrl);
        assert.equal(page.status, 200);
        const form = findForm(page, (f) => f.fields.some((field) => field.name === 'query'), 'SQL command');
        assert.equal(form.enctype, 'multipart/form-data');
        const query = [
          'CREATE TABLE fruit (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(6,2) NOT NULL);',
          "INSERT INTO fruit VALUES (1, 'apple', 0.50), (2, 'pear', 0.75), (3, 'quince', 2.25);",
          'SELECT name, price FROM fruit WHERE price > 0.6 ORDER BY price;',
        ].join('\n');
        const result = await browser.submit(form, { query });
        assert.equal(result.status, 200);
        const text = textOf(result);
        assert.match(text, /Query executed OK, 3 rows affected/, 'the INSERT');
        assert.match(text, /pear 0\.75 quince 2\.25/, 'the SELECT result table');
        assert.doesNotMatch(text, /apple 0\.50/);
        assert.equal((await db.query(`SELECT COUNT(*) FROM \`${account.db}\`.fruit;`)).trim(), '3');
      });

      test('a row is edited with the edit form; the change is in MariaDB', async () => {
        const editUrl = new URL(home);
        editUrl.searchParams.set('edit', 'fruit');
        editUrl.searchParams.set('where[id]', '1');
        const page = await browser.get(editUrl);
        assert.equal(page.status, 200);
        const form = findForm(page, (f) => f.fields.some((field) => field.name === 'fields[name]'), 'edit');
        // The plain Save button has no name: a POST with neither insert nor delete saves.
        const saved = await browser.submit(form, { 'fields[name]': 'golden apple', 'fields[price]': '1.10' });
        assert.equal(saved.redirects.length, 1, saved.text.slice(0, 1000));
        assert.equal(saved.status, 200);
        assert.match(textOf(saved), /Item has been updated/);
        assert.equal((await db.query(`SELECT name, price FROM \`${account.db}\`.fruit WHERE id = 1;`)).trim(), 'golden apple\t1.10');
      });

      test('the table is exported as a gzip download (binary body, Content-Disposition)', async () => {
        const dumpUrl = new URL(home);
        dumpUrl.searchParams.set('dump', 'fruit');
        const page = await browser.get(dumpUrl);
        assert.equal(page.status, 200);
        const form = findForm(page, (f) => f.fields.some((field) => field.name === 'output'), 'export');
        const download = await browser.submit(form, { output: 'gz', format: 'sql', table_style: 'CREATE', data_style: 'INSERT', 'tables[]': 'fruit', 'data[]': 'fruit' });
        assert.equal(download.status, 200, download.text.slice(0, 500));
        assert.match(download.headers.get('content-disposition') ?? '', /attachment; filename=.*\.sql\.gz/);
        const sql = gunzipSync(download.body).toString('utf8');
        assert.match(sql, /CREATE TABLE `fruit`/);
        assert.match(sql, /INSERT INTO `fruit`.*'golden apple'/s);
      });

      test("Adminer's own assets come from PHP, cached (Expires) and answered 304 when unchanged", async () => {
        const visitor = new Browser();
        const css = await visitor.fetch(`${base}/?file=default.css&version=4.8.1`);
        assert.equal(css.status, 200);
        assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
        assert.ok(css.headers.get('expires'), 'a far Expires');
        const lastModified = css.headers.get('last-modified');
        assert.ok(lastModified);
        assert.ok(css.body.length > 1000);
        const again = await visitor.fetch(`${base}/?file=default.css&version=4.8.1`, { headers: { 'if-modified-since': lastModified } });
        assert.equal(again.status, 304, 'header("HTTP/1.1 304 Not Modified") from PHP');
        assert.equal(again.body.length, 0);
        const icon = await visitor.fetch(`${base}/?file=favicon.ico&version=4.8.1`);
        assert.equal(icon.status, 200);
        assert.equal(icon.headers.get('content-type'), 'image/x-icon');
        const missing = await visitor.fetch(`${base}/adminer.php`);
        assert.equal(missing.status, 404, 'only conf.php is in the document root');
      });

      test('logout (a POST with its token) ends the session', async () => {
        const page = await browser.get(home);
        const form = findForm(page, (f) => f.submits.some((s) => s.name === 'logout'), 'logout');
        const out = await browser.submit(form, {}, { submit: 'logout' });
        assert.equal(out.redirects.length, 1);
        assert.equal(out.status, 200);
        assert.match(textOf(out), /Logout successful/);
        const after = await browser.get(home);
        assert.match(titleOf(after), /^Login - /, 'the database is no longer reachable');
        assert.ok(findForm(after, (f) => f.fields.some((field) => field.name === 'auth[username]'), 'login'));
        const errors = front.records.filter((r) => r.level >= 50);
        assert.deepEqual(errors.map((r) => r.msg), [], 'TQServer logged no errors');
      });
    });
  }
});
