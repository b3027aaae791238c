/**
 * `respaldo prune [--repo A,B] [--apply]`: applies each repository's retention rules on every
 * target. By default a dry run: it prints what it would keep (and why) and what it would
 * delete, and touches nothing. With `--apply` it takes the run lock, deletes, and writes one
 * `prune` record per repository and target, then commits and pushes the records like `run`.
 * The rules are restic's (retention.ts); the safety rules over them are prune.ts's.
 */
import { compareSnapshotIds } from '../../schemas/common.js';
import type { Retention, RepositoryConfig } from '../../schemas/config.js';
import type { Config } from '../config.js';
import { loadConfig } from '../config.js';
import type { Context } from '../context.js';
import { Exit, messageOf, RespaldoError, usageError, withHint, type ExitCode } from '../errors.js';
import { copyStateOf, pendingCopies, readCopyStates } from '../copy.js';
import { readHistory } from '../history.js';
import { applyMandate, lockAndRecover, openHost, operatorName, publishRecords, type Host } from '../host.js';
import { applyPrune, planPrune, pruneRecordBody, readVerifications, verificationKey, type PruneOutcome, type PrunePlan, type PruneStore, type PruneTarget } from '../prune.js';
import { RecordStore } from '../records.js';
import { describeRules, snapshotTime } from '../../schemas/retention.js';
import { openSecondary } from '../secondary-rsyncd.js';
import { openPrimary } from '../remote-target.js';
import { hostZone } from '../../schemas/zoned.js';
import { formatLocal } from './status.js';

export interface PruneOptions {
  config: string;
  /** Prune these repositories only; default all. */
  repos: string[];
  /** Delete; without it, only say what would be deleted. */
  apply: boolean;
  /** A person started this prune: the record names them. */
  manual: boolean;
}

/** A target to prune: how to check it is there, and each repository's store on it. */
interface TargetHandle {
  role: PruneTarget['role'];
  check(): Promise<void>;
  store(repository: string): PruneStore;
  /** Ends a shared SSH connection. */
  close?(): Promise<void>;
}

/** The host's targets: JAA's copy, and CSC's when the config has one, pruned by the same rules. */
function targetsOf(config: Config): TargetHandle[] {
  const primary = openPrimary(config);
  const handles: TargetHandle[] = [{ role: 'primary', check: () => primary.check(), store: (name) => primary.repository(config.host, name), close: () => primary.close() }];
  if (config.targets.secondary) {
    const secondary = openSecondary(config.targets.secondary, config.state);
    handles.push({ role: 'secondary', check: () => secondary.check(), store: (name) => secondary.repository(config.host, name), close: () => secondary.close() });
  }
  return handles;
}

/** What one repository on one target came to, for the output. */
interface Outcome {
  repository: string;
  kind: RepositoryConfig['kind'];
  target: PruneTarget['role'] | null;
  rules: Retention | null;
  plan?: PrunePlan;
  applied?: PruneOutcome;
  record?: number;
  /** Nothing to do, and why: no rules, no snapshots. */
  skipped?: string;
  error?: string;
}

