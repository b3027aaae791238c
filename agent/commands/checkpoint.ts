/**
 * `respaldo checkpoint`: JAA anchors the head (seq and sha256) of every host's chain in
 * `checkpoints/<time>.yaml` with a signed commit, where no agent can rewrite it. From then
 * on `respaldo records verify` and tools/audit.sh report a chain that ends before a
 * checkpoint (its newest records were deleted) or that no longer holds the record it saw.
 */
import fs from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyRecordsFolder } from '../../schemas/chain.js';
import { serializeFile, type Checkpoint } from '../../schemas/request.js';
import { commitSigned, openApprover } from '../approver.js';
import type { Context } from '../context.js';
import { Exit, RespaldoError, type ExitCode } from '../errors.js';
import { peopleRecords } from './approve.js';

export interface CheckpointOptions {
  records: string | undefined;
  key: string | undefined;
}

export async function runCheckpoint(ctx: Context, opts: CheckpointOptions): Promise<ExitCode> {
  const dir = await peopleRecords(ctx, opts.records);
  const approver = await openApprover(ctx, dir, opts.key);
  const folder = verifyRecordsFolder(dir, fs, approver.trust.policy);
  const broken = folder.reports.filter((r) => r.problems.some((p) => p.severity === 'error'));
  if (broken.length)
    throw new RespaldoError(`not anchoring broken chains: ${broken.map((r) => `${r.host} (${r.problems.find((p) => p.severity === 'error')!.path}: ${r.problems.find((p) => p.severity === 'error')!.message})`).join('; ')}`, {
      exitCode: Exit.partial,
      hint: 'see respaldo records verify; a checkpoint vouches for what it anchors',
    });
  const heads = Object.fromEntries(folder.reports.filter((r) => r.head).map((r) => [r.host, `${r.head!.seq} ${r.head!.digest}`]));
  const at = ctx.now();
  const body: Checkpoint = { schema: 'respaldo/v1', type: 'checkpoint', at: at.toISOString(), heads };
  const path = `checkpoints/${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.yaml`;
  await mkdir(join(dir, 'checkpoints'), { recursive: true });
  await writeFile(join(dir, path), serializeFile(body), { flag: 'wx' });
  const { commit, pushed } = await commitSigned(ctx, approver, [path], `checkpoint: ${Object.entries(heads).map(([h, v]) => `${h} ${v.split(' ')[0]}`).join(', ')}`);
  ctx.reporter.result(
    [`checkpoint ${path}: ${Object.keys(heads).length} host(s) anchored by ${approver.principal} (${approver.fingerprint}) in signed commit ${commit.slice(0, 12)}${pushed ? ', pushed' : ''}`, ...Object.entries(heads).map(([h, v]) => `  ${h}: seq ${v.split(' ')[0]}`)].join('\n'),
    { path, heads, commit, pushed },
  );
  return Exit.ok;
}
