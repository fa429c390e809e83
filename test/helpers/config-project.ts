// Project trees for the config loader's tests, built in temp folders: a test file calls
// `after(removeProjects)` to delete the ones it made.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const made: string[] = [];

/** Deletes every project tree made so far. */
export function removeProjects(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A project tree: a path ending in "/" is a folder, anything else a file with that text. */
export function project(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tq-config-'));
  made.push(root);
  for (const [path, text] of Object.entries(files)) {
    const full = join(root, path);
    if (path.endsWith('/')) {
      mkdirSync(full, { recursive: true });
    } else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, text);
    }
  }
  return root;
}

/** One app folder (worker.yaml and its public/ folder). */
export function app(name: string, yaml: string): Record<string, string> {
  return { [`workers/${name}/config/worker.yaml`]: yaml, [`workers/${name}/public/`]: '' };
}
