// Small helpers shared across modules that belong to no concept of their own.

/** Copies an options object without its undefined values, so `{ ...defaults, ...definedOnly(o) }` keeps defaults. */
export function definedOnly<T extends object>(options: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [key, value] of Object.entries(options)) if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  return out;
}

/** An error's message, or the value as text. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
