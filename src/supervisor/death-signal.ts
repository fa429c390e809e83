// Has the kernel signal a PHP process when TQServer dies, even by SIGKILL: the command runs through
// util-linux's `setpriv --pdeathsig SIG --`, which sets PR_SET_PDEATHSIG and execs it in place.

import { execFileSync } from 'node:child_process';
import { delimiter, join, resolve } from 'node:path';
import type { Logger } from '../log.js';
import { executable } from '../php/binary.js';

/** A program and its arguments, as spawn() takes them. */
export interface Command {
  file: string;
  args: string[];
}

/**
 * The command that runs `command` with `signal` as its parent-death signal (pure). setpriv execs
 * the program in place, so the process keeps setpriv's pid: the pid spawn() reports is the PHP
 * process's own, for signals, process groups and /proc alike. The setting survives exec for
 * programs that are not set-user-ID (prctl(2), PR_SET_PDEATHSIG).
 */
export function withDeathSignal(command: Command, signal: NodeJS.Signals, setprivPath: string): Command {
  return { file: setprivPath, args: ['--pdeathsig', signal, '--', command.file, ...command.args] };
}

/**
 * The first setpriv in `dirs` that runs a program with --pdeathsig (older util-linux lacks it), or null.
 * The check runs setpriv through itself, so it proves the option, the prctl and the exec at once.
 */
export function findSetpriv(dirs: readonly string[]): string | null {
  for (const dir of dirs) {
    const path = join(dir, 'setpriv');
    if (!executable(path)) continue;
    try {
      const out = execFileSync(path, ['--pdeathsig', 'SIGTERM', '--', path, '--version'], { encoding: 'utf8', env: {}, stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
      if (out.includes('setpriv')) return path;
    } catch {
      // too old for --pdeathsig, or not util-linux's: try the next one
    }
  }
  return null;
}

let cached: { path: string | null } | null = null;

/**
 * setpriv on this machine, looked for once (PATH, then /usr/bin and /bin). When there is none, one
 * line says what that means; PR_SET_PDEATHSIG is Linux's, so elsewhere there is nothing to find.
 */
export function setprivPath(log?: Logger): string | null {
  if (cached) return cached.path;
  if (process.platform !== 'linux') {
    cached = { path: null };
    log?.debug(`no parent-death signal on ${process.platform}: PHP processes outlive TQServer if it is killed with SIGKILL`);
    return null;
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const extra of ['/usr/bin', '/bin']) if (!dirs.includes(extra)) dirs.push(extra);
  cached = { path: findSetpriv(dirs) };
  if (!cached.path) {
    log?.info(
      'setpriv with --pdeathsig (util-linux) not found: if TQServer is killed with SIGKILL, its php-cgi and php-fpm processes keep running; install util-linux to have the kernel end them',
    );
  }
  return cached.path;
}

/** Where spawn() would find `file`: relative paths from the child's cwd, bare names on the child's PATH. */
function runnable(file: string, cwd: string | undefined, env: Readonly<Record<string, string | undefined>>): boolean {
  if (file.includes('/')) return executable(resolve(cwd ?? process.cwd(), file));
  return (env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && executable(join(dir, file)));
}

/**
 * `file` and `args` wrapped so that the process gets `signal` when TQServer dies, or unchanged
 * when setpriv is missing. A program that cannot run is left unwrapped too: spawn() then fails with
 * ENOENT or EACCES naming it, as before, where setpriv would start and exit 127 with its own message.
 * Only for long-lived processes; a short probe (`php-cgi -v`) ends before it could be orphaned.
 */
export function dieWithParent(
  file: string,
  args: string[],
  signal: NodeJS.Signals,
  options: {
    cwd?: string | undefined;
    env?: Readonly<Record<string, string | undefined>> | undefined;
    log?: Logger;
    /** setpriv to use; null for none. By default the one this machine has (setprivPath). */
    setpriv?: string | null;
  },
): Command {
  const setpriv = options.setpriv === undefined ? setprivPath(options.log) : options.setpriv;
  if (!setpriv || !runnable(file, options.cwd, options.env ?? process.env)) return { file, args };
  return withDeathSignal({ file, args }, signal, setpriv);
}
