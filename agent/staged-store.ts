/**
 * What the primary stores on another host share: `RemoteRepositoryStore` (over SSH,
 * remote-target.ts) and `DaemonPrimaryStore` (in an rsync daemon, daemon-primary.ts). Both
 * keep the repository's folder at the target in the layout of a local one, write the
 * manifest and the summary here first, in `<state>/staging/<host>/<repository>/<id>/` (with
 * the files a source makes: dumps, bundles), send them last, and leave pruning and reading
 * to the store of CSC's kind that reaches the same target (`at`).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { ZodError } from 'zod';
import type { ManifestEntry } from '../schemas/manifest.js';
import { snapshotSummary, type SnapshotSummary } from '../schemas/snapshot.js';
import { BackupFailure, messageOf } from './errors.js';
import type { ArchiveFolder } from './databases/archive-prune.js';
import type { PruneStore } from './prune.js';
import { ManifestLineError, parseManifest } from './target.js';

/** What a staged store leaves to the store that reaches its target. */
export type Reach = Pick<PruneStore, 'readSnapshotFile' | 'removeSnapshot' | 'removeLeftovers' | 'archiveFiles' | 'removeArchiveFile'> & {
  snapshots(signal?: AbortSignal): Promise<string[]>;
  readManifest(id: string): Promise<Buffer | undefined>;
};

export abstract class StagedStore {
  readonly local = false;
  protected abstract readonly at: Reach;

  /** The listing `prepare` made, for the `snapshots` call that follows it (each request to the target costs a round trip). */
  protected listed: string[] | undefined;

  /** Summaries and manifests this run has already read or sent, by snapshot id: they are not fetched again. */
  protected readonly summaries = new Map<string, Buffer>();
  protected readonly manifests = new Map<string, Buffer>();

  constructor(
    readonly base: string,
    readonly rel: string,
    /** Where the manifest, the summary and made files (dumps, bundles) wait to be sent. */
    protected readonly staging: string,
  ) {}

  snapshotLocation(id: string): string {
    return `${this.rel}/snapshots/${id}`;
  }

  snapshotDir(id: string): string {
    return posix.join(this.base, 'snapshots', id);
  }

  protected stagingDir(id: string): string {
    return join(this.staging, id);
  }

  /** Clears what interrupted runs left here, and makes the partial snapshot's staging folder. */
  protected async freshStaging(id: string): Promise<void> {
    await rm(this.staging, { recursive: true, force: true, maxRetries: 5 });
    await mkdir(this.stagingDir(id), { recursive: true, mode: 0o700 });
  }

  /** A folder here for a source that makes its files (dumps, bundles), sent by `sendStaged`. */
  async stage(id: string): Promise<string> {
    const data = join(this.stagingDir(id), 'data');
    await mkdir(data, { recursive: true, mode: 0o700 });
    return data;
  }

  openPartialFile(id: string, name: string): WriteStream {
    return createWriteStream(join(this.stagingDir(id), name), { flags: 'wx' });
  }

  async writePartialFile(id: string, name: string, text: string): Promise<void> {
    await writeFile(join(this.stagingDir(id), name), text, { flag: 'wx' });
  }

  /** Complete snapshots at the target, oldest first: what `prepare` listed, the first time. */
  async snapshots(signal?: AbortSignal): Promise<string[]> {
    const listed = this.listed;
    this.listed = undefined;
    return listed ?? this.at.snapshots(signal);
  }

  /** What to do about a complete snapshot whose own files are damaged. */
  abstract damaged(id: string): string;

  /** How messages name a snapshot's file at the target. */
  protected abstract shown(path: string): string;

  /** A summary read at the target (`file`), kept for the run when it is a complete snapshot's. */
  protected parsedSummary(id: string, file: string, bytes: Buffer, where: 'snapshots' | 'incomplete'): { summary: SnapshotSummary; bytes: Buffer } {
    if (where === 'snapshots') this.summaries.set(id, bytes);
    try {
      return { summary: snapshotSummary.parse(parseYaml(bytes.toString('utf8'))), bytes };
    } catch (e) {
      const why = e instanceof ZodError ? `field ${e.issues[0]!.path.join('.') || '(top)'}: ${e.issues[0]!.message}` : messageOf(e);
      throw new BackupFailure('manifest', `the summary ${this.shown(file)} of snapshot ${id} cannot be read: ${why}`, this.damaged(id));
    }
  }

  async *manifestEntries(id: string): AsyncGenerator<ManifestEntry> {
    const file = this.shown(posix.join(this.snapshotDir(id), 'manifest.jsonl'));
    const bytes = this.manifests.get(id) ?? (await this.at.readManifest(id));
    if (!bytes) throw new BackupFailure('manifest', `${file} is missing`, this.damaged(id));
    // Read twice by a backup (the digests of linked files, the files stored anew): kept for the run.
    this.manifests.set(id, bytes);
    try {
      yield* parseManifest(Readable.from([bytes]), file);
    } catch (e) {
      if (e instanceof ManifestLineError) throw new BackupFailure('manifest', e.message, this.damaged(id));
      throw e;
    }
  }

  readSnapshotFile(id: string, rel: string): Promise<Buffer | undefined> {
    return this.at.readSnapshotFile(id, rel);
  }

  removeSnapshot(id: string): Promise<void> {
    return this.at.removeSnapshot(id);
  }

  removeLeftovers(): Promise<string[]> {
    return this.at.removeLeftovers();
  }

  archiveFiles(folder: ArchiveFolder): Promise<string[]> {
    return this.at.archiveFiles(folder);
  }

  removeArchiveFile(folder: ArchiveFolder, name: string): Promise<void> {
    return this.at.removeArchiveFile(folder, name);
  }
}
