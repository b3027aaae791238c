/**
 * Where snapshots are stored: `<target>/<host>/<repository>/snapshots/<id>/` holds complete
 * snapshots only. A snapshot is built in `incomplete/<id>/` and moved into `snapshots/` with
 * one rename after it is verified and flushed, so a crash leaves the old state or the new
 * one, never a snapshot that claims to be whole and is not.
 *
 * Only local paths (a mounted disk or share) for now. rsync is handed destination strings
 * (`dataDest`, `linkDest`) so that remote targets can slot in: everything else a backup
 * needs from the target goes through this class.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { access, constants, lstat, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseYaml } from 'yaml';
import { ZodError } from 'zod';
import { compareSnapshotIds } from '../schemas/common.js';
import type { ManifestEntry } from '../schemas/manifest.js';
import { snapshotSummary, type SnapshotSummary } from '../schemas/snapshot.js';
import { BackupFailure, messageOf } from './errors.js';
import { capture, runTool, streamTool } from './exec.js';
import { fsyncDir } from './fsutil.js';

const SNAPSHOT_ID_RE = /^\d{8}T\d{6}Z(-\d+)?$/;

/** One entry of a stored snapshot's data folder, as `find` reports it. */
export interface WalkEntry {
  type: 'f' | 'd' | 'l' | 'p' | 's' | 'c' | 'b';
  ino: string;
  size: number;
  /** UTC, to the nanosecond. */
  mtime: string;
  /** Permission bits, octal, four digits. */
  mode: string;
  /** Path relative to the data folder, as bytes. */
  rel: Buffer;
  /** Link target, for symbolic links. */
  target: Buffer | undefined;
}

/**
 * "1732250000.1234567890" (find's %T@) as "2024-11-22T04:33:20.123456789Z", in integers:
 * a float would round the nanoseconds, and Date cannot hold every time a filesystem can
 * (`touch -d @99999999999999` works on tmpfs). Years outside 0000–9999 are written with a
 * sign and six digits, as ISO 8601 extends them.
 */
let lastSecond = { text: '', iso: '' };

export function isoFromEpoch(text: string): string {
  const dot = text.indexOf('.');
  const secText = dot < 0 ? text : text.slice(0, dot);
  const frac = dot < 0 ? '' : text.slice(dot + 1);
  // The common case, years 1970–9999, through Date; the rest in integers below. Files
  // written together share their second: its text is kept from the last call.
  if (secText === lastSecond.text) return `${lastSecond.iso}.${frac.padEnd(9, '0').slice(0, 9)}Z`;
  if (/^\d{1,12}$/.test(secText) && Number(secText) <= 253402300799) {
    lastSecond = { text: secText, iso: new Date(Number(secText) * 1000).toISOString().slice(0, 19) };
    return `${lastSecond.iso}.${frac.padEnd(9, '0').slice(0, 9)}Z`;
  }
  return isoFromEpochExact(text);
}

function isoFromEpochExact(text: string): string {
  const negative = text.startsWith('-');
  const [secText = '0', frac = ''] = text.replace(/^-/, '').split('.');
  let nanos = BigInt(frac.padEnd(9, '0').slice(0, 9) || '0');
  let sec = BigInt(secText || '0');
  if (negative) {
    sec = -sec;
    if (nanos > 0n) {
      sec -= 1n;
      nanos = 1_000_000_000n - nanos;
    }
  }
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

export class LocalTarget {
  constructor(
    readonly role: 'primary',
    readonly root: string,
  ) {}

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

export class RepositoryStore {
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
  async *walk(id: string, signal?: AbortSignal): AsyncGenerator<WalkEntry[]> {
    const dir = join(this.partialDir(id), 'data');
    const { child, done } = streamTool('find', [dir, '-mindepth', '1', '-printf', '%y %i %s %T@ %m %P\\0%l\\0'], signal ? { signal } : {});
    let pending: Buffer = Buffer.alloc(0);
    let consumed = false;
    try {
      for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        const entries: WalkEntry[] = [];
        let start = 0;
        for (;;) {
          const a = pending.indexOf(0, start);
          if (a < 0) break;
          const b = pending.indexOf(0, a + 1);
          if (b < 0) break;
          const head = pending.subarray(start, a);
          // "%y %i %s %T@ %m " and then the path, which may itself contain spaces.
          let cut = 0;
          for (let k = 0; k < 5; k++) cut = head.indexOf(32, cut) + 1;
          const [type, ino, size, mtime, mode] = head.subarray(0, cut - 1).toString('latin1').split(' ');
          entries.push({
            type: (type === 'D' ? 's' : type) as WalkEntry['type'],
            ino: ino!,
            size: Number(size),
            mtime: isoFromEpoch(mtime!),
            mode: mode!.padStart(4, '0'),
            rel: Buffer.from(head.subarray(cut)),
            target: type === 'l' ? Buffer.from(pending.subarray(a + 1, b)) : undefined,
          });
          start = b + 1;
        }
        pending = pending.subarray(start);
        if (entries.length) yield entries;
      }
      consumed = true;
    } finally {
      // Only a consumer that stopped early (an error downstream) leaves find running.
      if (!consumed) child.kill('SIGKILL');
    }
    const result = await done;
    if (result.code !== 0) throw new BackupFailure('manifest', `cannot list the stored snapshot in ${dir}`, 'check the target disk (dmesg shows I/O errors)', { detail: result.stderr, ...(result.code === null ? {} : { exitCode: result.code }) });
  }

  /** What to do about a complete snapshot whose own files are damaged. */
  private damaged(id: string): string {
    return `the snapshot was damaged after it was made (check the disk: dmesg, smartctl); move it aside (mv ${this.snapshotDir(id)} ${join(this.base, `damaged-${id}`)}) so that the next run makes a fresh copy`;
  }

  /** The entries of a complete snapshot's manifest, streamed; a line that does not parse is named by file and line. */
  async *manifestEntries(id: string): AsyncGenerator<ManifestEntry> {
    const file = join(this.snapshotDir(id), 'manifest.jsonl');
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    let n = 0;
    try {
      for await (const line of lines) {
        n++;
        if (!line) continue;
        let entry: ManifestEntry;
        try {
          entry = JSON.parse(line) as ManifestEntry;
        } catch (e) {
          throw new BackupFailure('manifest', `${file}:${n}: not a manifest line (${messageOf(e)})`, this.damaged(id));
        }
        yield entry;
      }
    } catch (e) {
      if (e instanceof BackupFailure) throw e;
      throw new BackupFailure('manifest', `cannot read ${file}: ${messageOf(e)}`, this.damaged(id));
    }
  }

  openPartialFile(id: string, name: string): WriteStream {
    return createWriteStream(join(this.partialDir(id), name), { flags: 'wx' });
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
