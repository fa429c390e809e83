// A/B comparison of TQServer builds on one workload (issue 8's work method): every build runs with
// its own PHP, wrk loads them in alternation (A B A B ...) for several rounds, and each round's ratio
// to the first build is taken within the round, so drift on a shared machine cancels out. Prints
// req/s and the gateway's CPU µs per request; publishes nothing.
//
//   node dist/bench/ab.js --build base=/tmp/base/dist/src/cli.js --build new=dist/src/cli.js \
//     [--kind fpm|cgi|front|bare|floor|rawfloor ...] [--ref nginx-fpm-ka ...] [--conns 16] [--rounds 5] [--sec 3] [--path /hello.php] [--body BYTES]

import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CONTENDER_IDS, startContender, type ContenderId } from './contenders.js';
import { installSignalHandlers, runCleanup, wasInterrupted } from './lib/cleanup.js';
import { startNginx } from './lib/nginx.js';
import { repoPath } from './lib/paths.js';
import { DOCUMENT_ROOT, startPhpFpm } from './lib/php-pool.js';
import { freePort } from '../test/helpers/peers.js';
import { cpuSeconds } from './lib/proc.js';
import { Scope } from './lib/processes.js';
import { median } from './lib/stats.js';
import { startTQServer, TQSERVER_CLI } from './lib/tqserver.js';
import { runWrk, writePostScript } from './lib/wrk.js';

/** fpm, cgi, front: TQServer's; bare, floor and rawfloor (floor without node:http): bench/floor-server.ts (the build is not used). */
const KINDS = ['fpm', 'cgi', 'front', 'bare', 'floor', 'rawfloor'] as const;
type Kind = (typeof KINDS)[number];

interface Entrant {
  readonly label: string;
  /** Ratios are taken to the first entrant of the same group (a kind, or a reference gateway). */
  readonly group: string;
  readonly baseUrl: string;
  readonly pids: () => number[];
  readonly rps: number[];
  readonly usPerReq: number[];
  readonly p99Ms: number[];
  readonly errors: number[];
}

function log(line: string): void {
  process.stderr.write(`[ab] ${line}\n`);
}

async function startFloor(scope: Scope, kind: 'bare' | 'floor' | 'rawfloor'): Promise<Entrant> {
  const dir = await scope.tempDir(`tqserver-ab-${kind}-`);
  const port = await freePort();
  const fpm = kind !== 'bare' ? [...(kind === 'rawfloor' ? ['--raw'] : []), '--fpm', (await startPhpFpm(scope, dir, 'floor: php-fpm')).socket, '--root', DOCUMENT_ROOT] : [];
  const proc = scope.spawn(kind, process.execPath, [repoPath('dist', 'bench', 'floor-server.js'), '--port', String(port), ...fpm]);
  await proc.waitForListening({ host: '127.0.0.1', port }, 20_000);
  return { label: kind, group: kind, baseUrl: `http://127.0.0.1:${port}`, pids: () => [proc.pid], rps: [], usPerReq: [], p99Ms: [], errors: [] };
}

