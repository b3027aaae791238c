/**
 * The chain rule, checked the same way by `respaldo records verify` and by the site.
 *
 * A host's records are numbered 1, 2, 3, … with no gaps; record 1 is the enrolment with
 * `prev: null`; every later record's `prev` is the sha256 of the previous record file's
 * bytes; every record has a detached SSHSIG signature (namespace "respaldo-record") by a
 * key that `allowed_signers` lists for the host, and, after an enrolment, by the key that
 * enrolment announced. Deleting, editing, reordering or forking records, or signing with
 * any other key, breaks one of these and is named here with the file and the reason.
 */
import { checkSigner, parseAllowedSigners, parseRevokedKeys, type AllowedSignersFile } from './allowed-signers.js';
import { hostName } from './common.js';
import { digestOf, parseRecord, readHeader, RECORD_NAMESPACE, RECORD_PATH_RE, type AnyRecord, type ParsedRecord } from './record.js';
import { verifySshsig, type SshsigCheck } from './sshsig.js';

export type ProblemCode =
  | 'invalid'
  | 'unsigned'
  | 'edited'
  | 'bad-signature'
  | 'unknown-signer'
  | 'wrong-key'
  | 'misplaced'
  | 'reordered'
  | 'forked'
  | 'deleted'
  | 'broken-link'
  | 'orphan-signature'
  | 'unexpected-file'
  | 'interrupted-write'
  | 'clock';

export interface Problem {
  path: string;
  seq?: number;
  code: ProblemCode;
  severity: 'error' | 'warning';
  message: string;
}

/** One file of a host's folder, as read by the caller (the only I/O is theirs). */
export interface HostFile {
  /** Relative to the records folder, with forward slashes: `hosts/web01/2026/00000003-backup.yaml`. */
  path: string;
  bytes: Buffer;
}

export interface RecordStatus {
  path: string;
  seq: number;
  type: string;
  at: string | undefined;
  prev: string | null | undefined;
  digest: string;
  /** The file's bytes, as signed (kept off the JavaScript heap). */
  bytes: Buffer;
  record: AnyRecord | undefined;
  signer: string | undefined;
  /** True when the record's own checks and its link to the previous record all hold. */
  genuine: boolean;
  problems: Problem[];
}

export interface ChainReport {
  host: string;
  records: RecordStatus[];
  head: { seq: number; digest: string } | undefined;
  problems: Problem[];
}

const TEMP_RE = /\/\.[^/]*\.tmp$/;

/**
 * The two costly steps of checking a record, which a caller may remember between runs (the
 * site keeps them in a cache keyed by the file's digest): parsing it, and checking its
 * signature's mathematics. Which keys are trusted, and the chain, are judged again every time.
 */
export interface ChainMemo {
  parse(digest: string, text: string): ParsedRecord;
  verify(digest: string, bytes: Buffer, signature: Buffer): SshsigCheck;
}

export const noMemo: ChainMemo = {
  parse: (_digest, text) => parseRecord(text),
  verify: (_digest, bytes, signature) => verifySshsig(bytes, signature.toString('utf8'), RECORD_NAMESPACE),
};

