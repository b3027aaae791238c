/**
 * `respaldo restore <repository> --at TIME --to DIR`: a PostgreSQL repository brought back
 * to a point in time, into a new data folder; `--list-window` shows how far back and how
 * recently that is possible. The restored files are checked against the snapshot's
 * manifest before the server replays the archive, and the restore is recorded (FOR 7.5 DSE 05).
 */
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { digestOf } from '../../schemas/record.js';
import type { RecordBody } from '../../schemas/record.js';
import { entryPath } from '../../schemas/manifest.js';
import type { Context } from '../context.js';
import { BASE_DIR, readArchive, recover, walDir, type Archive } from '../databases/postgresql-pitr.js';
import { programs } from '../databases/postgresql.js';
import { Exit, RespaldoError, usageError, type ExitCode } from '../errors.js';
import { lastLines, runTool } from '../exec.js';
import { exists } from '../fsutil.js';
import { HashPool } from '../hashing.js';
import { lockAndRecover, openHost, operatorName, publishRecords } from '../host.js';
import { formatZoned, hostZone, parseZoned } from '../zoned.js';
import { pitrRepository } from './wal-push.js';

export const RESTORE_REASONS = ['deleted-by-mistake', 'physical-damage', 'logical-damage', 'other'] as const;

export interface RestoreOptions {
  config: string;
  repo: string | undefined;
  at: string | undefined;
  to: string | undefined;
  listWindow: boolean;
  reason: (typeof RESTORE_REASONS)[number];
  why: string | undefined;
  /** Replace the data folder of a (stopped) production server, keeping the old one aside. */
  intoProduction: boolean;
  /** The repository's name again, to confirm --into-production. */
  confirm: string | undefined;
}

function describeWindow(archive: Archive, zone: string): string {
  if (!archive.window)
    return archive.files === 0
      ? 'no recoverable window: the WAL archive is empty (is archive_command set? see respaldo db setup-pitr)'
      : archive.bases.length === 0 && archive.last
        ? 'no recoverable window: no base backup whose WAL is all in the archive, or no transaction committed since the newest one'
        : 'no recoverable window yet';
  return `from ${formatZoned(archive.window.from, zone)} to ${formatZoned(archive.window.to, zone)}`;
}

