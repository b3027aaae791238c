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
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { compareSnapshotIds } from '../schemas/common.js';
import type { RepositoryConfig } from '../schemas/config.js';
import { entryPath, insideSnapshot, type ManifestEntry } from '../schemas/manifest.js';
import { digestOf, type RecordBody } from '../schemas/record.js';
import { failureBody } from './backup.js';
import type { Config } from './config.js';
import type { Context } from './context.js';
import { BackupFailure, messageOf, RespaldoError } from './errors.js';
import { exists } from './fsutil.js';
import type { HashPool } from './hashing.js';
import { checkSnapshot } from './manifest.js';
import type { CopyReference, Difference } from './copy-check.js';
import { RecordStore, workHeader } from './records.js';
import type { Redact } from './redact.js';
import type { Delivery, LinkPlan, Secondary, SecondaryRepository, SnapshotSource } from './secondary.js';
import type { PrimaryStore } from './target.js';

/** What the records say about one repository's copies. */
export interface CopyState {
  /** Snapshot id → when its first backup record was written: how long a pending copy has waited. */
  recorded: Map<string, Date>;
  /** Snapshots that a copy record says reached the secondary target and matched there, with the newest such record's seq. */
  copied: Map<string, number>;
  /**
   * Snapshots whose newest copy was found not to match since it was made, with what found it:
   * CSC's receipt (answering that copy record), or a check at rest of CSC's copies.
   */
  mismatched: Map<string, string>;
  /** Snapshot id → the digests of its `snapshot.yaml` and `manifest.jsonl` in its backup record ("sha256:…"): what a repair's source must still be. */
  digests: Map<string, { summary: string; manifest: string }>;
}

const emptyState = (): CopyState => ({ recorded: new Map(), copied: new Map(), mismatched: new Map(), digests: new Map() });

/**
 * Reads, once per run, the host's backup and copy records and the receipts other hosts
 * (CSC) signed for its copies; by repository.
 */
export async function readCopyStates(records: RecordStore): Promise<Map<string, CopyState>> {
  const states = new Map<string, CopyState>();
  const of = (repository: string) => states.get(repository) ?? states.set(repository, emptyState()).get(repository)!;
  // Newest first: the first copy record of a snapshot is its newest.
  for (const file of await records.list()) {
    if (file.type !== 'backup' && file.type !== 'copy' && file.type !== 'verify') continue;
    const record = await records.read(file);
    if (!record || (record.type !== 'backup' && record.type !== 'copy' && record.type !== 'verify')) continue;
    const state = of(record.repository);
    if (record.type === 'verify') {
      // A copy at CSC found damaged (or lost) at rest, and not copied again since (no newer
      // copy record, read before this one): copied again now.
      if (record.reason !== 'before-copy' && record.target === 'secondary')
        for (const s of record.snapshots) if (s.result === 'failed' && !state.copied.has(s.id) && !state.mismatched.has(s.id)) state.mismatched.set(s.id, `the check at rest of CSC's copies (verify record ${record.seq}) found it does not match its manifest`);
      continue;
    }
    if (record.type === 'backup') {
      if (!state.digests.has(record.snapshot.id)) state.digests.set(record.snapshot.id, { summary: record.snapshot.digest, manifest: record.snapshot.manifest });
      const at = new Date(record.at);
      const known = state.recorded.get(record.snapshot.id);
      if (!known || known > at) state.recorded.set(record.snapshot.id, at);
    } else if (record.verified.result === 'ok' && !state.copied.has(record.snapshot.id)) state.copied.set(record.snapshot.id, record.seq);
  }
  // The newest receipt of each snapshot counts, when it answers the newest copy record.
  const answered = new Set<string>();
  for (const other of await readdir(join(records.dir, 'hosts')).catch(() => [] as string[])) {
    if (other === records.host) continue;
    const store = new RecordStore(records.dir, other, undefined, () => new Date());
    for (const file of await store.list()) {
      if (file.type !== 'receipt') continue;
      const r = await store.read(file);
      if (r?.type !== 'receipt' || r.origin !== records.host || answered.has(`${r.repository}/${r.snapshot}`)) continue;
      answered.add(`${r.repository}/${r.snapshot}`);
      const state = of(r.repository);
      if (r.result === 'mismatch' && state.copied.get(r.snapshot) === r.copy.seq && !state.mismatched.has(r.snapshot)) state.mismatched.set(r.snapshot, `CSC's receipt (${other}'s record ${r.seq}) says the copy does not match its manifest`);
    }
  }
  return states;
}

