/**
 * `respaldo approve REQ-YYYY-NNNN [--reject --why TEXT]`: JAA's decision on a request,
 * written as `approvals/REQ-….yaml` and committed with JAA's own SSH signature. The file
 * names the sha256 of the request it decides, so a request edited afterwards is no longer
 * approved; the decision counts only through the signature (agent/trust.ts).
 *
 * JAA decides on what JAA has read: a request that the command's own pull brings in, or
 * changes, is not signed; the command says so, and JAA reads it and runs it again.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { REQUEST_ID_RE } from '../../schemas/common.js';
import { digestOf } from '../../schemas/record.js';
import { approvalPath, problemText, requestPath, serializeFile, type Approval, type Request } from '../../schemas/request.js';
import { assertPlainPath, commitSigned, openApprover } from '../approver.js';
import type { Context } from '../context.js';
import { Exit, RespaldoError, usageError, type ExitCode } from '../errors.js';
import { capture } from '../exec.js';
import { exists } from '../fsutil.js';
import { gitEnv } from '../git.js';
import type { Trust } from '../../schemas/trust.js';

export interface ApproveOptions {
  records: string | undefined;
  id: string | undefined;
  reject: boolean;
  why: string | undefined;
  key: string | undefined;
  approvers: string[];
}

/** The records folder: --records, else ./records when it is there, else here. */
export async function peopleRecords(ctx: Context, given: string | undefined): Promise<string> {
  if (given) return resolve(ctx.cwd, given);
  return (await exists(join(ctx.cwd, 'records', 'policy'))) ? join(ctx.cwd, 'records') : ctx.cwd;
}

/** The request as the checkout's HEAD has it: its digest, or undefined. */
async function committedDigest(ctx: Context, dir: string, id: string): Promise<string | undefined> {
  return capture('git', ['-C', dir, 'show', `HEAD:./${requestPath(id)}`], { env: gitEnv(ctx.env) }).then(digestOf, () => undefined);
}

/** What the request asks, in one line, so that JAA sees what the signature decides. */
function describe(r: Request): string {
  if (r.type === 'backup') {
    const what = 'paths' in r.what ? r.what.paths.join(', ') : 'git' in r.what ? `git ${r.what.git}` : `database ${r.what.database} on ${r.what.server}`;
    return `backup of ${r.repository} (${r.kind}) on ${r.host}: ${what}${r.schedule ? `, ${'every' in r.schedule ? `every ${r.schedule.every}` : `cron "${r.schedule.cron}"`}` : ''}, asked by ${r.requester.name} (${r.requester.area})`;
  }
  return `restore of ${r.repository} on ${r.host}${r.snapshot ? ` from snapshot ${r.snapshot}` : r.at ? ` to ${r.at}` : ''}${r.paths?.length ? ` (${r.paths.join(', ')})` : ''} into ${r.destination}${r['into-production'] ? ' (INTO PRODUCTION)' : ''}, ${r.reason}, asked by ${r.requester.name} (${r.requester.area})`;
}

export async function runApprove(ctx: Context, opts: ApproveOptions): Promise<ExitCode> {
  const id = opts.id ?? '';
  if (!REQUEST_ID_RE.test(id)) throw usageError(`"${id}" is not a request number`, 'e.g. respaldo approve REQ-2026-0007 (records/requests/REQ-2026-0007.yaml)');
  if (opts.reject && !opts.why) throw usageError('a rejection says why: --why TEXT', `respaldo approve ${id} --reject --why "the folder holds no application data"`);
  const dir = await peopleRecords(ctx, opts.records);
  const path = approvalPath(id);
  await assertPlainPath(dir, path);

  // The request as JAA read it, then the newest state of the repository.
  const read = await committedDigest(ctx, dir, id);
  const approver = await openApprover(ctx, dir, opts.key, opts.approvers);
  let body: Approval | undefined;
  let request: Request | undefined;
  const decide = async (trust: Trust) => {
    const state = trust.requests.find((r) => r.path === requestPath(id));
    if (!state) throw usageError(`there is no committed ${requestPath(id)} in ${dir}`, 'check the number: ls requests/ (and git pull)');
    if (state.digest !== read)
      throw new RespaldoError(`${requestPath(id)} ${read ? 'changed' : 'arrived'} when the records were brought up to date: nothing was signed`, {
        exitCode: Exit.usage,
        hint: `read it as it is now (git show HEAD:${requestPath(id)}), then run respaldo approve ${id} again`,
      });
    if (state.problems.length && !opts.reject)
      throw new RespaldoError(`${requestPath(id)} cannot be approved as it stands:\n${state.problems.map((p) => `  ${problemText(p)}`).join('\n')}`, {
        exitCode: Exit.usage,
        hint: `reject it (respaldo approve ${id} --reject --why "…") and ask for a new request`,
      });
    request = state.request;
    body = { schema: 'respaldo/v1', type: 'approval', request: id, request_digest: state.digest, decision: opts.reject ? 'rejected' : 'approved', approver: approver.principal, at: ctx.now().toISOString(), ...(opts.why ? { why: opts.why } : {}) };
    await assertPlainPath(dir, path);
    await mkdir(join(dir, 'approvals'), { recursive: true });
    await writeFile(join(dir, path), serializeFile(body));
  };
  await decide(approver.trust);
  const counts = (trust: Trust) => {
    const state = trust.approvals.find((a) => a.id === id);
    return state?.valid ? undefined : (state?.reason ?? `${path} is not there`);
  };
  const { commit, pushed } = await commitSigned(ctx, approver, [path], `${id}: ${body!.decision} by ${approver.principal}${request ? ` (${request.type} of ${request.repository} on ${request.host})` : ''}`, counts, decide);
  ctx.reporter.result(
    [
      `${id} ${body!.decision} by ${approver.principal} (${approver.fingerprint}) in signed commit ${commit.slice(0, 12)}${pushed ? ', pushed' : ''}`,
      ...(request ? [`  ${describe(request)}`] : []),
      ...(body!.decision === 'approved' && request ? [`  the agent of ${request.host} ${request.type === 'backup' ? `backs up ${request.repository}` : `restores ${request.repository}`} on its next run`] : []),
    ].join('\n'),
    { id, decision: body!.decision, commit, pushed, principal: approver.principal, key: approver.fingerprint },
  );
  return Exit.ok;
}
