// Status, metrics, health and the dashboard against a real TQServer with a php-cgi app and a php-fpm
// app: every status format parsed and checked against requests known to be running, /metrics parsed
// by Prometheus' own parser and its counts matched against the requests sent under load, /readyz
// while php-fpm's master is dead and after it is back, who may ask (allowed clients, admin_listen),
// and the dashboard in a real headless Chromium while load runs.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { chromium, type BrowserContext } from 'playwright-core';
import { FpmBackend } from '../src/fpm/fpm-backend.js';
import { get, makeProject, REPO_ROOT, serverYaml, startFront, waitForPool, workerYaml, type Project, type RunningFront } from './helpers/front.js';
import { freePort } from './helpers/peers.js';
import { parseExposition, total, value, type Family } from './helpers/prometheus.js';

/** A request from a chosen local address (127.0.0.2 is loopback too) or over a unix socket. */
function fetchFrom(target: { port?: number; socketPath?: string; localAddress?: string }, path: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', ...target, path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `probe` until it returns a value (not undefined), or fails after `timeoutMs` with the last value seen. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const result = await probe();
      if (result !== undefined) return result;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Sends `count` requests with up to `concurrency` in flight; returns how many got each status per path. */
async function load(port: number, paths: readonly string[], count: number, concurrency: number): Promise<Map<string, Map<number, number>>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const results = new Map<string, Map<number, number>>();
  let next = 0;
  const one = (path: string) =>
    new Promise<number>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(-1));
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const path = paths[next++ % paths.length]!;
        const status = await one(path);
        const byStatus = results.get(path) ?? new Map<number, number>();
        byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
        results.set(path, byStatus);
      }
    }),
  );
  agent.destroy();
  return results;
}

/** Requests held in PHP until release() (the script waits for a file to appear). */
class Holds {
  readonly #dir: string;
  #next = 0;
  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Starts a request to `<prefix>/hold.php?id=N`; resolves with its status when released. */
  start(port: number, prefix: string): { id: string; done: Promise<number> } {
    const id = `h${++this.#next}`;
    return { id, done: get(port, `${prefix}/hold.php?id=${id}`).then((reply) => reply.status) };
  }

