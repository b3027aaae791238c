import { describe, expect, it } from 'vitest';
import type { FolderReport, RecordStatus } from '../../schemas/chain.js';
import { planFor } from '../../schemas/schedule.js';
import type { Trust } from '../../schemas/trust.js';
import { buildModel, expiries, formPages, gapsOf, repoState, type RepoView } from './model.js';
import { Clock, periodOf, periodsBetween, windowStart } from './periods.js';

const ZONE = 'America/Mexico_City';
const DAY = 86_400_000;
const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

let seq = 0;
/** A record as the chain check leaves it: genuine unless told, with the fields the model reads. */
function status(type: string, at: string, fields: Record<string, unknown>, genuine = true): RecordStatus {
  seq++;
  const record = { schema: 'respaldo/v1', type, host: 'web01', seq, prev: digest(seq - 1), at, ...fields };
  return { path: `hosts/web01/${at.slice(0, 4)}/${String(seq).padStart(8, '0')}-${type}.yaml`, seq, type, at, prev: record.prev, digest: digest(seq), bytes: Buffer.alloc(0), record: record as never, signer: 'SHA256:x', genuine, problems: genuine ? [] : [{ path: '', seq, code: 'edited', severity: 'error', message: 'edited' }] };
}

function backup(repository: string, kind: string, at: string, bytes = 1000, extra: Record<string, unknown> = {}): RecordStatus {
  const id = at.replace(/[-:]/g, '').replace(/\.\d+/, '');
  return status('backup', at, {
    repository,
    kind,
    request: 'REQ-2026-0001',
    trigger: 'scheduled',
    started: at,
    finished: at,
    snapshot: { id, target: 'primary', location: `web01/${repository}/snapshots/${id}`, digest: digest(1), manifest: digest(2) },
    previous: null,
    size: { bytes, files: 1, dirs: 0, symlinks: 0, others: 0 },
    changed: { files: 1, bytes },
    verification: { level: 'checksum' },
    warnings: [],
    ...extra,
  });
}

function folder(records: RecordStatus[], problems: FolderReport['reports'][number]['problems'] = []): FolderReport {
  const all = [...problems, ...records.flatMap((r) => r.problems)];
  return { reports: [{ host: 'web01', records, head: records.length ? { seq: records.at(-1)!.seq, digest: records.at(-1)!.digest } : undefined, problems: all }], policyProblems: [], total: records.length, broken: records.filter((r) => !r.genuine).length, errors: all.length };
}

/** A trust in which REQ-2026-0001 (a backup of `repository`) was approved by JAA's key. */
function approved(repository: string, kind: string, schedule?: object): Trust {
  const request = { schema: 'respaldo/v1', form: 'FOR 7.5 DSE 05', id: 'REQ-2026-0001', date: '2026-01-05', requester: { name: 'Ana', area: 'Web' }, host: 'web01', repository, type: 'backup', kind, what: { paths: ['/srv'] }, ...(schedule ? { schedule } : {}) };
  return {
    git: true,
    policy: { signers: '', revoked: '', anchor: { commit: 'c0', key: 'SHA256:jaa', principal: 'jaa' }, commit: 'c0', changes: [], ignored: [], problems: [] },
    requests: [{ id: 'REQ-2026-0001', path: 'requests/REQ-2026-0001.yaml', request: request as never, digest: digest(9), problems: [] }],
    approvals: [{ id: 'REQ-2026-0001', path: 'approvals/REQ-2026-0001.yaml', valid: true, reason: undefined, commit: 'c1', key: 'SHA256:jaa', principal: 'jaa', date: '2026-01-06T00:00:00Z', approval: { schema: 'respaldo/v1', type: 'approval', request: 'REQ-2026-0001', request_digest: digest(9), decision: 'approved', approver: 'jaa', at: '2026-01-06T00:00:00Z' } }],
    checkpoints: [],
  };
}

