/**
 * Pruning one repository on one target: the retention rules (retention.ts) and, over them,
 * the safety rules that no configuration turns off:
 *
 * 1. the newest verified snapshot is kept. A snapshot in `snapshots/` was verified before
 *    it was made visible; one whose latest `verify` record on this target failed, or whose
 *    summary cannot be read any more, does not count, and the next older one is kept;
 * 2. nothing is deleted while the repository's latest backup failed. rsnapshot's rotation
 *    famously ate every good backup after a run of failures: here a run of failures holds
 *    every snapshot until a backup succeeds again;
 * 3. for point-in-time recovery, only archive files older than what the oldest kept
 *    snapshot needs are deleted (archive-prune.ts), so the kept window has no gap;
 * 4. records are never touched: the prune itself is one more record.
 *
 * A target is reached through the small `PruneStore` interface, so that a remote target
 * (CSC's copy) prunes the same way.
 */
import { compareSnapshotIds } from '../schemas/common.js';
import type { Retention, RepositoryConfig } from '../schemas/config.js';
import type { RecordBody } from '../schemas/record.js';
import type { SnapshotSummary } from '../schemas/snapshot.js';
import { planArchive, type ArchiveFolder, type ArchivePlan } from './databases/archive-prune.js';
import { messageOf } from './errors.js';
import type { RepositoryHistory } from './history.js';
import type { RecordStore } from './records.js';
import { applyRetention, type Kept } from '../schemas/retention.js';
import { formatZoned } from '../schemas/zoned.js';

/** What pruning needs of a repository's folder on a target. `RepositoryStore` (target.ts) is the local one. */
export interface PruneStore {
  /** `<host>/<repository>`, relative to the target: for messages. */
  readonly rel: string;
  /** Complete snapshots, oldest first. */
  snapshots(): Promise<string[]>;
  /** Throws when the snapshot's `snapshot.yaml` cannot be read or does not parse. */
  readSummary(id: string): Promise<{ summary: SnapshotSummary }>;
  /** A file of a snapshot's data folder; undefined when there is none. */
  readSnapshotFile(id: string, rel: string): Promise<Buffer | undefined>;
  /** Deletes a complete snapshot so that a crash leaves it whole or a leftover that `removeLeftovers` clears. */
  removeSnapshot(id: string): Promise<void>;
  /** Clears what an interrupted deletion left; returns the snapshot ids it cleared. */
  removeLeftovers(): Promise<string[]>;
  /** The names in the archive's `wal` or `binlog` folder (none when it does not exist). */
  archiveFiles(folder: ArchiveFolder): Promise<string[]>;
  removeArchiveFile(folder: ArchiveFolder, name: string): Promise<void>;
}

/** One copy of the repositories: JAA's (`primary`) or CSC's (`secondary`). */
export interface PruneTarget {
  role: 'primary' | 'secondary';
  store: PruneStore;
}

/** What the host's records say of a repository, for pruning it on one target. */
export interface PruneFacts {
  /** The newest failure, when it is newer than the last good backup (history.ts). */
  failing: RepositoryHistory['failing'];
  /** Snapshots on this target whose latest `verify` record failed, with that record's seq. */
  damaged: Map<string, number>;
  /** Snapshots kept whatever the rules say, with why: on the primary, those not yet copied to CSC. */
  pinned?: Map<string, string>;
}

export interface PrunePlan {
  /** Oldest first, each with why it is kept. */
  keep: Kept[];
  /** Oldest first. */
  remove: string[];
  /** Why nothing is deleted although the rules would delete some. */
  held: string | undefined;
  /** The newest snapshot known to be good, kept whatever the rules say. */
  newestVerified: string | undefined;
  archive: ArchivePlan | undefined;
  /** What the user should know: snapshots that do not count as verified, an archive left whole. */
  notes: string[];
}

/** Decides what to delete; deletes nothing. */
export async function planPrune(repo: RepositoryConfig, rules: Retention, store: PruneStore, facts: PruneFacts, zone: string, now: Date): Promise<PrunePlan> {
  const ids = await store.snapshots();
  const policy = applyRetention(ids, rules, zone, now);
  const reasons = new Map(policy.keep.map((k) => [k.id, [...k.reasons]]));
  const add = (id: string, reason: string) => reasons.set(id, [...(reasons.get(id) ?? []), reason]);
  const notes: string[] = [];

  let newestVerified: string | undefined;
  for (const id of [...ids].reverse()) {
    const failed = facts.damaged.get(id);
    if (failed !== undefined) {
      notes.push(`snapshot ${id} failed its latest verification (record ${failed}): it does not count as the newest verified snapshot`);
      continue;
    }
    try {
      await store.readSummary(id);
      newestVerified = id;
      break;
    } catch (e) {
      notes.push(`${messageOf(e)}: it does not count as the newest verified snapshot`);
    }
  }

  let held: string | undefined;
  if (facts.failing)
    held = `the latest backup failed (failure record ${facts.failing.seq}, ${formatZoned(facts.failing.at, zone)}: ${facts.failing.cause}); nothing is deleted until a backup succeeds, so that a run of failures cannot rotate the last good copies away`;
  else if (ids.length && !newestVerified) held = 'no snapshot on this target is known to be good (see above); nothing is deleted until a backup succeeds or the damaged snapshots are moved aside';
  if (newestVerified) add(newestVerified, 'newest verified snapshot');
  for (const [id, why] of facts.pinned ?? []) if (ids.includes(id)) add(id, why);
  if (held) for (const id of policy.remove) add(id, facts.failing ? 'held: the latest backup failed' : 'held: no snapshot is known to be good');

  const keep = ids.filter((id) => reasons.has(id)).map((id) => ({ id, reasons: reasons.get(id)! }));
  const archive = !held && repo.kind === 'database' && repo.pitr && repo.engine !== 'sqlite' && keep.length ? await planArchive(repo.engine, store, keep.map((k) => k.id)) : undefined;
  if (archive?.note) notes.push(archive.note);
  return { keep, remove: ids.filter((id) => !reasons.has(id)), held, newestVerified, archive, notes };
}

