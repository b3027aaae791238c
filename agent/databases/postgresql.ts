/**
 * PostgreSQL: one `pg_dump -Fc` per database, taken in a snapshot exported by a psql
 * session that counts every table's rows in that same snapshot, so that the test restore
 * can compare exact counts even while the database is being written to. The test restore
 * loads each dump into a throwaway instance (initdb into a temporary folder, listening
 * only on a private Unix socket) — `pg_restore --list` alone would pass a truncated dump.
 *
 * Connection settings go to the tools through libpq's environment (PGHOST, PGPORT,
 * PGUSER, PGDATABASE) and a password through a temporary PGPASSFILE: never in argv, where
 * `ps` would show it, and never in a record.
 */
import { createWriteStream } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HashingStream } from '../hashing.js';
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import type { DatabaseDump, PitrInfo } from '../../schemas/database.js';
import { BackupFailure, messageOf } from '../errors.js';
import { capture, lastLines, runTool, stopTool, streamTool } from '../exec.js';
import { exists } from '../fsutil.js';
import { END, LineSession } from './session.js';
import { compareCounts, dumpName, readPassword, sum, type Engine, type TableCounts } from './engine.js';
import { archiveRecord } from './archive.js';
import { BASE_DIR, readArchive, takeBaseBackup, waitForSegment } from './postgresql-pitr.js';

/** Where the server was reached, as records say it: never a password, never a local path. */
export function serverLabel(repo: DatabaseRepositoryConfig): string {
  const c = repo.connection ?? {};
  const port = c.port ?? 5432;
  if (!c.host || c.host.startsWith('/')) return `local socket, port ${port}`;
  return `${c.host}:${port}`;
}

