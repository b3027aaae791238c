/**
 * `respaldo records verify [DIR]`: every signature and every chain of a records folder,
 * with each broken link named by file and reason. Exit 0 when all is genuine, 3 otherwise.
 */
import fs from 'node:fs';
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { verifyRecordsFolder } from '../../schemas/chain.js';
import { DEFAULT_CONFIG, loadConfig } from '../config.js';
import type { Context } from '../context.js';
import { Exit, usageError, type ExitCode } from '../errors.js';

export interface RecordsVerifyOptions {
  dir: string | undefined;
  config: string | undefined;
}

async function recordsDir(ctx: Context, opts: RecordsVerifyOptions): Promise<string> {
  if (opts.dir) return resolve(ctx.cwd, opts.dir);
  if (opts.config) return (await loadConfig(opts.config, ctx.cwd)).records;
  const fallback = await access(DEFAULT_CONFIG).then(
    () => undefined,
    () => resolve(ctx.cwd, 'records'),
  );
  return fallback ?? (await loadConfig(DEFAULT_CONFIG, ctx.cwd)).records;
}

export async function runRecordsVerify(ctx: Context, opts: RecordsVerifyOptions): Promise<ExitCode> {
  const dir = await recordsDir(ctx, opts);
  await access(dir).catch(() => {
    throw usageError(`the records folder ${dir} does not exist`, 'name it: respaldo records verify DIR');
  });
  const { reports, policyProblems, total, broken, errors } = verifyRecordsFolder(dir, fs);
  const lines = [`${dir}: ${reports.length} host(s), ${total} record(s): ${total - broken} genuine, ${broken} broken`];
  for (const p of policyProblems) lines.push(`  ${p}`);
  for (const r of reports) {
    const errs = r.problems.filter((p) => p.severity === 'error');
    lines.push(`${r.host}: ${r.records.length} record(s)${r.head ? `, head seq ${r.head.seq}` : ''}: ${errs.length ? `${errs.length} problem(s)` : 'chain intact, every signature good'}`);
    for (const p of r.problems) lines.push(`  ${p.severity === 'error' ? '' : 'warning: '}${p.path}: ${p.code}: ${p.message}`);
  }
  ctx.reporter.result(lines.join('\n'), {
    dir,
    records: total,
    genuine: total - broken,
    broken,
    policyProblems,
    hosts: reports.map((r) => ({ host: r.host, records: r.records.length, head: r.head ?? null, problems: r.problems })),
  });
  return errors ? Exit.partial : Exit.ok;
}