export async function runPrune(ctx: Context, opts: PruneOptions): Promise<ExitCode> {
  // A dry run reads only: it needs neither the key nor the lock.
  const host: Host | undefined = opts.apply ? await openHost(ctx, opts.config) : undefined;
  const config = host?.config ?? (await loadConfig(opts.config, ctx.cwd));
  const records = host?.records ?? new RecordStore(config.records, config.host, undefined, ctx.now);
  if (!host) await applyMandate(ctx, config, records);
  const unknown = opts.repos.filter((name) => !config.repositories.some((r) => r.name === name));
  if (unknown.length)
    throw usageError(`no repository named ${unknown.map((n) => `"${n}"`).join(', ')} in ${config.file}`, `repositories there: ${config.repositories.map((r) => r.name).join(', ')}`);
  const selected = opts.repos.length ? config.repositories.filter((r) => opts.repos.includes(r.name)) : config.repositories;
  const zone = hostZone(config.timezone);
  const runBy = { trigger: opts.manual ? ('manual' as const) : ('scheduled' as const), operator: opts.manual ? operatorName(ctx.env) : undefined };

  const started = ctx.now();
  const locked = host ? await lockAndRecover(ctx, host, `respaldo prune --apply${opts.manual ? ' --manual' : ''}`, started) : undefined;
  const outcomes: Outcome[] = [];
  const targets = targetsOf(config);
  let copyStates: Awaited<ReturnType<typeof readCopyStates>> | undefined;
  try {
    const history = await readHistory(records, selected.map((r) => r.name));
    const verifications = await readVerifications(records);
    const unreachable = new Map<string, string>();
    for (const t of targets)
      await t.check().catch((e: unknown) => unreachable.set(t.role, withHint(e)));

    for (const repo of selected) {
      if (ctx.signal.aborted) break;
      const rules = repo.retention ?? config.retention;
      if (!rules) {
        outcomes.push({ repository: repo.name, kind: repo.kind, target: null, rules: null, skipped: 'no retention rules: every snapshot is kept' });
        continue;
      }
      for (const t of targets) {
        const outcome: Outcome = { repository: repo.name, kind: repo.kind, target: t.role, rules };
        outcomes.push(outcome);
        const down = unreachable.get(t.role);
        if (down) {
          outcome.error = `nothing pruned: ${down}`;
          continue;
        }
        const store = t.store(repo.name);
        try {
          if (opts.apply) {
            const leftovers = await store.removeLeftovers();
            if (leftovers.length) ctx.reporter.event({ type: 'info', message: `${repo.name}: removed what an interrupted ${t.role === 'primary' ? 'prune' : 'prune or copy'} left of snapshot(s) ${leftovers.join(', ')} on the ${t.role} target` });
          }
          // A snapshot that has not reached CSC yet is JAA's only copy of it: it stays until it has.
          const pinned = new Map<string, string>();
          if (t.role === 'primary' && config.targets.secondary)
            for (const id of pendingCopies(copyStateOf((copyStates ??= await readCopyStates(records)), repo.name), await store.snapshots())) pinned.set(id, 'not copied to CSC yet');
          const facts = { failing: history.get(repo.name)?.failing, damaged: verifications.get(verificationKey(repo.name, t.role)) ?? new Map<string, number>(), pinned };
          const plan = await planPrune(repo, rules, store, facts, zone, ctx.now());
          outcome.plan = plan;
          if (!plan.keep.length) {
            outcome.skipped = 'no snapshots';
            continue;
          }
          if (!opts.apply) continue;
          const applied = await applyPrune(plan, store);
          outcome.applied = applied;
          if (applied.error) outcome.error = `stopped at an error: ${messageOf(applied.error)}; the snapshots not deleted are intact, run again`;
          outcome.record = (await records.append('prune', pruneRecordBody(repo, t.role, rules, plan, applied, runBy))).seq;
        } catch (e) {
          // A record that cannot be written stops the command (exit 4): what was deleted must be recorded.
          if (e instanceof RespaldoError) throw e;
          outcome.error = messageOf(e);
        }
      }
    }

    if (locked) {
      const last = (await records.head())!.seq;
      if (last >= locked.firstSeq) {
        const names = [...new Set(outcomes.filter((o) => o.record).map((o) => o.repository))];
        await publishRecords(ctx, host!, [`hosts/${config.host}`], `respaldo ${config.host}: records ${locked.firstSeq}–${last}${names.length ? `: prune ${names.join(', ')}` : ''}`);
      }
    }
  } finally {
    for (const t of targets) await t.close?.();
    await locked?.lock.release();
  }

  // Under cron only the warnings are mailed: a prune held back, a snapshot that is not good, an error.
  for (const o of opts.apply ? outcomes : []) {
    if (o.plan?.held) ctx.reporter.event({ type: 'warning', repository: o.repository, message: `prune held on the ${o.target} target: ${o.plan.held}` });
    for (const note of o.plan?.notes ?? []) ctx.reporter.event({ type: 'warning', repository: o.repository, message: note });
    if (o.error) ctx.reporter.event({ type: 'warning', repository: o.repository, message: `prune on the ${o.target} target: ${o.error}` });
  }
  const text = outcomes.map((o) => describe(o, opts.apply, zone)).join('\n');
  if (opts.apply) ctx.reporter.event({ type: 'info', message: text });
  else ctx.reporter.result(`${text}\ndry run: nothing was deleted; "respaldo prune --apply" deletes what is marked "delete" (times in ${zone})`, { apply: false, timezone: zone, repositories: outcomes.map(data) });
  if (ctx.signal.aborted) return Exit.interrupted;
  return outcomes.some((o) => o.error) ? Exit.partial : Exit.ok;
}

