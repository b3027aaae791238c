/**
 * Git as people use it on the records repository: a developer's clone where requests are
 * written, JAA's clone where approvals and checkpoints are signed. Unlike the agent's
 * checkout (agent/git.ts), these commits carry their author's own identity and, for JAA,
 * an SSH signature made by git itself (`gpg.format=ssh`, the key in a file, in ssh-agent
 * or on a FIDO token: respaldo only names its public half).
 */
import { capture, lastLines } from './exec.js';
import { gitEnv, rewrittenUpstream } from './git.js';
import { Exit, RespaldoError } from './errors.js';

export class PeopleGit {
  private constructor(
    /** The records folder (possibly a subfolder of the work tree). */
    readonly dir: string,
    private readonly env: Record<string, string>,
    /** `-c` options that make git sign a commit with the approver's key. */
    private readonly signing: string[],
  ) {}

  static async open(dir: string, env: NodeJS.ProcessEnv, signingKey?: string): Promise<PeopleGit> {
    const e = { ...gitEnv(env), ...pick(env, ['GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL', 'XDG_CONFIG_HOME', 'GIT_CONFIG_GLOBAL']) };
    try {
      await capture('git', ['-C', dir, 'rev-parse', '--show-toplevel'], { env: e });
    } catch (err) {
      throw new RespaldoError(`${dir} is not a git checkout of the records repository: ${lastLines((err as Error).message, 1)}`, { exitCode: Exit.usage, hint: 'clone it (git clone <url> records) and run the command there, or name it with --records DIR' });
    }
    const signing = signingKey === undefined ? [] : ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${signingKey}`, '-c', 'commit.gpgsign=true'];
    return new PeopleGit(dir, e, signing);
  }

  async git(args: string[], opts: { sign?: boolean } = {}): Promise<string> {
    return (await capture('git', [...(opts.sign ? this.signing : []), '-C', this.dir, ...args], { env: this.env })).toString('utf8');
  }

  /** The upstream branch (`origin/main`), or undefined for a repository that pushes nowhere. */
  async upstream(): Promise<string | undefined> {
    return this.git(['rev-parse', '--abbrev-ref', '--symbolic-full-name', '@{u}']).then(
      (u) => u.trim() || undefined,
      () => undefined,
    );
  }

  /**
   * Brings the checkout up to date with its upstream, fast-forward only: respaldo never
   * rebases (nor re-signs) commits of its own accord.
   */
  async sync(): Promise<void> {
    const upstream = await this.upstream();
    if (!upstream) return;
    try {
      const before = (await this.git(['rev-parse', '@{u}'])).trim();
      await this.git(['fetch', '--quiet']);
      const after = (await this.git(['rev-parse', '@{u}'])).trim();
      // As the agents do: an upstream whose first-parent chain no longer runs through what it was is not followed.
      const rewritten = await rewrittenUpstream((args) => this.git(args), upstream, before, after);
      if (rewritten) {
        await this.git(['update-ref', `refs/remotes/${upstream}`, before]);
        throw new RespaldoError(`${rewritten}: not following it`, {
          exitCode: Exit.nothing,
          hint: `look at what happened (git log --graph ${before.slice(0, 12)}..${after.slice(0, 12)}) before anything is signed`,
        });
      }
      await this.git(['merge', '--quiet', '--ff-only', '@{u}']);
    } catch (e) {
      if (e instanceof RespaldoError) throw e;
      throw new RespaldoError(`cannot bring ${this.dir} up to date with its upstream: ${lastLines((e as Error).message, 2)}`, {
        exitCode: Exit.nothing,
        hint: 'check the network; if your clone has commits of its own that are not pushed, push them (or drop them) first: git status, git log @{u}..',
      });
    }
  }

  /** Names of the files in a folder of a commit (`HEAD`, `@{u}`). */
  async names(rev: string, folder: string): Promise<string[]> {
    const out = await this.git(['ls-tree', '--name-only', rev, '--', `${folder}/`]).catch(() => '');
    return out
      .split('\n')
      .filter(Boolean)
      .map((p) => p.split('/').pop()!);
  }

  async commit(paths: string[], message: string, sign: boolean): Promise<string> {
    await this.git(['add', '--', ...paths]);
    try {
      await this.git(['commit', '--quiet', '--no-verify', '-m', message, '--', ...paths], { sign });
    } catch (e) {
      const text = (e as Error).message;
      throw new RespaldoError(`git could not ${sign ? 'sign and ' : ''}commit ${paths.join(', ')}: ${lastLines(text, 2)}`, {
        exitCode: Exit.nothing,
        hint: /tell me who you are|user\.(name|email)/i.test(text)
          ? 'set your name and email for this repository: git config user.name "…"; git config user.email "…"'
          : sign
            ? 'check the key: respaldo signs with ssh-keygen -Y sign, through ssh-agent when the key file is only the public half (ssh-add -l lists the keys it holds)'
            : 'see git status in the records checkout',
      });
    }
    return (await this.git(['rev-parse', 'HEAD'])).trim();
  }

  /** Removes the newest commit, keeping its files in the work tree (a commit that must not stand). */
  async undoLastCommit(): Promise<void> {
    await this.git(['reset', '--quiet', '--soft', 'HEAD~1']);
    await this.git(['reset', '--quiet']);
  }

  /**
   * Pushes; when another clone pushed first, `again` takes the commit back, brings the
   * checkout up to date and makes it anew (renumbered, checked again, signed again), and
   * the push is tried again. Returns false without an upstream.
   */
  async push(again: () => Promise<void>): Promise<boolean> {
    if (!(await this.upstream())) return false;
    let last = '';
    for (let attempt = 1; attempt <= 4; attempt++) {
      try {
        await this.git(['push', '--quiet']);
        return true;
      } catch (e) {
        last = (e as Error).message;
        if (!/rejected|fetch first|non-fast-forward/i.test(last)) break;
        await again();
      }
    }
    throw new RespaldoError(`committed, but could not push: ${lastLines(last.replace(/^hint:.*$/gm, ''), 2)}`, { exitCode: Exit.partial, hint: 'push it when the network is back: git push (the commit is in your checkout)' });
  }
}

function pick(env: NodeJS.ProcessEnv, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) if (env[n] !== undefined) out[n] = env[n]!;
  return out;
}
