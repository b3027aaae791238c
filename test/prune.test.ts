/**
 * Retention with safe pruning: real snapshots made by `respaldo run` over simulated days
 * (a moving clock, in-process) or from the command line, then `respaldo prune`. What a user
 * checks: which snapshot folders remain, that the kept ones still hold their bytes, what
 * the prune record says, that the chain of records still verifies, and that a run of failed
 * backups never costs the last good copy.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
// The compiled agent: its hashing worker is a compiled file.
import { runCron } from '../dist/agent/commands/cron.js';
import { runPrune } from '../dist/agent/commands/prune.js';
import { runRun } from '../dist/agent/commands/run.js';
import { runVerify } from '../dist/agent/commands/verify.js';
import { parseConfig } from '../dist/agent/config.js';
import { memoryReporter } from '../dist/agent/report.js';
import { clock, deployment, describeTree, type Deployment, git, lastRecord, ROOT, setMtimeNs, tempDir, verified, writeTree } from './helpers.js';

/** The command functions with their own clock and reporter, as cron would run them hour after hour. */
function agent(d: Deployment, start: string) {
  const c = clock(start);
  const reporter = memoryReporter();
  const ctx = { cwd: ROOT, env: process.env, now: c.now, reporter, signal: new AbortController().signal };
  return {
    clock: c,
    reporter,
    run: () => runRun(ctx, { config: d.config, repos: [], all: false, manual: false, verify: undefined, progress: false }),
    prune: (apply: boolean, repos: string[] = []) => runPrune(ctx, { config: d.config, repos, apply, manual: false }),
    verify: (repos: string[], readData: boolean) => runVerify(ctx, { config: d.config, repos, all: false, target: undefined, readData, subset: undefined, manual: false }),
  };
}

const day = (n: number) => `202611${String(n).padStart(2, '0')}T030000Z`;
const records = (d: Deployment, type: string) => d.recordFiles().filter((f) => f.endsWith(`-${type}.yaml`));
const snapshotDir = (d: Deployment, repo: string, id: string) => join(d.target, d.host, repo, 'snapshots', id);

