/** `respaldo status`: each repository's last good backup, next due time and state. */
import { loadConfig } from '../config.js';
import type { Context } from '../context.js';
import { Exit, type ExitCode } from '../errors.js';
import { RecordsGit } from '../git.js';
import { readHistory } from '../history.js';
import { RecordStore } from '../records.js';
import { dueState, planFor } from '../schedule.js';

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
  const git = await RecordsGit.open(config.records, config.host, ctx.env);
  const head = await records.head();
  const history = await readHistory(records, config.repositories.map((r) => r.name));
  const unpushed = await git.unpushed();
  const now = ctx.now();
  const zone = config.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;

  const rows = config.repositories.map((repo) => {
    const plan = planFor(repo.kind, repo.schedule, config.timezone);
    const h = history.get(repo.name)!;
    const due = dueState(plan, h.lastGood?.started, now);
    return {
      name: repo.name,
      kind: repo.kind,
      schedule: plan.describe,
      state: due.state,
      lastGood: h.lastGood ? { started: h.lastGood.started.toISOString(), snapshot: h.lastGood.snapshot, unchanged: h.lastGood.unchanged, record: h.lastGood.seq } : null,
      failing: h.failing ? { at: h.failing.at.toISOString(), record: h.failing.seq, cause: h.failing.cause } : null,
      nextDue: due.nextDue && due.state === 'ok' ? due.nextDue.toISOString() : now.toISOString(),
    };
  });

  const table = [['REPOSITORY', 'KIND', 'SCHEDULE', 'LAST GOOD BACKUP', 'NEXT DUE', 'STATE']];
  for (const r of rows) {
    table.push([
      r.name,
      r.kind,
      r.schedule,
      r.lastGood ? `${formatLocal(new Date(r.lastGood.started), zone)} (${r.lastGood.unchanged ? 'unchanged since ' : ''}${r.lastGood.snapshot})` : '-',
      r.state === 'ok' ? formatLocal(new Date(r.nextDue), zone) : 'now',
      STATE_TEXT[r.state] + (r.failing ? `; failing since ${formatLocal(new Date(r.failing.at), zone)} (record ${r.failing.record})` : ''),
    ]);
  }
  const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
  const lines = [
    `host ${config.host}: ${head ? `${head.seq} records` : 'not enrolled (run "respaldo init")'} in ${config.records}${unpushed ? `; ${unpushed} commit(s) not pushed yet` : ''}`,
    `times in ${zone}`,
    '',
    ...table.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')),
  ];
  ctx.reporter.result(lines.join('\n'), { host: config.host, timezone: zone, records: head?.seq ?? 0, unpushed: unpushed ?? null, repositories: rows });
  return Exit.ok;
}
