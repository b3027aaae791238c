/**
 * Where snapshots are stored: `<target>/<host>/<repository>/snapshots/<id>/` holds complete
 * snapshots only. A snapshot is built in `incomplete/<id>/` and moved into `snapshots/` with
 * one rename after it is verified and flushed, so a crash leaves the old state or the new
 * one, never a snapshot that claims to be whole and is not.
 *
 * Here a local path (a mounted disk or share); remote-target.ts keeps the same layout on
 * a host reached over SSH, behind the same interfaces (PrimaryTarget, PrimaryStore).
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { access, constants, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseYaml } from 'yaml';
import { ZodError } from 'zod';
import { compareSnapshotIds, SNAPSHOT_ID_RE } from '../schemas/common.js';
import type { ManifestEntry } from '../schemas/manifest.js';
import { snapshotSummary, type SnapshotSummary } from '../schemas/snapshot.js';
import type { ManifestEntry as Entry } from '../schemas/manifest.js';
import { checkStored, localShell, type StoredCheck, type StoredSnapshot } from './copy-check.js';
import { BackupFailure, messageOf } from './errors.js';
import { capture, lastLines, runTool, streamTool } from './exec.js';
import { exists, fsyncDir, sha256File } from './fsutil.js';
import type { HashPool, TransferChecksum } from './hashing.js';
import type { ManifestInput, ManifestOutcome } from './manifest.js';
import type { PruneStore } from './prune.js';
import type { SnapshotSource } from './secondary.js';

/** find's -printf for the walk (also of a copy at CSC): each field is read in place by WalkBatch. */
export const WALK_FORMAT = '%y %i %s %T@ %TY-%Tm-%TdT%TH:%TM:%TS %m %P\\0%l\\0';
/** The same with names and types only, which find reads from the folders without a stat of each entry. */
const LIGHT_FORMAT = '%y %P\\0%l\\0';
const ISO_LENGTH = 30; // find's %TS has ten decimals: 2026-11-22T03:15:07.1234567890
// Per entry, offsets into the batch's buffer: type; ino, size, epoch time, ISO time, mode,
// path and link target, each as start and end.
const W_TYPE = 0;
const W_INO = 1;
const W_SIZE = 3;
const W_EPOCH = 5;
const W_ISO = 7;
const W_MODE = 9;
const W_REL = 11;
const W_TARGET = 13;
const W_STRIDE = 15;
const SPACE = 0x20;

/** A decimal number of find's output, without a string in between for the usual sizes. */
function decimalAt(buf: Buffer, start: number, end: number): number {
  if (end - start > 15) return Number(buf.toString('latin1', start, end));
  let n = 0;
  for (let i = start; i < end; i++) n = n * 10 + buf[i]! - 48;
  return n;
}

/**
 * Entries of a stored snapshot's data folder as GNU find printed them, read where they lie
 * in find's output: no object or string per entry, which for 200,000 files cost the garbage
 * collector more than all the rest of the manifest.
 */
export class WalkBatch {
  readonly ino: Float64Array;
  readonly size: Float64Array;

  private constructor(
    readonly buf: Buffer,
    private readonly at: Int32Array,
    readonly length: number,
    /** Names and types only (LIGHT_FORMAT): no inode, size, time or mode. */
    readonly light: boolean,
  ) {
    this.ino = new Float64Array(length);
    this.size = new Float64Array(length);
    if (light) return;
    for (let i = 0; i < length; i++) {
      const o = i * W_STRIDE;
      this.ino[i] = decimalAt(buf, at[o + W_INO]!, at[o + W_INO + 1]!);
      this.size[i] = decimalAt(buf, at[o + W_SIZE]!, at[o + W_SIZE + 1]!);
    }
  }

