/**
 * `respaldo records verify [DIR]`: every signature and every chain of a records folder,
 * with each broken link named by file and reason; and, in a git checkout, the trust
 * policy's history, the requests, which approvals count and whether every chain still
 * extends its checkpoints. Exit 0 when all is genuine, 3 otherwise. Its summary line is
 * the one `tools/audit.sh` prints, so that the two can be compared.
 */
import fs from 'node:fs';
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { checkCheckpoint, verifyRecordsFolder, type CheckpointFinding, type FolderReport } from '../../schemas/chain.js';
import { parseHead, problemText } from '../../schemas/request.js';
import { DEFAULT_CONFIG, loadConfig } from '../config.js';
import type { Context } from '../context.js';
import { Exit, usageError, type ExitCode } from '../errors.js';
import { readTrust } from '../trust.js';
import type { Trust } from '../../schemas/trust.js';

export interface RecordsVerifyOptions {
  dir: string | undefined;
  config: string | undefined;
  /** Pinned approvers' key fingerprints (SHA256:…), besides the host configuration's. */
  approvers: string[];
}

async function recordsDir(ctx: Context, opts: RecordsVerifyOptions): Promise<{ dir: string; approvers: string[] }> {
  const pinned = (config: { requests?: { approvers?: string[] | undefined } | undefined }) => [...opts.approvers, ...(config.requests?.approvers ?? [])];
  if (opts.config) {
    const config = await loadConfig(opts.config, ctx.cwd);
    return { dir: opts.dir ? resolve(ctx.cwd, opts.dir) : config.records, approvers: pinned(config) };
  }
  if (opts.dir) return { dir: resolve(ctx.cwd, opts.dir), approvers: opts.approvers };
  const hasDefault = await access(DEFAULT_CONFIG).then(
    () => true,
    () => false,
  );
  if (!hasDefault) return { dir: resolve(ctx.cwd, 'records'), approvers: opts.approvers };
  const config = await loadConfig(DEFAULT_CONFIG, ctx.cwd);
  return { dir: config.records, approvers: pinned(config) };
}

/** Everything `records verify` finds in a records folder. */
interface Verdict {
  folder: FolderReport;
  trust: Trust;
  findings: CheckpointFinding[];
  summary: { records: number; genuine: number; broken: number; hostsIntact: number; hostsBroken: number; approvalsValid: number; approvalsInvalid: number; policyIgnored: number; checkpointsViolated: number };
  /** True when nothing is wrong. */
  clean: boolean;
}

async function verifyFolder(dir: string, approvers: string[], env: NodeJS.ProcessEnv): Promise<Verdict> {
  const trust = await readTrust(dir, { approvers, env });
  // In git, records are checked against the policy that signed history put in force, not the working copy.
  const folder = verifyRecordsFolder(dir, fs, trust.git ? trust.policy : undefined);
  const findings = trust.checkpoints.flatMap((c) => (c.valid && c.present && c.checkpoint ? checkCheckpoint(c.path, Object.fromEntries(Object.entries(c.checkpoint.heads).map(([h, text]) => [h, parseHead(text)])), folder.reports) : []));
  // A checkpoint that stopped counting (changed or deleted by a commit that does not count) anchors nothing: a violation in itself.
  const lost = trust.policy.anchor ? trust.checkpoints.filter((c) => !c.valid) : [];
  const hostsBroken = folder.reports.filter((r) => r.problems.some((p) => p.severity === 'error')).length;
  const summary = {
    records: folder.total,
    genuine: folder.total - folder.broken,
    broken: folder.broken,
    hostsIntact: folder.reports.length - hostsBroken,
    hostsBroken,
    approvalsValid: trust.approvals.filter((a) => a.valid).length,
    approvalsInvalid: trust.approvals.filter((a) => !a.valid).length,
    policyIgnored: trust.policy.ignored.length,
    checkpointsViolated: findings.filter((f) => f.result !== 'ok').length + lost.length,
  };
  const pinnedButLoose = approvers.length > 0 && trust.git && !trust.policy.anchor;
  // A request's own problems are the requester's to fix (respaldo request new and approve refuse them): warnings here.
  const clean = folder.errors === 0 && summary.approvalsInvalid === 0 && summary.policyIgnored === 0 && summary.checkpointsViolated === 0 && !pinnedButLoose;
  return { folder, trust, findings, summary, clean };
}