/** One repository's state from `readCopyStates` (empty when it has no records yet). */
export function copyStateOf(states: Map<string, CopyState>, repository: string): CopyState {
  return states.get(repository) ?? emptyState();
}

/** Snapshots on the primary that a backup record names and no copy record does yet, oldest first. */
export function pendingCopies(state: CopyState, onPrimary: string[]): string[] {
  return onPrimary.filter((id) => state.recorded.has(id) && !state.copied.has(id)).sort(compareSnapshotIds);
}

export interface CopyJob {
  ctx: Context;
  config: Config;
  repository: RepositoryConfig;
  primary: PrimaryStore;
  secondary: Secondary;
  records: RecordStore;
  pool: HashPool;
  trigger: 'scheduled' | 'manual';
  operator: string | undefined;
  /** Compare the newest copy at CSC with the primary's again (the repository was backed up in this run). */
  verifyNewest: boolean;
  redact: Redact;
  /** From readCopyStates, read once for the run. */
  state: CopyState;
}

/** How often what a transfer wrote at CSC is flushed while it goes on. */
const EARLY_FLUSH_MS = 2000;
/** Milliseconds as seconds to the millisecond, as the events report them. */
const seconds = (ms: number) => Math.round(ms) / 1000;

/** A copy that sends fewer bytes than this shares the run's SSH connection (see SecondaryStore.deliver). */
const SMALL_BYTES = 64 << 20;

/** A snapshot that waited longer than this for CSC is re-read against its manifest before it is sent. */
const STALE_MS = 3_600_000;

export interface CopyOutcome {
  ok: boolean;
  copied: string[];
}

/** The label a copy carries on FOR 7.5 CSC 02: host, repository and snapshot. */
export function copyLabel(host: string, repository: string, id: string): string {
  return `${host}/${repository}/${id}`;
}