  /** Splits `buf` into complete entries; returns the batch and where the unfinished rest begins. */
  static parse(buf: Buffer, light = false): { batch: WalkBatch; rest: number } {
    // An entry takes at least 5 bytes of find's output ("f x\0\0"), 40 with the stat fields.
    const at = new Int32Array(Math.ceil(buf.length / (light ? 5 : 40)) * W_STRIDE);
    let n = 0;
    let start = 0;
    for (;;) {
      const a = buf.indexOf(0, start);
      if (a < 0) break;
      const b = buf.indexOf(0, a + 1);
      if (b < 0) break;
      const o = n * W_STRIDE;
      at[o + W_TYPE] = buf[start]!;
      // "%y %i %s %T@ <ISO> %m " (or "%y ") and then the path, which may itself contain spaces.
      let from = start + 2;
      for (let field = W_INO; !light && field <= W_MODE; field += 2) {
        const end = buf.indexOf(SPACE, from);
        at[o + field] = from;
        at[o + field + 1] = end;
        from = end + 1;
      }
      at[o + W_REL] = from;
      at[o + W_REL + 1] = a;
      at[o + W_TARGET] = a + 1;
      at[o + W_TARGET + 1] = b;
      n++;
      start = b + 1;
    }
    return { batch: new WalkBatch(buf, at, n, light), rest: start };
  }

  /** find's %y: f, d, l, p, s, c or b (a door, D, counts as a socket). */
  type(i: number): 'f' | 'd' | 'l' | 'p' | 's' | 'c' | 'b' {
    const c = this.at[i * W_STRIDE + W_TYPE]!;
    return c === 0x44 ? 's' : (String.fromCharCode(c) as 'f');
  }

  isFile(i: number): boolean {
    return this.at[i * W_STRIDE + W_TYPE] === 0x66;
  }

  /** Where the path (or, with `target`, the link target; empty for others) lies in `buf`: start and end. */
  span(i: number, field: 'path' | 'target'): [number, number] {
    const o = i * W_STRIDE + (field === 'path' ? W_REL : W_TARGET);
    return [this.at[o]!, this.at[o + 1]!];
  }

  /** Path relative to the data folder: a view into the batch, copy it to keep it. */
  rel(i: number): Buffer {
    const o = i * W_STRIDE + W_REL;
    return this.buf.subarray(this.at[o]!, this.at[o + 1]!);
  }

  /** Where the modification time's ISO text starts, or -1 when find's date is not YYYY-… (see mtime). */
  private isoAt(i: number): number {
    const o = i * W_STRIDE + W_ISO;
    const s = this.at[o]!;
    if (this.at[o + 1]! - s !== ISO_LENGTH || this.buf[s + 4] !== 0x2d) return -1;
    for (let k = s; k < s + 4; k++) if (this.buf[k]! < 0x30 || this.buf[k]! > 0x39) return -1;
    return s;
  }

  /** Modification time, UTC, to the nanosecond (2026-11-22T03:15:07.123456789Z). */
  mtime(i: number): string {
    const s = this.isoAt(i);
    if (s >= 0) return `${this.buf.toString('latin1', s, s + MTIME_LENGTH - 1)}Z`;
    // A year outside 0000–9999: from the seconds since 1970.
    const o = i * W_STRIDE + W_EPOCH;
    return isoFromEpoch(this.buf.toString('latin1', this.at[o]!, this.at[o + 1]!));
  }

  /** Modification time as seconds and nanoseconds (≥ 0), as HashResult has it, from find's %T@. */
  mtimeParts(i: number): [number, number] {
    const o = i * W_STRIDE + W_EPOCH;
    const [sec = '0', frac = ''] = this.buf.toString('latin1', this.at[o]!, this.at[o + 1]!).split('.');
    return [Number(sec), Number(frac.padEnd(9, '0').slice(0, 9))];
  }

  /** Writes mtime(i) at `pos`; returns the position after it. */
  writeMtime(i: number, out: Buffer, pos: number): number {
    const s = this.isoAt(i);
    if (s < 0) return pos + out.write(this.mtime(i), pos, 'latin1');
    this.buf.copy(out, pos, s, s + MTIME_LENGTH - 1);
    out[pos + MTIME_LENGTH - 1] = 0x5a;
    return pos + MTIME_LENGTH;
  }

