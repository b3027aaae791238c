/**
 * The contract of a database engine (PostgreSQL, SQLite…): dump each database into the
 * partial snapshot's data/ folder, and restore those dumps into a throwaway instance to
 * prove that they restore. The database source (sources/database.ts) calls it; the backup
 * then builds the manifest and publishes the snapshot as for files.
 */
import { readFile } from 'node:fs/promises';
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import type { DatabaseInfo, RestoreCheck } from '../../schemas/database.js';
import { BackupFailure, messageOf } from '../errors.js';
import type { RepositoryStore } from '../target.js';

/** Rows per table ("schema.table" → rows), per dump file (its path under data/: unique, where two SQLite files may share a name). */
export type TableCounts = Map<string, Map<string, number>>;

export interface DumpJob {
  repository: DatabaseRepositoryConfig;
  /** The partial snapshot's data/ folder (a local path). */
  dataDir: string;
  /** The repository's store and the partial snapshot's id: point-in-time recovery reads the archive and the other snapshots. */
  store: RepositoryStore;
  id: string;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
  /** Records the SHA-1 of a dump's bytes as the tool wrote them, by its path under data/. */
  written: (rel: string, sha1: string) => void;
}

export interface DumpResult {
  info: DatabaseInfo;
  /** The rows each table held in the dump's snapshot, for the test restore to compare with. */
  counts: TableCounts;
  warnings: { code: string; message: string }[];
  /**
   * Seconds of the dump spent checking rather than copying (SQLite counts the rows in the
   * copy's own transaction, one after the other): reported as verification time.
   */
  checkSeconds?: number;
}

export interface RestoreJob {
  repository: DatabaseRepositoryConfig;
  dataDir: string;
  dump: DumpResult;
  signal: AbortSignal;
  env: NodeJS.ProcessEnv;
}

export interface Engine {
  dump(job: DumpJob): Promise<DumpResult>;
  testRestore(job: RestoreJob): Promise<RestoreCheck>;
}

/** Compares the rows of every table after a restore with those counted at dump time. */
export function compareCounts(expected: Map<string, number> | undefined, restored: Map<string, number>): string[] {
  const mismatches: string[] = [];
  for (const [table, rows] of expected ?? []) {
    const got = restored.get(table);
    if (got === undefined) mismatches.push(`${table}: missing after the restore (${rows} rows expected)`);
    else if (got !== rows) mismatches.push(`${table}: ${got} rows restored, ${rows} expected`);
  }
  for (const table of restored.keys()) if (!expected?.has(table)) mismatches.push(`${table}: restored but not in the source`);
  return mismatches;
}

export const sum = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

/** The password in a repository's connection.password-file, without its final newline. */
export async function readPassword(repo: DatabaseRepositoryConfig, file: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (e) {
    throw new BackupFailure('source', `cannot read the password file of ${repo.name}: ${messageOf(e)}`, `check connection.password-file of repository ${repo.name} in the host config (a file holding only the password, readable by the agent)`);
  }
}

/** A database's dump file under data/: `<folder>/<name><ext>` where the name is a safe file name, else numbered and hex-encoded. */
export function dumpName(folder: string, ext: string, database: string, i: number): string {
  return /^[A-Za-z0-9_.-]{1,100}$/.test(database) && !database.startsWith('.') ? `${folder}/${database}${ext}` : `${folder}/${i + 1}-${Buffer.from(database).toString('hex').slice(0, 100)}${ext}`;
}
