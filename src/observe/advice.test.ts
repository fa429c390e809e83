// Advice: pool events counted per app and kind with a fake clock; the first of a quiet period told
// at once, the rest as one summary a minute, never a flood; the sentences; the shell on real timers.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { memoryLogger } from '../log.js';
import type { WorkerPool } from '../supervisor/worker-pool.js';
import { AdviceAggregator, adviceText, Advisor, spanText, type Advice, type AdviceKind } from './advice.js';

const MINUTE = 60_000;
const T0 = 1_700_000_000_000;

describe('advice aggregator (fake clock)', () => {
  test('pool blog reached max_workers 37 times: one line at once, one summary after the minute, then quiet', () => {
    const advice = new AdviceAggregator();
    const first = advice.note('blog', 'max-workers', { maxWorkers: 10 }, T0);
    assert.equal(first?.text, 'pool blog reached max_workers (10); consider raising it');
    for (let i = 1; i < 37; i++) {
      assert.deepEqual(advice.due(T0 + i * 1000), []);
      assert.equal(advice.note('blog', 'max-workers', { maxWorkers: 10 }, T0 + i * 1000), null, `event ${i} is counted, not logged`);
    }
    assert.equal(advice.nextDueAt(), T0 + MINUTE);
    assert.deepEqual(advice.due(T0 + MINUTE - 1), []);
    const [summary, ...rest] = advice.due(T0 + MINUTE);
    assert.deepEqual(rest, []);
    assert.equal(summary!.text, 'pool blog reached max_workers (10) 37 times in the last minute; consider raising it');
    assert.equal(summary!.count, 37);
    // A minute without events ends the episode: nothing to say, nothing left open.
    assert.deepEqual(advice.due(T0 + 2 * MINUTE), []);
    assert.equal(advice.nextDueAt(), null);
    // The next event starts a new episode and is told at once again.
    assert.equal(advice.note('blog', 'max-workers', { maxWorkers: 12 }, T0 + 3 * MINUTE)?.text, 'pool blog reached max_workers (12); consider raising it');
  });

  test('one event alone gives one line, no summary', () => {
    const advice = new AdviceAggregator();
    assert.ok(advice.note('blog', 'queue-full', { queueLimit: 512 }, T0));
    assert.deepEqual(advice.due(T0 + MINUTE), []);
    assert.equal(advice.nextDueAt(), null);
  });

  test('a flood of 10,000 events over ten minutes: at most one line a minute per app and kind, and every event counted', () => {
    const advice = new AdviceAggregator();
    const lines: Array<{ at: number; advice: Advice }> = [];
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const kinds: AdviceKind[] = ['max-workers', 'queue-timeout'];
    const counted = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const now = T0 + Math.floor((i / 10_000) * 10 * MINUTE);
      for (const a of advice.due(now)) lines.push({ at: now, advice: a });
      const app = random() < 0.5 ? 'blog' : 'shop';
      const kind = kinds[Math.floor(random() * kinds.length)]!;
      counted.set(`${app} ${kind}`, (counted.get(`${app} ${kind}`) ?? 0) + 1);
      const line = advice.note(app, kind, { maxWorkers: 4, queueTimeoutMs: 30_000 }, now);
      if (line) lines.push({ at: now, advice: line });
    }
    for (const a of advice.due(T0 + 11 * MINUTE)) lines.push({ at: T0 + 11 * MINUTE, advice: a });
    for (const [key, total] of counted) {
      const [app, kind] = key.split(' ');
      const mine = lines.filter((l) => l.advice.app === app && l.advice.kind === kind);
      assert.ok(mine.length <= 12, `${key}: ${mine.length} lines for 11 minutes`);
      for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.at - mine[i - 1]!.at >= MINUTE, `${key}: lines ${i - 1} and ${i} are a minute apart`);
      // The first line tells one event; each summary counts everything since the episode began.
      const summaries = mine.filter((l) => l.advice.windowMs !== null).reduce((sum, l) => sum + l.advice.count, 0);
      assert.equal(summaries, total, `${key}: every event is in a summary`);
    }
    assert.equal(lines.length <= 4 * 12, true);
  });

  test('apps and kinds are counted apart', () => {
    const advice = new AdviceAggregator();
    assert.ok(advice.note('blog', 'max-workers', { maxWorkers: 2 }, T0));
    assert.ok(advice.note('shop', 'max-workers', { maxWorkers: 3 }, T0));
    assert.ok(advice.note('blog', 'queue-timeout', { queueTimeoutMs: 30_000 }, T0));
    assert.equal(advice.note('blog', 'max-workers', { maxWorkers: 2 }, T0 + 1), null);
    const due = advice.due(T0 + MINUTE).map((a) => a.text);
    assert.deepEqual(due, ['pool blog reached max_workers (2) 2 times in the last minute; consider raising it']);
  });

  test('kinds whose component logs each event itself (crashes, crash loops, php-fpm circuit) only add a count when they repeat', () => {
    const advice = new AdviceAggregator();
    assert.equal(advice.note('blog', 'crash-loop', { file: '/logs/blog_php_error.log' }, T0), null);
    assert.deepEqual(advice.due(T0 + MINUTE), [], 'one crash loop: its own log line said it all');
    assert.equal(advice.note('blog', 'breaker-open', { upstream: 'unix:/run/fpm.sock', reason: 'connect ECONNREFUSED' }, T0), null);
    advice.note('blog', 'breaker-open', { upstream: 'unix:/run/fpm.sock', reason: 'connect ETIMEDOUT' }, T0 + 20_000);
    advice.note('blog', 'breaker-open', { upstream: 'unix:/run/fpm.sock', reason: 'connect ECONNREFUSED' }, T0 + 40_000);
    assert.deepEqual(
      advice.due(T0 + MINUTE).map((a) => a.text),
      ['app blog: the circuit to php-fpm at unix:/run/fpm.sock opened 3 times in the last minute (last: connect ECONNREFUSED); check that php-fpm runs and its log'],
    );
  });

  test('counts given at once (PHP error lines) and a final flush at stop covering the time so far', () => {
    const advice = new AdviceAggregator();
    assert.equal(advice.note('blog', 'php-errors', { file: '/logs/blog_php_error_2024-05-01.log' }, T0, 3)?.text, 'app blog: PHP writes errors; see /logs/blog_php_error_2024-05-01.log');
    advice.note('blog', 'php-errors', { file: '/logs/blog_php_error_2024-05-01.log' }, T0 + 5000, 2);
    assert.deepEqual(
      advice.due(T0 + 23_000, true).map((a) => a.text),
      ['app blog: PHP wrote 5 error lines in the last 23 s; see /logs/blog_php_error_2024-05-01.log'],
    );
    assert.equal(advice.nextDueAt(), null);
  });
});