  /** Whether mtime(i) equals the MTIME_LENGTH bytes of text at `other[off]`. */
  mtimeEquals(i: number, other: Buffer, off: number): boolean {
    const s = this.isoAt(i);
    if (s < 0) return this.mtime(i) === other.toString('latin1', off, off + MTIME_LENGTH);
    return other[off + MTIME_LENGTH - 1] === 0x5a && this.buf.compare(other, off, off + MTIME_LENGTH - 1, s, s + MTIME_LENGTH - 1) === 0;
  }

  /** The permission bits as a number. */
  mode(i: number): number {
    const o = i * W_STRIDE + W_MODE;
    return parseInt(this.buf.toString('latin1', this.at[o]!, this.at[o + 1]!), 8);
  }

  /** Writes the permission bits, four octal digits, at `pos`; returns the position after them. */
  writeMode(i: number, out: Buffer, pos: number): number {
    const o = i * W_STRIDE + W_MODE;
    const s = this.at[o]!;
    const e = this.at[o + 1]!;
    for (let k = e - s; k < 4; k++) out[pos++] = 0x30;
    return pos + this.buf.copy(out, pos, s, e);
  }

  /** Writes the inode (or, with `size`, the size) in decimal at `pos`; returns the position after it. */
  writeNumber(i: number, field: 'ino' | 'size', out: Buffer, pos: number): number {
    const o = i * W_STRIDE + (field === 'ino' ? W_INO : W_SIZE);
    const s = this.at[o]!;
    const e = this.at[o + 1]!;
    // Past 2^53 the number is written as JavaScript has it, as it is read back.
    if (e - s > 15) return pos + out.write(String(field === 'ino' ? this.ino[i] : this.size[i]), pos, 'latin1');
    return pos + this.buf.copy(out, pos, s, e);
  }
}

/** Length of a manifest's mtime text: 2026-11-22T03:15:07.123456789Z */
export const MTIME_LENGTH = 30;

/**
 * "1732250000.1234567890" (find's %T@) as "2024-11-22T04:33:20.123456789Z", in integers
 * (the walk uses it for the years that find's %TY does not print as four digits):
 * a float would round the nanoseconds, and Date cannot hold every time a filesystem can
 * (`touch -d @99999999999999` works on tmpfs). Years outside 0000–9999 are written with a
 * sign and six digits, as ISO 8601 extends them.
 */
