// One status snapshot rendered in php-fpm's vocabulary (pool, process manager, accepted conn,
// listen queue, ...): plain text and JSON, with a row per worker for ?full. Pure.

import type { ServerSnapshot } from '../app.js';

type Field = string | number;

/** The per-pool fields, in php-fpm's order and with its names. */
export function poolFields(pool: ServerSnapshot['pools'][number], now: number): Array<[string, Field]> {
  const s = pool.stats;
  return [
    ['pool', s.pool],
    ['process manager', s.processManager],
    ['start time', Math.floor(s.startTime / 1000)],
    ['start since', Math.floor((now - s.startTime) / 1000)],
    ['accepted conn', s.acceptedRequests],
    ['listen queue', s.queueLength],
    ['max listen queue', s.maxQueueLength],
    ['listen queue len', s.queueLimit],
    ['idle processes', s.idle],
    ['active processes', s.active],
    ['total processes', s.total],
    ['max active processes', s.maxActive],
    ['max children reached', s.maxWorkersReached],
    ['slow requests', 0],
  ];
}

/** php-fpm's process states: Idle, Running, and ours for the rest. */
function processState(state: string): string {
  switch (state) {
    case 'idle':
      return 'Idle';
    case 'active':
      return 'Running';
    case 'retiring':
      return 'Running (retiring)';
    case 'starting':
      return 'Starting';
    case 'stopping':
      return 'Finishing';
    default:
      return state;
  }
}

export function workerFields(worker: ServerSnapshot['pools'][number]['workers'][number], now: number): Array<[string, Field]> {
  const request = worker.request;
  return [
    ['pid', worker.pid],
    ['state', processState(worker.state)],
    ['start time', Math.floor(worker.startedAt / 1000)],
    ['start since', Math.floor((now - worker.startedAt) / 1000)],
    ['requests', worker.requests],
    // php-fpm reports request duration in microseconds.
    ['request duration', Math.round(worker.requestDurationMs * 1000)],
    ['request method', request?.method ?? '-'],
    ['request URI', request?.uri ?? '-'],
    ['content length', request?.contentLength ?? 0],
    ['user', '-'],
    ['script', request?.script ?? '-'],
    ['last request cpu', 0],
    ['last request memory', worker.rssBytes ?? 0],
  ];
}

function textBlock(fields: Array<[string, Field]>): string {
  const width = Math.max(...fields.map(([name]) => name.length)) + 2;
  return fields.map(([name, value]) => `${`${name}:`.padEnd(width)}${value}`).join('\n');
}

export function renderText(snapshot: ServerSnapshot, full: boolean, now = Date.now()): string {
  const blocks: string[] = [];
  for (const pool of snapshot.pools) {
    blocks.push(textBlock(poolFields(pool, now)));
    if (full) for (const worker of pool.workers) blocks.push(`************************\n${textBlock(workerFields(worker, now))}`);
  }
  return `${blocks.join('\n\n')}\n`;
}

export function renderJson(snapshot: ServerSnapshot, full: boolean, now = Date.now()): string {
  return `${JSON.stringify({
    version: snapshot.version,
    'start time': Math.floor(snapshot.startTime / 1000),
    pools: snapshot.pools.map((pool) => ({
      ...Object.fromEntries(poolFields(pool, now)),
      path: pool.app.path,
      'starting processes': pool.stats.starting,
      restarts: pool.stats.restarts,
      ...(full ? { processes: pool.workers.map((worker) => Object.fromEntries(workerFields(worker, now))) } : {}),
    })),
  })}\n`;
}
