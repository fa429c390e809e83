// The route table (pure): URL prefixes to targets, longest prefix first, on segment boundaries only,
// so /blog matches /blog and /blog/x but never /blogger. Paths are matched after normalisation.

export interface RouteMatch<T> {
  prefix: string;
  target: T;
  /** The path below the prefix: "" for the prefix itself, else starting with "/". */
  rest: string;
}

export class Router<T> {
  readonly #byPrefix = new Map<string, T>();

  /** Prefixes start with "/" and have no trailing slash ("/" itself is the site root). */
  constructor(routes: Iterable<readonly [prefix: string, target: T]>) {
    for (const [prefix, target] of routes) {
      if (!prefix.startsWith('/') || (prefix.length > 1 && prefix.endsWith('/'))) {
        throw new TypeError(`route prefix ${JSON.stringify(prefix)} must start with / and not end with /`);
      }
      if (this.#byPrefix.has(prefix)) throw new TypeError(`route prefix ${prefix} is defined twice`);
      this.#byPrefix.set(prefix, target);
    }
  }

  get size(): number {
    return this.#byPrefix.size;
  }

  /** The longest prefix that is `path` or an ancestor segment of it; one map lookup per segment. */
  match(path: string): RouteMatch<T> | null {
    let end = path.length;
    // Drop a trailing slash for the lookup ("/blog/" is inside "/blog").
    if (end > 1 && path.charCodeAt(end - 1) === 0x2f) end -= 1;
    for (;;) {
      const prefix = end === 0 ? '/' : path.slice(0, end);
      const target = this.#byPrefix.get(prefix);
      if (target !== undefined) return { prefix, target, rest: prefix === '/' ? path : path.slice(prefix.length) };
      if (end === 0) return null;
      end = path.lastIndexOf('/', end - 1);
      if (end < 0) return null;
    }
  }
}
