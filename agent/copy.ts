/**
 * The second copy (clause 4.1.6; FOR 7.5 CSC 02): every snapshot recorded on the primary
 * target goes to the secondary target (CSC), oldest first, each compared there with the
 * primary's copy by checksum before it is published and recorded by a `copy` record.
 *
 * What is still to deliver is not kept in a queue file that could be lost: it is every
 * snapshot that a backup record names, that is still on the primary, and that no `copy`
 * record names yet. So when CSC is unreachable the copies wait (a `failure` record each run
 * says so, with how many wait and since when) and all go out, in order, once it is back.
 *
 * Each run that backs up a repository also compares its newest copy at CSC with the
 * primary's again: a damaged copy there gets a failed `verify` record and is replaced at
 * once by a fresh copy (linked to the damaged one only where the bytes still match),
 * recorded as a repair.
 */
import { join } from 'node:path';
import { compareSnapshotIds } from '../schemas/common.js';
import type { RepositoryConfig } from '../schemas/config.js';
import { digestOf, type RecordBody } from '../schemas/record.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import { BackupFailure, messageOf, RespaldoError } from './errors.js';
import { exists } from './fsutil.js';
import type { HashPool } from './hashing.js';
import { checkSnapshot } from './manifest.js';
import type { RecordStore } from './records.js';
import type { Redact } from './redact.js';
import type { Secondary, SecondaryRepository } from './secondary.js';
import type { RepositoryStore } from './target.js';

/** What the host's records say about one repository's copies. */
export interface CopyState {
  /** Snapshot id → when its first backup record was written: how long a pending copy has waited. */
  recorded: Map<string, Date>;
  /** Snapshots that a copy record says reached the secondary target and matched there. */
  copied: Set<string>;
}

/** Reads every backup and copy record of the host for `repository`. */
export async function readCopyState(records: RecordStore, repository: string): Promise<CopyState> {
  const state: CopyState = { recorded: new Map(), copied: new Set() };
  for (const file of await records.list()) {
    if (file.type !== 'backup' && file.type !== 'copy') continue;
    const record = await records.read(file);
    if (!record || (record.type !== 'backup' && record.type !== 'copy') || record.repository !== repository) continue;
    if (record.type === 'backup') {
      const at = new Date(record.at);
      const known = state.recorded.get(record.snapshot.id);
      if (!known || known > at) state.recorded.set(record.snapshot.id, at);
    } else if (record.verified.result === 'ok') state.copied.add(record.snapshot.id);
  }
  return state;
}

/** Snapshots on the primary that a backup record names and no copy record does yet, oldest first. */
export function pendingCopies(state: CopyState, onPrimary: string[]): string[] {
  return onPrimary.filter((id) => state.recorded.has(id) && !state.copied.has(id)).sort(compareSnapshotIds);
}

export interface CopyJob {
  ctx: Context;
  config: Config;
  repository: RepositoryConfig;
  primary: RepositoryStore;
  secondary: Secondary;
  records: RecordStore;
  pool: HashPool;
  trigger: 'scheduled' | 'manual';
  operator: string | undefined;
  /** Compare the newest copy at CSC with the primary's again (the repository was backed up in this run). */
  verifyNewest: boolean;
  redact: Redact;
}

export interface CopyOutcome {
  ok: boolean;
  copied: string[];
}

/** The label a copy carries on FOR 7.5 CSC 02: host, repository and snapshot. */
export function copyLabel(host: string, repository: string, id: string): string {
  return `${host}/${repository}/${id}`;
}