  release(id: string): void {
    writeFileSync(join(this.#dir, id), '');
  }
}

/** php-fpm's and php-cgi's rows of requests to hold.php that are running now. */
function heldRows(pool: Record<string, any>, prefix: string): Array<Record<string, any>> {
  return (pool.processes as Array<Record<string, any>>).filter((p) => p.state === 'Running' && String(p['request uri']).startsWith(`${prefix}/hold.php`));
}

const HOLD_PHP = (dir: string) => `<?php
// Holds the request until the test creates ${dir}/<id> (at most 20 s).
$file = ${JSON.stringify(dir)} . '/' . basename($_GET['id'] ?? 'none');
$deadline = microtime(true) + 20;
while (!file_exists($file) && microtime(true) < $deadline) usleep(5000);
header('Content-Type: text/plain');
echo file_exists($file) ? "released\\n" : "timed out\\n";
`;

describe('status, metrics and health of a php-cgi app and a php-fpm app', () => {
  let project: Project;
  let front: RunningFront;
  let holdDir: string;
  let holds: Holds;

  before(async () => {
    holdDir = mkdtempSync(join(tmpdir(), 'tqserver-holds-'));
    holds = new Holds(holdDir);
    project = await makeProject({
      server: serverYaml(),
      apps: [
        // Recycled every 20 requests, so the load below restarts workers; missing files are 404s.
        { name: 'cgi', worker: workerYaml('/cgi', { max_workers: 4, max_requests: 20 }, { extra: 'front_controller: ~\nslow_log:\n  threshold: 150ms\n  path: ~' }) },
        { name: 'fpm', worker: workerYaml('/fpm', { max_workers: 4 }, { extra: 'php_fpm:\n  enabled: true\nslow_log:\n  path: ~' }) },
      ],
    });
    for (const app of ['cgi', 'fpm']) writeFileSync(join(project.docRoot(app), 'hold.php'), HOLD_PHP(holdDir));
    front = await startFront(project.root);
  });

  after(async () => {
    // Anything still held is let go, so the stop below does not wait for it.
    for (let i = 1; i <= 64; i++) writeFileSync(join(holdDir, `h${i}`), '');
    await front?.stop();
    await project?.cleanup();
    rmSync(holdDir, { recursive: true, force: true });
  });

  test('every status format shows the requests known to be running, with all workers busy and requests queued', async () => {
    const port = front.port;
    // All four php-cgi workers held, and two more requests waiting for one.
    const cgi = Array.from({ length: 6 }, () => holds.start(port, '/cgi'));
    const fpm = Array.from({ length: 2 }, () => holds.start(port, '/fpm'));
    // Whatever happens below, the held requests are let go before the next test.
    const release = () => {
      for (const hold of [...cgi, ...fpm]) holds.release(hold.id);
    };
    try {
    await waitForPool(front, 'cgi', (s) => s.active === 4);
    // The queue changes no worker's state, so it is watched on the status page itself.
    await until('two requests waiting', async () => ((await get(port, '/status?json')).json().pools.find((p: any) => p.pool === 'cgi')['listen queue'] === 2 ? true : undefined));

    // JSON ?full: the pool and one Running row per held request, with the real php-cgi pids.
    const json = (await get(port, '/status?json&full')).json();
    const cgiPool = json.pools.find((p: any) => p.pool === 'cgi');
    assert.equal(cgiPool['active processes'], 4);
    assert.equal(cgiPool['idle processes'], 0);
    assert.equal(cgiPool['total processes'], 4);
    assert.equal(cgiPool['listen queue'], 2);
    assert.ok(cgiPool['max listen queue'] >= 2);
    assert.equal(cgiPool['process manager'], 'static');
    assert.equal(cgiPool.backend, 'php-cgi');
    const rows = heldRows(cgiPool, '/cgi');
    assert.equal(rows.length, 4);
    const livePids = front.server.apps.get('cgi')!.backend.status().processes.map((p) => p.pid).sort();
    assert.deepEqual(rows.map((r) => r.pid).sort(), livePids);
    for (const row of rows) {
      assert.equal(row['request method'], 'GET');
      assert.match(row.script, /hold\.php$/);
      assert.ok(row['request duration'] > 0);
    }

    // Plain text ?full, read line by line: the same figures and rows.
    const text = (await get(port, '/status?full')).text;
    const blocks = text.trim().split(/\n\n(?:\*{24}\n)?/).map((block) => new Map(block.split('\n').map((line) => {
      const match = /^([a-zA-Z ]+): +(.*)$/.exec(line);
      assert.ok(match, `a "name: value" line: ${line}`);
      return [match[1]!, match[2]!] as const;
    })));
    const cgiBlock = blocks.find((b) => b.get('pool') === 'cgi')!;
    assert.equal(cgiBlock.get('active processes'), '4');
    assert.equal(cgiBlock.get('listen queue'), '2');
    assert.match(cgiBlock.get('start time')!, /^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000$/);
    const textRows = blocks.filter((b) => b.get('state') === 'Running' && b.get('request URI')?.startsWith('/cgi/hold.php'));
    assert.deepEqual(textRows.map((b) => Number(b.get('pid'))).sort(), livePids);

    // XML ?full: well-formed, the same.
    const xml = (await get(port, '/status?xml&full')).text;
    assert.equal(XMLValidator.validate(xml), true);
    const statuses = [new XMLParser({ parseTagValue: false, isArray: (name) => name === 'status' || name === 'process' }).parse(xml).pools.status].flat();
    const cgiXml = statuses.find((s: any) => s.pool === 'cgi');
    assert.equal(cgiXml['active-processes'], '4');
    assert.equal(cgiXml['listen-queue'], '2');
    assert.deepEqual(cgiXml.processes.process.filter((p: any) => p.state === 'Running').map((p: any) => Number(p.pid)).sort(), livePids);

    // ?openmetrics, parsed by Prometheus' OpenMetrics parser.
    const om = parseExposition((await get(port, '/status?openmetrics')).text, 'openmetrics');
    assert.equal(value(om, 'phpfpm_active_processes', { pool: 'cgi' }), 4);
    assert.equal(value(om, 'phpfpm_listen_queue', { pool: 'cgi' }), 2);

    // Health answers while every worker is busy: nothing here needs PHP. The queue has room: ready.
    assert.equal((await get(port, '/healthz')).status, 200);
    const ready = await get(port, '/readyz');
    assert.equal(ready.status, 200);
    assert.match(ready.json().apps.find((a: any) => a.app === 'cgi').reason, /all 4 workers busy; 2 of queue_limit 512 waiting/);

    // php-fpm's own rows come with its health check (every 5 s): wait for them, then every format agrees.
    const fpmPool = await until('php-fpm to report both held requests', async () => {
      const pool = (await get(port, '/status?json&full')).json().pools.find((p: any) => p.pool === 'fpm');
      return heldRows(pool, '/fpm').length === 2 ? pool : undefined;
    });
    const fpmPids = heldRows(fpmPool, '/fpm').map((r) => r.pid).sort();
    assert.equal(fpmPool.backend, 'php-fpm');
    assert.equal(fpmPool['total processes'], 4);
    assert.equal(fpmPool.upstreams[0].breaker, 'closed');
    assert.equal(fpmPool.upstreams[0].busy, 2, 'TQServer\'s own connections: two carry the held requests');
    const fpmText = (await get(port, '/status?full')).text;
    for (const pid of fpmPids) assert.match(fpmText, new RegExp(`^pid: +${pid}\\nstate: +Running\\n(?:.*\\n){4}request method: +GET\\nrequest URI: +/fpm/hold\\.php`, 'm'));
    const fpmXml = [new XMLParser({ parseTagValue: false, isArray: (name) => name === 'status' || name === 'process' }).parse((await get(port, '/status?xml&full')).text).pools.status].flat().find((s: any) => s.pool === 'fpm');
    assert.deepEqual(fpmXml.processes.process.filter((p: any) => String(p['request-uri']).startsWith('/fpm/hold.php')).map((p: any) => Number(p.pid)).sort(), fpmPids);

    release();
    assert.deepEqual(await Promise.all([...cgi, ...fpm].map((h) => h.done)), Array(8).fill(200));
    } finally {
      release();
    }
  });

  test('/metrics under load: Prometheus\' parser reads it, and the counts are the requests sent', async () => {
    const port = front.port;
    const scrape = async (format: 'prometheus' | 'openmetrics' = 'prometheus'): Promise<Family[]> => {
      const reply = await get(port, format === 'openmetrics' ? '/metrics?openmetrics' : '/metrics');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-type'], format === 'openmetrics' ? 'application/openmetrics-text; version=1.0.0; charset=utf-8' : 'text/plain; version=0.0.4; charset=utf-8');
      return parseExposition(reply.text, format);
    };
    const requests = (m: Family[], labels: Record<string, string>) => total(m, 'tqserver_requests_total', labels);
    const before = await scrape();

    // 320 requests, up to 160 at once: PHP on both apps, static files and misses.
    const paths = ['/cgi/sleep.php?ms=15', '/fpm/sleep.php?ms=15', '/cgi/assets/hello.txt', '/cgi/nope.txt'];
    const sent = load(port, paths, 320, 160);
    // While it runs, every scrape parses and the pools never claim more than they have.
    let scrapesDuringLoad = 0;
    let settled = false;
    void sent.then(() => (settled = true));
    while (!settled) {
      const m = await scrape();
      for (const app of ['cgi', 'fpm']) {
        assert.ok(value(m, 'tqserver_pool_active_processes', { app }) <= value(m, 'tqserver_pool_total_processes', { app }));
        assert.ok(value(m, 'tqserver_pool_total_processes', { app }) <= 4 || app === 'fpm');
      }
      scrapesDuringLoad += 1;
    }
    const results = await sent;
    assert.ok(scrapesDuringLoad >= 1);
    assert.deepEqual([...results.get(paths[0]!)!], [[200, 80]]);
    assert.deepEqual([...results.get(paths[1]!)!], [[200, 80]]);
    assert.deepEqual([...results.get(paths[2]!)!], [[200, 80]]);
    assert.deepEqual([...results.get(paths[3]!)!], [[404, 80]]);

    // The pool settles (recycled workers replaced), then the figures are compared with the status page.
    await waitForPool(front, 'cgi', (s) => s.idle === 4 && s.total === 4);
    const [after, openMetrics] = [await scrape(), await scrape('openmetrics')];
    const delta = (labels: Record<string, string>) => requests(after, labels) - requests(before, labels);
    assert.equal(delta({ app: 'cgi', status_class: '2xx', backend: 'php-cgi', front: 'http' }), 80);
    assert.equal(delta({ app: 'fpm', status_class: '2xx', backend: 'php-fpm', front: 'http' }), 80);
    assert.equal(delta({ app: 'cgi', status_class: '2xx', backend: 'none' }), 80, 'static files');
    assert.equal(delta({ app: 'cgi', status_class: '4xx', backend: 'none' }), 80, 'misses');
    assert.equal(delta({ app: 'cgi', status_class: '5xx' }), 0);
    // (A series appears with its first observation: before the load, some have none.)
    const count = (m: Family[], name: string, labels: Record<string, string>) => total(m, `${name}_count`, labels);
    for (const [app, backend] of [['cgi', 'php-cgi'], ['fpm', 'php-fpm']] as const) {
      for (const name of ['tqserver_request_php_seconds', 'tqserver_request_queue_seconds']) {
        assert.equal(count(after, name, { app, backend }) - count(before, name, { app, backend }), 80, `${name} ${app}`);
        assert.equal(value(after, `${name}_bucket`, { app, backend, le: '+Inf' }), count(after, name, { app, backend }));
      }
      // Every PHP request slept 15 ms: none was faster than 10 ms in PHP.
      assert.equal(total(after, 'tqserver_request_php_seconds_bucket', { app, backend, le: '0.01' }) - total(before, 'tqserver_request_php_seconds_bucket', { app, backend, le: '0.01' }), 0);
    }
    assert.equal(count(after, 'tqserver_request_duration_seconds', { app: 'cgi', kind: 'static' }) - count(before, 'tqserver_request_duration_seconds', { app: 'cgi', kind: 'static' }), 80);
    // The same counts in OpenMetrics.
    assert.equal(requests(openMetrics, { app: 'fpm', status_class: '2xx', backend: 'php-fpm' }), requests(after, { app: 'fpm', status_class: '2xx', backend: 'php-fpm' }));

    // Pool gauges and restarts are the status page's figures.
    const status = (await get(port, '/status?json')).json().pools as Array<Record<string, any>>;
    const cgiStatus = status.find((p) => p.pool === 'cgi')!;
    assert.equal(value(after, 'tqserver_pool_idle_processes', { app: 'cgi' }), cgiStatus['idle processes']);
    assert.equal(value(after, 'tqserver_pool_active_processes', { app: 'cgi' }), 0);
    assert.equal(value(after, 'tqserver_pool_total_processes', { app: 'cgi' }), 4);
    assert.equal(value(after, 'tqserver_pool_max_children', { app: 'cgi' }), 4);
    assert.equal(value(after, 'tqserver_pool_accepted_connections_total', { app: 'cgi' }), cgiStatus['accepted conn']);
    assert.equal(value(after, 'tqserver_pool_max_listen_queue', { app: 'cgi' }), cgiStatus['max listen queue']);
    assert.ok(cgiStatus['max listen queue'] > 0, 'requests queued under load');
    // 86 PHP requests on 4 workers that recycle every 20: one of them served at least 22, so was recycled.
    const recycled = value(after, 'tqserver_worker_restarts_total', { app: 'cgi', reason: 'recycled' });
    assert.equal(recycled, cgiStatus.restarts.recycled);
    assert.ok(recycled >= 1, `workers recycled under load (${recycled})`);
    const fpmStatus = status.find((p) => p.pool === 'fpm')!;
    const upstream = { app: 'fpm', upstream: fpmStatus.upstreams[0].address };
    assert.equal(value(after, 'tqserver_phpfpm_breaker_state', { ...upstream, state: 'closed' }), 1);
    assert.equal(value(after, 'tqserver_phpfpm_breaker_state', { ...upstream, state: 'open' }), 0);
    // Connections open and close with php-fpm's children, so they are checked within one scrape.
    const open = value(after, 'tqserver_phpfpm_upstream_open_connections', upstream);
    assert.ok(open <= 4, `never more connections than php-fpm has children (${open})`);
    assert.ok(open >= value(after, 'tqserver_phpfpm_upstream_idle_connections', upstream) + value(after, 'tqserver_phpfpm_upstream_busy_connections', upstream));
    assert.ok(value(after, 'tqserver_phpfpm_upstream_requests_total', upstream) >= 80);
    assert.equal(value(after, 'tqserver_app_ready', { app: 'cgi' }), 1);
    assert.equal(value(after, 'tqserver_app_ready', { app: 'fpm' }), 1);
  });

  test('php-fpm\'s master killed: /readyz is 503 naming the app and why, /healthz stays 200; both 200 once it is back', async () => {
    const port = front.port;
    const backend = front.server.apps.get('fpm')!.backend as FpmBackend;
    const masterPid = backend.master!.pid;
    assert.equal((await get(port, '/readyz')).status, 200);
    process.kill(masterPid, 'SIGKILL');
    const down = await until('/readyz to answer 503', async () => {
      const reply = await get(port, '/readyz');
      return reply.status === 503 ? reply : undefined;
    });
    assert.equal(down.headers['content-type'], 'application/json');
    const body = down.json();
    assert.equal(body.status, 'not ready');
    assert.match(body.reason, /^fpm: /);
    const fpm = body.apps.find((a: any) => a.app === 'fpm');
    assert.equal(fpm.ready, false);
    assert.equal(fpm.backend, 'php-fpm');
    assert.match(fpm.reason, /php-fpm (master is restarting|is not answering)/);
    assert.equal(body.apps.find((a: any) => a.app === 'cgi').ready, true, 'the other app is fine');
    const alive = await get(port, '/healthz');
    assert.equal(alive.status, 200);
    assert.equal(alive.text, 'ok\n');

    await until('/readyz to answer 200 again', async () => ((await get(port, '/readyz')).status === 200 ? true : undefined), 15_000);
    assert.notEqual(backend.master!.pid, masterPid);
    assert.equal((await get(port, '/fpm/sleep.php?ms=0')).status, 200);
    const m = parseExposition((await get(port, '/metrics')).text);
    assert.equal(value(m, 'tqserver_phpfpm_master_restarts_total', { app: 'fpm' }), 1);
    assert.equal(value(m, 'tqserver_app_ready', { app: 'fpm' }), 1);
  });

  test('the dashboard in headless Chromium: no console errors, the charts move while load runs', async () => {
    const port = front.port;
    // ?html is the same page, under its policy.
    const html = await get(port, '/status?html');
    assert.equal(html.status, 200);
    assert.match(String(html.headers['content-type']), /^text\/html/);
    assert.match(String(html.headers['content-security-policy']), /script-src 'nonce-/);

    const profile = mkdtempSync(join(tmpdir(), 'tqserver-chromium-'));
    let context: BrowserContext | null = null;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        viewport: { width: 1400, height: 1000 },
        colorScheme: 'dark',
      });
      const page = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));
      page.on('response', (response) => {
        if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
      });

      await page.goto(`http://127.0.0.1:${port}/status/`);
      await page.waitForSelector('section[data-app="cgi"] [data-chart="rps"] canvas');
      await page.waitForSelector('section[data-app="fpm"] [data-chart="occupancy"] canvas');
      await page.click('#window button[data-window="60"]');
      const chart = (app: string, kind: string) => page.$eval(`section[data-app="${app}"] [data-chart="${kind}"] canvas`, (c) => (c as unknown as { toDataURL(): string }).toDataURL());
      const before = { rps: await chart('cgi', 'rps'), latency: await chart('cgi', 'latency'), occupancy: await chart('fpm', 'occupancy') };

      // About four seconds of load: fast and slow PHP requests on both apps, and misses.
      const paths = ['/cgi/sleep.php?ms=5', '/fpm/sleep.php?ms=5', '/cgi/sleep.php?ms=40', '/fpm/sleep.php?ms=60', '/cgi/nope.txt', '/cgi/sleep.php?ms=200'];
      const sent = load(port, paths, 600, 24);
      await until('the request rate and the charts to change on the page', async () => {
        const rps = Number(await page.getAttribute('section[data-app="cgi"] .tile[data-value]', 'data-value'));
        if (!(rps > 0)) return undefined;
        const now = { rps: await chart('cgi', 'rps'), latency: await chart('cgi', 'latency'), occupancy: await chart('fpm', 'occupancy') };
        return now.rps !== before.rps && now.latency !== before.latency && now.occupancy !== before.occupancy ? true : undefined;
      });
      // The worker tables show requests as they run, and the slow list fills (threshold 150 ms for cgi).
      await until('a running request in the worker table', async () => ((await page.$$('section[data-app="cgi"] [data-table="workers"] td.state.Running')).length > 0 ? true : undefined));
      await until('a slow request listed', async () => ((await page.textContent('section[data-app="cgi"] [data-table="slow"] tbody'))?.includes('GET /cgi/sleep.php?ms=') ? true : undefined));
      const points = Number(await page.getAttribute('section[data-app="cgi"] [data-chart="rps"] canvas', 'data-points'));
      assert.ok(points >= 2, `the chart has points (${points})`);
      const results = await sent;
      assert.deepEqual([...results.get('/cgi/sleep.php?ms=5')!.keys()], [200]);

      mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(REPO_ROOT, 'test-artifacts', 'dashboard.png'), fullPage: true });
      assert.equal((await page.textContent('#overall'))?.trim(), 'all 2 apps ready');
      assert.deepEqual(problems, []);
    } finally {
      await context?.close();
      rmSync(profile, { recursive: true, force: true });
    }
  });
});

