/**
 * People at the records repository, for the tests of requests and approvals: SSH keys made
 * by ssh-keygen, clones of the records' bare remote, commits signed by git itself.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { git, tempDir } from './helpers.js';

export interface SshKey {
  /** The private key file. */
  key: string;
  /** "ssh-ed25519 AAAA…" */
  line: string;
  fingerprint: string;
}

export function sshKey(name: string): SshKey {
  const key = join(tempDir(), name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', key]);
  const line = readFileSync(`${key}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
  const fingerprint = execFileSync('ssh-keygen', ['-lf', `${key}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
  return { key, line, fingerprint };
}

/** A commit of `paths` signed with `key` (or unsigned without one), as a person makes it with git. */
export function commitAs(cwd: string, key: SshKey | undefined, message: string, ...paths: string[]): void {
  // A path already removed with git rm is staged as it is.
  const present = paths.filter((p) => existsSync(join(cwd, p)));
  if (present.length) git(cwd, 'add', '--all', '--', ...present);
  const sign = key ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${key.key}`, 'commit', '-S'] : ['commit'];
  git(cwd, ...sign, '--quiet', '-m', message);
}

/** A clone of the records' remote, as a developer's or JAA's workstation has it. */
export function cloneOf(remote: string, name: string): string {
  const dir = join(tempDir(), name);
  git(tempDir(), 'clone', '--quiet', remote, dir);
  return dir;
}

/** An approval written by hand (not by respaldo approve), deciding the request in `dir` as it stands. */
export function writeApproval(dir: string, id: string, decision: 'approved' | 'rejected' = 'approved', extra: Record<string, unknown> = {}): string {
  const digest = `sha256:${createHash('sha256').update(readFileSync(join(dir, `requests/${id}.yaml`))).digest('hex')}`;
  const path = `approvals/${id}.yaml`;
  execFileSync('mkdir', ['-p', join(dir, 'approvals')]);
  writeFileSync(join(dir, path), stringify({ schema: 'respaldo/v1', type: 'approval', request: id, request_digest: digest, decision, approver: 'jaa', at: '2026-11-25T10:00:00.000Z', ...extra }));
  return path;
}

/** The environment of people's git commands: who they are, with no global config in the way. */
export const person = (name: string) => ({ GIT_AUTHOR_NAME: name, GIT_AUTHOR_EMAIL: `${name.toLowerCase()}@dse.example`, GIT_COMMITTER_NAME: name, GIT_COMMITTER_EMAIL: `${name.toLowerCase()}@dse.example` });
