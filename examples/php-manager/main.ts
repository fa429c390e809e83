// A runnable php-cgi manager built from the library parts alone: a pool of two static workers that
// serves hello.php now and then to show activity, prints the pool's stats every few seconds, and
// stops gracefully on SIGINT or SIGTERM with no php-cgi process left behind.
//
//   npm run build && npm run example:php-manager
//   node dist/examples/php-manager/main.js --stats-interval-ms 1000 --request-interval-ms 100 --max-requests 20
//
// Stats go to stdout, one line each; the pool's own log (JSON, pino) goes to stderr.

import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ResponseHandler } from '../../src/fastcgi/client.js';
import { createLogger } from '../../src/log.js';
import { detectPhp } from '../../src/php/binary.js';
import { WorkerPool, type PoolStats } from '../../src/supervisor/worker-pool.js';
import type { WorkerStats } from '../../src/supervisor/worker.js';

const { values: args } = parseArgs({
  options: {
    'php-cgi': { type: 'string' },
    workers: { type: 'string', default: '2' },
    'stats-interval-ms': { type: 'string', default: '5000' },
    'request-interval-ms': { type: 'string', default: '500' },
    'max-requests': { type: 'string', default: '0' },
    'stop-grace-ms': { type: 'string', default: '10000' },
  },
});

function count(name: keyof typeof args): number {
  const value = Number(args[name]);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a whole number, not ${JSON.stringify(args[name])}`);
  return value;
}

/** The script this example serves; it stays in the source tree (dist/ holds only compiled code). */
const SCRIPT = fileURLToPath(new URL('../../../examples/php-manager/hello.php', import.meta.url));

const log = createLogger({ level: 'info', base: { example: 'php-manager' } });
const binary = await detectPhp('php-cgi', args['php-cgi'] ?? null);
const pool = new WorkerPool(
  {
    name: 'demo',
    binary,
    manager: 'static',
    maxWorkers: Math.max(1, count('workers')),
    startWorkers: 0,
    minSpareWorkers: 0,
    maxSpareWorkers: 0,
    idleTimeoutMs: 0,
    maxSpawnRate: 1,
    maxRequests: count('max-requests'),
    requestTimeoutMs: 30_000,
    maxWorkerMemoryBytes: 0,
    queueLimit: 100,
    queueTimeoutMs: 5000,
  },
  log,
);

/** Every php-cgi pid the pool ever had, checked once more after the stop. */
const everyPid = new Set<number>();
pool.on('worker-ready', (worker) => everyPid.add(worker.pid));

await pool.start();
print(`php-manager: ${pool.config.maxWorkers} static php-cgi workers (${binary.path}, PHP ${binary.version.text}); Ctrl-C stops`);

let served = 0;
let failed = 0;
let inFlight = 0;

/** One GET of hello.php through the pool, the way a web server would send it. */
function serveOne(): void {
  if (inFlight >= pool.config.maxWorkers) return;
  inFlight += 1;
  const handler: ResponseHandler = {
    onStdout: () => true,
    onStderr: () => {},
    onEnd: () => {
      inFlight -= 1;
      served += 1;
    },
    onError: (error) => {
      inFlight -= 1;
      failed += 1;
      log.warn({ err: error.message }, `request failed: ${error.message}`);
    },
  };
  pool.dispatch(
    {
      params: {
        GATEWAY_INTERFACE: 'CGI/1.1',
        SERVER_PROTOCOL: 'HTTP/1.1',
        REQUEST_METHOD: 'GET',
        SCRIPT_FILENAME: SCRIPT,
        SCRIPT_NAME: '/hello.php',
        REQUEST_URI: '/hello.php',
        QUERY_STRING: '',
        REMOTE_ADDR: '127.0.0.1',
        SERVER_NAME: 'localhost',
        SERVER_PORT: '80',
        REDIRECT_STATUS: '200',
      },
    },
    handler,
    { method: 'GET', uri: '/hello.php', script: SCRIPT },
  );
}

function mib(bytes: number | null): string {
  return bytes === null ? '?' : `${(bytes / 1048576).toFixed(1)} MiB`;
}

function statsLine(stats: PoolStats, workers: WorkerStats[]): string {
  const restarts = Object.entries(stats.restarts)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${n} ${reason}`)
    .join(', ');
  const perWorker = workers.map((w) => `pid ${w.pid} ${w.state} ${w.requests} req ${mib(w.rssBytes)}`).join('; ');
  return (
    `[stats] pool ${stats.pool} (${stats.processManager}): ${stats.total} total, ${stats.idle} idle, ${stats.active} active, ` +
    `${stats.queueLength} queued; ${stats.acceptedRequests} accepted, ${served} served, ${failed} failed; ` +
    `restarts: ${restarts || 'none'} | ${perWorker} | pids=${workers.map((w) => w.pid).join(',')}`
  );
}

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

const requestTimer = setInterval(serveOne, Math.max(1, count('request-interval-ms')));
const statsTimer = setInterval(() => print(statsLine(pool.stats(), pool.workerStats(true))), Math.max(1, count('stats-interval-ms')));

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) {
    // A second signal: stop now, killing whatever still runs.
    print(`php-manager: ${signal} again; killing the workers`);
    await pool.stop(0);
    return;
  }
  stopping = true;
  clearInterval(requestTimer);
  clearInterval(statsTimer);
  const graceMs = count('stop-grace-ms');
  print(`php-manager: ${signal}; stopping (in-flight requests get up to ${graceMs} ms)`);
  await pool.stop(graceMs);
  const left = [...everyPid].filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  if (left.length > 0) {
    print(`php-manager: php-cgi still running: ${left.join(', ')}`);
    process.exitCode = 1;
    return;
  }
  print(`php-manager: stopped; ${everyPid.size} php-cgi processes ran, none is left; ${served} requests served, ${failed} failed`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    shutdown(signal).catch((error: unknown) => {
      log.error({ err: String(error) }, 'stopping failed');
      process.exitCode = 1;
    });
  });
}
