/** `respaldo run`: back up what is due (or what is named), verify it, record it, commit the records. */
import type { RepositoryConfig } from '../../schemas/config.js';
import { backupRepository, recordSnapshot } from '../backup.js';
import { copyRepository, copyStateOf, readCopyStates } from '../copy.js';
import type { Context } from '../context.js';
import { compareSnapshotIds } from '../../schemas/common.js';
import { Exit, messageOf, RespaldoError, usageError, withHint, type ExitCode } from '../errors.js';
import { HashPool } from '../hashing.js';
import { readHistory, type RepositoryHistory } from '../history.js';
import { lockAndRecover, openHost, operatorName, publishRecords, pullRequests, type Host } from '../host.js';
import { problemText, requestPath } from '../../schemas/request.js';
import { runRestore } from './restore.js';
import { answeredRestores } from '../requests.js';
import { pathRedactor } from '../redact.js';
import { dueState, planFor } from '../../schemas/schedule.js';
import { openSecondary } from '../secondary-rsyncd.js';
import type { PrimaryTarget } from '../target.js';
import { openPrimary } from '../remote-target.js';
import { atRestStateOf, readAtRestStates, rereadPeriod, scheduledRead, verifyAtRest, type Role } from '../at-rest.js';
import type { Secondary } from '../secondary.js';
import { snapshotTime } from '../../schemas/retention.js';
import { damageHint } from './verify.js';

export interface RunOptions {
  config: string;
  /** Back up these repositories now, due or not. */
  repos: string[];
  /** Back up every repository now, due or not. */
  all: boolean;
  /** A person started this run (clause 4.3.1 logs manual backups). */
  manual: boolean;
  verify: 'changed' | 'full' | undefined;
  progress: boolean;
}

/**
 * A snapshot published by a run that stopped before recording it is complete (it was
 * verified before the rename); record it now, marked `recovered`. A repository whose
 * folder cannot be read is left to its backup, which records the failure. True when it
 * recorded any.
 */
async function recordUnrecorded(host: Host, target: PrimaryTarget, repos: RepositoryConfig[], history: Map<string, RepositoryHistory>, ctx: Context): Promise<boolean> {
  let adopted = false;
  for (const repo of repos) {
    const store = target.repository(host.config.host, repo.name);
    try {
      const newest = (await store.snapshots()).at(-1);
      const recorded = history.get(repo.name)?.lastGood?.snapshot;
      if (newest && (!recorded || compareSnapshotIds(newest, recorded) > 0)) {
        const appended = await recordSnapshot(host.records, store, newest, true, pathRedactor(host.config, repo), repo.request);
        ctx.reporter.event({ type: 'info', message: `${repo.name}: recorded snapshot ${newest}, which an interrupted run completed but did not record (record ${appended.seq})` });
        adopted = true;
      }
    } catch (e) {
      if (e instanceof RespaldoError) throw e;
      ctx.reporter.event({ type: 'warning', repository: repo.name, message: `cannot check ${store.base} for a snapshot an interrupted run left unrecorded: ${messageOf(e)}` });
    }
  }
  return adopted;
}

export async function runRun(ctx: Context, opts: RunOptions): Promise<ExitCode> {
  const host = await openHost(ctx, opts.config, { pullFirst: true });
  const code = await backUp(ctx, opts, host);
  if (ctx.signal.aborted || opts.repos.length) return code;
  const restored = await carryOutRestores(ctx, opts.config, host);
  return code === Exit.ok ? restored : code;
}

/**
 * Approved restore requests for this host, each carried out once by the agent itself
 * (never into production unless the request says so: agent/requests.ts checked that). A
 * request that cannot be carried out gets a failure record that names it, so that it is
 * not tried again every hour; JAA answers with a new request.
 */
