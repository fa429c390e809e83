// The slow log: every PHP request that took longer than slow_log.threshold, with what php-fpm's
// slowlog lacks (the URL, method and request id) and where the time went (queue, PHP, which pid).
// Pure formatters and a thin writer to a file or, without one, the server log.

import type { LogFile } from '../log-file.js';
import type { Logger } from '../log.js';
import { requestLine } from './access-log.js';
import { clfTime, field, seconds } from './log-text.js';
import type { RequestRecord } from './request-record.js';

/**
 * Slow means a PHP request whose whole duration (arrival to the end of the response) reached the
 * threshold; 0 turns the slow log off. Static files are not PHP's slowness (a big download to a
 * slow client would fill the log), so they are not counted.
 */
export function isSlow(record: RequestRecord, thresholdMs: number): boolean {
  return thresholdMs > 0 && record.kind === 'php' && record.durationMs >= thresholdMs;
}

/**
 * One slow log line (without "\n"): when it arrived, the app, the request line as in the access
 * log, the status, rt/qt/pt in seconds (whole, waiting for a PHP process, in PHP), the backend,
 * the php-cgi pid, the script, the request id and the error code if it failed.
 */
export function formatSlowLine(record: RequestRecord, offsetMinutes?: number): string {
  return (
    `[${clfTime(record.startedAt, offsetMinutes)}] app=${field(record.app)} "${requestLine(record)}" ${record.status} ` +
    `rt=${seconds(record.durationMs)} qt=${seconds(record.queueMs)} pt=${seconds(record.phpMs)} be=${record.backend ?? '-'} ` +
    `pid=${record.workerPid ?? '-'} script=${field(record.script)} rid=${field(record.id)} err=${field(record.error)}`
  );
}

/** The same facts as a server log line, when the slow log has no file of its own. */
export function slowLogEntry(record: RequestRecord, thresholdMs: number): { fields: Record<string, unknown>; msg: string } {
  const where = [
    record.queueMs !== null ? `queued ${seconds(record.queueMs)} s` : null,
    record.phpMs !== null ? `PHP ${seconds(record.phpMs)} s` : null,
    record.workerPid !== null ? `php-cgi pid ${record.workerPid}` : record.backend,
    record.script ? `script ${field(record.script)}` : null,
  ].filter((part) => part !== null);
  return {
    fields: {
      app: record.app,
      req: record.id,
      method: record.method,
      uri: record.uri,
      status: record.status,
      durationMs: record.durationMs,
      queueMs: record.queueMs,
      phpMs: record.phpMs,
      pid: record.workerPid,
      script: record.script,
    },
    msg: `slow request: ${field(record.method)} ${field(record.uri)} took ${seconds(record.durationMs)} s (slow_log.threshold ${seconds(thresholdMs)} s; ${where.join(', ')}), status ${record.status}`,
  };
}

/** Writes one app's slow requests to its slow log file, or to the server log when it has none. */
export class SlowLog {
  readonly thresholdMs: number;
  readonly file: LogFile | null;
  readonly #log: Logger;

  constructor(options: { thresholdMs: number; file: LogFile | null; log: Logger }) {
    this.thresholdMs = options.thresholdMs;
    this.file = options.file;
    this.#log = options.log;
  }

  /** Logs the request if it was slow; returns whether it was. */
  write(record: RequestRecord): boolean {
    if (!isSlow(record, this.thresholdMs)) return false;
    if (this.file) this.file.writeLine(formatSlowLine(record));
    else {
      const { fields, msg } = slowLogEntry(record, this.thresholdMs);
      this.#log.warn(fields, msg);
    }
    return true;
  }
}
