/**
 * MariaDB point-in-time recovery, built like PostgreSQL's (postgresql-pitr.ts). Three parts:
 *
 * - the archive: `FLUSH BINARY LOGS` closes the binary log being written; every closed log
 *   (all that `SHOW BINARY LOGS` lists but the last) not yet archived is fetched with
 *   `mariadb-binlog --read-from-remote-server --raw` and stored in
 *   `<target>/<host>/<repository>/archive/binlog/` under its own name (archive.ts:
 *   temporary name, fsync, link; stored once). Every backup of the repository does it after
 *   its dumps, and `respaldo db archive-binlogs` does it alone, from cron every few minutes.
 *   Fetched through the server rather than read from its files: it works the same for a
 *   server on another machine, needs neither the path log_bin chose nor read access to the
 *   mysql user's files, and the server hands over each closed log whole. The user needs
 *   RELOAD (FLUSH), BINLOG MONITOR (SHOW BINARY LOGS; REPLICATION CLIENT before 10.5) and
 *   REPLICATION SLAVE (reading the logs).
 * - the starting points: each dump records the binary-log file and position of its
 *   snapshot and the server's clock at that moment (mariadb.ts).
 * - the restore: the dumps of the newest snapshot taken before the asked time are loaded
 *   into a new instance, then, for each database, the archived binary logs are replayed from
 *   that dump's own coordinates up to the time (`mariadb-binlog --database --start-position
 *   --stop-datetime | mariadb`), and the server is shut down cleanly.
 *
 * The recoverable window runs from the last dump of the oldest snapshot whose dumps'
 * binary logs are all in the unbroken run of archived logs that ends with the newest, to the
 * last event of the newest archived log. Event times are the server's, in whole seconds, so
 * the window starts at the second after that dump, and a backup waits for that second
 * before it closes the binary log, so that its own dumps open a window at once.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import type { DatabaseDump } from '../../schemas/database.js';
import { BackupFailure, Exit, messageOf, RespaldoError } from '../errors.js';
import { lastLines, runTool, sessionTool, streamTool } from '../exec.js';
import { processExists } from '../lock.js';
import type { RepositoryStore } from '../target.js';
import { archiveFile } from './archive.js';
import { accountOf, errorNumber, ident, load, MariadbInstance, MariadbSession, notInstalled, programs, serverLabel, type Connection, type InstanceErrors } from './mariadb.js';

/** A binary log's name: the log_bin base name and a sequence number of six digits or more. */
export const BINLOG_NAME_RE = /^([A-Za-z0-9_][A-Za-z0-9_.-]*)\.(\d{6,})$/;

/** The archive's binary-log folder of a repository. */
function binlogDir(store: RepositoryStore): string {
  return join(store.base, 'archive', 'binlog');
}

const SETTINGS = "log_bin = mariadb-bin, binlog_format = ROW (respaldo replays each database on its own, which is exact only for row events), server_id = 1, and expire_logs_days longer than the time between two archivings";

/** The backup of a `pitr` repository whose server keeps no binary log. */
export function binlogOff(repo: DatabaseRepositoryConfig): BackupFailure {
  return new BackupFailure(
    'source',
    `the server at ${serverLabel(repo)} writes no binary log (log_bin is OFF): its dumps cannot be rolled forward to a point in time, as "pitr: true" asks`,
    `turn binary logs on in the server's configuration ([mariadbd] in /etc/mysql/mariadb.conf.d/50-server.cnf): ${SETTINGS}; then restart the server (systemctl restart mariadb); or remove "pitr" from repository ${repo.name}; the previous snapshot is intact`,
  );
}

/** What the user must be granted to archive binary logs. */
function privileges(repo: DatabaseRepositoryConfig, what: string, stderr: string): BackupFailure {
  return new BackupFailure(
    'source',
    `the MariaDB user may not ${what} (${lastLines(stderr, 2)})`,
    `GRANT RELOAD, BINLOG MONITOR, REPLICATION SLAVE ON *.* TO ${accountOf(repo)} (before MariaDB 10.5: REPLICATION CLIENT instead of BINLOG MONITOR): point-in-time recovery flushes, lists and reads the binary logs; or remove "pitr" from repository ${repo.name}`,
    { detail: stderr.slice(-2000) },
  );
}

