/**
 * MariaDB: one `mariadb-dump --single-transaction` per database, gzip-compressed as it is
 * written, with the binary-log coordinates of its snapshot and every table's rows counted
 * in that same state. The test restore loads each dump into a throwaway server
 * (mariadb-install-db into a temporary folder, a private Unix socket, no TCP port), runs
 * CHECK TABLE and compares the rows.
 *
 * Why the counts describe the dump's own snapshot: mariadb-dump opens its own transaction,
 * and the stock tool cannot share it (pg_dump's --snapshot has no MariaDB equivalent). So
 * a second session briefly pauses commits (`BACKUP STAGE BLOCK_COMMIT`: no commit, no DDL,
 * no binary-log write; unlike FLUSH TABLES WITH READ LOCK it waits for no running query),
 * the counting session starts its consistent snapshot, mariadb-dump starts its own, and
 * only then are commits let through again (`BACKUP STAGE END`). No commit happened between
 * the two snapshots, so they see the same rows; the counting itself runs afterwards, in the
 * snapshot, while the server works normally. mariadb-dump says (with --verbose, on
 * unbuffered stderr) "-- Starting transaction..." before its START TRANSACTION WITH
 * CONSISTENT SNAPSHOT and its next line only after it: that line ends the pause, some tens
 * of milliseconds (mostly mariadb-dump starting and connecting). With binary logs on, the
 * dump's own CHANGE MASTER coordinates must equal those of the counting snapshot, which
 * checks it on every backup.
 * Non-transactional tables (MyISAM, Aria) have no snapshot: the dump reads them as they
 * are when it gets to them, so their rows are compared but a difference is only reported.
 *
 * Credentials: connection settings go on argv (host, socket, port and user are not
 * secret); a password only through a temporary option file (mode 0600, removed after the
 * run), named by --defaults-extra-file, which must be the tools' first argument. The
 * option files are read in order and the user's ~/.my.cnf comes after that file, so with
 * a password file HOME points at the temporary folder, where there is no ~/.my.cnf to
 * override it. Without one, the tools' usual ~/.my.cnf or unix_socket login applies.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { HashingStream } from '../hashing.js';
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import type { DatabaseDump, PitrInfo, RestoreCheck } from '../../schemas/database.js';
import { BackupFailure, messageOf } from '../errors.js';
import { capture, findProgram, lastLines, runTool, sessionTool, stopTool, streamTool } from '../exec.js';
import { compareCounts, dumpName, readPassword, sum, type Engine, type TableCounts } from './engine.js';
import { archiveRecord } from './archive.js';
import { END, LineSession } from './session.js';
import { archiveBinlogs, binlogOff, gapMessage, readBinlogArchive } from './mariadb-pitr.js';

const DEFAULT_PORT = 3306;
/** How long commits may stay paused while mariadb-dump connects and starts its transaction. */
const PAUSE_LIMIT_MS = 10_000;
/** What a backup user needs: read everything (with mysql.proc for routines), views, triggers, events; RELOAD for BACKUP STAGE. */
const GRANTS = 'SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD';
/** Engines with consistent snapshots; other tables are read by mariadb-dump when it gets to them. */
const TRANSACTIONAL = new Set(['InnoDB', 'ROCKSDB']);

const isSocket = (repo: DatabaseRepositoryConfig) => !repo.connection?.host || repo.connection.host.startsWith('/');

/** Where the server was reached, as records say it: never a password, never a local path. */
export function serverLabel(repo: DatabaseRepositoryConfig): string {
  const c = repo.connection ?? {};
  return isSocket(repo) ? 'local socket' : `${c.host}:${c.port ?? DEFAULT_PORT}`;
}

/** The account as GRANT names it: 'respaldo'@'localhost'. */
export const accountOf = (repo: DatabaseRepositoryConfig) => `'${repo.connection?.user ?? '<user>'}'@'${isSocket(repo) ? 'localhost' : '<the agent host>'}'`;

/** An identifier in backquotes, safe for any name. */
export const ident = (name: string) => `\`${name.replaceAll('`', '``')}\``;

/** Undoes the mariadb client's batch-mode escaping of a field (\\, \t, \n, \0). */
const unescape = (field: string) => field.replace(/\\([\\tn0])/g, (_, c: string) => ({ '\\': '\\', t: '\t', n: '\n', '0': '\0' })[c]!);

export interface Connection {
  /** The tools' first arguments: the option file (when there is a password), then host, port, user. */
  args: string[];
  env: NodeJS.ProcessEnv;
  cleanup: () => Promise<void>;
}

