// DokuWiki from Debian's `dokuwiki` package (a wiki that keeps everything in files), end to end on
// TQServer: Debian's tree served as it is installed (/usr/share/dokuwiki), the site's configuration
// and data in a private folder chosen with php.settings.auto_prepend_file (see docs/apps.md). An
// admin logs in, creates a page, edits it into a second revision, uploads an image that PHP serves
// back (resized by GD, and 304 on a conditional request), reads the page through PATH_INFO URLs
// (doku.php/namespace:page), and logs out. Once on php-cgi at /wiki, once on php-fpm at /.

import assert from 'node:assert/strict';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Browser, assetsOf, brokenAssets, decodeEntities, fieldValue, findForm, titleOf } from './helpers/browser.js';
import { makeProject, serverYaml, startFront, type Project, type RunningFront } from './helpers/front.js';
import { tempDir } from './helpers/peers.js';
import { makePng } from './helpers/png.js';

/** Where Debian's package puts DokuWiki's code, and the empty data tree it ships. */
const DOKUWIKI = '/usr/share/dokuwiki';
const DOKUWIKI_DATA = '/var/lib/dokuwiki/data';
const ADMIN = { user: 'admin', password: 'Wiki-Secret-42' };

interface Run {
  name: string;
  path: string;
  fpm: boolean;
}

const RUNS: Run[] = [
  { name: 'php-cgi workers, mounted at /wiki', path: '/wiki', fpm: false },
  { name: 'php-fpm, mounted at /', path: '/', fpm: true },
];

/** DokuWiki's own password hash format for PBKDF2-SHA256 (inc/PassHash.php, djangopbkdf2). */
function passwordHash(password: string): string {
  const salt = randomBytes(9).toString('base64').replace(/[+/]/g, 'x'); // 12 characters
  const iterations = 10_000;
  return `pbkdf2_sha256$${iterations}$${salt}$${pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('base64')}`;
}

/**
 * The site's private folder: conf/ (DOKU_CONF: users, ACLs, settings) and data/ (savedir, a copy of
 * the empty tree Debian ships), and the prepend file that points DokuWiki at conf/.
 */
function wikiSite(dir: string): { prepend: string; data: string } {
  const conf = join(dir, 'conf');
  const data = join(dir, 'data');
  mkdirSync(conf, { recursive: true });
  cpSync(DOKUWIKI_DATA, data, { recursive: true });
  const prepend = join(dir, 'prepend.php');
  writeFileSync(prepend, `<?php\n// This site's configuration folder; Debian's inc/preload.php keeps a DOKU_CONF set before it.\nif (!defined('DOKU_CONF')) define('DOKU_CONF', '${conf}/');\n`);
  // local.protected.php: settings the admin's configuration page cannot change.
  writeFileSync(
    join(conf, 'local.protected.php'),
    ["<?php", `$conf['savedir'] = '${data}';`, "$conf['userewrite'] = 2;", "$conf['useacl'] = 1;", "$conf['superuser'] = '@admin';", "$conf['title'] = 'TQ Wiki';", ''].join('\n'),
  );
  writeFileSync(join(conf, 'local.php'), "<?php\n$conf['license'] = 'cc-by-sa';\n");
  writeFileSync(join(conf, 'users.auth.php'), `# login:passwordhash:Real Name:email:groups\n${ADMIN.user}:${passwordHash(ADMIN.password)}:Wiki Admin:admin@example.com:admin,user\n`);
  writeFileSync(join(conf, 'acl.auth.php'), '# namespace/page  user/@group  permission\n*  @ALL  1\n*  @user  8\n');
  // Debian's plugin choices (the testing plugin off, the required ones on) are read from DOKU_CONF too.
  for (const name of ['plugins.php', 'plugins.required.php']) symlinkSync(join('/etc/dokuwiki', name), join(conf, name));
  return { prepend, data };
}

