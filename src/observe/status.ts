// One status snapshot rendered in php-fpm's vocabulary (pool, process manager, accepted conn,
// listen queue, ...) and formats (text, JSON, XML, OpenMetrics), with a row per process for ?full.
// Pure: snapshot and clock in, text out.

import type { PoolStatus, ProcessStatus } from '../backend.js';
import type { ServerSnapshot } from '../app.js';

type Field = string | number;

/** The per-pool fields, in php-fpm's order and with its names. */
export function poolFields(pool: PoolStatus, now: number): Array<[string, Field]> {
  return [
    ['pool', pool.pool],
    ['process manager', pool.processManager],
    ['start time', Math.floor(pool.startTime / 1000)],
    ['start since', Math.max(0, Math.floor((now - pool.startTime) / 1000))],
    ['accepted conn', pool.acceptedConn],
    ['listen queue', pool.listenQueue],
    ['max listen queue', pool.maxListenQueue],
    ['listen queue len', pool.listenQueueLen],
    ['idle processes', pool.idleProcesses],
    ['active processes', pool.activeProcesses],
    ['total processes', pool.totalProcesses],
    ['max active processes', pool.maxActiveProcesses],
    ['max children reached', pool.maxChildrenReached],
    ['slow requests', pool.slowRequests],
  ];
}