export async function copyRepository(job: CopyJob): Promise<CopyOutcome> {
  const { ctx, config, repository: repo, primary, secondary, records } = job;
  const state = await readCopyState(records, repo.name);
  const onPrimary = await primary.snapshots();
  const pending = pendingCopies(state, onPrimary);
  const newest = onPrimary.filter((id) => state.copied.has(id)).at(-1);
  const recheck = job.verifyNewest && newest !== undefined && !pending.includes(newest) ? newest : undefined;
  const copied: string[] = [];
  // The point-in-time-recovery archive grows between backups: it goes to CSC on every run.
  const archive = repo.kind === 'database' && repo.pitr && (await exists(join(primary.base, 'archive'))) ? join(primary.base, 'archive') : undefined;
  if (!pending.length && !recheck && !archive) return { ok: true, copied };

  const store = secondary.repository(config.host, repo.name);
  const who = { trigger: job.trigger, ...(job.operator ? { operator: job.operator } : {}) };
  const snapshotRef = async (id: string) => {
    const { summary, bytes } = await primary.readSummary(id);
    return { summary, ref: { id, target: 'secondary' as const, location: store.snapshotLocation(id), digest: digestOf(bytes), manifest: summary.manifest } };
  };
  const record = async (id: string, started: Date, method: 'rsync-checksum', repair: boolean) => {
    const { summary, ref } = await snapshotRef(id);
    const body: RecordBody<'copy'> = {
      repository: repo.name,
      kind: repo.kind,
      ...who,
      started: started.toISOString(),
      finished: ctx.now().toISOString(),
      snapshot: ref,
      from: 'primary',
      to: 'secondary',
      label: copyLabel(config.host, repo.name, id),
      bytes: summary.size.bytes,
      files: summary.size.files,
      ...(repair ? { repair: true } : {}),
      verified: { method, result: 'ok', manifest: summary.manifest },
    };
    const appended = await records.append('copy', body);
    copied.push(id);
    ctx.reporter.event({ type: 'copied', repository: repo.name, snapshot: id, seq: appended.seq, repair });
  };

  try {
    await secondary.check(ctx.signal);
    const there = await store.snapshots(ctx.signal);
    for (const id of pending) {
      if (ctx.signal.aborted) break;
      const started = ctx.now();
      if (there.includes(id)) {
        // Published by a run that stopped before recording it: recorded once it matches.
        const differences = await store.differences(primary.snapshotDir(id), id, 'snapshots', ctx.signal);
        if (differences.length) await replace(job, store, id, differences);
        await record(id, started, 'rsync-checksum', differences.length > 0);
        continue;
      }
      const linkFrom = there.filter((s) => compareSnapshotIds(s, id) < 0).at(-1);
      await deliverExact(store, primary.snapshotDir(id), id, linkFrom, ctx.signal);
      await store.publish(primary.snapshotDir(id), id, false, ctx.signal);
      there.push(id);
      there.sort(compareSnapshotIds);
      await record(id, started, 'rsync-checksum', false);
    }
    if (archive && !ctx.signal.aborted) await store.deliverArchive(archive, ctx.signal);
    if (recheck && !ctx.signal.aborted) {
      const started = ctx.now();
      const differences = await store.differences(primary.snapshotDir(recheck), recheck, 'snapshots', ctx.signal);
      const { summary, ref } = await snapshotRef(recheck);
      const appended = await records.append('verify', {
        repository: repo.name,
        kind: repo.kind,
        ...who,
        started: started.toISOString(),
        finished: ctx.now().toISOString(),
        snapshot: ref,
        checksum: { scope: 'full', files: summary.size.files, bytes: summary.size.bytes, mismatches: differences.length },
        result: differences.length ? 'failed' : 'ok',
        problems: differences.slice(0, 20).map(problemOf),
      });
      if (differences.length) {
        ctx.reporter.event({ type: 'warning', repository: repo.name, message: `the copy of snapshot ${recheck} at the secondary target differs from the primary's in ${differences.length} place(s) (record ${appended.seq}); copying it again` });
        await replace(job, store, recheck, differences);
        await record(recheck, started, 'rsync-checksum', true);
      }
    }
    return { ok: true, copied };
  } catch (e) {
    if (e instanceof RespaldoError) throw e;
    const failure = e instanceof BackupFailure ? e : ctx.signal.aborted ? new BackupFailure('interrupted', 'the run was interrupted during the copy to the secondary target', 'run again; the copies wait') : new BackupFailure('copy', `the copy to the secondary target failed: ${messageOf(e)}`, 'run again; if it fails again, report it with this message');
    const waiting = pending.filter((id) => !copied.includes(id));
    const oldest = waiting[0] ? state.recorded.get(waiting[0]) : undefined;
    const queue = waiting.length ? ` ${waiting.length} snapshot(s) wait for the secondary target${oldest ? `, the oldest recorded ${oldest.toISOString()}` : ''} (${waiting.slice(0, 3).join(', ')}${waiting.length > 3 ? ', …' : ''}).` : '';
    const appended = await records.append('failure', {
      repository: repo.name,
      kind: repo.kind,
      ...who,
      stage: failure.stage,
      cause: job.redact(`${failure.message}.${queue}`),
      ...(failure.extra.detail ? { detail: job.redact(failure.extra.detail) } : {}),
      ...(failure.extra.exitCode !== undefined ? { exit_code: failure.extra.exitCode } : {}),
      hint: job.redact(failure.hint),
      previous_snapshot: onPrimary.at(-1) ?? null,
    });
    ctx.reporter.event({ type: 'repo-failed', repository: repo.name, cause: `copy to the secondary target: ${failure.message}`, hint: failure.hint, seq: appended.seq });
    return { ok: false, copied };
  }
}

