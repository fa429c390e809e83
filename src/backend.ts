// What both fronts hand a PHP request to: a php-cgi pool or a php-fpm upstream, behind one interface.

import type { RequestController, RequestOptions, ResponseHandler } from './fastcgi/client.js';
import type { RequestInfo } from './supervisor/worker.js';

export interface Backend {
  readonly kind: 'php-cgi' | 'php-fpm';
  /** Runs one request; every failure (busy, timeout, crash) reaches handler.onError as a typed error. */
  dispatch(options: RequestOptions, handler: ResponseHandler, info: RequestInfo): RequestController;
  /** Graceful: requests in progress finish within graceMs, then everything is stopped. */
  stop(graceMs: number): Promise<void>;
}
