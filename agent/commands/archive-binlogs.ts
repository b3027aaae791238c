/**
 * `respaldo db archive-binlogs --repo NAME`: closes a MariaDB server's binary log and stores
 * every closed log not yet archived (mariadb-pitr.ts), so that a point-in-time restore can
 * reach a few minutes ago rather than last night. Cron runs it every 5 minutes (see
 * `respaldo cron`); it takes no lock and writes no record, like PostgreSQL's wal-push: the
 * archive only grows, each log stored once by name, and two runs at once store each log
 * once. Silent on success; a gap in the archive is a warning.
 */
import { loadConfig } from '../config.js';
import type { Context } from '../context.js';
import { archiveBinlogs, gapMessage, readBinlogArchive } from '../databases/mariadb-pitr.js';
import { connect, programs } from '../databases/mariadb.js';
import { BackupFailure, Exit, RespaldoError, type ExitCode } from '../errors.js';
import { formatZoned, hostZone } from '../../schemas/zoned.js';
import { pitrRepository } from './wal-push.js';

export interface ArchiveBinlogsOptions {
  config: string;
  repo: string | undefined;
}

export async function runArchiveBinlogs(ctx: Context, opts: ArchiveBinlogsOptions): Promise<ExitCode> {
  const config = await loadConfig(opts.config, ctx.cwd);
  const { repo, store, target } = pitrRepository(config, opts.repo, 'db archive-binlogs', ['mariadb']);
  try {
    // An unmounted backup disk must not fill the system disk with binary logs.
    await target.check();
    await store.prepare();
    const conn = await connect(repo, ctx.env);
    const bin = programs(repo, conn.env);
    try {
      const done = await archiveBinlogs(repo, store, conn, bin, ctx.signal);
      const archive = await readBinlogArchive(store, bin, conn.env, ctx.signal);
      if (archive.gaps.length) ctx.reporter.event({ type: 'warning', repository: repo.name, message: `pitr-archive-gap: ${gapMessage(archive.gaps)}` });
      const zone = hostZone(config.timezone);
      ctx.reporter.event({
        type: 'info',
        message: `${repo.name}: ${done.archived.length} binary log(s) archived${done.archived.length ? ` (${done.archived.join(', ')})` : ''}, ${done.present} already there; recoverable ${archive.window ? `from ${formatZoned(archive.window.from, zone)} to ${formatZoned(archive.window.to, zone)}` : 'window: none yet (it starts with the next backup)'}`,
      });
      return Exit.ok;
    } finally {
      await conn.cleanup();
    }
  } catch (e) {
    // Not a backup: nothing is recorded, the failure goes to cron's mail.
    if (e instanceof BackupFailure) throw new RespaldoError(e.message, { exitCode: Exit.nothing, hint: e.hint });
    throw e;
  }
}
