// How many requests the php-fpm child behind a new connection has served: php-fpm closes a child's
// connection after its pm.max_requests-th request, and a connection opened after an idle one was
// closed may reach a child that served requests on earlier connections. One status request on the
// new connection, with a marker in its query string, finds that child in php-fpm's own list: the
// Running process whose request URI carries the marker. Its count includes the status request.

import { randomBytes } from 'node:crypto';
import { FastCGIResponse, type FastCGIConnection } from '../fastcgi/client.js';
import { parseFpmStatus, statusParams } from './fpm-status.js';

const MARK = `tqcal-${randomBytes(4).toString('hex')}-`;
let serial = 0;

/** The request count of the child that ran the status request marked `marker`; null if not listed. */
export function childRequestsFromStatus(stdout: string, marker: string): number | null {
  const status = parseFpmStatus(stdout);
  if (!status) return null;
  const mine = status.processes.find((p) => p.state === 'Running' && p.requestUri.endsWith(marker));
  return mine ? mine.requests : null;
}

/**
 * A calibrate hook for FastCGIClient (ClientOptions.calibrate) against a php-fpm whose pool sets
 * pm.status_path = `statusPath`. A php-fpm without it answers 404 and the count stays as it is.
 */
export function fpmCalibrator(statusPath: string): (connection: FastCGIConnection) => Promise<void> {
  return async (connection) => {
    const marker = `${MARK}${++serial}`;
    const params = statusParams(statusPath, `json&full&${marker}`);
    const { stdout } = await new FastCGIResponse((handler) => connection.dispatch({ params }, handler)).text();
    const served = childRequestsFromStatus(stdout, marker);
    if (served !== null) connection.assumeServed(served);
  };
}
