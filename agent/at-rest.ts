/**
 * Verify at rest: stored snapshots checked again where they lie, long after their backup,
 * for bit rot, a lost file or a tampered one (`respaldo verify`, and a share every day in
 * `respaldo run`). On one target, every snapshot of a repository is listed and compared
 * with its manifest; each `manifest.jsonl` and `snapshot.yaml` is matched against the
 * digests of the snapshot's backup record (signed), and the files' bytes are read back as
 * asked: all, none, or the next share of a rotation.
 *
 * The rotation places every file by the first 32 bits of its SHA-256, on a circle from 0 to
 * 1; a subset read covers the arc from where the previous one stopped (the newest subset's
 * `to` in the records). `respaldo run` reads, each day, the share of the circle that the
 * time since its last read is of `verify.reread-within` (default 30 days): its arcs follow
 * each other, and their shares add up to one circle within that period, so every stored
 * file is read at least once within it, whatever days the server was off. A file hard-linked
 * into several snapshots is read once.
 */
import { Readable } from 'node:stream';
import type { RepositoryConfig } from '../schemas/config.js';
import type { ManifestEntry } from '../schemas/manifest.js';
import { compareSnapshotIds, parseDuration } from '../schemas/common.js';
import type { RecordBody } from '../schemas/record.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import type { StoredCheck, StoredSnapshot } from './copy-check.js';
import { workHeader, type RecordStore } from './records.js';
import type { SecondaryRepository } from './secondary.js';
import { parseManifest, type PrimaryStore } from './target.js';

export type Role = 'primary' | 'secondary';

/** Which files' bytes a check reads: every one, none (listings and manifests only), or the next `share` (0 to 1) of the rotation. */
export type DataRead = { data: 'all' } | { data: 'none' } | { data: 'subset'; share: number };

/** The default of `verify.reread-within`. */
export const DEFAULT_REREAD_MS = 30 * 86_400_000;
const DAY_MS = 86_400_000;

/** What the host's records say that verify at rest needs, per repository. */
export interface AtRestState {
  /**
   * Snapshot id → the SHA-256 (hex) of its `snapshot.yaml` and `manifest.jsonl` from its
   * backup record (a copy record's only when no backup record names it): what the snapshot
   * was when it was made, not what a later copy found.
   */
  digests: Map<string, { summary: string; manifest: string }>;
  /** Per target: the snapshots the records keep there (made or copied, and not pruned), with the record that put each there. */
  kept: Map<Role, Map<string, number>>;
  /** Per target: when the newest daily share of `respaldo run` started. */
  lastRead: Map<Role, Date>;
  /** Per target: where the rotation stopped (the newest subset's `to`); 0 before the first. */
  rotation: Map<Role, number>;
  /**
   * Per target, for `respaldo status`: the newest check of the stored copies, or the newest
   * failed one when no check that read every file has passed since (a later share that read
   * other files does not clear it).
   */
  lastCheck: Map<Role, { at: Date; result: 'ok' | 'failed'; seq: number }>;
}

const emptyState = (): AtRestState => ({ digests: new Map(), kept: new Map([['primary', new Map()], ['secondary', new Map()]]), lastRead: new Map(), rotation: new Map(), lastCheck: new Map() });

/** Reads, once, the host's backup, copy, prune and verify records; by repository. */
export async function readAtRestStates(records: RecordStore): Promise<Map<string, AtRestState>> {
  const states = new Map<string, AtRestState>();
  const of = (repository: string) => states.get(repository) ?? states.set(repository, emptyState()).get(repository)!;
  const hex = (digest: string) => digest.replace(/^sha256:/, '');
  const pruned = new Set<string>();
  const passedInFull = new Set<string>();
  // Newest first.
  for (const file of await records.list()) {
    if (file.type !== 'backup' && file.type !== 'copy' && file.type !== 'verify' && file.type !== 'prune') continue;
    const r = await records.read(file);
    if (!r) continue;
    if (r.type === 'backup' || r.type === 'copy') {
      const state = of(r.repository);
      const digests = { summary: hex(r.snapshot.digest), manifest: hex(r.snapshot.manifest) };
      const role: Role = r.type === 'backup' ? 'primary' : 'secondary';
      // A backup record is older than the copy records of its snapshot, so read after them: its digests win.
      if (r.type === 'backup' || !state.digests.has(r.snapshot.id)) state.digests.set(r.snapshot.id, digests);
      if (!pruned.has(`${r.repository}/${role}/${r.snapshot.id}`) && !state.kept.get(role)!.has(r.snapshot.id)) state.kept.get(role)!.set(r.snapshot.id, r.seq);
    } else if (r.type === 'prune') {
      for (const id of r.deleted) pruned.add(`${r.repository}/${r.target}/${id}`);
    } else if (r.type === 'verify') {
      const state = of(r.repository);
      const check = { at: new Date(r.finished), result: r.result, seq: r.seq };
      const shown = state.lastCheck.get(r.target);
      const key = `${r.repository}/${r.target}`;
      if (!shown || (shown.result === 'ok' && r.result === 'failed' && !passedInFull.has(key))) state.lastCheck.set(r.target, check);
      if (r.reason !== 'before-copy' && r.read.data === 'all' && r.result === 'ok') passedInFull.add(key);
      if (r.reason === 'before-copy') continue;
      if (r.read.subset && !state.rotation.has(r.target)) state.rotation.set(r.target, r.read.subset.to);
      if (r.reason === 'rotation' && !state.lastRead.has(r.target)) state.lastRead.set(r.target, new Date(r.started));
    }
  }
  return states;
}