function workerYaml(run: Run, prepend: string): string {
  return [
    `path: ${run.path}`,
    `document_root: ${DOKUWIKI}`,
    // Unknown paths are 404: DokuWiki's pages live under doku.php/ (userewrite 2, PATH_INFO).
    'front_controller: ~',
    'php:',
    '  settings:',
    `    auto_prepend_file: ${prepend}`,
    '    display_errors: "0"',
    '    log_errors: "1"',
    '  pool:',
    '    manager: static',
    '    max_workers: 2',
    `php_fpm:\n  enabled: ${run.fpm}`,
    '',
  ].join('\n');
}

describe('DokuWiki from Debian on TQServer', { timeout: 120_000 }, () => {
  before(() => {
    assert.ok(existsSync(join(DOKUWIKI, 'doku.php')), `Debian's dokuwiki package is installed (${DOKUWIKI}); npm test installs it`);
  });

  for (const [index, run] of RUNS.entries()) {
    describe(run.name, () => {
      const browser = new Browser();
      const page = `playground:tqserver_${index}`;
      const firstText = `====== TQServer ${index} ======\n\nServed by **TQServer** from Debian's DokuWiki (marker-${index}-one).\n`;
      const secondText = `====== TQServer ${index} ======\n\nEdited: the second revision (marker-${index}-two).\n\n{{playground:pixels-${index}.png?100}}\n`;
      const image = makePng(320, 200, 40 + index);
      let project: Project;
      let front: RunningFront;
      /** The site's own folder, outside the project: conf/, data/, prepend.php. */
      let siteDir: { path: string; cleanup: () => Promise<void> };
      let site: { prepend: string; data: string };
      let base: string;
      let prefix: string;
      /** When the first revision was saved (ms): DokuWiki names revisions by the second. */
      let firstSavedAtMs = 0;

      before(async () => {
        siteDir = await tempDir('tqserver-dokuwiki-');
        site = wikiSite(siteDir.path);
        project = await makeProject({ server: serverYaml(), apps: [{ name: 'wiki', worker: workerYaml(run, site.prepend), site: false }] });
        front = await startFront(project.root);
        prefix = run.path === '/' ? '' : run.path;
        base = `http://127.0.0.1:${front.port}${prefix}`;
      });

      after(async () => {
        await front?.stop();
        await project?.cleanup();
        await siteDir?.cleanup();
      });

      test('the front page redirects to the start page under the prefix; the session cookie is scoped to it', async () => {
        const start = await browser.get(`${base}/`);
        assert.deepEqual(start.redirects, [{ status: 302, location: `${base}/doku.php/start` }]);
        assert.equal(start.status, 200);
        assert.match(titleOf(start), /^start \[TQ Wiki\]$/);
        const session = browser.jar.all().find((c) => c.name === 'DokuWiki');
        assert.ok(session, 'a PHP session cookie');
        assert.equal(session.path, `${prefix}/`);
        assert.match(start.text, new RegExp(`href="${prefix}/lib/exe/css\\.php`), 'asset URLs carry the prefix');
        // What a browser loads with the page: styles and scripts built by PHP, images from the tree,
        // and the 1x1 GIF of the task runner (the indexer), which answers first and works on after.
        const assets = assetsOf(start).map((url) => url.pathname);
        assert.ok(assets.includes(`${prefix}/lib/exe/taskrunner.php`), `the task runner image is among the assets (${assets.join(', ')})`);
        assert.deepEqual(await brokenAssets(browser, start), [], 'every asset loads');
      });

      test('the admin logs in with the login form (POST, sectok, redirect, auth cookie)', async () => {
        const login = await browser.get(`${base}/doku.php/start?do=login`);
        const form = findForm(login, (f) => f.id === 'dw__login', 'login');
        assert.equal(form.action.pathname, `${prefix}/doku.php/start`);
        const done = await browser.submit(form, { u: ADMIN.user, p: ADMIN.password });
        assert.deepEqual(done.redirects, [{ status: 302, location: `${base}/doku.php/start` }], done.text.slice(0, 500));
        assert.equal(done.status, 200);
        assert.ok(browser.jar.all().some((c) => /^DW[0-9a-f]{32}$/.test(c.name) && c.value !== 'deleted' && c.path === `${prefix}/`), 'the auth cookie');
        assert.match(done.text, /do=logout/, 'logged in: a logout link');
      });

      test('a page is created with the editor, stored as a file, and shown at its PATH_INFO URL', async () => {
        const editor = await browser.get(`${base}/doku.php/${page}?do=edit`);
        assert.equal(editor.status, 200);
        const form = findForm(editor, (f) => f.id === 'dw__editform', 'editor');
        fieldValue(form, 'sectok');
        const saved = await browser.submit(form, { wikitext: firstText, summary: 'created over TQServer' }, { submit: 'do[save]' });
        firstSavedAtMs = Date.now();
        assert.deepEqual(saved.redirects.map((r) => r.location), [`${base}/doku.php/${page}`], 'after saving, the page (POST/redirect/GET)');
        assert.equal(saved.status, 200);
        assert.ok(saved.text.includes(`marker-${index}-one`), 'the new page shows its text');
        assert.match(saved.text, /<strong>TQServer<\/strong>/, 'rendered wiki syntax');
        const file = join(site.data, 'pages', 'playground', `tqserver_${index}.txt`);
        assert.equal(readFileSync(file, 'utf8').trim(), firstText.trim(), 'the page is a file in the data folder');
      });

      test('an image is uploaded with the media manager (multipart) and served by fetch.php: bytes, a range, 304', async () => {
        const manager = await browser.get(`${base}/doku.php/${page}?do=media&ns=playground&tab_files=upload`);
        const form = findForm(manager, (f) => f.id === 'dw__upload', 'media upload');
        assert.equal(form.enctype, 'multipart/form-data');
        const uploaded = await browser.submit(form, { upload: { filename: `pixels-${index}.png`, type: 'image/png', bytes: image }, mediaid: `pixels-${index}.png` }, {});
        assert.equal(uploaded.status, 200, uploaded.text.slice(0, 500));
        const stored = join(site.data, 'media', 'playground', `pixels-${index}.png`);
        assert.ok(existsSync(stored), `the upload is stored (${readdirSync(join(site.data, 'media')).join(', ')})`);
        assert.ok(readFileSync(stored).equals(image), 'stored byte for byte');
        const visitor = new Browser();
        const fetched = await visitor.fetch(`${base}/lib/exe/fetch.php?media=playground:pixels-${index}.png`);
        assert.equal(fetched.status, 200);
        assert.equal(fetched.headers.get('content-type'), 'image/png');
        assert.ok(fetched.body.equals(image), 'PHP streams the bytes back');
        const part = await visitor.fetch(`${base}/lib/exe/fetch.php?media=playground:pixels-${index}.png`, { headers: { range: 'bytes=0-99' } });
        assert.equal(part.status, 206, "a byte range, answered by DokuWiki's own Range handling");
        assert.equal(part.headers.get('content-range'), `bytes 0-99/${image.length}`);
        assert.ok(part.body.equals(image.subarray(0, 100)));
        const etag = fetched.headers.get('etag');
        assert.ok(etag, 'fetch.php sends an ETag');
        const again = await visitor.fetch(`${base}/lib/exe/fetch.php?media=playground:pixels-${index}.png`, { headers: { 'if-none-match': etag } });
        assert.equal(again.status, 304, 'a conditional request gets 304 from PHP');
        assert.equal(again.body.length, 0);
      });

      test('a second edit makes a revision (the old one kept in the attic); the page shows the image resized by GD', async () => {
        // A revision is named by its second (PHP's time()): a second save within the same second
        // would replace the first revision, so the edit waits for the clock's next second.
        const nextSecondMs = (Math.floor(firstSavedAtMs / 1000) + 1) * 1000;
        if (Date.now() < nextSecondMs) await new Promise((resolve) => setTimeout(resolve, nextSecondMs - Date.now() + 10));
        const editor = await browser.get(`${base}/doku.php/${page}?do=edit`);
        const form = findForm(editor, (f) => f.id === 'dw__editform', 'editor');
        assert.ok(decodeEntities(fieldValue(form, 'wikitext')).includes(`marker-${index}-one`), 'the editor holds the current text');
        const saved = await browser.submit(form, { wikitext: secondText, summary: 'second revision' }, { submit: 'do[save]' });
        assert.equal(saved.status, 200);
        assert.ok(saved.text.includes(`marker-${index}-two`));
        // userewrite 2: media URLs are PATH_INFO too, with a token for the resized copy.
        const src = new RegExp(`src="(${prefix}/lib/exe/fetch\\.php/playground:pixels-${index}\\.png\\?[^"]*)"`).exec(saved.text)?.[1];
        assert.ok(src, 'the page embeds the image through fetch.php/MEDIA');
        const small = await new Browser().fetch(new URL(decodeEntities(src), saved.url));
        assert.equal(small.status, 200, `GET ${src}`);
        assert.equal(small.headers.get('content-type'), 'image/png');
        assert.equal(small.body.readUInt32BE(16), 100, 'resized by GD to 100 pixels wide');
        const revisions = await browser.get(`${base}/doku.php/${page}?do=revisions`);
        assert.equal(revisions.status, 200);
        assert.match(revisions.text, /second revision/);
        assert.match(revisions.text, /created over TQServer/);
        const attic = readdirSync(join(site.data, 'attic', 'playground')).filter((f) => f.startsWith(`tqserver_${index}.`));
        assert.equal(attic.length, 2, `both revisions in the attic (${attic.join(', ')})`);
      });

      test('static files come from Debian\'s tree (through its symlinks); scripts and CSS from PHP', async () => {
        const visitor = new Browser();
        const logo = await visitor.fetch(`${base}/lib/tpl/dokuwiki/images/logo.png`);
        assert.equal(logo.status, 200);
        assert.equal(logo.headers.get('content-type'), 'image/png');
        assert.ok(logo.body.equals(readFileSync(join(DOKUWIKI, 'lib/tpl/dokuwiki/images/logo.png'))));
        const css = await visitor.fetch(`${base}/lib/exe/css.php?t=dokuwiki`);
        assert.equal(css.status, 200);
        assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
        assert.ok(css.body.length > 10_000, 'the compiled stylesheet');
        const source = await visitor.fetch(`${base}/conf/dokuwiki.php`);
        assert.equal(source.status, 404, 'no such file in the document root');
        const data = await visitor.fetch(`${base}/VERSION`);
        assert.equal(data.status, 200, 'a plain file in the tree is served as it is');
      });

      test('logout (with its sectok) ends the session: the auth cookie is deleted, editing is refused', async () => {
        const current = await browser.get(`${base}/doku.php/${page}`);
        const href = /href="([^"]*do=logout[^"]*)"/.exec(current.text)?.[1];
        assert.ok(href, 'a logout link');
        const out = await browser.get(new URL(decodeEntities(href), current.url));
        assert.equal(out.status, 200);
        assert.deepEqual(out.redirects.map((r) => r.status), [302]);
        assert.ok(!browser.jar.all().some((c) => /^DW[0-9a-f]{32}$/.test(c.name) && c.value !== 'deleted'), 'the auth cookie is gone');
        assert.doesNotMatch(out.text, /do=logout/, 'no logout link once logged out');
        const editor = await browser.get(`${base}/doku.php/${page}?do=edit`);
        assert.equal(editor.status, 200);
        assert.match(editor.text, /<textarea[^>]*readonly/, 'a visitor gets the source read-only');
        assert.doesNotMatch(editor.text, /name="do\[save\]"/, 'and no save button');
        const errors = front.records.filter((r) => r.level >= 50);
        assert.deepEqual(errors.map((r) => r.msg), [], 'TQServer logged no errors');
      });
    });
  }
});
