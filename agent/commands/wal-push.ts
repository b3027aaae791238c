/**
 * `respaldo wal-push %p %f`: PostgreSQL's archive_command. Stores one WAL file in the
 * repository's archive and exits 0 only once it is on disk; any other exit makes
 * PostgreSQL keep the file and retry. Silent on success: the server logs what it prints.
 */
import { resolve } from 'node:path';
import type { DatabaseRepositoryConfig } from '../../schemas/config.js';
import type { DatabaseEngine } from '../../schemas/database.js';
import type { Config } from '../config.js';
import { loadConfig, requireLocalPrimary } from '../config.js';
import type { Context } from '../context.js';
import { walDir, walPush } from '../databases/postgresql-pitr.js';
import { Exit, usageError, type ExitCode } from '../errors.js';
import { LocalTarget, type RepositoryStore } from '../target.js';

export interface WalPushOptions {
  config: string;
  repo: string | undefined;
  /** %p: the file's path, relative to the server's data folder (the archiver's working folder). */
  path: string | undefined;
  /** %f: the file's name. */
  name: string | undefined;
}

const ENGINE_NAMES: Record<DatabaseEngine, string> = { postgresql: 'PostgreSQL', mariadb: 'MariaDB', sqlite: 'SQLite' };

/** A database repository of one of `engines` that asks for point-in-time recovery, and its store on the primary target. */
export function pitrRepository(config: Config, name: string | undefined, command: string, engines: readonly DatabaseEngine[] = ['postgresql']): { repo: DatabaseRepositoryConfig; store: RepositoryStore; target: LocalTarget } {
  const there = `repositories there: ${config.repositories.map((r) => r.name).join(', ')}`;
  if (!name) throw usageError(`"respaldo ${command}" needs --repo NAME`, there);
  const repo = config.repositories.find((r) => r.name === name);
  if (!repo) throw usageError(`no repository named "${name}" in ${config.file}`, there);
  const names = engines.map((e) => ENGINE_NAMES[e]).join(' or ');
  if (repo.kind !== 'database' || !engines.includes(repo.engine) || !repo.pitr)
    throw usageError(
      repo.kind === 'database' && repo.pitr ? `repository "${name}" in ${config.file} is a ${ENGINE_NAMES[repo.engine]} repository: "respaldo ${command}" is for ${names}` : `repository "${name}" in ${config.file} does not ask for point-in-time recovery`,
      `a ${names} repository needs "pitr: true" (kind: database, engine: ${engines.join(' | ')})`,
    );
  const target = new LocalTarget('primary', requireLocalPrimary(config, `"respaldo ${command}"`));
  return { repo, store: target.repository(config.host, repo.name), target };
}

export async function runWalPush(ctx: Context, opts: WalPushOptions): Promise<ExitCode> {
  if (!opts.path || !opts.name) throw usageError('"respaldo wal-push" needs the WAL file\'s path and name', "in postgresql.conf: archive_command = 'respaldo wal-push --repo NAME %p %f' (respaldo db setup-pitr prints the line)");
  const config = await loadConfig(opts.config, ctx.cwd);
  const { store } = pitrRepository(config, opts.repo, 'wal-push');
  await walPush(walDir(store), resolve(ctx.cwd, opts.path), opts.name);
  return Exit.ok;
}
