/**
 * The pages' bodies as HTML strings, escaped through html.ts. The Astro pages route and
 * lay them out; strings keep a 100,000-record build fast where a component per row would not.
 */
import type { Problem, RecordStatus } from '../../schemas/chain.js';
import { RECORD_NAMESPACE, type AnyRecord } from '../../schemas/record.js';
import { describeRules } from '../../schemas/retention.js';
import { blockCount, bytes, esc, formHref, hostHref, KIND_WORDS, kindText, levelText, recordAnchor, recordBlock, recordHref, recordLink, rel, repoHref, requestHref, RECORDS_PER_PAGE, signedBytes, state, t, TRIGGER, when } from './html.js';
import { expiries, FORMS, formOfKind, formWindow, yearPlan, type Entry, type FormPage, type FormSpec, type HostView, type Model, type RepoView, type RequestView } from './model.js';
import { periodName, periodsBetween, type Day, type Period } from './periods.js';

const requestCell = (from: string, request: string | undefined | null) =>
  !request ? '—' : request === 'unrequested' ? `<strong>${t('SIN SOLICITUD', 'UNREQUESTED')}</strong>` : `<a href="${rel(from, requestHref(request))}">${esc(request)}</a>`;

function copyCell(model: Model, from: string, repo: RepoView): string {
  if (!repo.lastGood) return '—';
  const copy = repo.copy;
  const receipt = repo.receipt;
  const copied = copy ? `${t('en CSC', 'at CSC')} ${when(model.clock, copy.record.at)} (${recordLink(from, copy.status)})` : `<strong class="bad">${t('pendiente', 'pending')}</strong>`;
  const acked = receipt ? `${t('acuse', 'receipt')} ${recordLink(from, receipt.status)}` : copy ? `<span class="bad">${t('sin acuse de CSC', 'no receipt from CSC')}</span>` : '';
  return `${copied}${acked ? `<br>${acked}` : ''}`;
}

/** The panel: every repository's state, and the totals. */
export function panel(model: Model, from: string): string {
  const count = (s: string) => model.repos.filter((r) => r.state === s).length;
  const hostsBroken = model.hosts.filter((h) => h.chain === 'broken').length;
  const approvals = model.trust?.approvals ?? [];
  const totals = [
    [model.folder.total - model.folder.broken, 'registros íntegros', 'genuine records'],
    [model.folder.broken, 'registros no íntegros', 'broken records'],
    [model.hosts.length, 'servidores', 'hosts'],
    [hostsBroken, 'cadenas rotas', 'broken chains'],
    [model.repos.length, 'repositorios', 'repositories'],
    [count('ok'), 'al día', 'ok'],
    [count('due'), 'toca hoy', 'due'],
    [count('overdue'), 'atrasados', 'overdue'],
    [count('failed'), 'fallidos', 'failed'],
    [count('never'), 'nunca respaldados', 'never backed up'],
    [count('unrequested'), 'sin solicitud', 'unrequested'],
    [approvals.filter((a) => a.valid).length, 'aprobaciones válidas', 'valid approvals'],
  ] as const;
  const rows = model.repos
    .map((r) => {
      const lg = r.lastGood;
      const level = lg ? levelText(lg.record.verification.level) + later(model, r) : '—';
      return `<tr data-repo="${esc(`${r.host}/${r.name}`)}" data-state="${r.state}">
<td><a href="${rel(from, hostHref(r.host))}">${esc(r.host)}</a></td>
<td><a href="${rel(from, repoHref(r.host, r.name))}">${esc(r.name)}</a></td>
<td>${kindText(r.kind)}</td>
<td>${state(r.state)}${r.state === 'unrequested' || r.state === 'failed' ? ` <span class="muted">(${t('calendario', 'schedule')}: ${state(r.schedule)})</span>` : ''}</td>
<td>${scheduleText(r.plan.describe)}${r.nextDue ? `<br><span class="muted">${t('siguiente', 'next')} ${when(model.clock, r.nextDue)}</span>` : ''}</td>
<td>${lg ? `${when(model.clock, lg.t)}<br>${recordLink(from, lg.status)}` : '—'}${r.lastFailure && r.state === 'failed' ? `<br><span class="bad">${t('falla', 'failure')} ${when(model.clock, r.lastFailure.t)}: ${esc(r.lastFailure.record.cause)}</span>` : ''}</td>
<td>${level}</td>
<td>${copyCell(model, from, r)}</td>
<td>${r.anomalies.length ? `<span class="bad">${r.anomalies.map(esc).join('<br>')}</span>` : '—'}</td>
<td>${requestCell(from, r.request?.id ?? (r.lastGood?.record.request ?? undefined))}</td>
</tr>`;
    })
    .join('\n');
  return `<h1>${t('Panel de respaldos', 'Backup dashboard')}</h1>
<p>${t('Estado al', 'State as of')} ${when(model.clock, model.now)} (${esc(model.clock.timeZone)}, ${esc(model.clock.offsetText(model.now))}).</p>
<ul class="totals">${totals.map(([n, es, en]) => `<li><strong>${n}</strong>${t(es, en)}</li>`).join('')}</ul>
<table class="panel">
<caption class="muted">${t('Cada servidor y repositorio con su estado: al día, toca hoy, atrasado, falló, nunca respaldado o sin solicitud.', 'Every host and repository with its state: ok, due, overdue, failed, never backed up or unrequested.')}</caption>
<thead><tr><th scope="col">${t('Servidor', 'Host')}</th><th scope="col">${t('Repositorio', 'Repository')}</th><th scope="col">${t('Tipo', 'Kind')}</th><th scope="col">${t('Estado', 'State')}</th><th scope="col">${t('Calendario', 'Schedule')}</th><th scope="col">${t('Último respaldo bueno', 'Last good backup')}</th><th scope="col">${t('Verificación', 'Verification')}</th><th scope="col">${t('Segunda copia (CSC) y acuse', 'Second copy (CSC) and receipt')}</th><th scope="col">${t('Anomalías de tamaño', 'Size anomalies')}</th><th scope="col">${t('Solicitud', 'Request')}</th></tr></thead>
<tbody>${rows || `<tr><td colspan="10">${t('Aún no hay repositorios.', 'No repositories yet.')}</td></tr>`}</tbody>
</table>`;
}

/** A later check of the last good snapshot than its backup's own: an at-rest or rotation read. */
function later(model: Model, r: RepoView): string {
  const id = r.lastGood?.record.snapshot.id;
  const v = r.verifies.filter((e) => e.status.genuine && e.t > r.lastGood!.t && e.record.snapshots.some((s) => s.id === id)).at(-1);
  if (!v) return '';
  const s = v.record.snapshots.find((x) => x.id === id)!;
  return `<br><span class="${s.result === 'failed' ? 'bad' : 'muted'}">${t('releído', 're-read')} ${when(model.clock, v.t)}: ${esc(s.result)}</span>`;
}

/** The header block every page of a form repeats: like the paper. */
function formHead(model: Model, form: FormSpec, periodText: string): string {
  const p = model.procedure;
  const title = p?.forms.find((f) => f.code === form.code)?.title ?? form.es;
  return `<table class="formhead"><tbody>
<tr><td class="org" rowspan="2">Departamento de Servicios Electrónicos<br><span class="muted">${esc(p?.code ?? 'PRO 7.5 DSE 02')}</span></td><td class="title">${esc(title)}<br><span class="muted" lang="en">${esc(form.en)}</span></td><td class="code"><strong>${esc(form.code)}</strong><br>${t('Revisión', 'Revision')} ${esc(p?.revision.number ?? '—')} (${esc(p?.revision.date ?? '—')})<br><span class="pageno">${t('Página: ver pie de la hoja impresa', 'Page: see the printed sheet')}</span></td></tr>
<tr><td>${t('Periodo', 'Period')}: <strong>${periodText}</strong></td><td>${t('Elaboró', 'Prepared by')}: ${esc(p?.prepared_by ?? '—')}<br>${t('Aprobó', 'Approved by')}: ${esc(p?.approved_by ?? '—')}</td></tr>
</tbody></table>`;
}