export async function copyRepository(job: CopyJob): Promise<CopyOutcome> {
  const { ctx, config, repository: repo, primary, secondary, records, state } = job;
  const onPrimary = await primary.snapshots();
  const pending = pendingCopies(state, onPrimary);
  const newest = onPrimary.filter((id) => state.copied.has(id)).at(-1);
  // Each run that backs up the repository re-reads its newest copy at CSC in full, before a
  // new copy is linked to it: a file damaged there since is found and replaced first, and
  // never carried into the new copy as a hard link.
  const recheck = job.verifyNewest && newest !== undefined ? newest : undefined;
  // Copies CSC's receipts found damaged: replaced, each after the primary's is re-read.
  const mismatched = onPrimary.filter((id) => state.mismatched.has(id));
  const copied: string[] = [];
  // The point-in-time-recovery archive grows between backups: it goes to CSC on every run.
  const archive = primary.local && repo.kind === 'database' && repo.pitr && (await exists(join(primary.base, 'archive'))) ? join(primary.base, 'archive') : undefined;
  if (!pending.length && !recheck && !archive && !mismatched.length) return { ok: true, copied };

  const store = secondary.repository(config.host, repo.name);
  const summaries = new Map<string, ReturnType<PrimaryStore['readSummary']>>();
  const readSummary = (id: string) => summaries.get(id) ?? summaries.set(id, primary.readSummary(id)).get(id)!;
  const snapshotRef = async (id: string) => {
    const { summary, bytes } = await readSummary(id);
    return { summary, ref: { id, target: 'secondary' as const, location: store.snapshotLocation(id), digest: digestOf(bytes), manifest: summary.manifest } };
  };
  const scope = new Map<string, 'changed' | 'full'>();
  /** What a copy of snapshot `id` must match; with `reread`, only the files it picks are read back. */
  const reference = async (id: string, linked?: { from: string; reread: (e: ManifestEntry) => boolean }): Promise<CopyReference> => {
    const { summary, bytes } = await readSummary(id);
    const hex = (digest: string) => digest.replace(/^sha256:/, '');
    return { dir: primary.snapshotDir(id), entries: () => primary.manifestEntries(id), manifest: hex(summary.manifest), summary: hex(digestOf(bytes)), ...(linked ? { reread: linked.reread, linkedFrom: linked.from } : {}) };
  };
  /** What copy and verify records begin with: the repository, who ran it, when. */
  const about = (started: Date) => workHeader(repo, job, started, ctx.now());
  const record = async (id: string, started: Date, repair: boolean, seconds?: Record<string, number>, readEarly?: number) => {
    const { summary, ref } = await snapshotRef(id);
    const body: RecordBody<'copy'> = {
      ...about(started),
      snapshot: ref,
      from: 'primary',
      to: 'secondary',
      label: copyLabel(config.host, repo.name, id),
      bytes: summary.size.bytes,
      files: summary.size.files,
      ...(repair ? { repair: true } : {}),
      verified: { method: store.method, scope: scope.get(id) ?? 'full', result: 'ok', manifest: summary.manifest },
    };
    const appended = await records.append('copy', body);
    copied.push(id);
    ctx.reporter.event({ type: 'copied', repository: repo.name, snapshot: id, seq: appended.seq, repair, ...(seconds ? { seconds } : {}), ...(readEarly !== undefined ? { readEarly } : {}) });
  };

  /** Compares a copy at CSC with the primary's in full and replaces it when they differ; true when it did. */
  const repaired = async (id: string, started: Date, differences?: Difference[]): Promise<boolean> => {
    const found = differences ?? (await store.differences(await reference(id), id, 'snapshots', ctx.signal));
    if (!found.length) return false;
    await replace(job, store, await reference(id), id, found);
    await record(id, started, true);
    return true;
  };

  // A repair that cannot be made (the primary's copy is damaged too) must not hold back the
  // copies of newer snapshots: it is reported once they are done.
  const unrepaired: BackupFailure[] = [];
  const attempt = (work: Promise<unknown>): Promise<boolean> =>
    work.then(
      () => true,
      (e: unknown) => {
        if (!(e instanceof BackupFailure) || ctx.signal.aborted) throw e;
        unrepaired.push(e);
        return false;
      },
    );
  try {
    await secondary.check(ctx.signal);
    const there = await store.prepare(ctx.signal);
    if (recheck && !ctx.signal.aborted) {
      const started = ctx.now();
      const differences = await store.differences(await reference(recheck), recheck, 'snapshots', ctx.signal);
      const { summary, ref } = await snapshotRef(recheck);
      const result = differences.length ? ('failed' as const) : ('ok' as const);
      const appended = await records.append('verify', {
        ...about(started),
        reason: 'before-copy',
        target: 'secondary',
        method: store.method,
        read: { data: 'all', files: summary.size.files, bytes: summary.size.bytes },
        snapshots: [{ id: ref.id, location: ref.location, digest: ref.digest, manifest: ref.manifest, result, problems: differences.length }],
        result,
        problems: differences.slice(0, 20).map((p) => ({ snapshot: recheck, ...p })),
      });
      if (differences.length) {
        ctx.reporter.event({ type: 'warning', repository: repo.name, message: `the copy of snapshot ${recheck} at the secondary target differs from the primary's in ${differences.length} place(s) (record ${appended.seq}); copying it again` });
        await attempt(repaired(recheck, started, differences));
        // A damaged file at CSC is one inode, hard-linked into the older copies that share
        // it: those are compared too, and replaced where they differ.
        for (const id of onPrimary.filter((x) => x !== recheck && state.copied.has(x) && there.includes(x))) {
          if (ctx.signal.aborted) break;
          await attempt(repaired(id, ctx.now()));
        }
      }
    }
    for (const id of mismatched) {
      if (ctx.signal.aborted || !there.includes(id) || copied.includes(id)) continue;
      const started = ctx.now();
      const why = state.mismatched.get(id)!;
      ctx.reporter.event({ type: 'warning', repository: repo.name, message: `${why}: copying snapshot ${id} again` });
      await attempt(repaired(id, started, [{ path: '', problem: why }]));
    }
    // Copies lost at CSC (a check at rest found them missing) go again like new ones.
    const lost = mismatched.filter((id) => !there.includes(id));
    for (const id of [...pending, ...lost].sort(compareSnapshotIds)) {
      if (ctx.signal.aborted) break;
      const started = ctx.now();
      if (there.includes(id)) {
        // Published by a run that stopped before recording it: recorded once it matches.
        if (!(await repaired(id, started))) await record(id, started, false);
        continue;
      }
      // A lost copy goes again from a primary copy re-read against its manifest and record.
      if (lost.includes(id) && !(await attempt(checkPrimary(job, id, `the copy of snapshot ${id} at the secondary target is lost, and `)))) continue;
      // A snapshot that waited for CSC (it was down) may have decayed on JAA's disk since its
      // backup checked it: a copy must not carry damage to CSC under an "ok" record. A copy
      // checked against the manifest cannot; one compared with the primary's files can.
      const waited = ctx.now().getTime() - (state.recorded.get(id)?.getTime() ?? 0);
      if (waited > STALE_MS && store.method === 'rsync-checksum' && !lost.includes(id)) await checkPrimary(job, id);
      const linkFrom = there.filter((s) => compareSnapshotIds(s, id) < 0).at(-1);
      // What changed since the older copy is worked out from the manifests while CSC links it.
      const changes = linkFrom && store.method === 'rehash' ? changesSince(primary, linkFrom, id).catch(() => undefined) : Promise.resolve(undefined);
      const ref = changes.then((c) => reference(id, c && linkFrom ? { from: linkFrom, reread: (e) => !c.inodes.has(e.ino) } : undefined));
      ref.catch(() => {});
      // What the backup stored anew since its previous snapshot is what goes to CSC, when
      // CSC has that one: under SMALL_BYTES it shares the run's SSH connection.
      const { summary } = await readSummary(id);
      const small = store.method === 'rehash' && linkFrom !== undefined && summary.previous?.id === linkFrom && summary.changed.bytes < SMALL_BYTES;
      const phases = await deliverExact(store, primary.snapshotSource(id), ref, id, { ...(linkFrom ? { linkFrom } : {}), small, plan: changes.then((c) => c?.plan) }, ctx.signal);
      scope.set(id, (await changes) ? 'changed' : 'full');
      const t1 = performance.now();
      await store.publish(primary.snapshotSource(id), id, false, ctx.signal);
      there.push(id);
      there.sort(compareSnapshotIds);
      await record(id, started, lost.includes(id), { ...phases, publish: seconds(performance.now() - t1) }, store.readEarly?.(id));
    }
    if (archive && !ctx.signal.aborted) await store.deliverArchive(archive, ctx.signal);
    if (unrepaired.length) throw unrepaired[0];
    return { ok: true, copied };
  } catch (e) {
    if (e instanceof RespaldoError) throw e;
    const failure = e instanceof BackupFailure ? e : ctx.signal.aborted ? new BackupFailure('interrupted', 'the run was interrupted during the copy to the secondary target', 'run again; the copies wait') : new BackupFailure('copy', `the copy to the secondary target failed: ${messageOf(e)}`, 'run again; if it fails again, report it with this message');
    const waiting = pending.filter((id) => !copied.includes(id));
    const oldest = waiting[0] ? state.recorded.get(waiting[0]) : undefined;
    const queue = waiting.length ? ` ${waiting.length} snapshot(s) wait for the secondary target${oldest ? `, the oldest recorded ${oldest.toISOString()}` : ''} (${waiting.slice(0, 3).join(', ')}${waiting.length > 3 ? ', …' : ''}).` : '';
    const appended = await records.append('failure', failureBody(repo, job, failure, job.redact, onPrimary.at(-1) ?? null, `.${queue}`));
    ctx.reporter.event({ type: 'repo-failed', repository: repo.name, cause: `copy to the secondary target: ${failure.message}`, hint: failure.hint, seq: appended.seq });
    return { ok: false, copied };
  } finally {
    // What was fetched here from a primary in an rsync daemon.
    await primary.release?.();
  }
}