export function isoFromEpoch(text: string): string {
  // find prints the seconds and then the nanoseconds, both as the kernel keeps them: a
  // time before 1970 such as -1.7500000000 is second -1 plus 0.75 (1969-12-31T23:59:59.75).
  const [secText = '0', frac = ''] = text.split('.');
  const nanos = BigInt(frac.padEnd(9, '0').slice(0, 9) || '0');
  const sec = BigInt(secText || '0');
  const floorDiv = (a: bigint, b: bigint) => (a >= 0n ? a / b : -((-a + b - 1n) / b));
  const days = floorDiv(sec, 86400n);
  const rest = sec - days * 86400n;
  // Howard Hinnant's civil_from_days.
  const z = days + 719468n;
  const era = floorDiv(z, 146097n);
  const doe = z - era * 146097n;
  const yoe = (doe - doe / 1460n + doe / 36524n - doe / 146096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const day = doy - (153n * mp + 2n) / 5n + 1n;
  const month = mp < 10n ? mp + 3n : mp - 9n;
  const year = yoe + era * 400n + (month <= 2n ? 1n : 0n);
  const two = (n: bigint) => n.toString().padStart(2, '0');
  const y = year >= 0n && year <= 9999n ? year.toString().padStart(4, '0') : `${year < 0n ? '-' : '+'}${(year < 0n ? -year : year).toString().padStart(6, '0')}`;
  const time = `${two(rest / 3600n)}:${two((rest % 3600n) / 60n)}:${two(rest % 60n)}`;
  return `${y}-${two(month)}-${two(day)}T${time}.${nanos.toString().padStart(9, '0')}Z`;
}

/** What reads files for a manifest: the hash pool, or a remote store's `hasher` around it. */
export type Hasher = Pick<HashPool, 'size' | 'hash'>;

/** The primary target, local (LocalTarget) or over SSH (RemotePrimaryTarget in remote-target.ts). */
export interface PrimaryTarget {
  readonly role: 'primary';
  /** How messages name it: the path, or `user@host:/path`. */
  readonly display: string;
  readonly root: string;
  /** Fails when the target cannot take a snapshot. */
  check(signal?: AbortSignal): Promise<void>;
  /** Whether `<target>/<host>` exists: an unmounted backup disk has none. */
  hasHost(host: string): Promise<boolean>;
  hostDir(host: string): string;
  /** What to do when the host's folder is missing there, where "mount the disk, or mkdir" does not say it. */
  missingHost?(host: string): string;
  repository(host: string, name: string): PrimaryStore;
  /** Ends what the run opened (a shared SSH connection). */
  close(): Promise<void>;
}

/**
 * One repository's folder on the primary target: what a backup builds a snapshot in, and
 * what verify, prune, status and restore read. `local`: on this machine (RepositoryStore).
 */
export interface PrimaryStore extends PruneStore {
  readonly local: boolean;
  /** `<root>/<host>/<repository>` at the target. */
  readonly base: string;
  snapshotLocation(id: string): string;
  snapshotDir(id: string): string;
  partialDir(id: string): string;
  prepare(): Promise<void>;
  readSummary(id: string, where?: 'snapshots' | 'incomplete'): Promise<{ summary: SnapshotSummary; bytes: Buffer }>;
  linkDest(id: string): string;
  /** A complete snapshot's data folder as rsync names it (for a comparison with the sources). */
  snapshotData(id: string): string;
  dataDest(id: string): string;
  /** rsync's options to reach the target; none for a local one. */
  rsh(): Promise<string[]>;
  /** Starts a partial snapshot; returns the unfinished snapshots of interrupted runs it cleared. */
  begin(id: string): Promise<string[]>;
  linkPrevious(previous: string, id: string, stale: Buffer[], signal: AbortSignal): Promise<boolean>;
  /** A folder on this machine for what a source makes (dumps, bundles) when the partial snapshot is not; undefined for a local target. */
  stage(id: string): Promise<string | undefined>;
  sendStaged(id: string, previous: string | undefined, signal: AbortSignal): Promise<void>;
  partialPath(id: string, rel: Buffer): Buffer;
  storedPath(id: string, rel: Buffer): Buffer;
  hasher(local: Hasher): Hasher;
  /** `previous`: the complete snapshot the partial one follows, whose files need not be read again. */
  walk(id: string, signal?: AbortSignal, light?: boolean, previous?: string): AsyncGenerator<WalkBatch>;
  manifestEntries(id: string): AsyncGenerator<Entry>;
  openPartialFile(id: string, name: string): WriteStream;
  writePartialFile(id: string, name: string, text: string): Promise<void>;
  flush(id: string): Promise<void>;
  publish(id: string): Promise<void>;
  discard(id: string): Promise<void>;
  /** Whether a damaged snapshot was moved aside by hand (`damaged-<id>`). */
  movedAside(id: string): Promise<boolean>;
  /** Where a copy of a complete snapshot is sent from: its folder here, or at a remote target. */
  snapshotSource(id: string): SnapshotSource;
  /** What to do about a complete snapshot whose own files are damaged: where it is, and how to move it aside there. */
  damaged(id: string): string;
  /** "sha256:…" of a complete snapshot's own file (`manifest.jsonl`, `snapshot.yaml`); undefined when it cannot be read. */
  fileDigest(id: string, name: string): Promise<string | undefined>;
  /** Verify at rest, where the snapshots lie (checkStored in copy-check.ts). */
  checkStored(snapshots: StoredSnapshot[], pick: (e: Entry) => boolean, signal?: AbortSignal): Promise<StoredCheck>;

  // A target that runs nothing (an rsync daemon, daemon-primary.ts) lists and reads back its
  // snapshots with rsync alone, and says so through these; the others leave them out.
  /** The transfer checksum rsync must report (%C) when it copies the sources there. */
  readonly checksum?: TransferChecksum;
  /** The environment of the sources' rsync runs against the target (a module's password), from the run's own. */
  rsyncEnv?(base: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv>;
  /** Builds and checks the partial snapshot's manifest itself (instead of buildManifest's walk and hashes). */
  buildManifest?(input: ManifestInput): Promise<ManifestOutcome>;
  /** Re-reads a complete snapshot against its manifest itself (instead of checkSnapshot's hashes). */
  checkSnapshot?(id: string, signal: AbortSignal): Promise<Pick<ManifestOutcome, 'checksum' | 'problems'>>;
  /** Frees what `snapshotSource` kept here (copies fetched for CSC). */
  release?(): Promise<void>;
}

export class LocalTarget implements PrimaryTarget {
  constructor(
    readonly role: 'primary',
    readonly root: string,
  ) {}

  get display(): string {
    return this.root;
  }

  async hasHost(host: string): Promise<boolean> {
    return exists(this.hostDir(host));
  }

  async close(): Promise<void> {}

  /** Fails when the target cannot take a snapshot: missing (an unmounted disk), not a folder, or read-only. */
  async check(): Promise<void> {
    try {
      const info = await stat(this.root);
      if (!info.isDirectory()) throw new BackupFailure('target', `the ${this.role} target ${this.root} is not a folder`, `point targets.${this.role} at the folder where snapshots are kept`);
      await access(this.root, constants.W_OK);
    } catch (e) {
      if (e instanceof BackupFailure) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT')
        throw new BackupFailure('target', `the ${this.role} target ${this.root} does not exist`, `is the backup disk mounted? respaldo does not create the target's top folder, so that an unmounted disk is noticed instead of filling the system disk; mount it (or mkdir ${this.root}) and run again`);
      throw new BackupFailure('target', `the ${this.role} target ${this.root} is not writable (${code})`, `check the mount (read-only?) and the permissions of ${this.root}`);
    }
  }

  /** `<target>/<host>`: on a mounted backup disk once the host has backed up there. */
  hostDir(host: string): string {
    return join(this.root, host);
  }

  repository(host: string, name: string): RepositoryStore {
    return new RepositoryStore(join(this.root, host, name), `${host}/${name}`);
  }
}

/** A manifest line that is not one: `name:line: not a manifest line (why)`. */
export class ManifestLineError extends Error {}

/** A manifest's entries from a stream of its bytes, `name` naming it in a ManifestLineError. */
export async function* parseManifest(input: NodeJS.ReadableStream, name: string): AsyncGenerator<ManifestEntry> {
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (!line) continue;
    let entry: ManifestEntry;
    try {
      entry = JSON.parse(line) as ManifestEntry;
    } catch (e) {
      throw new ManifestLineError(`${name}:${n}: not a manifest line (${messageOf(e)})`);
    }
    yield entry;
  }
}

export class RepositoryStore implements PrimaryStore {
  readonly local = true;

  constructor(
    readonly base: string,
    /** `<host>/<repository>`: where the store is inside its target. */
    readonly rel: string,
  ) {}

  /** Where a snapshot is, relative to the target: what records say (they never hold local paths). */
  snapshotLocation(id: string): string {
    return `${this.rel}/snapshots/${id}`;
  }

  /**
   * Creates the repository's folder with mode 0700: the copies keep their folders' modes,
   * and a world-writable folder copied from the source (an uploads folder) must not let
   * other users plant links inside a snapshot, nor read what root alone could.
   */
  async prepare(): Promise<void> {
    await mkdir(this.base, { recursive: true, mode: 0o700 });
  }

  snapshotDir(id: string): string {
    return join(this.base, 'snapshots', id);
  }

  partialDir(id: string): string {
    return join(this.base, 'incomplete', id);
  }

  /** rsync's destination for a partial snapshot's data (trailing slash: copy into it). */
  dataDest(id: string): string {
    return `${join(this.partialDir(id), 'data')}/`;
  }

  /** rsync's --link-dest for a complete snapshot, as a path on the receiving side. */
  linkDest(id: string): string {
    return join(this.snapshotDir(id), 'data');
  }

  snapshotData(id: string): string {
    return this.linkDest(id);
  }

  async rsh(): Promise<string[]> {
    return [];
  }

  /** Sources make their files in the partial snapshot itself. */
  async stage(): Promise<undefined> {
    return undefined;
  }

  async sendStaged(): Promise<void> {}

  /** The files are read here, by the pool itself. */
  hasher(local: Hasher): Hasher {
    return local;
  }

  async writePartialFile(id: string, name: string, text: string): Promise<void> {
    await writeFile(join(this.partialDir(id), name), text, { flag: 'wx' });
  }

  async movedAside(id: string): Promise<boolean> {
    return exists(join(this.base, `damaged-${id}`));
  }

  snapshotSource(id: string): string {
    return this.snapshotDir(id);
  }

  async fileDigest(id: string, name: string): Promise<string | undefined> {
    return sha256File(join(this.snapshotDir(id), name)).catch(() => undefined);
  }

  checkStored(snapshots: StoredSnapshot[], pick: (e: Entry) => boolean, signal?: AbortSignal): Promise<StoredCheck> {
    return checkStored(localShell, this.base, snapshots, pick, 'on the primary target', signal, (what, result) =>
      new BackupFailure('verify', `${what} failed on the primary target: ${lastLines(result.stderr, 2) || `exit code ${result.code}`}`, "the target needs GNU find and OpenSSL or coreutils' sha256sum; check the target disk (dmesg); the check is tried again on the next run", { detail: result.stderr }),
    );
  }

  /** Complete snapshots, oldest first. */
  async snapshots(): Promise<string[]> {
    try {
      return (await readdir(join(this.base, 'snapshots'))).filter((n) => SNAPSHOT_ID_RE.test(n)).sort(compareSnapshotIds);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /** Removes what interrupted runs left in `incomplete/` and creates a fresh partial snapshot. */
  async begin(id: string): Promise<string[]> {
    const incomplete = join(this.base, 'incomplete');
    await mkdir(incomplete, { recursive: true });
    const leftovers = await readdir(incomplete);
    // maxRetries: an rsync of a killed run may still be dying while its folder is removed.
    for (const name of leftovers) await rm(join(incomplete, name), { recursive: true, force: true, maxRetries: 5 });
    await mkdir(join(this.partialDir(id), 'data'), { recursive: true });
    return leftovers;
  }

  /**
   * Fills a partial snapshot's data with hard links to every entry of a previous snapshot
   * but the stale ones (changed or deleted at the source since; folders are copied, never
   * shared). That is what rsync --link-dest would link, at the cost of one link() a file:
   * rsync 3.5 walks the whole --link-dest path again, folder by folder, for every file,
   * which doubled the time of a backup of 200,000 files (README, Benchmark). False when it
   * could not be done (an old inode at its limit of links, say): the data folder is left
   * empty, and the caller copies with --link-dest instead.
   */
  async linkPrevious(previous: string, id: string, stale: Buffer[], signal: AbortSignal): Promise<boolean> {
    const data = join(this.partialDir(id), 'data');
    // Names come from rsync's listing of a real tree; anything else is not removed blindly.
    const safe = stale.every((rel) => rel.length > 0 && rel[0] !== 0x2f && !rel.toString('latin1').split('/').includes('..'));
    if (safe) {
      const copied = await runTool('cp', ['--recursive', '--link', '--no-dereference', '--preserve=mode,ownership,timestamps', '--no-target-directory', '--', this.linkDest(previous), data], { signal });
      if (copied.code === 0 && (await this.removeStale(this.dataPrefix(this.partialDir(id)), stale))) return true;
    }
    if (signal.aborted) throw new BackupFailure('interrupted', `the run was interrupted (${String(signal.reason)})`, 'run again; the previous snapshot is intact');
    await rm(data, { recursive: true, force: true });
    await mkdir(data);
    return false;
  }

  /**
   * Removes the stale entries from a freshly linked tree. Each entry's folders above it
   * must be real folders of the new tree: a removal must never follow a link (a source
   * link that became a folder) out of the snapshot. False when that does not hold or a
   * removal fails: the caller then starts over with --link-dest.
   */
  private async removeStale(prefix: Buffer, stale: Buffer[]): Promise<boolean> {
    const folders = new Set<string>();
    const realFolder = async (rel: Buffer): Promise<boolean | 'gone'> => {
      const key = rel.toString('latin1');
      if (folders.has(key)) return true;
      try {
        if (!(await lstat(Buffer.concat([prefix, rel]))).isDirectory()) return false;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
        throw e;
      }
      folders.add(key);
      return true;
    };
    try {
      next: for (const rel of stale) {
        for (let i = rel.indexOf(0x2f); i > 0; i = rel.indexOf(0x2f, i + 1)) {
          const above = await realFolder(rel.subarray(0, i));
          if (above === false) return false;
          // A folder above was removed as stale itself: so was this entry.
          if (above === 'gone') continue next;
        }
        await rm(Buffer.concat([prefix, rel]), { recursive: true, force: true });
      }
      return true;
    } catch {
      return false;
    }
  }

  async discard(id: string): Promise<void> {
    await rm(this.partialDir(id), { recursive: true, force: true });
  }

  private prefixes = new Map<string, Buffer>();

  /** `<dir>/data/` as bytes, made once per snapshot: paths are built for every file. */
  private dataPrefix(dir: string): Buffer {
    let prefix = this.prefixes.get(dir);
    if (!prefix) this.prefixes.set(dir, (prefix = Buffer.from(`${join(dir, 'data')}/`)));
    return prefix;
  }

  /** Stored file path inside a partial snapshot's data. */
  partialPath(id: string, rel: Buffer): Buffer {
    return Buffer.concat([this.dataPrefix(this.partialDir(id)), rel]);
  }

  /** Stored file path inside a complete snapshot's data. */
  storedPath(id: string, rel: Buffer): Buffer {
    return Buffer.concat([this.dataPrefix(this.snapshotDir(id)), rel]);
  }

  /**
   * Every entry of a partial snapshot's data, streamed from GNU find (NUL-separated: any
   * file name is safe), in batches as find writes them: one await per batch, not per file.
   */
  async *walk(id: string, signal?: AbortSignal, light = false): AsyncGenerator<WalkBatch> {
    const dir = join(this.partialDir(id), 'data');
    // Times in UTC, as the manifest keeps them.
    const { child, done } = streamTool('find', [dir, '-mindepth', '1', '-printf', light ? LIGHT_FORMAT : WALK_FORMAT], { env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' }, ...(signal ? { signal } : {}) });
    let pending: Buffer = Buffer.alloc(0);
    let consumed = false;
    try {
      for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        const { batch, rest } = WalkBatch.parse(pending, light);
        pending = pending.subarray(rest);
        if (batch.length) yield batch;
      }
      consumed = true;
    } finally {
      // Only a consumer that stopped early (an error downstream) leaves find running.
      if (!consumed) child.kill('SIGKILL');
    }
    const result = await done;
    if (result.code !== 0) throw new BackupFailure('manifest', `cannot list the stored snapshot in ${dir}`, 'check the target disk (dmesg shows I/O errors)', { detail: result.stderr, ...(result.code === null ? {} : { exitCode: result.code }) });
  }

  damaged(id: string): string {
    return `the snapshot was damaged after it was made (check the disk: dmesg, smartctl); move it aside (mv ${this.snapshotDir(id)} ${join(this.base, `damaged-${id}`)}) so that the next run makes a fresh copy`;
  }

  /** The entries of a complete snapshot's manifest, streamed; a line that does not parse is named by file and line. */
  async *manifestEntries(id: string): AsyncGenerator<ManifestEntry> {
    const file = join(this.snapshotDir(id), 'manifest.jsonl');
    try {
      yield* parseManifest(createReadStream(file), file);
    } catch (e) {
      if (e instanceof ManifestLineError) throw new BackupFailure('manifest', e.message, this.damaged(id));
      throw new BackupFailure('manifest', `cannot read ${file}: ${messageOf(e)}`, this.damaged(id));
    }
  }

  openPartialFile(id: string, name: string): WriteStream {
    // A deep queue: while the disk is busy writing back the copy, a write can take
    // milliseconds, and the manifest is built meanwhile instead of waiting for each one.
    return createWriteStream(join(this.partialDir(id), name), { flags: 'wx', highWaterMark: 4 << 20 });
  }

  async readSummary(id: string, where: 'snapshots' | 'incomplete' = 'snapshots'): Promise<{ summary: SnapshotSummary; bytes: Buffer }> {
    const file = join(where === 'snapshots' ? this.snapshotDir(id) : this.partialDir(id), 'snapshot.yaml');
    try {
      const bytes = await readFile(file);
      return { summary: snapshotSummary.parse(parseYaml(bytes.toString('utf8'))), bytes };
    } catch (e) {
      const why = e instanceof ZodError ? `field ${e.issues[0]!.path.join('.') || '(top)'}: ${e.issues[0]!.message}` : messageOf(e);
      throw new BackupFailure('manifest', `the summary ${file} of snapshot ${id} cannot be read: ${why}`, this.damaged(id));
    }
  }

  /** A file of a complete snapshot's data folder; undefined when there is none. */
  async readSnapshotFile(id: string, rel: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.linkDest(id), rel));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /**
   * Deletes a complete snapshot (respaldo prune). One rename takes it out of `snapshots/`
   * into `pruning/`, made durable before anything is removed: a crash leaves the whole
   * snapshot or a leftover that `removeLeftovers` clears, never a snapshot that claims to be
   * whole and is not. Removing names writes to no file, so the kept snapshots that share
   * the files' inodes (hard links) keep their bytes.
   */
  async removeSnapshot(id: string): Promise<void> {
    const pruning = join(this.base, 'pruning');
    await mkdir(pruning, { recursive: true, mode: 0o700 });
    await rename(this.snapshotDir(id), join(pruning, id));
    await fsyncDir(join(this.base, 'snapshots'));
    await fsyncDir(pruning);
    await rm(join(pruning, id), { recursive: true, force: true, maxRetries: 5 });
  }

  /** Removes what an interrupted prune left in `pruning/`; returns the snapshot ids removed. */
  async removeLeftovers(): Promise<string[]> {
    const pruning = join(this.base, 'pruning');
    const names = await readdir(pruning).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
    for (const name of names) await rm(join(pruning, name), { recursive: true, force: true, maxRetries: 5 });
    return names;
  }

  /** The names in the point-in-time-recovery archive's folder (`archive/wal`, `archive/binlog`). */
  async archiveFiles(folder: 'wal' | 'binlog'): Promise<string[]> {
    return readdir(join(this.base, 'archive', folder)).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
  }

  /** Removes one archive file (respaldo prune, only files no kept snapshot needs). */
  async removeArchiveFile(folder: 'wal' | 'binlog', name: string): Promise<void> {
    await rm(join(this.base, 'archive', folder, name), { force: true });
  }

  /** syncfs(2) on the target's filesystem: rsync does not fsync what it writes. */
  async flush(id: string): Promise<void> {
    try {
      await capture('sync', ['--file-system', this.partialDir(id)]);
    } catch (e) {
      throw new BackupFailure('target', `cannot flush the snapshot to the target's disk: ${messageOf(e)}`, 'check the target disk (dmesg shows I/O errors) and run again; the previous snapshot is intact');
    }
  }

  /** Flushes the partial snapshot to disk and makes it visible with one rename. */
  async publish(id: string): Promise<void> {
    await this.flush(id);
    await mkdir(join(this.base, 'snapshots'), { recursive: true });
    await rename(this.partialDir(id), this.snapshotDir(id));
    await fsyncDir(join(this.base, 'snapshots'));
  }
}
