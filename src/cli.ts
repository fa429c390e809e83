// The tqserver command: flags, config loading (--check prints every problem), logging to the console
// and the log file, start, and signals (TERM/INT stop gracefully, HUP reloads, USR1 reopens logs).

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { multistream, pino, type DestinationStream, type Level } from 'pino';
import { TQServer } from './app.js';
import { ConfigError, formatProblem, loadConfig, type Config, type Mode } from './config/load.js';
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

function createServerLogger(config: Config, quiet: boolean, files: LogFiles): { log: Logger; file: LogFile | null } {
  const streams: Array<{ stream: DestinationStream; level: Level }> = [];
  const level: Level = config.mode === 'dev' && config.server.logLevel === 'info' ? 'debug' : config.server.logLevel;
  if (!quiet) streams.push({ stream: humanStream(process.stderr) as unknown as DestinationStream, level });
  let file: LogFile | null = null;
  if (config.server.logFile) {
    file = files.open(config.server.logFile);
    streams.push({ stream: file as unknown as DestinationStream, level });
  }
  const log = pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, multistream(streams));
  return { log, file };
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
  let serverLog: { log: Logger; file: LogFile | null } | null = null;
  const files = new LogFiles({
    onError: (failed, error) => {
      const text = `cannot write the log file ${failed.path}: ${error.message}`;
      if (serverLog && failed !== serverLog.file) serverLog.log.error({ file: failed.path }, text);
      else process.stderr.write(`tqserver: ${text}\n`);
    },
  });
  try {
    serverLog = createServerLogger(config, flags.quiet, files);
  } catch (error) {
    process.stderr.write(`tqserver: ${(error as Error).message}\n`);
    return 1;
  }
  const { log, file } = serverLog;
  if (config.apps.length === 0) log.warn({}, `no apps found under ${config.workersDir} (each app needs workers/NAME/config/worker.yaml)`);
  let server: TQServer;
  try {
    server = await TQServer.start(config, log, { logFiles: files });
  } catch (error) {
    log.fatal({}, `cannot start: ${(error as Error).message}`);
    process.stderr.write(`tqserver: cannot start: ${(error as Error).message}\n`);
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
    process.on('SIGHUP', () => {
      log.warn({}, 'SIGHUP: configuration reload is not available in this version yet; restart TQServer to apply config changes');
    });
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
  if (file) await files.release(file);
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
