/**
 * When a repository is due. Defaults follow PRO 7.5 DSE 02: source code every 7 days
 * (4.1.2), databases every day (4.1.3), configuration, images and documents every 60 days
 * (4.1.4). Cron runs the agent often (hourly); each run does what is due, so a backup
 * missed while the server was off is caught up by the first run after it comes back.
 */
import { Cron } from 'croner';
import { parseDuration, type RepositoryKind } from './common.js';
import type { Schedule } from './config.js';

export const DEFAULT_SCHEDULE: Record<RepositoryKind, string> = { source: '7d', database: '1d', config: '60d', files: '60d' };

const HOUR = 3_600_000;
const CLOCK_SLACK = 10 * 60_000;
const DAY = 24 * HOUR;

export interface Plan {
  /** "every 7d" or "cron 0 3 * * 0 (America/Mexico_City)". */
  describe: string;
  /** When the next backup is due after a good one at `last`. */
  next(last: Date): Date;
  /** The typical time between two backups, for grace periods. */
  interval: number;
}

export function planFor(kind: RepositoryKind, schedule: Schedule | undefined, timezone: string | undefined): Plan {
  if (schedule && 'cron' in schedule) {
    const cron = new Cron(schedule.cron, { paused: true, ...(timezone ? { timezone } : {}) });
    const [a, b] = cron.nextRuns(2, new Date());
    return {
      describe: `cron ${schedule.cron}${timezone ? ` (${timezone})` : ''}`,
      next: (last) => cron.nextRun(last) ?? new Date(8.64e15),
      interval: a && b ? b.getTime() - a.getTime() : DAY,
    };
  }
  const every = schedule?.every ?? DEFAULT_SCHEDULE[kind];
  const interval = parseDuration(every)!;
  // An hourly cron tick lands a little earlier or later each time; without this slack a
  // daily backup made at 03:17:05 would not be due at 03:17:00 the next day and would
  // drift an hour later every day. Half the tick period absorbs the jitter of start times.
  const slack = Math.min(interval / 10, HOUR / 2);
  return { describe: `every ${every}`, next: (last) => new Date(last.getTime() + interval - slack), interval };
}

export type DueState = 'never' | 'ok' | 'due' | 'overdue';

export interface Due {
  state: DueState;
  /** When the next backup is (or was) due; undefined when there never was a good one. */
  nextDue: Date | undefined;
}

/**
 * Due once the next scheduled time has passed; overdue once it is late by more than a
 * grace of a quarter of the interval, at most a day.
 */
export function dueState(plan: Plan, lastGood: Date | undefined, now: Date): Due {
  if (!lastGood) return { state: 'never', nextDue: undefined };
  // A last backup "in the future" was made while the clock ran ahead; waiting for the clock
  // to catch up would silently stop the backups. Due now, from today's clock.
  if (lastGood.getTime() > now.getTime() + CLOCK_SLACK) return { state: 'due', nextDue: now };
  const next = plan.next(lastGood);
  if (now < next) return { state: 'ok', nextDue: next };
  const grace = Math.min(plan.interval / 4, DAY);
  return { state: now.getTime() >= next.getTime() + grace ? 'overdue' : 'due', nextDue: next };
}
