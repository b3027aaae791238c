/**
 * `respaldo verify <repository|--all> [--target primary|secondary] [--read-data |
 * --read-data-subset 5%]`: checks the stored snapshots on either target against their
 * manifests, long after their backups (bit rot, a lost or tampered file), and writes one
 * `verify` record per repository and target (agent/at-rest.ts). Without a read option the
 * folders are listed and the manifests and summaries matched against the records' digests;
 * `--read-data` reads every file's bytes too; `--read-data-subset` the next share of the
 * rotation that `respaldo run` also advances. Exit 3 when a snapshot does not match, is
 * missing, or could not be checked, or a target could not be reached.
 */
import type { RepositoryConfig } from '../../schemas/config.js';
import { atRestStateOf, readAtRestStates, verifyAtRest, type DataRead, type Role } from '../at-rest.js';
import type { Context } from '../context.js';
import { Exit, RespaldoError, usageError, withHint, type ExitCode } from '../errors.js';
import { lockAndRecover, openHost, operatorName, publishRecords } from '../host.js';
import { formatBytes } from '../../schemas/common.js';
import { openSecondary } from '../secondary-rsyncd.js';
import type { Secondary } from '../secondary.js';
import { openPrimary } from '../remote-target.js';

export interface VerifyOptions {
  config: string;
  /** The repositories to verify; empty with `all`. */
  repos: string[];
  all: boolean;
  /** One target only; default both (the secondary when the config has one). */
  target: Role | undefined;
  /** `--read-data`, or `--read-data-subset` as given ("5%", "0.05"). */
  readData: boolean;
  subset: string | undefined;
  manual: boolean;
}

/** "5%" or "0.05" (or "1/20") as a share of 1; undefined when malformed. */
export function parseShare(text: string): number | undefined {
  const t = text.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  const frac = /^(\d+)\/(\d+)$/.exec(t);
  const share = pct ? Number(pct[1]) / 100 : frac ? Number(frac[1]) / Number(frac[2]) : /^0?\.\d+$|^1(\.0+)?$/.test(t) ? Number(t) : undefined;
  return share !== undefined && share > 0 && share <= 1 ? share : undefined;
}