export function atRestStateOf(states: Map<string, AtRestState>, repository: string): AtRestState {
  return states.get(repository) ?? emptyState();
}

/** A repository's `verify.reread-within` (or the host's), in milliseconds; undefined for `never`. */
export function rereadPeriod(config: Config, repo: RepositoryConfig): number | undefined {
  const setting = repo.verify?.['reread-within'] ?? config.verify?.['reread-within'];
  if (setting === 'never') return undefined;
  return setting ? parseDuration(setting)! : DEFAULT_REREAD_MS;
}

/**
 * What `respaldo run` reads on a target now, or undefined when nothing is due: once a day
 * (or once per period, when shorter), the share of the rotation that the time since the last
 * read is of the period; everything once a whole period has gone by. Before the first read,
 * a day's share once the oldest snapshot is a day old: a deployment that turns this on does
 * not read years of snapshots at once at 3 a.m.
 */
export function scheduledRead(period: number, lastRead: Date | undefined, oldest: Date | undefined, now: Date): DataRead | undefined {
  const step = Math.min(DAY_MS, period);
  const since = lastRead ?? (oldest ? new Date(Math.max(oldest.getTime(), now.getTime() - step)) : undefined);
  if (!since) return undefined;
  const elapsed = now.getTime() - since.getTime();
  // An hourly cron reaches this a little earlier or later each day: a few minutes short of
  // a day is a day (the share counts the time as it is).
  if (elapsed < step - Math.min(DUE_EARLY_MS, step / 4)) return undefined;
  const share = elapsed / period;
  return share >= 0.99 ? { data: 'all' } : { data: 'subset', share };
}

/** How early a daily share may start: an hourly cron's jitter. */
const DUE_EARLY_MS = 30 * 60_000;

/** Where a file stands in the rotation: the first 32 bits of its SHA-256, as a fraction of 1. */
export function position(sha256: string): number {
  return parseInt(sha256.slice(0, 8), 16) / 2 ** 32;
}

/** Rounded to six places, as records keep positions. */
const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** The arc of the rotation a subset read covers: from `from`, `share` of the circle, wrapping past 1. */
export function arc(from: number, share: number): { from: number; to: number } {
  const s = Math.min(Math.max(share, 0.000001), 0.999999);
  return { from, to: round((from + s) % 1) };
}

/** True when `p` lies on the arc from `from` to `to` (its end excluded, past 1 to 0). */
export function onArc(p: number, a: { from: number; to: number }): boolean {
  return (p - a.from + 1) % 1 < (a.to - a.from + 1) % 1;
}

export interface AtRestJob {
  ctx: Context;
  config: Config;
  repository: RepositoryConfig;
  records: RecordStore;
  role: Role;
  primary: PrimaryStore;
  /** CSC's store of the repository, for `role: secondary`. */
  secondary?: SecondaryRepository;
  read: DataRead;
  state: AtRestState;
  /** `rotation`: respaldo run's daily share; `at-rest`: respaldo verify. */
  reason: 'at-rest' | 'rotation';
  trigger: 'scheduled' | 'manual';
  operator: string | undefined;
}

export type AtRestOutcome =
  | { skipped: string }
  | { seq: number; result: 'ok' | 'failed'; snapshots: number; problems: number; files: number; bytes: number; subset?: { from: number; to: number }; first?: string; unchecked: string[] };

