// What is read of a php-cgi process besides its FastCGI connection: its own stdout and stderr as
// lines of bounded length, and its resident memory from /proc.

import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';

/** Resident memory of process `pid` from /proc (Linux), or null where it cannot be read. */
export function readRssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Longest line of a php-cgi process's own output that is kept; the rest of a longer line is counted, not kept. */
const MAX_OUTPUT_LINE = 8192;

/**
 * The lines of a process's output ("\n" or "\r\n" ends one), each cut to MAX_OUTPUT_LINE characters
 * with the length it had. Not readline: it holds a line without a break whole in memory, however
 * long, so a script writing megabytes to stderr without a newline grew the server by as much.
 */
export function readLines(stream: Readable, onLine: (line: string) => void): void {
  let pending = '';
  let dropped = 0;
  const emit = () => {
    const line = pending.endsWith('\r') && dropped === 0 ? pending.slice(0, -1) : pending;
    const length = pending.length + dropped;
    pending = '';
    dropped = 0;
    onLine(length > MAX_OUTPUT_LINE ? `${line}... (${length} chars)` : line);
  };
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    let at = 0;
    while (at < text.length) {
      const newline = text.indexOf('\n', at);
      const end = newline < 0 ? text.length : newline;
      const keep = Math.min(end - at, MAX_OUTPUT_LINE - pending.length);
      if (keep > 0) pending += text.slice(at, at + keep);
      dropped += end - at - Math.max(keep, 0);
      if (newline < 0) break;
      emit();
      at = newline + 1;
    }
  });
  stream.on('end', () => {
    if (pending.length > 0 || dropped > 0) emit();
  });
}