export async function connect(repo: DatabaseRepositoryConfig, env: NodeJS.ProcessEnv): Promise<Connection> {
  const c = repo.connection ?? {};
  const out: NodeJS.ProcessEnv = { ...env };
  delete out.MYSQL_PWD;
  const args: string[] = [];
  if (c.host?.startsWith('/')) {
    // A folder here is the PostgreSQL habit; MariaDB names the socket file itself.
    const st = await stat(c.host).catch(() => undefined);
    if (st?.isDirectory())
      throw new BackupFailure('source', `connection.host of ${repo.name} is a folder (${c.host}); MariaDB is reached through its socket file`, `set connection.host to the socket file itself, e.g. /run/mysqld/mysqld.sock (the server shows it with SHOW VARIABLES LIKE 'socket')`);
    args.push('--protocol=SOCKET', `--socket=${c.host}`);
  } else if (c.host) args.push('--protocol=TCP', `--host=${c.host}`, `--port=${c.port ?? DEFAULT_PORT}`);
  else if (c.port) args.push(`--port=${c.port}`);
  if (c.user) args.push(`--user=${c.user}`);
  if (!c['password-file']) return { args, env: out, cleanup: async () => {} };
  const password = await readPassword(repo, c['password-file']);
  const dir = await mkdtemp(join(tmpdir(), 'respaldo-mycnf-'));
  const file = join(dir, 'client.cnf');
  // Quoted, so that '#', ';' and spaces stay part of it; the option parser undoes these escapes.
  const quoted = password.replace(/[\\"\n\r\t]/g, (ch) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' })[ch]!);
  await writeFile(file, `[client]\npassword="${quoted}"\n`, { mode: 0o600 });
  out.HOME = dir;
  return { args: [`--defaults-extra-file=${file}`, ...args], env: out, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A MariaDB program: from the repository's `bindir` when it holds it, else PATH, else the sbin folders that cron's PATH leaves out (mariadbd). */
export function programs(repo: DatabaseRepositoryConfig, env: NodeJS.ProcessEnv): (name: string) => string {
  return (name) => {
    if (repo.bindir && findProgram(join(repo.bindir, name))) return join(repo.bindir, name);
    return findProgram(name, env) ?? ['/usr/sbin', '/usr/local/sbin'].map((dir) => join(dir, name)).find((p) => findProgram(p)) ?? name;
  };
}

export const notInstalled = (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOENT' && 'program' in (e as object);

/** The first server or client error number in the tools' stderr ("ERROR 1045 (28000)", "Got error: 1049:", "… (1044)"). */
export function errorNumber(stderr: string): number | undefined {
  const m = /ERROR (\d{4})\b|Got error: (\d{4})\b|\((\d{4})\)\s*$/m.exec(stderr);
  return m ? Number(m[1] ?? m[2] ?? m[3]) : undefined;
}

/** Turns the tools' stderr into a failure a sysadmin can act on. */
function failure(repo: DatabaseRepositoryConfig, database: string | undefined, what: string, stderr: string, exitCode?: number | null): BackupFailure {
  const server = serverLabel(repo);
  const tail = lastLines(stderr, 3);
  const extra = { detail: stderr.slice(-2000), ...(typeof exitCode === 'number' ? { exitCode } : {}) };
  const account = accountOf(repo);
  const intact = 'the previous snapshot is intact';
  const code = errorNumber(stderr);
  if (code === 1045 || code === 1698)
    return new BackupFailure('source', `MariaDB refused the login to ${server} (${tail})`, `check the password in connection.password-file (or in [client] of ~/.my.cnf) and that the account ${account} exists; ${intact}`, extra);
  if (code === 1049)
    return new BackupFailure('source', `database "${database}" does not exist on ${server}`, `create it, or correct repositories[${repo.name}].databases in the host config; ${intact}`, extra);
  if (code === 2002 || code === 2003 || code === 2005 || code === 2006 || code === 2013)
    return new BackupFailure('source', `cannot reach the MariaDB server at ${server} (${tail})`, `check that the server is running (mariadb-admin ping, systemctl status mariadb) and connection.host and connection.port in the host config; ${intact}`, extra);
  if (code === 1227) {
    const privilege = /you need \(at least one of\) the (.+?) privilege/.exec(stderr)?.[1] ?? 'RELOAD';
    return new BackupFailure('source', `the MariaDB user may not ${what === 'BACKUP STAGE' ? 'pause commits for a consistent dump (BACKUP STAGE)' : 'do what the backup needs'}: it lacks the ${privilege} privilege (${tail})`, `GRANT ${privilege} ON *.* TO ${account}; a backup user needs ${GRANTS} ON *.*; ${intact}`, extra);
  }
  if (code === 1044 || code === 1142 || code === 1143 || code === 1370)
    return new BackupFailure('source', `the MariaDB user may not read everything in "${database}" (${tail})`, `GRANT ${GRANTS} ON *.* TO ${account} (or ${GRANTS.replace(', RELOAD', '')} ON ${database ? ident(database) : '<database>'}.* and RELOAD ON *.*); ${intact}`, extra);
  if (code === 1205)
    return new BackupFailure('source', `could not pause commits on ${server} within the lock wait timeout: another backup (mariadb-backup) or a long DDL statement holds the backup lock (${tail})`, `run again when it is done; ${intact}`, extra);
  if (code === 1412)
    return new BackupFailure('source', `a table of "${database}" was altered or dropped while it was dumped (${tail})`, `run again outside schema changes; ${intact}`, extra);
  return new BackupFailure('source', `${what} failed: ${tail || `exit code ${exitCode}`}`, `read the detail, fix the cause and run again; ${intact}`, extra);
}

/**
 * A mariadb client session: in batch mode it prints each row on a line (fields
 * tab-separated and escaped), flushed after every query (--unbuffered), then the marker;
 * on any error it exits and the session fails.
 */
export class MariadbSession {
  private constructor(private readonly lines: LineSession) {}

  get signal(): AbortSignal {
    return this.lines.signal;
  }

  /** `connection` comes first: an option file is only read as the first argument. */
  static open(mariadb: string, connection: string[], env: NodeJS.ProcessEnv, signal: AbortSignal): MariadbSession {
    return new MariadbSession(
      new LineSession(mariadb, [...connection, '--batch', '--skip-column-names', '--unbuffered', '--default-character-set=utf8mb4', '--connect-timeout=10'], { env, signal }, (sql) => `${sql}\nSELECT '${END}';\n`),
    );
  }

  /** Runs SQL (statements ending in ";") and returns the rows it printed. */
  async query(sql: string): Promise<string[][]> {
    return (await this.lines.query(sql)).map((line) => line.split('\t').map(unescape));
  }

  close(): Promise<void> {
    return this.lines.close();
  }
}

/** Runs SQL in a session of the server being backed up; its errors become failures (but for an interrupted run's). */
async function ask(repo: DatabaseRepositoryConfig, database: string | undefined, session: MariadbSession, sql: string, what = 'mariadb'): Promise<string[][]> {
  try {
    return await session.query(sql);
  } catch (e) {
    if (session.signal.aborted) throw e;
    throw failure(repo, database, what, (e as { stderr?: string }).stderr ?? messageOf(e), (e as { exitCode?: number }).exitCode);
  }
}

/** Base tables (and system-versioned ones) of the session's current database: the name, then the engine when asked. */
const listTables = (engine: boolean) =>
  `SELECT TABLE_NAME${engine ? ', ENGINE' : ''} FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME;`;

async function countRows(query: (sql: string) => Promise<string[][]>, tables: string[]): Promise<Map<string, number>> {
  if (!tables.length) return new Map();
  const rows = await query(tables.map((t) => `SELECT COUNT(*) FROM ${ident(t)};`).join('\n'));
  return new Map(tables.map((t, i) => [t, Number(rows[i]?.[0])]));
}

/**
 * Watches mariadb-dump's verbose stderr: `snapshot` settles once its transaction has
 * started (the line after "-- Starting transaction..."); `errors` keeps the other lines.
 */
function watchDump(child: ReturnType<typeof streamTool>['child']): { snapshot: Promise<void>; errors: () => string } {
  let partial = '';
  let starting = false;
  let errors = '';
  let started!: () => void;
  const snapshot = new Promise<void>((r) => (started = r));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (starting) started();
      if (line.startsWith('-- Starting transaction')) starting = true;
      if (!line.startsWith('-- ')) errors = `${errors}${line}\n`.slice(-4096);
    }
  });
  return { snapshot, errors: () => (errors + partial).trim() };
}

/**
 * mariadb-dump leaves out, without an error, the triggers of tables on which the user lacks
 * TRIGGER and the routines of other definers when it may not read mysql.proc: a dump that
 * looks whole but would not bring the application back. SHOW GRANTS says so beforehand (a
 * grant through a role or a wildcard database name is not seen: a warning, not a failure).
 */
async function missingGrants(repo: DatabaseRepositoryConfig, count: MariadbSession): Promise<{ code: string; message: string }[]> {
  const grants = (await ask(repo, undefined, count, 'SHOW GRANTS;')).map(([line = '']) => /^GRANT (.+?) ON (\S+) TO /.exec(line)).filter((m) => m !== null);
  const has = (privilege: string, ...on: string[]) => grants.some(([, what = '', where = '']) => on.includes(where) && (what === 'ALL PRIVILEGES' || what.split(', ').includes(privilege)));
  const account = accountOf(repo);
  const warnings = [];
  const blind = repo.databases!.filter((db) => !has('TRIGGER', '*.*', `${ident(db)}.*`));
  if (blind.length)
    warnings.push({ code: 'dump-incomplete', message: `the MariaDB user may lack the TRIGGER privilege on ${blind.map((db) => `"${db}"`).join(', ')}: mariadb-dump leaves out, without an error, the triggers it may not see; GRANT TRIGGER ON *.* TO ${account}` });
  if (!has('SELECT', '*.*', '`mysql`.*', '`mysql`.`proc`'))
    warnings.push({ code: 'dump-incomplete', message: `the MariaDB user may not read mysql.proc: mariadb-dump leaves out, without an error, the routines that other users defined; GRANT SELECT ON *.* (or ON mysql.proc) TO ${account}` });
  return warnings;
}

interface Sessions {
  repo: DatabaseRepositoryConfig;
  conn: Connection;
  bin: (name: string) => string;
  signal: AbortSignal;
  /** Counts rows in the dump's snapshot. */
  count: MariadbSession;
  /** Pauses commits while the snapshots start. */
  lock: MariadbSession;
  logBin: boolean;
}

type Binlog = NonNullable<DatabaseDump['binlog']>;

/**
 * The binary log moved on between the counting session's snapshot and mariadb-dump's,
 * although commits were paused: just after a FLUSH BINARY LOGS (respaldo db
 * archive-binlogs every 5 minutes), the server writes a checkpoint event into the new log
 * once the old log's transactions are durable, and no commit lock holds that back. A
 * second try starts after it.
 */
class BinlogMoved extends BackupFailure {
  constructor(message: string) {
    super('source', message, 'run again; if it happens again, report it with this message; the previous snapshot is intact');
  }
}

/** Dumps one database, gzip-compressed as written, with its rows counted in the dump's snapshot. */
async function dumpOne(s: Sessions, database: string, rel: string, dataDir: string, written: (rel: string, sha1: string) => void): Promise<{ bytes: number; counts: Map<string, number>; binlog: Binlog | undefined }> {
  const { repo, count } = s;
  const q = (session: MariadbSession, sql: string, what?: string) => ask(repo, database, session, sql, what);
  await q(count, `USE ${ident(database)};`);

  await q(s.lock, 'BACKUP STAGE START;\nBACKUP STAGE BLOCK_COMMIT;', 'BACKUP STAGE');
  let paused = true;
  const resume = async () => {
    if (!paused) return;
    paused = false;
    await q(s.lock, 'BACKUP STAGE END;', 'BACKUP STAGE');
  };
  let dump: ReturnType<typeof streamTool> | undefined;
  let writing: Promise<void> | undefined;
  let head = Buffer.alloc(0);
  const hashing = new HashingStream();
  let binlog: Binlog | undefined;
  let counts: Map<string, number>;
  let errors: () => string = () => '';
  try {
    await q(count, 'START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;');
    if (s.logBin) {
      const status = new Map((await q(count, "SHOW SESSION STATUS LIKE 'binlog_snapshot_%';")).map(([k, v]) => [k?.toLowerCase(), v]));
      // The server's clock, as the binary log's event times are; commits are paused, so none falls between.
      const [[gtid = '', now = ''] = []] = await q(count, 'SELECT @@gtid_binlog_pos, UTC_TIMESTAMP(3);');
      binlog = { file: status.get('binlog_snapshot_file') ?? '', position: Number(status.get('binlog_snapshot_position')), ...(gtid ? { gtid } : {}), time: new Date(`${now.replace(' ', 'T')}Z`).toISOString() };
    }
    // Listed under the pause, which blocks DDL too: the tables of both snapshots. Only the
    // names: the engine would open every table's definition while commits wait.
    const tables = await q(count, listTables(false));

    try {
      dump = streamTool(s.bin('mariadb-dump'), [...s.conn.args, '--single-transaction', ...(s.logBin ? ['--master-data=2'] : []), '--routines', '--events', '--triggers', '--verbose', '--', database], { env: s.conn.env, signal: s.signal });
    } catch (e) {
      if (notInstalled(e)) throw new BackupFailure('source', `mariadb-dump is not installed (${messageOf(e)})`, 'install the MariaDB client programs (apt-get install mariadb-client), or set bindir for this repository; the previous snapshot is intact');
      throw e;
    }
    const watch = watchDump(dump.child);
    errors = watch.errors;
    const inspect = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (head.length < 65536) head = Buffer.concat([head, chunk]).subarray(0, 65536);
        cb(null, chunk);
      },
    });
    writing = pipeline(dump.child.stdout!, inspect, createGzip(), hashing, createWriteStream(join(dataDir, rel), { flags: 'wx' }));
    writing.catch(() => dump!.child.kill('SIGTERM'));

    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      watch.snapshot.then(() => 'started' as const),
      dump.done.then(() => 'ended' as const),
      new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), PAUSE_LIMIT_MS))),
    ]);
    clearTimeout(timer);
    if (outcome === 'late')
      throw new BackupFailure('source', `mariadb-dump did not start its transaction on ${serverLabel(repo)} within ${PAUSE_LIMIT_MS / 1000} s, while commits were paused`, 'check the server load and its max_connections, then run again; the previous snapshot is intact');
    if (outcome === 'ended') {
      // Failed already: a full target (the write's error comes first) or the tool's own error.
      const [ended, wrote] = await Promise.allSettled([dump.done, writing]);
      if (wrote.status === 'rejected') throw wrote.reason;
      if (ended.status === 'fulfilled' && ended.value.code !== 0 && !s.signal.aborted) throw failure(repo, database, 'mariadb-dump', errors() || ended.value.stderr, ended.value.code);
    }
    await resume();
    counts = await countRows((sql) => q(count, sql), tables.map(([t]) => t!));
    await q(count, 'COMMIT;');
  } catch (e) {
    dump?.child.kill('SIGTERM');
    await Promise.allSettled([dump?.done, writing]);
    throw e;
  } finally {
    await resume().catch(() => {});
  }

  const [result] = await Promise.all([dump!.done, writing!]);
  if (s.signal.aborted) throw new Error('interrupted while mariadb-dump ran');
  if (result.code !== 0) throw failure(repo, database, 'mariadb-dump', errors() || result.stderr, result.code);
  if (binlog) {
    const m = /^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']*)', MASTER_LOG_POS=(\d+);/m.exec(head.toString('latin1'));
    if (m && m[1] === binlog.file && Number(m[2]) > binlog.position)
      throw new BinlogMoved(`the dump of "${database}" starts at ${m[1]}:${m[2]}, after the binary-log position where its rows were counted (${binlog.file}:${binlog.position})`);
    if (!m || m[1] !== binlog.file || Number(m[2]) !== binlog.position)
      throw new BackupFailure('source', `the dump of "${database}" does not start at the binary-log position where its rows were counted (${binlog.file}:${binlog.position}, dump: ${m ? `${m[1]}:${m[2]}` : 'none'})`, 'run again; if it happens again, report it with this message; the previous snapshot is intact');
  }
  written(rel, hashing.sha1());
  return { bytes: hashing.bytes, counts, binlog };
}

