/**
 * Times as people write them, in the institution's time zone: "2026-11-21 11:29" means
 * 11:29 in the host's `timezone` (or the system's), and every answer says which zone it used.
 */

const formats = new Map<string, Intl.DateTimeFormat>();

function parts(date: Date, timeZone: string): Record<string, number> {
  let format = formats.get(timeZone);
  if (!format) formats.set(timeZone, (format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })));
  const out: Record<string, number> = {};
  for (const p of format.formatToParts(date))
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  return out;
}

/** Offsets by zone and quarter hour: every zone changes on a quarter hour, and Intl is slow (a prune or a site build asks often). */
const QUARTER = 15 * 60_000;
const offsets = new Map<string, Map<number, number>>();

/** The zone's offset from UTC at a moment, in milliseconds (east positive). */
export function offsetAt(timeZone: string, at: number): number {
  let known = offsets.get(timeZone);
  if (!known || known.size > 1_000_000) offsets.set(timeZone, (known = new Map()));
  const quarter = Math.floor(at / QUARTER);
  let offset = known.get(quarter);
  if (offset === undefined) {
    const p = parts(new Date(quarter * QUARTER), timeZone);
    offset = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) - quarter * QUARTER;
    known.set(quarter, offset);
  }
  return offset;
}

/** "UTC−06:00" */
export function offsetText(ms: number): string {
  const sign = ms < 0 ? '−' : '+';
  const m = Math.abs(ms) / 60_000;
  return `UTC${sign}${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/**
 * Reads "2026-11-21 11:29", "2026-11-21T11:29:05.25", or either with "Z" or "+01:00"; a time
 * without an offset is in `timeZone`. Undefined for anything else, or a date that does not exist.
 */
export function parseZoned(text: string, timeZone: string): Date | undefined {
  const m = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,6}))?)?\s*(Z|[+-]\d\d:?\d\d)?$/i.exec(text.trim());
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  const ms = Math.floor(Number(`0.${m[7] ?? '0'}`) * 1000);
  const wall = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  const check = new Date(wall);
  if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return undefined;
  const zone = m[8];
  if (zone) {
    if (/^z$/i.test(zone)) return check;
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    return new Date(wall - sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000);
  }
  // The offset depends on the moment: two passes settle it (on a daylight-saving change, the first reading wins).
  let t = wall - offsetAt(timeZone, wall);
  t = wall - offsetAt(timeZone, t);
  return new Date(t);
}

/** "2026-11-21 11:29:00 America/Mexico_City (UTC−06:00)"; fractions of a second when there are any. */
export function formatZoned(date: Date, timeZone: string): string {
  const p = parts(date, timeZone);
  const pad = (n: number) => String(n).padStart(2, '0');
  const frac = date.getUTCMilliseconds() ? `.${String(date.getUTCMilliseconds()).padStart(3, '0')}` : '';
  return `${p.year}-${pad(p.month!)}-${pad(p.day!)} ${pad(p.hour!)}:${pad(p.minute!)}:${pad(p.second!)}${frac} ${timeZone} (${offsetText(offsetAt(timeZone, date.getTime()))})`;
}

/** The host's time zone: its config's `timezone`, else the system's. */
export function hostZone(configured: string | undefined): string {
  return configured ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
}