export const gapMessage = (gaps: string[]) =>
  `the binary-log archive is missing ${gaps.slice(0, 3).join(', ')}${gaps.length > 3 ? ', …' : ''}: purged from the server before they were archived (does cron run "respaldo db archive-binlogs"? see respaldo cron; keep expire_logs_days longer than the time between two archivings); no restore can cross the gap, the recoverable window starts after it`;

interface LogName {
  name: string;
  base: string;
  no: number;
  digits: number;
}

function parseName(name: string): LogName | undefined {
  const m = BINLOG_NAME_RE.exec(name);
  return m ? { name, base: m[1]!, no: Number(m[2]), digits: m[2]!.length } : undefined;
}

/**
 * Closes the binary log being written and stores every closed log that the archive does
 * not hold yet. A log already archived is left as it is, but its size must match the
 * server's: a different one under the same name means the server's logs were reset
 * (RESET MASTER) or another server archives here, and replaying either would be wrong.
 */
export async function archiveBinlogs(repo: DatabaseRepositoryConfig, store: RepositoryStore, conn: Connection, bin: (name: string) => string, signal: AbortSignal): Promise<{ archived: string[]; present: number }> {
  const server = serverLabel(repo);
  let session: MariadbSession;
  try {
    session = MariadbSession.open(bin('mariadb'), conn.args, conn.env, signal);
  } catch (e) {
    if (notInstalled(e)) throw new BackupFailure('source', `the MariaDB client is not installed (${messageOf(e)})`, 'install the MariaDB client programs (apt-get install mariadb-client), or set bindir for this repository');
    throw e;
  }
  let logs: string[][];
  try {
    const query = (sql: string, what: string) =>
      session.query(sql).catch((e: unknown) => {
        const stderr = (e as { stderr?: string }).stderr ?? messageOf(e);
        if (signal.aborted) throw e;
        if (errorNumber(stderr) === 1227) throw privileges(repo, what, stderr);
        if ([2002, 2003, 2005, 2006, 2013].includes(errorNumber(stderr) ?? 0) || errorNumber(stderr) === 1045)
          throw new BackupFailure('source', `cannot reach the MariaDB server at ${server} to archive its binary logs (${lastLines(stderr, 2)})`, 'check that the server is running and connection in the host config; the binary logs stay on the server until they are archived', { detail: stderr });
        throw new BackupFailure('source', `${what} failed on ${server}: ${lastLines(stderr, 2)}`, 'read the detail and run again', { detail: stderr });
      });
    const [[logBin = '0'] = []] = await query('SELECT @@log_bin;', 'read @@log_bin');
    if (logBin !== '1') throw binlogOff(repo);
    await query('FLUSH BINARY LOGS;', 'close the binary log (FLUSH BINARY LOGS)');
    logs = await query('SHOW BINARY LOGS;', 'list the binary logs (SHOW BINARY LOGS)');
  } finally {
    await session.close();
  }
  const closed = logs.slice(0, -1).map(([name = '', size = '']) => ({ name, size: Number(size) }));
  for (const { name } of closed)
    if (!parseName(name)) throw new BackupFailure('source', `the server at ${server} names a binary log "${name}", which respaldo does not take for one`, 'report this with the server\'s log_bin setting');

  const dir = binlogDir(store);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // What killed fetches left: their process is gone.
  for (const n of await readdir(dir)) {
    const pid = /^\.fetch-(\d+)-/.exec(n)?.[1];
    if (pid && !processExists(Number(pid))) await rm(join(dir, n), { recursive: true, force: true });
  }
  const reset = `the server's binary logs were reset (RESET MASTER, a new data folder) or another server archives into this repository; keep the old archive aside (mv ${dir} ${dir}.before-$(date +%Y%m%d)) and run again: a new archive starts, and a new window with the next backup`;
  // The log being written always has a higher number than every closed one: an archived log
  // numbered as high means the server's numbering started again.
  const active = parseName(logs.at(-1)?.[0] ?? '');
  const stored = (await readdir(dir)).map(parseName);
  const ahead = stored.find((l) => l && active && l.base === active.base && l.no >= active.no);
  if (ahead) throw new BackupFailure('source', `the archive holds binary log ${ahead.name}, but the server at ${server} is writing ${active!.name}, an earlier one`, reset);
  // Closed logs numbered before the oldest archived one were deleted by respaldo prune (no
  // kept snapshot needs them) while the server still keeps them: fetching them again would
  // undo the prune.
  const oldest = new Map<string, number>();
  for (const l of stored) if (l && l.no < (oldest.get(l.base) ?? Infinity)) oldest.set(l.base, l.no);
  const missing: string[] = [];
  let present = 0;
  for (const log of closed) {
    const archived = await stat(join(dir, log.name)).catch(() => undefined);
    const name = parseName(log.name)!;
    if (!archived && name.no < (oldest.get(name.base) ?? -1)) continue;
    if (!archived) missing.push(log.name);
    else if (archived.size !== log.size) throw new BackupFailure('source', `binary log ${log.name} on the server at ${server} (${log.size} bytes) is not the one archived under that name (${archived.size} bytes)`, reset);
    else present++;
  }
  if (!missing.length) return { archived: [], present };

  const fetch = await mkdtemp(join(dir, `.fetch-${process.pid}-`));
  try {
    // --raw writes each log whole under its own name, after the prefix given as --result-file.
    const result = await runTool(bin('mariadb-binlog'), [...conn.args, '--read-from-remote-server', '--raw', `--result-file=${fetch}/`, ...missing], { env: conn.env, signal }).catch((e: unknown) => {
      if (notInstalled(e)) throw new BackupFailure('source', `mariadb-binlog is not installed (${messageOf(e)})`, 'install the MariaDB client programs (apt-get install mariadb-client), or set bindir for this repository');
      throw e;
    });
    if (signal.aborted) throw new Error('interrupted while mariadb-binlog ran');
    if (result.code !== 0) {
      if (/Access denied|privilege/i.test(result.stderr)) throw privileges(repo, 'read the binary logs (mariadb-binlog --read-from-remote-server)', result.stderr);
      throw new BackupFailure('source', `mariadb-binlog could not fetch the binary logs ${missing.join(', ')} from ${server}: ${lastLines(result.stderr, 2)}`, 'read the detail and run again; the logs stay on the server until they are archived', { detail: result.stderr, ...(result.code === null ? {} : { exitCode: result.code }) });
    }
    const archived: string[] = [];
    for (const log of closed.filter((l) => missing.includes(l.name))) {
      const file = join(fetch, log.name);
      const size = (await stat(file).catch(() => undefined))?.size;
      if (size !== log.size) throw new BackupFailure('source', `mariadb-binlog fetched ${size ?? 'no'} bytes of binary log ${log.name}, which has ${log.size} on the server`, 'run again; if it happens again, report it with this message');
      const outcome = await archiveFile(dir, log.name, file, {
        conflictHint: `another run archived a different ${log.name} at the same moment: two servers may archive into this repository; check the repositories' connections`,
      });
      if (outcome === 'archived') archived.push(log.name);
      else present++;
    }
    return { archived, present };
  } finally {
    await rm(fetch, { recursive: true, force: true });
  }
}