/** Markers in changesSince's map of the older snapshot, where a file has its inode. */
const FOLDER = -1;
const OTHER = -2;
/** A copy's own entries outside `data/`, sent by every LinkPlan ("." for the folder's mode and time). */
const OWN_ENTRIES = ['.', 'data', 'manifest.jsonl', 'snapshot.yaml'];

/**
 * What snapshot `id` changed since `linkFrom`, by their manifests on the primary:
 * - `inodes`, of `linkFrom`'s files there: a file of `id` with another inode was stored
 *   anew, and is read back at CSC; the others are hard links on the primary, and at CSC too.
 * - `plan`, what a target that runs scripts removes from a hard-linked copy of `linkFrom`,
 *   and what rsync sends (see LinkPlan in secondary.ts).
 *
 * Undefined when `linkFrom` is no longer on the primary (every file is then read back);
 * without a plan when a path would lead through something that is not a folder, of the
 * older copy for what is removed or of the snapshot for what is sent (a manifest altered:
 * rsync then walks the tree as it does without a plan, and the check says what differs).
 */
async function changesSince(primary: PrimaryStore, linkFrom: string, id: string): Promise<{ inodes: Set<number>; plan?: LinkPlan } | undefined> {
  const inodes = new Set<number>();
  // The older snapshot's entries by path (bytes as latin1): inode, FOLDER or OTHER.
  const older = new Map<string, number>();
  const olderFolders = new Set<string>();
  try {
    for await (const e of primary.manifestEntries(linkFrom)) {
      const rel = entryPath(e);
      // A path no snapshot holds (a manifest altered): no plan removes anything by it.
      if (!insideSnapshot(rel)) return undefined;
      const key = rel.toString('latin1');
      if (e.type === 'f') inodes.add(e.ino);
      else if (e.type === 'd') olderFolders.add(key);
      older.set(key, e.type === 'f' ? e.ino : e.type === 'd' ? FOLDER : OTHER);
    }
  } catch {
    return undefined;
  }
  const send: string[] = [];
  const remove: string[] = [];
  const changed: string[] = [];
  const folders = new Set<string>();
  try {
    for await (const e of primary.manifestEntries(id)) {
      const rel = entryPath(e);
      if (!insideSnapshot(rel)) return { inodes };
      const key = rel.toString('latin1');
      const was = older.get(key);
      older.delete(key);
      if (e.type === 'f' && was === e.ino) continue;
      send.push(key);
      if (e.type === 'd') folders.add(key);
      // Another type there, or a link or special file (made anew): removed first. A file
      // that changed stays, as the base of rsync's delta, until rsync renames its new one over it.
      if (was !== undefined && !(e.type === 'f' && was >= 0) && !(e.type === 'd' && was === FOLDER)) remove.push(key);
      else if (e.type === 'f' && was !== undefined && was >= 0) changed.push(key);
    }
  } catch {
    return { inodes };
  }
  remove.push(...older.keys());
  const through = (key: string, dirs: Set<string>) => {
    for (let i = key.indexOf('/'); i !== -1; i = key.indexOf('/', i + 1)) if (!dirs.has(key.slice(0, i))) return false;
    return true;
  };
  if (!remove.every((k) => through(k, olderFolders)) || !send.every((k) => through(k, folders))) return { inodes };
  const list = (keys: string[], own: string[] = []) => Buffer.from([...own.map((k) => `${k}\0`), ...keys.map((k) => `data/${k}\0`)].join(''), 'latin1');
  return { inodes, plan: { send: list(send, OWN_ENTRIES), remove: list(remove), changed: list(changed) } };
}

