/**
 * Calendar periods on the institution's wall clock: the week of FOR 7.5 DSE 02 and 03, the
 * sixty days of DSE 04 (a bimester: January–February, March–April, …), the month of DSE 05
 * and CSC 02, the year of CSC 01 and CSC 03. A record falls in the period of its local date.
 * Pure: times in, keys and dates out.
 */
import { isoWeek } from '../../schemas/retention.js';
import { offsetAt, offsetText } from '../../schemas/zoned.js';

export type PeriodKind = 'week' | 'bimester' | 'month' | 'year';

/** A calendar date, `YYYY-MM-DD`, on the wall clock. */
export type Day = string;

export interface Period {
  kind: PeriodKind;
  /** `2026-W47`, `2026-B6`, `2026-11`, `2026`: sorts in time order within a kind. */
  key: Day | string;
  /** First and last day, both included. */
  first: Day;
  last: Day;
}

const DAY_MS = 86_400_000;

/** Wall-clock reading of instants in one zone. */
export class Clock {
  constructor(readonly timeZone: string) {}

  offset(ms: number): number {
    return offsetAt(this.timeZone, ms);
  }

  /** `2026-11-22T03:15` on the wall clock. */
  wall(at: Date | string | number): string {
    const ms = typeof at === 'number' ? at : new Date(at).getTime();
    return new Date(ms + this.offset(ms)).toISOString().slice(0, 16);
  }

  day(at: Date | string | number): Day {
    return this.wall(at).slice(0, 10);
  }

  /** "2026-11-22 03:15". */
  text(at: Date | string | number): string {
    return this.wall(at).replace('T', ' ');
  }

  /** "UTC−06:00" at a moment. */
  offsetText(at: Date | string | number): string {
    return offsetText(this.offset(new Date(at).getTime()));
  }

  /** The instant a wall-clock day begins. */
  startOf(day: Day): number {
    const wall = Date.parse(`${day}T00:00:00Z`);
    return wall - this.offset(wall - this.offset(wall));
  }
}

export function addDays(day: Day, n: number): Day {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}

function lastDayOfMonth(year: number, month: number): Day {
  return new Date(Date.UTC(year, month, 0)).toISOString().slice(0, 10);
}

/** The period of a kind that holds a wall-clock day. */
export function periodOf(kind: PeriodKind, day: Day): Period {
  const year = Number(day.slice(0, 4));
  const month = Number(day.slice(5, 7));
  switch (kind) {
    case 'week': {
      const week = isoWeek(year, month, Number(day.slice(8, 10)));
      const monday = addDays(day, -((new Date(`${day}T00:00:00Z`).getUTCDay() + 6) % 7));
      return { kind, key: `${Math.floor(week / 100)}-W${String(week % 100).padStart(2, '0')}`, first: monday, last: addDays(monday, 6) };
    }
    case 'bimester': {
      const b = Math.ceil(month / 2);
      return { kind, key: `${year}-B${b}`, first: `${year}-${String(2 * b - 1).padStart(2, '0')}-01`, last: lastDayOfMonth(year, 2 * b) };
    }
    case 'month':
      return { kind, key: day.slice(0, 7), first: `${day.slice(0, 7)}-01`, last: lastDayOfMonth(year, month) };
    case 'year':
      return { kind, key: String(year), first: `${year}-01-01`, last: `${year}-12-31` };
  }
}

/** Every period of a kind from the one holding `from` to the one holding `to`, in order. */
export function periodsBetween(kind: PeriodKind, from: Day, to: Day): Period[] {
  const out: Period[] = [];
  for (let p = periodOf(kind, from); p.first <= to; p = periodOf(kind, addDays(p.last, 1))) out.push(p);
  return out;
}

const MONTHS_ES = ['enero', 'febrero', 'marzo', 'abril', 'mayo', 'junio', 'julio', 'agosto', 'septiembre', 'octubre', 'noviembre', 'diciembre'];
const MONTHS_EN = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** How a period is named on a form, in Spanish and in English. */
export function periodName(p: Period): { es: string; en: string } {
  const month = (d: Day, names: string[]) => names[Number(d.slice(5, 7)) - 1]!;
  switch (p.kind) {
    case 'week': {
      const n = Number(p.key.slice(6));
      return { es: `semana ${n} de ${p.key.slice(0, 4)} (${p.first} a ${p.last})`, en: `week ${n} of ${p.key.slice(0, 4)} (${p.first} to ${p.last})` };
    }
    case 'bimester':
      return { es: `${month(p.first, MONTHS_ES)}–${month(p.last, MONTHS_ES)} de ${p.key.slice(0, 4)}`, en: `${month(p.first, MONTHS_EN)}–${month(p.last, MONTHS_EN)} ${p.key.slice(0, 4)}` };
    case 'month':
      return { es: `${month(p.first, MONTHS_ES)} de ${p.key.slice(0, 4)}`, en: `${month(p.first, MONTHS_EN)} ${p.key.slice(0, 4)}` };
    case 'year':
      return { es: `año ${p.key}`, en: `year ${p.key}` };
  }
}

/** The day a retention of `months` reaches back to from `today`: a one-year window starts a year ago, the day after. */
export function windowStart(today: Day, months: number): Day {
  const [y, m, d] = today.split('-').map(Number) as [number, number, number];
  const back = new Date(Date.UTC(y, m - 1 - months, 1));
  const last = Number(lastDayOfMonth(back.getUTCFullYear(), back.getUTCMonth() + 1).slice(8));
  const day = `${back.toISOString().slice(0, 8)}${String(Math.min(d, last)).padStart(2, '0')}`;
  return addDays(day, 1);
}