/**
 * Watches mariadb-binlog's text output as it streams past, line by line (only each line's
 * beginning is kept: row images and statements can be long), for its event headers
 * ("#261124  2:54:59 server id 1  end_log_pos 772 CRC32 0x07a099ce 	Xid = 38") and the
 * COMMIT lines. Times are read in UTC: mariadb-binlog runs with TZ=UTC.
 */
class EventWatch extends Transform {
  private head = '';
  /** The newest event header's time. */
  last: Date | undefined;
  /** The commit time of the last transaction that changed something, and how many did. */
  committed: Date | undefined;
  transactions = 0;
  private tx: { time: Date; ddl: boolean; content: boolean } | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, data?: Buffer) => void): void {
    const text = chunk.toString('latin1');
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      if (this.head.length < 256) this.head += text.slice(start, Math.min(nl, start + 256 - this.head.length));
      this.line(this.head);
      this.head = '';
      start = nl + 1;
    }
    if (this.head.length < 256) this.head += text.slice(start, start + 256 - this.head.length);
    cb(null, chunk);
  }

  private line(line: string): void {
    if (line.startsWith('COMMIT')) return this.commit();
    const m = /^#(\d\d)(\d\d)(\d\d) +(\d\d?):(\d\d):(\d\d) +server id \d+ +end_log_pos \d+[^\t]*\t(\w+)(.*)$/.exec(line);
    if (!m) return;
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const time = new Date(Date.UTC(2000 + y, mo - 1, d, h, mi, s));
    const type = m[7]!;
    this.last = time;
    // A transaction's GTID event carries its commit time; a DDL statement commits by itself.
    if (type === 'GTID') this.tx = { time, ddl: /\bddl\b/.test(m[8]!), content: false };
    else if (this.tx && (type === 'Query' || /_rows/.test(type))) {
      this.tx.content = true;
      if (this.tx.ddl) this.commit();
    } else if (type === 'Xid') this.commit();
  }

  /** A transaction that printed rows or statements is replayed: with --database, others print only their frame. */
  private commit(): void {
    if (!this.tx?.content) return;
    this.committed = this.tx.time;
    this.transactions++;
    this.tx = undefined;
  }
}

