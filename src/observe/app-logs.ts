// The log files of a running server's apps, built from their config in one place: each app's access,
// slow and PHP error logs (opened through the LogFiles registry that SIGUSR1 reopens), the request
// observer that writes them, and the advice the pools' events become in the server log.

import type { Backend } from '../backend.js';
import type { AppConfig } from '../config/load.js';
import { FpmBackend } from '../fpm/fpm-backend.js';
import type { LogFile, LogFiles } from '../log-file.js';
import type { Logger } from '../log.js';
import { PhpCgiBackend } from '../supervisor/php-cgi-backend.js';
import { AccessLog } from './access-log.js';
import { Advisor } from './advice.js';
import { PhpErrorLog, PhpErrorLogBackend } from './php-error-log.js';
import type { RequestRecord } from './request-record.js';
import { SlowLog } from './slow-log.js';

interface AppLogs {
  access: AccessLog | null;
  slow: SlowLog | null;
  phpErrors: PhpErrorLog | null;
  /** The files opened for this app, released when it goes or its logs are reconfigured. */
  files: LogFile[];
}

export class ServerLogs {
  readonly advisor: Advisor;
  readonly #files: LogFiles;
  readonly #log: Logger;
  readonly #apps = new Map<string, AppLogs>();
  readonly #opened: LogFile[] = [];
  #closed = false;

  constructor(files: LogFiles, log: Logger, options: { clock?: () => number } = {}) {
    this.#files = files;
    this.#log = log;
    this.advisor = new Advisor(log, { clock: options.clock });
  }

  /** Opens an app's log files; throws (naming the file) when one cannot be created. */
  addApp(app: AppConfig): void {
    const files: LogFile[] = [];
    const open = (template: string) => {
      const file = this.#files.open(template);
      this.#opened.push(file);
      files.push(file);
      return file;
    };
    const access = app.accessLog.path ? new AccessLog(open(app.accessLog.path), app.accessLog.format) : null;
    let slow: SlowLog | null = null;
    if (app.slowLog.thresholdMs > 0) {
      const file = app.slowLog.path ? open(app.slowLog.path) : null;
      slow = new SlowLog({ thresholdMs: app.slowLog.thresholdMs, file, log: this.#log });
    }
    let phpErrors: PhpErrorLog | null = null;
    if (app.php.errorLog) {
      const file = open(app.php.errorLog);
      phpErrors = new PhpErrorLog(file, {
        // The server log hears that PHP writes errors, at most once a minute; the lines are in the file.
        onLines: (count) => this.advisor.note(app.name, 'php-errors', { file: file.path }, count),
      });
    }
    this.#apps.set(app.name, { access, slow, phpErrors, files });
  }

  /**
   * Takes an app's logs out of use (a reload removed the app, or rebuilds its logs); returns its
   * files, to be released with releaseFiles() once the requests still writing to them are over.
   * Opening the same path again meanwhile shares the open file (LogFiles counts its users).
   */
  detachApp(name: string): LogFile[] {
    const old = this.#apps.get(name);
    if (!old) return [];
    this.#apps.delete(name);
    return old.files;
  }

  async releaseFiles(files: LogFile[]): Promise<void> {
    await this.#release(files);
  }

  async #release(files: LogFile[]): Promise<void> {
    for (const file of files) {
      const index = this.#opened.indexOf(file);
      if (index >= 0) this.#opened.splice(index, 1);
    }
    await Promise.all(files.map((file) => this.#files.release(file)));
  }

  /** Where an app's php-cgi processes' own stdout and stderr go, or undefined for the server log. */
  workerOutput(app: string): ((line: string, stream: 'stdout' | 'stderr', pid: number) => void) | undefined {
    const errors = this.#apps.get(app)?.phpErrors;
    if (!errors) return undefined;
    return (line, stream, pid) => errors.processOutput(pid, stream, line);
  }

  /** The backend a front should use: with a PHP error log, one that writes FCGI_STDERR there. */
  backendFor(app: string, backend: Backend, front: 'http' | 'fastcgi'): Backend {
    const errors = this.#apps.get(app)?.phpErrors;
    // The FastCGI front passes FCGI_STDERR on to nginx too, as php-fpm would.
    return errors ? new PhpErrorLogBackend(backend, errors, front === 'fastcgi') : backend;
  }

  /** Turns the backend's events into advice. */
  watch(app: string, backend: Backend): void {
    if (backend instanceof PhpCgiBackend) {
      this.advisor.watchPool(app, backend.pool);
      const errors = this.#apps.get(app)?.phpErrors;
      if (errors) backend.pool.on('worker-exit', (_worker, exit) => errors.forget(exit.pid));
    } else if (backend instanceof FpmBackend) {
      this.advisor.watchBreakers(app, backend);
    }
  }

  /** The request observer: access log, slow log (and its advice). */
  readonly observe = (record: RequestRecord): void => {
    if (record.app === null) return;
    const logs = this.#apps.get(record.app);
    if (!logs) return;
    logs.access?.write(record);
    if (logs.slow?.write(record) && logs.slow.file) {
      this.advisor.note(record.app, 'slow-requests', { thresholdMs: logs.slow.thresholdMs, file: logs.slow.file.path });
    }
  };

  /** Logs pending advice and closes the app log files (every line written so far reaches its file). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.advisor.stop();
    await Promise.all(this.#opened.splice(0).map((file) => this.#files.release(file)));
  }
}
