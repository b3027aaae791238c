/** Opening a host for a command: its config, key, records checkout and chain. */
import { userInfo } from 'node:os';
import { loadConfig, type Config } from './config.js';
import type { Context } from './context.js';
import { Exit, RespaldoError } from './errors.js';
import { lastLines } from './exec.js';
import { RecordsGit } from './git.js';
import { loadKey, type HostKey } from './keys.js';
import { RecordStore } from './records.js';

export interface Host {
  config: Config;
  key: HostKey;
  git: RecordsGit;
  records: RecordStore;
}

export async function openHost(ctx: Context, configPath: string): Promise<Host> {
  const config = await loadConfig(configPath, ctx.cwd);
  const key = await loadKey(config.key);
  const git = await RecordsGit.open(config.records, config.host, ctx.env);
  return { config, key, git, records: new RecordStore(config.records, config.host, key, ctx.now) };
}

/** Who runs a manual backup, for the record (clause 4.3.1): the sudo user before root. */
export function operatorName(env: NodeJS.ProcessEnv): string {
  return env.SUDO_USER || env.USER || env.LOGNAME || userInfo().username;
}

/**
 * Commits the host's new records and pushes them when the checkout has a remote. A push
 * that fails is a warning, not a loss: the commits stay and go out with the next run.
 */
export async function publishRecords(ctx: Context, host: Host, paths: string[], message: string): Promise<void> {
  try {
    await host.git.commit(paths, message);
  } catch (e) {
    throw new RespaldoError(`the records were written but could not be committed: ${lastLines((e as Error).message, 2)}`, {
      exitCode: Exit.nothing,
      hint: `check the git checkout ${host.config.records} (git status); the next run commits them`,
    });
  }
  const push = await host.git.push();
  if (push.status === 'failed')
    ctx.reporter.event({
      type: 'warning',
      message: `records committed but not pushed (${push.error}); they go out with the next run${push.unpushed ? ` (${push.unpushed} commit(s) waiting)` : ''}`,
    });
}