/** Verifies one host's chain from all the files under `hosts/<host>/`. */
export function verifyChain(host: string, files: HostFile[], signers: AllowedSignersFile, memo: ChainMemo = noMemo): ChainReport {
  const problems: Problem[] = [];
  const add = (p: Problem, status?: RecordStatus) => {
    problems.push(p);
    status?.problems.push(p);
  };
  const sigs = new Map<string, Buffer>();
  const yamls: HostFile[] = [];
  for (const f of files) {
    if (f.path.endsWith('.yaml.sig') && RECORD_PATH_RE.test(f.path.slice(0, -4))) sigs.set(f.path.slice(0, -4), f.bytes);
    else if (RECORD_PATH_RE.test(f.path)) yamls.push(f);
    else if (TEMP_RE.test(f.path)) add({ path: f.path, code: 'interrupted-write', severity: 'warning', message: 'temporary file of an interrupted write; the agent removes it on its next run' });
    else add({ path: f.path, code: 'unexpected-file', severity: 'error', message: 'a file that is not a record or a signature does not belong in a host folder' });
  }

  const statuses: RecordStatus[] = [];
  for (const f of yamls) {
    const [, dirHost, year, seqText, nameType] = RECORD_PATH_RE.exec(f.path)!;
    const text = f.bytes.toString('utf8');
    const header = readHeader(text);
    const digest = digestOf(f.bytes);
    const parsed = memo.parse(digest, text);
    const status: RecordStatus = {
      path: f.path,
      seq: header?.seq ?? Number(seqText),
      type: header?.type ?? nameType!,
      at: header?.at,
      prev: header?.prev,
      digest,
      bytes: f.bytes,
      record: parsed.ok ? parsed.record : undefined,
      signer: undefined,
      genuine: true,
      problems: [],
    };
    statuses.push(status);
    if (!parsed.ok) add({ path: f.path, seq: status.seq, code: 'invalid', severity: 'error', message: parsed.error }, status);
    if (header) {
      if (header.host !== dirHost || dirHost !== host)
        add({ path: f.path, seq: header.seq, code: 'misplaced', severity: 'error', message: `record of host "${header.host}" is in the folder of "${dirHost}"` }, status);
      if (header.seq !== Number(seqText) || header.type !== nameType)
        add({ path: f.path, seq: header.seq, code: 'reordered', severity: 'error', message: `file name says seq ${Number(seqText)} (${nameType}) but the record says seq ${header.seq} (${header.type}): records were renamed or reordered` }, status);
      if (header.at.slice(0, 4) !== year)
        add({ path: f.path, seq: header.seq, code: 'misplaced', severity: 'error', message: `record written at ${header.at} is filed under year ${year}` }, status);
    }
    const sig = sigs.get(f.path);
    sigs.delete(f.path);
    if (!sig) {
      add({ path: f.path, seq: status.seq, code: 'unsigned', severity: 'error', message: `no signature (${f.path.split('/').pop()}.sig is missing)` }, status);
      continue;
    }
    const check = memo.verify(digest, f.bytes, sig);
    if (!check.ok) {
      const edited = check.publicKey !== undefined && check.reason.startsWith('signature does not match');
      add({ path: f.path, seq: status.seq, code: edited ? 'edited' : 'bad-signature', severity: 'error', message: edited ? 'the record was changed after it was signed (its signature does not match its bytes)' : check.reason }, status);
      continue;
    }
    status.signer = check.fingerprint;
    const allowed = checkSigner(signers, { principal: host, namespace: RECORD_NAMESPACE, key: check.publicKey, at: new Date(header?.at ?? 0) });
    if (!allowed.ok) add({ path: f.path, seq: status.seq, code: 'unknown-signer', severity: 'error', message: allowed.reason }, status);
  }

  // Signatures left without their record.
  const maxSeq = statuses.reduce((m, s) => Math.max(m, s.seq), 0);
  for (const path of sigs.keys()) {
    const seq = Number(RECORD_PATH_RE.exec(path)![3]);
    if (seq === maxSeq + 1) add({ path: `${path}.sig`, seq, code: 'interrupted-write', severity: 'warning', message: 'signature of a record whose write was interrupted; the agent removes it on its next run' });
    else add({ path: `${path}.sig`, seq, code: 'orphan-signature', severity: 'error', message: `signature without its record: record seq ${seq} was deleted` });
  }

  // The chain itself.
  const bySeq = new Map<number, RecordStatus[]>();
  for (const s of statuses) bySeq.set(s.seq, [...(bySeq.get(s.seq) ?? []), s]);
  for (const [seq, group] of bySeq) {
    if (group.length > 1)
      for (const s of group)
        add({ path: s.path, seq, code: 'forked', severity: 'error', message: `${group.length} records claim seq ${seq} (${group.map((g) => g.path.split('/').pop()).join(', ')}): the chain forked` }, s);
  }
  statuses.sort((a, b) => a.seq - b.seq || a.path.localeCompare(b.path));
  let enrolledKey: string | undefined;
  for (let seq = 1; seq <= maxSeq; seq++) {
    const group = bySeq.get(seq);
    if (!group) {
      const next = statuses.find((s) => s.seq > seq);
      add({ path: next?.path ?? `hosts/${host}`, seq, code: 'deleted', severity: 'error', message: `record seq ${seq} is missing: it was deleted or never committed` });
      continue;
    }
    const prevGroup = bySeq.get(seq - 1);
    for (const s of group) {
      if (seq === 1) {
        if (s.type !== 'enrolment' || s.prev !== null)
          add({ path: s.path, seq, code: 'broken-link', severity: 'error', message: 'the first record of a host must be its enrolment, with prev: null' }, s);
      } else if (prevGroup?.length === 1 && s.prev !== undefined) {
        const expected = prevGroup[0]!.digest;
        if (s.prev !== expected)
          add({ path: s.path, seq, code: 'broken-link', severity: 'error', message: `prev does not match record seq ${seq - 1} (expected ${expected.slice(0, 19)}…, found ${String(s.prev).slice(0, 19)}…): the record before it was changed, replaced or reordered` }, s);
        const before = prevGroup[0]!.at;
        if (before && s.at && s.at < before)
          add({ path: s.path, seq, code: 'clock', severity: 'warning', message: `written at ${s.at}, before the record it follows (${before}): the host's clock went back` }, s);
      }
      // Each enrolment announces the key that signs the records after it.
      if (s.record?.type === 'enrolment' && s.signer) {
        if (s.signer === s.record.key.fingerprint) enrolledKey = s.signer;
        else add({ path: s.path, seq, code: 'wrong-key', severity: 'error', message: `enrolment announces key ${s.record.key.fingerprint} but is signed by ${s.signer}` }, s);
      } else if (s.signer && enrolledKey && s.signer !== enrolledKey)
        add({ path: s.path, seq, code: 'wrong-key', severity: 'error', message: `signed by ${s.signer}, not by the key the host enrolled (${enrolledKey})` }, s);
    }
  }
  for (const s of statuses) s.genuine = !s.problems.some((p) => p.severity === 'error');
  const last = statuses[statuses.length - 1];
  return { host, records: statuses, head: last ? { seq: last.seq, digest: last.digest } : undefined, problems };
}