describe('who may ask', () => {
  const started: Array<{ front: RunningFront; project: Project }> = [];
  /** `server` lines are YAML under `server:` (serverYaml() quotes values, and a list must stay a list). */
  const start = async (...server: string[]) => {
    const project = await makeProject({ server: serverYaml() + server.map((line) => `  ${line}\n`).join(''), apps: [{ name: 'app', worker: workerYaml('/app', { max_workers: 1 }) }] });
    const front = await startFront(project.root);
    started.push({ front, project });
    return front;
  };

  after(async () => {
    for (const { front, project } of started) {
      await front.stop();
      await project.cleanup();
    }
  });

  const ENDPOINTS = ['/status', '/status/', '/status?json', '/metrics', '/healthz', '/readyz'];

  test('admin_allowed_clients: others get 403, the listed address gets the answers', async () => {
    const front = await start('admin_allowed_clients: [127.0.0.2]');
    for (const path of ENDPOINTS) {
      const denied = await fetchFrom({ port: front.port, localAddress: '127.0.0.1' }, path);
      assert.equal(denied.status, 403, `${path} from 127.0.0.1`);
      assert.doesNotMatch(denied.text, /accepted conn|tqserver_/);
      const allowed = await fetchFrom({ port: front.port, localAddress: '127.0.0.2' }, path);
      assert.equal(allowed.status, 200, `${path} from 127.0.0.2`);
    }
    // The apps do not care.
    assert.equal((await fetchFrom({ port: front.port, localAddress: '127.0.0.1' }, '/app/sleep.php?ms=0')).status, 200);
  });

  test('admin_listen (TCP): status, metrics and health there only; the main port passes those paths to the apps', async () => {
    const adminPort = await freePort();
    const front = await start(`admin_listen: 127.0.0.1:${adminPort}`);
    for (const path of ENDPOINTS) {
      assert.equal((await fetchFrom({ port: front.port }, path)).status, 404, `${path} on the main port`);
      assert.equal((await fetchFrom({ port: adminPort }, path)).status, 200, `${path} on the admin port`);
    }
    assert.equal((await fetchFrom({ port: adminPort }, '/app/sleep.php?ms=0')).status, 404, 'no app on the admin port');
    assert.match((await fetchFrom({ port: adminPort }, '/status')).text, /^pool: +app$/m);
    assert.equal((await fetchFrom({ port: front.port }, '/app/sleep.php?ms=0')).status, 200);
  });

  test('admin_listen (unix socket): answered to whoever can open the socket, whatever admin_allowed_clients says', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tqserver-admin-'));
    try {
      const socketPath = join(dir, 'admin.sock');
      const front = await start(`admin_listen: ${socketPath}`, 'admin_allowed_clients: [10.9.9.9]');
      assert.equal(front.server.admin.address, socketPath);
      for (const path of ENDPOINTS) assert.equal((await fetchFrom({ socketPath }, path)).status, 200, `${path} on the socket`);
      const m = parseExposition((await fetchFrom({ socketPath }, '/metrics')).text);
      assert.equal(value(m, 'tqserver_pool_total_processes', { app: 'app' }), 1);
      assert.equal((await fetchFrom({ port: front.port }, '/readyz')).status, 404);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