/** "every 7d" / "cron 0 3 * * 0 (zone)" in both languages. */
const scheduleText = (describe: string) => (describe.startsWith('every ') ? t(`cada ${describe.slice(6)}`, describe) : esc(describe));

/** A period as a form names it, in both languages. */
function periodText(p: Period): string {
  const name = periodName(p);
  return t(name.es, name.en);
}

/** The rows a page of a form holds, of every kind. */
const rowCount = (p: FormPage) => p.backups.length + p.requests.length + p.restores.length + p.failures.length + p.copies.length + p.loans.length;

const th = (es: string, en: string, cls = '') => `<th scope="col"${cls ? ` class="${cls}"` : ''}>${t(es, en)}</th>`;

/** The JAA copy and the CSC copy of a backup, with their labels. */
function copiesOf(model: Model, from: string, b: Entry<'backup'>, repo: RepoView | undefined): [string, string] {
  const jaa = `${esc(b.record.snapshot.target === 'primary' ? 'JAA' : 'CSC')}: <code title="${esc(b.record.snapshot.location)}">${esc(b.record.snapshot.id)}</code>`;
  const copy = repo?.copyOf.get(b.record.snapshot.id);
  const receipt = model.receipts.get(`${b.record.host}/${b.record.repository}/${b.record.snapshot.id}`);
  const csc = copy
    ? `${esc(copy.record.label)} (${t('verificada', 'verified')})${receipt ? `<br>${t('acuse', 'receipt')} ${recordLink(from, receipt.status)}` : `<br><span class="bad">${t('sin acuse', 'no receipt')}</span>`}`
    : `<span class="bad">${t('sin copia en CSC', 'not at CSC')}</span>`;
  return [jaa, csc];
}

function observations(b: Entry<'backup'>): string {
  const r = b.record;
  const out: string[] = [];
  if (r.unchanged) out.push(t('sin cambios: es la instantánea anterior', 'unchanged: the previous snapshot'));
  if (r.recovered) out.push(t('registrado por una ejecución posterior', 'recorded by a later run'));
  if (r.verification.size?.result === 'warning') out.push(`<span class="bad">${t('tamaño', 'size')} ${esc(r.verification.size.change_percent)} %</span>`);
  for (const w of r.warnings) out.push(esc(w.message));
  if (r.request === 'unrequested') out.push(t('sin solicitud aprobada', 'no approved request'));
  if (r.database?.pitr) out.push(t('recuperación a un punto en el tiempo', 'point-in-time recovery'));
  if (r.git) out.push(t('paquete git (bundle) verificado', 'git bundle verified'));
  return out.join('<br>') || '—';
}

/** One page of a backup form (DSE 02, 03, 04): a row per backup, a row per hole. */
function backupRows(model: Model, from: string, page: FormPage, head: string): string {
  const rows: { key: number; html: string }[] = [];
  for (const b of page.backups) {
    const r = b.record;
    const repo = model.repoIndex.get(`${r.host}/${r.repository}`);
    const prev = r.previous?.bytes ?? null;
    const [jaa, csc] = copiesOf(model, from, b, repo);
    rows.push({
      key: b.t,
      html: `<tr data-row="backup" data-record="${esc(b.status.path)}"${b.status.genuine ? '' : ' class="gap"'}>
<td>${when(model.clock, b.t)}</td><td>${esc(r.host)}</td><td><a href="${rel(from, repoHref(r.host, r.repository))}">${esc(r.repository)}</a></td>
<td>${kindText(r.kind)}; ${r.unchanged ? t('sin cambios', 'unchanged') : t('completo', 'full')}</td>
<td class="num">${bytes(r.size.bytes)}<br><span class="muted">${r.size.files} ${t('archivos', 'files')}</span></td><td class="num">${bytes(prev)}</td><td class="num">${prev === null ? '—' : signedBytes(r.size.bytes - prev)}</td>
<td>${levelText(r.verification.level)}</td><td>${jaa}</td><td>${csc}</td><td>${TRIGGER(r.trigger, r.operator)}</td><td>${observations(b)}</td><td>${recordLink(from, b.status)}</td></tr>`,
    });
  }
  for (const g of page.gaps) {
    const what = g.days.length ? `${t('días sin respaldo', 'days without a backup')}: ${g.days.map(esc).join(', ')}` : t('ningún respaldo en el periodo', 'no backup in the period');
    rows.push({
      key: model.clock.startOf(g.days[0] ?? g.period.first),
      html: `<tr data-row="gap" class="gap"><td>${esc(g.days[0] ?? g.period.first)}</td><td>${esc(g.repo.host)}</td><td><a href="${rel(from, repoHref(g.repo.host, g.repo.name))}">${esc(g.repo.name)}</a></td><td>${kindText(g.repo.kind)}</td><td colspan="8"><strong>${t('SIN RESPALDO', 'NO BACKUP')}</strong>: ${what}</td><td>—</td></tr>`,
    });
  }
  rows.sort((a, b) => a.key - b.key);
  return `<table class="log"><thead>${formHeadRow(head, 13)}<tr>${th('Fecha y hora', 'Date and time')}${th('Servidor', 'Server')}${th('Repositorio', 'Repository')}${th('Tipo y nivel', 'Kind and level')}${th('Tamaño', 'Size', 'num')}${th('Tamaño anterior', 'Previous size', 'num')}${th('Diferencia', 'Difference', 'num')}${th('Verificación', 'Verification')}${th('Copia JAA', 'JAA copy')}${th('Copia CSC y etiqueta', 'CSC copy and label')}${th('Ejecución', 'Run')}${th('Observaciones', 'Observations')}${th('Registro', 'Record')}</tr></thead>
<tbody>${rows.map((r) => r.html).join('\n') || `<tr><td colspan="13">${t('Sin respaldos en este periodo.', 'No backups in this period.')}</td></tr>`}</tbody></table>`;
}

/** The header block goes inside the log's <thead>, so that printing repeats it on every sheet. */
const formHeadRow = (head: string, cols: number) => `<tr class="formhead-row"><td colspan="${cols}" style="padding:0;border:0">${head}</td></tr>`;

