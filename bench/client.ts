// Client section: requests/s and latency of the FastCGI client against a real php-fpm (pm static,
// 4 children) over TCP and a unix socket, with closed-loop load generated in this process. The
// kept-alive pool sized to the children is compared with a new connection per request.

import type { Address } from '../src/fastcgi/address.js';
import { FastCGIClient } from '../src/fastcgi/client-pool.js';
import type { ParamPairs } from '../src/fastcgi/protocol.js';
import type { Peer } from '../test/helpers/peers.js';
import { typicalParams } from './lib/cgi-params.js';
import { onCleanup, wasInterrupted } from './lib/cleanup.js';
import { closedLoop, type LoadPlan, type Send } from './lib/load.js';
import { repoPath } from './lib/paths.js';
import { withPhpFpm } from './lib/php-fpm.js';
import type { BenchOptions, Row, Section } from './lib/section.js';

/** php-fpm's pm.max_children, and the kept-alive pool's maxConns: one connection per child. */
const CHILDREN = 4;
const IN_FLIGHT = [16, 64] as const;
const TRANSPORTS = ['tcp', 'unix'] as const;
type Transport = (typeof TRANSPORTS)[number];

interface Mode {
  readonly label: string;
  readonly keepConn: boolean;
  maxConns(inFlight: number): number;
}

const MODES: readonly Mode[] = [
  { label: `FastCGIClient, kept-alive, maxConns ${CHILDREN}`, keepConn: true, maxConns: () => CHILDREN },
  // What Caddy and the common npm clients do: dial per request, no client-side limit.
  { label: 'new connection per request (keepConn false)', keepConn: false, maxConns: (inFlight) => inFlight },
];

const TRANSPORT_LABEL: Record<Transport, string> = { tcp: 'TCP 127.0.0.1', unix: 'unix socket' };

function plan(options: BenchOptions, concurrency: number): LoadPlan {
  return options.quick
    ? { concurrency, warmupMs: 300, windowMs: 1000, windows: 1 }
    : { concurrency, warmupMs: 1000, windowMs: 3000, windows: 3 };
}

/** A client for one run; destroyed on Ctrl-C before php-fpm is stopped. */
async function withClient<T>(address: Address, mode: Mode, inFlight: number, body: (client: FastCGIClient) => Promise<T>): Promise<T> {
  const client = new FastCGIClient({ address, maxConns: mode.maxConns(inFlight), readTimeoutMs: 10_000 });
  const unregister = onCleanup(() => client.destroy());
  try {
    return await body(client);
  } finally {
    unregister();
    await client.close();
  }
}

/** One request, checked: the whole hello-world body, nothing on stderr. */
function sender(client: FastCGIClient, params: ParamPairs, keepConn: boolean, stdoutBytes: number): Send {
  return () =>
    new Promise<void>((resolve, reject) => {
      client.dispatch(
        { params, keepConn },
        {
          onStdout: () => true,
          onStderr: () => {},
          onEnd: (result) => {
            if (result.stdoutBytes === stdoutBytes && result.stderrBytes === 0 && result.appStatus === 0) resolve();
            else reject(new Error(`unexpected response: ${result.stdoutBytes} bytes of stdout (expected ${stdoutBytes}), ${result.stderrBytes} of stderr, app status ${result.appStatus}`));
          },
          onError: reject,
        },
      );
    });
}

/** Checks that php-fpm runs the script and returns how many bytes of stdout a response has. */
async function probe(peer: Peer, params: ParamPairs): Promise<number> {
  const client = new FastCGIClient({ address: peer.address, maxConns: 1 });
  try {
    const { stdout, stderr } = await client.request({ params }).text();
    if (!stdout.includes('Hello, world!') || stderr !== '') {
      throw new Error(`php-fpm did not run bench/php/hello.php: stdout ${JSON.stringify(stdout.slice(0, 300))}, stderr ${JSON.stringify(stderr.slice(0, 300))}`);
    }
    return Buffer.byteLength(stdout);
  } finally {
    await client.close();
  }
}

export const clientSection = {
  name: 'client',
  title: `FastCGI client against php-fpm (pm static, ${CHILDREN} children, hello world)`,
  description:
    'Closed loop: N requests in flight from this Node process for a fixed time after a warm-up; req/s is the median ' +
    'over the measuring windows, latency percentiles are over every request completed in them, "client CPU" is this ' +
    "Node process's CPU time in percent of one core. The kept-alive pool holds one connection per php-fpm child and " +
    'queues the rest; the baseline opens a new connection per request with no client-side limit, as Caddy and the ' +
    'common npm clients do. Every request sends the same 32 nginx-style params.',
  columns: [
    { key: 'transport', label: 'transport' },
    { key: 'inFlight', label: 'in flight' },
    { key: 'requestsPerSec', label: 'req/s' },
    { key: 'spreadPct', label: 'spread %', digits: 1 },
    { key: 'p50Ms', label: 'p50 ms', digits: 2 },
    { key: 'p99Ms', label: 'p99 ms', digits: 2 },
    { key: 'maxMs', label: 'max ms', digits: 1 },
    { key: 'errors', label: 'errors' },
    { key: 'cpuPct', label: 'client CPU %' },
  ],
  async run(options: BenchOptions): Promise<Row[]> {
    const params = typicalParams(repoPath('bench', 'php'), '/hello.php');
    const rows: Row[] = [];
    for (const transport of TRANSPORTS) {
      await withPhpFpm({ transport, pool: { pm: 'static', 'pm.max_children': String(CHILDREN) } }, async (peer) => {
        const stdoutBytes = await probe(peer, params);
        for (const inFlight of IN_FLIGHT) {
          for (const mode of MODES) {
            // After Ctrl-C the cleanup is stopping php-fpm and the process is about to exit.
            if (wasInterrupted()) return;
            options.log(`client: ${TRANSPORT_LABEL[transport]}, ${inFlight} in flight, ${mode.label}`);
            const result = await withClient(peer.address, mode, inFlight, (client) =>
              closedLoop(sender(client, params, mode.keepConn, stdoutBytes), plan(options, inFlight)),
            );
            if (result.firstError && !wasInterrupted()) options.log(`client: ${result.errors} requests failed; the first: ${result.firstError.message}`);
            rows.push({
              case: mode.label,
              values: {
                transport: TRANSPORT_LABEL[transport],
                inFlight,
                requestsPerSec: result.requestsPerSec,
                spreadPct: result.spreadPct,
                p50Ms: result.p50Ms,
                p99Ms: result.p99Ms,
                maxMs: result.maxMs,
                errors: result.errors,
                cpuPct: result.cpuPct,
              },
            });
          }
        }
      });
    }
    return rows;
  },
} satisfies Section;
