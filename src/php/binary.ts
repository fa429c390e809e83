// Finding PHP: php-cgi and php-fpm located from a configured path or PATH (versioned names included),
// their version and features read, and php-cgi's argument list built with safely escaped -d values.

import { execFile } from 'node:child_process';
import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { PhpBinaryError } from '../errors.js';
import { checkIniName, formatIniValue } from './ini.js';

export { isIniExpression } from './ini.js';

export interface PhpVersion {
  major: number;
  minor: number;
  patch: number;
  /** The full version string as PHP prints it ("8.2.36"). */
  text: string;
}

export interface PhpFeatures {
  /** OPcache exists in this version (5.5+) and the binary loaded it (`-v` says "with Zend OPcache"). */
  opcache: boolean;
  /** The JIT exists in this version (8.0+); it still needs opcache.jit settings to run. */
  jit: boolean;
  /** Fibers exist in this version (8.1+). */
  fibers: boolean;
}

export interface PhpBinary {
  kind: 'php-cgi' | 'php-fpm';
  path: string;
  version: PhpVersion;
  features: PhpFeatures;
}

type Kind = PhpBinary['kind'];

/** The SAPI name `-v` prints for each kind. */
const SAPIS: Record<Kind, string> = { 'php-cgi': 'cgi-fcgi', 'php-fpm': 'fpm-fcgi' };

/** The names each kind goes by: Debian installs php-cgi8.2 and php-fpm8.2 besides (or instead of) the plain names. */
const NAMES: Record<Kind, { plain: string; versioned: RegExp; pkg: string }> = {
  'php-cgi': { plain: 'php-cgi', versioned: /^php-cgi(\d+(?:\.\d+)?)$/, pkg: 'php-cgi' },
  'php-fpm': { plain: 'php-fpm', versioned: /^php-fpm(\d+(?:\.\d+)?)$/, pkg: 'php-fpm' },
};

/** PATH plus the sbin folders php-fpm lives in on Debian (they are not on a normal user's PATH). */
export function searchPath(pathEnv = process.env.PATH ?? ''): string[] {
  const dirs = pathEnv.split(delimiter).filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  return dirs;
}

/** True when this process may execute `path`. */
export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Candidate paths for a kind in search order: in each folder the plain name first, then versioned
 * names newest first (php-cgi8.3 before php-cgi8.2).
 */
export function candidates(kind: Kind, dirs: readonly string[]): string[] {
  const { plain, versioned } = NAMES[kind];
  const found: string[] = [];
  for (const dir of dirs) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      continue;
    }
    if (entries.includes(plain)) found.push(join(dir, plain));
    const numbered = entries
      .map((name) => ({ name, version: versioned.exec(name)?.[1] }))
      .filter((e): e is { name: string; version: string } => e.version !== undefined)
      .sort((a, b) => compareVersionText(b.version, a.version));
    for (const entry of numbered) found.push(join(dir, entry.name));
  }
  return found.filter(executable);
}

