import { describe, expect, it } from 'vitest';
import { dueState, planFor } from './schedule.js';

const at = (s: string) => new Date(s);

describe('schedules', () => {
  it('defaults follow the procedure: source 7 days, database 1 day, config and files 60 days', () => {
    expect(planFor('source', undefined, undefined).describe).toBe('every 7d');
    expect(planFor('database', undefined, undefined).describe).toBe('every 1d');
    expect(planFor('config', undefined, undefined).describe).toBe('every 60d');
    expect(planFor('files', undefined, undefined).describe).toBe('every 60d');
  });

  it('a repository never backed up is due now', () => {
    expect(dueState(planFor('files', undefined, undefined), undefined, at('2026-11-22T03:00:00Z')).state).toBe('never');
  });

  it('an interval is due once it has passed, and an hourly cron tick does not drift it', () => {
    const plan = planFor('database', undefined, undefined);
    const last = at('2026-11-21T03:17:05Z');
    expect(dueState(plan, last, at('2026-11-21T23:17:00Z')).state).toBe('ok');
    // The next day's 03:17 tick is a few seconds early: still due, so the backup stays at 03:17.
    expect(dueState(plan, last, at('2026-11-22T03:17:00Z')).state).toBe('due');
    // Overdue after a grace of a quarter of the interval.
    expect(dueState(plan, last, at('2026-11-22T09:00:00Z')).state).toBe('overdue');
  });

  it('a cron expression is due once its next time after the last backup has passed', () => {
    const plan = planFor('source', { cron: '0 3 * * 0' }, 'UTC'); // Sundays 03:00
    const last = at('2026-11-15T03:05:00Z'); // a Sunday
    expect(plan.describe).toBe('cron 0 3 * * 0 (UTC)');
    expect(dueState(plan, last, at('2026-11-22T02:59:00Z')).state).toBe('ok');
    expect(dueState(plan, last, at('2026-11-22T03:01:00Z'))).toEqual({ state: 'due', nextDue: at('2026-11-22T03:00:00Z') });
    // A server that was off all week catches up with one backup at its first run.
    expect(dueState(plan, last, at('2026-11-29T10:00:00Z')).state).toBe('overdue');
  });

  it('a last backup in the future (the clock ran ahead, then was corrected) is due now', () => {
    const plan = planFor('database', undefined, undefined);
    const now = at('2026-11-22T03:00:00Z');
    expect(dueState(plan, at('2026-12-25T03:00:00Z'), now)).toEqual({ state: 'due', nextDue: now });
    // A few seconds of difference between hosts' clocks is not that.
    expect(dueState(plan, at('2026-11-22T03:01:00Z'), now).state).toBe('ok');
  });

  it('evaluates cron expressions in the configured time zone', () => {
    const plan = planFor('database', { cron: '30 2 * * *' }, 'America/Mexico_City'); // 02:30 local = 08:30 UTC
    const due = dueState(plan, at('2026-11-21T09:00:00Z'), at('2026-11-22T08:31:00Z'));
    expect(due.nextDue).toEqual(at('2026-11-22T08:30:00Z'));
    expect(due.state).toBe('due');
  });
});
