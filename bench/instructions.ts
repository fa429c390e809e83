// Instructions per hello-world request of TQServer builds (issue 8's second measure, see
// docs/benchmarks.md, "What each optimisation bought"). Gateway CPU time on a shared 2-core machine
// moves by 10 to 30 % from round to round; a count of instructions does not, so changes worth a
// percent or two can be compared. Each build runs under valgrind's callgrind with instrumentation
// off while it starts and warms up, then on for a fixed number of requests; the figure is the
// user-space instructions of TQServer's main thread (and of all its threads) per request. A count
// is not time: it steers, and bench/ab.ts confirms. Builds run side by side, so compare builds of
// one invocation only. Needs valgrind (apt-get install valgrind); a build takes about a minute.
//
//   node dist/bench/instructions.js --build base=/tmp/base/dist/src/cli.js --build new=dist/src/cli.js \
//     [--kind fpm|cgi|front] [--requests 4000] [--warmup 8000] [--keep DIR]
//
// --keep DIR copies each build's callgrind files there (for callgrind_annotate; run with
// NODE_OPTIONS=--perf-basic-prof to have the JIT code named from /tmp/perf-PID.map).

import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../test/helpers/peers.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { startNginx } from './lib/nginx.js';
import { DOCUMENT_ROOT } from './lib/php-pool.js';
import { Scope } from './lib/processes.js';
import { serverYaml, workerYaml } from './lib/tqserver.js';

const KINDS = ['fpm', 'cgi', 'front'] as const;
type Kind = (typeof KINDS)[number];

/** Concurrent kept-alive connections of the load (fixed: the count depends a little on it). */
const CONNECTIONS = 8;

function log(line: string): void {
  process.stderr.write(`[instructions] ${line}\n`);
}

/** Sends `count` GETs over CONNECTIONS kept-alive connections; throws on any answer but 200. */
async function load(url: string, agent: http.Agent, count: number): Promise<void> {
  let left = count;
  const one = () =>
    new Promise<number>((done, fail) => {
      http.get(url, { agent }, (response) => {
        response.resume();
        response.on('end', () => done(response.statusCode ?? 0));
      }).on('error', fail);
    });
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (left-- > 0) {
        const status = await one();
        if (status !== 200) throw new Error(`${url} answered ${status}`);
      }
    }),
  );
}

/** Instructions per request of one build: [main thread, all threads]. */
async function measure(name: string, cli: string, kind: Kind, requests: number, warmup: number, keep: string | null): Promise<[number, number]> {
  const scope = new Scope();
  try {
    const dir = await scope.tempDir(`tqserver-instr-${name}-${kind}-`);
    const port = await freePort();
    const fastcgiListen = kind === 'front' ? join(dir, 'fastcgi-front.sock') : null;
    const project = { dir, port, phpFpm: kind === 'fpm', fastcgiListen };
    await mkdir(join(dir, 'config'), { recursive: true });
    await mkdir(join(dir, 'workers', 'bench', 'config'), { recursive: true });
    await writeFile(join(dir, 'config', 'server.yaml'), serverYaml(project));
    await writeFile(join(dir, 'workers', 'bench', 'config', 'worker.yaml'), workerYaml(project));
    const out = join(dir, 'callgrind.out');
    const args = ['--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${out}`, process.execPath, cli, '--root', dir];
    const tq = scope.spawn(`${name} ${kind}`, 'valgrind', args, { cwd: dir });
    // Starting under valgrind takes tens of seconds.
    await tq.waitForListening({ host: '127.0.0.1', port }, 300_000);
    let url = `http://127.0.0.1:${port}/hello.php`;
    if (fastcgiListen) {
      await tq.waitForListening({ path: fastcgiListen }, 300_000);
      const nginx = await startNginx(scope, dir, `${name}: nginx`, { documentRoot: DOCUMENT_ROOT, upstreams: [fastcgiListen], keepalive: 64 });
      url = `http://127.0.0.1:${nginx.port}/hello.php`;
    }
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    try {
      await load(url, agent, warmup);
      const control = (...flags: string[]) => execFileSync('callgrind_control', [...flags, String(tq.pid)], { stdio: 'ignore' });
      control('-z');
      control('-i', 'on');
      await load(url, agent, requests);
      control('-i', 'off');
      control('-d');
    } finally {
      agent.destroy();
    }
    // One file per thread ("-01" is the main thread), each with a totals line.
    let main = 0;
    let all = 0;
    for (const file of await readdir(dir)) {
      if (!file.startsWith('callgrind.out.')) continue;
      const match = /^totals: (\d+)/m.exec(await readFile(join(dir, file), 'utf8'));
      if (!match) continue;
      all += Number(match[1]);
      if (file.endsWith('-01')) main += Number(match[1]);
      if (keep) await copyFile(join(dir, file), join(keep, `${name}-${kind}-${file}`));
    }
    // With NODE_OPTIONS=--perf-basic-prof, /tmp/perf-PID.map names the JIT code in callgrind_annotate's output.
    if (keep) log(`${name} ${kind}: callgrind files in ${keep} (pid ${tq.pid})`);
    return [main / requests, all / requests];
  } finally {
    await scope.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      build: { type: 'string', multiple: true },
      kind: { type: 'string', multiple: true },
      requests: { type: 'string', default: '4000' },
      warmup: { type: 'string', default: '8000' },
      keep: { type: 'string' },
    },
  });
  const builds = (values.build ?? []).map((spec) => {
    const at = spec.indexOf('=');
    if (at <= 0) throw new Error(`--build wants NAME=PATH/TO/cli.js, got ${spec}`);
    return { name: spec.slice(0, at), cli: resolve(spec.slice(at + 1)) };
  });
  if (builds.length === 0) throw new Error('--build NAME=PATH/TO/cli.js, once per build');
  const kinds = (values.kind ?? ['fpm']).map((k) => {
    if (!(KINDS as readonly string[]).includes(k)) throw new Error(`--kind: one of ${KINDS.join(', ')}`);
    return k as Kind;
  });
  const requests = Number(values.requests);
  const warmup = Number(values.warmup);
  const keep = values.keep ? resolve(values.keep) : null;
  if (keep) await mkdir(keep, { recursive: true });
  installSignalHandlers();
  const lines = ['| build | kind | k instructions/request, main thread | all threads |', '| --- | --- | ---: | ---: |'];
  for (const kind of kinds) {
    log(`${kind}: ${builds.map((b) => b.name).join(', ')} side by side, ${warmup} requests to warm up, ${requests} counted`);
    const counts = await Promise.all(builds.map((b) => measure(b.name, b.cli, kind, requests, warmup, keep)));
    builds.forEach((b, i) => lines.push(`| ${b.name} | ${kind} | ${(counts[i]![0] / 1000).toFixed(1)} | ${(counts[i]![1] / 1000).toFixed(1)} |`));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch(async (error: unknown) => {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await runCleanup();
  process.exitCode = 1;
});