function compareVersionText(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Reads "PHP 8.2.36 (cgi-fcgi) (built: ...)" and the like. Returns null when no version is there. */
export function parsePhpVersion(output: string): PhpVersion | null {
  const match = /^PHP (\d+)\.(\d+)\.(\d+)(\S*)/m.exec(output);
  if (!match) return null;
  return { major: Number(match[1]), minor: Number(match[2]), patch: Number(match[3]), text: `${match[1]}.${match[2]}.${match[3]}${match[4]}` };
}

/** Which features this version has; OPcache also needs the extension loaded (seen in `-v` output). */
export function featuresFor(version: PhpVersion, versionOutput = ''): PhpFeatures {
  const atLeast = (major: number, minor: number) => version.major > major || (version.major === major && version.minor >= minor);
  return {
    opcache: atLeast(5, 5) && /with Zend OPcache/i.test(versionOutput),
    jit: atLeast(8, 0),
    fibers: atLeast(8, 1),
  };
}

function run(path: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(path, args, { timeout: 10_000, env: { PATH: process.env.PATH ?? '' } }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(error, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

function installHint(kind: Kind): string {
  const pkg = NAMES[kind].pkg;
  return `install it (Debian/Ubuntu: \`sudo apt-get install ${pkg}\`; \`npm start\` does this when run as root) or set its path in worker.yaml`;
}

/**
 * Finds and checks a PHP binary: the configured path if given (it must exist and run), otherwise
 * the first working candidate on PATH and in sbin. Throws one PhpBinaryError that says what was
 * looked for, where, and how to install it.
 */
export async function detectPhp(kind: Kind, configured?: string | null, pathEnv?: string): Promise<PhpBinary> {
  const tried: string[] = [];
  const problems: string[] = [];
  let list: string[];
  if (configured) {
    if (!isAbsolute(configured) && !configured.includes('/')) {
      list = searchPath(pathEnv).map((dir) => join(dir, configured)).filter(executable);
      if (list.length === 0) {
        throw new PhpBinaryError(`${kind} binary ${JSON.stringify(configured)} not found in ${searchPath(pathEnv).join(':')}; ${installHint(kind)}`);
      }
    } else {
      list = [configured];
    }
  } else {
    list = candidates(kind, searchPath(pathEnv));
  }
  for (const path of list) {
    tried.push(path);
    try {
      const { stdout, stderr } = await run(path, ['-v']);
      const output = `${stdout}\n${stderr}`;
      const version = parsePhpVersion(output);
      if (!version) {
        problems.push(`${path} -v printed no PHP version`);
        continue;
      }
      // "PHP 8.2.36 (cgi-fcgi)": the SAPI in parentheses tells php-cgi from the CLI (`php`, which
      // cannot serve FastCGI) and from php-fpm; a binary that names none is not one we can drive.
      const sapi = /^PHP \S+ \(([^)]+)\)/m.exec(output)?.[1];
      const wanted = SAPIS[kind];
      if (sapi !== wanted) {
        problems.push(`${path} is ${sapi ? `the ${sapi} SAPI` : 'a PHP that names no SAPI'}, not ${kind} (${wanted})`);
        continue;
      }
      return { kind, path, version, features: featuresFor(version, output) };
    } catch (error) {
      const e = error as NodeJS.ErrnoException & { stderr?: string };
      const why = e.code === 'ENOENT' ? 'does not exist' : e.code === 'EACCES' ? 'is not executable' : `failed to run (${(e.stderr?.trim() || e.message).split('\n')[0]})`;
      problems.push(`${path} ${why}`);
    }
  }
  if (tried.length === 0) {
    throw new PhpBinaryError(
      `no ${kind} found: looked for ${NAMES[kind].plain} and ${NAMES[kind].plain}X.Y in ${searchPath(pathEnv).join(':')}; ${installHint(kind)}`,
    );
  }
  throw new PhpBinaryError(`no working ${kind}: ${problems.join('; ')}; ${installHint(kind)}`);
}

/**
 * One `-d` argument: the name checked and the value written in INI syntax by formatIniValue (see
 * src/php/ini.ts for why each kind of value is written the way it is).
 */
export function formatIniSetting(name: string, value: string | number | boolean): string {
  checkIniName(name);
  return `${name}=${formatIniValue(name, value)}`;
}

export interface PhpCgiArgs {
  /** Base php.ini (-c); when absent php-cgi uses its own search. */
  configFile?: string | null;
  /** The FastCGI bind address (-b): a socket path or host:port. */
  bind: string;
  /** ini overrides, one -d each, in the given order. */
  settings?: Readonly<Record<string, string | number | boolean>>;
}

/**
 * Settings every PHP worker gets unless the app sets them itself (php-fpm pools too).
 *
 * cgi_main.c / fpm_main.c (init_request_info) decide which file runs and what PHP_SELF is:
 * - fix_pathinfo=0 runs the file named by PATH_TRANSLATED (document root + PATH_INFO) when one is
 *   sent, so /index.php/uploads/evil.jpg would execute an uploaded image, and it sets PHP_SELF to
 *   PATH_INFO ("" for most requests), breaking every app that reads PHP_SELF.
 * - fix_pathinfo=1 (php-fpm's default) runs SCRIPT_FILENAME and sets PHP_SELF to SCRIPT_NAME +
 *   PATH_INFO. Its path walk, where the CVE-2019-11043 class lives, only runs when SCRIPT_FILENAME
 *   is not an existing file; both fronts dispatch only a SCRIPT_FILENAME they checked to be an
 *   existing regular file with an allowed extension, and compute PATH_INFO themselves.
 * - discard_path=1 keeps PATH_TRANSLATED from ever naming the script, also for an app that sets
 *   fix_pathinfo=0 itself.
 */
export const DEFAULT_PHP_CGI_SETTINGS: Readonly<Record<string, string | number | boolean>> = Object.freeze({ 'cgi.fix_pathinfo': 1, 'cgi.discard_path': 1 });

/**
 * The argument list for a php-cgi worker: `-c ini -b addr -d k=v ...` (no shell is involved), the
 * defaults above first and the configured settings over them.
 */
export function buildPhpCgiArgs(options: PhpCgiArgs): string[] {
  const args: string[] = [];
  if (options.configFile) args.push('-c', options.configFile);
  args.push('-b', options.bind);
  const settings = { ...DEFAULT_PHP_CGI_SETTINGS, ...options.settings };
  for (const [name, value] of Object.entries(settings)) args.push('-d', formatIniSetting(name, value));
  return args;
}
