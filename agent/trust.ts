/**
 * What git's signed history says about the records folder: the trust policy in force,
 * which approvals and checkpoints count, and the requests (clauses 4.1.1 and 4.3).
 *
 * Only the first-parent chain of HEAD counts, walked from the oldest commit: a commit that
 * reaches it through a merge is not looked at, whatever its date, and a merge that changes
 * the policy, an approval or a checkpoint is itself the change, and does not count.
 *
 * - **The policy** (`policy/allowed_signers`, `policy/revoked_keys`) is anchored by the
 *   first commit of it, when an approver that commit lists signed it; or, with approvers
 *   pinned (`requests.approvers` in the host configuration, `--approver`), by the first
 *   commit of it that a pinned key signed. From then on a change counts only when an
 *   approver of the policy before it signed it; any other change (an unsigned commit, a
 *   merge, an edit never committed) is reported and ignored.
 * - **Every commit that touches an approval or a checkpoint** is judged against the
 *   policy in force just before it: signed by an approver, valid at the commit's time and
 *   not revoked (`%G?` = G), and not a merge. A file counts when every such commit since the
 *   last approver-signed deletion of it does. Committers' names and emails are never read.
 * - **An approval** also names the sha256 of the request it decides: a request edited
 *   afterwards is no longer approved.
 * - **A checkpoint** that stopped counting (changed or deleted by a commit that does not
 *   count) is a violation, like a chain that no longer extends it.
 *
 * The time a key's `valid-after`/`valid-before` is judged at is the commit's date, which
 * the signer sets: to end a key's authority, remove it from the policy or revoke it.
 *
 * `tools/audit.sh` checks the same rules with git and ssh-keygen alone; both must agree.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllowedSigners, parseRevokedKeys } from '../schemas/allowed-signers.js';
import { fingerprint, verifySshsig } from '../schemas/sshsig.js';
import { digestOf } from '../schemas/record.js';
import { approval, checkpoint, CHECKPOINT_PATH_RE, parseFile, request, requestPath } from '../schemas/request.js';
import type { PolicyText } from '../schemas/chain.js';
import type { ApprovalState, CheckpointState, PolicyChange, RequestState, SignedFileState, Trust, TrustedPolicy } from '../schemas/trust.js';
import { capture } from './exec.js';
import { gitEnv } from './git.js';

export const POLICY_FILES = ['policy/allowed_signers', 'policy/revoked_keys'] as const;
/** Everything whose history the trust rules read. */
const TRUST_PATHS = [...POLICY_FILES, 'approvals', 'checkpoints'];

