// docs/config.md stays true: every key the schemas accept has a row, and every row is a real key.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { z } from 'zod';
import { serverFileSchema, workerFileSchema } from './schema.js';

const docs = readFileSync(new URL('../../../docs/config.md', import.meta.url), 'utf8');

function unwrap(schema: z.ZodTypeAny): z.ZodTypeAny {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodDefault) current = current._def.innerType;
    else if (current instanceof z.ZodOptional || current instanceof z.ZodNullable) current = current.unwrap();
    else if (current instanceof z.ZodEffects) current = current.innerType();
    else return current;
  }
}

/** Dotted leaf keys of an object schema (records such as php.settings count as leaves). */
function leafKeys(schema: z.ZodTypeAny, prefix = ''): string[] {
  const core = unwrap(schema);
  if (!(core instanceof z.ZodObject)) return [prefix];
  return Object.entries(core.shape as Record<string, z.ZodTypeAny>).flatMap(([key, child]) => leafKeys(child, prefix ? `${prefix}.${key}` : key));
}

function documentedKeys(): string[] {
  return [...docs.matchAll(/^\| `([a-z_.]+)` \|/gm)].map((m) => m[1]!);
}

test('every server.yaml and worker.yaml key is documented', () => {
  const documented = new Set(documentedKeys());
  for (const key of [...leafKeys(serverFileSchema), ...leafKeys(workerFileSchema)]) {
    assert.ok(documented.has(key), `docs/config.md has no row for ${key}`);
  }
});

test('every documented key exists', () => {
  const known = new Set([...leafKeys(serverFileSchema), ...leafKeys(workerFileSchema)]);
  for (const key of documentedKeys()) assert.ok(known.has(key), `docs/config.md documents ${key}, which the schema does not accept`);
});
