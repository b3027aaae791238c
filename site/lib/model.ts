/**
 * What the site shows, computed once from the checked records folder and the signed
 * history's verdicts (schemas/trust.ts): each repository's state, the rows of every form
 * per period, the holes in each form's one-year window, the requests and their history,
 * every chain's status. Pure: the loader (load.ts) does the reading.
 */
import { checkCheckpoint, type CheckpointFinding, type FolderReport, type RecordStatus } from '../../schemas/chain.js';
import { hostName, type RepositoryKind } from '../../schemas/common.js';
import type { Procedure } from '../../schemas/procedure.js';
import { retentionMonths } from '../../schemas/procedure.js';
import type { AnyRecord } from '../../schemas/record.js';
import { parseHead, type Request } from '../../schemas/request.js';
import { applyRetention, snapshotTime } from '../../schemas/retention.js';
import { dueState, planFor, type Plan } from '../../schemas/schedule.js';
import type { Retention, Schedule } from '../../schemas/config.js';
import type { ApprovalState, Trust } from '../../schemas/trust.js';
import { addDays, Clock, periodOf, periodsBetween, windowStart, type Day, type Period, type PeriodKind } from './periods.js';

type Of<T extends AnyRecord['type']> = Extract<AnyRecord, { type: T }>;

const DAY_MS = 86_400_000;

/** A record as the pages link to it. */
export interface Entry<T extends AnyRecord['type'] = AnyRecord['type']> {
  status: RecordStatus;
  record: Of<T>;
  /** Milliseconds of `at`. */
  t: number;
}

export type RepoState = 'ok' | 'due' | 'overdue' | 'failed' | 'never' | 'unrequested';

export interface RequestView {
  id: string;
  path: string;
  request: Request | undefined;
  problems: string[];
  approval: ApprovalState | undefined;
  state: 'pending' | 'approved' | 'rejected' | 'executed' | 'invalid';
  /** Why an approval on file does not count, or the request's own problems. */
  note: string | undefined;
  history: { at: string; es: string; en: string; entry?: Entry }[];
}

export interface RepoView {
  host: string;
  name: string;
  kind: RepositoryKind;
  /** The approved backup request, when JAA approved one. */
  request: RequestView | undefined;
  plan: Plan;
  state: RepoState;
  /** The schedule's verdict even for an unrequested repository. */
  schedule: 'ok' | 'due' | 'overdue' | 'never';
  nextDue: Date | undefined;
  /** When the repository began: its approval, or its first record. */
  since: number;
  backups: Entry<'backup'>[];
  failures: Entry<'failure'>[];
  copies: Entry<'copy'>[];
  receipts: Entry<'receipt'>[];
  verifies: Entry<'verify'>[];
  restores: Entry<'restore'>[];
  prunes: Entry<'prune'>[];
  loans: Entry<'media-loan'>[];
  lastGood: Entry<'backup'> | undefined;
  lastFailure: Entry<'failure'> | undefined;
  /** The newest genuine copy of the last good snapshot at CSC, and CSC's receipt of it. */
  copy: Entry<'copy'> | undefined;
  receipt: Entry<'receipt'> | undefined;
  anomalies: string[];
  retention: Retention | undefined;
  /** The newest genuine copy at CSC of each snapshot, by snapshot id. */
  copyOf: Map<string, Entry<'copy'>>;
}

export interface HostView {
  host: string;
  report: FolderReport['reports'][number];
  /** intact: every record genuine and the chain whole; broken otherwise. */
  chain: 'intact' | 'broken' | 'empty';
  checkpoint: CheckpointFinding | undefined;
  repos: RepoView[];
  /** Records that are not about one repository (enrolments, incidents, run failures) and receipts written by this host. */
  other: Entry[];
}

export interface FormSpec {
  code: string;
  slug: string;
  period: PeriodKind;
  kinds: RepositoryKind[];
  es: string;
  en: string;
}

