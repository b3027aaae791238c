/**
 * Throwaway database servers for the tests that need settings of their own (WAL archiving,
 * binary logs): each in a temporary folder its server user owns, on a Unix socket there,
 * never the machine's own server.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ids, ownedTempDir, sleep } from './helpers.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';
const pg = ids('postgres');
const my = ids('mysql');

/** A PostgreSQL server in a folder of its own, on a Unix socket there (no TCP port). */
export class PgServer {
  private child: ChildProcess | undefined;
  log = '';
  constructor(
    readonly data: string,
    readonly socket: string,
  ) {}

  static init(prefix = 'respaldo-pitr-'): PgServer {
    const dir = ownedTempDir(prefix, pg, 0o755);
    execFileSync(pg.as[0]!, [...pg.as.slice(1), join(PG_BIN, 'initdb'), '-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '--no-sync', '--no-instructions'], { stdio: 'ignore' });
    return new PgServer(join(dir, 'data'), dir);
  }

  async start(): Promise<void> {
    this.child = spawn(pg.as[0]!, [...pg.as.slice(1), join(PG_BIN, 'postgres'), '-D', this.data, '-k', this.socket, '-c', 'listen_addresses=', '-p', '5432', '-c', 'fsync=off'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (c) => (this.log += c));
    for (let i = 0; i < 200 && spawnSync(join(PG_BIN, 'pg_isready'), ['-q', '-h', this.socket]).status !== 0; i++) await sleep(100);
    expect(spawnSync(join(PG_BIN, 'pg_isready'), ['-q', '-h', this.socket]).status, this.log).toBe(0);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    child.kill('SIGINT');
    await new Promise((r) => child.once('exit', r));
  }

  sql(sql: string, db = 'postgres'): string {
    return execFileSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', this.socket, '-U', 'postgres', '-d', db, '-c', sql], { encoding: 'utf8' }).trim();
  }
}

/** Switches to a new WAL segment and waits until the archive has the one just closed. */
export async function switchAndArchive(server: PgServer): Promise<string> {
  const closed = server.sql('SELECT pg_walfile_name(pg_switch_wal())');
  for (let i = 0; i < 200; i++) {
    if (server.sql('SELECT coalesce(last_archived_wal, \'\') FROM pg_stat_archiver') >= closed) return closed;
    await sleep(100);
  }
  throw new Error(`segment ${closed} was not archived: ${server.sql('SELECT last_failed_wal FROM pg_stat_archiver')}\n${server.log.slice(-2000)}`);
}

/** A mariadbd on a data folder of its own, reached through a socket in a short folder. */
export class MariadbServer {
  private child: ChildProcess | undefined;
  constructor(
    readonly data: string,
    readonly sock: string,
  ) {}

  /** A new server: mariadb-install-db into a folder the mysql user owns. */
  static init(prefix = 'respaldo-mypitr-'): MariadbServer {
    const dir = ownedTempDir(prefix, my, 0o700);
    execFileSync(my.as[0]!, [...my.as.slice(1), 'mariadb-install-db', '--no-defaults', `--datadir=${join(dir, 'data')}`, '--skip-test-db', '--skip-name-resolve'], { stdio: 'ignore' });
    return new MariadbServer(join(dir, 'data'), join(dir, 's'));
  }

  /** With binary logs (row format) or without. */
  async start(binlog: boolean): Promise<void> {
    const log = join(this.sock, '..', 'error.log');
    this.child = spawn(
      my.as[0]!,
      [...my.as.slice(1), 'setpriv', '--pdeathsig', 'KILL', '--', '/usr/sbin/mariadbd', '--no-defaults', `--datadir=${this.data}`, `--socket=${this.sock}`, '--skip-networking', `--log-error=${log}`, `--pid-file=${this.sock}.pid`, '--innodb-flush-log-at-trx-commit=0', ...(binlog ? [`--log-bin=${join(this.data, 'binlog')}`, '--server-id=1', '--binlog-format=ROW'] : [])],
      { stdio: 'ignore' },
    );
    for (let i = 0; ; i++) {
      if (spawnSync('mariadb-admin', ['--no-defaults', `--socket=${this.sock}`, '--user=root', 'ping'], { stdio: 'ignore' }).status === 0) return;
      if (this.child.exitCode !== null || i > 300) throw new Error(`the test's mariadbd did not start: ${existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : ''}`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }

  /** Runs SQL as root over the socket; the rows, tab-separated. */
  sql(statements: string, db?: string): string {
    return execFileSync('mariadb', ['--no-defaults', `--socket=${this.sock}`, '--user=root', '--batch', '--skip-column-names', ...(db ? [`--database=${db}`] : []), '-e', statements], { encoding: 'utf8' }).trim();
  }
}