/** Git's `%G?` letters, said for a person. */
function statusWords(status: string, key: string): string {
  switch (status) {
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

/**
 * Nothing of anyone's git configuration may change a verdict: no global or system file
 * (a log.showSignature, a revocation file of their own), only what is given here. The same
 * as tools/audit.sh.
 */
const QUIET_CONFIG = ['-c', 'log.showSignature=false', '-c', 'core.quotePath=false'];
const isolated = (env: Record<string, string>) => ({ ...env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' });

class Repo {
  private temp: string | undefined;
  private readonly env: Record<string, string>;
  constructor(
    readonly dir: string,
    env: Record<string, string>,
  ) {
    this.env = isolated(env);
  }

  async git(args: string[]): Promise<string> {
    return (await capture('git', ['-C', this.dir, ...QUIET_CONFIG, ...args], { env: this.env })).toString('utf8');
  }

  /** A file of a commit, undefined when the commit does not have it. */
  async show(rev: string, path: string): Promise<Buffer | undefined> {
    try {
      return await capture('git', ['-C', this.dir, 'show', `${rev}:./${path}`], { env: this.env });
    } catch {
      return undefined;
    }
  }

  /** git's options that check signatures against `policy`: its allowed signers and its revoked keys. */
  async against(policy: PolicyText): Promise<string[]> {
    this.temp ??= await mkdtemp(join(tmpdir(), 'respaldo-trust-'));
    const n = Math.random().toString(36).slice(2);
    const signers = join(this.temp, `allowed_signers.${n}`);
    await writeFile(signers, policy.signers);
    // Always a revocation file of the policy's own, empty or not.
    const revoked = join(this.temp, `revoked_keys.${n}`);
    await writeFile(revoked, policy.revoked);
    return ['-c', `gpg.ssh.allowedSignersFile=${signers}`, '-c', `gpg.ssh.revocationFile=${revoked}`];
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
    .filter((l) => /^([0-9a-f]{40}|[0-9a-f]{64})\t/.test(l))
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
  if (c.merge) return 'a merge commit: only plain commits on the first-parent chain count (a linear history)';
  if (c.status !== 'B' && c.status !== 'E') return statusWords(c.status, c.key);
  const object = await repo.git(['cat-file', 'commit', c.commit]).catch(() => '');
  const m = /^gpgsig (-----BEGIN SSH SIGNATURE-----\n(?: .*\n)+?) -----END SSH SIGNATURE-----$/m.exec(object);
  if (!m) return statusWords(c.status, c.key);
  const armored = `${m[1]!.replace(/^ /gm, '')}-----END SSH SIGNATURE-----\n`;
  const key = verifySshsig(Buffer.alloc(0), armored, 'git').publicKey;
  if (key && parseRevokedKeys(policy.revoked).some((k) => k.equals(key))) return `signed by key ${fingerprint(key)}, which policy/revoked_keys revokes`;
  return `${statusWords(c.status, c.key)}${key ? ` (key ${fingerprint(key)})` : ''}`;
}

/**
 * The exact forms respaldo writes, which tools/audit.sh reads line by line: anything else
 * (quotes, flow mappings, comments), even signed, does not count, so that the two readers
 * cannot understand one file two ways.
 */
const ISO = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
const APPROVAL_FORM_RE = new RegExp(`^schema: respaldo/v1\\ntype: approval\\nrequest: REQ-\\d{4}-\\d{4}\\nrequest_digest: sha256:[0-9a-f]{64}\\ndecision: (approved|rejected)\\napprover: [^\\s'"{\\[][^\\n]*\\nat: ${ISO}\\n`);
const CHECKPOINT_FORM_RE = new RegExp(`^schema: respaldo/v1\\ntype: checkpoint\\nat: ${ISO}\\nheads:(?: \\{\\}\\n|\\n(?:  [a-z0-9][a-z0-9.-]*: [1-9]\\d* sha256:[0-9a-f]{64}\\n)+)$`);

/** One commit of the first-parent chain that touches the policy, an approval or a checkpoint, with what it did to each. */
interface Step {
  commit: string;
  merge: boolean;
  date: string;
  author: string;
  /** Path → git's status letter (A, M, D, T). */
  changes: Map<string, string>;
}

/** The commits of HEAD's first-parent chain that touch `paths`, oldest first, with their changes against their first parent. */
async function firstParentSteps(repo: Repo, paths: string[]): Promise<Step[]> {
  const out = await repo.git(['log', '--first-parent', '--reverse', '--no-renames', '--relative', '--name-status', '--format=%x01%H%x09%P%x09%cI%x09%an', '--', ...paths]);
  const steps: Step[] = [];
  for (const line of out.split('\n')) {
    if (line.startsWith('\x01')) {
      const [commit, parents, date, author] = line.slice(1).split('\t') as [string, string, string, string];
      steps.push({ commit, merge: parents.trim().split(' ').length > 1, date, author, changes: new Map() });
    } else if (line && steps.length) {
      const [status, ...path] = line.split('\t');
      steps.at(-1)!.changes.set(path.join('\t'), status!.slice(0, 1));
    }
  }
  return steps;
}

/** Commits reachable from HEAD that touch the trust paths but are not on its first-parent chain. */
async function offChain(repo: Repo, steps: Step[]): Promise<string[]> {
  const onChain = new Set(steps.map((s) => s.commit));
  const candidates = (await repo.git(['rev-list', '--full-history', 'HEAD', '--', ...TRUST_PATHS])).split('\n').filter((c) => c && !onChain.has(c));
  if (!candidates.length) return [];
  // A merge on the chain that brought nothing to these paths is listed too: it is on the chain.
  const chain = new Set((await repo.git(['rev-list', '--first-parent', 'HEAD'])).split('\n'));
  return candidates.filter((c) => !chain.has(c));
}

/** What the walk learns of one approval or checkpoint file: each commit's verdict since its last approver-signed deletion. */
interface FileHistory {
  verdicts: { commit: string; key: string; principal: string; date: string; ok: boolean; reason: string | undefined }[];
  /** Deleted by an approver's signed commit (and not written again since). */
  withdrawn: boolean;
}

const isSignedFile = (path: string) => /^(approvals|checkpoints)\/[^/]+$/.test(path);

/**
 * The walk: the policy anchored and changed commit by commit, and every commit that
 * touches an approval or a checkpoint judged against the policy in force before it.
 */
async function walk(repo: Repo, approvers: string[] | undefined): Promise<{ policy: TrustedPolicy; files: Map<string, FileHistory> }> {
  const steps = await firstParentSteps(repo, TRUST_PATHS);
  const changes: PolicyChange[] = [];
  const ignored: string[] = [];
  const problems: string[] = [];
  const files = new Map<string, FileHistory>();
  const pinned = approvers?.length ? approvers : undefined;
  let anchor: TrustedPolicy['anchor'];
  let inForce: PolicyText | undefined;
  let inForceCommit: string | undefined;
  let inForceOptions: string[] = [];
  let firstPolicyCommit: string | undefined;
  for (const step of steps) {
    const touchesPolicy = POLICY_FILES.some((f) => step.changes.has(f));
    const touched = [...step.changes.keys()].filter(isSignedFile);
    const text = async (): Promise<PolicyText> => ({ signers: (await repo.show(step.commit, POLICY_FILES[0]))?.toString('utf8') ?? '', revoked: (await repo.show(step.commit, POLICY_FILES[1]))?.toString('utf8') ?? '' });
    if (!inForce) {
      // Before the anchor only the anchor itself can count: checked against its own files.
      if (!touchesPolicy) continue;
      firstPolicyCommit ??= step.commit;
      const change: PolicyChange = { commit: step.commit, author: step.author, date: step.date, key: undefined, principal: undefined, status: 'before-anchor', reason: undefined };
      changes.push(change);
      const eligible = pinned !== undefined || step.commit === firstPolicyCommit;
      if (!eligible || step.merge) continue;
      const own = await text();
      const [checked] = parseLog(await repo.git([...(await repo.against(own)), 'log', '-1', `--format=${FORMAT}`, step.commit]));
      change.key = checked?.key || undefined;
      change.principal = checked?.principal || undefined;
      if (checked?.status === 'G' && (!pinned || pinned.includes(checked.key))) {
        anchor = { commit: step.commit, key: checked.key, principal: checked.principal };
        change.status = 'anchor';
        inForce = own;
        inForceCommit = step.commit;
        inForceOptions = await repo.against(inForce);
      }
      continue;
    }
    const [checked] = parseLog(await repo.git([...inForceOptions, 'log', '-1', `--format=${FORMAT}`, step.commit]));
    const verdict = checked ?? { commit: step.commit, merge: step.merge, status: 'N', key: '', principal: '', date: step.date, author: step.author };
    const good = verdict.status === 'G' && !step.merge;
    const reason = good ? undefined : await whyNot(repo, verdict, inForce);
    for (const path of touched) {
      // An approver's signed deletion withdraws the file: what was done to it before no longer counts.
      if (good && step.changes.get(path) === 'D') {
        files.set(path, { verdicts: [], withdrawn: true });
        continue;
      }
      const history = files.get(path) ?? { verdicts: [], withdrawn: false };
      files.set(path, history);
      history.withdrawn = false;
      history.verdicts.push({ commit: step.commit, key: verdict.key, principal: verdict.principal, date: step.date, ok: good, reason: good ? undefined : `commit ${step.commit.slice(0, 12)} (${step.author}, ${step.date}) that touched it is ${reason}` });
    }
    if (!touchesPolicy) continue;
    const change: PolicyChange = { commit: step.commit, author: step.author, date: step.date, key: verdict.key || undefined, principal: verdict.principal || undefined, status: 'accepted', reason: undefined };
    changes.push(change);
    if (good) {
      inForce = await text();
      inForceCommit = step.commit;
      inForceOptions = await repo.against(inForce);
    } else {
      change.status = 'ignored';
      change.reason = `${reason}, and only an approver trusted before a change may make it`;
      ignored.push(`${step.commit.slice(0, 12)} (${step.author}, ${step.date}): ${change.reason}`);
    }
  }
  // What a merge brought in from off the first-parent chain is never read; each such commit
  // that touched the policy, an approval or a checkpoint is reported (a branch whose first
  // parent was made to be someone else's chain shows here: the real history is off it).
  for (const c of await offChain(repo, steps)) ignored.push(`${c.slice(0, 12)}: touches the policy, an approval or a checkpoint off HEAD's first-parent chain (a merge brought it in): it does not count, and the history must be linear`);
  const working = await workingPolicy(repo.dir);
  if (!inForce) {
    problems.push(
      pinned
        ? `policy/allowed_signers was never committed signed by a pinned approver (${pinned.join(', ')}): nothing is approved, and records are checked against the working copy of the policy`
        : firstPolicyCommit
          ? `policy/allowed_signers is not anchored: its first commit ${firstPolicyCommit.slice(0, 12)} is not signed by an approver it lists, so nothing is approved, and records are checked against the working copy of the policy; pin the first approver's key (requests.approvers in the host configuration, or --approver SHA256:…)`
          : 'policy/allowed_signers was never committed: nothing is approved, and records are checked against the working copy of the policy',
    );
    return { policy: { ...working, anchor, commit: undefined, changes, ignored, problems }, files };
  }
  // An edit never committed counts for nothing either (committed changes were judged above).
  for (const [i, file] of POLICY_FILES.entries()) {
    const mine = i === 0 ? working.signers : working.revoked;
    const committed = (await repo.show('HEAD', file))?.toString('utf8') ?? '';
    if (mine !== committed) ignored.push(`${file} has changes in the working tree that were never committed: they are ignored until an approver commits them signed`);
  }
  return { policy: { ...inForce, anchor, commit: inForceCommit, changes, ignored, problems }, files };
}

/** The policy files as the work tree has them. */
async function workingPolicy(dir: string): Promise<PolicyText> {
  const [signers, revoked] = await Promise.all(POLICY_FILES.map((f) => readFile(join(dir, f), 'utf8').catch(() => '')));
  return { signers: signers!, revoked: revoked! };
}

/** Files of `folder` the walk saw that are gone from HEAD without an approver's signed deletion. */
function vanished(files: Map<string, FileHistory>, folder: string, present: Set<string>): string[] {
  return [...files.entries()].filter(([p, h]) => p.startsWith(`${folder}/`) && !h.withdrawn && !present.has(p)).map(([p]) => p).sort();
}

/** Whether a file counts, from its history in the walk. */
function signedFile(path: string, history: FileHistory | undefined, anchored: boolean): SignedFileState {
  const newest = history?.verdicts.at(-1);
  const state: SignedFileState = { path, valid: false, reason: undefined, commit: newest?.commit, key: newest?.key || undefined, principal: newest?.principal || undefined, date: newest?.date };
  if (!anchored) return { ...state, reason: 'the policy is not anchored: no approver is trusted' };
  if (!newest) return { ...state, reason: 'no commit on the first-parent chain since the policy was anchored wrote it (committed before the anchor, or only on a merged branch)' };
  const bad = history!.verdicts.find((v) => !v.ok);
  if (bad) return { ...state, reason: bad.reason };
  return { ...state, valid: true };
}

/** The names of the files in a folder of HEAD. */
async function namesIn(repo: Repo, folder: string): Promise<string[]> {
  const out = await repo.git(['ls-tree', '--name-only', 'HEAD', '--', `${folder}/`]).catch(() => '');
  return out
    .split('\n')
    .filter(Boolean)
    .map((p) => p.split('/').pop()!)
    .sort();
}

/** Hosts the records know: those with a folder, and those the policy trusts to sign records. */
export async function knownHosts(dir: string, signers: string): Promise<string[]> {
  const hosts = new Set(await readdir(join(dir, 'hosts')).catch(() => [] as string[]));
  for (const s of parseAllowedSigners(signers).signers) if (!s.namespaces || s.namespaces.includes('respaldo-record')) for (const p of s.principals) if (!p.includes('*')) hosts.add(p);
  return [...hosts].sort();
}

/** Reads the requests, approvals, checkpoints and policy history of the records folder `dir`. */
/**
 * One file of `requests/` as its bytes stand: only REQ-YYYY-NNNN.yaml is a request ("REQ-2026-0001"
 * without .yaml is another file, never its stand-in), parsed against the request schema.
 */
export function readRequestFile(name: string, bytes: Buffer): RequestState {
  const path = `requests/${name}`;
  const named = /^REQ-\d{4}-\d{4}\.yaml$/.test(name);
  const state: RequestState = { id: named ? name.slice(0, -5) : name, path, request: undefined, digest: digestOf(bytes), problems: [] };
  if (!named) state.problems.push({ path, line: undefined, field: undefined, message: 'a request file is named REQ-YYYY-NNNN.yaml' });
  else {
    const parsed = parseFile(path, bytes.toString('utf8'), request);
    if (parsed.ok) state.request = parsed.value;
    else state.problems.push(...parsed.problems);
  }
  return state;
}

export async function readTrust(dir: string, opts: { approvers?: string[] | undefined; env: NodeJS.ProcessEnv }): Promise<Trust> {
  const repo = new Repo(dir, gitEnv(opts.env));
  try {
    const inGit =
      (await repo.git(['rev-parse', '--is-inside-work-tree']).then((t) => t.trim() === 'true', () => false)) &&
      (await repo.git(['rev-parse', '--verify', '--quiet', 'HEAD']).then(
        () => true,
        () => false,
      ));
    if (!inGit)
      return { git: false, policy: { ...(await workingPolicy(dir)), anchor: undefined, commit: undefined, changes: [], ignored: [], problems: [`${dir} is not a git checkout with commits: the policy's history, approvals and checkpoints cannot be checked`] }, requests: [], approvals: [], checkpoints: [] };
    const { policy, files } = await walk(repo, opts.approvers);
    const anchored = policy.anchor !== undefined;
    const hosts = await knownHosts(dir, policy.signers);

    const requests: RequestState[] = [];
    const numbers = new Map<string, string>();
    for (const name of await namesIn(repo, 'requests')) {
      const state = readRequestFile(name, (await repo.show('HEAD', `requests/${name}`)) ?? Buffer.alloc(0));
      requests.push(state);
      const r = state.request;
      if (!r) continue;
      const { id, path } = state;
      const at = (field: string, message: string) => state.problems.push({ path, line: undefined, field, message });
      if (r.id !== id) {
        const other = numbers.get(r.id);
        at('id', `says ${r.id}, but the file is ${id}.yaml${other ? ` and ${other} already has that number` : ''}: two clones gave out the same number, or the file was renamed; a request's id and file name must match, so write a new request (respaldo request new) rather than renaming one`);
      } else numbers.set(r.id, path);
      if (!hosts.includes(r.host)) at('host', `"${r.host}" is not a host of these records (known: ${hosts.join(', ') || 'none'}); a host is known once its agent is enrolled (respaldo init)`);
    }

    // Approvals: those at HEAD, and those that went away without an approver's signed deletion (they do not count, and say why).
    const approvals: ApprovalState[] = [];
    const decided = (await namesIn(repo, 'approvals')).map((n) => `approvals/${n}`);
    for (const path of vanished(files, 'approvals', new Set(decided))) {
      const bad = files.get(path)!.verdicts.find((v) => !v.ok);
      approvals.push({ id: path.slice('approvals/'.length).replace(/\.yaml$/, ''), approval: undefined, ...signedFile(path, files.get(path), anchored), valid: false, reason: `deleted by a commit that does not count${bad ? `: ${bad.reason}` : ''}` });
    }
    for (const path of decided) {
      const id = path.slice('approvals/'.length).replace(/\.yaml$/, '');
      const state: ApprovalState = { id, approval: undefined, ...signedFile(path, files.get(path), anchored) };
      approvals.push(state);
      if (!/^REQ-\d{4}-\d{4}\.yaml$/.test(path.slice('approvals/'.length))) {
        Object.assign(state, { valid: false, reason: `${path} is not an approval: an approval file is named REQ-YYYY-NNNN.yaml` });
        continue;
      }
      const bytes = ((await repo.show('HEAD', path)) ?? '').toString();
      if (!APPROVAL_FORM_RE.test(bytes)) {
        Object.assign(state, { valid: false, reason: state.reason ?? `${path} does not begin with the lines respaldo approve writes (schema, type, request, request_digest, decision, approver, at, each plain)` });
        continue;
      }
      const parsed = parseFile(path, bytes, approval);
      if (!parsed.ok) {
        Object.assign(state, { valid: false, reason: state.reason ?? parsed.problems.map((p) => `${p.field ?? 'file'}: ${p.message}`).join('; ') });
        continue;
      }
      state.approval = parsed.value;
      if (!state.valid) continue;
      const req = requests.find((r) => r.path === requestPath(id));
      if (parsed.value.request !== id) Object.assign(state, { valid: false, reason: `request: says ${parsed.value.request}, but the file is ${path}` });
      else if (!req) Object.assign(state, { valid: false, reason: `there is no ${requestPath(id)}` });
      else if (req.digest !== parsed.value.request_digest) Object.assign(state, { valid: false, reason: `${requestPath(id)} changed after it was decided (request_digest does not match): it needs a new decision` });
    }

    // Checkpoints: those at HEAD, and those that went away without an approver's signed deletion.
    const checkpoints: CheckpointState[] = [];
    const present = new Set((await namesIn(repo, 'checkpoints')).map((n) => `checkpoints/${n}`));
    for (const path of vanished(files, 'checkpoints', present)) {
      const history = files.get(path)!;
      checkpoints.push({ checkpoint: undefined, present: false, ...signedFile(path, history, anchored), valid: false, reason: history.verdicts.find((v) => !v.ok)?.reason ?? 'deleted' });
    }
    for (const path of [...present].sort()) {
      const history = files.get(path);
      const state: CheckpointState = { checkpoint: undefined, present: true, ...signedFile(path, history, anchored) };
      checkpoints.push(state);
      if (!CHECKPOINT_PATH_RE.test(path)) Object.assign(state, { valid: false, reason: 'a checkpoint file is named YYYYMMDDTHHMMSSZ.yaml' });
      const bytes = ((await repo.show('HEAD', path)) ?? '').toString();
      if (!CHECKPOINT_FORM_RE.test(bytes)) Object.assign(state, { valid: false, reason: state.reason ?? `${path} is not in the form respaldo checkpoint writes (one plain line "  host: seq sha256:hex" per host under heads:)` });
      const parsed = parseFile(path, bytes, checkpoint);
      if (parsed.ok) state.checkpoint = parsed.value;
      else Object.assign(state, { valid: false, reason: state.reason ?? parsed.problems.map((p) => `${p.field ?? 'file'}: ${p.message}`).join('; ') });
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

