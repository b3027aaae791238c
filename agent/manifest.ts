/**
 * Builds a snapshot's `manifest.jsonl` and verifies the stored copy while doing so.
 *
 * A file whose inode, size and mtime match the previous manifest is a hard link that rsync
 * made with --link-dest: the same bytes on disk, so its hash is reused. Every other file
 * was stored anew and is read back: its SHA-1 must equal the one rsync's sender computed
 * over the original while copying it (so the original is not read twice). A new file that
 * rsync made without a transfer (same content, new permissions) is compared with the
 * original instead; when that differs because the original changed while it was being
 * backed up (a log, say), it is a warning and the manifest holds the copy's hash. A stored
 * copy that differs from what was read is a verification failure.
 * With scope `full`, the reused files are re-read too and checked against their old hashes.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { encodeName, entryPath, type ManifestEntry } from '../schemas/manifest.js';
import type { HashJob, HashPool, HashResult } from './hashing.js';
import { IntMap } from './intmap.js';
import type { TransferLog } from './transfers.js';
import type { RepositoryStore, WalkEntry } from './target.js';

export interface ManifestInput {
  store: RepositoryStore;
  /** The partial snapshot being built. */
  id: string;
  /** The previous complete snapshot, whose manifest supplies hashes of unchanged files. */
  previous: string | undefined;
  /** The SHA-1 of what the source read, by path, for files copied with a checksum. */
  transferred: TransferLog;
  /** Where a stored file came from, to re-read the original of a new file with no transfer checksum. */
  origin: ((rel: Buffer) => Buffer) | undefined;
  scope: 'changed' | 'full';
  pool: HashPool;
  signal: AbortSignal;
  progress: (files: number) => void;
}

export interface ManifestOutcome {
  digest: string;
  size: { bytes: number; files: number; dirs: number; symlinks: number; others: number };
  changed: { files: number; bytes: number };
  checksum: { scope: 'changed' | 'full'; files: number; bytes: number; mismatches: number };
  /** Files whose stored copy failed verification (at most 20 listed). */
  problems: { path: string; problem: string }[];
  warnings: { code: string; message: string }[];
}

// Small batches: entries of a batch live across the hashing and would otherwise be
// promoted to the old generation, which V8 collects late.
const BATCH_FILES = 1024;
const BATCH_BYTES = 256 << 20;

/** How a path is shown in messages: the original absolute path, readable even when it is not UTF-8. */
function shown(rel: Buffer): string {
  return `/${rel.toString('utf8')}`;
}

const MTIME_LENGTH = 30; // 2026-11-22T03:15:07.123456789Z
const PREV_ENTRY = 8 + MTIME_LENGTH + 32;

/**
 * The previous manifest's files by inode: size, mtime and SHA-256 in one Buffer, 70 bytes a
 * file, so that 200,000 files cost 14 MB outside the JavaScript heap instead of 200,000
 * strings for the garbage collector to trace.
 */
class PreviousFiles {
  private readonly index = new IntMap();
  private data = Buffer.alloc(PREV_ENTRY * 1024);
  private count = 0;

  add(ino: number, size: number, mtime: string, sha256: string): void {
    // Another shape of time (a year past 9999) is simply not indexed: that file is hashed anew.
    if (mtime.length !== MTIME_LENGTH) return;
    if ((this.count + 1) * PREV_ENTRY > this.data.length) {
      const grown = Buffer.alloc(this.data.length * 2);
      this.data.copy(grown);
      this.data = grown;
    }
    const at = this.count * PREV_ENTRY;
    this.data.writeDoubleLE(size, at);
    this.data.write(mtime, at + 8, 'latin1');
    this.data.write(sha256, at + 8 + MTIME_LENGTH, 'hex');
    this.index.set(ino, this.count++);
  }

  /** The SHA-256 recorded for this inode, if its size and mtime are still the same. */
  match(ino: number, size: number, mtime: string): string | undefined {
    const i = this.index.get(ino);
    if (i === undefined) return undefined;
    const at = i * PREV_ENTRY;
    if (this.data.readDoubleLE(at) !== size || this.data.toString('latin1', at + 8, at + 8 + MTIME_LENGTH) !== mtime) return undefined;
    return this.data.toString('hex', at + 8 + MTIME_LENGTH, at + PREV_ENTRY);
  }
}

