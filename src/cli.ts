// The tqserver command: flags, config loading (--check prints every problem), logging to the console
// and the log file, start, and signals (TERM/INT stop gracefully, HUP reloads, USR1 reopens logs).

import { join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { multistream, pino, type DestinationStream, type Level } from 'pino';
import { TQServer } from './app.js';
import { ConfigError, formatProblem, loadConfig, type Config, type Mode } from './config/load.js';
import { ConfigWatcher } from './config/watch.js';
import { LogFiles, type LogFile } from './log-file.js';
import { humanStream, type Logger } from './log.js';
import { detectPhp } from './php/binary.js';
import { VERSION } from './version.js';

const USAGE = `Usage: tqserver [--config FILE] [--root DIR] [--mode dev|prod] [--quiet] [--check]

Serves the PHP apps under <root>/workers/NAME/ (each with a config/worker.yaml) at their URL prefixes.

  --config FILE   server config (default <root>/config/server.yaml; built-in defaults if absent)
  --root DIR      project root (default: the working directory)
  --mode MODE     dev or prod (default prod); dev logs more
  --quiet         nothing on the console; logs still go to server.log_file
  --check         validate every config file, print every problem, exit 0 (valid) or 1
  --version       print the version
  --help          print this help

Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads config, SIGUSR1 reopens log files.
Docs: docs/config.md (every key), docs/errors.md (every error code).
`;

interface Flags {
  config?: string;
  root: string;
  mode: Mode;
  quiet: boolean;
  check: boolean;
}

function parseFlags(argv: string[]): Flags | 'help' | 'version' {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      root: { type: 'string' },
      mode: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', short: 'v', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return 'help';
  if (values.version) return 'version';
  if (positionals.length > 0) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const mode = values.mode ?? 'prod';
  if (mode !== 'dev' && mode !== 'prod') throw new Error(`--mode must be dev or prod, got ${JSON.stringify(mode)}`);
  return { config: values.config, root: resolve(values.root ?? process.cwd()), mode, quiet: values.quiet ?? false, check: values.check ?? false };
}

/**
 * Where the server log's file lines go: the file of server.log_file, which a reload may change (or
 * turn off) while pino keeps writing to this one stream.
 */
class ServerLogSink extends Writable {
  file: LogFile | null;

  constructor(file: LogFile | null) {
    super();
    this.file = file;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // Handed over at once: the LogFile holds what waits for the disk, up to its cap, and drops the
    // rest; waiting here for each line would hold them in this stream instead, without a bound.
    this.file?.write(chunk);
    callback();
  }
}

function logLevelOf(config: Config): Level {
  return config.mode === 'dev' && config.server.logLevel === 'info' ? 'debug' : config.server.logLevel;
}

function createServerLogger(config: Config, quiet: boolean, files: LogFiles): { log: Logger; sink: ServerLogSink } {
  const streams: Array<{ stream: DestinationStream; level: Level }> = [];
  // Every level reaches the streams; the logger's own level (which a reload can change) filters.
  if (!quiet) streams.push({ stream: humanStream(process.stderr) as unknown as DestinationStream, level: 'trace' });
  const sink = new ServerLogSink(config.server.logFile ? files.open(config.server.logFile) : null);
  streams.push({ stream: sink as unknown as DestinationStream, level: 'trace' });
  const log = pino({ level: logLevelOf(config), base: null, timestamp: pino.stdTimeFunctions.isoTime }, multistream(streams));
  return { log, sink };
}

async function check(config: Config): Promise<string[]> {
  const problems: string[] = [];
  for (const app of config.apps) {
    try {
      await detectPhp(app.phpFpm.enabled ? 'php-fpm' : 'php-cgi', app.phpFpm.enabled ? app.phpFpm.binary : app.php.binary);
    } catch (error) {
      problems.push(`${app.file}: ${(error as Error).message}`);
    }
  }
  return problems;
}

async function main(argv: string[]): Promise<number> {
  let flags: ReturnType<typeof parseFlags>;
  try {
    flags = parseFlags(argv);
  } catch (error) {
    process.stderr.write(`tqserver: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (flags === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (flags === 'version') {
    process.stdout.write(`tqserver ${VERSION}\n`);
    return 0;
  }

  let config: Config;
  try {
    config = loadConfig({ root: flags.root, configFile: flags.config ?? null, mode: flags.mode });
  } catch (error) {
    if (error instanceof ConfigError) {
      for (const problem of error.problems) process.stderr.write(`${formatProblem(problem)}\n`);
      process.stderr.write(`tqserver: ${error.problems.length} configuration problem${error.problems.length === 1 ? '' : 's'}; nothing was started\n`);
      return 1;
    }
    throw error;
  }

  if (flags.check) {
    const problems = await check(config);
    for (const problem of problems) process.stderr.write(`${problem}\n`);
    if (problems.length > 0) return 1;
    process.stdout.write(`configuration OK: ${config.apps.length} app${config.apps.length === 1 ? '' : 's'} (${config.apps.map((a) => `${a.name} at ${a.path}`).join(', ') || 'none'})\n`);
    return 0;
  }

  // Every log file of the process (the server log, each app's access, slow and PHP error logs), for SIGUSR1.
  let serverLog: { log: Logger; sink: ServerLogSink } | null = null;
  const files = new LogFiles({
    onError: (failed, error) => {
      const text = `cannot write the log file ${failed.path}: ${error.message}`;
      if (serverLog && failed !== serverLog.sink.file) serverLog.log.error({ file: failed.path }, text);
      else process.stderr.write(`tqserver: ${text}\n`);
    },
    onDropped: (file, warning) => {
      if (serverLog && file !== serverLog.sink.file) serverLog.log.warn({ file: file.path }, warning);
      else process.stderr.write(`tqserver: ${warning}\n`);
    },
  });
  try {
    serverLog = createServerLogger(config, flags.quiet, files);
  } catch (error) {
    process.stderr.write(`tqserver: ${(error as Error).message}\n`);
    return 1;
  }
  const { log, sink } = serverLog;
  if (config.apps.length === 0) log.warn({}, `no apps found under ${config.workersDir} (each app needs workers/NAME/config/worker.yaml)`);
  let server: TQServer;
  try {
    server = await TQServer.start(config, log, { logFiles: files });
  } catch (error) {
    log.fatal({}, `cannot start: ${(error as Error).message}`);
    // The console log already said it on stderr, unless --quiet turned it off.
    if (flags.quiet) process.stderr.write(`tqserver: cannot start: ${(error as Error).message}\n`);
    return 1;
  }

  const code = await new Promise<number>((done) => {
    let signals = 0;
    /** The exit code once stopped: 0 for a graceful stop, 1 when a second signal cut it short. */
    let exitCode = 0;
    const stop = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals === 1) {
        // stop() closes the listeners before it returns: once this line is out, new connections are refused.
        watcher.close();
        const stopping = server.stop();
        log.info({ signal }, `${signal}: stopping gracefully (finishing requests in progress, up to ${config.server.shutdownTimeoutMs} ms); send it again to stop at once`);
        stopping.then(
          () => done(exitCode),
          (error: Error) => {
            log.error({}, `stop failed: ${error.message}`);
            done(1);
          },
        );
      } else {
        log.warn({ signal }, `${signal} again: stopping now`);
        exitCode = 1;
        server.stop(0).finally(() => done(exitCode));
      }
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // A reload: the files are read and validated again; an invalid config leaves the running one as
    // it is and the log says what is wrong. Changes to the files are watched and reloaded the same way.
    const reload = async (why: string) => {
      let next: Config;
      try {
        next = loadConfig({ root: flags.root, configFile: flags.config ?? null, mode: flags.mode });
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        for (const problem of error.problems) log.error({}, `reload (${why}): ${formatProblem(problem)}`);
        log.error({}, `reload (${why}): ${error.problems.length} configuration problem${error.problems.length === 1 ? '' : 's'}; the running configuration stays as it was`);
        return;
      }
      const before = server.config;
      const result = await server.reload(next);
      if (before.server.logFile !== next.server.logFile) {
        const old = sink.file;
        sink.file = next.server.logFile ? files.open(next.server.logFile) : null;
        if (old) await files.release(old);
      }
      log.level = logLevelOf(next);
      watcher.refresh();
      if (result.applied.length === 0 && result.failed.length === 0 && result.restartRequired.length === 0) {
        log.info({}, `reload (${why}): nothing changed`);
        return;
      }
      for (const line of result.applied) log.info({}, `reload: ${line}`);
      log.info({ applied: result.applied.length, failed: result.failed.length }, `reload (${why}) done: ${result.applied.length} applied, ${result.failed.length} failed${result.restartRequired.length > 0 ? `, waiting for a restart: ${result.restartRequired.join(', ')}` : ''}`);
    };
    let reloading = Promise.resolve();
    const queueReload = (why: string) => {
      reloading = reloading.then(() => reload(why)).catch((error: Error) => log.error({}, `reload (${why}) failed: ${error.stack ?? error.message}`));
    };
    const watcher = new ConfigWatcher({
      configFile: config.configFile ?? join(flags.root, 'config', 'server.yaml'),
      workersDir: config.workersDir,
      debounceMs: config.debounceMs,
      onChange: (changed) => queueReload(`${changed.map((path) => relative(flags.root, path) || path).join(', ')} changed`),
      onError: (error) => log.warn({}, `config watcher: ${error.message}`),
    });
    process.on('SIGHUP', () => queueReload('SIGHUP'));
    process.on('SIGUSR1', () => {
      const paths = files.reopenAll();
      log.info({ files: paths }, `SIGUSR1: ${paths.length} log file${paths.length === 1 ? '' : 's'} reopened`);
    });
    process.on('uncaughtException', (error) => {
      log.fatal({ err: error.stack }, `uncaught exception: ${error.message}; stopping`);
      server.stop(0).finally(() => done(70));
    });
  });
  // Every line up to "stopped" reaches the log file before the process exits.
  if (sink.file) await files.release(sink.file);
  return code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Let stdout/stderr flush, then leave even if a stray handle is left.
    setTimeout(() => process.exit(code), 50).unref();
  },
  (error: Error) => {
    process.stderr.write(`tqserver: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