/** The forms of table 6.0 that respaldo fills, and the period each page covers. */
export const FORMS: FormSpec[] = [
  { code: 'FOR 7.5 DSE 02', slug: 'dse-02', period: 'week', kinds: ['source'], es: 'Formato de respaldos para código fuente', en: 'Source code backup log' },
  { code: 'FOR 7.5 DSE 03', slug: 'dse-03', period: 'week', kinds: ['database'], es: 'Formato de respaldos para bases de datos', en: 'Database backup log' },
  { code: 'FOR 7.5 DSE 04', slug: 'dse-04', period: 'bimester', kinds: ['config', 'files'], es: 'Formato de respaldos para servidores', en: 'Server backup log (configuration, images and documents)' },
  { code: 'FOR 7.5 DSE 05', slug: 'dse-05', period: 'month', kinds: [], es: 'Formato para el registro de: solicitud de respaldo, recuperación de información y bitácora de fallas', en: 'Backup requests, restores and failure log' },
  { code: 'FOR 7.5 CSC 01', slug: 'csc-01', period: 'year', kinds: [], es: 'Plan anual y control de respaldos', en: 'Yearly plan and control of backups' },
  { code: 'FOR 7.5 CSC 02', slug: 'csc-02', period: 'month', kinds: [], es: 'Formato de entrega recepción de respaldos', en: 'Backups delivered to and received by CSC' },
  { code: 'FOR 7.5 CSC 03', slug: 'csc-03', period: 'year', kinds: [], es: 'Formato de solicitud préstamo de media', en: 'Media loans' },
];

export const formOfKind = (kind: RepositoryKind): FormSpec => FORMS.find((f) => f.kinds.includes(kind))!;

/** A hole: a period in which a repository had no backup although its schedule asked for one. */
export interface Gap {
  repo: RepoView;
  period: Period;
  /** For daily repositories: the days of the period without a backup. */
  days: Day[];
}

export interface FormPage {
  form: FormSpec;
  period: Period;
  backups: Entry<'backup'>[];
  gaps: Gap[];
  /** DSE 05: requests dated in the period, restores and failures. */
  requests: RequestView[];
  restores: Entry<'restore'>[];
  failures: Entry<'failure'>[];
  /** CSC 02 and 03. */
  copies: Entry<'copy'>[];
  loans: Entry<'media-loan'>[];
}

export interface Model {
  now: Date;
  clock: Clock;
  recordsDir: string;
  procedure: Procedure | undefined;
  procedureProblem: string | undefined;
  trust: Trust | undefined;
  folder: FolderReport;
  hosts: HostView[];
  repos: RepoView[];
  /** Repositories by `<host>/<name>`. */
  repoIndex: Map<string, RepoView>;
  /** The days of the calendars: from the Monday 52 weeks ago to today. */
  yearDays: Day[];
  requests: RequestView[];
  findings: CheckpointFinding[];
  /** Receipts by snapshot: `<origin>/<repository>/<snapshot>`. */
  receipts: Map<string, Entry<'receipt'>>;
  /** Every problem an auditor must see; the banner shows when there is one. */
  problems: { where: string; es: string; en: string }[];
  broken: boolean;
}

export interface ModelInput {
  folder: FolderReport;
  trust: Trust | undefined;
  procedure: Procedure | undefined;
  procedureProblem?: string | undefined;
  recordsDir: string;
  now: Date;
  timeZone: string;
}

const kindOf = (r: AnyRecord): RepositoryKind | undefined => ('kind' in r ? (r.kind as RepositoryKind | undefined) : undefined);
const repoOf = (r: AnyRecord): string | undefined => ('repository' in r && r.type !== 'receipt' ? r.repository : undefined);

/** The state the panel shows: failed before never before the schedule's verdict; unrequested above all but failed. */
export function repoState(input: { approved: boolean; lastGood: number | undefined; lastFailure: number | undefined; plan: Plan; now: Date }): { state: RepoState; schedule: RepoView['schedule']; nextDue: Date | undefined } {
  const due = dueState(input.plan, input.lastGood === undefined ? undefined : new Date(input.lastGood), input.now);
  const failed = input.lastFailure !== undefined && (input.lastGood === undefined || input.lastFailure > input.lastGood);
  const state: RepoState = failed ? 'failed' : !input.approved ? 'unrequested' : due.state;
  return { state, schedule: due.state, nextDue: due.nextDue };
}