describe('due and overdue', () => {
  const daily = planFor('database', undefined, ZONE);
  const now = new Date('2026-11-25T12:00:00Z');
  const ago = (hours: number) => now.getTime() - hours * 3_600_000;

  it('a daily repository is ok within the day, due after it, overdue once late by a quarter of the interval', () => {
    expect(repoState({ approved: true, lastGood: ago(20), lastFailure: undefined, plan: daily, now }).state).toBe('ok');
    expect(repoState({ approved: true, lastGood: ago(25), lastFailure: undefined, plan: daily, now }).state).toBe('due');
    expect(repoState({ approved: true, lastGood: ago(31), lastFailure: undefined, plan: daily, now }).state).toBe('overdue');
  });

  it('a failure after the last good backup is failed; no good backup is never; no approved request is unrequested', () => {
    expect(repoState({ approved: true, lastGood: ago(30), lastFailure: ago(2), plan: daily, now }).state).toBe('failed');
    expect(repoState({ approved: true, lastGood: ago(2), lastFailure: ago(30), plan: daily, now }).state).toBe('ok');
    expect(repoState({ approved: true, lastGood: undefined, lastFailure: undefined, plan: daily, now }).state).toBe('never');
    const unrequested = repoState({ approved: false, lastGood: ago(40), lastFailure: undefined, plan: daily, now });
    expect(unrequested).toMatchObject({ state: 'unrequested', schedule: 'overdue' });
  });

  it('the panel model: an approved repository never backed up is listed as never, an overdue one as overdue', () => {
    const model = buildModel({ folder: folder([backup('db', 'database', '2026-11-20T09:00:00.000Z')]), trust: approved('other', 'files'), procedure: undefined, recordsDir: '/r', now, timeZone: ZONE });
    expect(model.repos.map((r) => [r.name, r.state])).toEqual([
      ['db', 'unrequested'],
      ['other', 'never'],
    ]);
    const requested = buildModel({ folder: folder([backup('db', 'database', '2026-11-20T09:00:00.000Z')]), trust: approved('db', 'database'), procedure: undefined, recordsDir: '/r', now, timeZone: ZONE });
    expect(requested.repos.map((r) => [r.name, r.state])).toEqual([['db', 'overdue']]);
  });
});

const NOW = new Date('2026-11-25T18:00:00Z');