/** "path: what differs", for messages. */
const describe = (d: Difference) => (d.path ? `${d.path}: ${d.problem}` : d.problem);

/**
 * Copies the primary's snapshot folder `dir` into `incomplete/` at the target (as `how`
 * says) and compares it there with the reference, which may still be being worked out
 * while the transfer starts: with its `reread`, the files stored anew are read back and the
 * whole tree is listed (the hard links to the older copy were read when it was made; the
 * newest copy's full comparison on later runs and CSC's receipts re-read them); otherwise
 * every file is read. A file linked from an older copy that was damaged since, or a plan
 * that went wrong, makes a comparison differ: the snapshot is then copied once more with
 * `--checksum` over the whole tree, which links a file only when its bytes match, and
 * every file is read back. The phases' seconds are returned for the `copied` event.
 */
async function deliverExact(store: SecondaryRepository, dir: SnapshotSource, reference: CopyReference | Promise<CopyReference>, id: string, how: Delivery, signal: AbortSignal): Promise<{ link?: number; transfer: number; compare: number; again?: number }> {
  const t0 = performance.now();
  try {
    // The disk at CSC writes the copy back while the comparison reads it from its cache.
    const compare = async (r: CopyReference) => (await Promise.all([store.differences(r, id, 'incomplete', signal), store.flush(id, signal)]))[0];
    const linkMs = await flushingAlong(store, id, signal, store.deliver(dir, id, how, signal));
    const t1 = performance.now();
    const ref = await reference;
    const { reread: _reread, linkedFrom: _linkedFrom, ...all } = ref;
    let differences = await compare(how.checksum ? all : ref);
    // The transfer made once more with --checksum, after the first copy differed.
    let againMs: number | undefined;
    if (differences.length && how.linkFrom && !how.checksum) {
      const t2 = performance.now();
      await store.deliver(dir, id, { linkFrom: how.linkFrom, checksum: true }, signal);
      againMs = performance.now() - t2;
      differences = await compare(all);
    }
    if (differences.length)
      throw new BackupFailure('copy', `the copy of snapshot ${id} at the secondary target does not match the primary's manifest after the transfer: ${differences.length} difference(s); first: ${describe(differences[0]!)}`, "check both disks (dmesg, smartctl): a file that differs from the manifest on JAA's disk too was damaged there, and respaldo verify on the primary names it; the copy is retried on the next run", {
        detail: differences.slice(0, 20).map(describe).join('\n'),
      });
    return {
      ...(linkMs !== undefined ? { link: seconds(linkMs) } : {}),
      transfer: seconds(t1 - t0 - (linkMs ?? 0)),
      compare: seconds(performance.now() - t1 - (againMs ?? 0)),
      ...(againMs !== undefined ? { again: seconds(againMs) } : {}),
    };
  } catch (e) {
    await store.discard(id);
    throw e;
  }
}

