/**
 * PostgreSQL point-in-time recovery. Three parts:
 *
 * - the archive: the server's `archive_command` calls `respaldo wal-push`, which stores each
 *   WAL file in `<target>/<host>/<repository>/archive/wal/` under a temporary name, fsyncs
 *   it and links it into place (never replacing a file), so a push that is killed or
 *   repeated leaves the archive consistent;
 * - the base backup: each nightly snapshot of a `pitr` repository holds a `pg_basebackup`
 *   (plain format, with the WAL it needs, checked by `pg_verifybackup`) beside the dumps;
 * - the restore: the newest base backup finished before the asked time is copied to a new
 *   folder, checked against the snapshot's manifest, and started with a `restore_command`
 *   that reads the archive and a `recovery_target_time`; the clone has `archive_mode=off`,
 *   so it never writes into the real archive.
 *
 * The recoverable window runs from the end of the oldest base backup whose WAL is all in
 * the archive to the last commit in the archive (found with pg_waldump): PostgreSQL refuses
 * a target time past the last commit it can replay, so respaldo refuses it first, saying why.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdtemp, open, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import { BackupFailure, Exit, RespaldoError } from '../errors.js';
import { capture, lastLines, runTool, stopTool, streamTool } from '../exec.js';
import { exists } from '../fsutil.js';
import type { RepositoryStore } from '../target.js';
import { archiveFile } from './archive.js';
import { asUser, failure, postgresUser } from './postgresql.js';

/** What PostgreSQL archives: WAL segments, partial segments, timeline history and backup history files. */
export const WAL_FILE_RE = /^(?:[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$/;
const SEGMENT_RE = /^[0-9A-F]{24}$/;

/** The archive's WAL folder of a repository. */
export function walDir(store: RepositoryStore): string {
  return join(store.base, 'archive', 'wal');
}

/** Archived WAL files are gzip-compressed (level 1: fast enough to keep up with the server) as `<name>.gz`. */
export const GZ = '.gz';

/**
 * Stores one WAL file in the archive, compressed (archive.ts: temporary name, fsync, link).
 * The same file pushed again (PostgreSQL retries after a crash between the copy and its
 * bookkeeping) compresses to the same bytes and is accepted; a different file under a
 * name already archived is refused.
 */
export async function walPush(dir: string, source: string, name: string): Promise<'archived' | 'present'> {
  if (!WAL_FILE_RE.test(name)) throw new RespaldoError(`"${name}" is not the name of a WAL file`, { exitCode: Exit.usage, hint: 'archive_command must pass %p and %f: respaldo wal-push --repo NAME %p %f' });
  if (!(await exists(dir)))
    throw new RespaldoError(`the WAL archive ${dir} does not exist`, {
      exitCode: Exit.nothing,
      hint: 'is the backup disk mounted? respaldo db setup-pitr --apply creates the archive; PostgreSQL keeps the WAL and retries until this succeeds',
    });
  // One temporary name per file, overwritten: what a push killed half-way left is replaced
  // by the retry, with no listing of the archive on every push (PostgreSQL's archiver pushes
  // one file at a time).
  const tmp = join(dir, `.${name}.gztmp`);
  try {
    await pipeline(createReadStream(source), createGzip({ level: 1 }), createWriteStream(tmp, { mode: 0o600 }));
    return await archiveFile(dir, `${name}${GZ}`, tmp, {
      conflictHint: 'two servers may be archiving into the same repository, or the server was restored without a new timeline; check archive_command on every server; the archived file was not replaced',
    });
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** The size of a gzip file's contents, from its trailer (exact below 4 GiB, as WAL segments are). */
async function gzipSize(path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const tail = Buffer.alloc(4);
    await handle.read(tail, 0, 4, size - 4);
    return tail.readUInt32LE(0);
  } finally {
    await handle.close();
  }
}

/** What a snapshot's base backup is, as written beside it in `postgresql/base.json`. */
export interface BaseMeta {
  start_lsn: string;
  /** The WAL segment in which the backup started: the archive must hold it and every one after. */
  start_segment: string;
  timeline: number;
  started: string;
  /** When pg_basebackup had finished: the earliest time a restore from this backup can reach. */
  finished: string;
}

export const BASE_DIR = 'postgresql/base';
export const BASE_META = 'postgresql/base.json';

/**
 * Takes a base backup into the partial snapshot (`postgresql/base/`, plain format with the
 * WAL streamed alongside) and checks it with pg_verifybackup.
 */
export async function takeBaseBackup(
  repo: DatabaseRepositoryConfig,
  dataDir: string,
  bin: (n: string) => string,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
  written: (rel: string, sha1: string) => void,
): Promise<{ meta: BaseMeta; bytes: number; checks: string[]; endSegment: string }> {
  const dir = join(dataDir, BASE_DIR);
  const started = new Date();
  const result = await runTool(bin('pg_basebackup'), ['--pgdata', dir, '--format=plain', '--wal-method=stream', '--checkpoint=fast', '--no-password', '--label=respaldo'], { env, signal });
  if (result.code !== 0) {
    if (/replication/i.test(result.stderr))
      throw new BackupFailure('source', `PostgreSQL refused the replication connection that pg_basebackup needs (${lastLines(result.stderr, 2)})`, 'give the user the REPLICATION attribute (ALTER ROLE <user> REPLICATION) and a "replication" line in pg_hba.conf (local replication <user> peer), then reload; or remove "pitr" from the repository; the previous snapshot is intact', {
        detail: result.stderr,
        ...(result.code === null ? {} : { exitCode: result.code }),
      });
    throw failure(repo, undefined, 'pg_basebackup', result.stderr, result.code);
  }
  const finished = new Date();
  const label = await readFile(join(dir, 'backup_label'), 'utf8');
  const lsn = /^START WAL LOCATION: (\S+) \(file ([0-9A-F]{24})\)$/m.exec(label);
  const timeline = /^START TIMELINE: (\d+)$/m.exec(label);
  if (!lsn || !timeline) throw new BackupFailure('source', `pg_basebackup wrote a backup_label that respaldo cannot read: ${lastLines(label, 3)}`, 'report this with the PostgreSQL version; the previous snapshot is intact');
  const verify = await runTool(bin('pg_verifybackup'), ['--quiet', dir], { env, signal });
  if (verify.code !== 0) throw new BackupFailure('verify', `pg_verifybackup rejected the base backup: ${lastLines(verify.stderr, 3)}`, 'the base backup is not usable; check the target disk and run again; the previous snapshot is intact', { detail: verify.stderr });
  const manifest = JSON.parse(await readFile(join(dir, 'backup_manifest'), 'utf8')) as { Files: { Size: number }[]; 'WAL-Ranges': { Timeline: number; 'End-LSN': string }[] };
  // The segment that holds the backup's end: once it is archived, this backup can start a restore.
  const wal = (await readdir(join(dir, 'pg_wal'))).filter((n) => SEGMENT_RE.test(n));
  const size = wal.length ? (await stat(join(dir, 'pg_wal', wal[0]!))).size : 16 << 20;
  const range = manifest['WAL-Ranges'].at(-1)!;
  const [hi = '0', lo = '0'] = range['End-LSN'].split('/');
  const endSegment = segmentName(range.Timeline, ((BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`) - 1n) / BigInt(size), size);
  const meta: BaseMeta = { start_lsn: lsn[1]!, start_segment: lsn[2]!, timeline: Number(timeline[1]), started: started.toISOString(), finished: finished.toISOString() };
  const text = `${JSON.stringify(meta, null, 2)}\n`;
  await writeFile(join(dataDir, BASE_META), text, { flag: 'wx' });
  written(BASE_META, createHash('sha1').update(text).digest('hex'));
  return { meta, bytes: manifest.Files.reduce((n, f) => n + f.Size, 0), checks: ['pg_verifybackup: ok'], endSegment };
}

/** Waits up to `seconds` for the archive to receive a segment; false when it did not. */
export async function waitForSegment(store: RepositoryStore, name: string, seconds: number, signal: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if (await exists(join(walDir(store), `${name}${GZ}`))) return true;
    if (Date.now() > deadline || signal.aborted) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The base backup of a complete snapshot, if it has one. */
export async function readBaseMeta(store: RepositoryStore, id: string): Promise<BaseMeta | undefined> {
  try {
    return JSON.parse(await readFile(join(store.linkDest(id), BASE_META), 'utf8')) as BaseMeta;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

interface Segment {
  name: string;
  timeline: number;
  /** Position in the WAL sequence: segments n and n+1 are consecutive. */
  no: bigint;
}

function parseSegment(name: string, size: number): Segment {
  const perLog = 0x100000000n / BigInt(size);
  return { name, timeline: parseInt(name.slice(0, 8), 16), no: BigInt(`0x${name.slice(8, 16)}`) * perLog + BigInt(`0x${name.slice(16, 24)}`) };
}

function segmentName(timeline: number, no: bigint, size: number): string {
  const perLog = 0x100000000n / BigInt(size);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(no / perLog)}${hex(no % perLog)}`;
}

/** The newest commit (or abort) time in the given segments, newest segment first: what recovery can reach. */
async function lastCommit(dir: string, run: Segment[], bin: (n: string) => string, signal: AbortSignal): Promise<Date | undefined> {
  const COMMIT = /desc: (?:COMMIT|ABORT)\S* (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC/g;
  for (let k = run.length - 1; k >= 0 && k >= run.length - 64; k--) {
    const name = run[k]!.name;
    let out = '';
    // pg_waldump reads plain segments: this one is unpacked into a temporary folder.
    const tmp = await mkdtemp(join(tmpdir(), 'respaldo-waldump-'));
    try {
      await pipeline(createReadStream(join(dir, `${name}${GZ}`)), createGunzip(), createWriteStream(join(tmp, name)));
      // pg_waldump ends with an error at the end of the last segment's records: the output up to it is what counts.
      await runTool(bin('pg_waldump'), ['--path', tmp, '--rmgr=Transaction', name, name], { env: { ...process.env, TZ: 'UTC' }, signal, onStdout: (c) => (out += c.toString()) });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    let last: string | undefined;
    for (const m of out.matchAll(COMMIT)) last = m[1];
    if (last) return new Date(`${last.replace(' ', 'T')}Z`);
  }
  return undefined;
}

export interface Archive {
  files: number;
  bytes: number;
  first: string | null;
  last: string | null;
  /** Segments missing between the first and the last (at most 20 named). */
  gaps: string[];
  window: { from: Date; to: Date } | null;
  /** Snapshots whose base backup can start a restore, oldest first. */
  bases: { id: string; meta: BaseMeta }[];
}

/** Reads the archive and the snapshots' base backups: what can be restored, and to when. */
export async function readArchive(store: RepositoryStore, bin: (n: string) => string, signal: AbortSignal, extra?: { id: string; meta: BaseMeta }): Promise<Archive> {
  const dir = walDir(store);
  let names: string[];
  try {
    names = (await readdir(dir))
      .filter((n) => n.endsWith(GZ) && WAL_FILE_RE.test(n.slice(0, -GZ.length)))
      .map((n) => n.slice(0, -GZ.length))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    names = [];
  }
  let bytes = 0;
  let size = 16 << 20;
  for (const n of names) bytes += (await stat(join(dir, `${n}${GZ}`))).size;
  const anySegment = names.find((n) => SEGMENT_RE.test(n));
  if (anySegment) size = await gzipSize(join(dir, `${anySegment}${GZ}`));
  const bases: { id: string; meta: BaseMeta }[] = [];
  for (const id of await store.snapshots()) {
    const meta = await readBaseMeta(store, id);
    if (meta) bases.push({ id, meta });
  }
  if (extra) bases.push(extra);
  const segments = names.filter((n) => SEGMENT_RE.test(n)).map((n) => parseSegment(n, size));
  const empty = { files: names.length, bytes, first: segments[0]?.name ?? null, last: segments.at(-1)?.name ?? null };
  const newest = bases.at(-1);
  if (!newest || segments.length === 0) return { ...empty, gaps: [], window: null, bases: [] };
  // The newest base backup's timeline; the unbroken run of segments that ends with its last one.
  const line = segments.filter((s) => s.timeline === newest.meta.timeline);
  const gaps: string[] = [];
  for (let k = 1; k < line.length; k++)
    for (let no = line[k - 1]!.no + 1n; no < line[k]!.no && gaps.length < 20; no++) gaps.push(segmentName(newest.meta.timeline, no, size));
  let start = line.length - 1;
  while (start > 0 && line[start - 1]!.no === line[start]!.no - 1n) start--;
  const run = line.slice(start);
  if (run.length === 0) return { ...empty, gaps, window: null, bases: [] };
  const to = await lastCommit(dir, run, bin, signal);
  const usable = bases.filter(({ meta }) => {
    if (meta.timeline !== newest.meta.timeline) return false;
    const s = parseSegment(meta.start_segment, size);
    return s.no >= run[0]!.no && s.no <= run.at(-1)!.no && (!to || new Date(meta.finished) <= to);
  });
  const window = to && usable.length ? { from: new Date(usable[0]!.meta.finished), to } : null;
  return { ...empty, gaps, window, bases: usable };
}


/** A value for postgresql.conf: single-quoted, quotes doubled. */
function confValue(text: string): string {
  return `'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/** A word for /bin/sh: as it is when nothing in it is special, else single-quoted. */
export function shellWord(text: string): string {
  if (/^[A-Za-z0-9_/.,:@+=-]+$/.test(text)) return text;
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

export const RESTORE_MARK = '# respaldo restore: recovery settings';

export interface RecoveryOutcome {
  /** The last transaction replayed: the time the restored copy stands at. */
  reached: Date | undefined;
  /** PostgreSQL's own words on where it stopped ("recovery stopping before commit of transaction 745, time …"). */
  stopped: string | undefined;
  version: string;
}

/**
 * Replays the archive onto a restored base backup in `dir` up to `at`, then stops the
 * server. The server runs on a private socket only (no TCP port), as the `postgres` user
 * when the agent is root, with archive_mode off; `keep` leaves the recovery settings in
 * postgresql.auto.conf (a clone keeps archive_mode=off).
 */
export async function recover(dir: string, archive: string, at: Date, bin: (n: string) => string, env: NodeJS.ProcessEnv, signal: AbortSignal, keep: boolean): Promise<RecoveryOutcome> {
  const settings = [
    RESTORE_MARK,
    `restore_command = ${confValue(`gzip -dc ${shellWord(archive)}/%f${GZ} > %p`)}`,
    `recovery_target_time = ${confValue(at.toISOString().replace('T', ' ').replace('Z', '+00'))}`,
    "recovery_target_action = 'promote'",
    "archive_mode = 'off'",
    '',
  ].join('\n');
  const auto = join(dir, 'postgresql.auto.conf');
  const before = (await exists(auto)) ? await readFile(auto, 'utf8') : '';
  await writeFile(auto, `${before}${before.endsWith('\n') || !before ? '' : '\n'}${settings}`);
  // Debian keeps postgresql.conf, pg_hba.conf and pg_ident.conf in /etc/postgresql, not in the data folder.
  for (const [file, text] of [
    ['postgresql.conf', "# Written by respaldo restore: the original server's postgresql.conf was not in its data folder (Debian keeps it in /etc/postgresql).\n"],
    ['pg_hba.conf', '# Written by respaldo restore: local connections by the same operating-system user only.\nlocal all all peer\n'],
    ['pg_ident.conf', ''],
  ] as const)
    if (!(await exists(join(dir, file)))) await writeFile(join(dir, file), text);
  await writeFile(join(dir, 'recovery.signal'), '');
  await rm(join(dir, 'standby.signal'), { force: true });
  await rm(join(dir, 'postmaster.pid'), { force: true });

  const sock = await mkdtemp(join(tmpdir(), 'respaldo-pitr-'));
  await writeFile(join(sock, 'hba.conf'), 'local all all trust\n');
  let as = { program: 'env', prefix: [] as string[] };
  if (process.getuid?.() === 0) {
    const user = await postgresUser('restoring PostgreSQL');
    const owned = await runTool('chown', ['-R', `${user.uid}:${user.gid}`, dir, sock]);
    if (owned.code !== 0) throw new RespaldoError(`cannot give ${dir} to the postgres user: ${lastLines(owned.stderr, 2)}`, { exitCode: Exit.nothing });
    as = asUser(user);
    const reach = await runTool(as.program, [...as.prefix, 'test', '-w', dir]);
    if (reach.code !== 0)
      throw new RespaldoError(`the postgres user cannot reach ${dir}, where the server must replay the WAL`, { exitCode: Exit.usage, hint: 'restore into a folder whose parent folders the postgres user may pass through (chmod o+x), e.g. under /var/lib/postgresql or /var/tmp' });
  }
  await chmod(dir, 0o700);
  await chmod(sock, 0o700);
  await chmod(join(sock, 'hba.conf'), 0o644);
  const version = /(\d+(?:\.\d+)+)/.exec((await capture(bin('postgres'), ['--version'], { env })).toString())?.[1] ?? 'unknown';
  const server = streamTool(
    as.program,
    [...as.prefix, bin('postgres'), '-D', dir, '-k', sock, '-p', '5432', '-c', 'listen_addresses=', '-c', `hba_file=${join(sock, 'hba.conf')}`, '-c', 'archive_mode=off', '-c', 'log_timezone=UTC', '-c', 'logging_collector=off', '-c', 'log_min_messages=log'],
    { env, signal },
  );
  server.child.stdout!.resume();
  const psqlEnv = { ...env, PGHOST: sock, PGPORT: '5432', PGUSER: 'postgres', PGDATABASE: 'postgres', PGPASSFILE: '/dev/null', PGCONNECT_TIMEOUT: '10', PGTZ: 'UTC' };
  const query = async (sql: string) => (await capture(bin('psql'), ['-X', '-A', '-t', '-w', '-c', sql], { env: psqlEnv })).toString().trim();
  let stderr = '';
  try {
    for (;;) {
      const exited = await Promise.race([server.done, new Promise<undefined>((r) => setTimeout(() => r(undefined), 250))]);
      if (exited) {
        stderr = exited.stderr;
        const why = /FATAL:\s+(.*)/.exec(exited.stderr)?.[1] ?? lastLines(exited.stderr, 2);
        throw new RespaldoError(`PostgreSQL stopped during the recovery: ${why}`, { exitCode: Exit.nothing, hint: `read the server's log below; ${dir} holds the partly recovered copy, remove it before trying again\n${lastLines(exited.stderr, 12)}` });
      }
      if (signal.aborted) throw signal.reason;
      const state = await query('SELECT pg_is_in_recovery()').catch(() => undefined);
      if (state === 'f') break;
    }
    const replayed = await query("SELECT coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')");
    server.child.kill('SIGINT');
    stderr = (await server.done).stderr;
    if (!keep) {
      const text = await readFile(auto, 'utf8');
      await writeFile(auto, text.slice(0, text.indexOf(RESTORE_MARK)));
    }
    return { reached: replayed ? new Date(replayed) : undefined, stopped: /LOG:\s+(recovery stopping [^\n]*)/.exec(stderr)?.[1], version };
  } catch (e) {
    await stopTool(server, 'SIGINT', 10_000);
    throw e;
  } finally {
    await rm(sock, { recursive: true, force: true });
  }
}
