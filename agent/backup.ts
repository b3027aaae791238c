/**
 * One repository's backup: snapshot, manifest and verification, size comparison, publish,
 * record. Any failure becomes a `failure` record; the previous snapshot is never touched.
 */
import { join } from 'node:path';
import { stringify } from 'yaml';
import { compareSnapshotIds } from '../schemas/common.js';
import type { RepositoryConfig } from '../schemas/config.js';
import { digestOf, type RecordBody } from '../schemas/record.js';
import type { RestoreCheck } from '../schemas/database.js';
import type { SnapshotSummary } from '../schemas/snapshot.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import { BackupFailure, messageOf, RespaldoError } from './errors.js';
import type { HashPool } from './hashing.js';
import type { RepositoryHistory } from './history.js';
import { buildManifest, checkSnapshot, EarlyHasher } from './manifest.js';
import { workHeader, type Appended, type RecordStore } from './records.js';
import { pathRedactor, type Redact } from './redact.js';
import { formatBytes } from '../schemas/common.js';
import { databaseSource } from './sources/database.js';
import { filesSource } from './sources/files.js';
import { gitRepositories, gitSource } from './sources/git.js';
import type { Source } from './sources/source.js';
import type { PrimaryStore, PrimaryTarget } from './target.js';
import { TransferLog } from './transfers.js';

const sources: Record<RepositoryConfig['kind'], Source> = { config: filesSource, files: filesSource, source: filesSource, database: databaseSource };

export interface BackupJob {
  ctx: Context;
  config: Config;
  repository: RepositoryConfig;
  target: PrimaryTarget;
  records: RecordStore;
  pool: HashPool;
  trigger: 'scheduled' | 'manual';
  operator: string | undefined;
  /** From --verify; otherwise the repository's or host's `verify.level`. */
  scope: 'changed' | 'full' | undefined;
  progress: boolean;
  /** The repository's last good backup, by the host's records. */
  lastGood: RepositoryHistory['lastGood'];
}

export type BackupOutcome = { ok: true; appended: Appended; snapshot: string } | { ok: false; appended: Appended; failure: BackupFailure };

const DEFAULT_SHRINK = 20;
const DEFAULT_GROWTH = 100;

/**
 * Snapshot ids are UTC start times; they must sort after every existing id (oldest first
 * in `existing`), even if the clock went back.
 */
export function newSnapshotId(at: Date, existing: string[]): string {
  const base = at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const last = existing[existing.length - 1];
  if (!last || compareSnapshotIds(base, last) > 0) return base;
  const [lastBase, suffix] = last.split('-');
  return `${lastBase}-${Number(suffix ?? 1) + 1}`;
}

/** Clause 4.2.1: compare the total size with the previous snapshot. */
export function compareSize(bytes: number, previous: number | undefined, shrink: number, growth: number): NonNullable<RecordBody<'backup'>['verification']['size']> {
  if (previous === undefined) return { result: 'first', bytes, previous_bytes: null, change_percent: null, shrink_warning: shrink, growth_warning: growth };
  const change = previous === 0 ? (bytes === 0 ? 0 : null) : Math.round(((bytes - previous) / previous) * 10000) / 100;
  const warn = change !== null && (change <= -shrink || change >= growth);
  return { result: warn ? 'warning' : 'ok', bytes, previous_bytes: previous, change_percent: change, shrink_warning: shrink, growth_warning: growth };
}

function asFailure(e: unknown, signal: AbortSignal): BackupFailure {
  if (e instanceof BackupFailure) return e;
  if (signal.aborted) return new BackupFailure('interrupted', `the run was interrupted (${String(signal.reason)})`, 'run again; the previous snapshot is intact');
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new BackupFailure('target', `the target is full while writing the snapshot (${code})`, 'free space on the target (or prune old snapshots) and run again; the previous snapshot is intact');
  if (code === 'EROFS' || code === 'EACCES') return new BackupFailure('target', `the target cannot be written (${code}): ${messageOf(e)}`, 'check the mount and permissions of the target and run again');
  return new BackupFailure('internal', `internal error: ${messageOf(e)}`, 'run again; if it fails again, report it with this message');
}