/** The environment that points libpq's tools at the server, and a cleanup for the password file. */
export async function connectionEnv(repo: DatabaseRepositoryConfig, env: NodeJS.ProcessEnv): Promise<{ env: NodeJS.ProcessEnv; cleanup: () => Promise<void> }> {
  const c = repo.connection ?? {};
  const out: NodeJS.ProcessEnv = { ...env, PGCONNECT_TIMEOUT: env.PGCONNECT_TIMEOUT ?? '10', PGAPPNAME: 'respaldo' };
  delete out.PGPASSWORD;
  if (c.host) out.PGHOST = c.host;
  if (c.port) out.PGPORT = String(c.port);
  if (c.user) out.PGUSER = c.user;
  if (!c['password-file']) return { env: out, cleanup: async () => {} };
  const password = await readPassword(repo, c['password-file']);
  const dir = await mkdtemp(join(tmpdir(), 'respaldo-pgpass-'));
  const file = join(dir, 'pgpass');
  await writeFile(file, `*:*:*:*:${password.replaceAll('\\', '\\\\').replaceAll(':', '\\:')}\n`, { mode: 0o600 });
  out.PGPASSFILE = file;
  return { env: out, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The folder of the PostgreSQL programs: the repository's `bindir`, Debian's for the server's major version, or PATH. */
export async function programs(repo: DatabaseRepositoryConfig, major?: number): Promise<(name: string) => string> {
  const candidates = [repo.bindir, major ? `/usr/lib/postgresql/${major}/bin` : undefined];
  for (const dir of candidates) {
    if (!dir) continue;
    if (await exists(join(dir, 'pg_dump'))) return (name) => join(dir, name);
  }
  return (name) => name;
}

/** Turns the tools' stderr into a failure a sysadmin can act on. */
export function failure(repo: DatabaseRepositoryConfig, database: string | undefined, what: string, stderr: string, exitCode?: number | null): BackupFailure {
  const server = serverLabel(repo);
  const tail = lastLines(stderr, 3);
  const extra = { detail: stderr.slice(-2000), ...(typeof exitCode === 'number' ? { exitCode } : {}) };
  if (/password authentication failed|no password supplied|authentication failed|peer authentication failed/i.test(stderr))
    return new BackupFailure('source', `PostgreSQL refused the login to ${server} (${tail})`, 'check the password in connection.password-file (or ~/.pgpass) and that pg_hba.conf lets this user in; the previous snapshot is intact', extra);
  if (/database ".*" does not exist/i.test(stderr))
    return new BackupFailure('source', `database "${database}" does not exist on ${server}`, `create it, or correct repositories[${repo.name}].databases in the host config; the previous snapshot is intact`, extra);
  if (/could not connect|connection refused|could not translate host name|timeout expired|No such file or directory|server closed the connection/i.test(stderr))
    return new BackupFailure('source', `cannot reach the PostgreSQL server at ${server} (${tail})`, 'check that the server is running and reachable (pg_isready), and connection.host and connection.port in the host config; the previous snapshot is intact', extra);
  if (/permission denied/i.test(stderr))
    return new BackupFailure('source', `the PostgreSQL user may not read everything in "${database}" (${tail})`, 'grant it the role pg_read_all_data (GRANT pg_read_all_data TO <user>), or connect as the database owner; the previous snapshot is intact', extra);
  return new BackupFailure('source', `${what} failed: ${tail || `exit code ${exitCode}`}`, 'read the detail, fix the cause and run again; the previous snapshot is intact', extra);
}

/** A psql session (-A -t: one row a line); on any error it stops (ON_ERROR_STOP) and the session fails. */
const PsqlSession = {
  open: (psql: string, env: NodeJS.ProcessEnv, signal: AbortSignal) =>
    new LineSession(psql, ['-X', '-q', '-A', '-t', '-w', '-v', 'ON_ERROR_STOP=1'], { env, signal }, (sql) => `${sql}\n\\echo ${END}\n`, '\\q\n'),
};

/** Every ordinary table's rows, each counted in the session's current snapshot. */
const COUNT_ROWS = `SELECT format('SELECT json_build_object(''t'', %L, ''n'', count(*)) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' ORDER BY 1
\\gexec`;

function parseCounts(lines: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of lines) {
    if (!line.trim()) continue;
    const { t, n } = JSON.parse(line) as { t: string; n: number };
    counts.set(t, n);
  }
  return counts;
}

/** Dumps one database in a snapshot shared with a counting session; returns the bytes written and the counts. */
async function dumpOne(repo: DatabaseRepositoryConfig, database: string, rel: string, dataDir: string, bin: (n: string) => string, env: NodeJS.ProcessEnv, signal: AbortSignal, written: (rel: string, sha1: string) => void): Promise<{ bytes: number; counts: Map<string, number>; version: string }> {
  const dbEnv = { ...env, PGDATABASE: database };
  const session = PsqlSession.open(bin('psql'), dbEnv, signal);
  try {
    let snapshot: string;
    let version: string;
    const psqlFailure = (e: unknown) => failure(repo, database, 'psql', (e as { stderr?: string }).stderr ?? messageOf(e), (e as { exitCode?: number }).exitCode);
    try {
      [version = ''] = await session.query(`SHOW server_version;`);
      await session.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;');
      [snapshot = ''] = await session.query('SELECT pg_export_snapshot();');
    } catch (e) {
      throw psqlFailure(e);
    }
    // The rows are counted in the exported snapshot while pg_dump dumps it: the two scans overlap.
    const counting = session.query(COUNT_ROWS).then(parseCounts, (e: unknown) => {
      throw psqlFailure(e);
    });
    counting.catch(() => {});
    const path = join(dataDir, rel);
    const { child, done } = streamTool(bin('pg_dump'), ['--format=custom', '--no-password', `--snapshot=${snapshot}`], { env: dbEnv, signal });
    const hashing = new HashingStream();
    const writing = pipeline(child.stdout!, hashing, createWriteStream(path, { flags: 'wx' }));
    const [result] = await Promise.all([done, writing.catch((e: unknown) => { child.kill('SIGTERM'); throw e; })]);
    if (result.code !== 0) throw failure(repo, database, 'pg_dump', result.stderr, result.code);
    written(rel, hashing.sha1());
    return { bytes: hashing.bytes, counts: await counting, version: version.split(' ')[0] ?? version };
  } finally {
    await session.query('COMMIT;').catch(() => {});
    await session.close();
  }
}

export const postgresqlEngine: Engine = {
  async dump(job) {
    const repo = job.repository;
    const { env, cleanup } = await connectionEnv(repo, job.env);
    try {
      await mkdir(join(job.dataDir, 'postgresql'), { recursive: true });
      // The server's major version picks the tools (pg_dump must not be older than the server).
      const first = repo.databases![0]!;
      const version = await capture((await programs(repo))('psql'), ['-X', '-A', '-t', '-w', '-c', 'SHOW server_version_num'], { env: { ...env, PGDATABASE: first }, signal: job.signal }).catch((e: unknown) => {
        const result = (e as { result?: { stderr: string; code: number | null } }).result;
        throw failure(repo, first, 'psql', result?.stderr ?? messageOf(e), result?.code);
      });
      const bin = await programs(repo, Math.floor(Number(version.toString().trim()) / 10000) || undefined);
      const databases: DatabaseDump[] = [];
      const counts: TableCounts = new Map();
      let serverVersion = '';
      for (const [i, database] of repo.databases!.entries()) {
        const rel = dumpName('postgresql', '.dump', database, i);
        const out = await dumpOne(repo, database, rel, job.dataDir, bin, env, job.signal, job.written);
        serverVersion = out.version;
        counts.set(rel, out.counts);
        databases.push({ name: database, file: rel, format: 'pg_dump -Fc', bytes: out.bytes, tables: out.counts.size, rows: sum(out.counts) });
      }
      const warnings: { code: string; message: string }[] = [];
      let pitr: PitrInfo | undefined;
      if (repo.pitr) {
        const base = await takeBaseBackup(repo, job.dataDir, bin, env, job.signal, job.written);
        // Recovery can stop only at a commit: an empty transaction after the base backup, in a
        // segment switched to the archive at once (where the user may switch WAL), makes the
        // backup's own end restorable without waiting for the next write and archive_timeout.
        const marked = await capture(bin('psql'), ['-X', '-A', '-t', '-w', '-c', 'SELECT txid_current()', '-c', 'SELECT pg_walfile_name(pg_switch_wal())'], { env: { ...env, PGDATABASE: first }, signal: job.signal }).then(
          (out) => out.toString().trim().split('\n').at(-1)!,
          () => undefined,
        );
        const awaited = marked && /^[0-9A-F]{24}$/.test(marked) ? marked : base.endSegment;
        if (!(await waitForSegment(job.store, awaited, 60, job.signal)))
          warnings.push({
            code: 'pitr-archive-lagging',
            message: `WAL segment ${awaited}, which ends the base backup, was not archived within 60 s: check archive_command (respaldo db setup-pitr --repo ${repo.name}) and pg_stat_archiver; until it is archived, no restore can start from this backup`,
          });
        const archive = await readArchive(job.store, bin, job.signal, { id: job.id, meta: base.meta });
        if (archive.gaps.length)
          warnings.push({ code: 'pitr-archive-gap', message: `the WAL archive is missing segment(s) ${archive.gaps.slice(0, 3).join(', ')}${archive.gaps.length > 3 ? ', …' : ''}: no restore can cross them; the recoverable window starts after the gap` });
        pitr = {
          base: { file: BASE_DIR, format: 'pg_basebackup -Fp -X stream', bytes: base.bytes, start_lsn: base.meta.start_lsn, timeline: base.meta.timeline, started: base.meta.started, finished: base.meta.finished, checks: base.checks },
          archive: archiveRecord(job.store, 'wal', archive),
        };
      }
      return { info: { engine: 'postgresql', version: serverVersion, server: serverLabel(repo), databases, ...(pitr ? { pitr } : {}) }, counts, warnings };
    } finally {
      await cleanup();
    }
  },

  async testRestore(job) {
    const started = performance.now();
    const major = Number(job.dump.info.version.split('.')[0]) || undefined;
    const bin = await programs(job.repository, major);
    const instance = await PgInstance.start(bin, job.env, job.signal);
    try {
      const databases = [];
      let failed = false;
      for (const [i, d] of job.dump.info.databases.entries()) {
        const name = `restore_check_${i + 1}`;
        const env = { ...instance.env, PGDATABASE: 'postgres' };
        await capture(bin('psql'), ['-X', '-q', '-w', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${name} TEMPLATE template0`], { env, signal: job.signal });
        const restored = await runTool(bin('pg_restore'), ['--no-owner', '--no-privileges', '--exit-on-error', '--no-password', `--dbname=${name}`, join(job.dataDir, d.file)], { env: instance.env, signal: job.signal });
        if (restored.code !== 0) {
          failed = true;
          databases.push({ name: d.name, tables: 0, rows: 0, checks: [`pg_restore: failed (${lastLines(restored.stderr, 2)})`], mismatches: [] });
          continue;
        }
        const session = PsqlSession.open(bin('psql'), { ...instance.env, PGDATABASE: name }, job.signal);
        let rows: Map<string, number>;
        try {
          rows = parseCounts(await session.query(COUNT_ROWS));
        } finally {
          await session.close();
        }
        const mismatches = compareCounts(job.dump.counts.get(d.file), rows);
        if (mismatches.length) failed = true;
        databases.push({ name: d.name, tables: rows.size, rows: sum(rows), checks: ['pg_restore: ok', `row counts: ${mismatches.length ? 'differ' : 'match'}`], mismatches: mismatches.slice(0, 20) });
      }
      return { result: failed ? 'failed' : 'ok', instance: `PostgreSQL ${instance.version} throwaway instance (initdb, private socket)`, databases, seconds: Math.round(performance.now() - started) / 1000 };
    } finally {
      await instance.stop();
    }
  },
};

/**
 * A throwaway PostgreSQL server: initdb into a temporary folder, listening on a Unix socket
 * in that folder only (no TCP port), no fsync; removed when stopped. initdb and postgres
 * refuse to run as root, so as root they run as the `postgres` user.
 */
export class PgInstance {
  private constructor(
    readonly dir: string,
    readonly version: string,
    private readonly server: ReturnType<typeof streamTool>,
    private readonly base: NodeJS.ProcessEnv,
  ) {}

  /** libpq's environment for the instance's private socket, as its superuser. */
  get env(): NodeJS.ProcessEnv {
    return { ...this.base, PGHOST: this.dir, PGPORT: '5432', PGUSER: 'postgres', PGPASSFILE: '/dev/null', PGCONNECT_TIMEOUT: '10' };
  }

  static async start(bin: (n: string) => string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<PgInstance> {
    const dir = await mkdtemp(join(tmpdir(), 'respaldo-pg-'));
    const as = await runAs(dir);
    try {
      const init = await runTool(as.program, [...as.prefix, bin('initdb'), '-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'], { env, signal });
      if (init.code !== 0) throw new BackupFailure('verify', `cannot create the throwaway PostgreSQL instance for the test restore (initdb: ${lastLines(init.stderr, 2)})`, 'check that the PostgreSQL server programs (initdb, postgres) are installed and that the temporary folder has space; or set verify: { restore: false } for this repository');
      const version = /(\d+(?:\.\d+)+)/.exec((await capture(bin('postgres'), ['--version'], { env })).toString())?.[1] ?? 'unknown';
      const server = streamTool(as.program, [...as.prefix, bin('postgres'), '-D', join(dir, 'data'), '-k', dir, '-p', '5432', '-c', 'listen_addresses=', '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'synchronous_commit=off', '-c', 'max_wal_size=4GB', '-c', 'archive_mode=off'], { env, signal });
      server.child.stdout!.resume();
      const instance = new PgInstance(dir, version, server, env);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const ready = await runTool(bin('pg_isready'), ['-q'], { env: instance.env });
        if (ready.code === 0) break;
        const exited = await Promise.race([server.done.then((r) => r), new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
        if (exited) throw new BackupFailure('verify', `the throwaway PostgreSQL instance did not start: ${lastLines(exited.stderr, 3)}`, 'read the detail; or set verify: { restore: false } for this repository');
        if (Date.now() > deadline) {
          await instance.stop();
          throw new BackupFailure('verify', 'the throwaway PostgreSQL instance did not accept connections within 60 s', 'check the machine load and the temporary folder; or set verify: { restore: false } for this repository');
        }
      }
      return instance;
    } catch (e) {
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  async stop(): Promise<void> {
    await stopTool(this.server, 'SIGINT', 10_000);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** The `postgres` user's uid and gid: initdb and postgres refuse to run as root. */
export async function postgresUser(why: string): Promise<{ uid: number; gid: number }> {
  try {
    const uid = Number((await capture('id', ['-u', 'postgres'])).toString().trim());
    const gid = Number((await capture('id', ['-g', 'postgres'])).toString().trim());
    return { uid, gid };
  } catch {
    throw new BackupFailure('verify', `${why} needs a "postgres" user: initdb and postgres refuse to run as root`, 'create the user (apt-get install postgresql does), or set verify: { restore: false } for this repository');
  }
}

/** setpriv's arguments that run a program as `user`, killed if the agent dies. */
export function asUser(user: { uid: number; gid: number }): { program: string; prefix: string[] } {
  return { program: 'setpriv', prefix: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', 'setpriv', '--pdeathsig', 'KILL', '--'] };
}

/** How to run the server programs: directly, or as root through setpriv as the `postgres` user (owning the folder). */
export async function runAs(dir: string): Promise<{ program: string; prefix: string[] }> {
  if (process.getuid?.() !== 0) return { program: 'env', prefix: [] };
  const user = await postgresUser('the test restore');
  await chown(dir, user.uid, user.gid);
  await chmod(dir, 0o700);
  return asUser(user);
}
