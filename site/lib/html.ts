/**
 * Small pieces of HTML the pages share: escaping, the two languages, links that stay
 * relative (the site opens from any base path and from a folder), numbers and dates.
 * Everything a record says goes through `esc`: a tampered record is shown, never run.
 */
import type { RecordStatus } from '../../schemas/chain.js';
import { formatBytes } from '../../schemas/common.js';
import type { Clock } from './periods.js';

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const SPECIAL = /[&<>"']/;
export function esc(value: unknown): string {
  const text = String(value ?? '');
  return SPECIAL.test(text) ? text.replace(/[&<>"']/g, (c) => ESC[c]!) : text;
}

/** Spanish first, English second; the page's switch shows one of them. */
export function t(es: string, en: string): string {
  return es === en ? esc(es) : `<span lang="es">${esc(es)}</span><span lang="en">${esc(en)}</span>`;
}

/** A link from the page at `from` (e.g. `hosts/web01.html`) to `to` (from the site's root). */
export function rel(from: string, to: string): string {
  const depth = from.split('/').length - 1;
  return esc(`${'../'.repeat(depth)}${to}`);
}

/** Record pages hold 200 records of a host each: `records/web01/3.html` has seq 401–600. */
export const RECORDS_PER_PAGE = 200;
export const recordBlock = (seq: number) => Math.floor((Math.max(seq, 1) - 1) / RECORDS_PER_PAGE) + 1;
/** How many record pages a host has: its chain's highest seq, 200 to a page. */
export const blockCount = (records: readonly Pick<RecordStatus, 'seq'>[]) => Math.ceil((records.at(-1)?.seq ?? 0) / RECORDS_PER_PAGE);
export const recordAnchor = (s: Pick<RecordStatus, 'seq' | 'type'>) => `r${s.seq}-${s.type}`;
export function recordHref(s: Pick<RecordStatus, 'seq' | 'type' | 'path'>): string {
  const host = s.path.split('/')[1]!;
  return `records/${host}/${recordBlock(s.seq)}.html#${recordAnchor(s)}`;
}

export const hostHref = (host: string) => `hosts/${host}.html`;
export const repoHref = (host: string, repo: string) => `repos/${host}/${repo}.html`;
export const requestHref = (id: string) => `requests.html#${id}`;
export const formHref = (slug: string, key: string) => `forms/${slug}/${key}.html`;

/** A link to a record, marked when it is not genuine. */
export function recordLink(from: string, s: RecordStatus, label?: string): string {
  const host = s.path.split('/')[1]!;
  const text = label ?? `${host} n.º ${s.seq}`;
  return `<a href="${rel(from, recordHref(s))}"${s.genuine ? '' : ' class="broken"'}>${esc(text)}</a>${s.genuine ? '' : ` <strong class="bad">${t('NO ÍNTEGRO', 'BROKEN')}</strong>`}`;
}

export function bytes(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : formatBytes(n);
}

export function signedBytes(n: number): string {
  return `${n > 0 ? '+' : n < 0 ? '−' : '±'}${bytes(Math.abs(n))}`;
}

/** A time on the institution's clock, with the full UTC time for machines and a tooltip. */
export function when(clock: Clock, at: string | number | Date | undefined): string {
  if (at === undefined) return '—';
  const iso = new Date(at).toISOString();
  return `<time datetime="${iso}" title="${iso}">${esc(clock.text(at))}</time>`;
}

export const STATE_WORDS: Record<string, [string, string]> = {
  ok: ['al día', 'ok'],
  passed: ['correcto', 'passed'],
  due: ['toca hoy', 'due'],
  overdue: ['atrasado', 'overdue'],
  failed: ['falló', 'failed'],
  never: ['nunca respaldado', 'never backed up'],
  unrequested: ['sin solicitud', 'unrequested'],
  pending: ['pendiente', 'pending'],
  approved: ['aprobada', 'approved'],
  rejected: ['rechazada', 'rejected'],
  executed: ['ejecutada', 'executed'],
  invalid: ['con errores', 'invalid'],
  intact: ['íntegra', 'intact'],
  broken: ['rota', 'broken'],
  empty: ['sin registros', 'no records'],
};

export function state(word: string): string {
  const [es, en] = STATE_WORDS[word] ?? [word, word];
  return `<span class="state state-${esc(word)}" data-state="${esc(word)}">${t(es, en)}</span>`;
}

export const KIND_WORDS: Record<string, [string, string]> = {
  source: ['código fuente', 'source code'],
  database: ['base de datos', 'database'],
  config: ['configuración', 'configuration'],
  files: ['imágenes y documentos', 'images and documents'],
};
export const kindText = (kind: string) => t(...(KIND_WORDS[kind] ?? [kind, kind]));

export const LEVEL_WORDS: Record<string, [string, string]> = {
  none: ['ninguna', 'none'],
  size: ['tamaño (4.2.1)', 'size (4.2.1)'],
  checksum: ['sumas SHA-256', 'SHA-256 checksums'],
  restore: ['restauración de prueba', 'test restore'],
};
export const levelText = (level: string) => t(...(LEVEL_WORDS[level] ?? [level, level]));

export const TRIGGER = (trigger: string, operator: string | undefined) =>
  trigger === 'manual' ? `${t('manual', 'manual')}${operator ? ` (${esc(operator)})` : ''}` : t('automático (cron)', 'automatic (cron)');
