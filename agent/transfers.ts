/**
 * What rsync transferred, by path, kept compact: a first backup of a large tree lists every
 * file, and 200,000 path strings would cost more memory than the rest of the agent. For
 * each file: the checksum that rsync's sender computed over what it read (xxh128 or SHA-1,
 * see TransferChecksum), and, once hashed, what the stored copy holds (its SHA-256,
 * whether its transfer checksum matches, its inode and size).
 *
 * A path is reduced to 80 bits of hash (a 48-bit map key and a 32-bit check), so a lookup
 * never confuses two paths in practice; two paths that do share a key (even names made to
 * collide: the hash is fast, not cryptographic) are both marked unknown, and verification
 * then hashes their copies and re-reads their originals. A name made to collide with
 * another's key and check (about 2^40 tries) can at worst make its copy be compared with
 * the other file's checksum: a false mismatch, never a false match.
 */
import type { TransferChecksum } from './hashing.js';
import { FixedRecords, IntMap, writeHex } from './tables.js';

// check 4 | flags 1 | length 1 | (2) | sender's checksum ≤ 20 | stored SHA-256 32 | stored size 8 | stored inode 8
// | stored mtime: seconds 8, nanoseconds 4 | stored mode 2
const CHECK = 0;
const FLAGS = 4;
const LENGTH = 5;
const SUM = 8;
const SHA256 = 28;
const SIZE = 60;
const INO = 68;
const MTIME_SEC = 76;
const MTIME_NSEC = 84;
const MODE = 88;
const ENTRY = 90;
const STORED = 1;
const MATCHES = 2;
const TIMES = 4;
const AMBIGUOUS = -1;

export interface StoredCopy {
  sha256: string;
  /** The stored copy's transfer checksum equals the sender's. */
  matches: boolean;
  size: number;
  ino: number;
}

export class TransferLog {
  /** Which checksum the sender reports (set by whoever runs rsync, before it starts). */
  algorithm: TransferChecksum = 'sha1';
  private readonly index = new IntMap();
  private readonly records = new FixedRecords(ENTRY);
  /** Called for each transferred file as rsync reports it, with its entry's number and size (0 when unknown). */
  onAdd: ((entry: number, path: Buffer, size: number) => void) | undefined;

  get size(): number {
    return this.index.size;
  }

  private static key(path: Buffer): { key: number; check: number } {
    // Three FNV-1a passes with different starting states, each finished with murmur3's mix.
    let a = 0x811c9dc5;
    let b = 0x9747b28c;
    let c = 0x1b873593;
    for (let i = 0; i < path.length; i++) {
      const byte = path[i]!;
      a = Math.imul(a ^ byte, 0x01000193);
      b = Math.imul(b ^ byte, 0x01000193);
      c = Math.imul(c ^ byte, 0x01000193);
    }
    const mix = (h: number) => {
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      return (h ^ (h >>> 16)) >>> 0;
    };
    return { key: mix(a) * 0x10000 + (mix(b ^ path.length) >>> 16), check: mix(c) };
  }

  add(path: Buffer, sumHex: string, size = 0): void {
    const { key, check } = TransferLog.key(path);
    if (this.index.get(key) !== undefined) {
      this.index.set(key, AMBIGUOUS);
      return;
    }
    const entry = this.records.push();
    const { buf, off } = this.records.at(entry);
    buf.writeUInt32BE(check, off + CHECK);
    buf[off + LENGTH] = buf.write(sumHex, off + SUM, 20, 'hex');
    this.index.set(key, entry);
    this.onAdd?.(entry, path, size);
  }

