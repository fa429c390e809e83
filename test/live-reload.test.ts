// Dev mode's browser live reload end to end, on the real CLI: the script tag in PHP pages and static
// .html files (with a right Content-Length), the event stream announcing an edited PHP file and a
// config reload, a page in headless Chromium that reloads itself after an edit and shows the new
// content, and production, where nothing is injected and the reserved paths belong to the apps.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext } from 'playwright-core';
import { LIVE_RELOAD_EVENTS_PATH, LIVE_RELOAD_SCRIPT_PATH, LIVE_RELOAD_TAG } from '../src/http/live-reload.js';
import { get, makeProject, request, serverYaml, startCli, stopCli, workerYaml, type CliProcess, type Project } from './helpers/front.js';

const page = (version: number) => `<?php $title = 'Live'; ?><!doctype html>
<html><head><title><?= $title ?></title></head>
<body><h1 id="v">version <?= ${version} ?></h1></body></html>
`;
const STATIC_HTML = '<!doctype html><html><head><title>Static</title></head><body><p id="s">static page</p></body></html>\n';

/** Starts one app at `path` with page.php and static.html in its document root. */
async function project(path: string): Promise<Project> {
  const made = await makeProject({
    server: serverYaml(),
    apps: [{ name: 'app', site: false, worker: workerYaml(path, { max_workers: 1 }, { extra: 'access_log:\n  path: ~' }) }],
  });
  writeFileSync(join(made.docRoot('app'), 'page.php'), page(1));
  writeFileSync(join(made.docRoot('app'), 'static.html'), STATIC_HTML);
  return made;
}

/** An event stream on the CLI: the events as they come, and a wait for one of a kind. */
function openStream(port: number) {
  const events: Array<{ event: string; data: string }> = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  let ended = false;
  const req = http.get({ host: '127.0.0.1', port, path: LIVE_RELOAD_EVENTS_PATH, agent: false }, (response) => {
    response.setEncoding('utf8');
    response.on('data', (text: string) => {
      buffer += text;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        if (event) events.push({ event, data: /^data: (.*)$/m.exec(block)?.[1] ?? '' });
      }
      for (const wake of [...waiters]) wake();
    });
    response.on('end', () => {
      ended = true;
      for (const wake of [...waiters]) wake();
    });
  });
  req.on('error', () => {});
  return {
    events,
    /** Resolves when the server ends the stream. */
    ended(timeoutMs = 15_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!ended) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the stream did not end within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    /** The first event after `from` (an index into events) whose data matches. */
    waitFor(name: string, data: RegExp, from = 0, timeoutMs = 15_000): Promise<{ event: string; data: string }> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.slice(from).find((e) => e.event === name && data.test(e.data));
          if (!found) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${name} event matching ${data} within ${timeoutMs} ms; got ${JSON.stringify(events)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => req.destroy(),
  };
}

let edits = 0;
/**
 * Rewrites a script with a newer timestamp each time: the new version has the same size, and only a
 * timestamp check (OPcache's, in dev mode) can tell it changed within the same second.
 */
function edit(file: string, text: string): void {
  writeFileSync(file, text);
  edits += 1;
  const later = new Date(Date.now() + edits * 2000);
  utimesSync(file, later, later);
}

/** How many times the CLI has printed `text` so far. */
function count(cli: CliProcess, text: string): number {
  return cli.output().split(text).length - 1;
}

