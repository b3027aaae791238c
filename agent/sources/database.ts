/**
 * `database` repositories: each engine dumps its databases into the partial snapshot's
 * data/ folder, hashing the bytes as the tool writes them; the manifest then re-reads the
 * stored copies against those hashes (level `checksum`), and the test restore loads them
 * into a throwaway instance (level `restore`).
 */
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import type { Engine } from '../databases/engine.js';
import { postgresqlEngine } from '../databases/postgresql.js';
import { sqliteEngine } from '../databases/sqlite.js';
import type { Source } from './source.js';

const engines: Record<DatabaseRepositoryConfig['engine'], Engine | undefined> = {
  postgresql: postgresqlEngine,
  sqlite: sqliteEngine,
  mariadb: undefined,
};

function engineOf(repo: DatabaseRepositoryConfig): Engine {
  const engine = engines[repo.engine];
  if (!engine) throw new Error(`the ${repo.engine} engine is not supported by this version of respaldo`);
  return engine;
}

export const databaseSource = {
  async snapshot(job) {
    const repo = job.repository as DatabaseRepositoryConfig;
    // The dumps' SHA-1, computed over the bytes as the tool wrote them, is what the stored copies are checked against.
    job.transferred.algorithm = 'sha1';
    const dataDir = job.dest.replace(/\/+$/, '');
    const dump = await engineOf(repo).dump({ repository: repo, dataDir, signal: job.signal, env: job.env, written: (rel, sha1) => job.transferred.add(Buffer.from(rel), sha1) });
    return { warnings: dump.warnings, origin: undefined, dump };
  },

  testRestore(job) {
    const repo = job.repository as DatabaseRepositoryConfig;
    return engineOf(repo).testRestore({ repository: repo, dataDir: job.dataDir, dump: job.dump, signal: job.signal, env: job.env });
  },
} satisfies Source;
