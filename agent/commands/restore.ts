/**
 * `respaldo restore <repository> --at TIME --to DIR`: a database repository brought back to
 * a point in time, into a new data folder; `--list-window` shows how far back and how
 * recently that is possible. What every engine shares lives here: reading the time in the
 * host's zone, refusing a time outside the window (saying the window), never touching a
 * running server's folder, `--into-production` (the old folder kept aside), checking the
 * snapshot's files against its manifest, and the `restore` record (FOR 7.5 DSE 05). Each
 * engine fills the folder and replays its archive: PostgreSQL from a base backup and the
 * WAL, MariaDB from the dumps and the binary logs.
 */
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import { digestOf } from '../../schemas/record.js';
import type { RecordBody } from '../../schemas/record.js';
import type { Context } from '../context.js';
import { readBinlogArchive, restoreMariadb, runningMariadb } from '../databases/mariadb-pitr.js';
import { programs as mariadbPrograms } from '../databases/mariadb.js';
import { BASE_DIR, readArchive, recover, walDir } from '../databases/postgresql-pitr.js';
import { programs } from '../databases/postgresql.js';
import { Exit, RespaldoError, usageError, type ExitCode } from '../errors.js';
import { lastLines, runTool } from '../exec.js';
import { exists } from '../fsutil.js';
import { HashPool } from '../hashing.js';
import { checkSnapshot } from '../manifest.js';
import { processExists } from '../lock.js';
import { lockAndRecover, openHost, publishRecords } from '../host.js';
import type { RepositoryStore } from '../target.js';
import { formatZoned, hostZone, parseZoned } from '../../schemas/zoned.js';
import { restoreFiles, restoreRunBy } from './restore-files.js';
import { pitrRepository } from './wal-push.js';

export const RESTORE_REASONS = ['deleted-by-mistake', 'physical-damage', 'logical-damage', 'other'] as const;

export interface RestoreOptions {
  config: string;
  repo: string | undefined;
  /** A snapshot by id (files, and databases without --at). */
  snapshot: string | undefined;
  at: string | undefined;
  /** Files: only these paths (original paths). */
  paths: string[];
  to: string | undefined;
  /** Files: write into a folder that is not empty. */
  force: boolean;
  /** The FOR 7.5 DSE 05 request this restore answers. */
  request: string | undefined;
  listWindow: boolean;
  reason: (typeof RESTORE_REASONS)[number];
  why: string | undefined;
  /** Replace the data folder of a (stopped) production server, keeping the old one aside. */
  intoProduction: boolean;
  /** The repository's name again, to confirm --into-production. */
  confirm: string | undefined;
  /** `scheduled` when the agent carries out an approved restore request on its own. */
  trigger?: 'scheduled' | 'manual';
}

/** A snapshot a restore can start from, and the earliest time it reaches. */
interface Start {
  id: string;
  from: Date;
}

/** What an engine's point-in-time recovery offers a restore. */
interface Plan {
  engine: 'PostgreSQL' | 'MariaDB';
  archive: { files: number; first: string | null; last: string | null; gaps: string[] };
  window: { from: Date; to: Date } | null;
  /** Oldest first. */
  starts: Start[];
  /** What a start is, for --list-window: "base backup", "dumps". */
  startKind: string;
  /** Why there is no window, when there is none. */
  noWindow: string;
  /** What the window's end is, said when a time is past it. */
  windowEnd: string;
  /** The snapshot's files (under data/) that the restore reads: each is checked against the manifest. */
  prefix: string;
  /** The pid of a server running on the folder `dir`, if one is. */
  running(dir: string): Promise<number | undefined>;
  /**
   * Fills the folder `to` (new or empty; with `aside`, the old production folder beside it)
   * from snapshot `start` and replays the archive up to `at`; `verify(root)` checks the
   * snapshot's files under `prefix`, found under `root`, against the manifest. Returns the
   * lines that say what was reached, and their data.
   */
  restore(r: { to: string; at: Date; start: Start; aside: string | undefined; verify: (root: string) => Promise<void> }): Promise<{ lines: string[]; data: Record<string, unknown> }>;
}

