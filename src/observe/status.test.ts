// The status renderers: php-fpm's field names and order in every format, each format parsed back
// (text line by line, JSON, XML with a real XML parser, OpenMetrics with Prometheus' parser), and
// hostile values (a request URI is the client's) kept inside their field.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parseExposition, value } from '../../test/helpers/prometheus.js';
import { pool, processRow, snapshot, T0 } from '../../test/helpers/snapshot.js';
import { fpmTime, renderJson, renderOpenMetrics, renderText, renderXml, xmlEscape } from './status.js';

const NOW = T0 + 61_000;

const POOL_FIELDS = [
  'pool', 'process manager', 'start time', 'start since', 'accepted conn', 'listen queue', 'max listen queue', 'listen queue len',
  'idle processes', 'active processes', 'total processes', 'max active processes', 'max children reached', 'slow requests',
];
const PROCESS_FIELDS = ['pid', 'state', 'start time', 'start since', 'requests', 'request duration', 'request method', 'request URI', 'content length', 'user', 'script', 'last request cpu', 'last request memory'];

/** php-fpm's text format read back: blocks separated by blank lines, "name: value" lines. */
function parseText(text: string): Array<Array<[string, string]>> {
  assert.ok(text.endsWith('\n'));
  return text
    .slice(0, -1)
    .split('\n\n')
    .flatMap((block) => block.split('************************\n'))
    .filter((block) => block !== '')
    .map((block) =>
      block.split('\n').map((line) => {
        const match = /^([a-zA-Z ]+):( +)(.*)$/.exec(line);
        assert.ok(match, `a "name: value" line: ${JSON.stringify(line)}`);
        return [match[1]!, match[3]!] as [string, string];
      }),
    );
}

test('text: php-fpm\'s pool fields in its order, values aligned, start time as php-fpm writes it', () => {
  const blocks = parseText(renderText(snapshot(), false, NOW));
  assert.equal(blocks.length, 1);
  assert.deepEqual(blocks[0]!.map(([name]) => name), POOL_FIELDS);
  const fields = new Map(blocks[0]);
  assert.equal(fields.get('pool'), 'blog');
  assert.equal(fields.get('process manager'), 'dynamic');
  assert.equal(fields.get('start time'), '02/Jan/2026:03:04:05 +0000');
  assert.equal(fields.get('start since'), '61');
  assert.equal(fields.get('listen queue'), '3');
  assert.equal(fields.get('max children reached'), '5');
  // Values start in one column, as php-fpm's do.
  const columns = new Set(renderText(snapshot(), false, NOW).trim().split('\n').map((line) => line.length - line.slice(line.indexOf(':') + 1).trimStart().length));
  assert.equal(columns.size, 1);
});

test('text ?full: a block per process after each pool, with php-fpm\'s process fields', () => {
  const blocks = parseText(renderText(snapshot(), true, NOW));
  assert.equal(blocks.length, 3);
  assert.deepEqual(blocks[1]!.map(([name]) => name), PROCESS_FIELDS);
  const running = new Map(blocks[2]);
  assert.equal(running.get('state'), 'Running');
  assert.equal(running.get('request URI'), '/blog/slow.php');
  assert.equal(running.get('request duration'), '12500', 'microseconds, as php-fpm');
});

test('text: a control character in a request URI cannot start a line of its own', () => {
  const hostile = snapshot([{ name: 'blog', path: '/blog', status: pool({ processes: [processRow({ requestUri: '/x\nidle processes: 999\r\x00' })] }) }]);
  const text = renderText(hostile, true, NOW);
  const blocks = parseText(text);
  assert.equal(new Map(blocks[1]).get('request URI'), '/x\\x0aidle processes: 999\\x0d\\x00');
  assert.equal(text.match(/^idle processes:/gm)?.length, 1);
});

test('JSON: php-fpm\'s keys ("request uri" in lower case, as php-fpm writes it) plus TQServer\'s extras', () => {
  const doc = JSON.parse(renderJson(snapshot(), true, NOW));
  assert.equal(doc.version, '9.9.9');
  const p = doc.pools[0];
  for (const key of POOL_FIELDS) assert.ok(key in p, key);
  assert.equal(p['start time'], Math.floor(T0 / 1000), 'epoch seconds');
  assert.equal(p['accepted conn'], 42);
  assert.equal(p.path, '/blog');
  assert.equal(p.backend, 'php-cgi');
  assert.equal(p.restarts.crashed, 3);
  assert.deepEqual(Object.keys(p.processes[0]), PROCESS_FIELDS.map((f) => (f === 'request URI' ? 'request uri' : f)));
  assert.equal(p.processes[1]['request uri'], '/blog/slow.php');
  assert.equal('processes' in JSON.parse(renderJson(snapshot(), false, NOW)).pools[0], false, 'no rows without ?full');
});

test('XML: well-formed, <status> per pool with php-fpm\'s element names, hostile values escaped', () => {
  const uri = '/a?<b>&c="d"\'e\x01\uD800f';
  const xml = renderXml(snapshot([{ name: 'blog', path: '/blog', status: pool({ processes: [processRow({ requestUri: uri })] }) }]), true, NOW);
  assert.equal(XMLValidator.validate(xml), true);
  const doc = new XMLParser({ parseTagValue: false }).parse(xml);
  const status = doc.pools.status;
  assert.deepEqual(Object.keys(status).filter((k) => k !== 'processes'), POOL_FIELDS.map((f) => f.replace(/ /g, '-')));
  assert.equal(status['accepted-conn'], '42');
  const row = status.processes.process;
  assert.equal(row['request-uri'], '/a?<b>&c="d"\'e\uFFFD\uFFFDf', 'markup decoded back; characters XML cannot hold replaced');
  assert.equal(xmlEscape('a\tb\nc'), 'a\tb\nc');
  assert.equal(xmlEscape('\uD83D\uDE00'), '\uD83D\uDE00', 'a surrogate pair is kept');
});

test('OpenMetrics (?openmetrics): php-fpm\'s phpfpm_* names, parsed by Prometheus\' OpenMetrics parser', () => {
  const two = snapshot([
    { name: 'blog', path: '/blog', status: pool() },
    { name: 'we"ird\\app', path: '/w', status: pool({ pool: 'we"ird\\app', backend: 'php-fpm', listenQueue: 0, activeProcesses: 7 }) },
  ]);
  const text = renderOpenMetrics(two, NOW);
  assert.ok(text.endsWith('# EOF\n'));
  const families = parseExposition(text, 'openmetrics');
  assert.equal(value(families, 'phpfpm_active_processes', { pool: 'blog' }), 2);
  assert.equal(value(families, 'phpfpm_active_processes', { pool: 'we"ird\\app' }), 7);
  assert.equal(value(families, 'phpfpm_accepted_connections_total', { pool: 'blog' }), 42);
  assert.equal(value(families, 'phpfpm_start_since_total', { pool: 'blog' }), 61);
  assert.equal(value(families, 'phpfpm_up', { pool: 'blog' }), 1);
});

test('fpmTime: day/Mon/year:hh:mm:ss +0000', () => {
  assert.equal(fpmTime(Date.UTC(2025, 11, 31, 23, 59, 9)), '31/Dec/2025:23:59:09 +0000');
});
