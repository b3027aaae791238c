import { describe, expect, it } from 'vitest';
import { applyRetention, describeRules, isoWeek, snapshotTime } from './retention.js';

/** Snapshot ids at 03:00 UTC on each day from `first` for `days` days. */
function daily(first: string, days: number, time = '030000'): string[] {
  const start = Date.parse(`${first}T00:00:00Z`);
  return Array.from({ length: days }, (_, i) => `${new Date(start + i * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '')}T${time}Z`);
}

const LATER = new Date('2030-01-01T00:00:00Z');

describe('retention rules (restic semantics)', () => {
  it('keep-last keeps the newest N snapshots', () => {
    const ids = daily('2026-11-01', 10);
    const plan = applyRetention(ids, { 'keep-last': 3 }, 'UTC', LATER);
    expect(plan.keep).toEqual([
      { id: '20261108T030000Z', reasons: ['last snapshot'] },
      { id: '20261109T030000Z', reasons: ['last snapshot'] },
      { id: '20261110T030000Z', reasons: ['last snapshot'] },
    ]);
    expect(plan.remove).toEqual(ids.slice(0, 7));
  });

  it('keeps the newest snapshot of each day, ISO week and month, with every reason that applies', () => {
    // 2026-01-01 (a Thursday) to 2026-03-31 (a Tuesday); ISO week 14 starts on Monday 03-30.
    const ids = daily('2026-01-01', 90);
    expect(ids.at(-1)).toBe('20260331T030000Z');
    const plan = applyRetention(ids, { 'keep-daily': 3, 'keep-weekly': 2, 'keep-monthly': 3 }, 'UTC', LATER);
    expect(plan.keep).toEqual([
      { id: '20260131T030000Z', reasons: ['monthly snapshot'] },
      { id: '20260228T030000Z', reasons: ['monthly snapshot'] },
      // The newest of the week before (Monday 03-23 to Sunday 03-29).
      { id: '20260329T030000Z', reasons: ['daily snapshot', 'weekly snapshot'] },
      { id: '20260330T030000Z', reasons: ['daily snapshot'] },
      { id: '20260331T030000Z', reasons: ['daily snapshot', 'weekly snapshot', 'monthly snapshot'] },
    ]);
    expect(plan.remove).toHaveLength(85);
    expect(plan.remove).not.toContain('20260331T030000Z');
  });

  it('reads days on the host\'s wall clock, not in UTC', () => {
    // 03:15 UTC on the 22nd is 21:15 on the 21st in Mexico City (UTC−06:00); 07:00 UTC is 01:00 the same day there.
    const ids = ['20261121T070000Z', '20261122T031500Z', '20261122T070000Z'];
    expect(applyRetention(ids, { 'keep-daily': 2 }, 'America/Mexico_City', LATER).keep.map((k) => k.id)).toEqual(['20261122T031500Z', '20261122T070000Z']);
    expect(applyRetention(ids, { 'keep-daily': 2 }, 'UTC', LATER).keep.map((k) => k.id)).toEqual(['20261121T070000Z', '20261122T070000Z']);
  });

  it('counts only the periods that have a snapshot: a month without backups does not expire the old ones', () => {
    const ids = ['20260901T030000Z', '20260910T030000Z', '20260920T030000Z', '20261101T030000Z'];
    const plan = applyRetention(ids, { 'keep-daily': 3 }, 'UTC', LATER);
    expect(plan.keep.map((k) => k.id)).toEqual(['20260910T030000Z', '20260920T030000Z', '20261101T030000Z']);
    expect(plan.remove).toEqual(['20260901T030000Z']);
  });

  it('keeps the oldest snapshot too while a rule has counts left (restic 0.15), saying so', () => {
    const ids = ['20261122T010000Z', '20261122T020000Z', '20261122T030000Z'];
    const plan = applyRetention(ids, { 'keep-daily': 7 }, 'UTC', LATER);
    expect(plan.keep).toEqual([
      { id: '20261122T010000Z', reasons: ['oldest snapshot (keep-daily 7 not filled)'] },
      { id: '20261122T030000Z', reasons: ['daily snapshot'] },
    ]);
    expect(plan.remove).toEqual(['20261122T020000Z']);
  });

  it('keep-within counts back from the newest snapshot, not from now: backups that stopped do not expire the rest', () => {
    const ids = daily('2026-11-01', 10); // the newest is 2026-11-10
    const plan = applyRetention(ids, { 'keep-within': '3d' }, 'UTC', new Date('2027-06-01T00:00:00Z'));
    // Strictly within 3 days: 11-07 03:00 is exactly 3 days before and goes, as in restic.
    expect(plan.keep).toEqual(['20261108T030000Z', '20261109T030000Z', '20261110T030000Z'].map((id) => ({ id, reasons: ['within 3d of the newest snapshot'] })));
  });

  it('does not take a snapshot dated in the future (a clock that was wrong once) for the newest', () => {
    const ids = [...daily('2026-11-01', 5), '20291231T000000Z'];
    const plan = applyRetention(ids, { 'keep-within': '2d' }, 'UTC', new Date('2026-11-06T00:00:00Z'));
    // Within 2 days of 11-05, the newest snapshot that is not in the future (the future one is after that too, and stays).
    expect(plan.keep.map((k) => k.id)).toEqual(['20261104T030000Z', '20261105T030000Z', '20291231T000000Z']);
    expect(plan.remove).toEqual(['20261101T030000Z', '20261102T030000Z', '20261103T030000Z']);
  });

  it('orders snapshots of the same second by their suffix as a number', () => {
    const ids = ['20261122T031500Z-10', '20261122T031500Z', '20261122T031500Z-2'];
    const plan = applyRetention(ids, { 'keep-last': 1 }, 'UTC', LATER);
    expect(plan.keep.map((k) => k.id)).toEqual(['20261122T031500Z-10']);
    expect(plan.remove).toEqual(['20261122T031500Z', '20261122T031500Z-2']);
    expect(snapshotTime('20261122T031500Z-10').toISOString()).toBe('2026-11-22T03:15:00.000Z');
  });

  it('keeps the newest hourly and yearly snapshots', () => {
    const ids = ['20241231T230000Z', '20251231T220000Z', '20251231T230000Z', '20261122T030000Z', '20261122T031500Z', '20261122T041500Z'];
    expect(applyRetention(ids, { 'keep-hourly': 2 }, 'UTC', LATER).keep.map((k) => k.id)).toEqual(['20261122T031500Z', '20261122T041500Z']);
    expect(applyRetention(ids, { 'keep-yearly': 3 }, 'UTC', LATER).keep.map((k) => k.id)).toEqual(['20241231T230000Z', '20251231T230000Z', '20261122T041500Z']);
  });

  it('ISO weeks start on Monday and belong to the year of their Thursday', () => {
    expect(isoWeek(2026, 1, 1)).toBe(202601); // a Thursday
    expect(isoWeek(2027, 1, 3)).toBe(202653); // a Sunday: 2026 has 53 weeks
    expect(isoWeek(2027, 1, 4)).toBe(202701); // the Monday after
    expect(isoWeek(2024, 12, 30)).toBe(202501); // a Monday in week 1 of 2025
    expect(isoWeek(2026, 11, 22)).toBe(202647); // Sunday
    expect(isoWeek(2026, 11, 23)).toBe(202648); // Monday
  });

  it('describes the rules as configured', () => {
    expect(describeRules({ 'keep-daily': 7, 'keep-within': '30d' })).toBe('keep-daily 7, keep-within 30d');
  });
});