function dse05(model: Model, from: string, page: FormPage, head: string): string {
  const req = page.requests
    .map((r) => {
      const q = r.request!;
      const what = q.type === 'backup' ? `${t('respaldo', 'backup')}: ${kindText(q.kind)}` : `${t('recuperación', 'restore')}: ${esc(q.reason)}`;
      return `<tr data-row="request"><td><a href="${rel(from, requestHref(r.id))}">${esc(r.id)}</a></td><td>${esc(q.date)}</td><td>${esc(q.requester.name)}<br><span class="muted">${esc(q.requester.area)}</span></td><td>${what}</td><td>${esc(q.host)}</td><td>${esc(q.repository)}</td><td>${state(r.state)}</td><td>${approverText(r)}</td></tr>`;
    })
    .join('\n');
  const res = page.restores
    .map((e) => {
      const r = e.record;
      return `<tr data-row="restore"><td>${when(model.clock, e.t)}</td><td>${esc(r.host)}</td><td>${esc(r.repository)}</td><td><code>${esc(r.snapshot.id)}</code>${r.point_in_time ? `<br>${t('al', 'to')} ${when(model.clock, r.point_in_time)}` : ''}</td><td>${esc(r.reason)}${r.reason_detail ? `: ${esc(r.reason_detail)}` : ''}</td><td>${requestCell(from, r.request)}</td><td>${r.source_copy === 'primary' ? 'JAA' : 'CSC'}</td><td>${esc(r.verification.files)} ${t('archivos', 'files')}, ${esc(r.verification.mismatches)} ${t('diferencias', 'mismatches')}</td><td>${r.result === 'ok' ? state('passed') : state('failed')}</td><td>${TRIGGER(r.trigger, r.operator)}</td><td>${recordLink(from, e.status)}</td></tr>`;
    })
    .join('\n');
  const fail = page.failures
    .map((e) => {
      const r = e.record;
      return `<tr data-row="failure"><td>${when(model.clock, e.t)}</td><td>${esc(r.host)}</td><td>${esc(r.repository ?? '—')}</td><td>${esc(r.stage)}</td><td>${esc(r.cause)}</td><td>${esc(r.hint)}</td><td>${TRIGGER(r.trigger, r.operator)}</td><td>${recordLink(from, e.status)}</td></tr>`;
    })
    .join('\n');
  const empty = (n: number) => `<tr><td colspan="${n}">${t('Ninguno en este periodo.', 'None in this period.')}</td></tr>`;
  return `<table class="log"><thead>${formHeadRow(head, 8)}<tr><th colspan="8" scope="colgroup">${t('Solicitudes de respaldo y de recuperación', 'Backup and restore requests')}</th></tr><tr>${th('N.º', 'No.')}${th('Fecha', 'Date')}${th('Solicitante y área', 'Requester and area')}${th('Tipo', 'Type')}${th('Servidor', 'Server')}${th('Repositorio', 'Repository')}${th('Estado', 'State')}${th('Aprobó (llave)', 'Approved by (key)')}</tr></thead><tbody>${req || empty(8)}</tbody></table>
<table class="log"><thead>${formHeadRow(head, 11)}<tr><th colspan="11" scope="colgroup">${t('Recuperación de información', 'Information restored')}</th></tr><tr>${th('Fecha y hora', 'Date and time')}${th('Servidor', 'Server')}${th('Repositorio', 'Repository')}${th('Instantánea', 'Snapshot')}${th('Motivo', 'Reason')}${th('Solicitud', 'Request')}${th('Copia usada', 'Copy used')}${th('Verificación', 'Verification')}${th('Resultado', 'Result')}${th('Ejecución', 'Run')}${th('Registro', 'Record')}</tr></thead><tbody>${res || empty(11)}</tbody></table>
<table class="log"><thead>${formHeadRow(head, 8)}<tr><th colspan="8" scope="colgroup">${t('Bitácora de fallas', 'Failure log')}</th></tr><tr>${th('Fecha y hora', 'Date and time')}${th('Servidor', 'Server')}${th('Repositorio', 'Repository')}${th('Etapa', 'Stage')}${th('Causa', 'Cause')}${th('Qué hacer', 'What to do')}${th('Ejecución', 'Run')}${th('Registro', 'Record')}</tr></thead><tbody>${fail || empty(8)}</tbody></table>`;
}

function approverText(r: RequestView): string {
  const a = r.approval;
  if (!a) return '—';
  if (!a.valid) return `<span class="bad">${t('no cuenta', 'does not count')}: ${esc(a.reason)}</span>`;
  return `${esc(a.principal ?? '')}<br><code>${esc(a.key ?? '')}</code>`;
}

function csc01(model: Model, from: string, page: FormPage, head: string): string {
  const year = Number(page.period.key);
  const months = ['ene', 'feb', 'mar', 'abr', 'may', 'jun', 'jul', 'ago', 'sep', 'oct', 'nov', 'dic'];
  const monthsEn = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const thisMonth = model.clock.day(model.now).slice(0, 7);
  const rows = yearPlan(model, year)
    .map(({ repo, months: m }) => {
      const cells = m
        .map((c, i) => {
          const key = `${year}-${String(i + 1).padStart(2, '0')}`;
          const short = key < thisMonth && c.done < c.planned;
          return `<td class="num${short ? ' gap' : ''}" data-month="${key}">${c.done}/${c.planned}</td>`;
        })
        .join('');
      const done = m.reduce((n, c) => n + c.done, 0);
      const planned = m.reduce((n, c) => n + c.planned, 0);
      return `<tr data-row="plan" data-repo="${esc(`${repo.host}/${repo.name}`)}"><td>${esc(repo.host)}</td><td><a href="${rel(from, repoHref(repo.host, repo.name))}">${esc(repo.name)}</a></td><td>${kindText(repo.kind)}</td><td>${scheduleText(repo.plan.describe)}</td><td>${requestCell(from, repo.request?.id ?? 'unrequested')}</td>${cells}<td class="num"><strong>${done}/${planned}</strong></td></tr>`;
    })
    .join('\n');
  return `<p class="muted">${t('Cada celda: respaldos hechos / planeados por el calendario del repositorio en el mes. En rojo: meses pasados con menos respaldos que los planeados.', 'Each cell: backups done / planned by the repository\'s schedule in the month. Red: past months with fewer backups than planned.')}</p>
<table class="log"><thead>${formHeadRow(head, 18)}<tr>${th('Servidor', 'Server')}${th('Repositorio', 'Repository')}${th('Tipo', 'Kind')}${th('Calendario', 'Schedule')}${th('Solicitud', 'Request')}${months.map((mo, i) => `<th scope="col" class="num">${t(mo, monthsEn[i]!)}</th>`).join('')}${th('Año', 'Year', 'num')}</tr></thead><tbody>${rows || `<tr><td colspan="18">${t('Sin repositorios.', 'No repositories.')}</td></tr>`}</tbody></table>`;
}

function csc02(model: Model, from: string, page: FormPage, head: string): string {
  const rows = page.copies
    .map((e) => {
      const c = e.record;
      const receipt = model.receipts.get(`${c.host}/${c.repository}/${c.snapshot.id}`);
      const rc = receipt
        ? `${esc(receipt.record.received_by)} ${when(model.clock, receipt.t)}: ${receipt.record.result === 'ok' ? state('passed') : `<span class="bad">${esc(receipt.record.result)}</span>`}<br>${recordLink(from, receipt.status)}`
        : `<strong class="bad">${t('SIN ACUSE', 'NO RECEIPT')}</strong>`;
      return `<tr data-row="copy"><td>${when(model.clock, e.t)}</td><td>${esc(c.host)}</td><td>${esc(c.repository)}</td><td><code>${esc(c.snapshot.id)}</code></td><td>${esc(c.label)}</td><td class="num">${bytes(c.bytes)}<br><span class="muted">${c.files} ${t('archivos', 'files')}</span></td><td>${esc(c.verified.method)}${c.verified.scope ? ` (${esc(c.verified.scope)})` : ''}: ${c.verified.result === 'ok' ? state('passed') : state('failed')}${c.repair ? `<br>${t('reparación', 'repair')}` : ''}</td><td><code>${esc(c.verified.manifest.slice(0, 19))}…</code></td><td>${rc}</td><td>${recordLink(from, e.status)}</td></tr>`;
    })
    .join('\n');
  return `<table class="log"><thead>${formHeadRow(head, 10)}<tr>${th('Entregado', 'Delivered')}${th('Servidor', 'Server')}${th('Repositorio', 'Repository')}${th('Instantánea', 'Snapshot')}${th('Etiqueta', 'Label')}${th('Tamaño', 'Size', 'num')}${th('Verificación', 'Verification')}${th('Manifiesto', 'Manifest')}${th('Recibido por CSC', 'Received by CSC')}${th('Registro', 'Record')}</tr></thead><tbody>${rows || `<tr><td colspan="10">${t('Sin entregas en este periodo.', 'No deliveries in this period.')}</td></tr>`}</tbody></table>`;
}

function csc03(model: Model, from: string, page: FormPage, head: string): string {
  const rows = page.loans
    .map((e) => {
      const l = e.record;
      return `<tr data-row="loan"><td>${when(model.clock, e.t)}</td><td>${esc(l.host)}</td><td>${esc(l.repository)}</td><td><code>${esc(l.snapshot)}</code></td><td>${esc(l.from)}</td><td>${esc(l.label)}</td><td>${esc(l.reason)}</td><td>${requestCell(from, l.request)}</td><td>${TRIGGER(l.trigger, l.operator)}</td><td>${recordLink(from, e.status)}</td></tr>`;
    })
    .join('\n');
  return `<table class="log"><thead>${formHeadRow(head, 10)}<tr>${th('Fecha y hora', 'Date and time')}${th('Servidor', 'Server')}${th('Repositorio', 'Repository')}${th('Instantánea', 'Snapshot')}${th('Prestada de', 'Borrowed from')}${th('Etiqueta', 'Label')}${th('Motivo', 'Reason')}${th('Solicitud', 'Request')}${th('Ejecución', 'Run')}${th('Registro', 'Record')}</tr></thead><tbody>${rows || `<tr><td colspan="10">${t('Sin préstamos en este periodo.', 'No loans in this period.')}</td></tr>`}</tbody></table>`;
}