/**
 * The two file-system calls the folder check needs. The caller hands in `node:fs` itself:
 * schemas/ does no I/O of its own, and the agent and the site read folders the same way.
 */
export interface FolderFs {
  readdirSync(path: string, opts: { recursive: true; withFileTypes: true }): { name: string; parentPath: string; isFile(): boolean; isDirectory(): boolean }[];
  readFileSync(path: string): Buffer;
}

function tryOr<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

export interface FolderReport {
  reports: ChainReport[];
  /** Problems of `policy/allowed_signers` itself. */
  policyProblems: string[];
  total: number;
  broken: number;
  errors: number;
}

/**
 * The policy to check records against, when the caller knows better than the working
 * tree: the trusted version from git's signed history (agent/trust.ts).
 */
export interface PolicyText {
  signers: string;
  revoked: string;
}

/**
 * Verifies every host's chain in the records folder `root` against `policy` or, without it,
 * the folder's own `policy/allowed_signers` and `policy/revoked_keys`.
 */
export function verifyRecordsFolder(root: string, fs: FolderFs, policy?: PolicyText, memo?: ChainMemo): FolderReport {
  const base = root.replace(/\/+$/, '');
  const read = (path: string) => tryOr<Buffer | undefined>(() => fs.readFileSync(`${base}/${path}`), undefined);
  const policyProblems: string[] = [];
  const signersText = policy ? Buffer.from(policy.signers) : read('policy/allowed_signers');
  if (signersText === undefined) policyProblems.push('policy/allowed_signers is missing: no record can be trusted');
  const signers = parseAllowedSigners(signersText?.toString('utf8') ?? '');
  signers.revoked = parseRevokedKeys(policy ? policy.revoked : (read('policy/revoked_keys')?.toString('utf8') ?? ''));
  for (const e of signers.errors) policyProblems.push(`policy/allowed_signers line ${e.line}: ${e.message}`);
  const byHost = new Map<string, string[]>();
  const strays: Problem[] = [];
  for (const entry of tryOr(() => fs.readdirSync(`${base}/hosts`, { recursive: true, withFileTypes: true }), [])) {
    if (entry.isDirectory()) continue;
    const path = `${entry.parentPath}/${entry.name}`.slice(base.length + 1);
    // A link (to a folder or a file) is not a record written by an agent, whatever it points at.
    if (!entry.isFile()) strays.push({ path, code: 'unexpected-file', severity: 'error', message: 'not a regular file: records are plain files, never links' });
    else {
      const host = path.split('/')[1]!;
      const list = byHost.get(host);
      if (list) list.push(path);
      else byHost.set(host, [path]);
    }
  }
  const reports = [...byHost.keys()].sort().map((host) => verifyChain(host, byHost.get(host)!.map((path) => ({ path, bytes: read(path) ?? Buffer.alloc(0) })), signers, memo));
  // A host that allowed_signers trusts for records but that has none: its folder was deleted.
  const trusted = new Map<string, number>();
  for (const s of signers.signers)
    if (!s.certAuthority && (!s.namespaces || s.namespaces.includes(RECORD_NAMESPACE)))
      for (const p of s.principals) if (hostName.safeParse(p).success && !trusted.has(p)) trusted.set(p, s.line);
  for (const [host, line] of trusted) {
    if (byHost.has(host)) continue;
    reports.push({ host, records: [], head: undefined, problems: [{ path: `hosts/${host}`, code: 'deleted', severity: 'error', message: `allowed_signers trusts host "${host}" (line ${line}) but it has no records: its folder was deleted` }] });
  }
  for (const p of strays) {
    const host = p.path.split('/')[1] ?? '';
    const report = reports.find((r) => r.host === host);
    if (report) report.problems.push(p);
    else reports.push({ host, records: [], head: undefined, problems: [p] });
  }
  reports.sort((a, b) => a.host.localeCompare(b.host));
  const total = reports.reduce((n, r) => n + r.records.length, 0);
  const broken = reports.reduce((n, r) => n + r.records.filter((s) => !s.genuine).length, 0);
  const errors = reports.reduce((n, r) => n + r.problems.filter((p) => p.severity === 'error').length, 0) + policyProblems.length;
  return { reports, policyProblems, total, broken, errors };
}