async function carryOutRestores(ctx: Context, configPath: string, host: Host): Promise<ExitCode> {
  let code: ExitCode = Exit.ok;
  for (const r of host.mandate?.restores ?? []) {
    if (ctx.signal.aborted) break;
    const repo = host.config.repositories.find((c) => c.name === r.repository)!;
    const intoProduction = r['into-production'] === true;
    try {
      const done = await runRestore(ctx, {
        config: configPath,
        repo: r.repository,
        snapshot: r.snapshot,
        at: r.at,
        paths: r.paths ?? [],
        to: r.destination,
        // Files restored into production land over the original folders; a database's data folder is set aside first.
        force: intoProduction && !(repo.kind === 'database' && repo.pitr && r.at),
        listWindow: false,
        reason: r.reason,
        why: r.reason_detail ?? `request ${r.id}`,
        request: r.id,
        intoProduction: intoProduction && repo.kind === 'database' && repo.pitr === true && r.at !== undefined,
        confirm: r.repository,
        trigger: 'scheduled',
      });
      if (done !== Exit.ok) code = Exit.partial;
    } catch (e) {
      if (ctx.signal.aborted) break;
      code = Exit.partial;
      const why = withHint(e);
      // Another run holds the lock: the restore waits for the next run.
      if (e instanceof RespaldoError && e.exitCode === Exit.locked) {
        ctx.reporter.event({ type: 'warning', repository: r.repository, message: `the approved restore request ${r.id} waits for the next run: ${why}` });
        continue;
      }
      ctx.reporter.event({ type: 'warning', repository: r.repository, message: `the approved restore request ${r.id} could not be carried out: ${why}` });
      // A restore that began wrote its own restore record (result: failed); one that could not begin is recorded here.
      if ((await answeredRestores(host.records)).has(r.id)) continue;
      await recordRequestFailure(ctx, host, { repository: repo.name, kind: repo.kind, request: r.id, cause: `restore request ${r.id} (${requestPath(r.id)}) could not be carried out: ${messageOf(e)}`, hint: e instanceof RespaldoError && e.hint ? e.hint : 'correct the request with a new one, approved again' });
    }
  }
  return code;
}

/** A failure record about a request, under the run lock, published at once. */
async function recordRequestFailure(ctx: Context, host: Host, f: { repository: string; kind: RepositoryConfig['kind']; request: string; cause: string; hint: string }): Promise<void> {
  const { lock } = await lockAndRecover(ctx, host, 'respaldo run', ctx.now());
  try {
    const appended = await host.records.append('failure', { repository: f.repository, kind: f.kind, request: f.request, trigger: 'scheduled', stage: 'restore', cause: f.cause, hint: f.hint });
    await publishRecords(ctx, host, [`hosts/${host.config.host}`], `respaldo ${host.config.host}: record ${appended.seq}: ${f.request} failed`);
  } finally {
    await lock.release();
  }
}

/**
 * Approved requests that cannot be met as they stand (a folder the host does not allow, a
 * server it does not name): a warning on every run, and a failure record naming the file
 * and field the first time each problem is seen.
 */
async function reportRequestProblems(ctx: Context, host: Host): Promise<number> {
  const problems = host.mandate?.problems ?? [];
  if (!problems.length) return 0;
  const seen = new Set<string>();
  for (const file of await host.records.list()) {
    if (file.type !== 'failure') continue;
    const record = await host.records.read(file);
    if (record?.type === 'failure' && record.stage === 'request') seen.add(record.cause);
  }
  for (const p of problems) {
    const cause = problemText(p);
    ctx.reporter.event({ type: 'warning', repository: p.repository, message: p.path.startsWith('approvals/') ? `the decision on ${p.request} does not count: ${cause}` : `approved request ${p.request} cannot be met: ${cause}` });
    if (seen.has(cause)) continue;
    seen.add(cause);
    const restore = host.mandate?.restoreIds.has(p.request);
    const hint = p.path.startsWith('approvals/')
      ? 'JAA decides again with a commit signed by an approver key (respaldo approve), after withdrawing what does not count if need be'
      : restore
        ? `the host's sysadmin can allow it in ${host.config.file} (requests.restore-to), or the developer can ask anew; the restore waits until then`
        : `the host's sysadmin can allow it in ${host.config.file} (requests:), or the developer can ask anew; nothing of ${p.repository} is backed up under this request until then`;
    await host.records.append('failure', { repository: p.repository, request: p.request, trigger: 'scheduled', stage: 'request', cause, hint });
  }
  return problems.length;
}

