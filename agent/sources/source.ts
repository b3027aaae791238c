/**
 * The contract every source type implements (Litestream's habit: a few core types, every
 * adapter the same interface). A source fills the `data/` folder of a partial snapshot;
 * the backup then builds the manifest, verifies and publishes it the same way for all.
 */
import type { RepositoryConfig } from '../../schemas/config.js';
import type { RestoreCheck } from '../../schemas/database.js';
import type { GitInfo } from '../../schemas/git.js';
import type { SnapshotSummary } from '../../schemas/snapshot.js';
import type { DumpResult } from '../databases/engine.js';
import type { Comparison } from '../rsync.js';
import type { PrimaryStore } from '../target.js';
import type { TransferLog } from '../transfers.js';

export interface SnapshotJob {
  repository: RepositoryConfig;
  /** rsync-style destination of the partial snapshot's data folder (a folder here for a source that makes its files). */
  dest: string;
  /** rsync's options to reach `dest` (`-e 'ssh …'` for a remote primary target); none for a local one. */
  rsh: string[];
  /** The repository's store and the partial snapshot's id. */
  store: PrimaryStore;
  id: string;
  /** The previous complete snapshot's data folder, for hard links to unchanged files. */
  linkDest: string | undefined;
  /**
   * `dest` already holds hard links to the previous snapshot's unchanged entries
   * (RepositoryStore.linkPrevious): copy what is missing and leave every existing file as
   * it is, since writing to one would change the previous snapshot too.
   */
  keepExisting: boolean;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  progress: ((done: number, total: number) => void) | undefined;
  /** To fill with rsync's checksum of what was read at the source, by path under data/, for the files the source knows it for. */
  transferred: TransferLog;
}

export interface SnapshotResult {
  warnings: { code: string; message: string }[];
  /**
   * Where a stored file (path relative to data/) came from, so that verification can
   * re-read the original; undefined for sources with no original file (a dump).
   */
  origin: ((rel: Buffer) => Buffer) | undefined;
  /** A database source's dumps: engine, server, sizes and the rows counted at dump time. */
  dump?: DumpResult;
  /** A git source's bundles, with their refs and the checks already made on them (verification level `restore`). */
  git?: GitInfo;
}

export interface Source {
  snapshot(job: SnapshotJob): Promise<SnapshotResult>;
  /** Databases: restores the stored dumps into a throwaway instance and checks them (verification level `restore`). */
  testRestore?(job: { repository: RepositoryConfig; dataDir: string; dump: DumpResult; signal: AbortSignal; env: NodeJS.ProcessEnv }): Promise<RestoreCheck>;
  /**
   * What changed at the source since a complete snapshot, at the cost of a comparison;
   * sources that cannot tell cheaply leave it out. `summary` is that snapshot's snapshot.yaml;
   * `limit` caps the list of stale entries.
   */
  compare?(job: { repository: RepositoryConfig; store: PrimaryStore; snapshotData: string; rsh: string[]; summary: SnapshotSummary; limit: number; signal: AbortSignal; env: NodeJS.ProcessEnv }): Promise<Comparison>;
}