export const mariadbEngine: Engine = {
  async dump(job) {
    const repo = job.repository;
    const conn = await connect(repo, job.env);
    const bin = programs(repo, conn.env);
    const sessions: MariadbSession[] = [];
    const open = () => {
      try {
        const session = MariadbSession.open(bin('mariadb'), conn.args, conn.env, job.signal);
        sessions.push(session);
        return session;
      } catch (e) {
        if (notInstalled(e)) throw new BackupFailure('source', `the MariaDB client is not installed (${messageOf(e)})`, 'install the MariaDB client programs (apt-get install mariadb-client), or set bindir for this repository; the previous snapshot is intact');
        throw e;
      }
    };
    try {
      const count = open();
      const [[version = '', logBin = '0', format = ''] = []] = await ask(repo, undefined, count, 'SELECT VERSION(), @@log_bin, @@binlog_format;');
      const [number, minor] = [Number(version.split('.')[0]), Number(version.split('.')[1])];
      if (!/MariaDB/i.test(version) || number < 10 || (number === 10 && minor < 4))
        throw new BackupFailure('source', `the server at ${serverLabel(repo)} is ${version}: the mariadb engine needs MariaDB 10.4 or later (BACKUP STAGE, consistent binary-log snapshots)`, 'back up this server with its own dump tool into a folder of kind "files", or upgrade it; the previous snapshot is intact');
      // Dumps without binary-log coordinates cannot be rolled forward: not the backup that was asked for.
      if (repo.pitr && logBin !== '1') throw binlogOff(repo);
      // A server-wide max_statement_time must not cut the counting short (mariadb-dump lifts it
      // too); the counts need REPEATABLE READ whatever the server's default; a pause waits at
      // most a minute for the backup lock.
      await ask(repo, undefined, count, 'SET SESSION max_statement_time = 0;\nSET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;');
      const lock = open();
      await ask(repo, undefined, lock, 'SET SESSION lock_wait_timeout = 60;');
      const s: Sessions = { repo, conn, bin, signal: job.signal, count, lock, logBin: logBin === '1' };
      const warnings = await missingGrants(repo, count);
      await mkdir(join(job.dataDir, 'mariadb'), { recursive: true });
      const databases: DatabaseDump[] = [];
      const counts: TableCounts = new Map();
      for (const [i, database] of repo.databases!.entries()) {
        const rel = dumpName('mariadb', '.sql.gz', database, i);
        let out: Awaited<ReturnType<typeof dumpOne>>;
        for (let attempt = 1; ; attempt++) {
          try {
            out = await dumpOne(s, database, rel, job.dataDir, job.written);
            break;
          } catch (e) {
            if (!(e instanceof BinlogMoved) || attempt === 3) throw e;
            await rm(join(job.dataDir, rel), { force: true });
          }
        }
        counts.set(rel, out.counts);
        databases.push({ name: database, file: rel, format: 'mariadb-dump | gzip', bytes: out.bytes, tables: out.counts.size, rows: sum(out.counts), ...(out.binlog ? { binlog: out.binlog } : {}) });
      }
      let pitr: PitrInfo | undefined;
      if (repo.pitr) {
        if (format !== 'ROW')
          warnings.push({ code: 'binlog-format', message: `the server at ${serverLabel(repo)} logs with binlog_format=${format}: a point-in-time restore replays each database's changes on their own, which is exact only for row events; set binlog_format = ROW in the server's configuration` });
        // After the dumps: the binary log that holds their coordinates is closed and archived
        // now, in a second after the last dump began (mariadb-pitr.ts: the window's start).
        const last = Math.max(...databases.map((d) => Date.parse(d.binlog!.time!)));
        const [[now = ''] = []] = await ask(repo, undefined, count, 'SELECT UTC_TIMESTAMP(3);');
        const wait = Math.ceil(last / 1000) * 1000 - Date.parse(`${now.replace(' ', 'T')}Z`);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait + 10));
        await archiveBinlogs(repo, job.store, conn, bin, job.signal);
        const archive = await readBinlogArchive(job.store, bin, conn.env, job.signal, { id: job.id, databases });
        if (archive.gaps.length)
          warnings.push({ code: 'pitr-archive-gap', message: gapMessage(archive.gaps) });
        pitr = { archive: archiveRecord(job.store, 'binlog', archive) };
      }
      return { info: { engine: 'mariadb', version: version.split('-')[0]!, server: serverLabel(repo), databases, ...(pitr ? { pitr } : {}) }, counts, warnings };
    } finally {
      for (const session of sessions) await session.close();
      await conn.cleanup();
    }
  },

  async testRestore(job) {
    const started = performance.now();
    const bin = programs(job.repository, job.env);
    const instance = await MariadbInstance.start(bin, job.env, job.signal);
    let session: MariadbSession | undefined;
    try {
      session = MariadbSession.open(bin('mariadb'), instance.client, job.env, job.signal);
      const databases: RestoreCheck['databases'] = [];
      let failed = false;
      for (const [i, d] of job.dump.info.databases.entries()) {
        // The dump has no CREATE DATABASE or USE, so it loads under any name: its own, but
        // for names the fresh instance already uses.
        const name = ['mysql', 'sys', 'performance_schema', 'information_schema'].includes(d.name.toLowerCase()) ? `restore_check_${i + 1}` : d.name;
        await session.query(`CREATE DATABASE ${ident(name)};`);
        const loaded = await load(bin, instance, name, join(job.dataDir, d.file), job.env, job.signal);
        if (loaded.error) {
          failed = true;
          databases.push({ name: d.name, tables: 0, rows: 0, checks: [loaded.error], mismatches: [] });
          continue;
        }
        await session.query(`USE ${ident(name)};`);
        const tables = await session.query(listTables(true));
        const checked: string[] = [];
        for (const [table] of tables) {
          for (const [, , type, text] of await session.query(`CHECK TABLE ${ident(table!)};`))
            if (type === 'error' || type === 'warning' || (type === 'status' && text !== 'OK')) checked.push(`${table}: ${text}`);
        }
        const rows = await countRows((sql) => session!.query(sql), tables.map(([t]) => t!));
        const expected = job.dump.counts.get(d.file) ?? new Map<string, number>();
        const loose = new Set(tables.filter(([, engine]) => !TRANSACTIONAL.has(engine ?? '')).map(([t]) => t!));
        const only = (m: Map<string, number>, nonTransactional: boolean) => new Map([...m].filter(([t]) => loose.has(t) === nonTransactional));
        const mismatches = compareCounts(only(expected, false), only(rows, false));
        const outside = compareCounts(only(expected, true), only(rows, true));
        const complete = loaded.complete ? 'ok' : 'it does not end with mariadb-dump\'s "-- Dump completed" line (truncated?)';
        if (mismatches.length || checked.length || !loaded.complete) failed = true;
        databases.push({
          name: d.name,
          tables: rows.size,
          rows: sum(rows),
          checks: [
            'mariadb: ok',
            `dump complete: ${complete}`,
            `CHECK TABLE: ${checked.length ? checked.slice(0, 3).join('; ') : 'ok'}`,
            `row counts: ${mismatches.length ? 'differ' : 'match'}`,
            ...(outside.length ? [`non-transactional tables, read outside the dump's snapshot (not an error): ${outside.slice(0, 3).join('; ')}`] : []),
          ],
          mismatches: mismatches.slice(0, 20),
        });
      }
      return { result: failed ? 'failed' : 'ok', instance: `MariaDB ${instance.version} throwaway instance (mariadb-install-db, private socket)`, databases, seconds: Math.round(performance.now() - started) / 1000 };
    } catch (e) {
      if (e instanceof BackupFailure || job.signal.aborted) throw e;
      const stderr = (e as { stderr?: string }).stderr ?? messageOf(e);
      throw new BackupFailure('verify', `the test restore failed in the throwaway MariaDB instance: ${lastLines(stderr, 2)}`, 'read the detail, then run again; or set verify: { restore: false } for this repository', { detail: stderr.slice(-2000) });
    } finally {
      await session?.close();
      await instance.stop();
    }
  },
};

