// The CGI/1.1 environment (RFC 3875) for one request, with php-fpm's conventions, built by one pure
// function: request + route in, FastCGI params out. Request headers become HTTP_* only when they
// cannot collide with anything: no underscores, no Proxy (httpoxy), no Content-*/Transfer-Encoding.

import { ByteStringParams, bytePair } from '../fastcgi/params.js';

export interface CgiRequest {
  method: string;
  /** The request target exactly as the client sent it (REQUEST_URI). */
  target: string;
  /** The raw query string, without "?". */
  query: string;
  /** "1.1" or "1.0". */
  httpVersion: string;
  /** Node's rawHeaders: name, value, name, value, ... (values as latin1 strings, byte for byte). */
  rawHeaders: readonly string[];
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  tls: boolean;
  /** Length of the body PHP will read; null for a request without a body. */
  contentLength: number | null;
  /** Where encodeCgiParams keeps this connection's encoded addresses between its requests (optional). */
  connection?: ConnectionMemo;
}

export interface CgiRoute {
  /** Absolute document root of the app, no trailing slash. */
  documentRoot: string;
  /** The app's URL prefix, "" for an app at the site root. */
  prefix: string;
  /** The script relative to the document root, starting with "/" ("/index.php"). */
  script: string;
  /** Decoded PATH_INFO ("" or starting with "/"). */
  pathInfo: string;
  /** SERVER_NAME when the Host header is absent or not a plain host name. */
  serverName: string;
  /** SERVER_SOFTWARE ("TQServer/0.1.0"). */
  serverSoftware: string;
  /**
   * Extra variables set last, for TQServer's own (e.g. a request id). Never overrides a CGI variable
   * or an HTTP_* one, never sets php-fpm's PHP_VALUE / PHP_ADMIN_VALUE, and names must look like
   * environment variable names; anything else is left out.
   */
  extra?: Readonly<Record<string, string>>;
  /**
   * The request id TQServer logs this request under; PHP gets it as HTTP_X_REQUEST_ID in place of
   * whatever X-Request-Id the client sent, so PHP's logs and TQServer's agree.
   */
  requestId?: string;
}

export type CgiParams = Array<[string, string | Buffer]>;

/** Headers that never become HTTP_* variables, with why. */
const DROPPED_HEADERS: ReadonlySet<string> = new Set([
  // RFC 3875 4.1.18: these are the CONTENT_LENGTH and CONTENT_TYPE meta-variables.
  'content-length',
  'content-type',
  // httpoxy (CVE-2016-5385): HTTP_PROXY would be read as a proxy setting by HTTP clients in PHP.
  'proxy',
  // The body PHP reads has a known length (chunked bodies are spooled first).
  'transfer-encoding',
]);