describe('respaldo prune', () => {
  it('shows what the rules would delete without deleting; --apply deletes it, records it, and the kept snapshots keep their bytes', async () => {
    const src = tempDir();
    const constant = randomBytes(256 * 1024);
    writeTree(src, { 'constant.bin': constant, 'day.txt': 'day 0' });
    const d = await deployment([{ name: 'docs', paths: [src], schedule: { every: '1d' }, retention: { 'keep-daily': 3, 'keep-weekly': 2 } }], { extra: { timezone: 'UTC' } });
    // Monday 2026-11-02 to Sunday 2026-11-15, a changed file every day: fourteen snapshots.
    const a = agent(d, '2026-11-02T03:00:00Z');
    for (let n = 2; n <= 15; n++) {
      writeFileSync(join(src, 'day.txt'), `day ${n}\n`.repeat(n));
      expect(await a.run()).toBe(0);
      a.clock.advance(24);
    }
    const all = Array.from({ length: 14 }, (_, i) => day(i + 2));
    expect(d.snapshots('docs')).toEqual(all);
    // Three days, and the newest of two ISO weeks (Monday 11-09 to Sunday 11-15, and the week before).
    const kept = [day(8), day(13), day(14), day(15)];
    const before = new Map(kept.map((id) => [id, describeTree(snapshotDir(d, 'docs', id))]));
    const constantFile = (id: string) => join(snapshotDir(d, 'docs', id), 'data', src, 'constant.bin');
    expect(lstatSync(constantFile(day(15))).nlink).toBe(14); // one file, hard-linked into every snapshot
    const recordsBefore = d.recordFiles();

    expect(await a.prune(false)).toBe(0);
    const dry = a.reporter.results.at(-1) as { apply: boolean; repositories: { kept: { id: string; reasons: string[] }[]; delete: string[] }[] };
    expect(dry.apply).toBe(false);
    expect(dry.repositories[0]!.kept).toEqual([
      { id: day(8), reasons: ['weekly snapshot'] },
      { id: day(13), reasons: ['daily snapshot'] },
      { id: day(14), reasons: ['daily snapshot'] },
      { id: day(15), reasons: ['daily snapshot', 'weekly snapshot', 'newest verified snapshot'] },
    ]);
    expect(dry.repositories[0]!.delete).toEqual(all.filter((id) => !kept.includes(id)));
    const text = a.reporter.texts.at(-1)!;
    expect(text).toMatch(/^docs \(files\) on the primary target, rules: keep-daily 3, keep-weekly 2$/m);
    expect(text).toMatch(/^ {2}delete {2}20261102T030000Z {3}2026-11-02 03:00$/m);
    expect(text).toMatch(/^ {2}keep {4}20261108T030000Z {3}2026-11-08 03:00 {2}weekly snapshot$/m);
    expect(text).toContain('would delete 10 snapshots and 0 archive files, keep 4 snapshots');
    expect(text).toContain('dry run: nothing was deleted');
    // A dry run deletes nothing and records nothing.
    expect(d.snapshots('docs')).toEqual(all);
    expect(d.recordFiles()).toEqual(recordsBefore);

    expect(await a.prune(true)).toBe(0);
    expect(d.snapshots('docs')).toEqual(kept);
    const record = lastRecord(d);
    expect(record).toMatchObject({ type: 'prune', repository: 'docs', kind: 'files', target: 'primary', trigger: 'scheduled', rules: { 'keep-daily': 3, 'keep-weekly': 2 }, archive_segments_deleted: 0 });
    expect(record.kept).toEqual(dry.repositories[0]!.kept);
    expect(record.deleted).toEqual(dry.repositories[0]!.delete);
    expect(record.held).toBeUndefined();
    // Nothing of the deleted snapshots is left behind, and the kept ones are exactly as they were: same names, inodes, modes, times and bytes.
    expect(readdirSync(join(d.target, d.host, 'docs', 'pruning'))).toEqual([]);
    for (const id of kept) expect(describeTree(snapshotDir(d, 'docs', id))).toEqual(before.get(id));
    expect(readFileSync(constantFile(day(15)))).toEqual(constant);
    expect(lstatSync(constantFile(day(15))).nlink).toBe(4);
    // The record is committed, and the chain verifies.
    expect(git(d.records, 'log', '-1', '--format=%s').trim()).toMatch(/^respaldo web01: records \d+–\d+: prune docs$/);
    expect(git(d.records, 'status', '--porcelain')).toBe('');
    await verified(d);

    // Pruning again deletes nothing more; the next backup still links against the newest snapshot.
    expect(await a.prune(true)).toBe(0);
    expect(lastRecord(d)).toMatchObject({ type: 'prune', deleted: [] });
    writeFileSync(join(src, 'day.txt'), 'day 16\n');
    expect(await a.run()).toBe(0);
    expect(d.snapshots('docs')).toEqual([...kept, day(16)]);
    expect(lstatSync(constantFile(day(16))).ino).toBe(lstatSync(constantFile(day(15))).ino);
    await verified(d);
  });

  it('after ten failed runs in a row deletes nothing, so the last good copy survives; once a backup succeeds it prunes again', async () => {
    const src = tempDir();
    writeTree(src, { 'orders.csv': 'id,item\n1,chair\n', 'img/logo.png': randomBytes(40_000) });
    const d = await deployment([{ name: 'shop', paths: [src], schedule: { every: '1d' }, retention: { 'keep-last': 1 } }], { extra: { timezone: 'UTC' } });
    const a = agent(d, '2026-11-02T03:00:00Z');
    for (let n = 2; n <= 4; n++) {
      writeFileSync(join(src, 'orders.csv'), `id,item\n${n},chair\n`);
      expect(await a.run()).toBe(0);
      a.clock.advance(24);
    }
    const good = describeTree(src);
    const files = (tree: Map<string, { type: string; sha256?: string }>) => [...tree].filter(([, e]) => e.type === 'f').map(([rel, e]) => [rel, e.sha256]);
    // The source disappears (a failed disk, an unmounted share): ten daily runs fail.
    renameSync(src, `${src}.gone`);
    for (let n = 0; n < 10; n++) {
      expect(await a.run()).toBe(3);
      a.clock.advance(24);
    }
    expect(records(d, 'failure')).toHaveLength(10);
    expect(d.snapshots('shop')).toEqual([day(2), day(3), day(4)]);

    // From the command line, as cron or a sysadmin runs it.
    const dry = await d.run('prune');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^ {2}HELD: the latest backup failed \(failure record \d+, .*\): .*nothing is deleted until a backup succeeds/m);
    expect(dry.stdout).toContain('would delete 0 snapshots');
    const applied = await d.run('prune', '--apply');
    expect(applied.code, applied.stderr).toBe(0);
    // Cron mails it: retention is on hold while the backups fail.
    expect(applied.stderr).toMatch(/warning: shop: prune held on the primary target: the latest backup failed/);
    expect(d.snapshots('shop')).toEqual([day(2), day(3), day(4)]);
    const record = lastRecord(d);
    expect(record).toMatchObject({ type: 'prune', repository: 'shop', deleted: [], rules: { 'keep-last': 1 } });
    expect(record.held).toMatch(/^the latest backup failed \(failure record \d+, /);
    expect(record.kept).toEqual([
      { id: day(2), reasons: ['held: the latest backup failed'] },
      { id: day(3), reasons: ['held: the latest backup failed'] },
      { id: day(4), reasons: ['last snapshot', 'newest verified snapshot'] },
    ]);
    // The last good copy holds the source's last bytes.
    expect(files(describeTree(join(snapshotDir(d, 'shop', day(4)), 'data', src)))).toEqual(files(good));

    // The source is back, with an order taken meanwhile: a backup succeeds, and the next prune applies the rules.
    renameSync(`${src}.gone`, src);
    writeFileSync(join(src, 'orders.csv'), 'id,item\n4,chair\n5,table\n');
    const back = describeTree(src);
    expect(await a.run()).toBe(0);
    const newest = d.snapshots('shop').at(-1)!;
    expect(newest).toBe(day(15));
    const pruned = await d.run('prune', '--apply');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stderr).toBe('');
    expect(d.snapshots('shop')).toEqual([newest]);
    expect(lastRecord(d)).toMatchObject({ type: 'prune', deleted: [day(2), day(3), day(4)], kept: [{ id: newest, reasons: ['last snapshot', 'newest verified snapshot'] }] });
    expect(files(describeTree(join(snapshotDir(d, 'shop', newest), 'data', src)))).toEqual(files(back));
    await verified(d);
  });

  it('keeps the newest verified snapshot when the newest one failed its verification, whatever the rules say', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'app', paths: [src], schedule: { every: '1d' }, retention: { 'keep-last': 1 } }], { extra: { timezone: 'UTC' } });
    const a = agent(d, '2026-11-02T03:00:00Z');
    for (let n = 2; n <= 4; n++) {
      writeFileSync(join(src, 'a.txt'), 'a'.repeat(n));
      expect(await a.run()).toBe(0);
      a.clock.advance(24);
    }
    // Bit rot in the newest snapshot, found by respaldo verify (a `verify` record, signed by the host).
    const stored = join(snapshotDir(d, 'app', day(4)), 'data', src, 'a.txt');
    const { mtimeNs } = statSync(stored, { bigint: true });
    writeFileSync(stored, 'aaaX');
    setMtimeNs(stored, mtimeNs);
    expect(await a.verify(['app'], true)).toBe(3);
    const check = lastRecord(d);
    expect(check).toMatchObject({ type: 'verify', reason: 'at-rest', target: 'primary', read: { data: 'all' }, result: 'failed' });
    expect(check.snapshots.map((s: { id: string; result: string }) => [s.id, s.result])).toEqual([
      [day(2), 'ok'],
      [day(3), 'ok'],
      [day(4), 'failed'],
    ]);
    expect(check.problems).toEqual([{ snapshot: day(4), path: `data${src}/a.txt`, problem: expect.stringMatching(/^its bytes differ from the manifest's \(SHA-256 [0-9a-f]{12}… on the primary target\)$/) }]);

    expect(await a.prune(true)).toBe(0);
    // keep-last 1 keeps the damaged newest; the one before it is the newest good copy and stays too.
    expect(d.snapshots('app')).toEqual([day(3), day(4)]);
    expect(lastRecord(d)).toMatchObject({
      type: 'prune',
      deleted: [day(2)],
      kept: [
        { id: day(3), reasons: ['newest verified snapshot'] },
        { id: day(4), reasons: ['last snapshot'] },
      ],
    });
    expect(a.reporter.events).toContainEqual({ type: 'warning', repository: 'app', message: `snapshot ${day(4)} failed its latest verification (record ${check.seq}): it does not count as the newest verified snapshot` });
    expect(readFileSync(join(snapshotDir(d, 'app', day(3)), 'data', src, 'a.txt'), 'utf8')).toBe('aaa');
    await verified(d);
  });

  it('finishes a deletion that a crash interrupted, and applies the host\'s rules to repositories without their own', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment(
      [
        { name: 'own', paths: [src], schedule: { every: '1d' }, retention: { 'keep-last': 2 } },
        { name: 'default', paths: [src], schedule: { every: '1d' } },
      ],
      { extra: { timezone: 'UTC', retention: { 'keep-last': 1 } } },
    );
    const a = agent(d, '2026-11-02T03:00:00Z');
    for (let n = 2; n <= 4; n++) {
      writeFileSync(join(src, 'a.txt'), 'a'.repeat(n));
      expect(await a.run()).toBe(0);
      a.clock.advance(24);
    }
    // A prune killed right after it took a snapshot out of snapshots/ (the rename), before removing it.
    const pruning = join(d.target, d.host, 'own', 'pruning');
    mkdirSync(pruning);
    renameSync(snapshotDir(d, 'own', day(2)), join(pruning, day(2)));
    expect(d.snapshots('own')).toEqual([day(3), day(4)]);

    expect(await a.prune(true)).toBe(0);
    expect(a.reporter.events).toContainEqual({ type: 'info', message: `own: removed what an interrupted prune left of snapshot(s) ${day(2)} on the primary target` });
    expect(readdirSync(pruning)).toEqual([]);
    expect(d.snapshots('own')).toEqual([day(3), day(4)]);
    expect(d.snapshots('default')).toEqual([day(4)]);
    const prunes = records(d, 'prune').map((f) => parse(readFileSync(join(d.records, f), 'utf8')));
    expect(prunes.map((r) => [r.repository, r.rules, r.deleted])).toEqual([
      ['own', { 'keep-last': 2 }, []],
      ['default', { 'keep-last': 1 }, [day(2), day(3)]],
    ]);
    await verified(d);

    // The backup disk is not mounted: said, nothing recorded, exit 3.
    renameSync(d.target, `${d.target}.unmounted`);
    const recorded = d.recordFiles();
    expect(await a.prune(true)).toBe(3);
    expect(a.reporter.events).toContainEqual({ type: 'warning', repository: 'own', message: expect.stringMatching(/^prune on the primary target: nothing pruned: the primary target \S+ does not exist; is the backup disk mounted\?/) });
    expect(d.recordFiles()).toEqual(recorded);
    renameSync(`${d.target}.unmounted`, d.target);
  });

  it('keeps every snapshot of a repository without rules, and says so', async () => {
    const src = tempDir();
    writeTree(src, { 'a.txt': 'a' });
    const d = await deployment([{ name: 'forever', paths: [src] }]);
    const a = agent(d, '2026-11-02T03:00:00Z');
    expect(await a.run()).toBe(0);
    expect(await a.prune(false)).toBe(0);
    expect(a.reporter.texts.at(-1)).toContain('forever (files): no retention rules: every snapshot is kept');
    const before = d.recordFiles();
    expect(await a.prune(true)).toBe(0);
    expect(d.recordFiles()).toEqual(before);
    expect(d.snapshots('forever')).toHaveLength(1);
    const unknown = await d.run('prune', '--repo', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no repository named "nope"');
  });

  it('is in the cron.d file once a day when there are retention rules', async () => {
    const src = tempDir();
    const reporter = memoryReporter();
    const ctx = { cwd: ROOT, env: process.env, now: () => new Date(), reporter, signal: new AbortController().signal };
    const without = await deployment([{ name: 'a', paths: [src] }], { enrol: false });
    await runCron(ctx, { config: without.config });
    expect(reporter.texts.at(-1)).not.toContain(' prune ');
    const withRules = await deployment([{ name: 'a', paths: [src], retention: { 'keep-daily': 7 } }], { enrol: false });
    await runCron(ctx, { config: withRules.config });
    const text = reporter.texts.at(-1)!;
    const hourly = Number(/^(\d+) \* \* \* \* root .* run --config /m.exec(text)![1]);
    expect(text).toMatch(new RegExp(`^${(hourly + 30) % 60} 5 \\* \\* \\* root ${process.execPath} [-=\\w ]+ /\\S+/dist/agent/main\\.js prune --apply --config ${withRules.config}$`, 'm'));
  });

  it('rejects bad retention rules, naming the field and showing the right form', () => {
    const config = (retention: string) => `host: web01\nkey: /k\nrecords: /r\ntargets:\n  primary: /t\nrepositories:\n  - name: a\n    kind: files\n    paths: [/a]\n    retention: ${retention}\n`;
    const error = (retention: string) => {
      try {
        parseConfig(config(retention), '/etc/respaldo/agent.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(error('{}')).toMatch(/agent\.yaml:10: repositories\[0\]\.retention: list at least one rule, e\.g\. \{ keep-daily: 7, keep-weekly: 4, keep-monthly: 12 \}/);
    expect(error('{ keep-daily: -1 }')).toMatch(/agent\.yaml:10: repositories\[0\]\.retention\.keep-daily: a number of snapshots, 0 or more\n\s+for example:\n\s+retention: \{ keep-daily: 7 \}/);
    expect(error('{ keep-weekly: 2.5 }')).toContain('repositories[0].retention.keep-weekly: a whole number of snapshots, e.g. 7');
    expect(error('{ keep-monthly: "12" }')).toContain('repositories[0].retention.keep-monthly: a whole number of snapshots, e.g. 7');
    expect(error('{ keep-within: 30 days }')).toContain('repositories[0].retention.keep-within: a duration is a number and a unit');
    expect(error('{ keep-dayly: 7 }')).toContain('repositories[0].retention.keep-dayly: unknown field "keep-dayly"; did you mean "keep-daily"?');
    expect(error('{ keep-last: 0 }')).toContain('every rule is 0, which would keep the newest snapshot alone');
    expect(parseConfig(config('{ keep-daily: 7, keep-within: 30d }'), '/etc/respaldo/agent.yaml').repositories[0]!.retention).toEqual({ 'keep-daily': 7, 'keep-within': '30d' });
  });
});