const FORM_BODIES: Record<string, typeof backupRows> = { 'dse-05': dse05, 'csc-01': csc01, 'csc-02': csc02, 'csc-03': csc03 };

/** One page of one form. */
export function formPage(model: Model, from: string, page: FormPage, pages: FormPage[]): string {
  const head = formHead(model, page.form, periodText(page.period));
  const i = pages.indexOf(page);
  const prev = pages[i - 1];
  const next = pages[i + 1];
  const pager = `<nav class="pager" aria-label="${esc(`${page.form.code}: periodos / periods`)}"><a href="${rel(from, 'forms.html')}">${t('Todos los formatos', 'All forms')}</a>${prev ? `<a href="${rel(from, formHref(page.form.slug, prev.period.key))}" rel="prev">← ${periodText(prev.period)}</a>` : ''}${next ? `<a href="${rel(from, formHref(page.form.slug, next.period.key))}" rel="next">${periodText(next.period)} →</a>` : ''}</nav>`;
  const body = (FORM_BODIES[page.form.slug] ?? backupRows)(model, from, page, head);
  return `<h1 class="noprint">${esc(page.form.code)} — ${periodText(page.period)}</h1>${pager}<div class="form-sheet" data-form="${esc(page.form.code)}" data-period="${esc(page.period.key)}">${body}</div>`;
}

/** The list of forms and their pages. */
export function formsIndex(model: Model, from: string, forms: Map<string, FormPage[]>): string {
  return `<h1>${t('Formatos', 'Forms')}</h1><p>${t('Los formatos de la tabla 6.0 de PRO 7.5 DSE 02, llenados con los registros. Cada página es un periodo y se imprime como el formato en papel (carta o A4).', 'The forms of table 6.0 of PRO 7.5 DSE 02, filled from the records. Each page is one period and prints like the paper form (Letter or A4).')}</p>
${FORMS.map((form) => {
  const pages = [...(forms.get(form.slug) ?? [])].reverse();
  const links = pages
    .map((p) => {
      const gaps = p.gaps.length;
      return `<li><a href="${rel(from, formHref(form.slug, p.period.key))}">${periodText(p.period)}</a> <span class="muted">(${rowCount(p)} ${t('renglones', 'rows')}${gaps ? `; <span class="bad">${gaps} ${t('huecos', 'gaps')}</span>` : ''})</span></li>`;
    })
    .join('');
  return `<section id="${form.slug}"><h2>${esc(form.code)}: ${t(model.procedure?.forms.find((f) => f.code === form.code)?.title ?? form.es, form.en)}</h2><ul>${links || `<li>${t('Sin periodos.', 'No periods.')}</li>`}</ul></section>`;
}).join('\n')}`;
}

/** Retention: each form's window, the periods it holds, its holes; each repository's snapshots and their expiry. */
export function retention(model: Model, from: string, forms: Map<string, FormPage[]>): string {
  const sections = FORMS.map((form) => {
    const w = formWindow(model, form);
    const pages = (forms.get(form.slug) ?? []).filter((p) => p.period.last >= w.first && p.period.first <= w.last);
    const all = periodsBetween(form.period, w.first, w.last);
    const held = pages.filter((p) => rowCount(p) > 0);
    // The holes are the form's own (formPages found them in this window).
    const gaps = pages.flatMap((p) => p.gaps);
    const gapRows = gaps
      .map((g) => `<tr data-row="gap" class="gap"><td>${esc(g.repo.host)}</td><td><a href="${rel(from, repoHref(g.repo.host, g.repo.name))}">${esc(g.repo.name)}</a></td><td><a href="${rel(from, formHref(form.slug, g.period.key))}">${periodText(g.period)}</a></td><td>${g.days.length ? g.days.map(esc).join(', ') : t('todo el periodo', 'the whole period')}</td></tr>`)
      .join('\n');
    return `<section id="${form.slug}" data-form="${esc(form.code)}"><h2>${esc(form.code)}</h2>
<p>${t(`Se conserva ${w.months === 12 ? '1 año' : `${w.months} meses`}: del ${w.first} al ${w.last}.`, `Kept ${w.months === 12 ? '1 year' : `${w.months} months`}: from ${w.first} to ${w.last}.`)} ${t(`Periodos en la ventana: ${all.length}; con registros: ${held.length}.`, `Periods in the window: ${all.length}; with entries: ${held.length}.`)}</p>
${form.kinds.length ? (gaps.length ? `<table><caption>${t('Huecos: periodos sin el respaldo que el calendario pedía', 'Gaps: periods without the backup the schedule asked for')}</caption><thead><tr>${th('Servidor', 'Host')}${th('Repositorio', 'Repository')}${th('Periodo', 'Period')}${th('Días sin respaldo', 'Days without a backup')}</tr></thead><tbody>${gapRows}</tbody></table>` : `<p data-gaps="0">${t('Sin huecos en la ventana.', 'No gaps in the window.')}</p>`) : ''}
</section>`;
  }).join('\n');
  const snaps = model.repos
    .map((repo) => {
      const kept = keptSnapshots(repo);
      if (kept.length === 0) return '';
      const exp = repo.retention ? expiries(kept, repo.retention, repo.plan, model.clock.timeZone, model.now) : undefined;
      const rules = repo.retention ? esc(describeRules(repo.retention)) : t('sin reglas: se conserva todo', 'no rules: everything is kept');
      return `<tr><td>${esc(repo.host)}</td><td><a href="${rel(from, repoHref(repo.host, repo.name))}">${esc(repo.name)}</a></td><td>${rules}</td><td>${kept.length}</td><td>${kept
        .slice(-8)
        .map((id) => `<code>${esc(id)}</code> → ${exp ? (exp.get(id) ? esc(model.clock.day(exp.get(id)!)) : t('más de un año', 'over a year')) : '—'}`)
        .join('<br>')}${kept.length > 8 ? `<br><span class="muted">${t(`y ${kept.length - 8} más antiguas`, `and ${kept.length - 8} older`)}</span>` : ''}</td></tr>`;
    })
    .join('\n');
  return `<h1>${t('Retención', 'Retention')}</h1>
<p>${t('Cada formato se conserva un año (tabla 6.0). Un periodo sin el respaldo que pedía el calendario es un hueco visible, no una ausencia.', 'Every form is kept one year (table 6.0). A period without the backup its schedule asked for is a visible gap, not an absence.')}</p>
${sections}
<h2>${t('Instantáneas conservadas y cuándo vencen', 'Snapshots kept and when they expire')}</h2>
<p class="muted">${t('Según las reglas de retención del repositorio, si los respaldos siguen su calendario: la fecha es exacta en los próximos 14 respaldos, y después aproximada a 7 y luego a 30 respaldos. Los registros nunca se borran.', 'Under the repository\'s retention rules, if backups go on as scheduled: the date is exact within the next 14 backups, then to within 7, then 30 backups. Records are never pruned.')}</p>
<table><thead><tr>${th('Servidor', 'Host')}${th('Repositorio', 'Repository')}${th('Reglas', 'Rules')}${th('Conservadas', 'Kept')}${th('Instantánea → vence', 'Snapshot → expires')}</tr></thead><tbody>${snaps}</tbody></table>`;
}

/** Snapshots on JAA's target now: backed up and not yet pruned, oldest first. */
function keptSnapshots(repo: RepoView): string[] {
  const deleted = new Set(repo.prunes.filter((p) => p.status.genuine && p.record.target === 'primary').flatMap((p) => p.record.deleted));
  return [...new Set(repo.backups.filter((b) => b.status.genuine && !deleted.has(b.record.snapshot.id)).map((b) => b.record.snapshot.id))];
}

