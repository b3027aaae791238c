/**
 * What git's signed history says about the records folder: the trust policy in force,
 * which approvals and checkpoints count, and the requests (clauses 4.1.1 and 4.3).
 *
 * - **The policy** (`policy/allowed_signers`, `policy/revoked_keys`) is anchored by the
 *   first commit that an approver listed in it signed (or, with `approvers` pinned in the
 *   host configuration, that a pinned key signed). After that, a change counts only when
 *   its commit is signed by an approver of the policy before it; any other change (an
 *   unsigned commit, a merge, an edit never committed) is reported and ignored.
 * - **An approval or a checkpoint** counts only when every commit that touched its file is
 *   a plain (non-merge) commit signed by an approver of the policy in force, valid at the
 *   commit's time and not revoked (`%G?` = G). Names and emails of committers are never
 *   looked at.
 * - **An approval** also names the sha256 of the request it decides: a request edited
 *   afterwards is no longer approved.
 *
 * `tools/audit.sh` checks the same rules with git and ssh-keygen alone; both must agree.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllowedSigners, parseRevokedKeys } from '../schemas/allowed-signers.js';
import { fingerprint, verifySshsig } from '../schemas/sshsig.js';
import type { PolicyText } from '../schemas/chain.js';
import { digestOf } from '../schemas/record.js';
import { approval, approvalPath, checkpoint, CHECKPOINT_PATH_RE, parseFile, REQUEST_ID_RE, request, requestPath, type Approval, type Checkpoint, type FileProblem, type Request } from '../schemas/request.js';
import { capture } from './exec.js';
import { gitEnv } from './git.js';

export const POLICY_FILES = ['policy/allowed_signers', 'policy/revoked_keys'] as const;

export interface PolicyChange {
  commit: string;
  author: string;
  date: string;
  /** The signing key's fingerprint and principal, when git could check it. */
  key: string | undefined;
  principal: string | undefined;
  status: 'anchor' | 'accepted' | 'ignored' | 'before-anchor';
  reason: string | undefined;
}

export interface TrustedPolicy extends PolicyText {
  /** The commit whose signed policy everything else hangs from; undefined when no approver ever signed it. */
  anchor: { commit: string; key: string; principal: string } | undefined;
  /** The commit whose policy is in force. */
  commit: string | undefined;
  changes: PolicyChange[];
  /** Changes that were ignored, each one line: commit, who, why. */
  ignored: string[];
  problems: string[];
}

export interface SignedFileState {
  path: string;
  valid: boolean;
  /** Why it does not count. */
  reason: string | undefined;
  /** The newest commit that touched it, and the key and principal that signed it. */
  commit: string | undefined;
  key: string | undefined;
  principal: string | undefined;
  date: string | undefined;
}

export interface ApprovalState extends SignedFileState {
  id: string;
  approval: Approval | undefined;
}

export interface CheckpointState extends SignedFileState {
  checkpoint: Checkpoint | undefined;
}

export interface RequestState {
  id: string;
  path: string;
  request: Request | undefined;
  digest: string;
  problems: FileProblem[];
}

export interface Trust {
  /** False when the folder is not in a git checkout: only the records themselves can be checked. */
  git: boolean;
  policy: TrustedPolicy;
  requests: RequestState[];
  approvals: ApprovalState[];
  checkpoints: CheckpointState[];
}

/** Git's `%G?` letters, said for a person. */
export function statusWords(status: string, key: string): string {
  switch (status) {
    case 'G':
      return 'signed by an approver';
    case 'N':
      return 'not signed';
    case 'B':
      return 'its signature does not match the commit';
    case 'U':
      return `signed by key ${key}, which is not an approver of the policy in force at the commit's time (unknown, expired or not yet valid)`;
    case 'E':
      return `signed by key ${key}, whose signature cannot be checked against the policy (a revoked key?)`;
    default:
      return `its signature is not good (git: ${status})`;
  }
}

class Repo {
  private temp: string | undefined;
  constructor(
    readonly dir: string,
    private readonly env: Record<string, string>,
  ) {}

  async git(args: string[]): Promise<string> {
    return (await capture('git', ['-C', this.dir, ...args], { env: this.env })).toString('utf8');
  }

  /** A file of a commit, undefined when the commit does not have it. */
  async show(rev: string, path: string): Promise<Buffer | undefined> {
    try {
      return await capture('git', ['-C', this.dir, 'show', `${rev}:./${path}`], { env: this.env });
    } catch {
      return undefined;
    }
  }