/** The `failure` record of a repository's backup or copy: what failed, the tool's words, what to do; no local path. */
export function failureBody(repo: RepositoryConfig, who: { trigger: 'scheduled' | 'manual'; operator?: string | undefined }, failure: BackupFailure, redact: Redact, previous: string | null, causeSuffix = ''): RecordBody<'failure'> {
  return {
    repository: repo.name,
    kind: repo.kind,
    ...(repo.request ? { request: repo.request } : {}),
    trigger: who.trigger,
    ...(who.operator ? { operator: who.operator } : {}),
    stage: failure.stage,
    cause: redact(`${failure.message}${causeSuffix}`),
    ...(failure.extra.detail ? { detail: redact(failure.extra.detail) } : {}),
    ...(failure.extra.exitCode !== undefined ? { exit_code: failure.extra.exitCode } : {}),
    ...(failure.extra.signal ? { signal: failure.extra.signal } : {}),
    hint: redact(failure.hint),
    previous_snapshot: previous,
  };
}

/** The backup record of a published snapshot, from its snapshot.yaml. */
export async function recordSnapshot(records: RecordStore, store: PrimaryStore, id: string, recovered: boolean, redact: Redact, request: string | undefined): Promise<Appended> {
  const { summary, bytes } = await store.readSummary(id);
  const body: RecordBody<'backup'> = {
    repository: summary.repository,
    kind: summary.kind,
    ...(request ? { request } : {}),
    trigger: summary.trigger,
    ...(summary.operator ? { operator: summary.operator } : {}),
    started: summary.started,
    finished: summary.finished,
    snapshot: { id, target: 'primary', location: store.snapshotLocation(id), digest: digestOf(bytes), manifest: summary.manifest },
    previous: summary.previous,
    size: summary.size,
    changed: summary.changed,
    verification: summary.verification,
    ...(summary.database ? { database: summary.database } : {}),
    ...(summary.git ? { git: summary.git } : {}),
    warnings: summary.warnings.map((w) => ({ ...w, message: redact(w.message) })),
    ...(recovered ? { recovered: true } : {}),
  };
  return records.append('backup', body);
}

/** The same paths and excludes as when the snapshot was made: only then can it stand for today. */
function sameSelection(summary: SnapshotSummary, repo: RepositoryConfig): boolean {
  const same = (a: string[], b: string[]) => a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);
  return same(summary.paths, repo.paths) && same(summary.exclude, repo.exclude ?? []);
}

/**
 * Records a backup that is the previous snapshot: nothing changed since it was made. With
 * scope `full`, every stored file is re-read against the manifest first.
 */
async function recordUnchanged(job: BackupJob, store: PrimaryStore, previous: string, summary: SnapshotSummary, started: Date, scope: 'changed' | 'full'): Promise<BackupOutcome> {
  const { ctx, repository: repo } = job;
  ctx.reporter.event({ type: 'repo-start', repository: repo.name, kind: repo.kind, snapshot: previous });
  const checked = scope === 'full' ? await checkSnapshot(store, previous, store.hasher(job.pool), ctx.signal) : undefined;
  if (checked && checked.checksum.mismatches > 0) {
    const first = checked.problems[0]!;
    throw new BackupFailure('verify', `snapshot ${previous} no longer matches its manifest: ${checked.checksum.mismatches} damaged file(s); first: ${first.path}: ${first.problem}`, store.damaged(previous), {
      detail: checked.problems.map((p) => `${p.path}: ${p.problem}`).join('\n'),
    });
  }
  const { bytes } = await store.readSummary(previous);
  const appended = await job.records.append('backup', {
    ...workHeader(repo, job, started, ctx.now()),
    snapshot: { id: previous, target: 'primary', location: store.snapshotLocation(previous), digest: digestOf(bytes), manifest: summary.manifest },
    previous: { id: previous, bytes: summary.size.bytes },
    size: summary.size,
    changed: { files: 0, bytes: 0 },
    verification: {
      level: 'checksum',
      size: compareSize(summary.size.bytes, summary.size.bytes, summary.verification.size?.shrink_warning ?? DEFAULT_SHRINK, summary.verification.size?.growth_warning ?? DEFAULT_GROWTH),
      checksum: checked?.checksum ?? { scope: 'changed', files: 0, bytes: 0, mismatches: 0 },
    },
    ...(summary.git ? { git: summary.git } : {}),
    warnings: [],
    unchanged: true,
  });
  ctx.reporter.event({ type: 'repo-done', repository: repo.name, snapshot: previous, seq: appended.seq, level: 'checksum', bytes: summary.size.bytes, files: summary.size.files, changedFiles: 0, changedBytes: 0 });
  return { ok: true, appended, snapshot: previous };
}