/** One repository on one target, as text: a header, then a line per snapshot. */
function describe(o: Outcome, apply: boolean, zone: string): string {
  const head = `${o.repository} (${o.kind})${o.target ? ` on the ${o.target} target` : ''}`;
  if (!o.rules || !o.plan) return `${head}: ${o.skipped ?? o.error}`;
  if (o.skipped) return `${head}: ${o.skipped}`;
  const { plan } = o;
  const lines = [`${head}, rules: ${describeRules(o.rules)}`];
  if (plan.held) lines.push(`  HELD: ${plan.held}`);
  const deleted = new Set(o.applied?.deleted ?? []);
  const rows = [...plan.keep.map((k) => ({ id: k.id, action: 'keep', why: k.reasons.join(', ') })), ...plan.remove.map((id) => ({ id, action: apply ? (deleted.has(id) ? 'deleted' : 'kept') : 'delete', why: apply && !deleted.has(id) ? 'not deleted: the prune stopped at an error' : '' }))];
  rows.sort((a, b) => compareSnapshotIds(a.id, b.id));
  for (const r of rows) lines.push(`  ${r.action.padEnd(7)} ${r.id.padEnd(18)} ${formatLocal(snapshotTime(r.id), zone)}  ${r.why}`.trimEnd());
  const archive = plan.archive;
  if (archive?.neededFrom)
    lines.push(`  archive (${archive.folder}): a replay from the oldest kept snapshot starts at ${archive.neededFrom}; ${archive.remove.length} older file(s) ${apply ? 'deleted' : 'to delete'}${apply && o.applied && o.applied.archiveDeleted !== archive.remove.length ? ` (${o.applied.archiveDeleted} deleted before the error)` : ''}`);
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  if (apply && o.applied) lines.push(`  deleted ${count(o.applied.deleted.length, 'snapshot')} and ${count(o.applied.archiveDeleted, 'archive file')}, kept ${count(plan.keep.length, 'snapshot')}${o.record ? `; record ${o.record}` : ''}`);
  else if (!apply) lines.push(`  would delete ${count(plan.remove.length, 'snapshot')} and ${count(archive?.remove.length ?? 0, 'archive file')}, keep ${count(plan.keep.length, 'snapshot')}`);
  for (const note of plan.notes) lines.push(`  note: ${note}`);
  if (o.error) lines.push(`  ERROR: ${o.error}`);
  return lines.join('\n');
}

/** One repository on one target, for --json. */
function data(o: Outcome): Record<string, unknown> {
  return {
    repository: o.repository,
    kind: o.kind,
    target: o.target,
    rules: o.rules,
    skipped: o.skipped ?? null,
    error: o.error ?? null,
    held: o.plan?.held ?? null,
    kept: o.plan?.keep ?? [],
    delete: o.plan?.remove ?? [],
    archive: o.plan?.archive ? { folder: o.plan.archive.folder, neededFrom: o.plan.archive.neededFrom ?? null, delete: o.plan.archive.remove } : null,
    notes: o.plan?.notes ?? [],
  };
}
