// A small browser for driving real PHP applications over HTTP: a cookie jar (RFC 6265 host-only
// cookies, Path matching, Max-Age/Expires, deletion), redirects followed the way browsers do (303 and
// a POST's 301/302 become GET; 307/308 keep method and body), and HTML forms scraped from the page
// and submitted with their hidden fields (nonces, tokens) as urlencoded or multipart bodies.

export interface Cookie {
  name: string;
  value: string;
  domain: string;
  path: string;
  expiresAt: number | null;
  httpOnly: boolean;
  secure: boolean;
}

/** One response as received (redirects not followed). */
export interface Page {
  url: URL;
  status: number;
  headers: Headers;
  /** The Set-Cookie lines of this response, unparsed. */
  setCookies: string[];
  body: Buffer;
  text: string;
  /** The redirects followed to reach this page: status and absolute Location of each. */
  redirects: Array<{ status: number; location: string }>;
}

export interface FormField {
  name: string;
  value: string;
}

export interface Form {
  id: string | null;
  name: string | null;
  action: URL;
  method: 'GET' | 'POST';
  enctype: string;
  /** Fields a browser would send without user action: inputs (checked boxes only), textareas, selects. */
  fields: FormField[];
  /** Submit buttons, sent only when chosen. */
  submits: FormField[];
}

export interface UploadFile {
  filename: string;
  type: string;
  bytes: Buffer;
}

export type FormValues = Record<string, string | UploadFile>;

/** Decodes the HTML character references apps put in attribute values and text. */
export function decodeEntities(text: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return Number.isFinite(code) ? String.fromCodePoint(code) : whole;
    }
    return named[ref.toLowerCase()] ?? whole;
  });
}

/** The attributes of one start tag's inside ('input type="hidden" name=x checked'). */
export function parseAttributes(tag: string): Map<string, string> {
  const attributes = new Map<string, string>();
  const pattern = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  // Skip the tag name.
  const start = /^<?\s*[a-zA-Z0-9-]+/.exec(tag);
  pattern.lastIndex = start ? start[0].length : 0;
  for (let match = pattern.exec(tag); match; match = pattern.exec(tag)) {
    const name = match[1]!.toLowerCase();
    if (!attributes.has(name)) attributes.set(name, decodeEntities(match[2] ?? match[3] ?? match[4] ?? ''));
  }
  return attributes;
}

/** Every form in a page, with the fields a browser would submit. */
export function parseForms(html: string, base: URL): Form[] {
  const forms: Form[] = [];
  const formPattern = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  for (let match = formPattern.exec(html); match; match = formPattern.exec(html)) {
    const attributes = parseAttributes(`<form ${match[1]}`);
    const inner = match[2]!;
    const fields: FormField[] = [];
    const submits: FormField[] = [];
    const controlPattern = /<(input|textarea|select|button)\b([^>]*)>/gi;
    for (let control = controlPattern.exec(inner); control; control = controlPattern.exec(inner)) {
      const kind = control[1]!.toLowerCase();
      const attrs = parseAttributes(`<${kind} ${control[2]}`);
      const name = attrs.get('name');
      if (name === undefined || attrs.has('disabled')) continue;
      if (kind === 'input') {
        const type = (attrs.get('type') ?? 'text').toLowerCase();
        const value = attrs.get('value') ?? (type === 'checkbox' || type === 'radio' ? 'on' : '');
        if (type === 'submit' || type === 'image') submits.push({ name, value });
        else if (type === 'checkbox' || type === 'radio') {
          if (attrs.has('checked')) fields.push({ name, value });
        } else if (type !== 'file' && type !== 'reset' && type !== 'button') fields.push({ name, value });
      } else if (kind === 'button') {
        if ((attrs.get('type') ?? 'submit').toLowerCase() === 'submit') submits.push({ name, value: attrs.get('value') ?? '' });
      } else if (kind === 'textarea') {
        const end = inner.indexOf('</textarea>', control.index);
        const text = inner.slice(control.index + control[0].length, end < 0 ? undefined : end);
        // HTML drops one newline right after <textarea>.
        fields.push({ name, value: decodeEntities(text.replace(/^\r?\n/, '')) });
      } else {
        const end = inner.search(/<\/select>/i);
        const options = inner.slice(control.index, end < 0 ? undefined : end);
        const optionTags = [...options.matchAll(/<option\b([^>]*)>([^<]*)/gi)];
        const chosen = optionTags.find((o) => parseAttributes(`<option ${o[1]}`).has('selected')) ?? optionTags[0];
        if (chosen) {
          const optionAttrs = parseAttributes(`<option ${chosen[1]}`);
          fields.push({ name, value: optionAttrs.get('value') ?? decodeEntities(chosen[2]!.trim()) });
        }
      }
    }
    const method = (attributes.get('method') ?? 'get').toUpperCase() === 'POST' ? 'POST' : 'GET';
    forms.push({
      id: attributes.get('id') ?? null,
      name: attributes.get('name') ?? null,
      action: new URL(attributes.get('action') || base.href, base),
      method,
      enctype: (attributes.get('enctype') ?? 'application/x-www-form-urlencoded').toLowerCase(),
      fields,
      submits,
    });
  }
  return forms;
}