export async function backupRepository(job: BackupJob): Promise<BackupOutcome> {
  const { ctx, config, repository: repo, target, records } = job;
  const store = target.repository(config.host, repo.name);
  const started = ctx.now();
  const scope = job.scope ?? repo.verify?.level ?? config.verify?.level ?? 'changed';
  let source = sources[repo.kind];
  const redact = pathRedactor(config, repo);
  let id: string | undefined;
  let previous: string | undefined;
  let totals: { bytes: number; files: number; changedFiles: number; changedBytes: number; level: string; seconds: Record<'copy' | 'verify' | 'flush' | 'publish', number> } | undefined;
  try {
    await target.check(ctx.signal);
    // A mount point stays behind, empty, when its disk is not mounted: backing up into it
    // would fill the system disk with copies that vanish once the disk is back.
    if (job.lastGood && !(await target.hasHost(config.host)))
      throw new BackupFailure(
        'target',
        `the ${target.role} target ${target.display} has no folder for host ${config.host}, yet record ${job.lastGood.seq} keeps snapshot ${job.lastGood.snapshot} there: is the backup disk mounted?`,
        target.missingHost?.(config.host) ?? `mount the backup disk on ${target.root} and run again; if it is a new, empty disk on purpose, create the host's folder (mkdir ${target.hostDir(config.host)}) and run again`,
      );
    // Source code in git repositories is stored as bundles; plain folders as files.
    if (repo.kind === 'source' && (await gitRepositories(repo, ctx.env, ctx.signal))) source = gitSource;
    await store.prepare();
    const existing = await store.snapshots();
    previous = existing[existing.length - 1];
    const prevSummary = previous ? (await store.readSummary(previous)).summary : undefined;
    // What changed since the previous snapshot. Nothing: it stands for today too, at the
    // cost of one comparison instead of a new tree of hard links. A little: the new tree is
    // linked from the previous one but for what changed (linkPrevious).
    const comparison =
      previous && prevSummary && source.compare && sameSelection(prevSummary, repo)
        ? await source.compare({ repository: repo, store, snapshotData: store.snapshotData(previous), rsh: await store.rsh(), summary: prevSummary, limit: Math.max(1000, Math.floor(prevSummary.size.files / 5)), signal: ctx.signal, env: ctx.env })
        : undefined;
    if (previous && prevSummary && comparison?.unchanged) return await recordUnchanged(job, store, previous, prevSummary, started, scope);
    id = newSnapshotId(started, existing);
    const partial = id;
    ctx.reporter.event({ type: 'repo-start', repository: repo.name, kind: repo.kind, snapshot: id });
    const leftovers = await store.begin(id);
    if (leftovers.length) ctx.reporter.event({ type: 'info', message: `${repo.name}: removed the unfinished snapshot(s) of an interrupted run: ${leftovers.join(', ')}` });

    const t0 = performance.now();
    const transferred = new TransferLog();
    // The stored copies are hashed while rsync copies, where they can be read here.
    const early = store.local ? new EarlyHasher(job.pool, transferred, (rel) => store.partialPath(partial, rel)) : undefined;
    const linked = previous && comparison?.stale ? await store.linkPrevious(previous, partial, comparison.stale, ctx.signal) : false;
    // A remote target takes rsync's copy of the sources; files a source makes (dumps,
    // bundles) are made here first (`staged`), checked here, then sent.
    const staged = source === filesSource ? undefined : await store.stage(partial);
    const captured = await source
      .snapshot({
        repository: repo,
        dest: staged ? `${staged}/` : store.dataDest(partial),
        rsh: staged ? [] : await store.rsh(),
        store,
        id: partial,
        linkDest: previous && !linked && !staged ? store.linkDest(previous) : undefined,
        keepExisting: linked,
        signal: ctx.signal,
        env: ctx.env,
        progress: job.progress ? (done, total) => ctx.reporter.event({ type: 'progress', repository: repo.name, phase: 'copy', done, total }) : undefined,
        transferred,
      })
      .catch(async (e: unknown) => {
        await early?.drain(false);
        throw e;
      });
    if (staged) await store.sendStaged(partial, previous, ctx.signal);
    // Flush the copied data while the last copies are hashed and the manifest is built:
    // the disk writes overlap the reading.
    const t1 = performance.now();
    const flushing = store.flush(id);
    flushing.catch(() => {});
    await early?.drain(true);
    const manifest = await buildManifest({
      store,
      id,
      previous,
      // At a remote target, each new file's stored copy is read there and matched with its
      // original (or the file made here) rather than with rsync's transfer checksum.
      // A daemon's store takes it too: what rsync sent, and the SHA-1 of it (see daemon-primary.ts).
      transferred: store.local || store.checksum ? transferred : new TransferLog(),
      origin: staged ? (rel) => Buffer.concat([Buffer.from(`${staged}/`), rel]) : captured.origin,
      scope,
      ...(store.local ? {} : { light: false }),
      pool: store.hasher(job.pool),
      signal: ctx.signal,
      progress: job.progress ? (files) => ctx.reporter.event({ type: 'progress', repository: repo.name, phase: 'verify', done: files, total: 0 }) : () => {},
    });
    if (manifest.checksum.mismatches > 0) {
      const first = manifest.problems[0]!;
      throw new BackupFailure('verify', `${manifest.checksum.mismatches} stored file(s) failed verification; first: ${first.path}: ${first.problem}`, 'check the target disk (dmesg, smartctl) and run again with --verify=full; the previous snapshot was not replaced', {
        detail: manifest.problems.map((p) => `${p.path}: ${p.problem}`).join('\n'),
      });
    }

    // Databases: the dumps must restore, with every table's rows, or the backup is not good.
    let restore: RestoreCheck | undefined;
    if (captured.dump && source.testRestore && repo.kind === 'database' && repo.verify?.restore !== false) {
      ctx.reporter.event({ type: 'progress', repository: repo.name, phase: 'restore', done: 0, total: captured.dump.info.databases.length });
      restore = await source.testRestore({ repository: repo, dataDir: staged ?? join(store.partialDir(id), 'data'), dump: captured.dump, signal: ctx.signal, env: ctx.env });
      if (restore.result !== 'ok') {
        // Checks read "name: ok" or "row counts: match" when they pass.
        const problems = (d: RestoreCheck['databases'][number]) => [...d.checks.filter((c) => !/: (ok|match)$/.test(c)), ...d.mismatches.slice(0, 3)];
        const first = restore.databases.find((d) => problems(d).length);
        throw new BackupFailure(
          'verify',
          `the test restore failed${first ? ` for ${first.name}: ${problems(first).join('; ')}` : ''}`,
          'the dump does not restore as it should (truncated or damaged?): it was not kept as a good backup; check the detail and the dump tool, then run again; the previous snapshot is intact',
          { detail: restore.databases.map((d) => `${d.name}: ${[...d.checks, ...d.mismatches].join('; ')}`).join('\n') },
        );
      }
    }

    const checkMs = (captured.dump?.checkSeconds ?? 0) * 1000;
    const t2 = performance.now();
    await flushing;
    const t3 = performance.now();
    const shrink = repo.verify?.['shrink-warning'] ?? config.verify?.['shrink-warning'] ?? DEFAULT_SHRINK;
    const growth = repo.verify?.['growth-warning'] ?? config.verify?.['growth-warning'] ?? DEFAULT_GROWTH;
    const size = compareSize(manifest.size.bytes, prevSummary?.size.bytes, shrink, growth);
    const warnings = [...captured.warnings, ...manifest.warnings];
    if (size.result === 'warning')
      warnings.push({
        code: size.change_percent! < 0 ? 'size-shrank' : 'size-grew',
        message: `total size went from ${formatBytes(size.previous_bytes!)} to ${formatBytes(size.bytes)} (${size.change_percent! > 0 ? '+' : ''}${size.change_percent}%), past the ${
          size.change_percent! < 0
            ? `shrink warning of ${shrink}%: check that nothing was deleted by mistake (clause 4.2.1)`
            : `growth warning of ${growth}%: check that nothing unexpected was added, such as a dump or a log left in the folder (clause 4.2.1)`
        }`,
      });
    if (manifest.size.files === 0) warnings.push({ code: 'no-files', message: 'the snapshot holds no files' });

    const summary: SnapshotSummary = {
      schema: 'respaldo/v1',
      host: config.host,
      repository: repo.name,
      kind: repo.kind,
      id,
      started: started.toISOString(),
      finished: ctx.now().toISOString(),
      paths: repo.paths,
      exclude: repo.exclude ?? [],
      manifest: manifest.digest,
      previous: previous && prevSummary ? { id: previous, bytes: prevSummary.size.bytes } : null,
      size: manifest.size,
      changed: manifest.changed,
      verification: { level: restore || captured.git ? 'restore' : 'checksum', size, checksum: manifest.checksum, ...(restore ? { restore } : {}) },
      ...(captured.dump ? { database: captured.dump.info } : {}),
      ...(captured.git ? { git: captured.git } : {}),
      warnings,
      trigger: job.trigger,
      ...(job.operator ? { operator: job.operator } : {}),
    };
    await store.writePartialFile(id, 'snapshot.yaml', stringify(summary, { lineWidth: 0 }));
    if (ctx.signal.aborted) throw asFailure(undefined, ctx.signal);
    await store.publish(id);
    const secs = (ms: number) => Math.round(ms) / 1000;
    totals = {
      bytes: manifest.size.bytes,
      files: manifest.size.files,
      changedFiles: manifest.changed.files,
      changedBytes: manifest.changed.bytes,
      level: summary.verification.level,
      // A dump's own checks (row counts) count as verification, not as copying.
      seconds: { copy: secs(t1 - t0 - checkMs), verify: secs(t2 - t1 + checkMs), flush: secs(t3 - t2), publish: secs(performance.now() - t3) },
    };
    for (const w of warnings) ctx.reporter.event({ type: 'warning', repository: repo.name, message: w.message });
  } catch (e) {
    if (id) await store.discard(id).catch(() => {});
    const failure = asFailure(e, ctx.signal);
    const appended = await records.append('failure', failureBody(repo, job, failure, redact, previous ?? null));
    ctx.reporter.event({ type: 'repo-failed', repository: repo.name, cause: failure.message, hint: failure.hint, seq: appended.seq });
    return { ok: false, appended, failure };
  }
  try {
    const appended = await recordSnapshot(records, store, id, false, redact, repo.request);
    ctx.reporter.event({ type: 'repo-done', repository: repo.name, snapshot: id, seq: appended.seq, ...totals! });
    return { ok: true, appended, snapshot: id };
  } catch (e) {
    if (e instanceof RespaldoError) throw e;
    throw new RespaldoError(`snapshot ${id} of ${repo.name} is complete but could not be recorded: ${messageOf(e)}`, { exitCode: 4, hint: 'fix the records folder; the next run records the snapshot' });
  }
}
