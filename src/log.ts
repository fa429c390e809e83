// Structured logging through pino: the Logger type every component takes, and loggers for the
// console, for silence, and for tests that assert what an operator would read.

import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger as PinoLogger, type LevelWithSilent } from 'pino';
import { escapeMessage } from './observe/log-text.js';

/** The logging surface components use (pino's; child loggers carry pool and pid). */
export type Logger = PinoLogger;
export type LogLevel = LevelWithSilent;

/** A logger writing JSON lines to a stream (stderr by default). */
export function createLogger(options: { level?: LogLevel; destination?: NodeJS.WritableStream; base?: Record<string, unknown> } = {}): Logger {
  return pino(
    { level: options.level ?? 'info', base: options.base ?? null, timestamp: pino.stdTimeFunctions.isoTime },
    (options.destination ?? process.stderr) as DestinationStream,
  );
}

/** A logger that drops everything. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** One captured log line, parsed. */
export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A logger that keeps every line in memory, for tests. */
export function memoryLogger(level: LogLevel = 'debug'): { log: Logger; records: LogRecord[]; find: (pattern: RegExp | string) => LogRecord | undefined } {
  const records: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) records.push(JSON.parse(line) as LogRecord);
      callback();
    },
  });
  const log = pino({ level, base: null }, sink);
  const find = (pattern: RegExp | string) => records.find((r) => (typeof pattern === 'string' ? r.msg.includes(pattern) : pattern.test(r.msg)));
  return { log, records, find };
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * Console lines for people: "12:01:02.345 WARN  message  key=value ...". Control characters in the
 * message and values (a URI or a PHP message) are escaped, so one record stays one console line.
 */
export function humanLine(json: string): string {
  let record: LogRecord & { time?: string };
  try {
    record = JSON.parse(json) as LogRecord & { time?: string };
  } catch {
    return json;
  }
  const { level, msg, time, ...rest } = record;
  const clock = typeof time === 'string' ? time.slice(11, 23) : '';
  const extras = Object.entries(rest)
    .filter(([, value]) => value !== undefined && value !== null)
    .map(([key, value]) => `${key}=${escapeMessage(typeof value === 'string' ? value : JSON.stringify(value))}`)
    .join(' ');
  return `${clock} ${(LEVEL_NAMES[level] ?? String(level)).padEnd(5)} ${escapeMessage(String(msg))}${extras ? `  ${extras}` : ''}\n`;
}

/** A stream that prints pino's JSON lines in human form to another stream (the console). */
export function humanStream(out: NodeJS.WritableStream = process.stderr): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) out.write(humanLine(line));
      callback();
    },
  });
}