/** The per-process fields of php-fpm's ?full. */
export function processFields(process: ProcessStatus, now: number): Array<[string, Field]> {
  return [
    ['pid', process.pid],
    ['state', process.state],
    ['start time', Math.floor(process.startTime / 1000)],
    ['start since', Math.max(0, Math.floor((now - process.startTime) / 1000))],
    ['requests', process.requests],
    // php-fpm reports request duration in microseconds.
    ['request duration', Math.round(process.requestDurationMs * 1000)],
    ['request method', process.requestMethod],
    ['request URI', process.requestUri],
    ['content length', process.contentLength],
    ['user', '-'],
    ['script', process.script],
    ['last request cpu', process.lastRequestCpu],
    ['last request memory', process.lastRequestMemory],
  ];
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** php-fpm's text form of a time ("%d/%b/%Y:%H:%M:%S %z"), in UTC so it does not depend on TZ. */
export function fpmTime(epochMs: number): string {
  const d = new Date(epochMs);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** The text form shows "start time" as a date, like php-fpm's; JSON and XML keep epoch seconds. */
function asText(fields: Array<[string, Field]>, startTimeMs: number): Array<[string, Field]> {
  return fields.map(([name, value]) => (name === 'start time' ? [name, fpmTime(startTimeMs)] : [name, value]));
}

/** php-fpm's JSON and XML spell "request URI" in lower case ("request uri", <request-uri>). */
function machineName(name: string): string {
  return name === 'request URI' ? 'request uri' : name;
}

/** A value kept on its line: control characters (a FastCGI client may send them in REQUEST_URI) as \xNN. */
function oneLine(value: Field): string {
  return String(value).replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function textBlock(fields: Array<[string, Field]>): string {
  const width = Math.max(...fields.map(([name]) => name.length)) + 2;
  return fields.map(([name, value]) => `${`${name}:`.padEnd(width)}${oneLine(value)}`).join('\n');
}

/** php-fpm's plain text: one block per pool, then with ?full a block per process. */
export function renderText(snapshot: ServerSnapshot, full: boolean, now = Date.now()): string {
  const blocks: string[] = [];
  for (const { status } of snapshot.pools) {
    blocks.push(textBlock(asText(poolFields(status, now), status.startTime)));
    if (full) for (const process of status.processes) blocks.push(`************************\n${textBlock(asText(processFields(process, now), process.startTime))}`);
  }
  return `${blocks.join('\n\n')}\n`;
}

/** The JSON document: `{"pools": [{"pool": "blog", "process manager": "dynamic", ...}]}` plus TQServer's extras. */
export function statusDocument(snapshot: ServerSnapshot, full: boolean, now = Date.now()): Record<string, unknown> {
  return {
    version: snapshot.version,
    'start time': Math.floor(snapshot.startTime / 1000),
    pools: snapshot.pools.map(({ app, status }) => ({
      ...Object.fromEntries(poolFields(status, now)),
      path: app.path,
      backend: status.backend,
      restarts: status.restarts,
      ...(status.upstreams.length > 0 ? { upstreams: status.upstreams } : {}),
      ...(full ? { processes: status.processes.map((p) => Object.fromEntries(processFields(p, now).map(([name, value]) => [machineName(name), value]))) } : {}),
    })),
  };
}

export function renderJson(snapshot: ServerSnapshot, full: boolean, now = Date.now()): string {
  return `${JSON.stringify(statusDocument(snapshot, full, now))}\n`;
}

const XML_ENTITIES: Readonly<Record<string, string>> = { '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;', '\r': '&#13;' };

/**
 * Markup characters as the predefined entities (a carriage return as a reference, which parsers
 * would otherwise turn into a line feed); characters XML 1.0 cannot hold at all, even as a reference
 * (controls but tab and newline, lone surrogates, U+FFFE/U+FFFF), as U+FFFD.
 */
export function xmlEscape(value: Field): string {
  return String(value)
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replace(/[<>&'"\r]/g, (c) => XML_ENTITIES[c]!);
}

function xmlName(name: string): string {
  return machineName(name).replace(/ /g, '-');
}

/** php-fpm's ?xml: <status> per pool, <processes><process> for ?full. */
export function renderXml(snapshot: ServerSnapshot, full: boolean, now = Date.now()): string {
  const out = ['<?xml version="1.0" ?>', '<pools>'];
  for (const { status } of snapshot.pools) {
    out.push('<status>');
    for (const [name, value] of poolFields(status, now)) out.push(`<${xmlName(name)}>${xmlEscape(value)}</${xmlName(name)}>`);
    if (full) {
      out.push('<processes>');
      for (const process of status.processes) {
        out.push('<process>');
        for (const [name, value] of processFields(process, now)) out.push(`<${xmlName(name)}>${xmlEscape(value)}</${xmlName(name)}>`);
        out.push('</process>');
      }
      out.push('</processes>');
    }
    out.push('</status>');
  }
  out.push('</pools>', '');
  return out.join('\n');
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** php-fpm's ?openmetrics (its phpfpm_* metric names), one pool label per app. */
export function renderOpenMetrics(snapshot: ServerSnapshot, now = Date.now()): string {
  const metrics: Array<{ name: string; type: 'gauge' | 'counter'; help: string; value: (p: PoolStatus) => number }> = [
    { name: 'phpfpm_up', type: 'gauge', help: 'Could the pool be reached.', value: () => 1 },
    { name: 'phpfpm_start_since', type: 'counter', help: 'Seconds since the pool started.', value: (p) => Math.max(0, Math.floor((now - p.startTime) / 1000)) },
    { name: 'phpfpm_accepted_connections', type: 'counter', help: 'Requests accepted by the pool.', value: (p) => p.acceptedConn },
    { name: 'phpfpm_listen_queue', type: 'gauge', help: 'Requests waiting for a PHP process.', value: (p) => p.listenQueue },
    { name: 'phpfpm_max_listen_queue', type: 'counter', help: 'Most requests ever waiting at once.', value: (p) => p.maxListenQueue },
    { name: 'phpfpm_listen_queue_length', type: 'gauge', help: 'Size of the wait queue.', value: (p) => p.listenQueueLen },
    { name: 'phpfpm_idle_processes', type: 'gauge', help: 'Idle PHP processes.', value: (p) => p.idleProcesses },
    { name: 'phpfpm_active_processes', type: 'gauge', help: 'Busy PHP processes.', value: (p) => p.activeProcesses },
    { name: 'phpfpm_total_processes', type: 'gauge', help: 'PHP processes.', value: (p) => p.totalProcesses },
    { name: 'phpfpm_max_active_processes', type: 'counter', help: 'Most processes busy at once.', value: (p) => p.maxActiveProcesses },
    { name: 'phpfpm_max_children_reached', type: 'counter', help: 'Times the pool hit its process limit.', value: (p) => p.maxChildrenReached },
    { name: 'phpfpm_slow_requests', type: 'counter', help: 'Requests slower than the slow-log threshold.', value: (p) => p.slowRequests },
  ];
  const out: string[] = [];
  for (const metric of metrics) {
    const base = metric.type === 'counter' && metric.name.endsWith('_total') ? metric.name.slice(0, -6) : metric.name;
    out.push(`# HELP ${base} ${metric.help}`, `# TYPE ${base} ${metric.type}`);
    for (const { status } of snapshot.pools) {
      const sample = metric.type === 'counter' ? `${base}_total` : base;
      out.push(`${sample}{pool="${label(status.pool)}"} ${metric.value(status)}`);
    }
  }
  out.push('# EOF', '');
  return out.join('\n');
}