async function previousFiles(input: ManifestInput): Promise<PreviousFiles> {
  const files = new PreviousFiles();
  if (!input.previous) return files;
  for await (const e of input.store.manifestEntries(input.previous)) if (e.type === 'f' && e.sha256) files.add(e.ino, e.size, e.mtime, e.sha256);
  return files;
}

export async function buildManifest(input: ManifestInput): Promise<ManifestOutcome> {
  const prev = await previousFiles(input);
  const out = input.store.openPartialFile(input.id, 'manifest.jsonl');
  const digest = createHash('sha256');
  const size = { bytes: 0, files: 0, dirs: 0, symlinks: 0, others: 0 };
  const changed = { files: 0, bytes: 0 };
  const checksum = { scope: input.scope, files: 0, bytes: 0, mismatches: 0 };
  const problems: { path: string; problem: string }[] = [];
  const changedDuring: string[] = [];
  const unreadableOrigin: string[] = [];
  let seen = 0;

  const write = async (text: string) => {
    digest.update(text);
    if (!out.write(text)) await once(out, 'drain');
  };
  const problem = (rel: Buffer, text: string) => {
    checksum.mismatches++;
    if (problems.length < 20) problems.push({ path: shown(rel), problem: text });
  };

  let batch: WalkEntry[] = [];
  let batchBytes = 0;

  const processBatch = async () => {
    const entries = batch;
    batch = [];
    batchBytes = 0;
    // Plan: which files to read, and what each entry's hash will be.
    const reused = new Array<string | undefined>(entries.length);
    const jobs: HashJob[] = [];
    const storedJob = new Array<number>(entries.length).fill(-1);
    const originJob = new Array<number>(entries.length).fill(-1);
    const sent = new Array<string | undefined>(entries.length);
    entries.forEach((e, i) => {
      if (e.type !== 'f') return;
      const known = prev.match(Number(e.ino), e.size, e.mtime);
      if (known !== undefined) {
        reused[i] = known;
        if (input.scope === 'full') storedJob[i] = jobs.push({ path: input.store.partialPath(input.id, e.rel) }) - 1;
      } else {
        sent[i] = input.transferred.get(e.rel);
        storedJob[i] = jobs.push({ path: input.store.partialPath(input.id, e.rel), sha1: sent[i] !== undefined }) - 1;
        if (sent[i] === undefined && input.origin) originJob[i] = jobs.push({ path: input.origin(e.rel), recheck: true, limit: e.size }) - 1;
      }
    });
    // Spread the reads over the workers.
    const per = Math.max(1, Math.ceil(jobs.length / (input.pool.size * 4)));
    const parts: Promise<HashResult[]>[] = [];
    for (let k = 0; k < jobs.length; k += per) parts.push(input.pool.hash(jobs.slice(k, k + per)));
    const results = (await Promise.all(parts)).flat();
    if (input.signal.aborted) throw input.signal.reason;

    let text = '';
    entries.forEach((e, i) => {
      let sha: string | undefined;
      if (e.type === 'f') {
        size.files++;
        size.bytes += e.size;
        const stored = storedJob[i]! >= 0 ? results[storedJob[i]!]! : undefined;
        if (reused[i] !== undefined) {
          sha = reused[i];
          if (stored) {
            checksum.files++;
            checksum.bytes += stored.bytes ?? 0;
            if (stored.error) problem(e.rel, `cannot read the stored copy (${stored.error})`);
            else if (stored.sha256 !== sha) problem(e.rel, 'the stored copy no longer matches the hash it had when it was backed up (damaged backup disk?)');
          }
        } else {
          changed.files++;
          changed.bytes += e.size;
          checksum.files++;
          checksum.bytes += stored!.bytes ?? 0;
          sha = stored!.sha256;
          const original = originJob[i]! >= 0 ? results[originJob[i]!]! : undefined;
          if (stored!.error) problem(e.rel, `cannot read the stored copy (${stored!.error})`);
          else if (sent[i] !== undefined) {
            if (stored!.sha1 !== sent[i]) problem(e.rel, 'the stored copy differs from what rsync read at the source');
          } else if (original?.error === 'ENOENT') changedDuring.push(shown(e.rel));
          else if (original?.error) unreadableOrigin.push(`${shown(e.rel)} (${original.error})`);
          else if (original && original.sha256 !== stored!.sha256) {
            const moved = original.changedWhileRead || original.size !== stored!.size || original.mtimeNs !== stored!.mtimeNs;
            if (moved) changedDuring.push(shown(e.rel));
            else problem(e.rel, 'the stored copy differs from the original, which did not change since it was copied');
          }
        }
      } else if (e.type === 'd') size.dirs++;
      else if (e.type === 'l') size.symlinks++;
      else size.others++;
      const line = {
        ...encodeName(e.rel, 'path'),
        type: e.type,
        size: e.size,
        mtime: e.mtime,
        mode: e.mode,
        ino: Number(e.ino),
        ...(sha ? { sha256: sha } : {}),
        ...(e.target ? encodeName(e.target, 'target') : {}),
      };
      text += `${JSON.stringify(line)}\n`;
    });
    await write(text);
    seen += entries.length;
    input.progress(seen);
  };

  try {
    for await (const entry of input.store.walk(input.id, input.signal)) {
      batch.push(entry);
      if (entry.type === 'f') batchBytes += entry.size;
      if (batch.length >= BATCH_FILES || batchBytes >= BATCH_BYTES) await processBatch();
    }
    if (batch.length) await processBatch();
  } finally {
    out.end();
    await finished(out).catch(() => {});
  }
  if (out.errored) throw out.errored;

  const warnings: { code: string; message: string }[] = [];
  if (changedDuring.length)
    warnings.push({
      code: 'changed-during-backup',
      message: `${changedDuring.length} file(s) changed or vanished while they were being backed up; the snapshot holds the version that was copied: ${changedDuring.slice(0, 5).join(', ')}${changedDuring.length > 5 ? ', …' : ''}`,
    });
  if (unreadableOrigin.length)
    warnings.push({
      code: 'original-unreadable',
      message: `${unreadableOrigin.length} file(s) could not be re-read at the source to compare with the stored copy: ${unreadableOrigin.slice(0, 5).join(', ')}`,
    });
  return { digest: `sha256:${digest.digest('hex')}`, size, changed, checksum, problems, warnings };
}