describe('periods and gaps', () => {
  it('weeks are ISO weeks on the wall clock, bimesters pairs of months, the window one year back', () => {
    const clock = new Clock(ZONE);
    // Monday 05:30 UTC is still Sunday night in Mexico City: the week before.
    expect(periodOf('week', clock.day('2026-11-23T05:30:00Z')).key).toBe('2026-W47');
    expect(periodOf('week', clock.day('2026-11-23T06:30:00Z')).key).toBe('2026-W48');
    expect(periodOf('week', '2027-01-01')).toEqual({ kind: 'week', key: '2026-W53', first: '2026-12-28', last: '2027-01-03' });
    expect(periodOf('bimester', '2026-12-31')).toEqual({ kind: 'bimester', key: '2026-B6', first: '2026-11-01', last: '2026-12-31' });
    expect(periodsBetween('month', '2026-11-30', '2027-02-01').map((p) => p.key)).toEqual(['2026-11', '2026-12', '2027-01', '2027-02']);
    expect(windowStart('2026-11-25', 12)).toBe('2025-11-26');
    expect(windowStart('2024-02-29', 12)).toBe('2023-03-01');
  });

  function repo(kind: 'database' | 'source', backups: RecordStatus[], since: string): RepoView {
    const model = buildModel({ folder: folder(backups), trust: approved('r', kind), procedure: undefined, recordsDir: '/r', now: new Date('2026-11-25T18:00:00Z'), timeZone: ZONE });
    const r = model.repos.find((x) => x.name === 'r')!;
    r.since = Date.parse(since);
    return r;
  }

  it('a daily database names each day without a backup; a week without any is a hole of seven days', () => {
    const clock = new Clock(ZONE);
    // Weeks 46 (Nov 9–15), 47 (16–22), 48 (23–29); today is Wednesday the 25th.
    const days = ['2026-11-09', '2026-11-10', '2026-11-11', '2026-11-12', '2026-11-13', '2026-11-14', '2026-11-15', '2026-11-23', '2026-11-25'];
    const r = repo('database', days.map((d) => backup('r', 'database', `${d}T09:00:00.000Z`)), '2026-11-09T06:00:00Z');
    const gaps = gapsOf(r, clock, '2025-11-26', NOW);
    expect(gaps.map((g) => [g.period.key, g.days])).toEqual([
      ['2026-W47', ['2026-11-16', '2026-11-17', '2026-11-18', '2026-11-19', '2026-11-20', '2026-11-21', '2026-11-22']],
      ['2026-W48', ['2026-11-24']],
    ]);
    // A broken record is no backup.
    const broken = repo('database', [backup('r', 'database', '2026-11-22T09:00:00.000Z'), { ...backup('r', 'database', '2026-11-23T09:00:00.000Z'), genuine: false }, backup('r', 'database', '2026-11-24T09:00:00.000Z')], '2026-11-22T06:00:00Z');
    expect(gapsOf(broken, clock, '2025-11-26', new Date('2026-11-25T12:00:00Z')).map((g) => g.days)).toEqual([['2026-11-23']]);
  });

  it('a weekly repository has a hole for a week without a backup, but not for the week in course while it is not due', () => {
    const clock = new Clock(ZONE);
    const r = repo('source', [backup('r', 'source', '2026-11-02T09:00:00.000Z'), backup('r', 'source', '2026-11-23T09:00:00.000Z')], '2026-11-02T06:00:00Z');
    expect(gapsOf(r, clock, '2025-11-26', NOW).map((g) => g.period.key)).toEqual(['2026-W46', '2026-W47']);
    // Nothing before the repository began, nor before the window.
    expect(gapsOf(r, clock, '2026-11-23', NOW)).toEqual([]);
  });

  it('a repository backed up every 60 days on schedule has no hole in a two-month period without a backup', () => {
    const clock = new Clock(ZONE);
    const model = buildModel({ folder: folder([backup('etc', 'config', '2025-12-31T09:00:00.000Z'), backup('etc', 'config', '2026-03-01T09:00:00.000Z')]), trust: approved('etc', 'config'), procedure: undefined, recordsDir: '/r', now: new Date('2026-04-10T00:00:00Z'), timeZone: ZONE });
    const r = model.repos[0]!;
    r.since = Date.parse('2025-12-30T00:00:00Z');
    expect(gapsOf(r, clock, '2025-04-11', new Date('2026-04-10T00:00:00Z'))).toEqual([]);
    // Late by more than the grace: the period in which it was overdue without a backup is a hole.
    expect(gapsOf(r, clock, '2025-04-11', new Date('2026-05-15T00:00:00Z')).map((g) => g.period.key)).toEqual(['2026-B3']);
  });
});

describe('form rows per period', () => {
  it('each backup goes on its kind\'s form, on the page of its local period; requests, restores and failures on DSE 05; copies on CSC 02', () => {
    const records = [
      backup('db', 'database', '2026-11-23T05:30:00.000Z'),
      backup('db', 'database', '2026-11-23T07:00:00.000Z'),
      backup('code', 'source', '2026-11-16T09:00:00.000Z'),
      backup('etc', 'config', '2026-10-31T09:00:00.000Z'),
      backup('etc', 'config', '2026-11-01T09:00:00.000Z'),
      status('failure', '2026-11-24T09:00:00.000Z', { repository: 'db', kind: 'database', trigger: 'scheduled', stage: 'source', cause: 'gone', hint: 'look' }),
      status('copy', '2026-11-24T10:00:00.000Z', { repository: 'db', kind: 'database', trigger: 'scheduled', started: '2026-11-24T10:00:00.000Z', finished: '2026-11-24T10:00:00.000Z', snapshot: { id: '20261123T070000Z', target: 'secondary', location: 'web01/db/snapshots/20261123T070000Z', digest: digest(1), manifest: digest(2) }, from: 'primary', to: 'secondary', label: 'l', bytes: 1, files: 1, verified: { method: 'rehash', result: 'ok', manifest: digest(2) } }),
    ];
    const model = buildModel({ folder: folder(records), trust: approved('db', 'database'), procedure: undefined, recordsDir: '/r', now: new Date('2026-11-25T18:00:00Z'), timeZone: ZONE });
    const forms = formPages(model);
    const rows = (slug: string, key: string) => {
      const page = forms.get(slug)!.find((p) => p.period.key === key)!;
      return { backups: page.backups.map((b) => b.status.seq), failures: page.failures.map((f) => f.status.seq), copies: page.copies.map((c) => c.status.seq), requests: page.requests.map((r) => r.id) };
    };
    const first = records[0]!.seq;
    expect(rows('dse-03', '2026-W47').backups).toEqual([first]);
    expect(rows('dse-03', '2026-W48').backups).toEqual([first + 1]);
    expect(rows('dse-02', '2026-W47').backups).toEqual([first + 2]);
    expect(rows('dse-04', '2026-B5').backups).toEqual([first + 3]);
    expect(rows('dse-04', '2026-B6').backups).toEqual([first + 4]);
    expect(rows('dse-05', '2026-11')).toMatchObject({ failures: [first + 5] });
    expect(rows('dse-05', '2026-01')).toMatchObject({ requests: ['REQ-2026-0001'] });
    expect(rows('csc-02', '2026-11').copies).toEqual([first + 6]);
    // Pages run from the first record's period to today's, empty ones included.
    expect(forms.get('dse-02')!.map((p) => p.period.key).slice(0, 2)).toEqual(['2026-W44', '2026-W45']);
    expect(forms.get('dse-02')!.at(-1)!.period.key).toBe('2026-W48');
  });
});

