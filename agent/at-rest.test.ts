import { describe, expect, it } from 'vitest';
import { arc, onArc, position, scheduledRead } from './at-rest.js';
import { parseShare } from './commands/verify.js';

const DAY = 86_400_000;
const at = (days: number) => new Date(Date.UTC(2026, 10, 1) + days * DAY);

describe('the rotation of a subset read', () => {
  it('places a file by the first 32 bits of its SHA-256', () => {
    expect(position('00000000' + 'f'.repeat(56))).toBe(0);
    expect(position('80000000' + '0'.repeat(56))).toBe(0.5);
    expect(position('ffffffff' + '0'.repeat(56))).toBeCloseTo(1, 9);
  });

  it('covers the circle with arcs that follow each other, wrapping past 1', () => {
    const arcs = [arc(0, 0.3)];
    while (arcs.length < 4) arcs.push(arc(arcs.at(-1)!.to, 0.3));
    expect(arcs).toEqual([
      { from: 0, to: 0.3 },
      { from: 0.3, to: 0.6 },
      { from: 0.6, to: 0.9 },
      { from: 0.9, to: 0.2 },
    ]);
    // Every point lies on exactly one of the first arcs until the circle is closed.
    for (const p of [0, 0.1, 0.2999999, 0.3, 0.5, 0.6, 0.89, 0.9, 0.95, 0.99999]) expect(arcs.slice(0, 3).concat(arc(0.9, 0.1)).filter((a) => onArc(p, a))).toHaveLength(1);
    expect(onArc(0.95, arcs[3]!)).toBe(true);
    expect(onArc(0.1, arcs[3]!)).toBe(true);
    expect(onArc(0.2, arcs[3]!)).toBe(false);
    expect(onArc(0.5, arcs[3]!)).toBe(false);
  });
});

describe('what respaldo run reads each day', () => {
  const period = 30 * DAY;
  it('reads nothing before a day has passed since the last read, or since the oldest snapshot before the first', () => {
    expect(scheduledRead(period, undefined, undefined, at(5))).toBeUndefined();
    expect(scheduledRead(period, undefined, at(0), at(0.5))).toBeUndefined();
    expect(scheduledRead(period, at(3), at(0), at(3.9))).toBeUndefined();
  });
  it('reads the share of the period that has passed, and everything once a whole period has', () => {
    expect(scheduledRead(period, at(3), at(0), at(4))).toEqual({ data: 'subset', share: 1 / 30 });
    // The server was off for a week: a week's share.
    expect(scheduledRead(period, at(3), at(0), at(10))).toEqual({ data: 'subset', share: 7 / 30 });
    expect(scheduledRead(period, at(3), at(0), at(40))).toEqual({ data: 'all' });
  });
  it('starts with a day\'s share, however old the snapshots are', () => {
    expect(scheduledRead(period, undefined, at(0), at(400))).toEqual({ data: 'subset', share: 1 / 30 });
  });
  it('with a period shorter than a day, reads once per period', () => {
    expect(scheduledRead(6 * 3_600_000, at(1), at(0), at(1.2))).toBeUndefined();
    expect(scheduledRead(6 * 3_600_000, at(1), at(0), at(1.25))).toEqual({ data: 'all' });
  });
});

describe('--read-data-subset', () => {
  it('takes a percentage, a fraction or a share of 1', () => {
    expect(parseShare('5%')).toBe(0.05);
    expect(parseShare('12.5%')).toBe(0.125);
    expect(parseShare('1/20')).toBe(0.05);
    expect(parseShare('0.05')).toBe(0.05);
    expect(parseShare('100%')).toBe(1);
    for (const bad of ['0%', '120%', 'five', '5', '-5%', '1/0', '']) expect(parseShare(bad), bad).toBeUndefined();
  });
});