  /** git's options that check signatures against `policy`: allowed signers and, when it lists any, revoked keys. */
  async against(policy: PolicyText): Promise<string[]> {
    this.temp ??= await mkdtemp(join(tmpdir(), 'respaldo-trust-'));
    const n = Math.random().toString(36).slice(2);
    const signers = join(this.temp, `allowed_signers.${n}`);
    await writeFile(signers, policy.signers);
    const out = ['-c', `gpg.ssh.allowedSignersFile=${signers}`];
    if (policy.revoked.trim()) {
      const revoked = join(this.temp, `revoked_keys.${n}`);
      await writeFile(revoked, policy.revoked);
      out.push('-c', `gpg.ssh.revocationFile=${revoked}`);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.temp) await rm(this.temp, { recursive: true, force: true });
  }
}

const FORMAT = '%H%x09%P%x09%G?%x09%GK%x09%GS%x09%cI%x09%an';

interface LoggedCommit {
  commit: string;
  merge: boolean;
  status: string;
  key: string;
  principal: string;
  date: string;
  author: string;
}

function parseLog(text: string): LoggedCommit[] {
  return text
    .split('\n')
    .filter((l) => /^[0-9a-f]{40}\t/.test(l))
    .map((l) => {
      const [commit, parents, status, key, principal, date, author] = l.split('\t');
      return { commit: commit!, merge: (parents ?? '').trim().split(' ').length > 1, status: status!, key: key ?? '', principal: principal ?? '', date: date ?? '', author: author ?? '' };
    });
}

/**
 * Why a commit's signature does not count, in words. git says B (bad) both for a changed
 * commit and for a revoked key, without the key: the key is read from the signature
 * itself, to tell the two apart.
 */
async function whyNot(repo: Repo, c: LoggedCommit, policy: PolicyText): Promise<string> {
  if (c.status !== 'B' && c.status !== 'E') return statusWords(c.status, c.key);
  const object = await repo.git(['cat-file', 'commit', c.commit]).catch(() => '');
  const m = /^gpgsig (-----BEGIN SSH SIGNATURE-----\n(?: .*\n)+?) -----END SSH SIGNATURE-----$/m.exec(object);
  if (!m) return statusWords(c.status, c.key);
  const armored = `${m[1]!.replace(/^ /gm, '')}-----END SSH SIGNATURE-----\n`;
  const key = verifySshsig(Buffer.alloc(0), armored, 'git').publicKey;
  if (key && parseRevokedKeys(policy.revoked).some((k) => k.equals(key))) return `signed by key ${fingerprint(key)}, which policy/revoked_keys revokes`;
  return `${statusWords(c.status, c.key)}${key ? ` (key ${fingerprint(key)})` : ''}`;
}

/** Walks the policy's history, oldest first: anchor, then each change checked against the policy before it. */
async function readPolicy(repo: Repo, approvers: string[] | undefined): Promise<TrustedPolicy> {
  const log = await repo.git(['log', '--reverse', '--full-history', '--format=%H%x09%P%x09%cI%x09%an', '--', ...POLICY_FILES]);
  const changes: PolicyChange[] = [];
  const ignored: string[] = [];
  const problems: string[] = [];
  let anchor: TrustedPolicy['anchor'];
  let inForce: PolicyText | undefined;
  let inForceCommit: string | undefined;
  for (const line of log.split('\n').filter(Boolean)) {
    const [commit, parents, date, author] = line.split('\t') as [string, string, string, string];
    const change: PolicyChange = { commit, author, date, key: undefined, principal: undefined, status: 'ignored', reason: undefined };
    changes.push(change);
    if (parents.trim().split(' ').length > 1) {
      change.reason = 'a merge commit: the policy changes only by plain commits signed by an approver';
      if (inForce) ignored.push(`${commit.slice(0, 12)} (${author}, ${date}): ${change.reason}`);
      else change.status = 'before-anchor';
      continue;
    }
    const text: PolicyText = { signers: (await repo.show(commit, POLICY_FILES[0]))?.toString('utf8') ?? '', revoked: (await repo.show(commit, POLICY_FILES[1]))?.toString('utf8') ?? '' };
    // Before the anchor, a commit is checked against its own policy: does it list the key that signed it as an approver?
    const [checked] = parseLog(await repo.git([...(await repo.against(inForce ?? text)), 'log', '-1', `--format=${FORMAT}`, commit]));
    change.key = checked?.key || undefined;
    change.principal = checked?.principal || undefined;
    const good = checked?.status === 'G';
    if (!inForce) {
      if (good && (!approvers?.length || approvers.includes(checked.key))) {
        anchor = { commit, key: checked.key, principal: checked.principal };
        change.status = 'anchor';
        inForce = text;
        inForceCommit = commit;
      } else change.status = 'before-anchor';
      continue;
    }
    if (good) {
      change.status = 'accepted';
      inForce = text;
      inForceCommit = commit;
    } else {
      change.reason = `${checked ? await whyNot(repo, checked, inForce) : 'not signed'}, and only an approver trusted before a change may make it`;
      ignored.push(`${commit.slice(0, 12)} (${author}, ${date}): ${change.reason}`);
    }
  }
  const working: PolicyText = {
    signers: await readFile(join(repo.dir, POLICY_FILES[0]), 'utf8').catch(() => ''),
    revoked: await readFile(join(repo.dir, POLICY_FILES[1]), 'utf8').catch(() => ''),
  };
  if (!inForce) {
    problems.push(
      approvers?.length
        ? `policy/allowed_signers was never committed signed by a pinned approver (${approvers.join(', ')}): nothing is approved, and records are checked against the working copy of the policy`
        : 'policy/allowed_signers is not anchored: no commit of it is signed by an approver it lists, so nothing is approved, and records are checked against the working copy of the policy',
    );
    return { ...working, anchor, commit: undefined, changes, ignored, problems };
  }
  // An edit never committed counts for nothing either (committed changes were judged above).
  for (const [i, file] of POLICY_FILES.entries()) {
    const mine = i === 0 ? working.signers : working.revoked;
    const committed = (await repo.show('HEAD', file))?.toString('utf8') ?? '';
    if (mine !== committed) ignored.push(`${file} has changes in the working tree that were never committed: they are ignored until an approver commits them signed`);
  }
  return { ...inForce, anchor, commit: inForceCommit, changes, ignored, problems };
}