/** Requests with their decision and what was done about them. */
export function requestViews(trust: Trust | undefined, executedBy: Map<string, Entry[]>): RequestView[] {
  if (!trust) return [];
  return trust.requests
    .map((r): RequestView => {
      const approval = trust.approvals.find((a) => a.id === r.id);
      const problems = r.problems.map((p) => `${p.field ? `${p.field}: ` : ''}${p.message}`);
      const done = executedBy.get(r.id) ?? [];
      const decided = approval?.valid ? approval.approval?.decision : undefined;
      const state: RequestView['state'] = problems.length > 0 ? 'invalid' : decided === 'rejected' ? 'rejected' : decided === 'approved' ? (done.some((e) => e.record.type !== 'failure') ? 'executed' : 'approved') : 'pending';
      const history: RequestView['history'] = [];
      if (r.request) history.push({ at: r.request.date, es: `solicitada por ${r.request.requester.name} (${r.request.requester.area})`, en: `requested by ${r.request.requester.name} (${r.request.requester.area})` });
      if (approval?.approval) {
        const who = approval.key ? `${approval.principal ?? '?'} (${approval.key})` : 'sin firma válida';
        const whoEn = approval.key ? `${approval.principal ?? '?'} (${approval.key})` : 'no valid signature';
        const verb = approval.approval.decision === 'approved' ? ['aprobada', 'approved'] : ['rechazada', 'rejected'];
        history.push({
          at: approval.date ?? approval.approval.at,
          es: `${verb[0]} por ${who}${approval.commit ? `, commit ${approval.commit.slice(0, 12)}` : ''}${approval.valid ? '' : ` — NO CUENTA: ${approval.reason ?? ''}`}`,
          en: `${verb[1]} by ${whoEn}${approval.commit ? `, commit ${approval.commit.slice(0, 12)}` : ''}${approval.valid ? '' : ` — DOES NOT COUNT: ${approval.reason ?? ''}`}`,
        });
      }
      const firstDone = done.find((e) => e.record.type !== 'failure');
      if (firstDone) history.push({ at: firstDone.record.at, es: `ejecutada: ${firstDone.record.type} n.º ${firstDone.status.seq} de ${firstDone.record.host}`, en: `carried out: ${firstDone.record.type} no. ${firstDone.status.seq} of ${firstDone.record.host}`, entry: firstDone });
      const runs = done.filter((e) => e.record.type === 'backup').length;
      if (runs > 1) history.push({ at: done.at(-1)!.record.at, es: `${runs} respaldos hechos con esta solicitud`, en: `${runs} backups made under this request` });
      for (const f of done.filter((e) => e.record.type === 'failure').slice(-3)) history.push({ at: f.record.at, es: `falla n.º ${f.status.seq} de ${f.record.host}`, en: `failure no. ${f.status.seq} of ${f.record.host}`, entry: f });
      history.sort((a, b) => a.at.localeCompare(b.at));
      return { id: r.id, path: r.path, request: r.request, problems, approval, state, note: problems.length > 0 ? problems.join('; ') : approval && !approval.valid ? approval.reason : undefined, history };
    })
    .sort((a, b) => a.id.localeCompare(b.id));
}

/**
 * When a repository was overdue: from each deadline (the schedule's next time after a good
 * backup, or after the repository began, plus the grace of `dueState`) to the next good
 * backup, or to now.
 */
export function overdueWindows(repo: RepoView, now: Date): [number, number][] {
  const grace = Math.min(repo.plan.interval / 4, DAY_MS);
  const times = [repo.since, ...repo.backups.filter((b) => b.status.genuine && b.t >= repo.since).map((b) => b.t)];
  const out: [number, number][] = [];
  times.forEach((a, i) => {
    const b = times[i + 1] ?? now.getTime();
    const deadline = repo.plan.next(new Date(a)).getTime() + grace;
    if (deadline < b) out.push([deadline, b]);
  });
  return out;
}