/**
 * Feeds a stored dump through gunzip into the throwaway server. `mariadb` stops at the
 * first failing statement; --sandbox refuses the client's shell and file commands, which a
 * damaged or hostile dump could hold.
 */
export async function load(bin: (name: string) => string, instance: MariadbInstance, database: string, file: string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<{ error?: string; complete: boolean }> {
  const client = sessionTool(bin('mariadb'), [...instance.client, '--batch', '--sandbox', '--max-allowed-packet=1G', '--default-character-set=utf8mb4', `--database=${database}`], { env, signal });
  client.child.stdout!.resume();
  let tail = Buffer.alloc(0);
  const keepTail = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      tail = Buffer.concat([tail, chunk]).subarray(-256);
      cb(null, chunk);
    },
  });
  const fed = await pipeline(createReadStream(file), createGunzip(), keepTail, client.child.stdin!).then(
    () => undefined,
    (e: unknown) => e as NodeJS.ErrnoException,
  );
  if (fed && String(fed.code).startsWith('Z_')) {
    client.child.kill('SIGKILL');
    await client.done;
    return { error: `gunzip: failed (${fed.message})`, complete: false };
  }
  const result = await client.done;
  // On an error the client echoes the failing statement (a whole extended INSERT) before the ERROR line.
  const why = result.stderr.split('\n').findLast((line) => line.startsWith('ERROR')) ?? (lastLines(result.stderr, 2) || `exit code ${result.code}`);
  if (result.code !== 0) return { error: `mariadb: failed (${why})`, complete: false };
  if (fed) return { error: `mariadb: failed (${fed.message})`, complete: false };
  return { complete: /\n-- Dump completed[^\n]*\n?$/.test(tail.toString('latin1')) };
}

