// The access log: one line per finished request, in nginx's common or combined format (with
// TQServer's timings appended as key=value fields) or as JSON; a pure formatter and a thin writer.

import type { LogFile } from '../log-file.js';
import { clfTime, field, escapeField, roundMs, seconds } from './log-text.js';
import type { RequestRecord } from './request-record.js';

export const ACCESS_LOG_FORMATS = ['common', 'combined', 'json'] as const;
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number];

/** `"GET /path?q HTTP/1.1"` without the quotes, escaped. */
export function requestLine(record: RequestRecord): string {
  const protocol = record.httpVersion ? ` HTTP/${escapeField(record.httpVersion)}` : '';
  // Escaped part by part (the separators need no escaping): escaping the joined string would read
  // it character by character from a concatenation, which V8 does slowly.
  return `${record.method ? escapeField(record.method) : '-'} ${record.uri ? escapeField(record.uri) : '-'}${protocol}`;
}

/**
 * What nginx has no variable for, after its fields: request time (rt), time waiting for a PHP
 * process (qt), time in PHP (pt), in seconds; backend (be), php-cgi pid, request id (rid), and the
 * error code of a failed request (err). `-` where a field does not apply (static files).
 */
function extras(record: RequestRecord): string {
  return (
    `rt=${seconds(record.durationMs)} qt=${seconds(record.queueMs)} pt=${seconds(record.phpMs)} ` +
    `be=${record.backend ?? '-'} pid=${record.workerPid ?? '-'} rid=${field(record.id)} err=${field(record.error)}`
  );
}

/**
 * One access log line (without "\n"). `common` and `combined` are nginx's formats ($remote_user is
 * always `-`; the byte count is $bytes_sent, headers included; the time is when the request arrived)
 * followed by the extras; `json` has every field of the record. Every request-supplied value is
 * escaped: no URI or header can add a line or a field.
 */
export function formatAccessLine(record: RequestRecord, format: AccessLogFormat, offsetMinutes?: number): string {
  switch (format) {
    case 'common':
      return `${field(record.remoteAddress)} - - [${clfTime(record.startedAt, offsetMinutes)}] "${requestLine(record)}" ${record.status} ${record.bytesSent} ${extras(record)}`;
    case 'combined':
      return (
        `${field(record.remoteAddress)} - - [${clfTime(record.startedAt, offsetMinutes)}] "${requestLine(record)}" ${record.status} ${record.bytesSent} ` +
        `"${field(record.referer, false)}" "${field(record.userAgent, false)}" ${extras(record)}`
      );
    case 'json':
      // JSON.stringify escapes quotes, backslashes and control characters, and lone surrogates.
      return JSON.stringify({
        time: new Date(record.startedAt).toISOString(),
        req: record.id,
        app: record.app,
        front: record.front,
        kind: record.kind,
        remote_addr: record.remoteAddress,
        method: record.method,
        uri: record.uri,
        protocol: record.httpVersion ? `HTTP/${record.httpVersion}` : null,
        status: record.status,
        bytes_sent: record.bytesSent,
        referer: record.referer || null,
        user_agent: record.userAgent || null,
        duration_ms: roundMs(record.durationMs),
        queue_ms: roundMs(record.queueMs),
        php_ms: roundMs(record.phpMs),
        backend: record.backend,
        pid: record.workerPid,
        script: record.script,
        error: record.error,
        aborted: record.aborted,
      });
    default: {
      const never: never = format;
      throw new Error(`unknown access log format ${String(never)}`);
    }
  }
}

/** Writes one app's access log: a line per request, batched by the file. */
export class AccessLog {
  readonly file: LogFile;
  readonly format: AccessLogFormat;

  constructor(file: LogFile, format: AccessLogFormat) {
    this.file = file;
    this.format = format;
  }

  write(record: RequestRecord): void {
    this.file.writeLine(formatAccessLine(record, this.format));
  }
}