describe('chain status and problems', () => {
  it('a host with a broken record is broken and every problem is listed; a checkpoint its chain no longer reaches is a problem', () => {
    const good = [backup('db', 'database', '2026-11-20T09:00:00.000Z'), backup('db', 'database', '2026-11-21T09:00:00.000Z')];
    const intact = buildModel({ folder: folder(good), trust: undefined, procedure: undefined, recordsDir: '/r', now: new Date('2026-11-22T00:00:00Z'), timeZone: ZONE });
    expect(intact.hosts.map((h) => h.chain)).toEqual(['intact']);
    expect(intact.broken).toBe(false);

    const edited = [good[0]!, { ...good[1]!, genuine: false, problems: [{ path: good[1]!.path, seq: good[1]!.seq, code: 'edited' as const, severity: 'error' as const, message: 'changed after signing' }] }];
    const broken = buildModel({ folder: folder(edited), trust: undefined, procedure: undefined, recordsDir: '/r', now: new Date('2026-11-22T00:00:00Z'), timeZone: ZONE });
    expect(broken.hosts.map((h) => h.chain)).toEqual(['broken']);
    expect(broken.broken).toBe(true);
    expect(broken.problems.map((p) => `${p.where}: ${p.en}`)).toEqual([`${good[1]!.path}: edited: changed after signing`]);
    // The broken backup is not the last good one.
    expect(broken.repos[0]!.lastGood?.status.seq).toBe(good[0]!.seq);

    const trust = approved('db', 'database');
    trust.checkpoints.push({ path: 'checkpoints/20261122T000000Z.yaml', valid: true, present: true, reason: undefined, commit: 'c2', key: 'SHA256:jaa', principal: 'jaa', date: '2026-11-22T00:00:00Z', checkpoint: { schema: 'respaldo/v1', type: 'checkpoint', at: '2026-11-22T00:00:00Z', heads: { web01: `${good[1]!.seq + 1} ${digest(77)}` } } });
    const truncated = buildModel({ folder: folder(good), trust, procedure: undefined, recordsDir: '/r', now: new Date('2026-11-22T00:00:00Z'), timeZone: ZONE });
    expect(truncated.hosts[0]!.checkpoint?.result).toBe('truncated');
    expect(truncated.broken).toBe(true);
    expect(truncated.problems[0]!.en).toMatch(/its newest records were deleted/);
  });
});

describe('retention expiry', () => {
  it('under keep-daily 3 with daily backups, each kept snapshot leaves when three newer days exist', () => {
    const plan = planFor('database', { every: '1d' }, ZONE);
    const ids = ['20261120T150000Z', '20261121T150000Z', '20261122T150000Z'];
    const out = expiries(ids, { 'keep-daily': 3 }, plan, ZONE, new Date('2026-11-22T16:00:00Z'));
    const days = ids.map((id) => new Clock(ZONE).day(out.get(id)!));
    expect(days).toEqual(['2026-11-23', '2026-11-24', '2026-11-25']);
  });
});