export async function runVerify(ctx: Context, opts: VerifyOptions): Promise<ExitCode> {
  if (opts.readData && opts.subset !== undefined) throw usageError('give --read-data or --read-data-subset, not both', 'see: respaldo verify --help');
  let read: DataRead = { data: opts.readData ? 'all' : 'none' };
  if (opts.subset !== undefined) {
    const share = parseShare(opts.subset);
    if (share === undefined) throw usageError(`--read-data-subset ${opts.subset}: give a share of the files such as 5% (or 0.05, or 1/20), above 0 and at most 100%`, 'see: respaldo verify --help');
    read = share >= 1 ? { data: 'all' } : { data: 'subset', share };
  }
  if (!opts.all && !opts.repos.length) throw usageError('name the repository to verify, or --all', 'see: respaldo verify --help');
  if (opts.all && opts.repos.length) throw usageError('name repositories or give --all, not both', 'see: respaldo verify --help');

  const host = await openHost(ctx, opts.config);
  const { config, records } = host;
  const unknown = opts.repos.filter((name) => !config.repositories.some((r) => r.name === name));
  if (unknown.length)
    throw usageError(`no repository named ${unknown.map((n) => `"${n}"`).join(', ')} in ${config.file}`, `repositories there: ${config.repositories.map((r) => r.name).join(', ')}`);
  if (opts.target === 'secondary' && !config.targets.secondary) throw usageError(`${config.file} has no secondary target (targets.secondary)`, 'verify the primary target, or add the secondary target to the config');
  const selected: RepositoryConfig[] = opts.all ? config.repositories : config.repositories.filter((r) => opts.repos.includes(r.name));
  const roles: Role[] = opts.target ? [opts.target] : config.targets.secondary ? ['primary', 'secondary'] : ['primary'];

  const started = ctx.now();
  const { lock, firstSeq } = await lockAndRecover(ctx, host, `respaldo verify${opts.manual ? ' --manual' : ''}`, started);
  const primary = openPrimary(config);
  const secondary: Secondary | undefined = roles.includes('secondary') && config.targets.secondary ? openSecondary(config.targets.secondary, config.state) : undefined;
  const lines: string[] = [];
  const rows: Record<string, unknown>[] = [];
  let bad = 0;
  try {
    const states = await readAtRestStates(records);
    const reachable = new Map<Role, string | undefined>();
    reachable.set('primary', await primary.check().then(() => undefined, (e: unknown) => withHint(e)));
    if (secondary) reachable.set('secondary', await secondary.check(ctx.signal).then(() => undefined, (e: unknown) => withHint(e)));
    for (const repo of selected) {
      for (const role of roles) {
        if (ctx.signal.aborted) break;
        const head = `${repo.name} (${repo.kind}) on the ${role} target`;
        const down = reachable.get(role);
        if (down) {
          bad++;
          lines.push(`${head}: NOT CHECKED: ${down}`);
          rows.push({ repository: repo.name, target: role, error: down });
          continue;
        }
        try {
          const outcome = await verifyAtRest({
            ctx,
            config,
            repository: repo,
            records,
            role,
            primary: primary.repository(config.host, repo.name),
            ...(secondary ? { secondary: secondary.repository(config.host, repo.name) } : {}),
            read,
            state: atRestStateOf(states, repo.name),
            reason: 'at-rest',
            trigger: opts.manual ? 'manual' : 'scheduled',
            operator: opts.manual ? operatorName(ctx.env) : undefined,
          });
          if ('skipped' in outcome) {
            lines.push(`${head}: ${outcome.skipped}`);
            rows.push({ repository: repo.name, target: role, skipped: outcome.skipped });
            continue;
          }
          const what = read.data === 'none' ? 'listed, manifests matched; no file read' : `${outcome.files} file(s), ${formatBytes(outcome.bytes)} read${outcome.subset ? ` (rotation ${outcome.subset.from.toFixed(3)} to ${outcome.subset.to.toFixed(3)})` : ''}`;
          const notChecked = outcome.unchecked.map((u) => `\n  not checked: ${u}`).join('');
          if (outcome.unchecked.length) bad++;
          if (outcome.result === 'ok') lines.push(`${head}: ok, ${outcome.snapshots} snapshot(s); ${what}; record ${outcome.seq}${notChecked}`);
          else {
            bad++;
            lines.push(`${head}: FAILED, ${outcome.problems} problem(s) in ${outcome.snapshots} snapshot(s); ${what}; record ${outcome.seq}\n  first: ${outcome.first}${notChecked}`);
            ctx.reporter.event({ type: 'warning', repository: repo.name, message: `the ${role} target's copy does not match its manifest: ${outcome.first} (record ${outcome.seq}); ${damageHint(role)}` });
          }
          rows.push({ repository: repo.name, target: role, ...outcome });
        } catch (e) {
          if (e instanceof RespaldoError) throw e;
          if (ctx.signal.aborted) break;
          bad++;
          const why = withHint(e);
          lines.push(`${head}: NOT CHECKED: ${why}`);
          rows.push({ repository: repo.name, target: role, error: why });
        }
      }
    }
    const last = (await records.head())!.seq;
    if (last >= firstSeq) await publishRecords(ctx, host, [`hosts/${config.host}`], `respaldo ${config.host}: records ${firstSeq}–${last}: verify ${selected.map((r) => r.name).join(', ')}`);
  } finally {
    await secondary?.close();
    await primary.close();
    await lock.release();
  }
  ctx.reporter.result(lines.join('\n'), { repositories: rows });
  if (ctx.signal.aborted) return Exit.interrupted;
  return bad ? Exit.partial : Exit.ok;
}

/** What to do about a copy found damaged at rest. */
export function damageHint(role: Role): string {
  return role === 'primary'
    ? "check the disk (dmesg, smartctl); respaldo restore reads every file against the manifest and borrows CSC's copy when JAA's is damaged; the next backup makes a fresh snapshot, and prune keeps the damaged one out of the snapshots it counts as good"
    : "the next respaldo run copies the snapshot to CSC again, from the primary's copy once it is re-read against the manifest; check CSC's disk";
}