/**
 * "path: what differs" from one of rsync's itemized lines ("`<fc.t...... data/etc/x`"): a
 * file to send is `<f` when the target is remote (SSH, a daemon), `>f` when it is a path.
 */
function problemOf(line: string): { path: string; problem: string } {
  const [flags = '', ...rest] = line.split(' ');
  const path = rest.join(' ');
  const file = /^[<>]f/.test(flags);
  if (flags === '*deleting') return { path, problem: 'at the secondary target but not in the primary snapshot' };
  if (file && flags[2] === '+') return { path, problem: 'missing at the secondary target' };
  if (file && flags[2] === 'c') return { path, problem: 'its bytes differ from the primary\'s copy (checksum)' };
  return { path, problem: `differs from the primary's copy (rsync: ${flags})` };
}

/**
 * Copies a snapshot into `incomplete/` at the target and compares it there. A file linked
 * from an older copy that has been damaged since would make the new copy differ too: then
 * it is copied once more with `--checksum`, which links a file only when its bytes match.
 */
async function deliverExact(store: SecondaryRepository, dir: string, id: string, linkFrom: string | undefined, signal: AbortSignal, checksum = false): Promise<void> {
  try {
    // The disk at CSC writes the copy back while the comparison reads it from its cache.
    const compare = async () => (await Promise.all([store.differences(dir, id, 'incomplete', signal), store.flush(id, signal)]))[0];
    await store.deliver(dir, id, linkFrom, checksum, signal);
    let differences = await compare();
    if (differences.length && linkFrom && !checksum) {
      await store.deliver(dir, id, linkFrom, true, signal);
      differences = await compare();
    }
    if (differences.length)
      throw new BackupFailure('copy', `the copy of snapshot ${id} at the secondary target does not match the primary's after the transfer: ${differences.length} difference(s); first: ${differences[0]}`, "check the secondary target's disk (dmesg, smartctl); the copy is retried on the next run", {
        detail: differences.slice(0, 20).join('\n'),
      });
  } catch (e) {
    await store.discard(id);
    throw e;
  }
}

/**
 * Replaces a damaged copy at CSC. The primary's copy is re-read against its manifest
 * first: a repair from a primary that is damaged itself would spread the damage.
 */
async function replace(job: CopyJob, store: SecondaryRepository, id: string, differences: string[]): Promise<void> {
  const check = await checkSnapshot(job.primary, id, job.pool, job.ctx.signal);
  if (check.checksum.mismatches > 0)
    throw new BackupFailure(
      'copy',
      `the copy of snapshot ${id} at the secondary target differs from the primary's (${differences.length} place(s)), and the primary's copy no longer matches its manifest either (${check.checksum.mismatches} file(s); first: ${check.problems[0]!.path}): neither copy was changed`,
      'check both disks (dmesg, smartctl); restore from whichever copy matches its manifest (respaldo restore checks every file) and take a fresh backup',
      { detail: [...differences.slice(0, 10), ...check.problems.slice(0, 10).map((p) => `${p.path}: ${p.problem}`)].join('\n') },
    );
  // Linked to the damaged copy only where the bytes match (--checksum from the start).
  await deliverExact(store, job.primary.snapshotDir(id), id, id, job.ctx.signal, true);
  await store.publish(job.primary.snapshotDir(id), id, true, job.ctx.signal);
}