/** PRO 7.5 DSE 02 as data, and who changed the trust policy. */
export function procedurePage(model: Model): string {
  const p = model.procedure;
  const changes = model.trust?.policy.changes ?? [];
  const history = model.trust?.git
    ? `<table><thead><tr>${th('Fecha', 'Date')}${th('Commit', 'Commit')}${th('Autor', 'Author')}${th('Firmado por', 'Signed by')}${th('Estado', 'Status')}</tr></thead><tbody>${changes
        .map((c) => `<tr data-status="${esc(c.status)}"><td>${when(model.clock, c.date)}</td><td><code>${esc(c.commit.slice(0, 12))}</code></td><td>${esc(c.author)}</td><td>${c.key ? `${esc(c.principal ?? '')}<br><code>${esc(c.key)}</code>` : t('sin firma', 'unsigned')}</td><td>${esc(c.status)}${c.reason ? `: ${esc(c.reason)}` : ''}</td></tr>`)
        .join('\n')}</tbody></table>`
    : `<p class="bad">${t('La carpeta de registros no está en git: no se puede mostrar quién cambió la política.', 'The records folder is not in git: who changed the policy cannot be shown.')}</p>`;
  if (!p) return `<h1>${t('Procedimiento', 'Procedure')}</h1><p class="bad">${esc(model.procedureProblem)}</p><h2>${t('Historia de la política de confianza', 'Trust policy history')}</h2>${history}`;
  return `<h1>${esc(p.code)}: ${esc(p.title)}</h1>
<dl class="fields"><dt>${t('Código', 'Code')}</dt><dd>${esc(p.code)}</dd><dt>${t('Fecha de emisión', 'Issued')}</dt><dd>${esc(p.issued)}</dd><dt>${t('Revisión', 'Revision')}</dt><dd>${esc(p.revision.number)} (${esc(p.revision.date)})</dd><dt>${t('Elaboró', 'Prepared by')}</dt><dd>${esc(p.prepared_by)}</dd><dt>${t('Aprobó', 'Approved by')}</dt><dd>${esc(p.approved_by)}</dd><dt>${t('Páginas', 'Pages')}</dt><dd>${esc(p.pages)}</dd></dl>
<h2>${t('Responsables (3.0)', 'Roles (3.0)')}</h2><table><thead><tr>${th('Clave', 'Code')}${th('Quién', 'Who')}${th('Fuente', 'Source')}</tr></thead><tbody>${p.roles.map((r) => `<tr><td>${esc(r.code)}</td><td>${esc(r.name)}</td><td>${esc(r.source)}</td></tr>`).join('')}</tbody></table>
<h2>${t('Formatos (6.0)', 'Forms (6.0)')}</h2><table><thead><tr>${th('Código', 'Code')}${th('Título', 'Title')}${th('Retención', 'Retention')}</tr></thead><tbody>${p.forms.map((f) => `<tr data-form="${esc(f.code)}"><td>${FORMS.some((x) => x.code === f.code) ? `<a href="forms.html#${FORMS.find((x) => x.code === f.code)!.slug}">${esc(f.code)}</a>` : esc(f.code)}</td><td>${esc(f.title)}</td><td>${esc(f.retention)}</td></tr>`).join('')}</tbody></table>
<h2>${t('Historial de revisiones (7.0)', 'Revision history (7.0)')}</h2><table class="revisions"><thead><tr>${th('Revisión', 'Revision')}${th('Descripción', 'Description')}${th('Fecha', 'Date')}</tr></thead><tbody>${p.revisions.map((r) => `<tr><td>${esc(r.number)}</td><td>${esc(r.description)}</td><td>${esc(r.date)}</td></tr>`).join('')}</tbody></table>
<h2>${t('Historia de la política de confianza (policy/)', 'Trust policy history (policy/)')}</h2>
<p>${model.trust?.policy.anchor ? t(`Anclada en el commit ${model.trust.policy.anchor.commit.slice(0, 12)}, firmado por ${model.trust.policy.anchor.principal} (${model.trust.policy.anchor.key}).`, `Anchored at commit ${model.trust.policy.anchor.commit.slice(0, 12)}, signed by ${model.trust.policy.anchor.principal} (${model.trust.policy.anchor.key}).`) : `<span class="bad">${t('Ningún aprobador firmó la política: las aprobaciones no cuentan.', 'No approver signed the policy: approvals do not count.')}</span>`}</p>
${history}`;
}

/** A year of days as squares: green with a backup, red with a failure. */
function calendar(model: Model, backups: number[], failures: number[]): string {
  const start = model.yearDays[0]!;
  const today = model.yearDays.at(-1)!;
  const countBy = (times: number[]) => {
    const n = new Map<Day, number>();
    for (const x of times) {
      const day = model.clock.day(x);
      n.set(day, (n.get(day) ?? 0) + 1);
    }
    return n;
  };
  const b = countBy(backups);
  const f = countBy(failures);
  let cells = '';
  let days = 0;
  for (const d of model.yearDays) {
    const nb = b.get(d) ?? 0;
    const nf = f.get(d) ?? 0;
    days += nb > 0 ? 1 : 0;
    cells += `<span class="${nb && nf ? 'bf' : nb ? 'b' : nf ? 'f' : ''}" title="${d}: ${nb} respaldo(s) / backup(s), ${nf} falla(s) / failure(s)"></span>`;
  }
  return `<div class="calendar" role="img" aria-label="${esc(`Calendario / calendar: ${days} días con respaldo / days with a backup, ${start} – ${today}`)}">${cells}</div><p class="legend muted">${t('Del', 'From')} ${start} ${t('al', 'to')} ${today}: <i class="sw" style="background:#1a7f37"></i>${t('respaldo', 'backup')} <i class="sw" style="background:#cf222e"></i>${t('falla', 'failure')} <i class="sw" style="background:#bf8700"></i>${t('ambos', 'both')} <i class="sw" style="background:#ebedf0"></i>${t('nada', 'nothing')}</p>`;
}

