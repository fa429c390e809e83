// server.trusted_proxies end to end, with real php-cgi: behind a proxy TQServer trusts, PHP sees the
// client's address and scheme (REMOTE_ADDR, HTTPS, REQUEST_SCHEME, SERVER_PORT) and the access log
// names the client, on the fast path and through node:http alike; from an untrusted peer the same
// headers change nothing.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeProject, request, serverYaml, startFront, workerYaml, type Project, type RunningFront } from './helpers/front.js';
import { until } from './helpers/supervisor.js';

const FORWARDED = { 'x-forwarded-for': '6.6.6.6, 198.51.100.7', 'x-forwarded-proto': 'https', accept: 'application/json' };

type ServerVars = Record<string, string | undefined>;

/** GET goes on the fast path; a chunked POST always through node:http. */
async function serverVars(port: number, method: 'GET' | 'POST', headers: Record<string, string>): Promise<ServerVars> {
  const reply = await request(port, { method, path: '/app/env.php?x=1', headers, ...(method === 'POST' ? { chunks: ['a=', '1'] } : {}) });
  assert.equal(reply.status, 200, reply.text.slice(0, 300));
  return (reply.json() as { server: ServerVars }).server;
}

/** The access log's JSON lines once one has `requestId`'s id. */
async function accessLine(file: string, requestId: string): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined;
  await until(`the access log line of ${requestId}`, () => {
    if (!existsSync(file)) return false;
    found = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>).find((r) => r.req === requestId);
    return found !== undefined;
  }, 5000);
  return found!;
}

for (const trusted of [true, false]) {
  describe(trusted ? 'behind a trusted proxy (server.trusted_proxies: [10.0.0.0/8, 127.0.0.1])' : 'without trusted_proxies', () => {
    let project: Project;
    let front: RunningFront;
    let logFile: string;

    before(async () => {
      project = await makeProject({
        server: serverYaml() + (trusted ? '  trusted_proxies: ["10.0.0.0/8", "127.0.0.1"]\n' : ''),
        apps: [{ name: 'app', worker: workerYaml('/app', { max_workers: 1 }, { extra: 'access_log:\n  path: access.log\n  format: json' }) }],
      });
      logFile = join(project.root, 'workers', 'app', 'access.log');
      front = await startFront(project.root);
    });

    after(async () => {
      await front?.stop();
      await project?.cleanup();
    });

    for (const method of ['GET', 'POST'] as const) {
      test(`${method} (${method === 'GET' ? 'the fast path' : 'chunked, through node:http'}): what PHP sees`, async () => {
        const fastBefore = front.server.http.fastPath.requests;
        const vars = await serverVars(front.port, method, FORWARDED);
        assert.equal(front.server.http.fastPath.requests - fastBefore, method === 'GET' ? 1 : 0, 'the path the request took');
        if (trusted) {
          // The rightmost address that is not a trusted proxy; 6.6.6.6 is whatever the client wrote.
          assert.equal(vars.REMOTE_ADDR, '198.51.100.7');
          assert.equal(vars.HTTPS, 'on');
          assert.equal(vars.REQUEST_SCHEME, 'https');
          assert.equal(vars.SERVER_PORT, '443');
        } else {
          assert.equal(vars.REMOTE_ADDR, '127.0.0.1');
          assert.equal(vars.HTTPS, undefined);
          assert.equal(vars.REQUEST_SCHEME, 'http');
          assert.equal(vars.SERVER_PORT, String(front.port));
        }
        // The headers themselves reach PHP either way, as nginx passes them.
        assert.equal(vars.HTTP_X_FORWARDED_FOR, '6.6.6.6, 198.51.100.7');
        assert.equal(vars.HTTP_X_FORWARDED_PROTO, 'https');
        assert.ok(vars.REMOTE_PORT && Number(vars.REMOTE_PORT) > 0, 'REMOTE_PORT stays the connection\'s');
      });
    }

    test('the access log names the client', async () => {
      const reply = await request(front.port, { path: '/app/env.php?log=1', headers: FORWARDED });
      assert.equal(reply.status, 200);
      const line = await accessLine(logFile, String(reply.headers['x-request-id']));
      assert.equal(line.remote_addr, trusted ? '198.51.100.7' : '127.0.0.1', JSON.stringify(line));
    });

    test('a forwarded http and an X-Forwarded-Port', async () => {
      const vars = await serverVars(front.port, 'GET', { 'x-forwarded-for': '2001:db8::7', 'x-forwarded-proto': 'http', 'x-forwarded-port': '8080' });
      assert.equal(vars.REMOTE_ADDR, trusted ? '2001:db8::7' : '127.0.0.1');
      assert.equal(vars.HTTPS, undefined);
      assert.equal(vars.SERVER_PORT, trusted ? '8080' : String(front.port));
    });

    if (trusted) {
      test('an X-Forwarded-For that is not a list of addresses is not used', async () => {
        const vars = await serverVars(front.port, 'GET', { 'x-forwarded-for': '198.51.100.7, <script>' });
        assert.equal(vars.REMOTE_ADDR, '127.0.0.1');
      });
    }
  });
}
