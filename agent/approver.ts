/**
 * JAA at the records repository: the key that signs (named by its public half: a `.pub`
 * file, a private key file, or git's `user.signingkey`), the principal that the trusted
 * policy lists for it under namespace "git", and a signed commit that is checked, before
 * it is pushed, the way every reader will check it (`%G?` = G against the trusted policy).
 * A commit that would not count is taken back, with the reason.
 */
import { lstat, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseAllowedSigners } from '../schemas/allowed-signers.js';
import { fingerprint } from '../schemas/sshsig.js';
import type { Context } from './context.js';
import { Exit, RespaldoError, usageError } from './errors.js';
import { capture } from './exec.js';
import { gitEnv } from './git.js';
import { PeopleGit } from './people-git.js';
import { readTrust } from './trust.js';
import type { Trust } from '../schemas/trust.js';

export interface Approver {
  git: PeopleGit;
  dir: string;
  fingerprint: string;
  principal: string;
  trust: Trust;
  /** Pinned first approvers, as the readers are told them. */
  approvers: string[];
}

/** The public line of the signing key, from `--key` or git's `user.signingkey`. */
async function publicLine(ctx: Context, dir: string, given: string | undefined): Promise<{ spec: string; line: string }> {
  let spec = given;
  if (!spec) {
    spec = (await capture('git', ['-C', dir, 'config', 'user.signingkey'], { env: gitEnv(ctx.env) }).catch(() => Buffer.alloc(0))).toString().trim();
    if (!spec) throw usageError('no signing key: name your SSH key with --key ~/.ssh/id_ed25519.pub (or set git config user.signingkey)', 'the key may be a file, or only its public half when the private key is in ssh-agent or on a FIDO token');
  }
  if (spec.startsWith('key::')) return { spec, line: spec.slice(5) };
  if (/^(ssh-|ecdsa-|sk-)/.test(spec)) return { spec: `key::${spec}`, line: spec };
  const text = await readFile(spec, 'utf8').catch((e: Error) => {
    throw usageError(`cannot read the key ${spec}: ${e.message}`, 'give the path of your SSH key or of its .pub');
  });
  if (/^(ssh-|ecdsa-|sk-)/.test(text.trim())) return { spec, line: text.trim() };
  // A private key file: its public half, as ssh-keygen derives it (never asking for a passphrase here).
  try {
    return { spec, line: (await capture('ssh-keygen', ['-y', '-P', '', '-f', spec], { env: ctx.env })).toString().trim() };
  } catch {
    const pub = await readFile(`${spec}.pub`, 'utf8').catch(() => undefined);
    if (pub) return { spec, line: pub.trim() };
    throw usageError(`cannot derive the public half of ${spec} (a passphrase?)`, `give --key ${spec}.pub, with the key loaded in ssh-agent (ssh-add ${spec})`);
  }
}

/**
 * Refuses to write `rel` (under the records folder) through a link: a link committed in
 * place of a folder or file of the records would lead the write out of the repository.
 */
export async function assertPlainPath(dir: string, rel: string): Promise<void> {
  let at = dir;
  for (const part of rel.split('/')) {
    at = join(at, part);
    const info = await lstat(at).catch(() => undefined);
    if (!info) return;
    if (info.isSymbolicLink())
      throw usageError(`${at} is a symbolic link: respaldo writes the records' files only as plain files in plain folders`, `someone committed a link there; remove it (git rm ${relative(dir, at)}) in a commit you sign, and look at who made it (git log -- ${relative(dir, at)})`);
  }
}

/**
 * The approver's key, and the trusted policy of the records in `dir` once the checkout is
 * brought up to date with its upstream (fast-forward only).
 */
export async function openApprover(ctx: Context, dir: string, key: string | undefined, approvers: string[]): Promise<Approver> {
  const { spec, line } = await publicLine(ctx, dir, key);
  const blob = Buffer.from(line.split(/\s+/)[1] ?? '', 'base64');
  const fp = fingerprint(blob);
  const git = await PeopleGit.open(dir, ctx.env, spec);
  await git.sync();
  const trust = await readTrust(dir, { approvers, env: ctx.env });
  if (!trust.git) throw usageError(`${dir} is not a clone of the records repository`, 'run it in your clone of the records, or name it with --records DIR');
  if (!trust.policy.anchor)
    throw new RespaldoError(`the trust policy of ${dir} is not anchored: ${trust.policy.problems.join('; ')}`, {
      exitCode: Exit.usage,
      hint: `the policy's first commit must be signed by an approver it lists (jaa namespaces="git" ${line.split(/\s+/).slice(0, 2).join(' ')}), or the first approver pinned (--approver ${fp}, and requests.approvers in the hosts' configurations)`,
    });
  const signer = parseAllowedSigners(trust.policy.signers).signers.find((s) => s.key.equals(blob) && (!s.namespaces || s.namespaces.includes('git')));
  if (!signer)
    throw usageError(`key ${fp} is not an approver in the trusted policy of ${dir} (policy/allowed_signers as of commit ${trust.policy.commit?.slice(0, 12)})`, 'an approver already trusted adds it, with namespaces="git", by a signed commit');
  return { git, dir, fingerprint: fp, principal: signer.principals[0]!, trust, approvers };
}

/**
 * Commits `paths` signed, then reads the records as every reader will and takes the commit
 * back, saying why, when `counts` finds the result does not count. When another clone
 * pushed first, the checkout is brought up to date and `again` writes the files anew from
 * its trust (and may refuse), and they are committed, checked and pushed again.
 */
export async function commitSigned(ctx: Context, a: Approver, paths: string[], message: string, counts: (trust: Trust) => string | undefined, again: (trust: Trust) => Promise<void>): Promise<{ commit: string; pushed: boolean }> {
  let commit = '';
  const make = async () => {
    commit = await a.git.commit(paths, message, true);
    const why = counts(await readTrust(a.dir, { approvers: a.approvers, env: ctx.env }));
    if (why) {
      await a.git.undoLastCommit();
      throw new RespaldoError(`the commit would not count: ${why}; it was taken back (the file stays in the work tree)`, {
        exitCode: Exit.nothing,
        hint: /touched it is/.test(why)
          ? `an earlier commit that does not count touched ${paths.join(', ')}: withdraw the file with a commit you sign (git rm ${paths.join(' ')}; git commit -S …), then try again`
          : 'sign with the approver key that policy/allowed_signers lists (--key), within its valid-after/valid-before dates',
      });
    }
  };
  await make();
  const pushed = await a.git.push(async () => {
    await a.git.undoLastCommit();
    await a.git.sync();
    await again(await readTrust(a.dir, { approvers: a.approvers, env: ctx.env }));
    await make();
  });
  return { commit, pushed };
}
