/**
 * JAA at the records repository: the key that signs (named by its public half: a `.pub`
 * file, a private key file, or git's `user.signingkey`), the principal that the trusted
 * policy lists for it under namespace "git", and a signed commit that is checked, before
 * it is pushed, the way every reader will check it (`%G?` = G against the trusted policy).
 * A commit that would not count is taken back, with the reason.
 */
import { readFile } from 'node:fs/promises';
import { parseAllowedSigners } from '../schemas/allowed-signers.js';
import { fingerprint } from '../schemas/sshsig.js';
import type { Context } from './context.js';
import { Exit, RespaldoError, usageError } from './errors.js';
import { capture } from './exec.js';
import { gitEnv } from './git.js';
import { PeopleGit } from './people-git.js';
import { readTrust, signatureOf, statusWords, type Trust } from './trust.js';

export interface Approver {
  git: PeopleGit;
  dir: string;
  fingerprint: string;
  principal: string;
  trust: Trust;
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

export async function openApprover(ctx: Context, dir: string, key: string | undefined): Promise<Approver> {
  const { spec, line } = await publicLine(ctx, dir, key);
  const blob = Buffer.from(line.split(/\s+/)[1] ?? '', 'base64');
  const fp = fingerprint(blob);
  const git = await PeopleGit.open(dir, ctx.env, spec);
  // Up to date first: the decision is made on the newest requests and policy.
  await git.sync(true);
  const trust = await readTrust(dir, { approvers: undefined, env: ctx.env });
  if (!trust.policy.anchor)
    throw new RespaldoError(`the trust policy of ${dir} is not anchored: no commit of policy/allowed_signers is signed by an approver it lists`, {
      exitCode: Exit.usage,
      hint: `add your key to policy/allowed_signers as an approver (jaa namespaces="git" ${line.split(/\s+/).slice(0, 2).join(' ')}) and commit it signed:\n  git -c gpg.format=ssh -c user.signingkey=${spec.replace(/^key::/, '')} commit -S -m "policy: JAA" policy/allowed_signers`,
    });
  const signer = parseAllowedSigners(trust.policy.signers).signers.find((s) => s.key.equals(blob) && (!s.namespaces || s.namespaces.includes('git')));
  if (!signer)
    throw usageError(`key ${fp} is not an approver in the trusted policy of ${dir} (policy/allowed_signers as of commit ${trust.policy.commit?.slice(0, 12)})`, 'an approver already trusted adds it, with namespaces="git", by a signed commit');
  return { git, dir, fingerprint: fp, principal: signer.principals[0]!, trust };
}

/** Commits `paths` signed, checks that the commit counts as every reader will check it, and pushes it. */
export async function commitSigned(ctx: Context, a: Approver, paths: string[], message: string): Promise<{ commit: string; pushed: boolean }> {
  const commit = await a.git.commit(paths, message, true);
  const checked = await signatureOf(a.dir, commit, a.trust.policy, ctx.env);
  if (checked.status !== 'G') {
    await a.git.undoLastCommit();
    throw new RespaldoError(`the commit would not count: it is ${statusWords(checked.status, checked.key)}; it was taken back (the file stays in the work tree)`, {
      exitCode: Exit.nothing,
      hint: 'sign with the approver key that policy/allowed_signers lists (--key), within its valid-after/valid-before dates',
    });
  }
  return { commit, pushed: await a.git.push(true) };
}
