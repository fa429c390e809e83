// php-fpm's own status page (pm.status_path, ?json&full) read into TQServer's field names (pure):
// the pool figures and a row per child, as the health check fetches them.

import type { ProcessStatus } from '../backend.js';

/** php-fpm's own pool figures, read from its status page at each health check. */
export interface FpmPoolStatus {
  pool: string;
  processManager: string;
  startTime: number;
  acceptedConn: number;
  listenQueue: number;
  maxListenQueue: number;
  listenQueueLen: number;
  idleProcesses: number;
  activeProcesses: number;
  totalProcesses: number;
  maxActiveProcesses: number;
  maxChildrenReached: number;
  slowRequests: number;
  processes: ProcessStatus[];
}

/** php-fpm's status JSON (after the CGI head) in our field names; null when it is not there. */
export function parseFpmStatus(stdout: string): FpmPoolStatus | null {
  const start = stdout.indexOf('{');
  if (start < 0) return null;
  try {
    const j = JSON.parse(stdout.slice(start)) as Record<string, unknown>;
    const n = (key: string) => Number(j[key] ?? 0);
    return {
      pool: String(j.pool ?? ''),
      processManager: String(j['process manager'] ?? ''),
      startTime: n('start time'),
      acceptedConn: n('accepted conn'),
      listenQueue: n('listen queue'),
      maxListenQueue: n('max listen queue'),
      listenQueueLen: n('listen queue len'),
      idleProcesses: n('idle processes'),
      activeProcesses: n('active processes'),
      totalProcesses: n('total processes'),
      maxActiveProcesses: n('max active processes'),
      maxChildrenReached: n('max children reached'),
      slowRequests: n('slow requests'),
      processes: (Array.isArray(j.processes) ? (j.processes as Array<Record<string, string | number>>) : []).map((p) => ({
        pid: Number(p.pid ?? 0),
        state: String(p.state ?? ''),
        startTime: Number(p['start time'] ?? 0) * 1000,
        requests: Number(p.requests ?? 0),
        // php-fpm reports microseconds.
        requestDurationMs: Math.round(Number(p['request duration'] ?? 0) / 1000),
        requestMethod: String(p['request method'] ?? '-'),
        requestUri: String(p['request uri'] ?? '-'),
        contentLength: Number(p['content length'] ?? 0),
        script: String(p.script ?? '-'),
        lastRequestCpu: Number(p['last request cpu'] ?? 0),
        lastRequestMemory: Number(p['last request memory'] ?? 0),
      })),
    };
  } catch {
    return null;
  }
}

/** The CGI params of a request for php-fpm's status page at `path` (pm.status_path) with `query`. */
export function statusParams(path: string, query: string): Record<string, string> {
  return {
    SCRIPT_NAME: path,
    SCRIPT_FILENAME: path,
    REQUEST_URI: `${path}?${query}`,
    QUERY_STRING: query,
    REQUEST_METHOD: 'GET',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'TQServer',
    REMOTE_ADDR: '127.0.0.1',
    CONTENT_LENGTH: '',
  };
}