/** Variables TQServer sets itself; `extra` may not override them. */
const RESERVED = new Set([
  'GATEWAY_INTERFACE',
  'SERVER_SOFTWARE',
  'SERVER_PROTOCOL',
  'SERVER_NAME',
  'SERVER_ADDR',
  'SERVER_PORT',
  'REQUEST_METHOD',
  'REQUEST_URI',
  'REQUEST_SCHEME',
  'QUERY_STRING',
  'DOCUMENT_ROOT',
  'DOCUMENT_URI',
  'SCRIPT_FILENAME',
  'SCRIPT_NAME',
  'PATH_INFO',
  'PATH_TRANSLATED',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'CONTENT_TYPE',
  'CONTENT_LENGTH',
  'REDIRECT_STATUS',
  'HTTPS',
  // RFC 3875 4.1: authentication is the server's to report, never a request's or a caller's.
  'AUTH_TYPE',
  'REMOTE_USER',
  'REMOTE_IDENT',
  'REMOTE_HOST',
  // php-fpm reads these two params as ini settings for the request (fpm_main.c): whoever sets them
  // controls PHP (auto_prepend_file=php://input is the classic), so only explicit pool config may.
  'PHP_VALUE',
  'PHP_ADMIN_VALUE',
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const TOKEN_HEADER = /^[A-Za-z0-9-]+$/;
const PLAIN_HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const BRACKETED_V6 = /^\[[0-9A-Fa-f:.]+\]$/;

/**
 * What a request header name becomes: its lower case, and its HTTP_* variable, or null for a header
 * that never becomes one (dropped, or not a plain token). Remembered per name as sent (a server
 * sees the same few dozen names all day), which spares a lower-casing, a regular expression and
 * three new strings per header per request (issue 8); bounded, in case a client invents names.
 */
interface HeaderName {
  lower: string;
  key: string | null;
}
const HEADER_NAMES = new Map<string, HeaderName>();
const HEADER_NAMES_MAX = 1024;

function headerName(name: string): HeaderName {
  let known = HEADER_NAMES.get(name);
  if (known === undefined) {
    const lower = name.toLowerCase();
    // Underscores would let "X_Real_IP" pose as "X-Real-IP" once both become HTTP_X_REAL_IP
    // (nginx drops them too: underscores_in_headers off).
    const key = DROPPED_HEADERS.has(lower) || !TOKEN_HEADER.test(name) ? null : `HTTP_${lower.toUpperCase().replace(/-/g, '_')}`;
    known = { lower, key };
    if (HEADER_NAMES.size >= HEADER_NAMES_MAX) HEADER_NAMES.clear();
    HEADER_NAMES.set(name, known);
  }
  return known;
}

/** A latin1 string from Node's parser as the exact bytes the client sent. */
function bytes(value: string): string | Buffer {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return Buffer.from(value, 'latin1');
  return value;
}

/** The request URI as sent, reduced to origin-form (absolute-form "http://h/p?q" becomes "/p?q"). */
export function requestUri(target: string): string {
  const hash = target.indexOf('#');
  const cut = hash >= 0 ? target.slice(0, hash) : target;
  if (cut.startsWith('/')) return cut;
  const match = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?]*(.*)$/.exec(cut);
  if (!match) return cut;
  const rest = match[1] ?? '';
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * The host part of a Host header when the whole header is a plain host name or IP with an optional
 * port (RFC 9110 7.2: uri-host [":" port]), else null. The value is the client's to choose, so
 * anything else (spaces, CR/LF, "@", "/", junk after an IPv6 literal) is not trusted as a name.
 */
export function hostName(hostHeader: string | undefined): string | null {
  if (!hostHeader) return null;
  // Clients send the same Host on every request: the last answer is kept (a pure function's result).
  if (hostHeader === lastHost.header) return lastHost.name;
  const name = parseHostName(hostHeader);
  lastHost = { header: hostHeader, name };
  return name;
}

let lastHost: { header: string; name: string | null } = { header: '', name: null };

function parseHostName(hostHeader: string): string | null {
  const value = hostHeader.trim();
  let host: string;
  let port: string | null = null;
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    if (end < 0) return null;
    host = value.slice(0, end + 1);
    const rest = value.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return null;
      port = rest.slice(1);
    }
    if (!BRACKETED_V6.test(host)) return null;
  } else {
    const colon = value.indexOf(':');
    host = colon >= 0 ? value.slice(0, colon) : value;
    port = colon >= 0 ? value.slice(colon + 1) : null;
    if (host.length > 253 || !PLAIN_HOST.test(host)) return null;
  }
  if (port !== null && !/^\d{1,5}$/.test(port)) return null;
  return host.toLowerCase();
}

/** The request headers that become HTTP_* variables, with the two singletons read apart. */
interface CollectedHeaders {
  /** HTTP_* name to value (repeats joined), in the order first sent. */
  headers: Map<string, string>;
  host: string | undefined;
  contentType: string | undefined;
}

function collectHeaders(request: CgiRequest, route: CgiRoute): CollectedHeaders {
  const headers = new Map<string, string>();
  let host: string | undefined;
  let contentType: string | undefined;
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const { lower, key } = headerName(name);
    // Content-Type and Host are singletons (RFC 9110 8.3, RFC 9112 3.2); like Node's
    // request.headers, the first one counts, so PHP sees the value every other layer saw.
    if (lower === 'content-type') {
      contentType ??= value;
      continue;
    }
    if (lower === 'host') {
      if (host !== undefined) continue;
      host = value;
    }
    // Dropped, or not a plain token (see headerName).
    if (key === null) continue;
    if (route.requestId !== undefined && lower === 'x-request-id') continue;
    const previous = headers.get(key);
    headers.set(key, previous === undefined ? value : `${previous}${lower === 'cookie' ? '; ' : ', '}${value}`);
  }
  return { headers, host, contentType };
}

/** route.extra's pairs that may be set (see CgiRoute.extra). */
function allowedExtras(extra: Readonly<Record<string, string>> | undefined): Array<[string, string]> {
  const allowed: Array<[string, string]> = [];
  if (!extra) return allowed;
  for (const [key, value] of Object.entries(extra)) {
    // Compared without case: php-cgi imports its process environment too, and a near-miss name
    // is never what the caller meant.
    const upper = key.toUpperCase();
    if (ENV_NAME.test(key) && !RESERVED.has(upper) && !upper.startsWith('HTTP_')) allowed.push([key, value]);
  }
  return allowed;
}

