/**
 * `respaldo checkpoint`: JAA anchors the head (seq and sha256) of every host's chain in
 * `checkpoints/<time>.yaml` with a signed commit, where no agent can rewrite it. From then
 * on `respaldo records verify` and tools/audit.sh report a chain that ends before a
 * checkpoint (its newest records were deleted) or that no longer holds the record it saw.
 */
import fs from 'node:fs';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyRecordsFolder } from '../../schemas/chain.js';
import { serializeFile, type Checkpoint } from '../../schemas/request.js';
import { assertPlainPath, commitSigned, openApprover } from '../approver.js';
import type { Context } from '../context.js';
import { Exit, RespaldoError, usageError, type ExitCode } from '../errors.js';
import type { Trust } from '../../schemas/trust.js';
import { peopleRecords } from './approve.js';

export interface CheckpointOptions {
  records: string | undefined;
  key: string | undefined;
  approvers: string[];
}

export async function runCheckpoint(ctx: Context, opts: CheckpointOptions): Promise<ExitCode> {
  const dir = await peopleRecords(ctx, opts.records);
  const approver = await openApprover(ctx, dir, opts.key, opts.approvers);
  let path = '';
  let heads: Record<string, string> = {};
  const write = async (trust: Trust) => {
    const folder = verifyRecordsFolder(dir, fs, trust.policy);
    const broken = folder.reports.filter((r) => r.problems.some((p) => p.severity === 'error'));
    if (broken.length)
      throw new RespaldoError(`not anchoring broken chains: ${broken.map((r) => ((p) => `${r.host} (${p.path}: ${p.message})`)(r.problems.find((p) => p.severity === 'error')!)).join('; ')}`, {
        exitCode: Exit.partial,
        hint: 'see respaldo records verify; a checkpoint vouches for what it anchors',
      });
    heads = Object.fromEntries(folder.reports.filter((r) => r.head).map((r) => [r.host, `${r.head!.seq} ${r.head!.digest}`]));
    const at = ctx.now();
    const body: Checkpoint = { schema: 'respaldo/v1', type: 'checkpoint', at: at.toISOString(), heads };
    path = `checkpoints/${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.yaml`;
    await assertPlainPath(dir, path);
    await mkdir(join(dir, 'checkpoints'), { recursive: true });
    await writeFile(join(dir, path), serializeFile(body), { flag: 'wx' }).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'EEXIST' ? usageError(`${join(dir, path)} already exists`, 'make the next checkpoint in a second') : e;
    });
  };
  await write(approver.trust);
  const counts = (trust: Trust) => {
    const state = trust.checkpoints.find((c) => c.path === path);
    return state?.valid ? undefined : (state?.reason ?? `${path} is not there`);
  };
  const { commit, pushed } = await commitSigned(ctx, approver, [path], `checkpoint: ${Object.entries(heads).map(([h, v]) => `${h} ${v.split(' ')[0]}`).join(', ')}`, counts, async (trust) => {
    await unlink(join(dir, path));
    await write(trust);
  });
  ctx.reporter.result(
    [`checkpoint ${path}: ${Object.keys(heads).length} host(s) anchored by ${approver.principal} (${approver.fingerprint}) in signed commit ${commit.slice(0, 12)}${pushed ? ', pushed' : ''}`, ...Object.entries(heads).map(([h, v]) => `  ${h}: seq ${v.split(' ')[0]}`)].join('\n'),
    { path, heads, commit, pushed },
  );
  return Exit.ok;
}
