/**
 * Which snapshots the retention rules keep: restic's `forget --keep-*` policy
 * (internal/restic/snapshot_policy.go), so that restic's and Borg's users read the rules as
 * they know them. Pure: the snapshot ids (UTC start times) in, each kept one with its
 * reasons out. The safety rules that no configuration can turn off (the newest verified
 * snapshot, nothing deleted after a failed backup, the PITR archive) are the caller's:
 * prune.ts.
 *
 * - `keep-last N`: the N newest snapshots.
 * - `keep-hourly/daily/weekly/monthly/yearly N`: going from the newest, the newest snapshot
 *   of each hour (day, ISO week, month, year) that has one, until N such periods are
 *   counted. Periods are read on the host's wall clock (`timezone`), so a day is the
 *   institution's day and not UTC's. Periods without a snapshot are not counted: after a
 *   month without backups, `keep-daily: 7` still keeps seven snapshots.
 * - When a rule has counts left after the oldest snapshot, the oldest is kept too (restic
 *   0.15 and later): the history kept is as long as it can be.
 * - `keep-within D`: every snapshot taken less than D before the newest one (not before
 *   now: backups that stopped do not make the old ones expire).
 */
import { compareSnapshotIds, parseDuration } from './common.js';
import type { Retention } from './config.js';
import { offsetAt } from './zoned.js';

export interface Kept {
  id: string;
  reasons: string[];
}

export interface RetentionPlan {
  /** Oldest first. */
  keep: Kept[];
  /** Oldest first. */
  remove: string[];
}

/** The count rules, in restic's order, with the period each one counts and its reason. */
const COUNT_RULES = [
  { rule: 'keep-last', reason: 'last snapshot', period: undefined },
  { rule: 'keep-hourly', reason: 'hourly snapshot', period: 'hour' },
  { rule: 'keep-daily', reason: 'daily snapshot', period: 'day' },
  { rule: 'keep-weekly', reason: 'weekly snapshot', period: 'week' },
  { rule: 'keep-monthly', reason: 'monthly snapshot', period: 'month' },
  { rule: 'keep-yearly', reason: 'yearly snapshot', period: 'year' },
] as const;

type Period = 'hour' | 'day' | 'week' | 'month' | 'year';

/** The UTC time a snapshot id names: 20261122T031500Z (a suffix, -2, is the same second). */
export function snapshotTime(id: string): Date {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z/.exec(id);
  if (!m) throw new Error(`"${id}" is not a snapshot id`);
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s));
}

/** The periods a moment falls in, on the wall clock of `timeZone`, as comparable keys. */
function periodsIn(timeZone: string): (at: Date) => Record<Period, number> {
  return (at) => {
    const wall = new Date(at.getTime() + offsetAt(timeZone, at.getTime()));
    const [y, mo, d, h] = [wall.getUTCFullYear(), wall.getUTCMonth() + 1, wall.getUTCDate(), wall.getUTCHours()];
    return { hour: ((y * 100 + mo) * 100 + d) * 100 + h, day: (y * 100 + mo) * 100 + d, week: isoWeek(y, mo, d), month: y * 100 + mo, year: y };
  };
}

/** The ISO 8601 week of a calendar date as year * 100 + week (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeek(year: number, month: number, day: number): number {
  const DAY = 86_400_000;
  const date = Date.UTC(year, month - 1, day);
  const weekday = (new Date(date).getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = date + (3 - weekday) * DAY;
  const weekYear = new Date(thursday).getUTCFullYear();
  return weekYear * 100 + 1 + Math.floor((thursday - Date.UTC(weekYear, 0, 1)) / (7 * DAY));
}

/** The rules as the record and the output show them: `keep-daily 7, keep-within 30d`. */
export function describeRules(rules: Retention): string {
  return Object.entries(rules)
    .map(([rule, value]) => `${rule} ${value}`)
    .join(', ');
}

/**
 * Applies the rules to the snapshot ids (in any order). `now` only keeps a snapshot
 * dated in the future (a clock that was wrong once) from being taken for the newest, as
 * restic does; with every snapshot in the future, `keep-within` keeps them all.
 */
export function applyRetention(ids: string[], rules: Retention, timeZone: string, now: Date): RetentionPlan {
  const newestFirst = [...ids].sort((a, b) => compareSnapshotIds(b, a));
  const periods = periodsIn(timeZone);
  const counts = COUNT_RULES.map((r) => ({ ...r, left: rules[r.rule] ?? 0, last: undefined as number | undefined }));
  const within = rules['keep-within'] ? parseDuration(rules['keep-within']) : undefined;
  const latest = newestFirst.map(snapshotTime).find((t) => t <= now);
  const keep: Kept[] = [];
  const remove: string[] = [];
  newestFirst.forEach((id, nr) => {
    const time = snapshotTime(id);
    const reasons: string[] = [];
    if (within !== undefined && (!latest || time.getTime() > latest.getTime() - within)) reasons.push(`within ${rules['keep-within']} of the newest snapshot`);
    const keys = periods(time);
    const oldest = nr === newestFirst.length - 1;
    for (const c of counts) {
      if (c.left <= 0) continue;
      // keep-last counts every snapshot; the others, each period once.
      const key = c.period ? keys[c.period] : nr;
      if (key !== c.last) reasons.push(c.reason);
      else if (oldest) reasons.push(`oldest snapshot (${c.rule} ${rules[c.rule]} not filled)`);
      else continue;
      c.last = key;
      c.left--;
    }
    if (reasons.length) keep.push({ id, reasons });
    else remove.push(id);
  });
  return { keep: keep.reverse(), remove: remove.reverse() };
}