/** Whether a data folder belongs to a running server: its postmaster.pid names a live process. */
async function runningServer(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(text?.split('\n')[0]);
  if (!pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

export async function runRestore(ctx: Context, opts: RestoreOptions): Promise<ExitCode> {
  const host = await openHost(ctx, opts.config);
  const { config } = host;
  const { repo, store } = pitrRepository(config, opts.repo, 'restore');
  const zone = hostZone(config.timezone);
  const newest = (await store.snapshots()).at(-1);
  const version = newest ? (await readFile(join(store.linkDest(newest), BASE_DIR, 'PG_VERSION'), 'utf8').catch(() => '')).trim() : '';
  const bin = await programs(repo, Number(version) || undefined);
  const archive = await readArchive(store, bin, ctx.signal);

  if (opts.listWindow) {
    const lines = [
      `${repo.name}: recoverable ${describeWindow(archive, zone)}`,
      `  time zone: ${zone} (times without an offset in --at are read in it; set "timezone" in ${config.file} to change it)`,
      `  archive: ${archive.files} file(s), ${archive.first ?? '-'} … ${archive.last ?? '-'}${archive.gaps.length ? `; MISSING: ${archive.gaps.join(', ')}` : ''}`,
      ...archive.bases.map((b) => `  base backup in snapshot ${b.id}: restores from ${formatZoned(new Date(b.meta.finished), zone)}`),
    ];
    ctx.reporter.result(lines.join('\n'), {
      repository: repo.name,
      timezone: zone,
      window: archive.window ? { from: archive.window.from.toISOString(), to: archive.window.to.toISOString() } : null,
      archive: { files: archive.files, first: archive.first, last: archive.last, gaps: archive.gaps },
      bases: archive.bases.map((b) => ({ snapshot: b.id, from: b.meta.finished })),
    });
    return Exit.ok;
  }

  if (!opts.at) throw usageError('"respaldo restore" needs --at TIME (or --list-window)', `e.g. respaldo restore ${repo.name} --at "2026-11-21 11:29" --to /var/tmp/${repo.name}-restored`);
  if (!opts.to) throw usageError('"respaldo restore" needs --to DIR: a new folder for the restored data', `e.g. --to /var/tmp/${repo.name}-restored; respaldo never restores into a running server`);
  const at = parseZoned(opts.at, zone);
  if (!at) throw usageError(`--at "${opts.at}" is not a time respaldo can read`, `write it as "2026-11-21 11:29" or "2026-11-21 11:29:30" (in ${zone}), or with an offset: "2026-11-21T17:29:30Z"`);
  if (!archive.window) throw new RespaldoError(`${repo.name} cannot be restored to a point in time: ${describeWindow(archive, zone)}`, { exitCode: Exit.nothing, hint: `see respaldo restore --list-window ${repo.name}` });
  if (at < archive.window.from || at > archive.window.to)
    throw usageError(`${formatZoned(at, zone)} is outside the recoverable window of ${repo.name}, ${describeWindow(archive, zone)}`, 'pick a time inside it; the window ends at the last transaction in the archive (archive_timeout bounds how far behind that is)');
  const base = [...archive.bases].reverse().find((b) => new Date(b.meta.finished) <= at)!;

  const to = resolve(ctx.cwd, opts.to);
  const running = (await exists(to)) ? await runningServer(to) : undefined;
  if (running) throw new RespaldoError(`${to} is the data folder of a running PostgreSQL server (pid ${running})`, { exitCode: Exit.usage, hint: 'respaldo never restores into a running server: restore into a new folder, or stop the server first and use --into-production' });
  const occupied = (await exists(to)) && (await readdir(to)).length > 0;
  let asideDir: string | undefined;
  if (occupied) {
    if (!opts.intoProduction) throw usageError(`${to} is not empty`, 'restore into a new or empty folder; to replace a stopped production server\'s data folder, add --into-production --confirm ' + repo.name);
    if (opts.confirm !== repo.name) throw usageError('--into-production replaces a server\'s data folder: confirm it with --confirm followed by the repository\'s name', `--into-production --confirm ${repo.name}`);
  }

  const started = ctx.now();
  const { lock } = await lockAndRecover(ctx, host, `respaldo restore ${repo.name}`, started);
  const pool = new HashPool();
  const record = async (result: 'ok' | 'failed', checked: { files: number; bytes: number; mismatches: number }) => {
    const { summary, bytes } = await store.readSummary(base.id);
    const body: RecordBody<'restore'> = {
      repository: repo.name,
      kind: 'database',
      trigger: 'manual',
      operator: operatorName(ctx.env),
      started: started.toISOString(),
      finished: ctx.now().toISOString(),
      snapshot: { id: base.id, target: 'primary', location: store.snapshotLocation(base.id), digest: digestOf(bytes), manifest: summary.manifest },
      point_in_time: at.toISOString(),
      paths: [],
      destination: to,
      reason: opts.reason,
      ...(opts.why ? { reason_detail: opts.why } : {}),
      request: null,
      source_copy: 'primary',
      verification: { scope: 'full', ...checked },
      result,
    };
    const appended = await host.records.append('restore', body);
    await publishRecords(ctx, host, [`hosts/${config.host}`], `respaldo ${config.host}: record ${appended.seq}: restore of ${repo.name} to ${at.toISOString()} (${result})`);
    return appended;
  };
  const checked = { files: 0, bytes: 0, mismatches: 0 };
  try {
    if (occupied) {
      // Nothing is lost: the old data folder stays beside the new one.
      asideDir = `${to}.before-restore-${started.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
      const mode = (await stat(to)).mode & 0o777;
      await rename(to, asideDir);
      await mkdir(to, { mode });
    }
    await mkdir(to, { recursive: true, mode: 0o700 });
    const source = join(store.linkDest(base.id), BASE_DIR);
    const copied = await runTool('cp', ['-a', '--', `${source}/.`, `${to}/`], { signal: ctx.signal });
    if (copied.code !== 0) throw new RespaldoError(`cannot copy the base backup into ${to}: ${lastLines(copied.stderr, 2)}`, { exitCode: Exit.nothing, hint: `free space in ${to}, or pick another folder` });

    // Every restored file against the snapshot's manifest, before the server touches them.
    const prefix = `${BASE_DIR}/`;
    let batch: { rel: string; sha256: string }[] = [];
    const problems: string[] = [];
    const flush = async () => {
      const results = await pool.hash(batch.map((b) => ({ path: Buffer.from(join(to, b.rel)) })));
      results.forEach((r, i) => {
        checked.files++;
        checked.bytes += r.bytes ?? 0;
        if (r.error || r.sha256 !== batch[i]!.sha256) {
          checked.mismatches++;
          if (problems.length < 5) problems.push(`${batch[i]!.rel}: ${r.error ?? 'differs from the manifest'}`);
        }
      });
      batch = [];
    };
    for await (const e of store.manifestEntries(base.id)) {
      const path = entryPath(e).toString('utf8');
      if (e.type !== 'f' || !path.startsWith(prefix)) continue;
      batch.push({ rel: path.slice(prefix.length), sha256: e.sha256! });
      if (batch.length >= 512) await flush();
    }
    if (batch.length) await flush();
    if (checked.mismatches)
      throw new RespaldoError(`${checked.mismatches} restored file(s) of snapshot ${base.id} do not match its manifest: ${problems.join('; ')}`, { exitCode: Exit.partial, hint: 'the stored copy is damaged; check the backup disk (dmesg, smartctl)' });

    const outcome = await recover(to, walDir(store), at, bin, ctx.env, ctx.signal, !opts.intoProduction);
    const appended = await record('ok', checked);
    const reached = outcome.reached ? formatZoned(outcome.reached, zone) : 'no transaction replayed after the base backup';
    ctx.reporter.result(
      [
        `restored ${repo.name} to ${formatZoned(at, zone)} (${at.toISOString()}) into ${to}`,
        `  from the base backup of snapshot ${base.id} (finished ${formatZoned(new Date(base.meta.finished), zone)}), ${checked.files} files checked against its manifest, then the WAL archive replayed`,
        `  PostgreSQL ${outcome.version}: ${outcome.stopped ?? 'recovery reached the target'}`,
        `  the last transaction replayed committed at ${reached}`,
        asideDir ? `  the previous data folder is kept in ${asideDir}` : `  a clone with archive_mode=off: start it with: pg_ctl -D ${to} -o "-p 5433" start (as the postgres user)`,
        `  recorded as restore record ${appended.seq}`,
      ].join('\n'),
      { repository: repo.name, at: at.toISOString(), timezone: zone, to, snapshot: base.id, reached: outcome.reached?.toISOString() ?? null, stopped: outcome.stopped ?? null, aside: asideDir ?? null, record: appended.seq },
    );
    return Exit.ok;
  } catch (e) {
    await record('failed', checked).catch(() => {});
    throw e;
  } finally {
    await pool.close();
    await lock.release();
  }
}
