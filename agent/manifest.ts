/**
 * Builds a snapshot's `manifest.jsonl` and verifies the stored copy while doing so.
 *
 * A file whose inode, size and mtime match the previous manifest is a hard link that rsync
 * made with --link-dest: the same bytes on disk, so its hash is reused. Every other file
 * was stored anew and is read back: its transfer checksum must equal the one rsync's sender computed
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
import { FixedRecords, IntMap } from './tables.js';
import type { TransferLog } from './transfers.js';
import type { RepositoryStore, WalkEntry } from './target.js';

export interface ManifestInput {
  store: RepositoryStore;
  /** The partial snapshot being built. */
  id: string;
  /** The previous complete snapshot, whose manifest supplies hashes of unchanged files. */
  previous: string | undefined;
  /** rsync's checksum of what the source read, by path, for files copied with a checksum. */
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

/** `"path":"…"`, or `"path_b64":"…"` for a name that is not UTF-8 (see encodeName). */
function nameField(bytes: Buffer, field: 'path' | 'target'): string {
  // Most names are printable ASCII with nothing to escape: written as they are.
  let plain = true;
  for (let i = 0; i < bytes.length && plain; i++) {
    const c = bytes[i]!;
    plain = c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c;
  }
  if (plain) return `"${field}":"${bytes.toString('latin1')}"`;
  const [key, value] = Object.entries(encodeName(bytes, field))[0]!;
  return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
}

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
  private readonly records = new FixedRecords(PREV_ENTRY);

  add(ino: number, size: number, mtime: string, sha256: string): void {
    // Another shape of time (a year past 9999) is simply not indexed: that file is hashed anew.
    if (mtime.length !== MTIME_LENGTH) return;
    const n = this.records.push();
    const { buf, off } = this.records.at(n);
    buf.writeDoubleLE(size, off);
    buf.write(mtime, off + 8, 'latin1');
    buf.write(sha256, off + 8 + MTIME_LENGTH, 'hex');
    this.index.set(ino, n);
  }

  /** The SHA-256 recorded for this inode, if its size and mtime are still the same. */
  match(ino: number, size: number, mtime: string): string | undefined {
    const n = this.index.get(ino);
    if (n === undefined) return undefined;
    const { buf, off } = this.records.at(n);
    if (buf.readDoubleLE(off) !== size || buf.toString('latin1', off + 8, off + 8 + MTIME_LENGTH) !== mtime) return undefined;
    return buf.toString('hex', off + 8 + MTIME_LENGTH, off + PREV_ENTRY);
  }
}

async function previousFiles(input: ManifestInput): Promise<PreviousFiles> {
  const files = new PreviousFiles();
  if (!input.previous) return files;
  for await (const e of input.store.manifestEntries(input.previous)) if (e.type === 'f' && e.sha256) files.add(e.ino, e.size, e.mtime, e.sha256);
  return files;
}

/**
 * Hashes each stored copy as soon as rsync reports it transferred, while rsync goes on
 * copying: rsync keeps about one core busy, so on two cores the reads of the copies cost
 * little wall time. A copy not in place yet (rsync's receiver renames it a moment after
 * the sender reports it) is simply hashed later, by buildManifest.
 */