  /** Records what the stored copy of an entry holds, and its modification time and mode when known. */
  setStored(entry: number, copy: { sha256: string; transfer: string; size: number; ino: number; mtimeSec?: number | undefined; mtimeNsec?: number | undefined; mode?: number | undefined }): void {
    const { buf, off } = this.records.at(entry);
    const matches = buf.toString('hex', off + SUM, off + SUM + buf[off + LENGTH]!) === copy.transfer;
    const times = copy.mtimeSec !== undefined && copy.mtimeNsec !== undefined && copy.mode !== undefined;
    buf[off + FLAGS] = STORED | (matches ? MATCHES : 0) | (times ? TIMES : 0);
    buf.write(copy.sha256, off + SHA256, 'hex');
    buf.writeDoubleLE(copy.size, off + SIZE);
    buf.writeDoubleLE(copy.ino, off + INO);
    if (times) {
      buf.writeDoubleLE(copy.mtimeSec!, off + MTIME_SEC);
      buf.writeUInt32LE(copy.mtimeNsec!, off + MTIME_NSEC);
      buf.writeUInt16LE(copy.mode!, off + MODE);
    }
  }

  /**
   * Copies the stored copy's size, inode, mtime (seconds, nanoseconds) and mode into
   * `into[at…at+4]`; false when the copy was not hashed with its times.
   */
  storedStat(entry: number, into: Float64Array, at: number): boolean {
    const { buf, off } = this.records.at(entry);
    if ((buf[off + FLAGS]! & (STORED | TIMES)) !== (STORED | TIMES)) return false;
    into[at] = buf.readDoubleLE(off + SIZE);
    into[at + 1] = buf.readDoubleLE(off + INO);
    into[at + 2] = buf.readDoubleLE(off + MTIME_SEC);
    into[at + 3] = buf.readUInt32LE(off + MTIME_NSEC);
    into[at + 4] = buf.readUInt16LE(off + MODE);
    return true;
  }

  /** The entry of `path`, or -1 when none or unsure (two paths with one key). */
  lookup(path: Buffer): number {
    const { key, check } = TransferLog.key(path);
    const entry = this.index.get(key);
    if (entry === undefined || entry === AMBIGUOUS) return -1;
    const { buf, off } = this.records.at(entry);
    return buf.readUInt32BE(off + CHECK) === check ? entry : -1;
  }

  /** Whether rsync may have sent `path`: it is in the log, or another path shares its key. */
  mayHaveSent(path: Buffer): boolean {
    return this.index.get(TransferLog.key(path).key) === AMBIGUOUS || this.lookup(path) >= 0;
  }

  /** The sender's checksum of an entry, hex. */
  sum(entry: number): string {
    const { buf, off } = this.records.at(entry);
    return buf.toString('hex', off + SUM, off + SUM + buf[off + LENGTH]!);
  }

  /**
   * Whether the entry's copy was hashed as a file of this inode and size: then storedMatches
   * and writeStoredSha256 stand for the file found there now.
   */
  storedAs(entry: number, ino: number, size: number): boolean {
    const { buf, off } = this.records.at(entry);
    return (buf[off + FLAGS]! & STORED) !== 0 && buf.readDoubleLE(off + INO) === ino && buf.readDoubleLE(off + SIZE) === size;
  }

  /** Whether the stored copy's transfer checksum equals the sender's. */
  storedMatches(entry: number): boolean {
    const { buf, off } = this.records.at(entry);
    return (buf[off + FLAGS]! & MATCHES) !== 0;
  }

  /** Writes the stored copy's SHA-256 as hex at `pos`; returns the position after it. */
  writeStoredSha256(entry: number, out: Buffer, pos: number): number {
    const { buf, off } = this.records.at(entry);
    return writeHex(buf, off + SHA256, 32, out, pos);
  }

  /** The sender's checksum (hex) for `path` and its stored copy if hashed; undefined when none or unsure. */
  get(path: Buffer): { sum: string; stored: StoredCopy | undefined } | undefined {
    const entry = this.lookup(path);
    if (entry < 0) return undefined;
    const { buf, off } = this.records.at(entry);
    return {
      sum: this.sum(entry),
      stored:
        buf[off + FLAGS]! & STORED
          ? { sha256: buf.toString('hex', off + SHA256, off + SHA256 + 32), matches: this.storedMatches(entry), size: buf.readDoubleLE(off + SIZE), ino: buf.readDoubleLE(off + INO) }
          : undefined,
    };
  }
}