/**
 * Awaits `work` (a transfer into `incomplete/<id>`), flushing what it wrote at CSC to disk
 * every EARLY_FLUSH_MS meanwhile (the kernel would hold it for 30 s): the flush after the
 * transfer is then left with the last seconds' bytes (a second less for 2 GiB).
 */
async function flushingAlong<T>(store: SecondaryRepository, id: string, signal: AbortSignal, work: Promise<T>): Promise<T> {
  let flushing: Promise<void> | undefined;
  const early = setInterval(() => {
    flushing ??= store.flush(id, signal).then(
      () => (flushing = undefined),
      () => (flushing = undefined),
    );
  }, EARLY_FLUSH_MS);
  try {
    return await work;
  } finally {
    clearInterval(early);
    await flushing;
  }
}

/**
 * Re-reads the primary's copy of a snapshot against its manifest, and its manifest and
 * summary against the digests of its backup record; fails, changing nothing, when they do
 * not match.
 */
async function checkPrimary(job: CopyJob, id: string, context = '', differences: Difference[] = []): Promise<void> {
  const recorded = job.state.digests.get(id);
  if (recorded) {
    for (const [name, digest] of [['manifest.jsonl', recorded.manifest], ['snapshot.yaml', recorded.summary]] as const)
      if ((await job.primary.fileDigest(id, name)) !== digest)
        throw new BackupFailure(
          'copy',
          `${context}the primary's ${name} of snapshot ${id} no longer matches the digest its backup record carries: nothing was sent to the secondary target`,
          "check the primary disk (dmesg, smartctl); respaldo verify names what else is damaged; restore from whichever copy matches (respaldo restore checks every file, and borrows CSC's copy when JAA's is damaged)",
        );
  }
  const check = await checkSnapshot(job.primary, id, job.primary.hasher(job.pool), job.ctx.signal);
  if (check.checksum.mismatches > 0)
    throw new BackupFailure(
      'copy',
      `${context}the primary's copy of snapshot ${id} no longer matches its manifest (${check.checksum.mismatches} file(s); first: ${check.problems[0]!.path}): nothing was sent to the secondary target`,
      'check the primary disk (dmesg, smartctl); restore from whichever copy matches its manifest (respaldo restore checks every file, and borrows CSC\'s copy when JAA\'s is damaged) and take a fresh backup',
      { detail: [...differences.slice(0, 10).map(describe), ...check.problems.slice(0, 10).map((p) => `${p.path}: ${p.problem}`)].join('\n') },
    );
}

/**
 * Replaces a damaged copy at CSC. The primary's copy is re-read against its manifest
 * first: a repair from a primary that is damaged itself would spread the damage.
 */
async function replace(job: CopyJob, store: SecondaryRepository, ref: CopyReference, id: string, differences: Difference[]): Promise<void> {
  await checkPrimary(job, id, `the copy of snapshot ${id} at the secondary target differs from the primary's (${differences.length} place(s)), and `, differences);
  // Linked to the damaged copy only where the bytes match (--checksum from the start).
  await deliverExact(store, job.primary.snapshotSource(id), ref, id, { linkFrom: id, checksum: true }, job.ctx.signal);
  await store.publish(job.primary.snapshotSource(id), id, true, job.ctx.signal);
}
