// Which code a run measured: the git commit, and whether the working tree differed from it.

import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from './paths.js';

/** "1b59812" or "1b59812 + uncommitted changes in src/"; "unknown" outside a git checkout. */
export function describeRevision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 5000 }).trim();
    const commit = git('rev-parse', '--short', 'HEAD');
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    return dirty ? `${commit} + uncommitted changes in src/` : commit;
  } catch {
    return 'unknown';
  }
}
