/**
 * The records checkout, through simple-git. The agent only ever commits its own host's
 * folder, so pushes from many hosts never conflict: on a rejected push it rebases on the
 * remote and tries again. A failed push leaves the records committed locally; they go out
 * with the next run.
 */
import { stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { simpleGit, type SimpleGit } from 'simple-git';
import { Exit, RespaldoError } from './errors.js';
import { lastLines } from './exec.js';

export type PushOutcome =
  | { status: 'pushed'; attempts: number }
  | { status: 'no-remote' }
  | { status: 'failed'; error: string; unpushed: number | undefined };

/**
 * The environment git runs with: what it needs to find programs, keys and the agent, and
 * nothing that could run an editor or a pager under cron (simple-git refuses those too).
 */
export function gitEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const keep = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'SSH_AUTH_SOCK', 'GIT_SSH_COMMAND', 'GIT_AUTHOR_DATE', 'GIT_COMMITTER_DATE'];
  const out: Record<string, string> = { GIT_TERMINAL_PROMPT: '0', GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o ConnectTimeout=20' };
  for (const name of keep) if (env[name] !== undefined) out[name] = env[name]!;
  return out;
}

/**
 * Why the upstream's move from `before` to `after` must not be followed, when `after` does
 * not extend `before` along its first-parent chain (what the trust rules read, agent/trust.ts):
 * a forced push, or a merge whose first parent is another history (a push that needs no force).
 */
export async function rewrittenUpstream(git: (args: string[]) => Promise<string>, upstream: string, before: string, after: string): Promise<string | undefined> {
  if (before === after) return undefined;
  const newer = (await git(['rev-list', '--first-parent', `${before}..${after}`])).trim().split('\n').filter(Boolean);
  const oldest = newer.at(-1);
  const parent = oldest ? await git(['rev-parse', `${oldest}^1`]).then((p) => p.trim(), () => undefined) : undefined;
  if (parent === before) return undefined;
  return `the records' upstream ${upstream} was rewritten (${before.slice(0, 12)} is no longer on its first-parent chain: a forced push, or a merge that put another history first)`;
}

export class RecordsGit {
  private constructor(
    private readonly git: SimpleGit,
    /** The top of the work tree (the records folder may be a subfolder of it). */
    readonly top: string,
    private readonly host: string,
  ) {}

  static async open(dir: string, host: string, env: NodeJS.ProcessEnv): Promise<RecordsGit> {
    const git = simpleGit({
      baseDir: dir,
      // Exact bytes (records are signed), an identity that needs no global config, and no
      // commit signing from a sysadmin's global config that would prompt under cron.
      config: [`user.name=respaldo agent (${host})`, `user.email=respaldo@${host}`, 'commit.gpgsign=false', 'core.autocrlf=false'],
      timeout: { block: 120_000 },
      // simple-git resolves when git exits non-zero with an empty stderr; decide by exit code.
      errors: (error, result) => {
        if (error) return error;
        if (result.exitCode !== 0) return new Error(`git exited with code ${result.exitCode}: ${Buffer.concat(result.stdErr).toString().trim()}`);
        return undefined;
      },
      // We set GIT_SSH_COMMAND ourselves (or pass the sysadmin's, for a deploy key).
      unsafe: { allowUnsafeSshCommand: true },
      allowEnvironment: ['GIT_TERMINAL_PROMPT', 'GIT_SSH_COMMAND', 'GIT_AUTHOR_DATE', 'GIT_COMMITTER_DATE'],
    }).env(gitEnv(env));
    let top: string;
    try {
      top = (await git.revparse(['--show-toplevel'])).trim();
    } catch (e) {
      throw new RespaldoError(`the records folder ${dir} is not a git checkout: ${lastLines((e as Error).message, 1)}`, {
        exitCode: Exit.usage,
        hint: `clone the records repository there (git clone <url> ${dir}), or create one with "git init ${dir}"`,
      });
    }
    return new RecordsGit(git, top, host);
  }

