// WordPress from Debian's `wordpress` package, end to end on TQServer, driven over HTTP the way a
// browser drives it: the installer, an admin login, an image upload, pretty permalinks through the
// front controller, a post published with the block editor's REST call, the post and the image
// served, logout. Once on php-cgi workers mounted at /blog and once on php-fpm mounted at /, each on
// its own database in a private MariaDB the test starts (see docs/apps.md for the layout).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Browser, brokenAssets, decodeEntities, fieldValue, findForm, titleOf, type Page } from './helpers/browser.js';
import { makeProject, serverYaml, startFront, type Project, type RunningFront } from './helpers/front.js';
import { startMariaDb, type MariaDb } from './helpers/mariadb.js';
import { makePng } from './helpers/png.js';

/** Where Debian's package puts WordPress. */
const WORDPRESS = '/usr/share/wordpress';
const ADMIN = { user: 'admin', password: 'Tq-server-Secret-42', email: 'admin@example.com' };

interface Run {
  name: string;
  /** The app's URL prefix. */
  path: string;
  fpm: boolean;
}

const RUNS: Run[] = [
  { name: 'php-cgi workers, mounted at /blog', path: '/blog', fpm: false },
  { name: 'php-fpm, mounted at /', path: '/', fpm: true },
];

/**
 * The private document root: a copy of Debian's tree (its files resolve __DIR__ through symlinks, so
 * a symlinked tree would load Debian's own wp-config.php) with a wp-config.php of the test's own.
 */
function wordpressTree(docRoot: string, db: { name: string; user: string; password: string; socket: string }): void {
  rmSync(docRoot, { recursive: true, force: true });
  // Debian links some libraries in from /usr/share/javascript and /usr/share/php with relative
  // symlinks; copied as absolute links they still reach them.
  cpSync(WORDPRESS, docRoot, { recursive: true, verbatimSymlinks: false });
  // Debian's wp-config.php reads /etc/wordpress/config-<host>.php; ours is self-contained.
  rmSync(join(docRoot, 'wp-config.php'));
  const salt = () => randomBytes(24).toString('hex');
  const keys = ['AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT'];
  writeFileSync(
    join(docRoot, 'wp-config.php'),
    [
      '<?php',
      `define('DB_NAME', '${db.name}');`,
      `define('DB_USER', '${db.user}');`,
      `define('DB_PASSWORD', '${db.password}');`,
      `define('DB_HOST', 'localhost:${db.socket}');`,
      "define('DB_CHARSET', 'utf8mb4');",
      "define('DB_COLLATE', '');",
      ...keys.map((key) => `define('${key}', '${salt()}');`),
      "define('WP_DEBUG', false);",
      "define('AUTOMATIC_UPDATER_DISABLED', true);",
      // No calls to wordpress.org from the tests (update checks in wp-cron): requests to the site
      // itself, which the installer and Site Health make, are still allowed.
      "define('WP_HTTP_BLOCK_EXTERNAL', true);",
      "$table_prefix = 'wp_';",
      "if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');",
      "require_once ABSPATH . 'wp-settings.php';",
      '',
    ].join('\n'),
  );
}

function workerYaml(run: Run): string {
  return [
    `path: ${run.path}`,
    'php:',
    '  settings:',
    '    display_errors: "0"',
    '    log_errors: "1"',
    '    memory_limit: 256M',
    '    upload_max_filesize: 16M',
    '    post_max_size: 16M',
    '  pool:',
    // The installer checks pretty permalinks with a request to the site itself while it runs, and
    // wp-cron is a request to itself too: one worker would wait for itself.
    '    manager: static',
    '    max_workers: 3',
    `php_fpm:\n  enabled: ${run.fpm}`,
    '',
  ].join('\n');
}