/** Whether every commit that touched `path` is a plain commit that an approver of `policy` signed. */
async function signedFile(repo: Repo, path: string, against: string[] | undefined, policy: PolicyText): Promise<SignedFileState> {
  const state: SignedFileState = { path, valid: false, reason: undefined, commit: undefined, key: undefined, principal: undefined, date: undefined };
  if (!against) return { ...state, reason: 'the policy is not anchored: no approver is trusted' };
  const commits = parseLog(await repo.git([...against, 'log', '--full-history', `--format=${FORMAT}`, '--', path]));
  const newest = commits[0];
  if (!newest) return { ...state, reason: 'never committed' };
  Object.assign(state, { commit: newest.commit, key: newest.key || undefined, principal: newest.principal || undefined, date: newest.date });
  const merge = commits.find((c) => c.merge);
  if (merge) return { ...state, reason: `merge commit ${merge.commit.slice(0, 12)} (${merge.author}) touched it: an approval counts only on a linear history of signed commits` };
  const bad = commits.find((c) => c.status !== 'G');
  if (bad) return { ...state, reason: `commit ${bad.commit.slice(0, 12)} (${bad.author}, ${bad.date}) that touched it is ${await whyNot(repo, bad, policy)}` };
  return { ...state, valid: true };
}

async function namesIn(repo: Repo, folder: string): Promise<string[]> {
  const out = await repo.git(['ls-tree', '--name-only', 'HEAD', '--', `${folder}/`]).catch(() => '');
  return out
    .split('\n')
    .filter(Boolean)
    .map((p) => p.split('/').pop()!)
    .sort();
}

/** How git judges one commit's signature against `policy`: `%G?`, the key and the principal. */
export async function signatureOf(dir: string, commit: string, policy: PolicyText, env: NodeJS.ProcessEnv): Promise<{ status: string; key: string; principal: string }> {
  const repo = new Repo(dir, gitEnv(env));
  try {
    const [c] = parseLog(await repo.git([...(await repo.against(policy)), 'log', '-1', `--format=${FORMAT}`, commit]));
    return { status: c?.status ?? 'N', key: c?.key ?? '', principal: c?.principal ?? '' };
  } finally {
    await repo.close();
  }
}

/** Hosts the records know: those with a folder, and those the policy trusts to sign records. */
export async function knownHosts(dir: string, signers: string): Promise<string[]> {
  const hosts = new Set(await readdir(join(dir, 'hosts')).catch(() => [] as string[]));
  for (const s of parseAllowedSigners(signers).signers) if (!s.namespaces || s.namespaces.includes('respaldo-record')) for (const p of s.principals) if (!p.includes('*')) hosts.add(p);
  return [...hosts].sort();
}

