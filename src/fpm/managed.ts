// Launching the php-fpm master of an app TQServer runs itself: which php-fpm, where it listens, where
// its generated config lives (a private temp folder, or .tqserver/phpfpm/APP/ in dev mode), and the
// log lines that say so.

import { join } from 'node:path';
import type { AppConfig, Mode } from '../config/load.js';
import { ConfigValueError } from '../errors.js';
import { formatAddress } from '../fastcgi/address.js';
import type { Logger } from '../log.js';
import { detectPhp } from '../php/binary.js';
import { fpmPoolInput } from './fpm-settings.js';
import { FpmMaster } from './launcher.js';
import { freePort } from './probe.js';

export interface ManagedFpmOptions {
  log: Logger;
  mode: Mode;
  /** Project root: dev mode keeps the generated config under <root>/.tqserver/phpfpm/<app>/. */
  root: string;
  processControlTimeoutMs: number;
}

/** Starts the app's php-fpm master and resolves once it accepts connections. */
export async function launchManagedFpm(app: AppConfig, options: ManagedFpmOptions): Promise<FpmMaster> {
  const { log } = options;
  const fpm = app.phpFpm;
  const p = app.php.pool;
  if (fpm.listen.length > 1) {
    throw new ConfigValueError(`${app.file}: php_fpm.listen: lists ${fpm.listen.length} addresses, but a php-fpm TQServer runs listens on one (several upstreams need php_fpm.external: true)`);
  }
  const binary = await detectPhp('php-fpm', fpm.binary);
  if (app.php.binary !== null && fpm.binary === null) {
    // Set for php-cgi, it says nothing about which php-fpm to run: say so rather than ignore it quietly.
    log.warn(
      { app: app.name, binary: app.php.binary },
      `app ${app.name}: php.binary (${app.php.binary}) is not used by a php-fpm app; TQServer runs ${binary.path} (set php_fpm.binary to choose another)`,
    );
  }
  // A private unix socket unless told otherwise; php_fpm.transport tcp without a listen picks a free port.
  const listen = fpm.listen[0] ?? (fpm.transport === 'tcp' ? { host: '127.0.0.1', port: await freePort() } : null);
  const keepDir = options.mode === 'dev' ? join(options.root, '.tqserver', 'phpfpm', app.name) : null;
  const master = new FpmMaster({
    app: app.name,
    binary,
    log,
    keepDir,
    processControlTimeoutMs: options.processControlTimeoutMs,
    pool: { ...fpmPoolInput(app), listen },
  });
  await master.start();
  log.info(
    { app: app.name, pid: master.pid },
    `app ${app.name}: php-fpm ${binary.version.text} master pid ${master.pid} on ${formatAddress(master.listen)}, pm ${p.manager}, max_children ${p.maxWorkers}`,
  );
  if (keepDir) log.info({ app: app.name }, `app ${app.name}: php-fpm config kept in ${keepDir}; reproduce with: ${master.commandLine}`);
  return master;
}