/** The last line, word for word the one tools/audit.sh prints. */
function summaryLine(s: Verdict['summary']): string {
  return `summary: ${s.records} records, ${s.genuine} genuine, ${s.broken} broken; hosts: ${s.hostsIntact} intact, ${s.hostsBroken} broken; approvals: ${s.approvalsValid} valid, ${s.approvalsInvalid} invalid; policy changes ignored: ${s.policyIgnored}; checkpoints violated: ${s.checkpointsViolated}`;
}

export async function runRecordsVerify(ctx: Context, opts: RecordsVerifyOptions): Promise<ExitCode> {
  const { dir, approvers } = await recordsDir(ctx, opts);
  await access(dir).catch(() => {
    throw usageError(`the records folder ${dir} does not exist`, 'name it: respaldo records verify DIR');
  });
  const verdict = await verifyFolder(dir, approvers, ctx.env);
  const { folder, trust, findings, summary } = verdict;
  const { policy } = trust;
  const lines = [`${dir}: ${folder.reports.length} host(s), ${folder.total} record(s): ${summary.genuine} genuine, ${summary.broken} broken`];
  if (trust.git) {
    const accepted = policy.changes.filter((c) => c.status === 'accepted').length;
    lines.push(policy.anchor ? `policy: anchored by commit ${policy.anchor.commit.slice(0, 12)} (${policy.anchor.principal}, ${policy.anchor.key}), ${accepted} change(s) accepted, ${policy.ignored.length} ignored` : 'policy: not anchored');
    for (const i of policy.ignored) lines.push(`  ignored change: ${i}`);
  }
  for (const p of [...folder.policyProblems, ...policy.problems]) lines.push(`  ${p}`);
  for (const r of folder.reports) {
    const errs = r.problems.filter((p) => p.severity === 'error');
    lines.push(`${r.host}: ${r.records.length} record(s)${r.head ? `, head seq ${r.head.seq}` : ''}: ${errs.length ? `${errs.length} problem(s)` : 'chain intact, every signature good'}`);
    for (const p of r.problems) lines.push(`  ${p.severity === 'error' ? '' : 'warning: '}${p.path}: ${p.code}: ${p.message}`);
  }
  for (const r of trust.requests) for (const p of r.problems) lines.push(`warning: request ${problemText(p)}`);
  for (const a of trust.approvals)
    lines.push(a.valid ? `approval ${a.id}: ${a.approval?.decision ?? '?'} by ${a.principal} (${a.key}) in commit ${a.commit?.slice(0, 12)}` : `approval ${a.id}: does not count: ${a.reason}`);
  for (const c of trust.checkpoints) if (!c.valid) lines.push(`checkpoint ${c.path}${c.present ? '' : ' (deleted)'}: does not count: ${c.reason}`);
  for (const f of findings) if (f.result !== 'ok') lines.push(`checkpoint ${f.path}: ${f.host}: ${f.result}: ${f.message}`);
  lines.push(summaryLine(summary));
  ctx.reporter.result(lines.join('\n'), {
    dir,
    records: folder.total,
    genuine: summary.genuine,
    broken: summary.broken,
    summary,
    policyProblems: [...folder.policyProblems, ...policy.problems],
    policy: { anchor: policy.anchor ?? null, commit: policy.commit ?? null, ignored: policy.ignored },
    hosts: folder.reports.map((r) => ({ host: r.host, records: r.records.length, head: r.head ?? null, problems: r.problems, broken: r.records.filter((s) => !s.genuine).map((s) => s.path) })),
    requests: trust.requests.map((r) => ({ id: r.id, problems: r.problems.map(problemText) })),
    approvals: trust.approvals.map((a) => ({ id: a.id, valid: a.valid, decision: a.approval?.decision ?? null, reason: a.reason ?? null, key: a.key ?? null, principal: a.principal ?? null, commit: a.commit ?? null })),
    checkpoints: findings,
  });
  return verdict.clean ? Exit.ok : Exit.partial;
}