async function startBuild(scope: Scope, name: string, cli: string, kind: Kind, profileDir: string | null): Promise<Entrant> {
  const dir = await scope.tempDir(`tqserver-ab-${name}-${kind}-`);
  const label = `${name} ${kind}`;
  const profile = { profileDir, profileName: `ab-${name}-${kind}` };
  const tq = await startTQServer(scope, dir, label, { phpFpm: kind === 'fpm', fastcgiFront: kind === 'front', cli, ...profile });
  const base = { label, group: kind, rps: [], usPerReq: [], p99Ms: [], errors: [] };
  if (kind !== 'front') return { ...base, baseUrl: `http://127.0.0.1:${tq.port}`, pids: () => [tq.process.pid] };
  const nginx = await startNginx(scope, dir, `${label}: nginx`, { documentRoot: DOCUMENT_ROOT, upstreams: [tq.fastcgiSocket!], keepalive: 64 });
  return { ...base, baseUrl: `http://127.0.0.1:${nginx.port}`, pids: () => [...nginx.pids(), tq.process.pid] };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      build: { type: 'string', multiple: true },
      kind: { type: 'string', multiple: true },
      ref: { type: 'string', multiple: true },
      conns: { type: 'string', default: '16' },
      rounds: { type: 'string', default: '5' },
      sec: { type: 'string', default: '3' },
      path: { type: 'string', default: '/hello.php' },
      body: { type: 'string' },
      profile: { type: 'string' },
    },
  });
  const builds = (values.build ?? [`this=${TQSERVER_CLI}`]).map((spec) => {
    const at = spec.indexOf('=');
    if (at <= 0) throw new Error(`--build wants NAME=PATH/TO/cli.js, got ${spec}`);
    return { name: spec.slice(0, at), cli: resolve(spec.slice(at + 1)) };
  });
  const kinds = (values.kind ?? ['fpm']).map((k) => {
    if (!(KINDS as readonly string[]).includes(k)) throw new Error(`--kind: one of ${KINDS.join(', ')}`);
    return k as Kind;
  });
  const refs = (values.ref ?? []).map((r) => {
    if (!(CONTENDER_IDS as readonly string[]).includes(r)) throw new Error(`--ref: one of ${CONTENDER_IDS.join(', ')}`);
    return r as ContenderId;
  });
  const connections = Number(values.conns);
  const rounds = Number(values.rounds);
  const durationSec = Number(values.sec);
  const profileDir = values.profile ? resolve(values.profile) : null;

  installSignalHandlers();
  const scope = new Scope();
  try {
    const entrants: Entrant[] = [];
    for (const kind of kinds) {
      if (kind === 'bare' || kind === 'floor' || kind === 'rawfloor') entrants.push(await startFloor(scope, kind));
      else for (const build of builds) entrants.push(await startBuild(scope, build.name, build.cli, kind, profileDir));
    }
    for (const id of refs) {
      const contender = await startContender(id, { profileDir: null, profilePrefix: 'ab' });
      scope.defer((fast) => contender.scope.close(fast));
      entrants.push({ label: id, group: id, baseUrl: contender.baseUrl, pids: contender.gatewayPids, rps: [], usPerReq: [], p99Ms: [], errors: [] });
    }
    log(`load average ${loadavg().map((n) => n.toFixed(2)).join(' ')}; ${entrants.length} entrants, ${rounds} rounds of ${durationSec} s at ${connections} connections on ${values.path}`);
    // --body BYTES: every request a POST of that many bytes (e.g. --path /upload.php --body 10485760).
    const script = values.body ? await writePostScript(await scope.tempDir('tqserver-ab-wrk-'), Number(values.body)) : null;
    const wrk = (e: Entrant, sec: number) => runWrk({ url: `${e.baseUrl}${values.path}`, connections, threads: 2, durationSec: sec, script, timeoutSec: 10 });
    for (const e of entrants) await wrk(e, 1);
    for (let round = 1; round <= rounds && !wasInterrupted(); round++) {
      // Every round starts with a different entrant, so none always runs right after the same one.
      const order = entrants.map((_, i) => entrants[(i + round - 1) % entrants.length]!);
      for (const e of order) {
        const pids = e.pids();
        const before = cpuSeconds(pids);
        const result = await wrk(e, durationSec);
        const us = ((cpuSeconds(pids) - before) / Math.max(1, result.requests)) * 1e6;
        e.rps.push(result.requestsPerSec);
        e.usPerReq.push(us);
        e.p99Ms.push(result.p99Ms);
        e.errors.push(result.errors);
        log(`round ${round}: ${e.label}: ${result.requestsPerSec.toFixed(0)} req/s, ${us.toFixed(1)} µs/req, p99 ${result.p99Ms.toFixed(2)} ms${result.errors ? `, ${result.errors} errors (${result.errorText})` : ''}`);
      }
    }
    const lines = [`load average at end ${loadavg()[0]!.toFixed(2)}`, '', '| entrant | req/s | min–max | µs/req | min–max | p99 ms | errors | req/s × first | µs × first |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'];
    for (const e of entrants) {
      const first = entrants.find((x) => x.group === e.group)!;
      // Paired: the ratio within each round, then the median of those.
      const rpsRatio = median(e.rps.map((v, i) => v / first.rps[i]!));
      const usRatio = median(e.usPerReq.map((v, i) => v / first.usPerReq[i]!));
      lines.push(
        `| ${e.label} | ${median(e.rps).toFixed(0)} | ${Math.min(...e.rps).toFixed(0)}–${Math.max(...e.rps).toFixed(0)} | ${median(e.usPerReq).toFixed(1)} | ` +
          `${Math.min(...e.usPerReq).toFixed(1)}–${Math.max(...e.usPerReq).toFixed(1)} | ${median(e.p99Ms).toFixed(2)} | ${e.errors.reduce((a, b) => a + b, 0)} | ` +
          `${e === first ? '–' : rpsRatio.toFixed(3)} | ${e === first ? '–' : usRatio.toFixed(3)} |`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await scope.close();
  }
}

main().catch(async (error: unknown) => {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  await runCleanup();
  process.exitCode = 1;
});
