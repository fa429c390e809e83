// Where the bench finds the repository from its compiled location (dist/bench/lib/).

import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A path inside the repository, e.g. repoPath('bench', 'php', 'hello.php'). */
export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}
