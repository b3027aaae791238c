/** `respaldo status`: each repository's last good backup, next due time and state. */
import { loadConfig } from '../config.js';
import { atRestStateOf, readAtRestStates } from '../at-rest.js';
import { copyStateOf, pendingCopies, readCopyStates } from '../copy.js';
import type { Context } from '../context.js';
import { Exit, type ExitCode } from '../errors.js';
import { RecordsGit } from '../git.js';
import { readHistory } from '../history.js';
import { RecordStore } from '../records.js';
import { dueState, planFor } from '../../schemas/schedule.js';
import { openPrimary } from '../remote-target.js';
import { problemText } from '../../schemas/request.js';
import { applyMandate } from '../host.js';
import { hostZone } from '../../schemas/zoned.js';

export interface StatusOptions {
  config: string;
}

/** "2026-11-22 03:15" in the host's time zone. */
export function formatLocal(date: Date, timeZone: string | undefined): string {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(date);
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}`;
}

const STATE_TEXT = { ok: 'ok', due: 'due', overdue: 'OVERDUE', never: 'never backed up' } as const;

export async function runStatus(ctx: Context, opts: StatusOptions): Promise<ExitCode> {
  const config = await loadConfig(opts.config, ctx.cwd);
  const records = new RecordStore(config.records, config.host, undefined, ctx.now);
  const mandate = await applyMandate(ctx, config, records);
  const git = await RecordsGit.open(config.records, config.host, ctx.env);
  const head = await records.head();
  const history = await readHistory(records, config.repositories.map((r) => r.name));
  const unpushed = await git.unpushed();
  const now = ctx.now();
  const zone = hostZone(config.timezone);

  // Copies that have not reached CSC yet, from the records and the primary's snapshots.
  const primary = openPrimary(config);
  const pending = new Map<string, { count: number; since: Date | undefined; lost: number; unreadable: boolean }>();
  if (config.targets.secondary) {
    const states = await readCopyStates(records);
    for (const repo of config.repositories) {
      const state = copyStateOf(states, repo.name);
      const onPrimary = await primary.repository(config.host, repo.name).snapshots().then(
        (ids) => ids,
        () => undefined,
      );
      const ids = pendingCopies(state, onPrimary ?? []);
      // Recorded, never copied, and gone from the primary: CSC will never get it.
      const lost = onPrimary ? [...state.recorded.keys()].filter((id) => !state.copied.has(id) && !onPrimary.includes(id)).length : 0;
      pending.set(repo.name, { count: ids.length, since: ids[0] ? state.recorded.get(ids[0]) : undefined, lost, unreadable: !onPrimary });
    }
    await primary.close();
  }
  const age = (since: Date) => {
    const hours = Math.max(0, (now.getTime() - since.getTime()) / 3_600_000);
    return hours < 1 ? `${Math.round(hours * 60)} min` : hours < 48 ? `${Math.round(hours)} h` : `${Math.round(hours / 24)} days`;
  };

  const copyCell = (p: { count: number; since: Date | undefined; lost: number; unreadable: boolean }, backedUp: boolean) =>
    p.unreadable
      ? 'primary not readable'
      : [p.count ? `${p.count} pending, oldest ${age(p.since!)} old` : backedUp ? 'up to date' : '-', ...(p.lost ? [`${p.lost} lost before the copy`] : [])].join('; ');

  // The newest check at rest of each target (respaldo verify, or run's daily share).
  const atRest = await readAtRestStates(records);
  const roles = config.targets.secondary ? (['primary', 'secondary'] as const) : (['primary'] as const);
  const checkedAtRest = (name: string) => {
    const state = atRestStateOf(atRest, name);
    return Object.fromEntries(roles.map((role) => [role, ((c) => (c ? { at: c.at.toISOString(), result: c.result, record: c.seq } : null))(state.lastCheck.get(role))]));
  };

  const rows = config.repositories.map((repo) => {
    const plan = planFor(repo.kind, repo.schedule, config.timezone);
    const h = history.get(repo.name)!;
    const due = dueState(plan, h.lastGood?.started, now);
    return {
      name: repo.name,
      kind: repo.kind,
      request: repo.request ?? null,
      schedule: plan.describe,
      state: due.state,
      lastGood: h.lastGood ? { started: h.lastGood.started.toISOString(), snapshot: h.lastGood.snapshot, unchanged: h.lastGood.unchanged, record: h.lastGood.seq } : null,
      failing: h.failing ? { at: h.failing.at.toISOString(), record: h.failing.seq, cause: h.failing.cause } : null,
      nextDue: due.nextDue && due.state === 'ok' ? due.nextDue.toISOString() : now.toISOString(),
      ...(config.targets.secondary ? { copies: (({ count, since, lost, unreadable }) => ({ pending: count, since: since?.toISOString() ?? null, lost, primaryUnreadable: unreadable }))(pending.get(repo.name)!) } : {}),
      atRest: checkedAtRest(repo.name),
    };
  });
  const atRestCell = (checks: Record<string, { at: string; result: string; record: number } | null>) =>
    roles.map((role) => ((c) => `${role === 'primary' ? 'JAA' : 'CSC'} ${c ? `${c.result === 'ok' ? 'ok' : `FAILED (record ${c.record})`} ${formatLocal(new Date(c.at), zone)}` : 'never'}`)(checks[role])).join('; ');

  const table = [['REPOSITORY', 'KIND', 'REQUEST', 'SCHEDULE', 'LAST GOOD BACKUP', 'NEXT DUE', ...(config.targets.secondary ? ['COPY AT CSC'] : []), 'CHECKED AT REST', 'STATE']];
  for (const r of rows) {
    const p = pending.get(r.name);
    table.push([
      r.name,
      r.kind,
      r.request ?? '-',
      r.schedule,
      r.lastGood ? `${formatLocal(new Date(r.lastGood.started), zone)} (${r.lastGood.unchanged ? 'unchanged since ' : ''}${r.lastGood.snapshot})` : '-',
      r.state === 'ok' ? formatLocal(new Date(r.nextDue), zone) : 'now',
      ...(config.targets.secondary ? [copyCell(p!, r.lastGood !== null)] : []),
      atRestCell(r.atRest),
      STATE_TEXT[r.state] + (r.failing ? `; failing since ${formatLocal(new Date(r.failing.at), zone)} (record ${r.failing.record})` : ''),
    ]);
  }
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  const lines = [
    `host ${config.host}: ${head ? `${head.seq} records` : 'not enrolled (run "respaldo init")'} in ${config.records}${unpushed ? `; ${unpushed} commit(s) not pushed yet` : ''}`,
    `times in ${zone}`,
    '',
    ...table.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')),
    ...(mandate.restores.length ? ['', `approved restore requests waiting for the next run: ${mandate.restores.map((r) => r.id).join(', ')}`] : []),
    ...(mandate.problems.length ? ['', 'approved requests that cannot be met:', ...mandate.problems.map((p) => `  ${problemText(p)}`)] : []),
  ];
  ctx.reporter.result(lines.join('\n'), {
    host: config.host,
    timezone: zone,
    records: head?.seq ?? 0,
    unpushed: unpushed ?? null,
    repositories: rows,
    pendingRestores: mandate.restores.map((r) => r.id),
    requestProblems: mandate.problems.map(problemText),
  });
  return Exit.ok;
}
