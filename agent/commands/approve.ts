/**
 * `respaldo approve REQ-YYYY-NNNN [--reject --why TEXT]`: JAA's decision on a request,
 * written as `approvals/REQ-….yaml` and committed with JAA's own SSH signature. The file
 * names the sha256 of the request it decides, so a request edited afterwards is no longer
 * approved; the decision counts only through the signature (agent/trust.ts).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { approvalPath, requestPath, serializeFile, type Approval } from '../../schemas/request.js';
import { REQUEST_ID_RE } from '../../schemas/common.js';
import { commitSigned, openApprover } from '../approver.js';
import type { Context } from '../context.js';
import { Exit, RespaldoError, usageError, type ExitCode } from '../errors.js';
import { exists } from '../fsutil.js';
import { problemText } from '../../schemas/request.js';

export interface ApproveOptions {
  records: string | undefined;
  id: string | undefined;
  reject: boolean;
  why: string | undefined;
  key: string | undefined;
}

/** The records folder: --records, else ./records when it is there, else here. */
export async function peopleRecords(ctx: Context, given: string | undefined): Promise<string> {
  if (given) return resolve(ctx.cwd, given);
  return (await exists(join(ctx.cwd, 'records', 'policy'))) ? join(ctx.cwd, 'records') : ctx.cwd;
}

export async function runApprove(ctx: Context, opts: ApproveOptions): Promise<ExitCode> {
  const id = opts.id ?? '';
  if (!REQUEST_ID_RE.test(id)) throw usageError(`"${id}" is not a request number`, 'e.g. respaldo approve REQ-2026-0007 (records/requests/REQ-2026-0007.yaml)');
  if (opts.reject && !opts.why) throw usageError('a rejection says why: --why TEXT', `respaldo approve ${id} --reject --why "the folder holds no application data"`);
  const dir = await peopleRecords(ctx, opts.records);
  const approver = await openApprover(ctx, dir, opts.key);
  const state = approver.trust.requests.find((r) => r.id === id);
  if (!state) throw usageError(`there is no committed ${requestPath(id)} in ${dir}`, 'pull the records (git pull) or check the number: ls requests/');
  if (state.problems.length && !opts.reject)
    throw new RespaldoError(`${requestPath(id)} cannot be approved as it stands:\n${state.problems.map((p) => `  ${problemText(p)}`).join('\n')}`, {
      exitCode: Exit.usage,
      hint: `reject it (respaldo approve ${id} --reject --why "…") and ask for a new request`,
    });
  const body: Approval = {
    schema: 'respaldo/v1',
    type: 'approval',
    request: id,
    request_digest: state.digest,
    decision: opts.reject ? 'rejected' : 'approved',
    approver: approver.principal,
    at: ctx.now().toISOString(),
    ...(opts.why ? { why: opts.why } : {}),
  };
  const path = approvalPath(id);
  await mkdir(join(dir, 'approvals'), { recursive: true });
  await writeFile(join(dir, path), serializeFile(body));
  const r = state.request;
  const { commit, pushed } = await commitSigned(ctx, approver, [path], `${id}: ${body.decision} by ${approver.principal}${r ? ` (${r.type} of ${r.repository} on ${r.host})` : ''}`);
  ctx.reporter.result(
    [
      `${id} ${body.decision} by ${approver.principal} (${approver.fingerprint}) in signed commit ${commit.slice(0, 12)}${pushed ? ', pushed' : ''}`,
      ...(body.decision === 'approved' && r ? [`  the agent of ${r.host} ${r.type === 'backup' ? `backs up ${r.repository}` : `restores ${r.repository}`} on its next run`] : []),
    ].join('\n'),
    { id, decision: body.decision, commit, pushed, principal: approver.principal, key: approver.fingerprint },
  );
  return Exit.ok;
}