/** Snapshot size over time (clause 4.2.1 made visible), as inline SVG. */
function sizeChart(model: Model, repo: RepoView): string {
  const pts = repo.backups.filter((b) => b.status.genuine);
  if (pts.length === 0) return `<p>${t('Sin respaldos que graficar.', 'No backups to chart.')}</p>`;
  const W = 720;
  const H = 220;
  const L = 70;
  const B = 30;
  const t0 = pts[0]!.t;
  const t1 = Math.max(pts.at(-1)!.t, t0 + 1);
  const max = Math.max(...pts.map((p) => p.record.size.bytes), 1);
  const x = (tt: number) => L + ((tt - t0) / (t1 - t0)) * (W - L - 10);
  const y = (v: number) => H - B - (v / max) * (H - B - 10);
  const line = pts.map((p) => `${x(p.t).toFixed(1)},${y(p.record.size.bytes).toFixed(1)}`).join(' ');
  const dots = pts
    .slice(-400)
    .map((p) => {
      const warn = p.record.verification.size?.result === 'warning';
      return `<circle cx="${x(p.t).toFixed(1)}" cy="${y(p.record.size.bytes).toFixed(1)}" r="${warn ? 4 : 2.5}" fill="${warn ? '#cf222e' : '#0550ae'}"><title>${esc(`${model.clock.text(p.t)}: ${bytes(p.record.size.bytes)}${warn ? ` (${p.record.verification.size?.change_percent} %)` : ''}`)}</title></circle>`;
    })
    .join('');
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(`Tamaño de las instantáneas / snapshot size: ${bytes(pts[0]!.record.size.bytes)} → ${bytes(pts.at(-1)!.record.size.bytes)}`)}" xmlns="http://www.w3.org/2000/svg">
<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="#57606a"/><line x1="${L}" y1="10" x2="${L}" y2="${H - B}" stroke="#57606a"/>
<text x="${L - 6}" y="14" text-anchor="end" font-size="11" fill="#1f2328">${esc(bytes(max))}</text><text x="${L - 6}" y="${H - B}" text-anchor="end" font-size="11" fill="#1f2328">0</text>
<text x="${L}" y="${H - 10}" font-size="11" fill="#1f2328">${esc(model.clock.day(t0))}</text><text x="${W - 10}" y="${H - 10}" text-anchor="end" font-size="11" fill="#1f2328">${esc(model.clock.day(t1))}</text>
<polyline points="${line}" fill="none" stroke="#0550ae" stroke-width="1.5"/>${dots}</svg>`;
}

function eventRows<T extends AnyRecord['type']>(model: Model, from: string, entries: Entry<T>[], describe: (e: Entry<T>) => string): string {
  return entries
    .slice()
    .reverse()
    .map((e) => `<tr><td>${when(model.clock, e.t)}</td><td>${describe(e)}</td><td>${recordLink(from, e.status)}</td></tr>`)
    .join('\n');
}

/** How many of a list a host or repository page shows, newest first; every one is on the forms and the record pages. */
const SHOWN = 60;
const more = (n: number) => (n > SHOWN ? `<p class="muted">${t(`Se muestran los ${SHOWN} más recientes de ${n}; todos están en los formatos y en las páginas de registros.`, `The newest ${SHOWN} of ${n} are shown; all are on the forms and the record pages.`)}</p>` : '');

function eventTable<T extends AnyRecord['type']>(model: Model, from: string, title: [string, string], entries: Entry<T>[], describe: (e: Entry<T>) => string): string {
  return `<h2>${t(...title)} <span class="muted">(${entries.length})</span></h2>${entries.length ? `<table><thead><tr>${th('Fecha', 'Date')}${th('Detalle', 'Detail')}${th('Registro', 'Record')}</tr></thead><tbody>${eventRows(model, from, entries.slice(-SHOWN), describe)}</tbody></table>${more(entries.length)}` : `<p>${t('Ninguno.', 'None.')}</p>`}`;
}

export function hostPage(model: Model, from: string, host: HostView): string {
  const report = host.report;
  const blocks = blockCount(report.records);
  const repos = host.repos
    .map((r) => `<tr data-state="${r.state}"><td><a href="${rel(from, repoHref(r.host, r.name))}">${esc(r.name)}</a></td><td>${kindText(r.kind)}</td><td>${state(r.state)}</td><td>${r.lastGood ? when(model.clock, r.lastGood.t) : '—'}</td><td>${r.backups.length}</td><td>${r.failures.length}</td><td>${requestCell(from, r.request?.id ?? 'unrequested')}</td></tr>`)
    .join('\n');
  const all = host.repos.flatMap((r) => r.backups.filter((b) => b.status.genuine).map((b) => b.t));
  const fails = [...host.repos.flatMap((r) => r.failures.map((f) => f.t)), ...host.other.filter((e) => e.record.type === 'failure').map((e) => e.t)];
  return `<h1>${t('Servidor', 'Host')} ${esc(host.host)}</h1>
<p>${t('Cadena de registros', 'Records chain')}: ${state(host.chain)} — ${report.records.length} ${t('registros', 'records')}${report.head ? `, ${t('cabeza', 'head')} n.º ${report.head.seq} <code>${esc(report.head.digest)}</code>` : ''}${host.checkpoint ? `<br>${t('Punto de control', 'Checkpoint')}: ${esc(host.checkpoint.message)}` : ''}</p>
${report.problems.filter((p) => p.severity === 'error').length ? `<ul class="bad">${report.problems.filter((p) => p.severity === 'error').slice(0, 50).map((p) => `<li><code>${esc(p.path)}</code>: ${esc(p.code)}: ${esc(p.message)}</li>`).join('')}</ul>` : ''}
<h2>${t('Calendario de respaldos', 'Backup calendar')}</h2>${calendar(model, all, fails)}
<h2>${t('Repositorios', 'Repositories')}</h2><table><thead><tr>${th('Repositorio', 'Repository')}${th('Tipo', 'Kind')}${th('Estado', 'State')}${th('Último respaldo bueno', 'Last good backup')}${th('Respaldos', 'Backups')}${th('Fallas', 'Failures')}${th('Solicitud', 'Request')}</tr></thead><tbody>${repos}</tbody></table>
<h2>${t('Registros', 'Records')}</h2><ul>${Array.from({ length: blocks }, (_, i) => `<li><a href="${rel(from, `records/${host.host}/${i + 1}.html`)}">n.º ${i * RECORDS_PER_PAGE + 1}–${Math.min((i + 1) * RECORDS_PER_PAGE, report.records.at(-1)!.seq)}</a></li>`).join('')}</ul>
${eventTable(model, from, ['Otros registros del servidor', 'Other records of the host'], host.other, (e) => `${esc(e.record.type)}${e.record.type === 'failure' ? `: ${esc(e.record.cause)}` : e.record.type === 'receipt' ? `: ${esc(e.record.origin)}/${esc(e.record.repository)} ${esc(e.record.snapshot)} ${esc(e.record.result)}` : ''}`)}`;
}

export function repoPage(model: Model, from: string, repo: RepoView): string {
  const backupRowsHtml = repo.backups
    .slice(-SHOWN)
    .reverse()
    .map((b) => {
      const r = b.record;
      const receipt = model.receipts.get(`${repo.host}/${repo.name}/${r.snapshot.id}`);
      const copy = repo.copyOf.get(r.snapshot.id);
      return `<tr data-row="backup"${b.status.genuine ? '' : ' class="gap"'}><td>${when(model.clock, b.t)}</td><td><code>${esc(r.snapshot.id)}</code></td><td class="num">${bytes(r.size.bytes)}</td><td class="num">${r.previous ? signedBytes(r.size.bytes - r.previous.bytes) : '—'}</td><td>${levelText(r.verification.level)}</td><td>${copy ? recordLink(from, copy.status, copy.record.label) : `<span class="bad">${t('pendiente', 'pending')}</span>`}</td><td>${receipt ? recordLink(from, receipt.status) : '—'}</td><td>${TRIGGER(r.trigger, r.operator)}</td><td>${recordLink(from, b.status)}</td></tr>`;
    })
    .join('\n');
  const q = repo.request?.request;
  return `<h1>${esc(repo.host)} / ${esc(repo.name)}</h1>