/**
 * Re-reads every file of a complete snapshot and matches it against its manifest: the
 * full verification of a snapshot that a backup reuses because nothing changed.
 */
export async function checkSnapshot(store: RepositoryStore, id: string, pool: HashPool, signal: AbortSignal): Promise<Pick<ManifestOutcome, 'checksum' | 'problems'>> {
  const checksum = { scope: 'full' as const, files: 0, bytes: 0, mismatches: 0 };
  const problems: { path: string; problem: string }[] = [];
  let batch: ManifestEntry[] = [];
  const flush = async () => {
    const entries = batch;
    batch = [];
    const per = Math.max(1, Math.ceil(entries.length / (pool.size * 4)));
    const parts: Promise<HashResult[]>[] = [];
    for (let k = 0; k < entries.length; k += per) parts.push(pool.hash(entries.slice(k, k + per).map((e) => ({ path: store.storedPath(id, entryPath(e)) }))));
    const results = (await Promise.all(parts)).flat();
    if (signal.aborted) throw signal.reason;
    entries.forEach((e, i) => {
      const r = results[i]!;
      checksum.files++;
      checksum.bytes += r.bytes ?? 0;
      const problem = r.error ? `cannot read the stored copy (${r.error})` : r.sha256 !== e.sha256 ? 'the stored copy no longer matches the hash it had when it was backed up (damaged backup disk?)' : undefined;
      if (problem) {
        checksum.mismatches++;
        if (problems.length < 20) problems.push({ path: shown(entryPath(e)), problem });
      }
    });
  };
  for await (const entry of store.manifestEntries(id)) {
    if (entry.type !== 'f') continue;
    batch.push(entry);
    if (batch.length >= BATCH_FILES) await flush();
  }
  if (batch.length) await flush();
  return { checksum, problems };
}
