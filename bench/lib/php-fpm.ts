// Starts php-fpm for a benchmark: a generated config in a temp dir, a pool on a free TCP port or a
// unix socket, stopped by PID and its temp dir removed, also when starting fails or on Ctrl-C.
//
// test/helpers/peers.ts has startPhpFpm, but its config logs to /proc/self/fd/2, which php-fpm cannot
// open when stderr is a socket (Node's 'pipe' stdio is a socketpair): it exits with ENXIO. Here the
// log goes to a file in the temp dir and -O (--force-stderr) still copies it to stderr, where
// "ready to handle connections" is awaited.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Address } from '../../src/fastcgi/address.js';
import { findBinary, freePort, isRoot, spawnPeer, tempDir, waitForListening, type Peer } from '../../test/helpers/peers.js';
import { onCleanup } from './cleanup.js';

export interface BenchPhpFpmOptions {
  readonly transport: 'tcp' | 'unix';
  /** Pool directives, e.g. { pm: 'static', 'pm.max_children': '4' }. */
  readonly pool: Readonly<Record<string, string>>;
}

/** The php-fpm.conf text for one pool named "bench". Pure. */
export function phpFpmConfig(dir: string, listen: string, pool: Readonly<Record<string, string>>): string {
  const directives: Record<string, string> = { listen, ...pool };
  if (isRoot) {
    directives.user = 'root';
    directives.group = 'root';
  }
  return [
    '[global]',
    `pid = ${join(dir, 'php-fpm.pid')}`,
    `error_log = ${join(dir, 'php-fpm.log')}`,
    'log_level = notice',
    'daemonize = no',
    '',
    '[bench]',
    ...Object.entries(directives).map(([key, value]) => `${key} = ${value}`),
    '',
  ].join('\n');
}

/**
 * Runs `body` with a started php-fpm, then stops it (SIGQUIT, graceful) and removes its temp dir.
 * On Ctrl-C the registered cleanup stops it with SIGTERM (fast) instead.
 */
export async function withPhpFpm<T>(options: BenchPhpFpmOptions, body: (peer: Peer) => Promise<T>): Promise<T> {
  const binary = findBinary(['php-fpm', /^php-fpm\d+(\.\d+)?$/]);
  const creating = tempDir('tqserver-bench-php-fpm-');
  let peer: Peer | null = null;
  // Registered before the temp dir exists, so a Ctrl-C at any point removes it.
  const unregister = onCleanup(async () => {
    if (peer) await peer.stop('SIGTERM', 2000);
    else await (await creating).cleanup();
  });
  const dir = await creating.catch((error: unknown) => {
    unregister();
    throw error;
  });
  try {
    const address: Address = options.transport === 'unix' ? { path: join(dir.path, 'php-fpm.sock') } : { host: '127.0.0.1', port: await freePort() };
    const listen = 'path' in address ? address.path : `${address.host}:${address.port}`;
    const file = join(dir.path, 'php-fpm.conf');
    await writeFile(file, phpFpmConfig(dir.path, listen, options.pool), { mode: 0o600 });
    peer = spawnPeer(binary, ['-F', '-O', '-y', file, ...(isRoot ? ['-R'] : [])], { address, stopSignal: 'SIGQUIT', cleanup: dir.cleanup });
    await peer.waitForOutput('ready to handle connections');
    await waitForListening(address, peer.process);
    return await body(peer);
  } finally {
    unregister();
    if (peer) await peer.stop();
    else await dir.cleanup();
  }
}