<dl class="fields"><dt>${t('Estado', 'State')}</dt><dd>${state(repo.state)}</dd><dt>${t('Tipo', 'Kind')}</dt><dd>${kindText(repo.kind)} — ${esc(formOfKind(repo.kind).code)}</dd><dt>${t('Calendario', 'Schedule')}</dt><dd>${scheduleText(repo.plan.describe)}${repo.nextDue ? `; ${t('siguiente', 'next')} ${when(model.clock, repo.nextDue)}` : ''}</dd><dt>${t('Solicitud', 'Request')}</dt><dd>${repo.request ? `<a href="${rel(from, requestHref(repo.request.id))}">${esc(repo.request.id)}</a> (${esc(q?.requester.name ?? '')})` : `<strong>${t('SIN SOLICITUD', 'UNREQUESTED')}</strong>`}</dd><dt>${t('Último respaldo bueno', 'Last good backup')}</dt><dd>${repo.lastGood ? `${when(model.clock, repo.lastGood.t)} (${recordLink(from, repo.lastGood.status)})` : '—'}</dd><dt>${t('Segunda copia', 'Second copy')}</dt><dd>${copyCell(model, from, repo)}</dd></dl>
<h2>${t('Calendario de respaldos', 'Backup calendar')}</h2>${calendar(model, repo.backups.filter((b) => b.status.genuine).map((b) => b.t), repo.failures.map((f) => f.t))}
<h2>${t('Tamaño de las instantáneas (4.2.1)', 'Snapshot size (4.2.1)')}</h2>${sizeChart(model, repo)}
<h2>${t('Respaldos', 'Backups')} <span class="muted">(${repo.backups.length})</span></h2>
<table><thead><tr>${th('Fecha', 'Date')}${th('Instantánea', 'Snapshot')}${th('Tamaño', 'Size', 'num')}${th('Diferencia', 'Difference', 'num')}${th('Verificación', 'Verification')}${th('Copia CSC', 'CSC copy')}${th('Acuse', 'Receipt')}${th('Ejecución', 'Run')}${th('Registro', 'Record')}</tr></thead><tbody>${backupRowsHtml || `<tr><td colspan="9">${t('Nunca respaldado.', 'Never backed up.')}</td></tr>`}</tbody></table>${more(repo.backups.length)}
${eventTable(model, from, ['Verificaciones', 'Verifications'], repo.verifies, (e) => { const v = e.record; return `${esc(v.reason)}, ${esc(v.target)}: ${v.snapshots.length} ${t('instantáneas', 'snapshots')}, ${esc(v.read.data)}; ${v.snapshots.some((s) => s.result === 'failed') ? state('failed') : state('passed')}`; })}
${eventTable(model, from, ['Copias a CSC', 'Copies to CSC'], repo.copies, (e) => { const c = e.record; return `${esc(c.label)}: ${c.verified.result === 'ok' ? state('passed') : state('failed')}${c.repair ? ` ${t('reparación', 'repair')}` : ''}`; })}
${eventTable(model, from, ['Recuperaciones', 'Restores'], repo.restores, (e) => { const r = e.record; return `${esc(r.reason)} → <code>${esc(r.destination)}</code>: ${r.result === 'ok' ? state('passed') : state('failed')}`; })}
${eventTable(model, from, ['Fallas', 'Failures'], repo.failures, (e) => `${esc(e.record.stage)}: ${esc(e.record.cause)}`)}
${eventTable(model, from, ['Depuraciones', 'Prunes'], repo.prunes, (e) => { const p = e.record; return `${esc(p.target)}: ${p.deleted.length} ${t('borradas', 'deleted')}, ${p.kept.length} ${t('conservadas', 'kept')}${p.held ? ` — ${esc(p.held)}` : ''}`; })}
${eventTable(model, from, ['Préstamos de media (CSC 03)', 'Media loans (CSC 03)'], repo.loans, (e) => esc(e.record.reason))}`;
}

/** Every field of a record as `path: value` lines. */
function fields(value: unknown, prefix = '', out: [string, string][] = []): [string, string][] {
  if (value !== null && typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [`${prefix}[${i}]`, v] as const) : Object.entries(value).map(([k, v]) => [prefix ? `${prefix}.${k}` : k, v] as const);
    if (entries.length === 0) out.push([prefix, Array.isArray(value) ? '[]' : '{}']);
    for (const [k, v] of entries) fields(v, k, out);
  } else out.push([prefix, String(value)]);
  return out;
}

/** One host's records, 200 to a page: every field, the raw YAML, signature and chain, and how to check it by hand. */
export function recordsPage(model: Model, from: string, host: HostView, block: number): string {
  const records = host.report.records;
  const lo = (block - 1) * RECORDS_PER_PAGE + 1;
  const hi = block * RECORDS_PER_PAGE;
  const blocks = blockCount(records);
  const pager = `<nav class="pager" aria-label="${esc(`${host.host}: páginas de registros / record pages`)}">${block > 1 ? `<a href="${block - 1}.html" rel="prev">← n.º ${lo - RECORDS_PER_PAGE}–${lo - 1}</a>` : ''}<a href="${rel(from, hostHref(host.host))}">${t('Servidor', 'Host')} ${esc(host.host)}</a>${block < blocks ? `<a href="${block + 1}.html" rel="next">n.º ${hi + 1}–${hi + RECORDS_PER_PAGE} →</a>` : ''}</nav>`;
  // The chain is in seq order: the page's records are one run of it, each between its neighbours.
  let articles = '';
  for (let i = records.findIndex((r) => r.seq >= lo); i >= 0 && i < records.length && records[i]!.seq <= hi; i++) articles += `${record(model, records[i]!, records[i - 1], records[i + 1], host.report.problems)}\n`;
  return `<h1>${t('Registros de', 'Records of')} ${esc(host.host)}: n.º ${lo}–${Math.min(hi, records.at(-1)?.seq ?? hi)}</h1>${pager}${articles}${pager}`;
}

function record(model: Model, s: RecordStatus, prev: RecordStatus | undefined, next: RecordStatus | undefined, hostProblems: Problem[]): string {
  const host = s.path.split('/')[1]!;
  const errors = s.problems.filter((p) => p.severity === 'error');
  const link = (x: RecordStatus | undefined, label: string) => (x ? `<a href="${recordBlock(x.seq) === recordBlock(s.seq) ? '' : `${recordBlock(x.seq)}.html`}#${recordAnchor(x)}" rel="${label}">n.º ${x.seq} (${esc(x.type)})</a>` : '—');
  const missing = hostProblems.some((p) => p.code === 'deleted' && p.seq === s.seq - 1);
  const chain =
    s.seq === 1
      ? t('primer registro (enrolamiento, prev: null)', 'first record (enrolment, prev: null)')
      : missing
        ? `<span class="bad">${t(`rota: falta el n.º ${s.seq - 1}, al que apunta prev`, `broken: no. ${s.seq - 1}, which prev names, is missing`)}</span>`
        : errors.some((p) => p.code === 'broken-link' || p.code === 'forked' || p.code === 'reordered')
          ? `<span class="bad">${t('rota', 'broken')}</span>`
          : t(`enlazada: prev es el sha256 del n.º ${s.seq - 1}`, `linked: prev is the sha256 of no. ${s.seq - 1}`);
  const cmd = `ssh-keygen -Y verify -f policy/allowed_signers -I ${host} -n ${RECORD_NAMESPACE} -s ${s.path}.sig < ${s.path}`;
  const dl = s.record ? fields(s.record).slice(0, 300).map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('') : '';
  return `<article class="record${s.genuine ? '' : ' broken'}" id="${recordAnchor(s)}" data-seq="${s.seq}" data-genuine="${s.genuine}">
<h2>${esc(host)} n.º ${s.seq} — ${esc(s.type)} ${s.genuine ? state('intact').replace(/data-state="intact"/, '') : `<strong class="bad">${t('NO ÍNTEGRO', 'BROKEN')}</strong>`}</h2>
<p>${s.at ? when(model.clock, s.at) : ''} · <code>${esc(s.path)}</code></p>
${errors.length ? `<ul class="bad">${errors.map((p) => `<li>${esc(p.code)}: ${esc(p.message)}</li>`).join('')}</ul>` : ''}
<dl class="fields"><dt>${t('Firma', 'Signature')}</dt><dd>${s.signer ? `${t('llave', 'key')} <code>${esc(s.signer)}</code>` : `<span class="bad">${t('no verificada', 'not verified')}</span>`}</dd><dt>${t('Cadena', 'Chain')}</dt><dd>${chain}</dd><dt>sha256</dt><dd><code>${esc(s.digest)}</code></dd><dt>${t('Anterior / siguiente', 'Previous / next')}</dt><dd>${link(prev, 'prev')} · ${link(next, 'next')}</dd>${dl}</dl>
<details><summary>${t('YAML tal como se firmó', 'The YAML as signed')}</summary><pre>${esc(s.bytes.toString('utf8'))}</pre></details>
<p>${t('Compruébelo a mano, en la carpeta de registros', 'Check it by hand, in the records folder')}:</p><pre><code>${esc(cmd)}</code></pre>
</article>`;
}

export function requestsPage(model: Model, from: string): string {
  if (!model.trust) return `<h1>${t('Solicitudes', 'Requests')}</h1><p class="bad">${t('El sitio se construyó sin la historia de git: las solicitudes y aprobaciones no se pueden comprobar (use respaldo site build).', 'The site was built without the git history: requests and approvals cannot be checked (use respaldo site build).')}</p>`;
  const rows = model.requests
    .map((r) => {
      const q = r.request;
      const what = !q ? '—' : q.type === 'backup' ? `${t('respaldo', 'backup')}: ${kindText(q.kind)}, ${q.schedule ? esc('every' in q.schedule ? q.schedule.every : q.schedule.cron) : t('calendario del procedimiento', "the procedure's schedule")}` : `${t('recuperación', 'restore')}: ${esc(q.reason)} → <code>${esc(q.destination)}</code>`;
      return `<tr id="${esc(r.id)}" data-request="${esc(r.id)}" data-state="${r.state}"><td>${esc(r.id)}</td><td>${what}</td><td>${q ? `${q.host === undefined ? '' : `<a href="${rel(from, hostHref(q.host))}">${esc(q.host)}</a>`} / ${esc(q.repository)}` : '—'}</td><td>${q ? `${esc(q.requester.name)}<br><span class="muted">${esc(q.requester.area)}</span>` : '—'}</td><td>${state(r.state)}${r.note ? `<br><span class="bad">${esc(r.note)}</span>` : ''}</td><td>${approverText(r)}</td><td><ol>${r.history.map((h) => `<li>${esc(h.at.slice(0, 10))}: ${t(h.es, h.en)}${h.entry ? ` (${recordLink(from, h.entry.status)})` : ''}</li>`).join('')}</ol></td></tr>`;
    })
    .join('\n');
  return `<h1>${t('Solicitudes (FOR 7.5 DSE 05)', 'Requests (FOR 7.5 DSE 05)')}</h1>