/** How an instance's failures read: the test restore's name `verify: { restore: false }`, a point-in-time restore's do not. */
export interface InstanceErrors {
  fail(message: string, hint: string, detail?: string): Error;
  /** Appended to each hint: the way out. */
  otherwise: string;
}

const TEST_RESTORE: InstanceErrors = {
  fail: (message, hint, detail) => new BackupFailure('verify', message, hint, detail ? { detail } : {}),
  otherwise: '; or set verify: { restore: false } for this repository',
};

/**
 * A private MariaDB server, listening on a Unix socket in a temporary folder only (no TCP
 * port). As root it runs as the `mysql` user, so that what a dump holds runs with that
 * user's rights. Two uses: the throwaway instance of the test restore (`start`: its data
 * folder is made by mariadb-install-db inside the temporary folder and killed with it),
 * and the new instance of a point-in-time restore (`open`: a data folder that is kept,
 * made by mariadb-install-db or an existing one, shut down cleanly).
 */
export class MariadbInstance {
  private constructor(
    /** The private folder: socket, pid file, error log, temporary files. */
    readonly dir: string,
    readonly dataDir: string,
    readonly version: string,
    private readonly server: ReturnType<typeof streamTool>,
  ) {}

  /** The client's arguments for the instance's private socket, as its root user (no password). */
  get client(): string[] {
    return ['--no-defaults', '--protocol=SOCKET', `--socket=${join(this.dir, 's')}`, '--user=root'];
  }