/**
 * The periods of a repository's form, within the one-year window, in which it was overdue
 * and made no backup: a hole in the paper log. A daily repository also names each day of
 * the period without a backup that fell in such a time.
 */
export function gapsOf(repo: RepoView, clock: Clock, windowFirst: Day, now: Date): Gap[] {
  const form = formOfKind(repo.kind);
  const today = clock.day(now);
  const windows = overdueWindows(repo, now);
  if (windows.length === 0) return [];
  const have = new Set<string>();
  const days = new Set<Day>();
  for (const b of repo.backups) {
    if (!b.status.genuine) continue;
    const day = clock.day(b.t);
    days.add(day);
    have.add(periodOf(form.period, day).key);
  }
  const daily = repo.plan.interval <= DAY_MS;
  const gaps: Gap[] = [];
  const from = [windowFirst, clock.day(windows[0]![0])].sort().at(-1)!;
  for (const period of periodsBetween(form.period, from, today)) {
    const start = clock.startOf(period.first);
    const end = clock.startOf(addDays(period.last, 1));
    const overdue = windows.filter(([a, b]) => a < end && b > start);
    if (overdue.length === 0) continue;
    if (daily) {
      const missed: Day[] = [];
      for (let d = period.first; d <= period.last && d <= today; d = addDays(d, 1)) {
        const ds = clock.startOf(d);
        const de = clock.startOf(addDays(d, 1));
        if (!days.has(d) && overdue.some(([a, b]) => a < de && b > ds)) missed.push(d);
      }
      if (missed.length > 0) gaps.push({ repo, period, days: missed });
    } else if (!have.has(period.key)) gaps.push({ repo, period, days: [] });
  }
  return gaps;
}

/**
 * When each kept snapshot leaves under the rules, if backups go on as scheduled: simulated
 * run by run for 14 runs, then 7 runs at a time up to 91, then 30 at a time (a later expiry
 * is known to the week, then to the month).
 */
export function expiries(ids: string[], rules: Retention, plan: Plan, timeZone: string, now: Date, steps = 400): Map<string, Date | undefined> {
  const out = new Map<string, Date | undefined>();
  let current = [...ids];
  const alive = new Set(current);
  let last = current.length > 0 ? snapshotTime(current.at(-1)!) : now;
  for (let i = 0; i < steps && alive.size > 0; ) {
    const stride = i < 14 ? 1 : i < 91 ? 7 : 30;
    for (let k = 0; k < stride; k++, i++) {
      last = plan.next(last);
      current.push(last.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, ''));
    }
    const kept = new Set(applyRetention(current, rules, timeZone, last).keep.map((k) => k.id));
    for (const s of [...alive])
      if (!kept.has(s)) {
        out.set(s, last);
        alive.delete(s);
      }
    current = current.filter((s) => kept.has(s));
  }
  for (const s of alive) out.set(s, undefined);
  return out;
}

/** Which list of a repository holds the records of each type. */
const LISTS = { backup: 'backups', failure: 'failures', copy: 'copies', verify: 'verifies', restore: 'restores', prune: 'prunes', 'media-loan': 'loans' } as const satisfies Partial<Record<AnyRecord['type'], keyof RepoView>>;

function add<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function entry<T extends AnyRecord['type']>(status: RecordStatus): Entry<T> {
  return { status, record: status.record as Of<T>, t: Date.parse(status.record!.at) };
}