export interface PruneOutcome {
  deleted: string[];
  archiveDeleted: number;
  /** The error that stopped the deletions; what was deleted before it is in `deleted`. */
  error: Error | undefined;
}

/**
 * Deletes what the plan says: the snapshots oldest first, then the archive files oldest
 * first. Snapshots go first, so that a prune stopped half-way never leaves a kept snapshot
 * without its archive; within the archive, oldest first, so that what remains is always
 * one unbroken run.
 */
export async function applyPrune(plan: PrunePlan, store: PruneStore): Promise<PruneOutcome> {
  const deleted: string[] = [];
  let archiveDeleted = 0;
  try {
    for (const id of plan.remove) {
      await store.removeSnapshot(id);
      deleted.push(id);
    }
    for (const name of plan.archive?.remove ?? []) {
      await store.removeArchiveFile(plan.archive!.folder, name);
      archiveDeleted++;
    }
    return { deleted, archiveDeleted, error: undefined };
  } catch (e) {
    return { deleted, archiveDeleted, error: e instanceof Error ? e : new Error(String(e)) };
  }
}

/** The `prune` record of one repository on one target. */
export function pruneRecordBody(
  repo: RepositoryConfig,
  role: PruneTarget['role'],
  rules: Retention,
  plan: PrunePlan,
  outcome: PruneOutcome,
  runBy: { trigger: 'scheduled' | 'manual'; operator: string | undefined },
): RecordBody<'prune'> {
  // Snapshots a failed deletion left in place are kept, and the record says why.
  const left = plan.remove.filter((id) => !outcome.deleted.includes(id));
  const leftReason = `not deleted: the prune stopped at an error (${outcome.error ? messageOf(outcome.error) : 'unknown'})`;
  const kept = [...plan.keep, ...left.map((id) => ({ id, reasons: [leftReason] }))].sort((a, b) => compareSnapshotIds(a.id, b.id));
  return {
    repository: repo.name,
    kind: repo.kind,
    ...(repo.request ? { request: repo.request } : {}),
    trigger: runBy.trigger,
    ...(runBy.operator ? { operator: runBy.operator } : {}),
    target: role,
    rules: { ...rules },
    kept,
    deleted: outcome.deleted,
    ...(plan.held ? { held: plan.held } : {}),
    archive_segments_deleted: outcome.archiveDeleted,
    ...(plan.archive?.neededFrom ? { archive_needed_from: plan.archive.neededFrom } : {}),
  };
}

/**
 * The latest `verify` result of every snapshot, by repository and target, from the host's
 * records: a snapshot whose latest check failed is not counted as verified.
 */
export async function readVerifications(records: RecordStore): Promise<Map<string, Map<string, number>>> {
  const seen = new Set<string>();
  const damaged = new Map<string, Map<string, number>>();
  for (const file of await records.list()) {
    if (file.type !== 'verify') continue;
    const record = await records.read(file);
    if (record?.type !== 'verify') continue;
    const key = verificationKey(record.repository, record.target);
    // Newest first: the first record of a snapshot is its latest check. A check that read
    // only some files (or none), or could not check the snapshot, does not clear damage an
    // earlier one found.
    for (const snapshot of record.snapshots) {
      if (snapshot.result === 'unchecked' || (snapshot.result === 'ok' && record.read.data !== 'all')) continue;
      const snapshotKey = `${key}\0${snapshot.id}`;
      if (seen.has(snapshotKey)) continue;
      seen.add(snapshotKey);
      if (snapshot.result !== 'failed') continue;
      if (!damaged.has(key)) damaged.set(key, new Map());
      damaged.get(key)!.set(snapshot.id, record.seq);
    }
  }
  return damaged;
}

/** The key of `readVerifications`' map. */
export function verificationKey(repository: string, role: PruneTarget['role']): string {
  return `${repository}\0${role}`;
}