export interface CheckpointFinding {
  /** The checkpoint file. */
  path: string;
  host: string;
  result: 'ok' | 'truncated' | 'diverged';
  message: string;
}

/**
 * A checkpoint's heads against the chains as they are: each host's chain must still hold
 * the record the checkpoint names, byte for byte. A chain that ends before it lost its
 * newest records; one whose record differs was rewritten.
 */
export function checkCheckpoint(path: string, heads: Record<string, { seq: number; digest: string }>, reports: ChainReport[]): CheckpointFinding[] {
  return Object.entries(heads).map(([host, head]) => {
    const records = reports.find((r) => r.host === host)?.records ?? [];
    const last = records.reduce((m, r) => Math.max(m, r.seq), 0);
    const atSeq = records.filter((r) => r.seq === head.seq);
    if (last < head.seq)
      return { path, host, result: 'truncated', message: `the chain of ${host} ends at seq ${last}, but checkpoint ${path} saw it at seq ${head.seq}: its newest records were deleted` };
    if (atSeq.length !== 1 || atSeq[0]!.digest !== head.digest)
      return { path, host, result: 'diverged', message: `record seq ${head.seq} of ${host} is not the one checkpoint ${path} saw (${head.digest.slice(0, 19)}…): the chain was rewritten after the checkpoint` };
    return { path, host, result: 'ok', message: `extends checkpoint ${path} (seq ${head.seq})` };
  });
}