/** Checks every snapshot of a repository on one target and writes the `verify` record. Throws a BackupFailure when the target cannot be read. */
export async function verifyAtRest(job: AtRestJob): Promise<AtRestOutcome> {
  const { ctx, repository: repo, primary, secondary, role, state } = job;
  const started = ctx.now();
  const onPrimary = await primary.snapshots();
  const listed = role === 'primary' ? onPrimary : await secondary!.snapshots(ctx.signal);
  const primaryHas = new Set(onPrimary);
  // What the records keep on this target and is not there: lost, unless moved aside by hand
  // as damaged (backup.ts's advice for a damaged snapshot on the primary).
  const missing = new Map<string, number>();
  for (const [id, seq] of state.kept.get(role) ?? []) {
    if (listed.includes(id)) continue;
    if (role === 'primary' && (await primary.movedAside(id))) continue;
    missing.set(id, seq);
  }
  const ids = [...listed, ...missing.keys()].sort(compareSnapshotIds);
  if (!ids.length) return { skipped: `no snapshots on the ${role} target` };

  const snapshots: StoredSnapshot[] = [];
  for (const id of listed) {
    const expected = state.digests.get(id);
    let entries = () => primary.manifestEntries(id);
    // At CSC, the files are matched against the primary's manifest when it is the one the
    // record names (nothing crosses the connection), or else against CSC's own, fetched
    // when it is needed.
    if (role === 'secondary') {
      const primaryOk = primaryHas.has(id) && (expected === undefined || (await primary.fileDigest(id, 'manifest.jsonl').catch(() => undefined)) === `sha256:${expected.manifest}`);
      if (!primaryOk)
        entries = async function* () {
          yield* parseManifest(Readable.from([(await secondary!.readManifest(id, ctx.signal)) ?? Buffer.alloc(0)]), `CSC's manifest.jsonl of snapshot ${id}`);
        };
    }
    snapshots.push({ id, entries, manifest: expected?.manifest, summary: expected?.summary });
  }

  const subset = job.read.data === 'subset' ? arc(state.rotation.get(role) ?? 0, job.read.share) : undefined;
  const pick = job.read.data === 'all' ? () => true : subset ? (e: ManifestEntry) => onArc(position(e.sha256 ?? ''), subset) : () => false;
  const check: StoredCheck =
    role === 'primary'
      ? await primary.checkStored(snapshots, pick, ctx.signal)
      : await secondary!.checkStored(snapshots, pick, async (id) => (primaryHas.has(id) ? primary.snapshotDir(id) : undefined), ctx.signal);
  for (const [id, seq] of missing) check.problems.set(id, [{ path: '', problem: `missing on the ${role} target, yet record ${seq} keeps it there and no prune record deleted it` }]);

  const problems = ids.flatMap((id) => (check.problems.get(id) ?? []).map((p) => ({ snapshot: id, ...p })));
  const result = problems.length ? ('failed' as const) : ('ok' as const);
  const unchecked = [...check.unchecked].map(([id, why]) => `snapshot ${id}: ${why}`);
  const body: RecordBody<'verify'> = {
    ...workHeader(repo, job, started, ctx.now()),
    reason: job.reason,
    target: role,
    method: role === 'primary' ? 'rehash' : secondary!.method,
    read: { data: job.read.data, ...(subset ? { subset } : {}), files: check.files, bytes: check.bytes },
    snapshots: ids.map((id) => {
      const found = check.problems.get(id)?.length ?? 0;
      const expected = state.digests.get(id);
      return {
        id,
        location: (role === 'primary' ? primary : secondary!).snapshotLocation(id),
        digest: expected ? `sha256:${expected.summary}` : null,
        manifest: expected ? `sha256:${expected.manifest}` : null,
        result: found ? 'failed' : check.unchecked.has(id) ? 'unchecked' : 'ok',
        problems: found,
      };
    }),
    result,
    problems: [...problems.slice(0, 20), ...[...check.unchecked].slice(0, Math.max(0, 20 - problems.length)).map(([id, why]) => ({ snapshot: id, path: '', problem: `not checked: ${why}` }))],
  };
  const appended = await job.records.append('verify', body);
  if (subset) state.rotation.set(role, subset.to);
  if (job.reason === 'rotation') state.lastRead.set(role, started);
  const first = problems[0];
  return {
    seq: appended.seq,
    result,
    snapshots: ids.length,
    problems: problems.length,
    files: check.files,
    bytes: check.bytes,
    ...(subset ? { subset } : {}),
    ...(first ? { first: `snapshot ${first.snapshot}: ${first.path ? `${first.path}: ` : ''}${first.problem}` } : {}),
    unchecked,
  };
}