  /**
   * Waits out a git that holds `.git/index.lock` (a git process outlives an agent that was
   * killed, for a moment), and removes a lock older than a minute: a git that was killed
   * itself leaves it, and every later commit would fail until someone deletes it by hand.
   */
  private async clearStaleIndexLock(): Promise<void> {
    const lock = join((await this.git.revparse(['--absolute-git-dir'])).trim(), 'index.lock');
    for (let waited = 0; ; waited += 100) {
      let age: number;
      try {
        age = Date.now() - (await stat(lock)).mtimeMs;
      } catch {
        return;
      }
      if (age > 60_000) {
        await unlink(lock).catch(() => {});
        return;
      }
      if (waited >= 15_000) return; // let git report it
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stages and commits `paths` (relative to the records folder) if anything changed; true when it committed. */
  async commit(paths: string[], message: string): Promise<boolean> {
    await this.clearStaleIndexLock();
    await this.git.raw(['add', '--all', '--', ...paths]);
    const staged = (await this.git.raw(['diff', '--cached', '--name-only', '--', ...paths])).trim();
    if (!staged) return false;
    await this.git.raw(['commit', '--quiet', '--no-verify', '-m', message, '--', ...paths]);
    return true;
  }

  /** Commits on this branch that its upstream does not have yet; undefined without an upstream. */
  async unpushed(): Promise<number | undefined> {
    try {
      return Number((await this.git.raw(['rev-list', '--count', '@{u}..HEAD'])).trim());
    } catch {
      return undefined;
    }
  }

  /**
   * Brings in the other hosts' new records (a receipt needs the copy record that CSC's
   * copy answers) and new approvals. Our own folder is ours alone, so the rebase is clean;
   * a failure (no network) is the caller's to report, and the local records still serve.
   * An upstream that rewrote its history (an approval withdrawn, then put back), or that
   * changes this host's own records, is not followed (refusal).
   */
  async pull(): Promise<{ status: 'pulled' | 'no-remote' } | { status: 'failed'; error: string }> {
    const upstream = await this.git.revparse(['--abbrev-ref', '--symbolic-full-name', '@{u}']).then(
      (u) => u.trim(),
      () => undefined,
    );
    if (!upstream) return { status: 'no-remote' };
    try {
      const before = (await this.git.revparse(['@{u}'])).trim();
      await this.git.raw(['fetch', '--quiet']);
      const after = (await this.git.revparse(['@{u}'])).trim();
      const refused = await this.refusal(before, after, upstream);
      if (refused) {
        // Back to what we had: the next fetch must be judged against it again.
        await this.git.raw(['update-ref', `refs/remotes/${upstream}`, before]);
        return { status: 'failed', error: `${refused}; not following it, so that nothing withdrawn comes back; JAA must look at it (git log --graph ${before.slice(0, 12)}..${after.slice(0, 12)})` };
      }
      await this.git.raw(['rebase', '--quiet', '--autostash', upstream]);
      return { status: 'pulled' };
    } catch (e) {
      await this.git.raw(['rebase', '--abort']).catch(() => {});
      return { status: 'failed', error: lastLines((e as Error).message, 3) };
    }
  }

  /**
   * Why the upstream's move from `before` to `after` must not be followed, if it must not: a
   * rewritten history (rewrittenUpstream), or commits of others that change this host's own
   * records (a deleted restore record would make an approved restore run again).
   */
  private async refusal(before: string, after: string, upstream: string): Promise<string | undefined> {
    if (before === after) return undefined;
    const rewritten = await rewrittenUpstream((args) => this.git.raw(args), upstream, before, after);
    if (rewritten) return rewritten;
    const mine = (await this.git.raw(['diff', '--name-only', before, after, '--', `hosts/${this.host}/`])).trim();
    if (mine) return `someone else's commits on ${upstream} change this host's own records (${mine.split('\n')[0]}${mine.includes('\n') ? ', …' : ''})`;
    return undefined;
  }

  async push(): Promise<PushOutcome> {
    const remotes = await this.git.getRemotes();
    if (remotes.length === 0) return { status: 'no-remote' };
    const branch = (await this.git.revparse(['--abbrev-ref', 'HEAD'])).trim();
    const upstream = await this.git.revparse(['--abbrev-ref', '--symbolic-full-name', '@{u}']).then(
      (u) => u.trim(),
      () => undefined,
    );
    // Nothing new since the last push: no need to reach the server every hour.
    if (upstream && (await this.unpushed()) === 0) return { status: 'pushed', attempts: 0 };
    const remote = upstream?.split('/')[0] ?? (remotes.some((r) => r.name === 'origin') ? 'origin' : remotes[0]!.name);
    let error = '';
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await this.git.raw(upstream ? ['push', '--quiet'] : ['push', '--quiet', '--set-upstream', remote, branch]);
        return { status: 'pushed', attempts: attempt };
      } catch (e) {
        const message = (e as Error).message;
        error = lastLines(message.replace(/^hint:.*$/gm, ''), 3);
        if (!/rejected|fetch first|non-fast-forward/i.test(message)) break;
        // Another host pushed first. Our commits touch only our folder, so the rebase is clean;
        // a first push (no upstream yet) has nothing to be rewritten against.
        if (upstream) {
          const pulled = await this.pull();
          if (pulled.status === 'failed') {
            error = pulled.error;
            break;
          }
          continue;
        }
        try {
          await this.git.raw(['pull', '--quiet', '--rebase', '--autostash', remote, branch]);
        } catch (pullError) {
          error = lastLines((pullError as Error).message, 3);
          // Never leave the checkout in the middle of a rebase: every later commit would
          // land on a detached HEAD and every push would fail.
          await this.git.raw(['rebase', '--abort']).catch(() => {});
          break;
        }
      }
    }
    return { status: 'failed', error, unpushed: await this.unpushed() };
  }
}
