import { describe, expect, it } from 'vitest';
import { compareSnapshotIds } from '../schemas/common.js';
import { compareSize, newSnapshotId } from './backup.js';

describe('snapshot ids', () => {
  const at = new Date('2026-11-22T03:15:07.123Z');

  it('are the UTC start time, and sort after every existing id even when the clock went back', () => {
    expect(newSnapshotId(at, [])).toBe('20261122T031507Z');
    expect(newSnapshotId(at, ['20261121T031500Z'])).toBe('20261122T031507Z');
    expect(newSnapshotId(at, ['20261122T031507Z'])).toBe('20261122T031507Z-2');
    expect(newSnapshotId(at, ['20261230T000000Z'])).toBe('20261230T000000Z-2');
  });

  it('order suffixes as numbers, so a tenth snapshot in one second does not sort first', () => {
    const ids = ['20261122T031507Z-10', '20261122T031507Z-2', '20261122T031507Z', '20261121T000000Z-3'];
    expect([...ids].sort(compareSnapshotIds)).toEqual(['20261121T000000Z-3', '20261122T031507Z', '20261122T031507Z-2', '20261122T031507Z-10']);
    const nine = Array.from({ length: 8 }, (_, i) => `20261122T031507Z-${i + 2}`);
    expect(newSnapshotId(at, ['20261122T031507Z', ...nine].sort(compareSnapshotIds))).toBe('20261122T031507Z-10');
    expect(newSnapshotId(at, ['20261122T031507Z', ...nine, '20261122T031507Z-10'].sort(compareSnapshotIds))).toBe('20261122T031507Z-11');
  });
});

describe('size comparison (clause 4.2.1)', () => {
  it('warns past the shrink and growth thresholds, and not within them', () => {
    expect(compareSize(80, 100, 20, 100)).toMatchObject({ result: 'warning', change_percent: -20 });
    expect(compareSize(81, 100, 20, 100)).toMatchObject({ result: 'ok', change_percent: -19 });
    expect(compareSize(200, 100, 20, 100)).toMatchObject({ result: 'warning', change_percent: 100 });
    expect(compareSize(100, undefined, 20, 100)).toMatchObject({ result: 'first', previous_bytes: null });
    expect(compareSize(5, 0, 20, 100)).toMatchObject({ result: 'ok', change_percent: null });
  });
});
