/** Opening a host for a command: its config, key, records checkout and chain. */
import { userInfo } from 'node:os';
import { loadConfig, type Config } from './config.js';
import type { Context } from './context.js';
import { Exit, RespaldoError, usageError } from './errors.js';
import { lastLines } from './exec.js';
import { RecordsGit } from './git.js';
import { loadKey, type HostKey } from './keys.js';
import { RunLock, UNREADABLE_LOCK } from './lock.js';
import { RecordStore } from './records.js';
import { mandateFor, type Mandate } from './requests.js';
import { readTrust } from './trust.js';

export interface Host {
  config: Config;
  key: HostKey;
  git: RecordsGit;
  records: RecordStore;
  /** What the approved requests ask of this host; `config.repositories` already holds its repositories. */
  mandate?: Mandate;
}

/**
 * Opens a host for a command. Its repositories become those of the approved requests for
 * it and those of its configuration (agent/requests.ts); with `pullFirst`, not yet: the
 * caller pulls the records under its lock first (pullRequests).
 */
export async function openHost(ctx: Context, configPath: string, opts: { pullFirst?: boolean } = {}): Promise<Host> {
  const config = await loadConfig(configPath, ctx.cwd);
  const key = await loadKey(config.key);
  const git = await RecordsGit.open(config.records, config.host, ctx.env);
  const records = new RecordStore(config.records, config.host, key, ctx.now);
  const mandate = opts.pullFirst ? undefined : await applyMandate(ctx, config, records);
  return { config, key, git, records, ...(mandate ? { mandate } : {}) };
}

/**
 * Brings in the records checkout's new commits (new approvals) and reads the requests,
 * as each run does under its lock. For a host opened with `pullFirst`.
 */
export async function pullRequests(ctx: Context, host: Host): Promise<void> {
  const pulled = await host.git.pull();
  if (pulled.status === 'failed') ctx.reporter.event({ type: 'warning', message: `could not pull the records (${pulled.error}); working from the local checkout, whose approvals may be out of date` });
  host.mandate = await applyMandate(ctx, host.config, host.records);
}

/**
 * Reads the approved requests and makes `config.repositories` the repositories to protect:
 * once for a config as loaded (its own repositories are the ones the file lists).
 */
export async function applyMandate(ctx: Context, config: Config, records: RecordStore): Promise<Mandate> {
  const trust = await readTrust(config.records, { approvers: config.requests?.approvers, env: ctx.env });
  const mandate = await mandateFor(config, trust, records);
  config.repositories = mandate.repositories;
  return mandate;
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

/**
 * Takes the host's run lock (one run or restore at a time appends to the records chain),
 * removes what an interrupted record write left, and records a takeover of a dead run's
 * lock as a failure. `firstSeq` is the seq the command's first record will have.
 */
export async function lockAndRecover(ctx: Context, host: Host, command: string, started: Date): Promise<{ lock: RunLock; firstSeq: number }> {
  const { config, records } = host;
  const { lock, takenOver } = await RunLock.acquire(config.state, command, started);
  try {
    const head = await records.head();
    if (!head) throw usageError(`host ${config.host} is not enrolled in ${config.records}`, 'run "respaldo init" first');
    const removed = await records.cleanup();
    if (removed.length) ctx.reporter.event({ type: 'info', message: `removed leftovers of an interrupted record write: ${removed.join(', ')}` });
    if (takenOver) {
      // A lock file that could not be read (an empty file after a power cut) names no run.
      const known = takenOver.token !== UNREADABLE_LOCK;
      await records.append('failure', {
        trigger: takenOver.command.includes('--manual') ? 'manual' : 'scheduled',
        stage: 'interrupted',
        cause: known
          ? `the run started at ${takenOver.started} (pid ${takenOver.pid}, "${takenOver.command}") stopped without finishing: it was killed, crashed, or the machine went down`
          : 'an earlier run left a lock file that cannot be read (the machine went down while it was being written?)',
        hint: 'nothing to do if this run succeeds: unfinished snapshots are removed, complete ones are recorded, and no complete snapshot was lost',
        ...(known ? { interrupted: { pid: takenOver.pid, started: takenOver.started } } : {}),
      });
      ctx.reporter.event({ type: 'warning', message: known ? `took over the lock of an interrupted run (pid ${takenOver.pid}, started ${takenOver.started})` : 'took over an unreadable lock file left by an earlier run' });
    }
    return { lock, firstSeq: head.seq + 1 };
  } catch (e) {
    await lock.release();
    throw e;
  }
}