  /** A throwaway instance in a temporary folder, with no durability: removed when stopped. */
  static start(bin: (name: string) => string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<MariadbInstance> {
    return MariadbInstance.launch(bin, env, signal, { install: 'throwaway', errors: TEST_RESTORE });
  }

  /**
   * A server on the data folder `dataDir`, first made by mariadb-install-db when `install`
   * (root then logs in through unix_socket, as on a packaged server). It runs with
   * --skip-grant-tables, so that a data folder whose accounts respaldo does not know can be
   * reached; only the agent can reach its socket, and it has no TCP port.
   */
  static open(bin: (name: string) => string, env: NodeJS.ProcessEnv, signal: AbortSignal, dataDir: string, install: boolean, errors: InstanceErrors): Promise<MariadbInstance> {
    return MariadbInstance.launch(bin, env, signal, { dataDir, install: install ? 'socket' : false, errors });
  }

  private static async launch(
    bin: (name: string) => string,
    env: NodeJS.ProcessEnv,
    signal: AbortSignal,
    opts: { dataDir?: string; install: 'throwaway' | 'socket' | false; errors: InstanceErrors },
  ): Promise<MariadbInstance> {
    const { errors } = opts;
    // A socket path must fit in 108 bytes: a short folder under /tmp when TMPDIR is long.
    const base = tmpdir().length <= 60 ? tmpdir() : '/tmp';
    const dir = await mkdtemp(join(base, 'respaldo-my-'));
    const dataDir = opts.dataDir ?? join(dir, 'data');
    const throwaway = opts.install === 'throwaway';
    const what = throwaway ? 'the throwaway MariaDB instance for the test restore' : `the MariaDB instance on ${dataDir}`;
    try {
      const as = await runAs(dir, errors);
      if (opts.dataDir && process.getuid?.() === 0) {
        const owned = await runTool('chown', ['-R', 'mysql:mysql', '--', dataDir]);
        if (owned.code !== 0) throw errors.fail(`cannot give ${dataDir} to the mysql user: ${lastLines(owned.stderr, 2)}`, `check the folder${errors.otherwise}`);
        const reach = await runTool(as.program, [...as.prefix, 'test', '-w', dataDir]);
        if (reach.code !== 0)
          throw errors.fail(`the mysql user cannot reach ${dataDir}, where the new MariaDB server keeps its data`, `pick a folder whose parent folders the mysql user may pass through (chmod o+x on each), e.g. under /var/lib or /var/tmp${errors.otherwise}`);
      }
      if (opts.install) {
        const auth = throwaway ? ['--auth-root-authentication-method=normal'] : ['--auth-root-authentication-method=socket', `--auth-root-socket-user=${process.getuid?.() === 0 ? 'root' : userInfo().username}`];
        const init = await runTool(as.program, [...as.prefix, bin('mariadb-install-db'), '--no-defaults', `--datadir=${dataDir}`, ...auth, '--skip-test-db', '--skip-name-resolve'], { env, signal }).catch((e: unknown) => {
          throw notInstalled(e) ? errors.fail(`cannot create ${what}: ${messageOf(e)}`, `install the MariaDB server programs (apt-get install mariadb-server: mariadb-install-db, mariadbd)${errors.otherwise}`) : e;
        });
        if (init.code !== 0)
          throw errors.fail(`cannot create ${what} (mariadb-install-db: ${lastLines(init.stderr, 2)})`, `check that mariadb-install-db and mariadbd are installed (apt-get install mariadb-server) and, as root, that the mysql user can reach them (bindir too), and that the folder has space${errors.otherwise}`);
      }
      const server = streamTool(
        as.program,
        [
          ...as.prefix,
          bin('mariadbd'),
          '--no-defaults',
          `--datadir=${dataDir}`,
          `--socket=${join(dir, 's')}`,
          '--skip-networking',
          `--pid-file=${join(dir, 'pid')}`,
          `--log-error=${join(dir, 'error.log')}`,
          `--tmpdir=${dir}`,
          ...(throwaway ? [] : ['--skip-grant-tables']),
          // Restored events must not run: they would change the rows being counted, or replayed.
          '--event-scheduler=OFF',
          // Fast, and safe enough: a throwaway is thrown away, a restored server is shut down cleanly before it is used.
          '--innodb-flush-log-at-trx-commit=0',
          '--innodb-doublewrite=0',
          '--character-set-server=utf8mb4',
          '--collation-server=utf8mb4_general_ci',
          // The largest row the source could hold.
          '--max-allowed-packet=1G',
        ],
        { env, signal },
      );
      server.child.stdout!.resume();
      let instance = new MariadbInstance(dir, dataDir, 'unknown', server);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const probe = await capture(bin('mariadb'), [...instance.client, '--batch', '--skip-column-names', '-e', 'SELECT VERSION()'], { env }).then(
          (out) => out.toString().trim(),
          () => undefined,
        );
        if (probe) {
          instance = new MariadbInstance(dir, dataDir, probe.split('-')[0]!, server);
          break;
        }
        const exited = await Promise.race([server.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
        if (exited) {
          const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => exited.stderr);
          throw errors.fail(`${what} did not start: ${lastLines(log.split('\n').filter((l) => /ERROR|error/.test(l)).join('\n') || log, 3)}`, `read the detail${errors.otherwise}`, log.slice(-2000));
        }
        if (Date.now() > deadline) {
          server.child.kill('SIGKILL');
          await server.done.catch(() => {});
          throw errors.fail(`${what} did not accept connections within 60 s`, `check the machine load and the temporary folder${errors.otherwise}`);
        }
      }
      return instance;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** A throwaway's data is thrown away, so it is killed rather than shut down: a clean shutdown would only write what is removed next. */
  async stop(): Promise<void> {
    this.server.child.kill('SIGKILL');
    await this.server.done.catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }

  /** A clean shutdown that keeps the data folder; the private folder goes. Rejects when the server did not shut down cleanly. */
  async shutdown(errors: InstanceErrors): Promise<void> {
    const result = await stopTool(this.server, 'SIGTERM', 600_000);
    const log = await readFile(join(this.dir, 'error.log'), 'utf8').catch(() => '');
    await rm(this.dir, { recursive: true, force: true });
    if (result?.code !== 0) throw errors.fail(`the MariaDB instance on ${this.dataDir} did not shut down cleanly (${result?.signal ?? `exit code ${result?.code}`}): ${lastLines(log, 3)}`, `start it once by hand to let InnoDB recover, and check it${errors.otherwise}`, log.slice(-2000));
  }
}

/**
 * How to run the server programs: directly, or as root through setpriv as the `mysql` user
 * (owning the folder). mariadbd could switch users itself (--user), but the switch would
 * clear the parent-death signal that ties it to the agent; setpriv sets it again after.
 */
async function runAs(dir: string, errors: InstanceErrors): Promise<{ program: string; prefix: string[] }> {
  if (process.getuid?.() !== 0) return { program: 'env', prefix: [] };
  let uid: number;
  let gid: number;
  try {
    uid = Number((await capture('id', ['-u', 'mysql'])).toString().trim());
    gid = Number((await capture('id', ['-g', 'mysql'])).toString().trim());
  } catch {
    throw errors.fail('a MariaDB instance needs a "mysql" user: respaldo does not run mariadbd as root', `create the user (apt-get install mariadb-server does)${errors.otherwise}`);
  }
  await chown(dir, uid, gid);
  await chmod(dir, 0o700);
  return { program: 'setpriv', prefix: [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', 'setpriv', '--pdeathsig', 'KILL', '--'] };
}
