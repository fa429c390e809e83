// TQServer's temporary folders (worker sockets, php-fpm's generated config and socket, spooled
// request bodies). Each is named after the process that made it, tqserver-<pid namespace>.<pid>-,
// so a TQServer that starts later can remove the ones left by a TQServer that is gone: one killed
// with SIGKILL (or by the OOM killer, or a power cut) never ran its stop, and /tmp kept its folders.

import { readFileSync, readlinkSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from './log.js';

/**
 * This process's PID namespace (the inode number of /proc/self/ns/pid), or 0 where there is none to
 * read. A pid means a process only within its namespace: a container sharing /tmp with the host
 * has pids of its own, and a folder of another namespace is never judged by our pid table.
 */
const PID_NAMESPACE = ((): number => {
  try {
    return Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? 0);
  } catch {
    return 0;
  }
})();

const OWNED = /^tqserver-(\d+)\.(\d+)-/;

/** A new private folder (mode 0700) under the system's temp folder, named for `what` and this process. */
export function makeTempDir(what: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `tqserver-${PID_NAMESPACE}.${process.pid}-${what.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-`));
}

/**
 * Whether process `pid` runs (of any user: EPERM says it exists). A zombie does not: a TQServer
 * killed in a container whose init never reaps stays one for good, and its folders are still left.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch (error) {
    // Gone since the signal check; anything else (no /proc): assume it runs.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * Removes the temp folders whose TQServer process is gone: named by makeTempDir in our PID
 * namespace, a directory (not a link), owned by our user, made by a pid that no longer runs.
 * Anything else is left alone. Returns the folders removed.
 */
export async function sweepTempDirs(log: Logger, dir = tmpdir()): Promise<string[]> {
  if (PID_NAMESPACE === 0) return [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const uid = process.getuid?.() ?? -1;
  const removed: string[] = [];
  for (const name of names) {
    const match = OWNED.exec(name);
    if (!match || Number(match[1]) !== PID_NAMESPACE) continue;
    const pid = Number(match[2]);
    if (pid === process.pid || alive(pid)) continue;
    const path = join(dir, name);
    try {
      const stat = await lstat(path);
      if (!stat.isDirectory() || stat.uid !== uid) continue;
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    } catch (error) {
      log.warn({ path }, `cannot remove ${path}, a temp folder left by TQServer process ${pid} that is gone: ${(error as Error).message}`);
    }
  }
  if (removed.length > 0) {
    log.info({ removed }, `removed ${removed.length} temp folder${removed.length === 1 ? '' : 's'} left by TQServer processes that are gone (killed before they could stop): ${removed.join(', ')}`);
  }
  return removed;
}
