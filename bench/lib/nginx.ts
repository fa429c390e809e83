// nginx in front of FastCGI upstreams for the side-by-side sections: a generated nginx.conf (pure)
// with everything in a temp dir, started in the foreground on a free loopback port.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary, freePort, isRoot } from '../../test/helpers/peers.js';
import { descendants } from './proc.js';
import type { BenchProcess, Scope } from './processes.js';

export interface NginxSite {
  readonly dir: string;
  readonly port: number;
  readonly documentRoot: string;
  /** FastCGI upstream addresses: unix socket paths or host:port. */
  readonly upstreams: readonly string[];
  /**
   * Idle upstream connections each worker keeps (`keepalive N` with `fastcgi_keep_conn on`), or null
   * for nginx's default: a new connection per request.
   */
  readonly keepalive: number | null;
}

/** fastcgi.conf as Debian's nginx ships it: the CGI variables nginx sends to PHP. */
const FASTCGI_PARAMS: ReadonlyArray<readonly [string, string]> = [
  ['SCRIPT_FILENAME', '$document_root$fastcgi_script_name'],
  ['QUERY_STRING', '$query_string'],
  ['REQUEST_METHOD', '$request_method'],
  ['CONTENT_TYPE', '$content_type'],
  ['CONTENT_LENGTH', '$content_length'],
  ['SCRIPT_NAME', '$fastcgi_script_name'],
  ['REQUEST_URI', '$request_uri'],
  ['DOCUMENT_URI', '$document_uri'],
  ['DOCUMENT_ROOT', '$document_root'],
  ['SERVER_PROTOCOL', '$server_protocol'],
  ['REQUEST_SCHEME', '$scheme'],
  ['HTTPS', '$https if_not_empty'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['SERVER_SOFTWARE', 'nginx/$nginx_version'],
  ['REMOTE_ADDR', '$remote_addr'],
  ['REMOTE_PORT', '$remote_port'],
  ['SERVER_ADDR', '$server_addr'],
  ['SERVER_PORT', '$server_port'],
  ['SERVER_NAME', '$server_name'],
  ['REDIRECT_STATUS', '200'],
];

/**
 * The whole nginx.conf. One worker process: upstream `keepalive` is per worker, so with one worker
 * "keepalive 4" means 4 kept connections for 4 php-fpm children, the best nginx config (more idle
 * connections than children pin children; see docs/benchmarks.md). Pure.
 */
export function nginxConfig(site: NginxSite): string {
  const upstream = (address: string) => (address.startsWith('/') ? `unix:${address}` : address);
  const lines = [
    'daemon off;',
    'master_process on;',
    'worker_processes 1;',
    ...(isRoot ? ['user root root;'] : []),
    `pid ${join(site.dir, 'nginx.pid')};`,
    `error_log ${join(site.dir, 'error.log')} warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    '  types { text/html html; text/css css; application/javascript js; }',
    '  default_type application/octet-stream;',
    '  sendfile on;',
    '  tcp_nopush on;',
    // The load generator keeps its connections; nginx's default (1000 requests) would make it reconnect.
    '  keepalive_requests 1000000;',
    '  client_max_body_size 64m;',
    ...['client_body', 'fastcgi', 'proxy', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${join(site.dir, kind)};`),
    '  upstream php {',
    ...site.upstreams.map((address) => `    server ${upstream(address)};`),
    ...(site.keepalive === null ? [] : [`    keepalive ${site.keepalive};`]),
    '  }',
    '  server {',
    `    listen 127.0.0.1:${site.port};`,
    `    root ${site.documentRoot};`,
    '    index index.php index.html;',
    '    location / {',
    '      try_files $uri $uri/ /index.php?$args;',
    '    }',
    '    location ~ \\.php$ {',
    '      try_files $uri =404;',
    ...FASTCGI_PARAMS.map(([name, value]) => `      fastcgi_param ${name} ${value};`),
    '      fastcgi_pass php;',
    ...(site.keepalive === null ? [] : ['      fastcgi_keep_conn on;']),
    '    }',
    '  }',
    '}',
    '',
  ];
  return lines.join('\n');
}

export interface RunningNginx {
  readonly port: number;
  readonly master: BenchProcess;
  /** The master and its workers. */
  pids(): number[];
}

/** Writes the config into `dir` and starts nginx on a free port. */
export async function startNginx(scope: Scope, dir: string, name: string, site: Omit<NginxSite, 'dir' | 'port'>): Promise<RunningNginx> {
  const binary = findBinary(['nginx']);
  const port = await freePort();
  const file = join(dir, 'nginx.conf');
  await writeFile(file, nginxConfig({ ...site, dir, port }));
  const master = scope.spawn(name, binary, ['-p', dir, '-c', file, '-e', join(dir, 'error.log')], { stopSignal: 'SIGQUIT' });
  await master.waitForListening({ host: '127.0.0.1', port });
  return { port, master, pids: () => [master.pid, ...descendants(master.pid).map((stat) => stat.pid)] };
}