/** The time of the last event in an archived binary log (its closing Rotate event, once it is closed). */
async function lastEvent(file: string, bin: (name: string) => string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<Date | undefined> {
  const watch = new EventWatch();
  watch.resume();
  // A damaged log ends mariadb-binlog with an error: the events up to it are what a replay can reach.
  await runTool(bin('mariadb-binlog'), ['--no-defaults', file], { env: { ...env, TZ: 'UTC' }, signal, onStdout: (c) => watch.write(c) });
  watch.end();
  return watch.last;
}

/** A snapshot whose dumps can start a replay: `from`, the second after its last dump began, is the earliest a restore from it reaches. */
export interface BinlogStart {
  id: string;
  from: Date;
  databases: (DatabaseDump & { binlog: NonNullable<DatabaseDump['binlog']> & { time: string } })[];
}

export interface BinlogArchive {
  files: number;
  bytes: number;
  first: string | null;
  last: string | null;
  /** Logs missing between the first and the last (at most 20 named). */
  gaps: string[];
  /** The unbroken run of archived logs that ends with the newest, oldest first, with their sizes. */
  run: { name: string; size: number }[];
  window: { from: Date; to: Date } | null;
  /** Snapshots whose dumps can start a restore, oldest first. */
  starts: BinlogStart[];
}

/** Reads the archive and the snapshots' dumps: what can be restored, and to when. */
export async function readBinlogArchive(store: RepositoryStore, bin: (name: string) => string, env: NodeJS.ProcessEnv, signal: AbortSignal, extra?: { id: string; databases: DatabaseDump[] }): Promise<BinlogArchive> {
  const dir = binlogDir(store);
  const logs: (LogName & { size: number; mtime: number })[] = [];
  for (const name of await readdir(dir).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)))) {
    const parsed = parseName(name);
    if (!parsed) continue;
    const s = await stat(join(dir, name));
    logs.push({ ...parsed, size: s.size, mtime: s.mtimeMs });
  }
  const bytes = logs.reduce((n, l) => n + l.size, 0);
  // The newest archived log's base name: a server whose log_bin changed starts a new line.
  const newest = logs.reduce<(typeof logs)[number] | undefined>((a, b) => (!a || b.mtime > a.mtime ? b : a), undefined);
  const line = logs.filter((l) => l.base === newest?.base).sort((a, b) => a.no - b.no);
  const gaps: string[] = [];
  for (let k = 1; k < line.length; k++)
    for (let no = line[k - 1]!.no + 1; no < line[k]!.no && gaps.length < 20; no++) gaps.push(`${line[k]!.base}.${String(no).padStart(line[k - 1]!.digits, '0')}`);
  let first = line.length - 1;
  while (first > 0 && line[first - 1]!.no === line[first]!.no - 1) first--;
  const run = line.slice(Math.max(first, 0)).map((l) => ({ name: l.name, size: l.size }));
  const summary = { files: logs.length, bytes, first: line[0]?.name ?? null, last: line.at(-1)?.name ?? null, gaps, run };
  if (!run.length) return { ...summary, window: null, starts: [] };
  const to = await lastEvent(join(dir, run.at(-1)!.name), bin, env, signal);

  const sizes = new Map(run.map((l) => [l.name, l.size]));
  const starts: BinlogStart[] = [];
  const candidates: { id: string; databases: DatabaseDump[] }[] = [];
  for (const id of await store.snapshots()) {
    // A snapshot whose summary cannot be read cannot start a restore either; `verify` reports it.
    const info = await store.readSummary(id).then(
      (r) => r.summary.database,
      () => undefined,
    );
    if (info?.engine === 'mariadb') candidates.push({ id, databases: info.databases });
  }
  if (extra) candidates.push(extra);
  for (const { id, databases } of candidates) {
    const ready = databases.every((d) => d.binlog?.time && (sizes.get(d.binlog.file) ?? -1) >= d.binlog.position);
    if (!databases.length || !ready) continue;
    // The second after the last dump began: a replay stops at whole seconds, and one that stopped
    // within the dump's own second could not leave out what committed in it before the dump.
    const from = new Date(Math.ceil(Math.max(...databases.map((d) => Date.parse(d.binlog!.time!))) / 1000) * 1000);
    if (to && from <= to) starts.push({ id, from, databases: databases as BinlogStart['databases'] });
  }
  const window = to && starts.length ? { from: starts[0]!.from, to } : null;
  return { ...summary, window, starts };
}