<p>${t('Una aprobación cuenta sólo si la añadió un commit firmado por un aprobador de la política vigente; la llave que firmó es la que se muestra.', 'An approval counts only when a commit signed by an approver of the policy in force added it; the key shown is the one that signed.')}</p>
<table><thead><tr>${th('N.º', 'No.')}${th('Qué', 'What')}${th('Servidor / repositorio', 'Host / repository')}${th('Solicitante', 'Requester')}${th('Estado', 'State')}${th('Aprobó (llave)', 'Decided by (key)')}${th('Historia', 'History')}</tr></thead><tbody>${rows || `<tr><td colspan="7">${t('Sin solicitudes.', 'No requests.')}</td></tr>`}</tbody></table>`;
}

export function integrityPage(model: Model, from: string): string {
  const f = model.folder;
  const hostsBroken = model.hosts.filter((h) => h.chain === 'broken').length;
  const approvals = model.trust?.approvals ?? [];
  const violated = model.findings.filter((x) => x.result !== 'ok').length + (model.trust?.policy.anchor ? (model.trust.checkpoints.filter((c) => !c.valid).length) : 0);
  const summary = `summary: ${f.total} records, ${f.total - f.broken} genuine, ${f.broken} broken; hosts: ${model.hosts.length - hostsBroken} intact, ${hostsBroken} broken; approvals: ${approvals.filter((a) => a.valid).length} valid, ${approvals.filter((a) => !a.valid).length} invalid; policy changes ignored: ${model.trust?.policy.ignored.length ?? 0}; checkpoints violated: ${violated}`;
  const chains = model.hosts
    .map((h) => `<tr data-host="${esc(h.host)}" data-chain="${h.chain}"><td><a href="${rel(from, hostHref(h.host))}">${esc(h.host)}</a></td><td class="num">${h.report.records.length}</td><td class="num">${h.report.records.filter((r) => !r.genuine).length}</td><td>${h.report.head ? `n.º ${h.report.head.seq} <code>${esc(h.report.head.digest.slice(0, 23))}…</code>` : '—'}</td><td>${state(h.chain)}</td><td>${h.checkpoint ? `${h.checkpoint.result === 'ok' ? state('passed') : state('broken')} ${esc(h.checkpoint.message)}` : '—'}</td></tr>`)
    .join('\n');
  const problems = model.problems.map((p) => `<li><code>${esc(p.where)}</code>: ${t(p.es, p.en)}</li>`).join('\n');
  const cps = (model.trust?.checkpoints ?? []).map((c) => `<tr><td><code>${esc(c.path)}</code></td><td>${c.valid ? state('passed') : state('broken')}</td><td>${esc(c.principal ?? '')} <code>${esc(c.key ?? '')}</code></td><td>${esc(c.reason ?? '')}</td></tr>`).join('');
  return `<h1>${t('Integridad', 'Integrity')}</h1>
<p data-integrity="${model.broken ? 'broken' : 'intact'}">${model.broken ? `<strong class="bad">${t('Hay problemas: cada uno se lista abajo.', 'There are problems: each is listed below.')}</strong>` : t('Todas las firmas y cadenas son íntegras.', 'Every signature and chain is intact.')}</p>
<p>${t('La misma línea que imprimen respaldo records verify y tools/audit.sh:', 'The same line respaldo records verify and tools/audit.sh print:')}</p><pre class="summary">${esc(summary)}</pre>
<p>${t('Compruébelo sin confiar en este sitio, en una copia de la carpeta de registros:', 'Check it without trusting this site, in a clone of the records folder:')}</p><pre><code>bash tools/audit.sh records/</code></pre>
${model.trust && !model.trust.git ? `<p class="bad">${t('La carpeta no es un repositorio git: las aprobaciones, la política y los puntos de control no se pudieron comprobar.', 'The folder is not a git repository: approvals, policy and checkpoints could not be checked.')}</p>` : ''}
<h2>${t('Cadenas por servidor', 'Chains per host')}</h2>
<table><thead><tr>${th('Servidor', 'Host')}${th('Registros', 'Records', 'num')}${th('No íntegros', 'Broken', 'num')}${th('Cabeza', 'Head')}${th('Cadena', 'Chain')}${th('Punto de control', 'Checkpoint')}</tr></thead><tbody>${chains}</tbody></table>
<h2>${t('Problemas', 'Problems')} <span class="muted">(${model.problems.length})</span></h2>${problems ? `<ul class="problems">${problems}</ul>` : `<p>${t('Ninguno.', 'None.')}</p>`}
<h2>${t('Puntos de control', 'Checkpoints')}</h2>${cps ? `<table><thead><tr>${th('Archivo', 'File')}${th('Cuenta', 'Counts')}${th('Firmado por', 'Signed by')}${th('Motivo', 'Reason')}</tr></thead><tbody>${cps}</tbody></table>` : `<p>${t('Ninguno.', 'None.')}</p>`}`;
}

/** The offline search index: one entry per host, repository, request and record, loaded by a classic script (works from file://). */
export function searchIndex(model: Model): string {
  const entries: [string, string, string][] = [];
  for (const h of model.hosts) entries.push(['host', h.host, hostHref(h.host)]);
  for (const r of model.repos) entries.push(['repo', `${r.host}/${r.name} ${KIND_WORDS[r.kind]?.join(' ') ?? ''} ${r.request?.id ?? 'unrequested'}`, repoHref(r.host, r.name)]);
  for (const r of model.requests) entries.push(['request', `${r.id} ${r.request?.host ?? ''}/${r.request?.repository ?? ''} ${r.request?.requester.name ?? ''} ${r.state}`, requestHref(r.id)]);
  for (const h of model.hosts)
    for (const s of h.report.records) {
      const rec = s.record as Record<string, unknown> | undefined;
      const snap = rec && typeof rec.snapshot === 'object' && rec.snapshot ? (rec.snapshot as { id?: string }).id : typeof rec?.snapshot === 'string' ? rec.snapshot : '';
      entries.push(['record', `${h.host} ${s.seq} ${s.type} ${(rec?.repository as string | undefined) ?? ''} ${snap ?? ''} ${s.at?.slice(0, 10) ?? ''}${s.genuine ? '' : ' broken'}`, recordHref(s)]);
    }
  return `window.RESPALDO_INDEX=${JSON.stringify(entries).replace(/</g, '\\u003c')};\n`;
}

export function searchPage(): string {
  return `<h1>${t('Búsqueda', 'Search')}</h1>
<form role="search" class="noprint" onsubmit="return false"><label for="sq">${t('Buscar servidores, repositorios, solicitudes y registros', 'Search hosts, repositories, requests and records')}</label> <input id="sq" type="search" autocomplete="off"></form>
<p id="count" aria-live="polite"></p><ol class="results" id="results"></ol>`;
}