describe('live reload in dev mode', () => {
  let proj: Project;
  let cli: CliProcess & { port: number };

  before(async () => {
    proj = await project('/app');
    cli = await startCli(proj.root, ['--mode', 'dev']);
    await cli.waitForOutput(/live reload: on/);
  });

  after(async () => {
    if (cli) await stopCli(cli);
    await proj?.cleanup();
  });

  test('PHP pages and static .html files get the script, with a right Content-Length', async () => {
    const php = await get(cli.port, '/app/page.php');
    assert.equal(php.status, 200);
    assert.equal(php.text, `<!doctype html>\n<html><head><title>Live</title></head>\n<body><h1 id="v">version 1</h1>${LIVE_RELOAD_TAG}</body></html>\n`);
    assert.equal(Number(php.headers['content-length']), php.body.length);

    const html = await get(cli.port, '/app/static.html');
    assert.equal(html.status, 200);
    assert.equal(html.text, STATIC_HTML.replace('</body>', `${LIVE_RELOAD_TAG}</body>`));
    assert.equal(Number(html.headers['content-length']), html.body.length);

    // HEAD, fetches of fragments and other types are left as they are.
    const head = await request(cli.port, { method: 'HEAD', path: '/app/static.html' });
    assert.equal(Number(head.headers['content-length']), Buffer.byteLength(STATIC_HTML));
    const fragment = await get(cli.port, '/app/static.html', { 'sec-fetch-dest': 'empty' });
    assert.equal(fragment.text, STATIC_HTML);
    const script = await get(cli.port, LIVE_RELOAD_SCRIPT_PATH);
    assert.equal(script.status, 200);
    assert.match(String(script.headers['content-type']), /^text\/javascript/);
    assert.match(script.text, /new EventSource/);
    assert.ok(script.headers['x-request-id'], 'answered by the front like any request');
    assert.equal((await get(cli.port, '/.tqserver/other')).status, 404, 'only the two reserved paths are claimed');
  });

  test('the stream announces an edited PHP file, then a config reload', async () => {
    const stream = openStream(cli.port);
    try {
      await stream.waitFor('hello', /"boot"/);
      edit(join(proj.docRoot('app'), 'page.php'), page(2));
      await stream.waitFor('reload', /page\.php changed/);
      assert.match((await get(cli.port, '/app/page.php')).text, /version 2/);

      const from = stream.events.length;
      const workerFile = join(proj.root, 'workers', 'app', 'config', 'worker.yaml');
      writeFileSync(workerFile, `${readFileSync(workerFile, 'utf8')}index_files: [index.php, index.html, static.html]\n`);
      await stream.waitFor('reload', /the configuration was reloaded/, from);
      await cli.waitForOutput(/reload: app app: routing updated \(index_files\)/);
    } finally {
      stream.close();
    }
  });

  test('a page in headless Chromium reloads itself after an edit and shows the new content', { timeout: 60_000 }, async () => {
    const profile = mkdtempSync(join(tmpdir(), 'tqserver-chromium-'));
    let context: BrowserContext | null = null;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      const tab = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      // Chromium asks for /favicon.ico by itself; the app has none, which is no problem of ours.
      tab.on('console', (message) => {
        if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(`console: ${message.text()}`);
      });
      tab.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      tab.on('requestfailed', (failed) => {
        // The stream is cut when the page reloads: that is the reload working.
        if (!failed.url().endsWith(LIVE_RELOAD_EVENTS_PATH)) problems.push(`request failed: ${failed.url()} ${failed.failure()?.errorText}`);
      });
      tab.on('response', (response) => {
        if (response.status() >= 400 && !response.url().endsWith('/favicon.ico')) problems.push(`${response.status()} for ${response.url()}`);
      });

      edit(join(proj.docRoot('app'), 'page.php'), page(3));
      const listening = count(cli, 'live reload: a page is listening');
      await tab.goto(`http://127.0.0.1:${cli.port}/app/page.php`);
      assert.equal(await tab.textContent('#v'), 'version 3');
      // The page's stream is open before the file changes, so the change cannot slip past it.
      await cli.waitForCount(/live reload: a page is listening/, listening + 1);

      const reloaded = tab.waitForEvent('load', { timeout: 20_000 });
      edit(join(proj.docRoot('app'), 'page.php'), page(4));
      await reloaded;
      await tab.waitForFunction("document.getElementById('v')?.textContent === 'version 4'", undefined, { timeout: 20_000 });
      const navigation = await tab.evaluate("performance.getEntriesByType('navigation')[0].type");
      assert.equal(navigation, 'reload', 'the page reloaded itself');
      assert.deepEqual(problems, []);
    } finally {
      await context?.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});

describe('live reload turned off and on by a config reload', () => {
  test('server.live_reload: false ends the streams and the injection; true brings them back', async () => {
    const proj = await project('/app');
    const cli = await startCli(proj.root, ['--mode', 'dev']);
    try {
      await cli.waitForOutput(/live reload: on/);
      const stream = openStream(cli.port);
      await stream.waitFor('hello', /"boot"/);
      const serverFile = join(proj.root, 'config', 'server.yaml');
      writeFileSync(serverFile, `${serverYaml()}  live_reload: false\n`);
      await stream.ended();
      await cli.waitForOutput(/live reload: off/);
      assert.doesNotMatch((await get(cli.port, '/app/page.php')).text, /live-reload/);
      assert.equal((await get(cli.port, LIVE_RELOAD_SCRIPT_PATH)).status, 404, 'no app is mounted there');

      writeFileSync(serverFile, serverYaml());
      await cli.waitForCount(/live reload: on/, 2);
      const php = await get(cli.port, '/app/page.php');
      assert.ok(php.text.includes(`${LIVE_RELOAD_TAG}</body>`));
      assert.equal(Number(php.headers['content-length']), php.body.length);
      assert.equal((await get(cli.port, LIVE_RELOAD_SCRIPT_PATH)).status, 200);
    } finally {
      cli.kill('SIGTERM');
      await cli.exited;
      await proj.cleanup();
    }
  });
});

describe('live reload and a graceful stop', () => {
  test('open streams end at once on SIGTERM: the stop does not wait for them', async () => {
    const proj = await project('/app');
    const cli = await startCli(proj.root, ['--mode', 'dev']);
    try {
      const stream = openStream(cli.port);
      await stream.waitFor('hello', /"boot"/);
      cli.kill('SIGTERM');
      const exit = await cli.exited;
      assert.equal(exit.code, 0);
      const stopped = Number(/stopped after (\d+) ms/.exec(cli.output())?.[1]);
      // shutdown_timeout_seconds is 30: a stop held by the stream would take that long.
      assert.ok(stopped < 10_000, `stopped after ${stopped} ms`);
      stream.close();
    } finally {
      cli.kill('SIGKILL');
      await cli.exited;
      await proj.cleanup();
    }
  });
});

describe('live reload in production', () => {
  let proj: Project;
  let cli: CliProcess & { port: number };

  before(async () => {
    // Mounted at "/": the reserved paths fall to this app like any other path.
    proj = await project('/');
    cli = await startCli(proj.root);
  });

  after(async () => {
    if (cli) await stopCli(cli);
    await proj?.cleanup();
  });

  test('nothing injected; the reserved paths are routed to the app as usual', async () => {
    const php = await get(cli.port, '/page.php');
    assert.equal(php.status, 200);
    assert.doesNotMatch(php.text, /live-reload/);
    assert.equal(Number(php.headers['content-length']), php.body.length);
    const html = await get(cli.port, '/static.html');
    assert.equal(html.text, STATIC_HTML);
    assert.equal(Number(html.headers['content-length']), Buffer.byteLength(STATIC_HTML));

    // The app answers them as it answers any hidden path (a 404), exactly as for an unreserved one.
    const usual = await get(cli.port, '/.tqserver/anything');
    for (const path of [LIVE_RELOAD_EVENTS_PATH, LIVE_RELOAD_SCRIPT_PATH]) {
      const reply = await get(cli.port, path);
      assert.equal(reply.status, usual.status, path);
      assert.equal(reply.status, 404, path);
      assert.equal(reply.text, usual.text, path);
      assert.doesNotMatch(String(reply.headers['content-type']), /event-stream|javascript/, path);
    }
    assert.doesNotMatch(cli.output(), /live reload/);
  });
});
