// Turns zod's validation issues into operator sentences: the dotted key, what is wrong, the value
// given, and for an unknown key the known key it most likely meant.

import { z } from 'zod';

export interface KeyProblem {
  key: string;
  message: string;
}

/** Peels defaults, optionals, nullables and refinements off a schema to reach its structural core. */
function unwrap(schema: z.ZodTypeAny): z.ZodTypeAny {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodDefault) current = current._def.innerType;
    else if (current instanceof z.ZodOptional || current instanceof z.ZodNullable) current = current.unwrap();
    else if (current instanceof z.ZodEffects) current = current.innerType();
    else return current;
  }
}

/** The keys an object schema at `path` knows, or [] when the path does not lead to an object. */
export function knownKeysAt(schema: z.ZodTypeAny, path: ReadonlyArray<string | number>): string[] {
  let current = unwrap(schema);
  for (const segment of path) {
    if (current instanceof z.ZodObject) {
      const next = (current.shape as Record<string, z.ZodTypeAny>)[String(segment)];
      if (!next) return [];
      current = unwrap(next);
    } else if (current instanceof z.ZodRecord) {
      current = unwrap(current._def.valueType);
    } else if (current instanceof z.ZodArray) {
      current = unwrap(current.element);
    } else {
      return [];
    }
  }
  return current instanceof z.ZodObject ? Object.keys(current.shape as object) : [];
}

/** Levenshtein distance, for did-you-mean suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

/** The known key closest to `key`, if close enough to be a likely typo. */
export function suggest(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  const normal = key.toLowerCase().replace(/[-.]/g, '_');
  for (const candidate of known) {
    const distance = editDistance(normal, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  // Close enough to be a typo, and not a rewrite of the whole key ("x" is not a typo of "a").
  return best !== null && bestDistance <= Math.max(2, Math.floor(key.length / 3)) && bestDistance < normal.length ? best : null;
}

function valueAt(raw: unknown, path: ReadonlyArray<string | number>): unknown {
  let current = raw;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (~)';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  object: 'a mapping of keys',
  array: 'a list',
};

/** One or more sentences for one zod issue. */
export function describeIssue(schema: z.ZodTypeAny, issue: z.ZodIssue, raw: unknown): KeyProblem[] {
  const key = issue.path.join('.');
  const value = valueAt(raw, issue.path);
  switch (issue.code) {
    case z.ZodIssueCode.unrecognized_keys: {
      const known = knownKeysAt(schema, issue.path);
      return issue.keys.map((unknown) => {
        const hint = suggest(unknown, known);
        const full = key ? `${key}.${unknown}` : unknown;
        const tail = hint ? `; did you mean ${hint}?` : known.length > 0 ? ` (known keys here: ${known.join(', ')})` : '';
        return { key: full, message: `unknown key${tail}` };
      });
    }
    case z.ZodIssueCode.invalid_type: {
      if (value === undefined) return [{ key, message: 'is required' }];
      const expected = TYPE_WORDS[issue.expected] ?? issue.expected;
      return [{ key, message: `must be ${expected}, got ${show(value)}` }];
    }
    case z.ZodIssueCode.invalid_enum_value: {
      const options = issue.options.map(String);
      const hint = typeof value === 'string' ? suggest(value, options) : null;
      return [{ key, message: `must be one of ${options.join(', ')}, got ${show(value)}${hint ? `; did you mean ${hint}?` : ''}` }];
    }
    case z.ZodIssueCode.too_small: {
      if (issue.type === 'string') return [{ key, message: Number(issue.minimum) <= 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters` }];
      if (issue.type === 'array') return [{ key, message: `must have at least ${issue.minimum} entries` }];
      // positive() is a minimum of 0 that excludes 0: "must be >= 0, got 0" would contradict itself.
      return [{ key, message: `must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum}, got ${show(value)}` }];
    }
    case z.ZodIssueCode.too_big: {
      if (issue.type === 'array') return [{ key, message: `must have at most ${issue.maximum} entries` }];
      return [{ key, message: `must be ${issue.inclusive ? '<=' : '<'} ${issue.maximum}, got ${show(value)}` }];
    }
    case z.ZodIssueCode.invalid_union: {
      // A union of shapes (an address or a list of them): report the branch's own words if it has them.
      const branches = issue.unionErrors.flatMap((e) => e.issues);
      const nested = branches.find((i) => i.code === z.ZodIssueCode.custom);
      if (nested) return [{ key: nested.path.join('.'), message: nested.message }];
      // Every branch refused the type: name the shapes that would do ("a string or a list").
      const wanted: string[] = [];
      for (const branch of branches) {
        if (branch.path.length !== issue.path.length) continue;
        const word =
          branch.code === z.ZodIssueCode.invalid_type ? (TYPE_WORDS[branch.expected] ?? branch.expected) : branch.code === z.ZodIssueCode.invalid_literal ? JSON.stringify(branch.expected) : null;
        if (word && !wanted.includes(word)) wanted.push(word);
      }
      if (wanted.length > 0) return [{ key, message: `must be ${wanted.join(' or ')}, got ${show(value)}` }];
      return [{ key, message: `has an unexpected value ${show(value)}` }];
    }
    case z.ZodIssueCode.custom:
      return [{ key, message: issue.message }];
    default:
      return [{ key, message: `${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)} (got ${show(value)})` }];
  }
}