describe('advice sentences', () => {
  const facts = { maxWorkers: 10, queueLimit: 512, queueTimeoutMs: 30_000, requestTimeoutMs: 1500, thresholdMs: 5000, file: '/l/f.log', upstream: '127.0.0.1:9000', reason: 'refused' };
  const table: Array<[AdviceKind, number, number | null, string]> = [
    ['max-workers', 1, null, 'pool blog reached max_workers (10); consider raising it'],
    ['max-workers', 1, MINUTE, 'pool blog reached max_workers (10) once in the last minute; consider raising it'],
    ['queue-full', 1, null, 'pool blog: every worker busy and the queue full (queue_limit 512); requests get 503. Raise max_workers or queue_limit, or make the scripts faster'],
    ['queue-full', 9, MINUTE, 'pool blog: the queue was full 9 times in the last minute (queue_limit 512), each time a 503. Raise max_workers or queue_limit, or make the scripts faster'],
    ['queue-timeout', 1, null, 'pool blog: a request waited longer than queue_timeout (30 s) for a worker and got 503; consider raising max_workers'],
    ['queue-timeout', 4, MINUTE, 'pool blog: 4 requests waited longer than queue_timeout (30 s) in the last minute and got 503; consider raising max_workers'],
    ['request-timeout', 1, null, 'pool blog: a request ran over request_timeout (1500 ms) and its worker was killed; find the script in the slow log, or raise request_timeout'],
    ['request-timeout', 2, MINUTE, 'pool blog: 2 requests ran over request_timeout (1500 ms) in the last minute and their workers were killed; find the scripts in the slow log, or raise request_timeout'],
    ['worker-crash', 5, MINUTE, 'pool blog: php-cgi workers crashed 5 times in the last minute; look for the cause in the PHP error log (fatal errors, segfaults in extensions); see /l/f.log'],
    ['crash-loop', 2, 2 * MINUTE, 'pool blog: respawning was paused 2 times in the last 2 minutes because workers keep crashing; check the php-cgi binary, php.ini and extensions; see /l/f.log'],
    ['breaker-open', 2, MINUTE, 'app blog: the circuit to php-fpm at 127.0.0.1:9000 opened 2 times in the last minute (last: refused); check that php-fpm runs and its log'],
    ['slow-requests', 1, null, 'app blog: a request took longer than slow_log.threshold (5 s); see /l/f.log'],
    ['slow-requests', 12, MINUTE, 'app blog: 12 requests took longer than slow_log.threshold (5 s) in the last minute; see /l/f.log'],
    ['php-errors', 1, null, 'app blog: PHP writes errors; see /l/f.log'],
    ['php-errors', 1, MINUTE, 'app blog: PHP wrote 1 error line in the last minute; see /l/f.log'],
  ];
  for (const [kind, count, windowMs, text] of table) {
    test(`${kind}, ${windowMs === null ? 'first' : `${count} in ${windowMs / 1000} s`}`, () => assert.equal(adviceText('blog', kind, count, windowMs, facts), text));
  }

  test('spans', () => {
    assert.deepEqual([spanText(400), spanText(23_000), spanText(60_000), spanText(61_000), spanText(180_000)], ['the last 1 s', 'the last 23 s', 'the last minute', 'the last minute', 'the last 3 minutes']);
  });
});

describe('Advisor (the shell, real timers)', () => {
  test("a pool's events become a line at once and a summary when the window ends", async () => {
    const { log, records } = memoryLogger();
    const advisor = new Advisor(log, { windowMs: 100 });
    const pool = Object.assign(new EventEmitter(), { config: { maxWorkers: 1, queueLimit: 8, queueTimeoutMs: 2000, requestTimeoutMs: 30_000 } });
    advisor.watchPool('blog', pool as unknown as WorkerPool);
    for (let i = 0; i < 5; i++) pool.emit('max-workers-reached', 'blog', 1);
    pool.emit('worker-exit', {}, { pid: 1, reason: 'recycled' });
    assert.deepEqual(records.map((r) => r.msg), ['pool blog reached max_workers (1); consider raising it']);
    assert.equal(records[0]!.level, 40);
    assert.equal(records[0]!.advice, 'max-workers');
    const deadline = Date.now() + 5000;
    while (records.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(records[1]?.msg ?? '', /^pool blog reached max_workers \(1\) 5 times in the last 1 s; consider raising it$/);
    pool.emit('queue-timeout', 'blog', 2000);
    advisor.stop();
    advisor.stop();
    pool.emit('queue-timeout', 'blog', 2000);
    assert.deepEqual(records.slice(2).map((r) => r.msg), ['pool blog: a request waited longer than queue_timeout (2 s) for a worker and got 503; consider raising max_workers']);
  });
});
