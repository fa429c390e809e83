// A new connection to php-fpm learns how many requests its child has served (src/fpm/calibrate.ts):
// php-fpm closes a child's connection after its pm.max_requests-th request, and over TCP a request
// sent in that instant is lost. Against a real php-fpm on TCP with pm.status_path set.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FastCGIClient, FastCGIConnection, FastCGIResponse } from '../src/fastcgi/index.js';
import { childRequestsFromStatus, fpmCalibrator } from '../src/fpm/calibrate.js';
import type { Peer } from './helpers/peers.js';
import { cgi, phpParams, startFpm, waitFor } from './client-support.js';

const LIMIT = { timeout: 30_000 };
const STATUS = '/tq-status';
const MAX_REQUESTS = 5;

let fpm: Peer;

before(async () => {
  fpm = await startFpm({ transport: 'tcp', pool: { 'pm.max_children': '2', 'pm.max_requests': String(MAX_REQUESTS), 'pm.status_path': STATUS } });
});

after(async () => {
  await fpm.stop();
});

function get(connection: FastCGIConnection): Promise<{ stdout: string }> {
  return new FastCGIResponse((handler) => connection.dispatch({ params: phpParams('hello.php') }, handler)).text();
}

describe('php-fpm request counts for new connections', () => {
  test("the status request finds the connection's own child, its count including the status request", LIMIT, async (t) => {
    const first = await FastCGIConnection.connect(fpm.address);
    t.after(() => first.destroy());
    await get(first);
    await get(first);
    await fpmCalibrator(STATUS)(first);
    // php-fpm's count also includes connections its child accepted that sent no request (the
    // startup probe's): at least the two requests and the status request.
    const served = first.requestsServed;
    assert.ok(served >= 3, `count ${served}`);
    await get(first);
    await fpmCalibrator(STATUS)(first);
    assert.equal(first.requestsServed, served + 2, 'the same child: one request and one status request more');
    // The first connection pins its child: a second one reaches the other child.
    const second = await FastCGIConnection.connect(fpm.address);
    t.after(() => second.destroy());
    await fpmCalibrator(STATUS)(second);
    assert.ok(second.requestsServed >= 1 && second.requestsServed < served, `count ${second.requestsServed}`);
    // A count is never lowered.
    second.assumeServed(0);
    assert.ok(second.requestsServed >= 1);
  });

  test('a php-fpm without the status path answers 404 and the count stays as it was', LIMIT, async (t) => {
    const connection = await FastCGIConnection.connect(fpm.address);
    t.after(() => connection.destroy());
    await get(connection);
    await fpmCalibrator('/no-such-status')(connection);
    assert.equal(connection.requestsServed, 2, 'the 404 counts as a request on the connection; nothing else changed');
  });

  test('status JSON: only the Running process with the marker counts', () => {
    const body = JSON.stringify({
      pool: 'www',
      processes: [
        { pid: 1, state: 'Idle', requests: 7, 'request uri': '/s?json&full&m-1' },
        { pid: 2, state: 'Running', requests: 4, 'request uri': '/s?json&full&m-1' },
        { pid: 3, state: 'Running', requests: 9, 'request uri': '/index.php' },
      ],
    });
    assert.equal(childRequestsFromStatus(`Content-type: application/json\r\n\r\n${body}`, 'm-1'), 4);
    assert.equal(childRequestsFromStatus(body, 'm-2'), null);
    assert.equal(childRequestsFromStatus('File not found.', 'm-1'), null);
  });

  test('POSTs after idle closes put the connections on children with earlier requests: none is lost, none sent twice', LIMIT, async (t) => {
    // Idle connections close after 20 ms while their children live on with their counts; the next
    // burst opens connections that land on those children. Each child closes after its fifth
    // request; over TCP a POST sent on a connection in that instant would fail.
    const client = new FastCGIClient({
      address: fpm.address,
      maxConns: 2,
      idleTimeoutMs: 20,
      maxRequestsPerConnection: MAX_REQUESTS,
      calibrate: fpmCalibrator(STATUS),
    });
    t.after(() => client.destroy());
    const seen = new Set<string>();
    let sent = 0;
    for (let burst = 0; burst < 12; burst++) {
      const size = 1 + (burst % 4);
      const results = await Promise.allSettled(
        Array.from({ length: size }, () => {
          const body = `post-${sent++}`;
          const params = phpParams('echo.php', { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) });
          return new FastCGIResponse((handler) => client.dispatch({ params, body }, handler)).text();
        }),
      );
      assert.deepEqual(
        results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)),
        [],
        `burst ${burst}`,
      );
      for (const r of results) seen.add((JSON.parse(cgi((r as PromiseFulfilledResult<{ stdout: string }>).value.stdout).body) as { bodyMd5: string }).bodyMd5);
      await waitFor('the idle connections to close', () => client.stats.open === 0);
    }
    assert.equal(seen.size, sent, 'every answer is for its own body');
    assert.equal(client.stats.retries, 0);
  });
});