/**
 * Builds the params for one request, in a stable order: the variables of the script (the same for
 * every request to it), of the connection, of the request, then HTTP_*, then extras. The PHP proxy
 * sends encodeCgiParams' bytes, which are exactly these pairs encoded.
 */
export function buildCgiEnv(request: CgiRequest, route: CgiRoute): CgiParams {
  const scriptName = route.prefix + route.script;
  const { headers, host, contentType } = collectHeaders(request, route);
  const params: CgiParams = [
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', route.serverSoftware],
    ['DOCUMENT_ROOT', route.documentRoot],
    ['DOCUMENT_URI', scriptName + route.pathInfo],
    ['SCRIPT_FILENAME', route.documentRoot + route.script],
    ['SCRIPT_NAME', scriptName],
    ['PATH_INFO', route.pathInfo],
  ];
  // RFC 3875 4.1.6: PATH_TRANSLATED only when there is a PATH_INFO.
  if (route.pathInfo !== '') params.push(['PATH_TRANSLATED', route.documentRoot + route.pathInfo]);
  params.push(
    // php-cgi refuses to run without it when cgi.force_redirect is on (the php.ini default).
    ['REDIRECT_STATUS', '200'],
    ['SERVER_ADDR', request.localAddress],
    ['SERVER_PORT', String(request.localPort)],
    ['REMOTE_ADDR', request.remoteAddress],
    ['REMOTE_PORT', String(request.remotePort)],
    ['SERVER_PROTOCOL', `HTTP/${request.httpVersion}`],
    ['SERVER_NAME', hostName(host) ?? route.serverName],
    ['REQUEST_SCHEME', request.tls ? 'https' : 'http'],
  );
  if (request.tls) params.push(['HTTPS', 'on']);
  params.push(
    ['REQUEST_METHOD', request.method],
    ['REQUEST_URI', bytes(requestUri(request.target))],
    ['QUERY_STRING', bytes(request.query)],
    ['CONTENT_TYPE', bytes(contentType ?? '')],
    ['CONTENT_LENGTH', request.contentLength === null ? '' : String(request.contentLength)],
  );
  for (const [key, value] of headers) params.push([key, bytes(value)]);
  if (route.requestId !== undefined) params.push(['HTTP_X_REQUEST_ID', route.requestId]);
  for (const pair of allowedExtras(route.extra)) params.push(pair);
  return params;
}

// ---- the same params, encoded (the PHP proxy's hot path, issue 8) ----

/**
 * A connection's encoded SERVER_ADDR, SERVER_PORT, REMOTE_ADDR and REMOTE_PORT, kept by the caller
 * per connection (CgiRequest.connection) and used again while the four values stay the same.
 */
export interface ConnectionParams {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  stream: string;
}

/** Where a caller keeps a connection's ConnectionParams between requests. */
export interface ConnectionMemo {
  params: ConnectionParams | null;
}

/** A string as the bytes of its UTF-8 encoding, one character per byte (what measureParams sends for it). */
function utf8Bytes(text: string): string {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return Buffer.from(text, 'utf8').toString('latin1');
  }
  return text;
}

/** A pair whose value is text (sent as UTF-8); names here are ASCII. */
function textPair(name: string, value: string): string {
  return bytePair(name, utf8Bytes(value));
}

const GATEWAY_PAIR = bytePair('GATEWAY_INTERFACE', 'CGI/1.1');
const REDIRECT_PAIR = bytePair('REDIRECT_STATUS', '200');
const SCHEME_PAIRS = [bytePair('REQUEST_SCHEME', 'http'), bytePair('REQUEST_SCHEME', 'https') + bytePair('HTTPS', 'on')] as const;
const NO_LENGTH_PAIR = bytePair('CONTENT_LENGTH', '');
const NO_TYPE_PAIR = bytePair('CONTENT_TYPE', '');
const PROTOCOL_PAIRS = new Map<string, string>();
const METHOD_PAIRS = new Map<string, string>();
const SMALL_MAP_MAX = 64;

/** A pair remembered by its value (a method, a protocol version: a handful of values all day). */
function rememberedPair(map: Map<string, string>, value: string, make: (value: string) => string): string {
  let pair = map.get(value);
  if (pair === undefined) {
    pair = make(value);
    if (map.size >= SMALL_MAP_MAX) map.clear();
    map.set(value, pair);
  }
  return pair;
}

const protocolPair = (version: string): string => textPair('SERVER_PROTOCOL', `HTTP/${version}`);
const methodPair = (method: string): string => textPair('REQUEST_METHOD', method);

