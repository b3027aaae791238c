/**
 * `database` repositories: each engine dumps its databases into the partial snapshot's
 * data/ folder, hashing the bytes as they are written; the manifest then re-reads the
 * stored copies against those hashes (level `checksum`), and the test restore loads them
 * into a throwaway instance (level `restore`).
 */
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import type { Engine } from '../databases/engine.js';
import { mariadbEngine } from '../databases/mariadb.js';
import { postgresqlEngine } from '../databases/postgresql.js';
import { sqliteEngine } from '../databases/sqlite.js';
import type { Source } from './source.js';
import type { RepositoryStore } from '../target.js';

const engines: Record<DatabaseRepositoryConfig['engine'], Engine> = {
  postgresql: postgresqlEngine,
  mariadb: mariadbEngine,
  sqlite: sqliteEngine,
};

const engineOf = (repo: DatabaseRepositoryConfig): Engine => engines[repo.engine];

export const databaseSource = {
  async snapshot(job) {
    const repo = job.repository as DatabaseRepositoryConfig;
    // The dumps' SHA-1, computed over the bytes as they were written, is what the stored copies are checked against.
    job.transferred.algorithm = 'sha1';
    const dataDir = job.dest.replace(/\/+$/, '');
    const dump = await engineOf(repo).dump({ repository: repo, dataDir, // Point-in-time recovery, which uses the store's archive, needs a primary on this
    // machine: the config refuses it with a remote one.
    store: job.store as RepositoryStore, id: job.id, signal: job.signal, env: job.env, written: (rel, sha1) => job.transferred.add(Buffer.from(rel), sha1) });
    return { warnings: dump.warnings, origin: undefined, dump };
  },

  testRestore(job) {
    const repo = job.repository as DatabaseRepositoryConfig;
    return engineOf(repo).testRestore({ repository: repo, dataDir: job.dataDir, dump: job.dump, signal: job.signal, env: job.env });
  },
} satisfies Source;