export function buildModel(input: ModelInput): Model {
  const clock = new Clock(input.timeZone);
  const { folder, trust } = input;
  const repos = new Map<string, RepoView>();
  const executedBy = new Map<string, Entry[]>();
  const receipts = new Map<string, Entry<'receipt'>>();
  const others = new Map<string, Entry[]>();
  const plans = new Map<string, Plan>();
  const planOf = (kind: RepositoryKind, schedule: Schedule | undefined) => {
    const key = `${kind} ${JSON.stringify(schedule ?? null)}`;
    if (!plans.has(key)) plans.set(key, planFor(kind, schedule, input.timeZone));
    return plans.get(key)!;
  };
  const repoFor = (host: string, name: string, kind: RepositoryKind): RepoView => {
    const key = `${host}/${name}`;
    let r = repos.get(key);
    if (!r) {
      r = { host, name, kind, request: undefined, plan: planOf(kind, undefined), state: 'never', schedule: 'never', nextDue: undefined, since: Infinity, backups: [], failures: [], copies: [], receipts: [], verifies: [], restores: [], prunes: [], loans: [], lastGood: undefined, lastFailure: undefined, copy: undefined, receipt: undefined, anomalies: [], retention: undefined, copyOf: new Map() };
      repos.set(key, r);
    }
    return r;
  };

  for (const report of folder.reports) {
    for (const status of report.records) {
      const record = status.record;
      if (!record) continue;
      const e = entry(status);
      const request = 'request' in record && typeof record.request === 'string' && record.request !== 'unrequested' ? record.request : undefined;
      if (request && status.genuine) add(executedBy, request, e);
      if (record.type === 'receipt') {
        // A genuine receipt is never hidden by a broken one for the same snapshot.
        const key = `${record.origin}/${record.repository}/${record.snapshot}`;
        if (status.genuine || !receipts.get(key)?.status.genuine) receipts.set(key, e as Entry<'receipt'>);
        add(others, report.host, e);
        continue;
      }
      const name = repoOf(record);
      const kind = kindOf(record);
      if (!name || !kind) {
        add(others, report.host, e);
        continue;
      }
      const repo = repoFor(report.host, name, kind);
      repo.since = Math.min(repo.since, e.t);
      const list = LISTS[record.type as keyof typeof LISTS];
      if (list) (repo[list] as Entry[]).push(e);
      else add(others, report.host, e);
    }
  }

  const requests = requestViews(trust, executedBy);
  // An approved backup request names a repository that must exist, backed up or not.
  for (const r of requests) {
    const q = r.request;
    if (!q || q.type !== 'backup' || !r.approval?.valid || r.approval.approval?.decision !== 'approved') continue;
    const repo = repoFor(q.host, q.repository, q.kind);
    repo.request = r;
    repo.plan = planOf(q.kind, q.schedule);
    repo.retention = q.retention;
    repo.since = Math.min(repo.since, Date.parse(r.approval.date ?? r.approval.approval!.at));
  }

  for (const repo of repos.values()) {
    for (const list of Object.values(LISTS)) (repo[list] as Entry[]).sort((a, b) => a.t - b.t);
    repo.lastGood = repo.backups.filter((b) => b.status.genuine).at(-1);
    repo.lastFailure = repo.failures.filter((f) => f.status.genuine && f.record.stage !== 'restore').at(-1);
    const judged = repoState({ approved: repo.request !== undefined, lastGood: repo.lastGood?.t, lastFailure: repo.lastFailure?.t, plan: repo.plan, now: input.now });
    Object.assign(repo, judged);
    for (const c of repo.copies) if (c.status.genuine && c.record.verified.result === 'ok') repo.copyOf.set(c.record.snapshot.id, c);
    if (repo.lastGood) {
      const id = repo.lastGood.record.snapshot.id;
      repo.copy = repo.copyOf.get(id);
      const receipt = receipts.get(`${repo.host}/${repo.name}/${id}`);
      repo.receipt = receipt?.status.genuine ? receipt : undefined;
      const size = repo.lastGood.record.verification.size;
      if (size?.result === 'warning') repo.anomalies.push(`${size.change_percent ?? '?'} %`);
      for (const w of repo.lastGood.record.warnings) repo.anomalies.push(w.message);
    }
    repo.receipts = repo.backups.map((b) => receipts.get(`${repo.host}/${repo.name}/${b.record.snapshot.id}`)).filter((r): r is Entry<'receipt'> => r !== undefined);
    if (!repo.retention) {
      const rules = repo.prunes.at(-1)?.record.rules;
      if (rules) repo.retention = rules as Retention;
    }
    if (repo.since === Infinity) repo.since = input.now.getTime();
  }

  const findings = (trust?.checkpoints ?? []).flatMap((c) => (c.valid && c.present && c.checkpoint ? checkCheckpoint(c.path, Object.fromEntries(Object.entries(c.checkpoint.heads).map(([h, text]) => [h, parseHead(text)])), folder.reports) : []));
  const repoList = [...repos.values()].sort((a, b) => a.host.localeCompare(b.host) || a.name.localeCompare(b.name));
  // A folder under hosts/ whose name is not a host name gets no pages of its own; its problems are listed.
  const hosts: HostView[] = folder.reports.filter((report) => hostName.safeParse(report.host).success).map((report) => ({
    host: report.host,
    report,
    chain: report.records.length === 0 && report.problems.length === 0 ? 'empty' : report.problems.some((p) => p.severity === 'error') ? 'broken' : 'intact',
    checkpoint: findings.filter((f) => f.host === report.host).at(-1),
    repos: repoList.filter((r) => r.host === report.host),
    other: (others.get(report.host) ?? []).sort((a, b) => a.t - b.t),
  }));
  // Hosts that only requests name (approved, never backed up).
  for (const r of repoList) if (!hosts.some((h) => h.host === r.host)) hosts.push({ host: r.host, report: { host: r.host, records: [], head: undefined, problems: [] }, chain: 'empty', checkpoint: undefined, repos: repoList.filter((x) => x.host === r.host), other: [] });
  hosts.sort((a, b) => a.host.localeCompare(b.host));

  const problems: Model['problems'] = [];
  for (const p of folder.policyProblems) problems.push({ where: 'policy/allowed_signers', es: p, en: p });
  for (const report of folder.reports)
    for (const p of report.problems.filter((x) => x.severity === 'error')) problems.push({ where: p.path, es: `${p.code}: ${p.message}`, en: `${p.code}: ${p.message}` });
  for (const f of findings.filter((x) => x.result !== 'ok')) problems.push({ where: f.path, es: f.message, en: f.message });
  if (trust?.policy.anchor) for (const c of trust.checkpoints.filter((x) => !x.valid)) problems.push({ where: c.path, es: `punto de control que ya no cuenta: ${c.reason ?? ''}`, en: `checkpoint that no longer counts: ${c.reason ?? ''}` });
  // Outside git no approval can be checked: the requests page says so for each, the integrity page once.
  if (trust?.git) for (const a of trust.approvals.filter((x) => !x.valid)) problems.push({ where: a.path, es: `aprobación que no cuenta: ${a.reason ?? ''}`, en: `approval that does not count: ${a.reason ?? ''}` });
  for (const line of trust?.policy.ignored ?? []) problems.push({ where: 'policy/', es: `cambio de política ignorado: ${line}`, en: `policy change ignored: ${line}` });
  if (input.procedureProblem) problems.push({ where: 'policy/procedure.yaml', es: input.procedureProblem, en: input.procedureProblem });

  const today = clock.day(input.now);
  const yearDays: Day[] = [];
  for (let d = periodOf('week', addDays(today, -364)).first; d <= today; d = addDays(d, 1)) yearDays.push(d);

  return { now: input.now, clock, recordsDir: input.recordsDir, procedure: input.procedure, procedureProblem: input.procedureProblem, trust, folder, hosts, repos: repoList, repoIndex: repos, yearDays, requests, findings, receipts, problems, broken: problems.length > 0 || folder.broken > 0 };
}