/** RFC 6265 5.1.4: does a cookie path cover a request path? */
function pathMatches(cookiePath: string, requestPath: string): boolean {
  if (cookiePath === requestPath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/** RFC 6265 5.1.4: the default path is the request path up to its last "/". */
function defaultPath(url: URL): string {
  const path = url.pathname;
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

export class CookieJar {
  #cookies: Cookie[] = [];

  /** Stores (or deletes) the cookie one Set-Cookie line sets for a response from `url`. */
  set(line: string, url: URL, now = Date.now()): void {
    const [pair, ...attributeParts] = line.split(';');
    const eq = pair!.indexOf('=');
    if (eq <= 0) return;
    const name = pair!.slice(0, eq).trim();
    const value = pair!.slice(eq + 1).trim();
    const cookie: Cookie = { name, value, domain: url.hostname, path: defaultPath(url), expiresAt: null, httpOnly: false, secure: false };
    let maxAgeSeen = false;
    for (const part of attributeParts) {
      const at = part.indexOf('=');
      const key = (at < 0 ? part : part.slice(0, at)).trim().toLowerCase();
      const attr = at < 0 ? '' : part.slice(at + 1).trim();
      if (key === 'path' && attr.startsWith('/')) cookie.path = attr;
      else if (key === 'max-age' && /^-?\d+$/.test(attr)) {
        maxAgeSeen = true;
        cookie.expiresAt = now + Number(attr) * 1000;
      } else if (key === 'expires' && !maxAgeSeen) {
        const when = Date.parse(attr);
        if (Number.isFinite(when)) cookie.expiresAt = when;
      } else if (key === 'httponly') cookie.httpOnly = true;
      else if (key === 'secure') cookie.secure = true;
      // Domain: the tests talk to 127.0.0.1 only; a Domain attribute naming it is the same host.
    }
    this.#cookies = this.#cookies.filter((c) => !(c.name === name && c.domain === cookie.domain && c.path === cookie.path));
    if (cookie.expiresAt === null || cookie.expiresAt > now) this.#cookies.push(cookie);
  }

  /** The Cookie header for a request to `url`: longer paths first (RFC 6265 5.4). */
  header(url: URL, now = Date.now()): string {
    this.#cookies = this.#cookies.filter((c) => c.expiresAt === null || c.expiresAt > now);
    return this.#cookies
      .filter((c) => c.domain === url.hostname && pathMatches(c.path, url.pathname) && (!c.secure || url.protocol === 'https:'))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  /** The cookies stored, for assertions. */
  all(now = Date.now()): Cookie[] {
    return this.#cookies.filter((c) => c.expiresAt === null || c.expiresAt > now);
  }

  names(): string[] {
    return this.all().map((c) => c.name);
  }
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer | URLSearchParams | FormData;
}

export class Browser {
  readonly jar = new CookieJar();
  /** Every response received, in order (for failure messages). */
  readonly history: Array<{ method: string; url: string; status: number }> = [];

  /** One request, redirects not followed; cookies sent from and stored into the jar. */
  async fetch(url: URL | string, init: RequestInit = {}): Promise<Page> {
    const target = new URL(url);
    const method = init.method ?? 'GET';
    const headers: Record<string, string> = { 'user-agent': 'TQServer-tests/1.0 (like a browser)', accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', ...init.headers };
    const cookie = this.jar.header(target);
    if (cookie) headers.cookie = cookie;
    const response = await fetch(target, { method, headers, body: init.body, redirect: 'manual' });
    const body = Buffer.from(await response.arrayBuffer());
    const setCookies = response.headers.getSetCookie();
    for (const line of setCookies) this.jar.set(line, target);
    this.history.push({ method, url: target.href, status: response.status });
    return { url: target, status: response.status, headers: response.headers, setCookies, body, text: body.toString('utf8'), redirects: [] };
  }

  /** A request with redirects followed as a browser follows them. */
  async navigate(url: URL | string, init: RequestInit = {}, maxRedirects = 10): Promise<Page> {
    const redirects: Page['redirects'] = [];
    let current = new URL(url);
    let currentInit = init;
    for (;;) {
      const page = await this.fetch(current, currentInit);
      const location = page.headers.get('location');
      if (page.status < 300 || page.status > 399 || page.status === 304 || location === null) return { ...page, redirects };
      if (redirects.length >= maxRedirects) throw new Error(`more than ${maxRedirects} redirects from ${url}: ${redirects.map((r) => r.location).join(' -> ')}`);
      const next = new URL(location, current);
      redirects.push({ status: page.status, location: next.href });
      const method = currentInit.method ?? 'GET';
      if (page.status === 303 || ((page.status === 301 || page.status === 302) && method === 'POST')) currentInit = { headers: stripBodyHeaders(currentInit.headers) };
      current = next;
    }
  }

  get(url: URL | string, headers?: Record<string, string>): Promise<Page> {
    return this.navigate(url, { headers });
  }

  /** Submits a form: its own fields, then `values` (replacing fields of the same name), then the chosen submit button. */
  /** `follow: false` answers the form's own response, its redirect not followed. */
  submit(form: Form, values: FormValues = {}, options: { submit?: string; referer?: string; follow?: boolean } = {}): Promise<Page> {
    const go = (url: URL | string, init: RequestInit) => (options.follow === false ? this.fetch(url, init) : this.navigate(url, init));
    const pairs: Array<[string, string | UploadFile]> = form.fields.filter((f) => !(f.name in values)).map((f) => [f.name, f.value]);
    for (const [name, value] of Object.entries(values)) pairs.push([name, value]);
    if (options.submit !== undefined) {
      const button = form.submits.find((s) => s.name === options.submit);
      if (!button) throw new Error(`the form has no submit button ${options.submit} (it has ${form.submits.map((s) => s.name).join(', ') || 'none'})`);
      pairs.push([button.name, button.value]);
    }
    const headers: Record<string, string> = options.referer ? { referer: options.referer } : {};
    if (form.method === 'GET') {
      const action = new URL(form.action);
      action.search = new URLSearchParams(pairs.map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : v.filename])).toString();
      return go(action, { headers });
    }
    if (form.enctype === 'multipart/form-data') {
      const data = new FormData();
      for (const [name, value] of pairs) {
        if (typeof value === 'string') data.append(name, value);
        else data.append(name, new Blob([value.bytes], { type: value.type }), value.filename);
      }
      return go(form.action, { method: 'POST', headers, body: data });
    }
    const encoded = new URLSearchParams();
    for (const [name, value] of pairs) {
      if (typeof value !== 'string') throw new Error(`field ${name} is a file, but the form is not multipart`);
      encoded.append(name, value);
    }
    return go(form.action, { method: 'POST', headers, body: encoded });
  }

  /** Posts url-encoded fields (a form the page builds in script, or a test's own). */
  post(url: URL | string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Page> {
    return this.navigate(url, { method: 'POST', headers, body: new URLSearchParams(fields) });
  }
}

function stripBodyHeaders(headers: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!headers) return headers;
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !['content-type', 'content-length'].includes(k.toLowerCase())));
}

/** The one form on a page matching `predicate`; throws with the forms found otherwise. */
export function findForm(page: Page, predicate: (form: Form) => boolean, what: string): Form {
  const forms = parseForms(page.text, page.url);
  const form = forms.find(predicate);
  if (!form) {
    const seen = forms.map((f) => `${f.method} ${f.action.pathname}${f.action.search} id=${f.id}`).join('; ') || 'none';
    throw new Error(`no ${what} form on ${page.url.href} (status ${page.status}); forms: ${seen}\n${page.text.slice(0, 1500)}`);
  }
  return form;
}

/** The value of a form field, or throws. */
export function fieldValue(form: Form, name: string): string {
  const field = form.fields.find((f) => f.name === name);
  if (!field) throw new Error(`the form has no field ${name} (fields: ${form.fields.map((f) => f.name).join(', ')})`);
  return field.value;
}

/** The <title> of a page, entities decoded. */
export function titleOf(page: Page): string {
  return decodeEntities(/<title>([\s\S]*?)<\/title>/i.exec(page.text)?.[1]?.trim() ?? '');
}

/**
 * The subresources a browser loads for a page from the page's own origin: scripts, stylesheets,
 * images and icons (in the order they appear, each once).
 */
export function assetsOf(page: Page): URL[] {
  const found = new Map<string, URL>();
  // Script bodies are not markup (client-side templates hold <img src="{{ data.url }}">).
  const html = page.text.replace(/(<script\b[^>]*>)[\s\S]*?(<\/script>)/gi, '$1$2');
  const tagPattern = /<(script|link|img)\b([^>]*)>/gi;
  for (let match = tagPattern.exec(html); match; match = tagPattern.exec(html)) {
    const tag = match[1]!.toLowerCase();
    const attributes = parseAttributes(`<${tag} ${match[2]}`);
    let ref: string | undefined;
    if (tag === 'script') ref = attributes.get('src');
    else if (tag === 'img') ref = attributes.get('src');
    else if (/(^|\s)(stylesheet|icon|shortcut icon|apple-touch-icon)(\s|$)/i.test(attributes.get('rel') ?? '')) ref = attributes.get('href');
    if (!ref || ref.startsWith('data:')) continue;
    const url = new URL(ref, page.url);
    url.hash = '';
    if (url.origin === page.url.origin && !found.has(url.href)) found.set(url.href, url);
  }
  return [...found.values()];
}

/**
 * Loads every asset of a page as a browser would: with the page's cookies, six at a time. Returns the
 * failures, described.
 */
export async function brokenAssets(browser: Browser, page: Page, parallel = 6): Promise<string[]> {
  const queue = assetsOf(page);
  const broken: string[] = [];
  const worker = async () => {
    for (let url = queue.shift(); url; url = queue.shift()) {
      const asset = await browser.fetch(url, { headers: { referer: page.url.href } });
      if (asset.status !== 200 || asset.body.length === 0) broken.push(`${asset.status} ${url.pathname}${url.search} (${asset.body.length} bytes)`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return broken.sort();
}