async function postgresqlPlan(ctx: Context, repo: DatabaseRepositoryConfig, store: RepositoryStore, zone: string): Promise<Plan> {
  const newest = (await store.snapshots()).at(-1);
  const version = newest ? (await readFile(join(store.linkDest(newest), BASE_DIR, 'PG_VERSION'), 'utf8').catch(() => '')).trim() : '';
  const bin = await programs(repo, Number(version) || undefined);
  const archive = await readArchive(store, bin, ctx.signal);
  return {
    engine: 'PostgreSQL',
    archive,
    window: archive.window,
    starts: archive.bases.map((b) => ({ id: b.id, from: new Date(b.meta.finished) })),
    startKind: 'base backup',
    noWindow:
      archive.files === 0
        ? 'the WAL archive is empty (is archive_command set? see respaldo db setup-pitr)'
        : archive.bases.length === 0 && archive.last
          ? 'no base backup whose WAL is all in the archive, or no transaction committed since the newest one'
          : 'none yet',
    windowEnd: 'the window ends at the last transaction in the archive (archive_timeout bounds how far behind that is)',
    prefix: `${BASE_DIR}/`,
    running: runningPostgres,
    async restore({ to, at, start, aside, verify }) {
      const source = join(store.linkDest(start.id), BASE_DIR);
      const copied = await runTool('cp', ['-a', '--', `${source}/.`, `${to}/`], { signal: ctx.signal });
      if (copied.code !== 0) throw new RespaldoError(`cannot copy the base backup into ${to}: ${lastLines(copied.stderr, 2)}`, { exitCode: Exit.nothing, hint: `free space in ${to}, or pick another folder` });
      // Every restored file against the snapshot's manifest, before the server touches them.
      await verify(to);
      const outcome = await recover(to, walDir(store), at, bin, ctx.env, ctx.signal, !aside);
      const reached = outcome.reached ? formatZoned(outcome.reached, zone) : 'no transaction replayed after the base backup';
      return {
        lines: [
          `  from the base backup of snapshot ${start.id} (finished ${formatZoned(start.from, zone)}), its files checked against the manifest, then the WAL archive replayed`,
          `  PostgreSQL ${outcome.version}: ${outcome.stopped ?? 'recovery reached the target'}`,
          `  the last transaction replayed committed at ${reached}`,
          aside ? `  the previous data folder is kept in ${aside}` : `  a clone with archive_mode=off: start it with: pg_ctl -D ${to} -o "-p 5433" start (as the postgres user)`,
        ],
        data: { reached: outcome.reached?.toISOString() ?? null, stopped: outcome.stopped ?? null },
      };
    },
  };
}

async function mariadbPlan(ctx: Context, repo: DatabaseRepositoryConfig, store: RepositoryStore, zone: string): Promise<Plan> {
  const bin = mariadbPrograms(repo, ctx.env);
  const archive = await readBinlogArchive(store, bin, ctx.env, ctx.signal);
  return {
    engine: 'MariaDB',
    archive,
    window: archive.window,
    starts: archive.starts,
    startKind: 'dumps',
    noWindow:
      archive.files === 0
        ? `the binary-log archive is empty (each backup archives the closed binary logs; respaldo db archive-binlogs --repo ${repo.name} does it now)`
        : 'no snapshot whose dumps\' binary logs are all in the unbroken run of archived logs that ends with the newest (a gap, or no backup since archiving began)',
    windowEnd: `the window ends at the last event of the newest archived binary log: "respaldo db archive-binlogs --repo ${repo.name}" archives the logs closed since (cron runs it every 5 minutes, see respaldo cron)`,
    prefix: 'mariadb/',
    running: runningMariadb,
    async restore({ to, at, start, aside, verify }) {
      // The dumps as stored, against the manifest, before anything is loaded.
      await verify(join(store.linkDest(start.id), 'mariadb'));
      const chosen = archive.starts.find((s) => s.id === start.id)!;
      if (aside) {
        // The production folder's accounts, settings and other databases stay: the new folder starts as a copy of the old one.
        const copied = await runTool('cp', ['-a', '--', `${aside}/.`, `${to}/`], { signal: ctx.signal });
        if (copied.code !== 0) throw new RespaldoError(`cannot copy ${aside} into ${to}: ${lastLines(copied.stderr, 2)}`, { exitCode: Exit.nothing, hint: `free space beside ${to}` });
      }
      const outcome = await restoreMariadb(repo, store, archive, chosen, to, aside !== undefined, at, ctx.env, ctx.signal);
      const reached = outcome.reached ? formatZoned(outcome.reached, zone) : 'no transaction replayed after the dumps';
      return {
        lines: [
          `  from the dumps of snapshot ${start.id} (restorable from ${formatZoned(start.from, zone)} on), checked against its manifest, then the archived binary logs replayed, each database from its own dump's position`,
          `  MariaDB ${outcome.version}: replayed the transactions committed before ${formatZoned(outcome.stop, zone)} (the binary log's times are whole seconds): ${outcome.databases.map((d) => `${d.name} ${d.transactions} transaction(s)`).join(', ')}`,
          `  the last transaction replayed committed at ${reached}`,
          aside
            ? `  the previous data folder is kept in ${aside}; take a backup as soon as the server runs again (respaldo run --repo ${repo.name} --manual): the binary logs archived before this restore describe changes it undid`
            : `  a new instance (root logs in through unix_socket; no other account): start it with: mariadbd --no-defaults --user=mysql --datadir=${to} --socket=/run/mysqld/${repo.name}-restored.sock --skip-networking`,
        ],
        data: { reached: outcome.reached?.toISOString() ?? null, stop: outcome.stop.toISOString(), databases: outcome.databases.map((d) => ({ name: d.name, transactions: d.transactions, reached: d.reached?.toISOString() ?? null })) },
      };
    },
  };
}