/** Each form's one-year window (table 6.0): its first and last day. */
export function formWindow(model: Model, form: FormSpec): { first: Day; last: Day; months: number } {
  const entry = model.procedure?.forms.find((f) => f.code === form.code);
  const months = entry ? retentionMonths(entry.retention) : 12;
  const last = model.clock.day(model.now);
  return { first: windowStart(last, months), last, months };
}

/**
 * Every page of every form: one per period from the first record to today, each with its
 * rows. Backup forms also list the holes of the period.
 */
export function formPages(model: Model): Map<string, FormPage[]> {
  const out = new Map<string, FormPage[]>();
  const clock = model.clock;
  const today = clock.day(model.now);
  // From the first genuine record (a tampered one dated 0001 must not make a million pages), at most five years back.
  let first = Infinity;
  for (const h of model.hosts) for (const s of h.report.records) if (s.record && s.genuine) first = Math.min(first, Date.parse(s.record.at));
  const firstDay = first === Infinity ? today : [clock.day(first), windowStart(today, 60)].sort().at(-1)!;
  for (const form of FORMS) {
    const pages = new Map<string, FormPage>();
    const page = (day: Day): FormPage => {
      const period = periodOf(form.period, day);
      let p = pages.get(period.key);
      if (!p) {
        p = { form, period, backups: [], gaps: [], requests: [], restores: [], failures: [], copies: [], loans: [] };
        pages.set(period.key, p);
      }
      return p;
    };
    for (const period of periodsBetween(form.period, firstDay < today ? firstDay : today, today)) page(period.first);
    const window = formWindow(model, form);
    for (const repo of model.repos) {
      if (form.kinds.includes(repo.kind)) {
        for (const b of repo.backups) page(clock.day(b.t)).backups.push(b);
        for (const g of gapsOf(repo, clock, window.first, model.now)) page(g.period.first).gaps.push(g);
      }
      if (form.slug === 'dse-05') {
        for (const r of repo.restores) page(clock.day(r.t)).restores.push(r);
        for (const f of repo.failures) page(clock.day(f.t)).failures.push(f);
      }
      if (form.slug === 'csc-02') for (const c of repo.copies) page(clock.day(c.t)).copies.push(c);
      if (form.slug === 'csc-03') for (const l of repo.loans) page(clock.day(l.t)).loans.push(l);
    }
    if (form.slug === 'dse-05') {
      for (const r of model.requests) if (r.request) page(r.request.date).requests.push(r);
      // Failures of a run, not of one repository.
      for (const h of model.hosts) for (const e of h.other) if (e.record.type === 'failure') page(clock.day(e.t)).failures.push(e as Entry<'failure'>);
    }
    const list = [...pages.values()].sort((a, b) => a.period.first.localeCompare(b.period.first));
    for (const p of list) {
      for (const rows of [p.backups, p.restores, p.failures, p.copies, p.loans] as Entry[][]) rows.sort((a, b) => a.t - b.t || a.status.path.localeCompare(b.status.path));
    }
    out.set(form.slug, list);
  }
  return out;
}

