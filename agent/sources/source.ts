/**
 * The contract every source type implements (Litestream's habit: a few core types, every
 * adapter the same interface). A source fills the `data/` folder of a partial snapshot;
 * the backup then builds the manifest, verifies and publishes it the same way for all.
 */
import type { RepositoryConfig } from '../../schemas/config.js';
import type { TransferLog } from '../transfers.js';

export interface SnapshotJob {
  repository: RepositoryConfig;
  /** rsync-style destination of the partial snapshot's data folder. */
  dest: string;
  /** The previous complete snapshot's data folder, for hard links to unchanged files. */
  linkDest: string | undefined;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  progress: ((done: number, total: number) => void) | undefined;
  /** To fill with the SHA-1 of what was read at the source, by path under data/, for the files the source knows it for. */
  transferred: TransferLog;
}

export interface SnapshotResult {
  warnings: { code: string; message: string }[];
  /**
   * Where a stored file (path relative to data/) came from, so that verification can
   * re-read the original; undefined for sources with no original file (a dump).
   */
  origin: ((rel: Buffer) => Buffer) | undefined;
}

export interface Source {
  snapshot(job: SnapshotJob): Promise<SnapshotResult>;
  /**
   * True when the repository's data still matches a complete snapshot exactly, so that no
   * new snapshot is needed; sources that cannot tell cheaply leave it out.
   */
  unchanged?(job: { repository: RepositoryConfig; snapshotData: string; signal: AbortSignal; env: NodeJS.ProcessEnv }): Promise<boolean>;
}
