// A private MariaDB server for tests of real PHP applications: a datadir made by mariadb-install-db
// in a temp dir, mariadbd on a unix socket in that dir (no TCP), waited for by its "ready for
// connections" line, SQL run through the mariadb client, stopped by PID.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { findBinary, spawnPeer, tempDir, type Peer } from './peers.js';

export interface MariaDb {
  /** The server's unix socket (DB_HOST "localhost:<socket>" for WordPress). */
  socket: string;
  pid: number;
  /** Runs SQL as root; resolves with the client's tab-separated output. */
  query(sql: string): Promise<string>;
  /** A fresh database and a user with a password who owns it. */
  createDatabase(name: string, user: string, password: string): Promise<void>;
  stop(): Promise<void>;
}

/** Runs a program to completion; rejects with its output when it fails. */
function run(command: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${err || out}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** SQL string literal (the values tests use are plain, but quoting keeps them honest). */
function literal(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Starts a fresh MariaDB on a private socket. The caller stops it. */
export async function startMariaDb(): Promise<MariaDb> {
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db']);
  const server = findBinary(['mariadbd', 'mysqld']);
  const client = findBinary(['mariadb', 'mysql']);
  const dir = await tempDir('tqserver-mariadb-');
  const datadir = join(dir.path, 'data');
  const socket = join(dir.path, 'mysqld.sock');
  // --user=root: we may run as root, and mariadbd refuses root unless told; harmless otherwise.
  const asUser = typeof process.getuid === 'function' && process.getuid() === 0 ? ['--user=root'] : [];
  try {
    await run(installDb, ['--no-defaults', `--datadir=${datadir}`, ...asUser, '--auth-root-authentication-method=normal', '--skip-test-db', '--skip-name-resolve']);
  } catch (error) {
    await dir.cleanup();
    throw error;
  }
  const peer: Peer = spawnPeer(
    server,
    [
      '--no-defaults',
      `--datadir=${datadir}`,
      `--socket=${socket}`,
      `--pid-file=${join(dir.path, 'mysqld.pid')}`,
      '--skip-networking',
      '--skip-log-bin',
      '--innodb-buffer-pool-size=32M',
      '--skip-name-resolve',
      ...asUser,
    ],
    { address: { path: socket }, cleanup: dir.cleanup },
  );
  try {
    await peer.waitForOutput('ready for connections', 30_000);
  } catch (error) {
    await peer.stop('SIGKILL');
    throw error;
  }
  const query = (sql: string) => run(client, ['--no-defaults', '-S', socket, '-uroot', '--batch', '--skip-column-names'], sql);
  return {
    socket,
    pid: peer.pid,
    query,
    async createDatabase(name, user, password) {
      await query(
        [
          `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;`,
          `CREATE USER IF NOT EXISTS ${literal(user)}@'localhost' IDENTIFIED BY ${literal(password)};`,
          `GRANT ALL PRIVILEGES ON \`${name}\`.* TO ${literal(user)}@'localhost';`,
        ].join('\n'),
      );
    },
    // SIGTERM is mariadbd's clean shutdown.
    stop: () => peer.stop('SIGTERM', 10_000),
  };
}