/** CSC 01: per repository and month of a year, backups planned by the schedule and backups done. */
export function yearPlan(model: Model, year: number): { repo: RepoView; months: { planned: number; done: number }[] }[] {
  const clock = model.clock;
  return model.repos.map((repo) => {
    const months = Array.from({ length: 12 }, () => ({ planned: 0, done: 0 }));
    for (const b of repo.backups) {
      const day = clock.day(b.t);
      if (Number(day.slice(0, 4)) === year && b.status.genuine) months[Number(day.slice(5, 7)) - 1]!.done++;
    }
    // The plan: the schedule's times from the repository's start, through the year's end or today.
    const yearStart = Date.UTC(year, 0, 1) - DAY_MS;
    const end = Math.min(Date.UTC(year + 1, 0, 1) + DAY_MS, model.now.getTime());
    const cron = repo.plan.describe.startsWith('cron');
    let t = cron ? repo.plan.next(new Date(repo.since)).getTime() : repo.since;
    if (!cron && t < yearStart) t += Math.floor((yearStart - t) / repo.plan.interval) * repo.plan.interval;
    if (cron && t < yearStart) t = yearStart;
    for (let i = 0; i < 2000 && t < end; i++) {
      const day = clock.day(t);
      if (Number(day.slice(0, 4)) === year) months[Number(day.slice(5, 7)) - 1]!.planned++;
      const next = cron ? repo.plan.next(new Date(t)).getTime() : t + repo.plan.interval;
      if (next <= t) break;
      t = next;
    }
    return { repo, months };
  });
}