/** Reads the requests, approvals, checkpoints and policy history of the records folder `dir`. */
export async function readTrust(dir: string, opts: { approvers?: string[] | undefined; env: NodeJS.ProcessEnv }): Promise<Trust> {
  const repo = new Repo(dir, gitEnv(opts.env));
  try {
    const inGit = await repo.git(['rev-parse', '--verify', '--quiet', 'HEAD']).then(
      () => true,
      () => false,
    );
    if (!inGit) {
      const working: PolicyText = { signers: await readFile(join(dir, POLICY_FILES[0]), 'utf8').catch(() => ''), revoked: await readFile(join(dir, POLICY_FILES[1]), 'utf8').catch(() => '') };
      return { git: false, policy: { ...working, anchor: undefined, commit: undefined, changes: [], ignored: [], problems: [`${dir} is not a git checkout with commits: the policy's history, approvals and checkpoints cannot be checked`] }, requests: [], approvals: [], checkpoints: [] };
    }
    const policy = await readPolicy(repo, opts.approvers);
    const against = policy.anchor ? await repo.against(policy) : undefined;
    const hosts = await knownHosts(dir, policy.signers);

    const requests: RequestState[] = [];
    const numbers = new Map<string, string>();
    for (const name of await namesIn(repo, 'requests')) {
      const path = `requests/${name}`;
      const id = name.replace(/\.yaml$/, '');
      const bytes = (await repo.show('HEAD', path)) ?? Buffer.alloc(0);
      const state: RequestState = { id, path, request: undefined, digest: digestOf(bytes), problems: [] };
      requests.push(state);
      const at = (field: string | undefined, message: string) => state.problems.push({ path, line: undefined, field, message });
      if (!REQUEST_ID_RE.test(id) || !name.endsWith('.yaml')) {
        at(undefined, 'a request file is named REQ-YYYY-NNNN.yaml');
        continue;
      }
      const parsed = parseFile(path, bytes.toString('utf8'), request);
      if (!parsed.ok) {
        state.problems.push(...parsed.problems);
        continue;
      }
      state.request = parsed.value;
      const r = parsed.value;
      if (r.id !== id) {
        const other = numbers.get(r.id);
        at('id', `says ${r.id}, but the file is ${id}.yaml${other ? ` and ${other} already has that number` : ''}: two clones gave out the same number, or the file was renamed; a request's id and file name must match, so write a new request (respaldo request new) rather than renaming one`);
      } else numbers.set(r.id, path);
      if (!hosts.includes(r.host)) at('host', `"${r.host}" is not a host of these records (known: ${hosts.join(', ') || 'none'}); a host is known once its agent is enrolled (respaldo init)`);
    }

    const approvals: ApprovalState[] = [];
    for (const name of await namesIn(repo, 'approvals')) {
      const path = `approvals/${name}`;
      const id = name.replace(/\.yaml$/, '');
      const state: ApprovalState = { id, approval: undefined, ...(await signedFile(repo, path, against, policy)) };
      approvals.push(state);
      const parsed = parseFile(path, ((await repo.show('HEAD', path)) ?? '').toString(), approval);
      if (!parsed.ok) {
        Object.assign(state, { valid: false, reason: state.reason ?? parsed.problems.map((p) => `${p.field ?? 'file'}: ${p.message}`).join('; ') });
        continue;
      }
      state.approval = parsed.value;
      if (!state.valid) continue;
      const req = requests.find((r) => r.id === id);
      if (parsed.value.request !== id) Object.assign(state, { valid: false, reason: `request: says ${parsed.value.request}, but the file is ${path}` });
      else if (!req) Object.assign(state, { valid: false, reason: `there is no ${requestPath(id)}` });
      else if (req.digest !== parsed.value.request_digest) Object.assign(state, { valid: false, reason: `${requestPath(id)} changed after it was decided (request_digest does not match): it needs a new decision` });
    }

    const checkpoints: CheckpointState[] = [];
    for (const name of await namesIn(repo, 'checkpoints')) {
      const path = `checkpoints/${name}`;
      const state: CheckpointState = { checkpoint: undefined, ...(await signedFile(repo, path, against, policy)) };
      checkpoints.push(state);
      if (!CHECKPOINT_PATH_RE.test(path)) Object.assign(state, { valid: false, reason: 'a checkpoint file is named YYYYMMDDTHHMMSSZ.yaml' });
      const parsed = parseFile(path, ((await repo.show('HEAD', path)) ?? '').toString(), checkpoint);
      if (parsed.ok) state.checkpoint = parsed.value;
      else Object.assign(state, { valid: false, reason: parsed.problems.map((p) => `${p.field ?? 'file'}: ${p.message}`).join('; ') });
    }
    return { git: true, policy, requests, approvals, checkpoints };
  } finally {
    await repo.close();
  }
}

/** The decision in force on a request: its approval when that counts. */
export function decisionOf(trust: Trust, id: string): ApprovalState | undefined {
  return trust.approvals.find((a) => a.id === id && a.valid);
}

export { approvalPath, requestPath };
