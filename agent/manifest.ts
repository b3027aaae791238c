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
import { lstatSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { encodeName, entryPath, insideSnapshot, type ManifestEntry } from '../schemas/manifest.js';
import { statOf, type HashJob, type HashPool, type HashResult } from './hashing.js';
import { FixedRecords, IntMap, writeHex } from './tables.js';
import type { TransferLog } from './transfers.js';
import { BackupFailure, messageOf } from './errors.js';
import { isoFromEpoch, MTIME_LENGTH, type Hasher, type PrimaryStore, type WalkBatch } from './target.js';

export interface ManifestInput {
  store: PrimaryStore;
  /** The partial snapshot being built. */
  id: string;
  /** The previous complete snapshot, whose manifest supplies hashes of unchanged files. */
  previous: string | undefined;
  /** rsync's checksum of what the source read, by path, for files copied with a checksum. */
  transferred: TransferLog;
  /** Where a stored file came from, to re-read the original of a new file with no transfer checksum. */
  origin: ((rel: Buffer) => Buffer) | undefined;
  scope: 'changed' | 'full';
  /**
   * Walk the copy by names only and take each file's size, inode, time and mode from the
   * hash of its stored copy (one stat fewer per file); the default for a first backup,
   * where every file was copied and hashed. Entries without a hash are stat'ed on their own.
   */
  light?: boolean;
  pool: Hasher;
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

/** Writes the bytes of `text` (ASCII) at `pos`; returns the position after them. */
function put(text: Buffer, out: Buffer, pos: number): number {
  for (let k = 0; k < text.length; k++) out[pos++] = text[k]!;
  return pos;
}

/**
 * Writes `"path":"…"` for the name in `src` from `start` to `end` at `pos`, or
 * `"path_b64":"…"` for a name that is not UTF-8 (see encodeName); returns the position after it.
 */
function writeName(src: Buffer, start: number, end: number, field: 'path' | 'target', out: Buffer, pos: number): number {
  // Most names are printable ASCII with nothing to escape: written as they are.
  let plain = true;
  for (let k = start; k < end && plain; k++) {
    const c = src[k]!;
    plain = c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c;
  }
  if (plain) {
    pos = put(field === 'path' ? PATH_KEY : TARGET_KEY, out, pos);
    pos += src.copy(out, pos, start, end);
    out[pos++] = 0x22;
    return pos;
  }
  const [key, value] = Object.entries(encodeName(src.subarray(start, end), field))[0]!;
  return pos + out.write(`${JSON.stringify(key)}:${JSON.stringify(value)}`, pos, 'utf8');
}

/** Writes a whole number ≥ 0 in decimal at `pos`; returns the position after it. */
function writeInteger(n: number, out: Buffer, pos: number): number {
  if (!Number.isSafeInteger(n) || n < 0) return pos + out.write(String(n), pos, 'latin1');
  let digits = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
  return writeDigits(n, digits, out, pos);
}

/** Writes permission bits as four octal digits at `pos`; returns the position after them. */
function writeMode(mode: number, out: Buffer, pos: number): number {
  for (let shift = 9; shift >= 0; shift -= 3) out[pos++] = 0x30 + ((mode >> shift) & 7);
  return pos;
}

/** Writes `digits` decimal digits of `n` (zero-padded) at `pos`. */
function writeDigits(n: number, digits: number, out: Buffer, pos: number): number {
  for (let k = digits - 1; k >= 0; k--, n = Math.floor(n / 10)) out[pos + k] = 0x30 + (n % 10);
  return pos + digits;
}

const DAY = 86_400;
const FIRST_SECOND = -62_167_219_200; // 0000-01-01T00:00:00Z
const END_SECOND = 253_402_300_800; // 10000-01-01T00:00:00Z
let lastDay = { day: NaN, text: Buffer.alloc(10) };

/**
 * Writes a modification time (seconds since 1970, then 0 ≤ nanoseconds < 10^9, as the kernel
 * keeps it) as the walk writes find's: 2026-11-22T03:15:07.123456789Z. Returns the position after it.
 */
function writeTime(sec: number, nsec: number, out: Buffer, pos: number): number {
  if (sec < FIRST_SECOND || sec >= END_SECOND) return pos + out.write(isoFromEpoch(`${sec}.${String(nsec).padStart(9, '0')}`), pos, 'latin1');
  const day = Math.floor(sec / DAY);
  // Files written together share their day: its text is kept from the last call.
  if (day !== lastDay.day) lastDay = { day, text: Buffer.from(new Date(day * DAY * 1000).toISOString().slice(0, 10), 'latin1') };
  pos += lastDay.text.copy(out, pos);
  const rest = sec - day * DAY;
  out[pos++] = 0x54; // T
  pos = writeDigits(Math.floor(rest / 3600), 2, out, pos);
  out[pos++] = 0x3a;
  pos = writeDigits(Math.floor(rest / 60) % 60, 2, out, pos);
  out[pos++] = 0x3a;
  pos = writeDigits(rest % 60, 2, out, pos);
  out[pos++] = 0x2e;
  pos = writeDigits(nsec, 9, out, pos);
  out[pos++] = 0x5a; // Z
  return pos;
}

/**
 * Copies a stat (size, inode, mtime, mode) from a hash result into `st[at…at+4]`; for a
 * copy that could not be read (a problem reported on its own), from an lstat of `path`.
 */
function statInto(r: HashResult, path: Buffer, st: Float64Array, at: number): void {
  let s = r;
  if (s.mode === undefined)
    try {
      s = statOf(lstatSync(path, { bigint: true }));
    } catch (e) {
      throw new BackupFailure('manifest', `cannot list ${path.toString()} in the stored snapshot (${(e as NodeJS.ErrnoException).code ?? messageOf(e)})`, 'check the target disk (dmesg shows I/O errors) and run again; the previous snapshot is intact');
    }
  st[at] = s.size!;
  st[at + 1] = s.ino!;
  st[at + 2] = s.mtimeSec!;
  st[at + 3] = s.mtimeNsec!;
  st[at + 4] = s.mode!;
}

// The manifest line's fixed parts (see buildManifest).
const PATH_KEY = Buffer.from('"path":"');
const TARGET_KEY = Buffer.from('"target":"');
const TYPE_KEY = Buffer.from(',"type":"');
const SIZE_KEY = Buffer.from('","size":');
const MTIME_KEY = Buffer.from(',"mtime":"');
const MODE_KEY = Buffer.from('","mode":"');
const INO_KEY = Buffer.from('","ino":');
const SHA256_KEY = Buffer.from(',"sha256":"');

/** How a path is shown in messages: the original absolute path, readable even when it is not UTF-8. */
function shown(rel: Buffer): string {
  return `/${rel.toString('utf8')}`;
}

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

  /** The record of this inode if its size and mtime (entry `i` of `batch`) are still the same, else -1. */
  match(ino: number, size: number, batch: WalkBatch, i: number): number {
    const n = this.index.get(ino);
    if (n === undefined) return -1;
    const { buf, off } = this.records.at(n);
    return buf.readDoubleLE(off) === size && batch.mtimeEquals(i, buf, off + 8) ? n : -1;
  }

  /** A record's SHA-256, hex. */
  sha256(n: number): string {
    const { buf, off } = this.records.at(n);
    return buf.toString('hex', off + 8 + MTIME_LENGTH, off + PREV_ENTRY);
  }

  /** Writes a record's SHA-256 as hex at `pos`; returns the position after it. */
  writeSha256(n: number, out: Buffer, pos: number): number {
    const { buf, off } = this.records.at(n);
    return writeHex(buf, off + 8 + MTIME_LENGTH, 32, out, pos);
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
  // a little later, once it has read what is still in the pipe between them. A file waits
  // here until this many newer files, or this many bytes of newer files, were reported:
  // by then the receiver has had to read past it. (Counting files alone kept a tree's last
  // 2,048 files, 200 MB of the 2 GiB tree, to hash after rsync had finished.)
  private static readonly LAG_FILES = 256;
  private static readonly LAG_BYTES = 8 << 20;
  private static readonly BATCH = 512;
  private static readonly BATCH_BYTES = 32 << 20;
  /** Each file with its size and the total size reported up to and including it. */
  private readonly waiting: { entry: number; path: Buffer; size: number; mark: number }[] = [];
  private head = 0;
  /** Files from `head` up to here may be hashed; `readyBytes` is their size. */
  private ready = 0;
  private readyBytes = 0;
  private reported = 0;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly pool: HashPool,
    private readonly log: TransferLog,
    storedPath: (rel: Buffer) => Buffer,
  ) {
    log.onAdd = (entry, rel, size) => {
      this.reported += size;
      this.waiting.push({ entry, path: storedPath(rel), size, mark: this.reported });
      while (this.ready < this.waiting.length) {
        const w = this.waiting[this.ready]!;
        if (this.waiting.length - this.ready <= EarlyHasher.LAG_FILES && this.reported - w.mark < EarlyHasher.LAG_BYTES) break;
        this.readyBytes += w.size;
        this.ready++;
      }
      if (this.ready - this.head >= EarlyHasher.BATCH || this.readyBytes >= EarlyHasher.BATCH_BYTES) this.flush(this.ready - this.head);
    };
  }

  private flush(n: number): void {
    const batch = this.waiting.slice(this.head, this.head + n);
    this.head += batch.length;
    this.ready = Math.max(this.ready, this.head);
    this.readyBytes = 0;
    if (this.head > 65536) {
      this.waiting.splice(0, this.head);
      this.ready -= this.head;
      this.head = 0;
    }
    if (batch.length === 0) return;
    const algorithm = this.log.algorithm;
    // A copy that could not be hashed whole here is left to buildManifest.
    // With its times and mode: a first backup's manifest takes them from here instead of
    // another stat of every file (buildManifest, `light`).
    const done = this.pool.hash(batch.map((b) => ({ path: b.path, transfer: algorithm, times: true }))).then(
      (results) =>
        results.forEach((r, k) => {
          if (r.sha256 && r.transfer && r.ino !== undefined && r.size !== undefined && r.bytes === r.size)
            this.log.setStored(batch[k]!.entry, { sha256: r.sha256, transfer: r.transfer, size: r.size, ino: r.ino, mtimeSec: r.mtimeSec, mtimeNsec: r.mtimeNsec, mode: r.mode });
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
  if (input.store.buildManifest) return input.store.buildManifest(input);
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

  const write = async (text: Buffer) => {
    digest.update(text);
    if (!out.write(text)) await once(out, 'drain');
  };
  const problem = (rel: Buffer, text: string) => {
    checksum.mismatches++;
    if (problems.length < 20) problems.push({ path: shown(rel), problem: text });
  };

  const { transferred, store, id } = input;
  /** Entries `from` to `to` of a walk batch: their files checked, their lines written. */
  const processBatch = async (w: WalkBatch, from: number, to: number) => {
    const n = to - from;
    // Plan: which files to read, and where each entry's hash will come from: the previous
    // manifest (a hard link), the copy hashed while rsync ran (EarlyHasher), or a read now.
    const reused = new Int32Array(n).fill(-1);
    const sent = new Int32Array(n).fill(-1);
    const early = new Uint8Array(n);
    const storedJob = new Int32Array(n).fill(-1);
    const originJob = new Int32Array(n).fill(-1);
    const jobs: HashJob[] = [];
    // A light walk's size, inode, mtime (seconds, nanoseconds) and mode, five per entry.
    const st = w.light ? new Float64Array(n * 5) : undefined;
    const statJob = w.light ? new Int32Array(n).fill(-1) : undefined;
    let bound = 0;
    for (let j = 0; j < n; j++) {
      const i = from + j;
      const [ps, pe] = w.span(i, 'path');
      const [ts, te] = w.span(i, 'target');
      // A line's other fields take at most 240 bytes; a name escaped for JSON at most 6 bytes a byte.
      bound += 256 + 6 * (pe - ps + te - ts);
      if (st) {
        if (w.isFile(i)) {
          sent[j] = transferred.lookup(w.rel(i));
          // Hashed while rsync copied it: with its stat, from the same open file.
          if (sent[j]! >= 0 && transferred.storedStat(sent[j]!, st, j * 5)) early[j] = 1;
          else storedJob[j] = jobs.push({ path: store.partialPath(id, w.rel(i)), times: true, ...(sent[j]! >= 0 ? { transfer: transferred.algorithm } : {}) }) - 1;
          // The limit is set once the copy's size is known, below.
          if (sent[j]! < 0 && input.origin) originJob[j] = -2;
        } else statJob![j] = jobs.push({ path: store.partialPath(id, w.rel(i)), stat: true }) - 1;
        continue;
      }
      if (!w.isFile(i)) continue;
      const ino = w.ino[i]!;
      const size = w.size[i]!;
      const rel = w.rel(i);
      reused[j] = prev.match(ino, size, w, i);
      if (reused[j]! >= 0) {
        if (input.scope === 'full') storedJob[j] = jobs.push({ path: store.partialPath(id, rel) }) - 1;
        continue;
      }
      sent[j] = transferred.lookup(rel);
      // Hashed while rsync was still copying: the same inode and size is the same file,
      // since nothing but rsync writes into a partial snapshot, and rsync never rewrites a
      // file in place.
      if (sent[j]! >= 0 && transferred.storedAs(sent[j]!, ino, size)) early[j] = 1;
      // Without a checksum from the sender, the copy is compared with its original: their times too.
      else storedJob[j] = jobs.push({ path: store.partialPath(id, rel), ...(sent[j]! >= 0 ? { transfer: transferred.algorithm } : { times: true }) }) - 1;
      if (sent[j]! < 0 && input.origin) originJob[j] = jobs.push({ path: input.origin(rel), recheck: true, limit: size }) - 1;
    }
    // Spread the reads over the workers.
    const per = Math.max(1, Math.ceil(jobs.length / (input.pool.size * 4)));
    const parts: Promise<HashResult[]>[] = [];
    for (let k = 0; k < jobs.length; k += per) parts.push(input.pool.hash(jobs.slice(k, k + per)));
    // Most batches need no reading at all (hard links, copies hashed while rsync ran): no await.
    const results = parts.length ? (await Promise.all(parts)).flat() : [];
    if (input.signal.aborted) throw input.signal.reason;
    // A file read at a remote target comes back with its digest alone: what it is (size,
    // time) is what the walk listed there, as nothing else writes into a partial snapshot.
    if (!st && !input.store.local)
      for (let j = 0; j < n; j++) {
        const r = storedJob[j]! >= 0 ? results[storedJob[j]!]! : undefined;
        if (!r || r.size !== undefined) continue;
        r.size = w.size[from + j]!;
        if (r.sha256) r.bytes = r.size;
        [r.mtimeSec, r.mtimeNsec] = w.mtimeParts(from + j);
      }
    if (st) {
      // The stat of each entry that was read or stat'ed now; the originals of copies without
      // a transfer checksum, read up to the copy's size.
      const originals: HashJob[] = [];
      const originAt: number[] = [];
      for (let j = 0; j < n; j++) {
        const k = storedJob[j]! >= 0 ? storedJob[j]! : statJob![j]!;
        if (k >= 0) statInto(results[k]!, store.partialPath(id, w.rel(from + j)), st, j * 5);
        if (originJob[j] === -2) {
          originAt.push(j);
          originals.push({ path: input.origin!(w.rel(from + j)), recheck: true, limit: st[j * 5]! });
        }
      }
      const read = originals.length ? await input.pool.hash(originals) : [];
      originAt.forEach((j, k) => {
        originJob[j] = results.push(read[k]!) - 1;
      });
    }

    // The lines, written as bytes: a string and an object per file cost more than the rest
    // of the manifest. {"path":…,"type":…,"size":…,"mtime":…,"mode":…,"ino":…[,"sha256":…][,"target":…]}
    const text = Buffer.allocUnsafe(bound);
    let pos = 0;
    for (let j = 0; j < n; j++) {
      const i = from + j;
      const type = w.type(i);
      // Where the line's SHA-256 comes from: 1 previous manifest, 2 early hash, 3 a read now.
      let sha = 0;
      let read: HashResult | undefined;
      if (type === 'f') {
        const fileSize = st ? st[j * 5]! : w.size[i]!;
        size.files++;
        size.bytes += fileSize;
        read = storedJob[j]! >= 0 ? results[storedJob[j]!]! : undefined;
        if (reused[j]! >= 0) {
          sha = 1;
          if (read) {
            checksum.files++;
            checksum.bytes += read.bytes ?? 0;
            if (read.error) problem(w.rel(i), `cannot read the stored copy (${read.error})`);
            else if (read.sha256 !== prev.sha256(reused[j]!)) problem(w.rel(i), 'the stored copy no longer matches the hash it had when it was backed up (damaged backup disk?)');
          }
        } else {
          changed.files++;
          changed.bytes += fileSize;
          checksum.files++;
          if (early[j]) {
            sha = 2;
            checksum.bytes += fileSize;
            if (!transferred.storedMatches(sent[j]!)) problem(w.rel(i), 'the stored copy differs from what rsync read at the source');
          } else {
            checksum.bytes += read!.bytes ?? 0;
            if (read!.sha256) sha = 3;
            const original = originJob[j]! >= 0 ? results[originJob[j]!]! : undefined;
            if (read!.error) problem(w.rel(i), `cannot read the stored copy (${read!.error})`);
            else if (sent[j]! >= 0) {
              if (read!.transfer !== transferred.sum(sent[j]!)) problem(w.rel(i), 'the stored copy differs from what rsync read at the source');
            } else if (original?.error === 'ENOENT') changedDuring.push(shown(w.rel(i)));
            else if (original?.error) unreadableOrigin.push(`${shown(w.rel(i))} (${original.error})`);
            else if (original && original.sha256 !== read!.sha256) {
              const moved = original.changedWhileRead || original.size !== read!.size || original.mtimeSec !== read!.mtimeSec || original.mtimeNsec !== read!.mtimeNsec;
              if (moved) changedDuring.push(shown(w.rel(i)));
              else problem(w.rel(i), 'the stored copy differs from the original, which did not change since it was copied');
            }
          }
        }
      } else if (type === 'd') size.dirs++;
      else if (type === 'l') size.symlinks++;
      else size.others++;
      text[pos++] = 0x7b;
      const [ps, pe] = w.span(i, 'path');
      pos = writeName(w.buf, ps, pe, 'path', text, pos);
      pos = put(TYPE_KEY, text, pos);
      text[pos++] = type.charCodeAt(0);
      pos = put(SIZE_KEY, text, pos);
      pos = st ? writeInteger(st[j * 5]!, text, pos) : w.writeNumber(i, 'size', text, pos);
      pos = put(MTIME_KEY, text, pos);
      pos = st ? writeTime(st[j * 5 + 2]!, st[j * 5 + 3]!, text, pos) : w.writeMtime(i, text, pos);
      pos = put(MODE_KEY, text, pos);
      pos = st ? writeMode(st[j * 5 + 4]!, text, pos) : w.writeMode(i, text, pos);
      pos = put(INO_KEY, text, pos);
      pos = st ? writeInteger(st[j * 5 + 1]!, text, pos) : w.writeNumber(i, 'ino', text, pos);
      if (sha) {
        pos = put(SHA256_KEY, text, pos);
        if (sha === 1) pos = prev.writeSha256(reused[j]!, text, pos);
        else if (sha === 2) pos = transferred.writeStoredSha256(sent[j]!, text, pos);
        else pos += text.write(read!.sha256!, pos, 'latin1');
        text[pos++] = 0x22;
      }
      if (type === 'l') {
        text[pos++] = 0x2c;
        const [ts, te] = w.span(i, 'target');
        pos = writeName(w.buf, ts, te, 'target', text, pos);
      }
      text[pos++] = 0x7d;
      text[pos++] = 0x0a;
    }
    await write(text.subarray(0, pos));
    seen += n;
    input.progress(seen);
  };

  try {
    for await (const w of store.walk(id, input.signal, input.light ?? !input.previous, input.previous)) {
      let from = 0;
      let bytes = 0;
      for (let i = 0; i < w.length; i++) {
        if (w.isFile(i)) bytes += w.size[i]!;
        if (i + 1 - from >= BATCH_FILES || bytes >= BATCH_BYTES) {
          await processBatch(w, from, i + 1);
          from = i + 1;
          bytes = 0;
        }
      }
      if (from < w.length) await processBatch(w, from, w.length);
    }
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
export async function checkSnapshot(store: PrimaryStore, id: string, pool: Hasher, signal: AbortSignal, copy?: { prefix: string; root: string }): Promise<Pick<ManifestOutcome, 'checksum' | 'problems'>> {
  if (!copy && store.checkSnapshot) return store.checkSnapshot(id, signal);
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
      // A file read at a remote target reports no count: its size, if it matched.
      checksum.bytes += r.bytes ?? (r.sha256 ? e.size : 0);
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
    // A manifest that names a path above the snapshot was not written by respaldo: reading
    // it would read some other file (as root).
    const rel = entryPath(entry);
    if (!insideSnapshot(rel))
      throw new BackupFailure('manifest', `the manifest of snapshot ${id} names "${rel.toString('utf8')}", which is not a path inside the snapshot`, 'the manifest was altered (respaldo never writes such a path): check who changed the backup disk; nothing was read from it');
    batch.push(entry);
    if (batch.length >= BATCH_FILES) await flush();
  }
  if (batch.length) await flush();
  return { checksum, problems };
}