async function backUp(ctx: Context, opts: RunOptions, host: Host): Promise<ExitCode> {
  const { config, records } = host;
  const started = ctx.now();
  const command = `respaldo run${opts.manual ? ' --manual' : ''}`;
  const { lock, firstSeq } = await lockAndRecover(ctx, host, command, started);
  try {
    // Each run pulls the records first: a new approval takes effect on the next run.
    await pullRequests(ctx, host);
    const unknown = opts.repos.filter((name) => !config.repositories.some((r) => r.name === name));
    if (unknown.length)
      throw usageError(`no repository named ${unknown.map((n) => `"${n}"`).join(', ')} in ${config.file}`, `repositories there: ${config.repositories.map((r) => r.name).join(', ')}`);
  } catch (e) {
    await lock.release();
    throw e;
  }
  const pool = new HashPool();
  let secondary: Secondary | undefined;
  let target: PrimaryTarget | undefined;
  try {
    const trigger = opts.manual ? ('manual' as const) : ('scheduled' as const);
    const operator = opts.manual ? operatorName(ctx.env) : undefined;

    target = openPrimary(config);
    secondary = config.targets.secondary ? openSecondary(config.targets.secondary, config.state) : undefined;
    const names = config.repositories.map((r) => r.name);
    let history = await readHistory(records, names);
    if (await recordUnrecorded(host, target, config.repositories, history, ctx)) history = await readHistory(records, names);

    let selected: RepositoryConfig[];
    if (opts.all) selected = config.repositories;
    else if (opts.repos.length) selected = config.repositories.filter((r) => opts.repos.includes(r.name));
    else {
      const now = ctx.now();
      selected = config.repositories.filter((r) => {
        const due = dueState(planFor(r.kind, r.schedule, config.timezone), history.get(r.name)?.lastGood?.started, now);
        if (due.state === 'ok') ctx.reporter.event({ type: 'skipped', repository: r.name, reason: `not due until ${due.nextDue!.toISOString()}` });
        return due.state !== 'ok';
      });
    }

    let failed = await reportRequestProblems(ctx, host);
    const done: string[] = [];
    const backedUp = new Set<string>();
    for (const repo of selected) {
      if (ctx.signal.aborted) break;
      const outcome = await backupRepository({
        ctx,
        config,
        repository: repo,
        target,
        records,
        pool,
        trigger,
        operator,
        scope: opts.verify,
        progress: opts.progress,
        lastGood: history.get(repo.name)?.lastGood,
      });
      if (outcome.ok) {
        done.push(repo.name);
        backedUp.add(repo.name);
      } else {
        failed++;
        done.push(`${repo.name} (failed)`);
      }
    }

    // The second copy: every repository's snapshots that have not reached CSC yet, whether
    // or not it was due, so that copies queued while CSC was unreachable go out on the
    // first run after it is back.
    if (secondary) {
      // The connection to CSC is opened while the records are read (its failure is each repository's to record).
      secondary.check(ctx.signal).catch(() => {});
      const states = await readCopyStates(records);
      for (const repo of config.repositories) {
        if (ctx.signal.aborted) break;
        const outcome = await copyRepository({
          ctx,
          config,
          repository: repo,
          primary: target.repository(config.host, repo.name),
          secondary,
          records,
          pool,
          trigger,
          operator,
          verifyNewest: backedUp.has(repo.name),
          redact: pathRedactor(config, repo),
          state: copyStateOf(states, repo.name),
        });
        if (!outcome.ok) {
          failed++;
          done.push(`${repo.name} (copy failed)`);
        } else if (outcome.copied.length) done.push(`${repo.name} copied (${outcome.copied.length})`);
      }
    }
    // Verify at rest: each day, the share of every target's stored files that keeps each
    // file read within verify.reread-within.
    const checked = await verifyDue(ctx, host, target, secondary);
    failed += checked.failed;
    done.push(...checked.done);

    const last = (await records.head())!.seq;
    const message = last >= firstSeq ? `respaldo ${config.host}: records ${firstSeq}–${last}${done.length ? `: ${done.join(', ')}` : ''}` : `respaldo ${config.host}: records`;
    await publishRecords(ctx, host, [`hosts/${config.host}`], message);
    if (ctx.signal.aborted) return Exit.interrupted;
    return failed ? Exit.partial : Exit.ok;
  } finally {
    await secondary?.close();
    await target?.close();
    await pool.close();
    await lock.release();
  }
}