const RESTORE_ERRORS: InstanceErrors = {
  fail: (message, hint, detail) => new RespaldoError(message, { exitCode: Exit.nothing, hint: detail ? `${hint}\n${lastLines(detail, 8)}` : hint }),
  otherwise: '',
};

/** The databases a new instance already has: a dump of one of them cannot be restored over it. */
const SYSTEM = new Set(['mysql', 'sys', 'performance_schema', 'information_schema']);

/** Whether a data folder belongs to a running server: a pid file there naming a live process, or a process holding InnoDB's or Aria's lock in it (/proc/locks). */
export async function runningMariadb(dir: string): Promise<number | undefined> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.endsWith('.pid'))) {
    const pid = Number((await readFile(join(dir, name), 'utf8').catch(() => '')).trim());
    if (pid > 0 && processExists(pid)) return pid;
  }
  const locks = await readFile('/proc/locks', 'utf8').catch(() => '');
  for (const file of ['ibdata1', 'aria_log_control']) {
    const s = await stat(join(dir, file)).catch(() => undefined);
    if (!s) continue;
    const hex = (n: number) => n.toString(16).padStart(2, '0');
    const id = `${hex(Math.floor(s.dev / 256) & 0xfff)}:${hex(s.dev & 0xff)}:${s.ino}`;
    for (const line of locks.split('\n')) {
      const f = line.trim().split(/\s+/);
      const pid = Number(f[4]);
      if (f[5] === id && pid > 0) return pid;
    }
  }
  return undefined;
}

export interface MariadbRestore {
  version: string;
  /** Per database: the transactions replayed and the commit time of the last one. */
  databases: { name: string; transactions: number; reached: Date | undefined }[];
  /** The last transaction replayed, over all databases: the time the restored copy stands at. */
  reached: Date | undefined;
  /** mariadb-binlog's --stop-datetime (UTC): transactions committed before it are replayed. */
  stop: Date;
}

/**
 * Loads the dumps of `start` into the data folder `dataDir` and replays the archive up to
 * `at`. A new folder is made by mariadb-install-db; `existing` is a copy of a production
 * data folder, whose accounts and other databases stay and whose databases of this
 * repository are dropped and loaded anew. The server is shut down cleanly at the end.
 */
