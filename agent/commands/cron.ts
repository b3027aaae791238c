/**
 * `respaldo cron`: the /etc/cron.d file that runs the agent every hour, prunes once a day
 * when there are retention rules, and, for each MariaDB repository with point-in-time
 * recovery, archives its binary logs every 5 minutes.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config.js';
import type { Context } from '../context.js';
import { Exit, type ExitCode } from '../errors.js';
import { V8_FLAGS } from '../runtime.js';

export interface CronOptions {
  config: string;
}

export async function runCron(ctx: Context, opts: CronOptions): Promise<ExitCode> {
  const config = await loadConfig(opts.config, ctx.cwd);
  // Hosts start at different minutes (from their name) so that they don't all push at once.
  const minute = createHash('sha256').update(config.host).digest().readUInt16BE(0) % 60;
  const main = realpathSync(fileURLToPath(new URL('../main.js', import.meta.url)));
  // Absolute paths: cron's PATH is /usr/bin:/bin, where node often is not.
  const agent = `${process.execPath} ${V8_FLAGS.join(' ')} ${main}`;
  const file = resolve(ctx.cwd, opts.config);
  const command = `${agent} run --config ${file}`;
  // Repository names are plain words (schemas/common.ts), safe in a cron line.
  const binlogs = config.repositories.filter((r) => r.kind === 'database' && r.engine === 'mariadb' && r.pitr).map((r) => `${agent} db archive-binlogs --config ${file} --repo ${r.name}`);
  // Retention applied once a day, half an hour away from the hourly run so that they seldom meet (a prune that finds the lock taken exits 11 and tries again the next day).
  const prune = config.retention || config.repositories.some((r) => r.retention) ? `${(minute + 30) % 60} 5 * * * root ${agent} prune --apply --config ${file}` : undefined;
  const text = [
    `# /etc/cron.d/respaldo: the respaldo agent of host ${config.host}`,
    '# Every hour; each run backs up what is due and catches up what was missed while the server was off.',
    '# Silent when all is well: cron mails whatever it prints (failures and warnings) to MAILTO.',
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'MAILTO=root',
    `${minute} * * * * root ${command}`,
    ...(prune ? ['# Every day at 5: delete the snapshots that the retention rules no longer keep (never the newest good one, nothing after a failed backup).', prune] : []),
    ...(binlogs.length ? ['# Every 5 minutes: the closed binary logs of MariaDB point-in-time recovery, so that a restore can reach a few minutes ago.', ...binlogs.map((c) => `*/5 * * * * root ${c}`)] : []),
  ].join('\n');
  ctx.reporter.result(text, { minute, command, binlogs, prune: prune ?? null, file: '/etc/cron.d/respaldo' });
  return Exit.ok;
}