export class EarlyHasher {
  // rsync's sender reports a file once it has sent it; the receiver writes and renames it
  // a little later. Files wait here until this many newer ones were reported.
  private static readonly LAG = 2048;
  private static readonly BATCH = 512;
  private readonly waiting: { entry: number; path: Buffer }[] = [];
  private head = 0;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly pool: HashPool,
    private readonly log: TransferLog,
    storedPath: (rel: Buffer) => Buffer,
  ) {
    log.onAdd = (entry, rel) => {
      this.waiting.push({ entry, path: storedPath(rel) });
      if (this.waiting.length - this.head >= EarlyHasher.LAG + EarlyHasher.BATCH) this.flush(EarlyHasher.BATCH);
    };
  }

  private flush(n: number): void {
    const batch = this.waiting.slice(this.head, this.head + n);
    this.head += batch.length;
    if (this.head > 65536) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    if (batch.length === 0) return;
    const algorithm = this.log.algorithm;
    // A copy that could not be hashed whole here is left to buildManifest.
    const done = this.pool.hash(batch.map((b) => ({ path: b.path, transfer: algorithm }))).then(
      (results) =>
        results.forEach((r, k) => {
          if (r.sha256 && r.transfer && r.ino !== undefined && r.size !== undefined && r.bytes === r.size)
            this.log.setStored(batch[k]!.entry, { sha256: r.sha256, transfer: r.transfer, size: r.size, ino: r.ino });
        }),
      () => {},
    );
    this.inflight.add(done);
    void done.finally(() => this.inflight.delete(done));
  }

  /**
   * Call once rsync has finished: hashes what is still waiting (unless the copy failed and
   * nothing will be verified) and waits for every hash started.
   */
  async drain(hashRest: boolean): Promise<void> {
    this.log.onAdd = undefined;
    if (hashRest) while (this.waiting.length > this.head) this.flush(EarlyHasher.BATCH);
    while (this.inflight.size) await Promise.all([...this.inflight]);
  }
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
    const early = new Array<HashResult | undefined>(entries.length);
    entries.forEach((e, i) => {
      if (e.type !== 'f') return;
      const known = prev.match(Number(e.ino), e.size, e.mtime);
      if (known !== undefined) {
        reused[i] = known;
        if (input.scope === 'full') storedJob[i] = jobs.push({ path: input.store.partialPath(input.id, e.rel) }) - 1;
      } else {
        const transfer = input.transferred.get(e.rel);
        sent[i] = transfer?.sum;
        // Hashed while rsync was still copying (EarlyHasher): the same inode and size is the
        // same file, since nothing but rsync writes into a partial snapshot, and rsync never
        // rewrites a file in place.
        const copy = transfer?.stored;
        if (copy && copy.ino === Number(e.ino) && copy.size === e.size) early[i] = { sha256: copy.sha256, transfer: copy.matches ? transfer.sum : 'differs', bytes: copy.size, size: copy.size };
        // Without a checksum from the sender, the copy is compared with its original: their times too.
        else storedJob[i] = jobs.push({ path: input.store.partialPath(input.id, e.rel), ...(sent[i] !== undefined ? { transfer: input.transferred.algorithm } : { times: true }) }) - 1;
        if (sent[i] === undefined && input.origin) originJob[i] = jobs.push({ path: input.origin(e.rel), recheck: true, limit: e.size }) - 1;
      }
    });
    // Spread the reads over the workers.
    const per = Math.max(1, Math.ceil(jobs.length / (input.pool.size * 4)));
    const parts: Promise<HashResult[]>[] = [];
    for (let k = 0; k < jobs.length; k += per) parts.push(input.pool.hash(jobs.slice(k, k + per)));
    // Most batches need no reading at all (hard links, copies hashed while rsync ran): no await.
    const results = parts.length ? (await Promise.all(parts)).flat() : [];
    if (input.signal.aborted) throw input.signal.reason;

    let text = '';
    entries.forEach((e, i) => {
      let sha: string | undefined;
      if (e.type === 'f') {
        size.files++;
        size.bytes += e.size;
        const stored = storedJob[i]! >= 0 ? results[storedJob[i]!]! : early[i];
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
            if (stored!.transfer !== sent[i]) problem(e.rel, 'the stored copy differs from what rsync read at the source');
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
      // The line's fields in a fixed order, written directly: an object and JSON.stringify
      // per file cost more than the rest of the manifest.
      text += `{${nameField(e.rel, 'path')},"type":"${e.type}","size":${e.size},"mtime":"${e.mtime}","mode":"${e.mode}","ino":${Number(e.ino)}${sha ? `,"sha256":"${sha}"` : ''}${e.target ? `,${nameField(e.target, 'target')}` : ''}}\n`;
    });
    await write(text);
    seen += entries.length;
    input.progress(seen);
  };

  try {
    for await (const entries of input.store.walk(input.id, input.signal)) {
      for (const entry of entries) {
        batch.push(entry);
        if (entry.type === 'f') batchBytes += entry.size;
        if (batch.length >= BATCH_FILES || batchBytes >= BATCH_BYTES) await processBatch();
      }
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
 * full verification of a snapshot that a backup reuses because nothing changed. With
 * `copy`, only the files under `copy.prefix` (a path under data/, ending in "/"), read
 * where they were copied to, under `copy.root`: a restore's check of what it restored.
 */
export async function checkSnapshot(store: RepositoryStore, id: string, pool: HashPool, signal: AbortSignal, copy?: { prefix: string; root: string }): Promise<Pick<ManifestOutcome, 'checksum' | 'problems'>> {
  const checksum = { scope: 'full' as const, files: 0, bytes: 0, mismatches: 0 };
  const problems: { path: string; problem: string }[] = [];
  let batch: ManifestEntry[] = [];
  const flush = async () => {
    const entries = batch;
    batch = [];
    const per = Math.max(1, Math.ceil(entries.length / (pool.size * 4)));
    const parts: Promise<HashResult[]>[] = [];
    const where = (e: ManifestEntry) => (copy ? Buffer.concat([Buffer.from(`${copy.root}/`), entryPath(e).subarray(copy.prefix.length)]) : store.storedPath(id, entryPath(e)));
    for (let k = 0; k < entries.length; k += per) parts.push(pool.hash(entries.slice(k, k + per).map((e) => ({ path: where(e) }))));
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
  const prefix = copy ? Buffer.from(copy.prefix) : undefined;
  for await (const entry of store.manifestEntries(id)) {
    if (entry.type !== 'f' || (prefix && !entryPath(entry).subarray(0, prefix.length).equals(prefix))) continue;
    batch.push(entry);
    if (batch.length >= BATCH_FILES) await flush();
  }
  if (batch.length) await flush();
  return { checksum, problems };
}
