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
import { access, constants, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse as parseYaml } from 'yaml';
import { snapshotSummary, type SnapshotSummary } from '../schemas/snapshot.js';
import { BackupFailure } from './errors.js';
import { capture, streamTool } from './exec.js';
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

/** "1732250000.1234567890" (find's %T@) as "2024-11-22T04:33:20.123456789Z", without going through a float. */
function isoFromEpoch(text: string): string {
  const [sec = '0', frac = ''] = text.split('.');
  const base = new Date(Number(sec) * 1000).toISOString();
  return `${base.slice(0, 19)}.${frac.padEnd(9, '0').slice(0, 9)}Z`;
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

  repository(host: string, name: string): RepositoryStore {
    return new RepositoryStore(join(this.root, host, name));
  }
}

export class RepositoryStore {
  constructor(readonly base: string) {}

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
      return (await readdir(join(this.base, 'snapshots'))).filter((n) => SNAPSHOT_ID_RE.test(n)).sort();
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

  async discard(id: string): Promise<void> {
    await rm(this.partialDir(id), { recursive: true, force: true });
  }

  /** Stored file path inside a partial snapshot's data. */
  partialPath(id: string, rel: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${join(this.partialDir(id), 'data')}/`), rel]);
  }

  /** Stored file path inside a complete snapshot's data. */
  storedPath(id: string, rel: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${this.linkDest(id)}/`), rel]);
  }

  /** Every entry of a partial snapshot's data, streamed from GNU find (NUL-separated: any file name is safe). */
  async *walk(id: string, signal?: AbortSignal): AsyncGenerator<WalkEntry> {
    const dir = join(this.partialDir(id), 'data');
    const { child, done } = streamTool('find', [dir, '-mindepth', '1', '-printf', '%y %i %s %T@ %m %P\\0%l\\0'], signal ? { signal } : {});
    let pending: Buffer = Buffer.alloc(0);
    let consumed = false;
    try {
      for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
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
          yield {
            type: (type === 'D' ? 's' : type) as WalkEntry['type'],
            ino: ino!,
            size: Number(size),
            mtime: isoFromEpoch(mtime!),
            mode: mode!.padStart(4, '0'),
            rel: Buffer.from(head.subarray(cut)),
            target: type === 'l' ? Buffer.from(pending.subarray(a + 1, b)) : undefined,
          };
          start = b + 1;
        }
        pending = pending.subarray(start);
      }
      consumed = true;
    } finally {
      // Only a consumer that stopped early (an error downstream) leaves find running.
      if (!consumed) child.kill('SIGKILL');
    }
    const result = await done;
    if (result.code !== 0) throw new BackupFailure('manifest', `cannot list the stored snapshot in ${dir}`, 'check the target disk (dmesg shows I/O errors)', { detail: result.stderr, ...(result.code === null ? {} : { exitCode: result.code }) });
  }

  /** Lines of a complete snapshot's manifest, streamed. */
  async *manifestLines(id: string): AsyncGenerator<string> {
    const lines = createInterface({ input: createReadStream(join(this.snapshotDir(id), 'manifest.jsonl')), crlfDelay: Infinity });
    for await (const line of lines) if (line) yield line;
  }

  openPartialFile(id: string, name: string): WriteStream {
    return createWriteStream(join(this.partialDir(id), name), { flags: 'wx' });
  }

  async readSummary(id: string, where: 'snapshots' | 'incomplete' = 'snapshots'): Promise<{ summary: SnapshotSummary; bytes: Buffer }> {
    const bytes = await readFile(join(where === 'snapshots' ? this.snapshotDir(id) : this.partialDir(id), 'snapshot.yaml'));
    return { summary: snapshotSummary.parse(parseYaml(bytes.toString('utf8'))), bytes };
  }

  /** syncfs(2) on the target's filesystem: rsync does not fsync what it writes. */
  async flush(id: string): Promise<void> {
    await capture('sync', ['--file-system', this.partialDir(id)]);
  }

  /** Flushes the partial snapshot to disk and makes it visible with one rename. */
  async publish(id: string): Promise<void> {
    await this.flush(id);
    await mkdir(join(this.base, 'snapshots'), { recursive: true });
    await rename(this.partialDir(id), this.snapshotDir(id));
    await fsyncDir(join(this.base, 'snapshots'));
  }
}