/** Whether a data folder belongs to a running PostgreSQL server: its postmaster.pid names a live process. */
async function runningPostgres(dir: string): Promise<number | undefined> {
  const text = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(text?.split('\n')[0]);
  return pid > 0 && processExists(pid) ? pid : undefined;
}

function describeWindow(plan: Plan, zone: string): string {
  if (!plan.window) return `no recoverable window: ${plan.noWindow}`;
  return `from ${formatZoned(plan.window.from, zone)} to ${formatZoned(plan.window.to, zone)}`;
}

export async function runRestore(ctx: Context, opts: RestoreOptions): Promise<ExitCode> {
  const host = await openHost(ctx, opts.config);
  const { config } = host;
  if (opts.request !== undefined && !/^REQ-\d{4}-\d{4}$/.test(opts.request)) throw usageError(`--request "${opts.request}" is not a request number`, 'e.g. --request REQ-2026-0007 (records/requests/REQ-2026-0007.yaml)');
  const named = config.repositories.find((r) => r.name === opts.repo);
  // Point-in-time recovery is for databases that archive their logs; everything else (and
  // a database's dumps, by snapshot) is restored as the files of a snapshot.
  if (named && !(named.kind === 'database' && named.pitr && (opts.at !== undefined || opts.listWindow))) {
    if (opts.listWindow) throw usageError(`repository "${named.name}" has no point-in-time recovery window: it restores by snapshot`, `respaldo restore ${named.name} --snapshot ID --to DIR (or --at TIME: the newest snapshot taken by then)`);
    if (opts.intoProduction) throw usageError('--into-production is for a database restored to a point in time', `restore files into a folder: respaldo restore ${named.name} --to DIR`);
    return restoreFiles(ctx, host, named, { snapshot: opts.snapshot, at: opts.at, paths: opts.paths, to: opts.to, force: opts.force, reason: opts.reason, why: opts.why, request: opts.request, trigger: opts.trigger });
  }
  if (opts.snapshot || opts.paths.length || opts.force) throw usageError('--snapshot, --path and --force restore the files of a snapshot; a point-in-time restore (--at) picks its own starting snapshot', 'leave them out with --at');
  const { repo, store } = pitrRepository(config, opts.repo, 'restore', ['postgresql', 'mariadb']);
  const zone = hostZone(config.timezone);
  const plan = repo.engine === 'mariadb' ? await mariadbPlan(ctx, repo, store, zone) : await postgresqlPlan(ctx, repo, store, zone);
  const { archive } = plan;

  if (opts.listWindow) {
    const lines = [
      `${repo.name}: recoverable ${describeWindow(plan, zone)}`,
      `  time zone: ${zone} (times without an offset in --at are read in it; set "timezone" in ${config.file} to change it)`,
      `  archive: ${archive.files} file(s), ${archive.first ?? '-'} … ${archive.last ?? '-'}${archive.gaps.length ? `; MISSING: ${archive.gaps.join(', ')}` : ''}`,
      ...plan.starts.map((s) => `  ${plan.startKind} in snapshot ${s.id}: restores from ${formatZoned(s.from, zone)}`),
    ];
    ctx.reporter.result(lines.join('\n'), {
      repository: repo.name,
      engine: repo.engine,
      timezone: zone,
      window: plan.window ? { from: plan.window.from.toISOString(), to: plan.window.to.toISOString() } : null,
      archive: { files: archive.files, first: archive.first, last: archive.last, gaps: archive.gaps },
      starts: plan.starts.map((s) => ({ snapshot: s.id, from: s.from.toISOString() })),
    });
    return Exit.ok;
  }

  if (!opts.at) throw usageError('"respaldo restore" needs --at TIME (or --list-window)', `e.g. respaldo restore ${repo.name} --at "2026-11-21 11:29" --to /var/tmp/${repo.name}-restored`);
  if (!opts.to) throw usageError('"respaldo restore" needs --to DIR: a new folder for the restored data', `e.g. --to /var/tmp/${repo.name}-restored; respaldo never restores into a running server`);
  const at = parseZoned(opts.at, zone);
  if (!at) throw usageError(`--at "${opts.at}" is not a time respaldo can read`, `write it as "2026-11-21 11:29" or "2026-11-21 11:29:30" (in ${zone}), or with an offset: "2026-11-21T17:29:30Z"`);
  if (!plan.window) throw new RespaldoError(`${repo.name} cannot be restored to a point in time: ${describeWindow(plan, zone)}`, { exitCode: Exit.nothing, hint: `see respaldo restore --list-window ${repo.name}` });
  if (at < plan.window.from || at > plan.window.to) throw usageError(`${formatZoned(at, zone)} is outside the recoverable window of ${repo.name}, ${describeWindow(plan, zone)}`, `pick a time inside it; ${plan.windowEnd}`);
  const start = [...plan.starts].reverse().find((s) => s.from <= at)!;

  const to = resolve(ctx.cwd, opts.to);
  const there = await exists(to);
  const running = there ? await plan.running(to) : undefined;
  if (running) throw new RespaldoError(`${to} is the data folder of a running ${plan.engine} server (pid ${running})`, { exitCode: Exit.usage, hint: 'respaldo never restores into a running server: restore into a new folder, or stop the server first and use --into-production' });
  const occupied = there && (await readdir(to)).length > 0;
  if (occupied) {
    if (!opts.intoProduction) throw usageError(`${to} is not empty`, `restore into a new or empty folder; to replace a stopped production server's data folder, add --into-production --confirm ${repo.name}`);
    if (opts.confirm !== repo.name) throw usageError("--into-production replaces a server's data folder: confirm it with --confirm followed by the repository's name", `--into-production --confirm ${repo.name}`);
  }

  const started = ctx.now();
  const { lock } = await lockAndRecover(ctx, host, `respaldo restore ${repo.name}`, started);
  const pool = new HashPool();
  const checked = { files: 0, bytes: 0, mismatches: 0 };
  const record = async (result: 'ok' | 'failed') => {
    const { summary, bytes } = await store.readSummary(start.id);
    const body: RecordBody<'restore'> = {
      repository: repo.name,
      kind: 'database',
      ...restoreRunBy(opts.trigger, ctx.env),
      started: started.toISOString(),
      finished: ctx.now().toISOString(),
      snapshot: { id: start.id, target: 'primary', location: store.snapshotLocation(start.id), digest: digestOf(bytes), manifest: summary.manifest },
      point_in_time: at.toISOString(),
      paths: [],
      destination: to,
      reason: opts.reason,
      ...(opts.why ? { reason_detail: opts.why } : {}),
      request: opts.request ?? null,
      source_copy: 'primary',
      verification: { scope: 'full', ...checked },
      result,
    };
    const appended = await host.records.append('restore', body);
    await publishRecords(ctx, host, [`hosts/${config.host}`], `respaldo ${config.host}: record ${appended.seq}: restore of ${repo.name} to ${at.toISOString()} (${result})`);
    return appended;
  };

  /** Every file of the snapshot under the plan's prefix, found under `root`, against the manifest. */
  const verify = async (root: string) => {
    const { checksum, problems } = await checkSnapshot(store, start.id, pool, ctx.signal, { prefix: plan.prefix, root });
    Object.assign(checked, { files: checksum.files, bytes: checksum.bytes, mismatches: checksum.mismatches });
    if (checked.mismatches)
      throw new RespaldoError(`${checked.mismatches} file(s) of snapshot ${start.id} do not match its manifest: ${problems.slice(0, 5).map((p) => `${p.path}: ${p.problem}`).join('; ')}`, { exitCode: Exit.partial, hint: 'the stored copy is damaged; check the backup disk (dmesg, smartctl)' });
  };

  let aside: string | undefined;
  try {
    if (occupied) {
      // Nothing is lost: the old data folder stays beside the new one.
      aside = `${to}.before-restore-${started.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
      const mode = (await stat(to)).mode & 0o777;
      await rename(to, aside);
      await mkdir(to, { mode });
    }
    await mkdir(to, { recursive: true, mode: 0o700 });
    const outcome = await plan.restore({ to, at, start, aside, verify });
    const appended = await record('ok');
    ctx.reporter.result(
      [`restored ${repo.name} to ${formatZoned(at, zone)} (${at.toISOString()}) into ${to}`, ...outcome.lines, `  ${checked.files} file(s) checked against the snapshot's manifest; recorded as restore record ${appended.seq}`].join('\n'),
      { repository: repo.name, engine: repo.engine, at: at.toISOString(), timezone: zone, to, snapshot: start.id, ...outcome.data, aside: aside ?? null, record: appended.seq },
    );
    return Exit.ok;
  } catch (e) {
    await record('failed').catch(() => {});
    if (aside && e instanceof RespaldoError)
      throw new RespaldoError(e.message, { exitCode: e.exitCode, hint: `${e.hint ? `${e.hint}\n` : ''}the old data folder is intact in ${aside}; to start the server as it was: rm -r ${to} && mv ${aside} ${to}` });
    throw e;
  } finally {
    await pool.close();
    await lock.release();
  }
}