/**
 * A byte string copied into one flat string. A string built with `+` is a tree of its pieces, which
 * V8 walks piece by piece each time it is written; a run kept for many requests is flattened once.
 */
function flat(stream: string): string {
  return Buffer.from(stream, 'latin1').toString('latin1');
}

/** SERVER_NAME's pair for the last name sent (a site's clients send the same Host all day). */
let lastServerName: { name: string; pair: string } | null = null;

function serverNamePair(name: string): string {
  if (lastServerName !== null && name === lastServerName.name) return lastServerName.pair;
  const pair = flat(textPair('SERVER_NAME', name));
  lastServerName = { name, pair };
  return pair;
}

/** The script's run of pairs, from GATEWAY_INTERFACE to REDIRECT_STATUS, for the last route seen. */
let lastScript: { software: string; documentRoot: string; prefix: string; script: string; pathInfo: string; stream: string } | null = null;

function scriptPairs(route: CgiRoute): string {
  const last = lastScript;
  if (
    last !== null &&
    route.script === last.script &&
    route.pathInfo === last.pathInfo &&
    route.documentRoot === last.documentRoot &&
    route.prefix === last.prefix &&
    route.serverSoftware === last.software
  ) {
    return last.stream;
  }
  const scriptName = route.prefix + route.script;
  let stream =
    GATEWAY_PAIR +
    textPair('SERVER_SOFTWARE', route.serverSoftware) +
    textPair('DOCUMENT_ROOT', route.documentRoot) +
    textPair('DOCUMENT_URI', scriptName + route.pathInfo) +
    textPair('SCRIPT_FILENAME', route.documentRoot + route.script) +
    textPair('SCRIPT_NAME', scriptName) +
    textPair('PATH_INFO', route.pathInfo);
  if (route.pathInfo !== '') stream += textPair('PATH_TRANSLATED', route.documentRoot + route.pathInfo);
  stream += REDIRECT_PAIR;
  stream = flat(stream);
  lastScript = { software: route.serverSoftware, documentRoot: route.documentRoot, prefix: route.prefix, script: route.script, pathInfo: route.pathInfo, stream };
  return stream;
}

function connectionPairs(request: CgiRequest): string {
  const memo = request.connection;
  const known = memo?.params;
  if (
    known &&
    known.remotePort === request.remotePort &&
    known.localPort === request.localPort &&
    known.remoteAddress === request.remoteAddress &&
    known.localAddress === request.localAddress
  ) {
    return known.stream;
  }
  const stream = flat(
    textPair('SERVER_ADDR', request.localAddress) +
      textPair('SERVER_PORT', String(request.localPort)) +
      textPair('REMOTE_ADDR', request.remoteAddress) +
      textPair('REMOTE_PORT', String(request.remotePort)),
  );
  if (memo) {
    memo.params = {
      localAddress: request.localAddress,
      localPort: request.localPort,
      remoteAddress: request.remoteAddress,
      remotePort: request.remotePort,
      stream,
    };
  }
  return stream;
}

/**
 * buildCgiEnv's params, encoded as FastCGI sends them (spec 3.4), for the FastCGI client to copy
 * into the request's head as they are. The pairs of the script and of the connection, the same from
 * request to request, are kept encoded (the last script; the connection in `request.connection`);
 * the rest is encoded as one string of byte values: raw header bytes as they came, text (paths,
 * names, ids) as UTF-8. Measured as the biggest single cost of a request before (issue 8).
 */
export function encodeCgiParams(request: CgiRequest, route: CgiRoute): ByteStringParams {
  const { headers, host, contentType } = collectHeaders(request, route);
  let stream =
    scriptPairs(route) +
    connectionPairs(request) +
    rememberedPair(PROTOCOL_PAIRS, request.httpVersion, protocolPair) +
    serverNamePair(hostName(host) ?? route.serverName) +
    SCHEME_PAIRS[request.tls ? 1 : 0] +
    rememberedPair(METHOD_PAIRS, request.method, methodPair) +
    bytePair('REQUEST_URI', requestUri(request.target)) +
    bytePair('QUERY_STRING', request.query) +
    (contentType === undefined ? NO_TYPE_PAIR : bytePair('CONTENT_TYPE', contentType)) +
    (request.contentLength === null ? NO_LENGTH_PAIR : bytePair('CONTENT_LENGTH', String(request.contentLength)));
  for (const [key, value] of headers) stream += bytePair(key, value);
  if (route.requestId !== undefined) stream += textPair('HTTP_X_REQUEST_ID', route.requestId);
  if (route.extra) for (const [key, value] of allowedExtras(route.extra)) stream += textPair(key, value);
  return new ByteStringParams(stream);
}