/**
 * The checks at rest that are due (agent/at-rest.ts), on the primary and on CSC's target
 * when it can be reached (when it cannot, its share waits and grows). A copy that does not
 * match is a failure of the run (exit 3), recorded by its `verify` record; a target that
 * cannot be checked is a warning, and its check stays due.
 */
async function verifyDue(ctx: Context, host: Host, target: PrimaryTarget, secondary: Secondary | undefined): Promise<{ failed: number; done: string[] }> {
  const { config, records } = host;
  let failed = 0;
  const done: string[] = [];
  const repos = config.repositories.filter((r) => rereadPeriod(config, r) !== undefined);
  if (!repos.length) return { failed, done };
  const states = await readAtRestStates(records);
  const cscUp = secondary ? await secondary.check(ctx.signal).then(() => true, () => false) : false;
  for (const repo of repos) {
    const period = rereadPeriod(config, repo)!;
    const primary = target.repository(config.host, repo.name);
    const roles: Role[] = cscUp ? ['primary', 'secondary'] : ['primary'];
    for (const role of roles) {
      if (ctx.signal.aborted) return { failed, done };
      const store = role === 'secondary' ? secondary!.repository(config.host, repo.name) : undefined;
      try {
        const state = atRestStateOf(states, repo.name);
        const lastRead = state.lastRead.get(role);
        // The oldest snapshot matters only before the first daily share: CSC is asked for its list then only.
        const oldest = lastRead ? undefined : (store ? await store.snapshots(ctx.signal) : await primary.snapshots())[0];
        const read = scheduledRead(period, lastRead, oldest ? snapshotTime(oldest) : undefined, ctx.now());
        if (!read) continue;
        const outcome = await verifyAtRest({ ctx, config, repository: repo, records, role, primary, ...(store ? { secondary: store } : {}), read, state, reason: 'rotation', trigger: 'scheduled', operator: undefined });
        if ('skipped' in outcome) continue;
        for (const note of outcome.unchecked) ctx.reporter.event({ type: 'warning', repository: repo.name, message: `the check at rest of the ${role} target could not check ${note}` });
        if (outcome.result === 'failed') {
          failed++;
          done.push(`${repo.name} verify at rest on the ${role} target FAILED`);
          ctx.reporter.event({ type: 'warning', repository: repo.name, message: `the ${role} target's copy does not match its manifest: ${outcome.first} (verify record ${outcome.seq}); ${damageHint(role)}` });
        } else done.push(`${repo.name} verified at rest on the ${role} target`);
      } catch (e) {
        if (e instanceof RespaldoError) throw e;
        if (ctx.signal.aborted) return { failed, done };
        ctx.reporter.event({ type: 'warning', repository: repo.name, message: `the check at rest of the ${role} target could not run: ${withHint(e)}; it is tried again on the next run` });
      }
    }
  }
  return { failed, done };
}