/** The block editor's REST nonce and root, as the admin page hands them to wp.apiFetch. */
function restSettings(page: Page): { nonce: string; root: string } {
  const nonce = /createNonceMiddleware\( "([0-9a-f]+)" \)/.exec(page.text)?.[1];
  const root = /createRootURLMiddleware\( "([^"]+)" \)/.exec(page.text)?.[1];
  assert.ok(nonce && root, `the editor page hands wp.apiFetch a nonce and a root URL (status ${page.status})`);
  return { nonce, root: root.replace(/\\\//g, '/') };
}

/** Width and height from a PNG's IHDR. */
function pngSize(bytes: Buffer): { width: number; height: number } {
  assert.equal(bytes.subarray(0, 8).toString('latin1'), '\x89PNG\r\n\x1a\n', 'a PNG signature');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

describe('WordPress from Debian on TQServer', { timeout: 150_000 }, () => {
  let db: MariaDb;

  before(async () => {
    assert.ok(existsSync(join(WORDPRESS, 'wp-settings.php')), `Debian's wordpress package is installed (${WORDPRESS}); npm test installs it`);
    db = await startMariaDb();
  });

  after(async () => {
    await db?.stop();
  });

  for (const [index, run] of RUNS.entries()) {
    describe(run.name, () => {
      const database = { name: `wordpress_${index}`, user: `wp${index}`, password: `pw-${randomBytes(6).toString('hex')}` };
      const image = makePng(400, 300, index);
      const imageName = `tqserver-pixels-${index}.png`;
      const postTitle = `TQServer on Debian ${index}`;
      const postMarker = `post-body-marker-${randomBytes(4).toString('hex')}`;
      const browser = new Browser();
      let project: Project;
      let front: RunningFront;
      let docRoot: string;
      /** The site's URL without a trailing slash: http://127.0.0.1:PORT/blog, or http://127.0.0.1:PORT. */
      let site: string;
      let prefix: string;
      let attachmentId: number;
      let imageUrl: string;
      let postLink: string;

      const option = async (name: string) => (await db.query(`SELECT option_value FROM \`${database.name}\`.wp_options WHERE option_name = '${name}';`)).trim();

      before(async () => {
        await db.createDatabase(database.name, database.user, database.password);
        project = await makeProject({ server: serverYaml(), apps: [{ name: 'wordpress', worker: workerYaml(run), site: false }] });
        docRoot = project.docRoot('wordpress');
        wordpressTree(docRoot, { ...database, socket: db.socket });
        front = await startFront(project.root);
        prefix = run.path === '/' ? '' : run.path;
        site = `http://127.0.0.1:${front.port}${prefix}`;
      });

      after(async () => {
        await front?.stop();
        await project?.cleanup();
      });

      test('the installer completes, and WordPress guesses its own URL (with the prefix) from the request', async () => {
        const home = await browser.get(`${site}/`);
        assert.deepEqual(home.redirects, [{ status: 302, location: `${site}/wp-admin/install.php` }], 'a fresh site sends the browser to the installer');
        assert.equal(home.status, 200);
        const form = findForm(home, (f) => f.id === 'setup', 'installer');
        assert.equal(form.action.href, `${site}/wp-admin/install.php?step=2`);
        const done = await browser.submit(form, {
          weblog_title: `TQ Blog ${index}`,
          user_name: ADMIN.user,
          admin_password: ADMIN.password,
          admin_password2: ADMIN.password,
          pw_weak: '1',
          admin_email: ADMIN.email,
        }, { submit: 'Submit' });
        assert.equal(done.status, 200, done.text.slice(0, 2000));
        assert.match(done.text, /<h1>Success!<\/h1>/, 'the installer reports success');
        assert.equal(await option('siteurl'), site);
        assert.equal(await option('home'), site);
        assert.equal(await option('blogname'), `TQ Blog ${index}`);
      });

      test('an admin logs in: the test cookie, the POST, the redirect to wp-admin, the auth cookies on their paths', async () => {
        const login = await browser.get(`${site}/wp-login.php`);
        assert.equal(login.status, 200);
        assert.ok(browser.jar.names().includes('wordpress_test_cookie'), 'wp-login.php sets its test cookie');
        const form = findForm(login, (f) => f.id === 'loginform', 'login');
        const dashboard = await browser.submit(form, { log: ADMIN.user, pwd: ADMIN.password }, { submit: 'wp-submit' });
        assert.deepEqual(dashboard.redirects, [{ status: 302, location: `${site}/wp-admin/` }]);
        assert.equal(dashboard.status, 200);
        assert.match(titleOf(dashboard), /^Dashboard/, 'the dashboard after login');
        assert.deepEqual(await brokenAssets(browser, dashboard), [], "the dashboard's scripts, styles and images all load");
        const cookies = browser.jar.all();
        const loggedIn = cookies.find((c) => c.name.startsWith('wordpress_logged_in_'));
        assert.ok(loggedIn, `a logged-in cookie (cookies: ${browser.jar.names().join(', ')})`);
        assert.equal(loggedIn.path, `${prefix}/`);
        assert.equal(loggedIn.httpOnly, true);
        const adminPaths = cookies.filter((c) => /^wordpress_[0-9a-f]{32}$/.test(c.name)).map((c) => c.path).sort();
        assert.deepEqual(adminPaths, [`${prefix}/wp-admin`, `${prefix}/wp-content/plugins`], 'the auth cookie, once per admin path (several Set-Cookie lines kept apart)');
        // A directory asked for without its slash: TQServer's redirect keeps the prefix.
        const bare = await browser.fetch(`${site}/wp-admin`);
        assert.equal(bare.status, 301);
        assert.equal(bare.headers.get('location'), `${prefix}/wp-admin/`);
      });

      test("Site Health's server checks pass: a loopback request with the admin's cookies, the Authorization header", async () => {
        // What wp-admin/site-health.php runs from the browser, through the REST API with a nonce.
        const nonce = await browser.get(`${site}/wp-admin/admin-ajax.php?action=rest-nonce`);
        assert.match(nonce.text, /^[0-9a-f]{10}$/, 'a REST nonce for the logged-in admin');
        for (const check of ['loopback-requests', 'authorization-header']) {
          const headers: Record<string, string> = { 'x-wp-nonce': nonce.text };
          // The page sends these credentials and expects PHP_AUTH_USER / PHP_AUTH_PW to match them.
          if (check === 'authorization-header') headers.authorization = `Basic ${Buffer.from('user:pwd').toString('base64')}`;
          const result = await browser.fetch(`${site}/?rest_route=/wp-site-health/v1/tests/${check}`, { headers });
          assert.equal(result.status, 200, result.text.slice(0, 500));
          const body = JSON.parse(result.text) as { status: string; label: string };
          assert.equal(body.status, 'good', `${check}: ${body.label}`);
        }
      });

      test('an image is uploaded with the media form (multipart POST with its nonce)', async () => {
        const uploader = await browser.get(`${site}/wp-admin/media-new.php?browser-uploader`);
        assert.equal(uploader.status, 200);
        const form = findForm(uploader, (f) => f.id === 'file-form', 'upload');
        assert.equal(form.enctype, 'multipart/form-data');
        fieldValue(form, '_wpnonce');
        const posted = await browser.submit(form, { 'async-upload': { filename: imageName, type: 'image/png', bytes: image } }, { submit: 'html-upload', follow: false });
        assert.equal(posted.status, 302, posted.text.slice(0, 2000));
        assert.equal(posted.headers.get('location'), `${site}/wp-admin/upload.php`);
        attachmentId = Number(posted.headers.get('x-wp-upload-attachment-id'));
        assert.ok(attachmentId > 0, 'WordPress names the attachment it made');
        const library = await browser.get(posted.headers.get('location')!);
        assert.equal(library.status, 200);
        assert.match(titleOf(library), /^Media Library/);
        const month = new Date();
        const folder = join(docRoot, 'wp-content', 'uploads', String(month.getUTCFullYear()), String(month.getUTCMonth() + 1).padStart(2, '0'));
        const files = existsSync(folder) ? readdirSync(folder) : [];
        assert.ok(files.includes(imageName), `the upload is in ${folder} (found: ${files.join(', ')})`);
        assert.ok(files.some((f) => /-150x150\.png$/.test(f)), `GD made a thumbnail (found: ${files.join(', ')})`);
      });

      test('pretty permalinks are enabled on the permalink settings page', async () => {
        const settings = await browser.get(`${site}/wp-admin/options-permalink.php`);
        assert.equal(settings.status, 200);
        const form = findForm(settings, (f) => f.fields.some((field) => field.name === 'permalink_structure'), 'permalink settings');
        const saved = await browser.submit(form, { selection: 'custom', permalink_structure: '/%postname%/' }, { submit: 'submit' });
        assert.deepEqual(saved.redirects.map((r) => r.status), [302]);
        assert.match(saved.redirects[0]!.location, /options-permalink\.php\?settings-updated=true$/);
        assert.equal(saved.status, 200);
        assert.equal(await option('permalink_structure'), '/%postname%/');
      });

      test('a post with the image is published through the REST API the block editor uses (a pretty URL to the front controller)', async () => {
        const editor = await browser.get(`${site}/wp-admin/post-new.php`);
        assert.equal(editor.status, 200);
        assert.deepEqual(await brokenAssets(browser, editor), [], "the block editor's scripts and styles all load");
        const rest = restSettings(editor);
        assert.equal(rest.root, `${site}/wp-json/`);
        const media = await browser.fetch(`${rest.root}wp/v2/media/${attachmentId}`, { headers: { 'x-wp-nonce': rest.nonce } });
        assert.equal(media.status, 200, media.text.slice(0, 500));
        imageUrl = (JSON.parse(media.text) as { source_url: string }).source_url;
        assert.match(imageUrl, new RegExp(`^${site.replace(/[.]/g, '\\.')}/wp-content/uploads/\\d{4}/\\d{2}/${imageName.replace(/\./g, '\\.')}$`));
        const content = [
          `<!-- wp:image {"id":${attachmentId}} -->`,
          `<figure class="wp-block-image"><img src="${imageUrl}" alt="pixels" class="wp-image-${attachmentId}"/></figure>`,
          '<!-- /wp:image -->',
          `<!-- wp:paragraph --><p>${postMarker}</p><!-- /wp:paragraph -->`,
        ].join('\n');
        const created = await browser.fetch(`${rest.root}wp/v2/posts`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-wp-nonce': rest.nonce },
          body: JSON.stringify({ title: postTitle, content, status: 'publish', featured_media: attachmentId }),
        });
        assert.equal(created.status, 201, created.text.slice(0, 1000));
        const post = JSON.parse(created.text) as { link: string; status: string };
        assert.equal(post.status, 'publish');
        postLink = post.link;
        assert.equal(postLink, `${site}/tqserver-on-debian-${index}/`);
      });

      test('the post is served at its pretty URL, and at its PATH_INFO URL, to a visitor', async () => {
        const visitor = new Browser();
        const page = await visitor.get(postLink);
        assert.equal(page.status, 200, page.text.slice(0, 1000));
        assert.deepEqual(page.redirects, []);
        assert.match(titleOf(page), new RegExp(`^${postTitle}`));
        assert.ok(page.text.includes(postMarker), 'the post body');
        assert.ok(page.text.includes(imageUrl), 'the image in the post');
        assert.deepEqual(await brokenAssets(visitor, page), [], "the theme's scripts, styles and images all load");
        // PHP gets PATH_INFO=/slug/; WordPress finds the post by it, then sends the canonical URL.
        const viaPathInfo = await visitor.get(`${site}/index.php/tqserver-on-debian-${index}/`);
        assert.deepEqual(viaPathInfo.redirects, [{ status: 301, location: postLink }]);
        assert.equal(viaPathInfo.status, 200);
        assert.ok(viaPathInfo.text.includes(postMarker), 'index.php/slug/ (PATH_INFO) is the same post');
        const missing = await visitor.get(`${site}/no-such-post-${index}/`);
        assert.equal(missing.status, 404, 'WordPress answers an unknown pretty URL with its own 404');
        assert.match(missing.text, /wp-content\/themes\/twentytwentythree|wp-block/, "the theme's 404 page, from WordPress, not TQServer");
      });

      test('the uploaded image and its thumbnail are served as static files, byte for byte', async () => {
        const visitor = new Browser();
        const original = await visitor.fetch(imageUrl);
        assert.equal(original.status, 200);
        assert.equal(original.headers.get('content-type'), 'image/png');
        assert.equal(original.headers.get('content-length'), String(image.length));
        assert.ok(original.headers.get('etag'), 'a static file (ETag), not a PHP response');
        assert.ok(original.body.equals(image), 'the bytes uploaded');
        const thumbnail = await visitor.fetch(imageUrl.replace(/\.png$/, '-150x150.png'));
        assert.equal(thumbnail.status, 200);
        assert.equal(thumbnail.headers.get('content-type'), 'image/png');
        assert.deepEqual(pngSize(thumbnail.body), { width: 150, height: 150 });
        const theme = await visitor.fetch(`${site}/wp-content/themes/twentytwentythree/style.css`);
        assert.equal(theme.status, 200);
        assert.match(theme.headers.get('content-type') ?? '', /^text\/css/);
      });

      test('logout (with its nonce) ends the session: cookies cleared, wp-admin sends to the login page', async () => {
        const dashboard = await browser.get(`${site}/wp-admin/`);
        assert.equal(dashboard.status, 200);
        const href = /href=["']([^"']*wp-login\.php\?action=logout[^"']*)["']/.exec(dashboard.text)?.[1];
        assert.ok(href, 'the admin bar has a logout link');
        const out = await browser.get(new URL(decodeEntities(href), dashboard.url));
        assert.equal(out.redirects.length, 1);
        assert.match(out.redirects[0]!.location, new RegExp(`^${site.replace(/[.]/g, '\\.')}/wp-login\\.php\\?loggedout=true`));
        assert.equal(out.status, 200);
        assert.match(out.text, /You are now logged out/);
        assert.deepEqual(browser.jar.names().filter((name) => name.startsWith('wordpress_') && name !== 'wordpress_test_cookie'), [], 'the auth cookies are expired');
        const admin = await browser.fetch(`${site}/wp-admin/`);
        assert.equal(admin.status, 302);
        assert.match(admin.headers.get('location') ?? '', new RegExp(`^${site.replace(/[.]/g, '\\.')}/wp-login\\.php\\?redirect_to=.*&reauth=1$`));
        const errors = front.records.filter((r) => r.level >= 50);
        assert.deepEqual(errors.map((r) => r.msg), [], 'TQServer logged no errors');
      });
    });
  }
});