export async function restoreMariadb(
  repo: DatabaseRepositoryConfig,
  store: RepositoryStore,
  archive: BinlogArchive,
  start: BinlogStart,
  dataDir: string,
  existing: boolean,
  at: Date,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
): Promise<MariadbRestore> {
  for (const d of start.databases)
    if (SYSTEM.has(d.name.toLowerCase())) throw new RespaldoError(`the dump of "${d.name}" cannot be restored to a point in time: it is a system database of every MariaDB instance`, { exitCode: Exit.usage, hint: `load it by hand from ${store.linkDest(start.id)}/${d.file} if you must` });
  const bin = programs(repo, env);
  // Whole seconds, as the binary log's times are: a transaction stamped in the second of `at` may have committed after it.
  const stop = new Date(Math.floor(at.getTime() / 1000) * 1000);
  const instance = await MariadbInstance.open(bin, env, signal, dataDir, !existing, RESTORE_ERRORS);
  let session: MariadbSession | undefined;
  try {
    session = MariadbSession.open(bin('mariadb'), instance.client, env, signal);
    const ask = (sql: string) =>
      session!.query(sql).catch((e: unknown) => {
        throw new RespaldoError(`the new MariaDB instance refused ${sql}: ${lastLines((e as { stderr?: string }).stderr ?? messageOf(e), 2)}`, { exitCode: Exit.nothing, hint: `${dataDir} holds the partly restored copy; remove it before trying again` });
      });
    for (const d of start.databases) {
      if (existing) await ask(`DROP DATABASE IF EXISTS ${ident(d.name)};`);
      await ask(`CREATE DATABASE ${ident(d.name)};`);
      const loaded = await load(bin, instance, d.name, join(store.linkDest(start.id), d.file), env, signal);
      if (loaded.error || !loaded.complete)
        throw new RespaldoError(`the dump of "${d.name}" in snapshot ${start.id} did not load: ${loaded.error ?? 'it does not end with mariadb-dump\'s "-- Dump completed" line'}`, { exitCode: Exit.nothing, hint: `${dataDir} holds the partly restored copy; remove it, and restore to a time before snapshot ${start.id} (an older snapshot's dumps)` });
    }
    await session.close();
    session = undefined;
    const databases: MariadbRestore['databases'] = [];
    const names = archive.run.map((l) => l.name);
    for (const d of start.databases) {
      const files = names.slice(names.indexOf(d.binlog.file)).map((n) => join(binlogDir(store), n));
      databases.push({ name: d.name, ...(await replay(bin, instance, d.name, d.binlog.position, files, stop, env, signal, dataDir)) });
    }
    await instance.shutdown(RESTORE_ERRORS);
    const times = databases.map((d) => d.reached?.getTime() ?? 0).filter(Boolean);
    return { version: instance.version, databases, reached: times.length ? new Date(Math.max(...times)) : undefined, stop };
  } catch (e) {
    await session?.close();
    await instance.stop();
    throw e;
  }
}

/**
 * Replays one database's changes from its dump's coordinates up to `stop`: mariadb-binlog
 * keeps the events of that database only (row events by their table's database, statements
 * by their default database: hence binlog_format=ROW) and stops at the first event at or
 * after `stop`, ending an unfinished transaction with a ROLLBACK; `mariadb --binary-mode`
 * applies them and stops at the first error. Both ends of the pipe are checked.
 */
async function replay(
  bin: (name: string) => string,
  instance: MariadbInstance,
  database: string,
  position: number,
  files: string[],
  stop: Date,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
  dataDir: string,
): Promise<{ transactions: number; reached: Date | undefined }> {
  const reader = streamTool(bin('mariadb-binlog'), ['--no-defaults', `--database=${database}`, `--start-position=${position}`, `--stop-datetime=${stop.toISOString().slice(0, 19).replace('T', ' ')}`, '--', ...files], { env: { ...env, TZ: 'UTC' }, signal });
  const client = sessionTool(bin('mariadb'), [...instance.client, '--batch', '--binary-mode', '--sandbox', '--max-allowed-packet=1G'], { env, signal });
  client.child.stdout!.resume();
  const watch = new EventWatch();
  const fed = await pipeline(reader.child.stdout!, watch, client.child.stdin!).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  if (fed) reader.child.kill('SIGTERM');
  const [read, applied] = await Promise.all([reader.done, client.done]);
  const partly = `${dataDir} holds the partly restored copy; remove it before trying again`;
  if (read.code !== 0) throw new RespaldoError(`mariadb-binlog could not read the archived binary logs of "${database}": ${lastLines(read.stderr, 2) || `exit code ${read.code}`}`, { exitCode: Exit.nothing, hint: `check the archive (${files[0]} …) and the disk; ${partly}` });
  if (applied.code !== 0 || fed) {
    const why = applied.stderr.split('\n').findLast((l) => l.startsWith('ERROR')) ?? (lastLines(applied.stderr, 2) || fed?.message);
    throw new RespaldoError(`replaying the binary logs into "${database}" failed: ${why}`, { exitCode: Exit.nothing, hint: `a statement that names another database (binlog_format other than ROW?) or a damaged log can cause it; ${partly}` });
  }
  return { transactions: watch.transactions, reached: watch.committed };
}
