/**
 * Verify at rest (`respaldo verify`, and the share `respaldo run` reads each day): real
 * snapshots made by the agent, then damaged as a disk or a person would damage them (a bit
 * flipped with the size and times kept, a manifest edited, a file planted or removed), on
 * the primary, at CSC over SSH (a real sshd on loopback) and in an rsync daemon's module.
 * What a user checks: the exit code, which snapshot and file the record names, that a
 * hard-linked file is read once, that subset reads rotate over every file, and that the
 * record is signed and chained.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runRun } from '../dist/agent/commands/run.js';
import { runVerify } from '../dist/agent/commands/verify.js';
import { memoryReporter } from '../dist/agent/report.js';
import { clock, type Deployment, deployment, flipBit, lastRecord, recordsOf, ROOT, tempDir, verified, writeTree } from './helpers.js';
import { rsyncd, type Rsyncd } from './rsyncd.js';
import { sshd, type Sshd } from './sshd.js';

/** Where a file's bytes stand in the rotation: the first 32 bits of their SHA-256. */
const position = (bytes: Buffer) => parseInt(createHash('sha256').update(bytes).digest('hex').slice(0, 8), 16) / 2 ** 32;
const onArc = (p: number, a: { from: number; to: number }) => (p - a.from + 1) % 1 < (a.to - a.from + 1) % 1;

/** Every regular file under the data folders of `dirs`, by inode: what a full read must read, once each. */
function storedFiles(dirs: string[]): Map<bigint, { size: number; bytes: Buffer }> {
  const out = new Map<bigint, { size: number; bytes: Buffer }>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.set(lstatSync(p, { bigint: true }).ino, { size: statSync(p).size, bytes: readFileSync(p) });
    }
  };
  for (const d of dirs) walk(join(d, 'data'));
  return out;
}

function setConfig(d: Deployment, change: (config: any) => void): void {
  const config = parse(readFileSync(d.config, 'utf8'));
  change(config);
  writeFileSync(d.config, JSON.stringify(config));
}

/** A deployment of one `files` repository "docs" over `files`, backed up once. */
async function backedUp(files: Record<string, string | Buffer>, secondary?: unknown): Promise<{ d: Deployment; source: string }> {
  const d = await deployment([{ name: 'docs', paths: ['/placeholder'] }]);
  const source = join(d.root, 'docs');
  writeTree(source, files);
  setConfig(d, (c) => {
    c.repositories[0].paths = [source];
    if (secondary) c.targets.secondary = secondary;
  });
  const first = await d.run('run', '--all');
  expect(first.code, first.stderr).toBe(0);
  return { d, source };
}

describe('respaldo verify on the primary target', () => {
  it('lists every snapshot against its manifest, reads each stored file once, and names every snapshot a damaged file is in', async () => {
    const { d, source } = await backedUp({ 'keep.bin': randomBytes(50_000), 'a.txt': 'alpha\n', 'sub/c.txt': 'gamma\n' });
    writeFileSync(join(source, 'a.txt'), 'alpha, changed\n');
    expect((await d.run('run', '--all')).code).toBe(0);
    writeFileSync(join(source, 'd.txt'), 'delta\n');
    expect((await d.run('run', '--all')).code).toBe(0);
    const ids = d.snapshots('docs') as [string, string, string];
    expect(ids).toHaveLength(3);
    const dirs = ids.map((id) => join(d.target, 'web01/docs/snapshots', id));
    const backups = recordsOf(d, 'backup');

    // Without a read option: the folders are listed and the manifests and summaries matched against the backup records.
    const listed = await d.run('verify', 'docs');
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^docs \(files\) on the primary target: ok, 3 snapshot\(s\); listed, manifests matched; no file read; record \d+$/m);
    expect(lastRecord(d)).toMatchObject({ type: 'verify', repository: 'docs', kind: 'files', trigger: 'scheduled', reason: 'at-rest', target: 'primary', method: 'rehash', read: { data: 'none', files: 0, bytes: 0 }, result: 'ok', problems: [] });
    expect(lastRecord(d).snapshots).toEqual(ids.map((id, k) => ({ id, location: `web01/docs/snapshots/${id}`, digest: backups[k]!.snapshot.digest, manifest: backups[k]!.snapshot.manifest, result: 'ok', problems: 0 })));

    // --read-data: every stored file once, however many snapshots hold it (hard links).
    const stored = storedFiles(dirs);
    const all = await d.run('verify', 'docs', '--read-data', '--manual');
    expect(all.code, all.stderr).toBe(0);
    expect(lastRecord(d)).toMatchObject({ trigger: 'manual', operator: expect.any(String), read: { data: 'all', files: stored.size, bytes: [...stored.values()].reduce((n, f) => n + f.size, 0) }, result: 'ok' });
    expect(stored.size).toBeLessThan(3 * 4); // keep.bin, c.txt and the first a.txt are one inode each

    // A bit flipped in keep.bin, which all three snapshots share: the listing cannot see it,
    // reading it can, and each snapshot that holds it is named.
    flipBit(join(dirs[0]!, 'data', source, 'keep.bin'));
    expect((await d.run('verify', 'docs')).code).toBe(0);
    const found = await d.run('verify', 'docs', '--read-data');
    expect(found.code).toBe(3);
    expect(found.stdout).toMatch(/^docs \(files\) on the primary target: FAILED, 3 problem\(s\) in 3 snapshot\(s\)/m);
    const failed = lastRecord(d);
    expect(failed).toMatchObject({ result: 'failed', read: { files: stored.size } });
    expect(failed.snapshots.map((s: any) => [s.result, s.problems])).toEqual([
      ['failed', 1],
      ['failed', 1],
      ['failed', 1],
    ]);
    expect(failed.problems).toEqual(ids.map((id) => ({ snapshot: id, path: `data${source}/keep.bin`, problem: expect.stringMatching(/^its bytes differ from the manifest's \(SHA-256 [0-9a-f]{12}… on the primary target\)$/) })));
    // Cron's mail names the file and what to do; status shows the failed check.
    expect(found.stderr).toContain(`data${source}/keep.bin`);
    expect(found.stderr).toContain('smartctl');
    const status = await d.run('status');
    expect(status.stdout).toContain('CHECKED AT REST');
    expect(status.stdout).toContain(`JAA FAILED (record ${failed.seq})`);
    // A later check that does not read the file passes, and does not clear the failure; a
    // full read once the file is whole again does.
    expect((await d.run('verify', 'docs')).code).toBe(0);
    expect((await d.run('status')).stdout).toContain(`JAA FAILED (record ${failed.seq})`);
    flipBit(join(dirs[0]!, 'data', source, 'keep.bin'));
    expect((await d.run('verify', 'docs', '--read-data')).code).toBe(0);
    expect((await d.run('status')).stdout).toMatch(/JAA ok \d{4}-\d\d-\d\d \d\d:\d\d/);

    // An edited manifest (a line changed to hide a changed file), a planted file and a removed one.
    const manifest = join(dirs[1]!, 'manifest.jsonl');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(/"mode":"0644"/, '"mode":"0600"'));
    writeFileSync(join(dirs[2]!, 'data', source, 'planted.sh'), 'echo hi\n');
    rmSync(join(dirs[0]!, 'data', source, 'sub/c.txt'));
    const tampered = await d.run('verify', 'docs');
    expect(tampered.code).toBe(3);
    const problems = lastRecord(d).problems;
    expect(problems).toContainEqual({ snapshot: ids[1], path: 'manifest.jsonl', problem: expect.stringMatching(/^its digest is not the one the backup record carries: it was altered or damaged/) });
    expect(problems).toContainEqual({ snapshot: ids[2], path: `data${source}/planted.sh`, problem: "on the primary target but not in the snapshot's manifest" });
    expect(problems).toContainEqual({ snapshot: ids[0], path: `data${source}/sub/c.txt`, problem: 'missing on the primary target' });
    expect(lastRecord(d).snapshots.map((s: any) => s.result)).toEqual(['failed', 'failed', 'failed']);

    // A snapshot gone from the disk is named, since its backup record keeps it there; one
    // moved aside as damaged (what backup.ts advises for a damaged snapshot) is not.
    renameSync(dirs[1]!, join(d.target, 'web01/docs', `damaged-${ids[1]}`));
    rmSync(dirs[2]!, { recursive: true });
    const lost = await d.run('verify', 'docs');
    expect(lost.code).toBe(3);
    const gone = lastRecord(d);
    expect(gone.snapshots.map((s: any) => [s.id, s.result])).toEqual([
      [ids[0], 'failed'],
      [ids[2], 'failed'],
    ]);
    expect(gone.problems).toContainEqual({ snapshot: ids[2], path: '', problem: `missing on the primary target, yet record ${backups[2]!.seq} keeps it there and no prune record deleted it` });
    await verified(d);
  });

  it('reads the next share of the files on each --read-data-subset, so that successive runs read every file', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 40; i++) files[`f${String(i).padStart(2, '0')}.bin`] = randomBytes(1000 + i);
    const { d, source } = await backedUp(files);
    const [id] = d.snapshots('docs') as [string];
    const data = join(d.target, 'web01/docs/snapshots', id, 'data', source);
    // The file whose damage only one share can find.
    const victim = 'f17.bin';
    const victimAt = position(files[victim]!);
    flipBit(join(data, victim));

    const read = new Set<string>();
    const arcs: { from: number; to: number }[] = [];
    for (let k = 0; k < 5; k++) {
      const r = await d.run('verify', 'docs', '--read-data-subset', '25%');
      const record = lastRecord(d);
      arcs.push(record.read.subset);
      const expected = Object.keys(files).filter((name) => onArc(position(files[name]!), record.read.subset));
      for (const name of expected) read.add(name);
      expect(record.read).toMatchObject({ data: 'subset', files: expected.length });
      // The share that holds the damaged file fails, naming it; the others pass.
      if (onArc(victimAt, record.read.subset)) {
        expect(r.code).toBe(3);
        expect(record.problems).toEqual([{ snapshot: id, path: `data${source}/${victim}`, problem: expect.stringMatching(/^its bytes differ/) }]);
      } else expect(r.code, r.stdout).toBe(0);
    }
    // Each share starts where the one before it stopped, and four close the circle.
    expect(arcs).toEqual([
      { from: 0, to: 0.25 },
      { from: 0.25, to: 0.5 },
      { from: 0.5, to: 0.75 },
      { from: 0.75, to: 0 },
      { from: 0, to: 0.25 },
    ]);
    expect(read.size).toBe(40);
    expect(recordsOf(d, 'verify').filter((v) => v.result === 'failed')).toHaveLength(onArc(victimAt, arcs[0]!) ? 2 : 1);

    // Bad input: a clear message, nothing recorded.
    const before = d.recordFiles().length;
    for (const [args, message] of [
      [['docs', '--read-data-subset', 'five'], '--read-data-subset five: give a share of the files such as 5%'],
      [['docs', '--read-data', '--read-data-subset', '5%'], 'give --read-data or --read-data-subset, not both'],
      [['nosuch'], 'no repository named "nosuch"'],
      [[], 'name the repository to verify, or --all'],
      [['docs', '--target', 'secondary'], 'has no secondary target'],
      [['docs', '--target', 'tertiary'], '--target (tertiary). Expected one of: primary, secondary'],
    ] as const) {
      const r = await d.run('verify', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
    expect(d.recordFiles()).toHaveLength(before);
    await verified(d);
  });
});

describe('respaldo run reads a share of the stored files every day', () => {
  it('so that every file is read within verify.reread-within, in shares that follow each other', async () => {
    const d = await deployment([{ name: 'docs', paths: ['/placeholder'], schedule: { every: '7d' }, verify: { 'reread-within': '4d' } }], { extra: { timezone: 'UTC' } });
    const source = join(d.root, 'docs');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 24; i++) files[`f${i}.bin`] = randomBytes(500 + i);
    writeTree(source, files);
    setConfig(d, (c) => (c.repositories[0].paths = [source]));
    const c = clock('2026-11-02T03:00:00Z');
    const reporter = memoryReporter();
    const ctx = { cwd: ROOT, env: process.env, now: c.now, reporter, signal: new AbortController().signal };
    const run = () => runRun(ctx, { config: d.config, repos: [], all: false, manual: false, verify: undefined, progress: false });
    const atRest = () => recordsOf(d, 'verify').filter((v) => v.reason === 'rotation');

    expect(await run()).toBe(0);
    expect(atRest()).toHaveLength(0); // the snapshot is new: nothing to re-read yet
    c.advance(12);
    expect(await run()).toBe(0);
    expect(atRest()).toHaveLength(0); // not a day yet
    c.advance(12);
    expect(await run()).toBe(0);
    expect(atRest()).toHaveLength(1);
    expect(atRest()[0]).toMatchObject({ trigger: 'scheduled', target: 'primary', read: { data: 'subset', subset: { from: 0, to: 0.25 } }, result: 'ok' });
    // A person reads a tenth more by hand: the rotation moves on, the daily pace does not change.
    c.advance(12);
    expect(await runVerify(ctx, { config: d.config, repos: ['docs'], all: false, target: undefined, readData: false, subset: '10%', manual: true })).toBe(0);
    expect(lastRecord(d)).toMatchObject({ reason: 'at-rest', trigger: 'manual', read: { subset: { from: 0.25, to: 0.35 } } });
    // The server is off for a day and a half more: two days after the last daily share, two days' share.
    c.advance(36);
    const [id] = d.snapshots('docs') as [string];
    const victim = Object.keys(files).find((name) => onArc(position(files[name]!), { from: 0.35, to: 0.85 }))!;
    flipBit(join(d.target, 'web01/docs/snapshots', id, 'data', source, victim));
    expect(await run()).toBe(3);
    expect(atRest()[1]).toMatchObject({ read: { data: 'subset', subset: { from: 0.35, to: 0.85 } }, result: 'failed', problems: [{ snapshot: id, path: `data${source}/${victim}` }] });
    expect(reporter.events).toContainEqual({ type: 'warning', repository: 'docs', message: expect.stringContaining(`the primary target's copy does not match its manifest: snapshot ${id}: data${source}/${victim}`) });
    // A whole period without a read: everything is read.
    c.advance(5 * 24);
    expect(await run()).toBe(3);
    const snapshots = d.snapshots('docs').map((s) => join(d.target, 'web01/docs/snapshots', s));
    expect(atRest()[2]).toMatchObject({ read: { data: 'all', files: storedFiles(snapshots).size }, result: 'failed' });
    // Turned off: nothing more is read.
    setConfig(d, (cfg) => (cfg.repositories[0].verify = { 'reread-within': 'never' }));
    c.advance(2 * 24);
    await run();
    expect(atRest()).toHaveLength(3);
    await verified(d);
  });
});

describe('verify at rest at CSC', () => {
  let server: Sshd;
  let daemon: Rsyncd;
  beforeAll(async () => {
    [server, daemon] = await Promise.all([sshd(), rsyncd()]);
  });
  afterAll(async () => {
    await Promise.all([server?.stop(), daemon?.stop()]);
  });

  for (const via of ['ssh', 'rsync daemon'] as const) {
    it(`over ${via}: finds a copy damaged or lost at CSC, names its snapshot and file, the next run copies it again, never from a primary that rotted itself`, async () => {
      const name = `dse-${randomBytes(4).toString('hex')}`;
      const csc = via === 'ssh' ? join(tempDir(), 'csc disk') : join(daemon.module, name);
      mkdirSync(csc, { recursive: true });
      const secondary = via === 'ssh' ? { url: `root@127.0.0.1:${csc}`, port: server.port, identity: server.identity, 'host-key': server.hostKey } : { url: daemon.url(`csc/${name}`), 'password-file': daemon.passwordFile };
      const { d, source } = await backedUp({ 'a.txt': 'alpha\n', 'b.bin': randomBytes(30_000) }, secondary);
      writeFileSync(join(source, 'a.txt'), 'alpha, changed\n');
      expect((await d.run('run', '--all')).code).toBe(0);
      const [id1, id2] = d.snapshots('docs') as [string, string];
      const atCsc = (id: string) => join(csc, 'web01/docs/snapshots', id);

      const clean = await d.run('verify', 'docs', '--read-data');
      expect(clean.code, clean.stdout + clean.stderr).toBe(0);
      const [onPrimary, onCsc] = recordsOf(d, 'verify').slice(-2);
      expect(onPrimary).toMatchObject({ target: 'primary', result: 'ok' });
      expect(onCsc).toMatchObject({ target: 'secondary', method: via === 'ssh' ? 'rehash' : 'rsync-checksum', read: { data: 'all' }, result: 'ok' });
      expect(onCsc!.snapshots.map((s: any) => s.id)).toEqual([id1, id2]);

      // The older copy's a.txt (its own inode: the newer snapshot changed it) rots at CSC.
      flipBit(join(atCsc(id1), 'data', source, 'a.txt'));
      expect((await d.run('verify', 'docs', '--target', 'secondary')).code).toBe(0); // listing only: invisible
      const found = await d.run('verify', 'docs', '--target', 'secondary', '--read-data');
      expect(found.code).toBe(3);
      const record = lastRecord(d);
      expect(record).toMatchObject({ target: 'secondary', result: 'failed' });
      expect(record.snapshots.map((s: any) => [s.id, s.result])).toEqual([
        [id1, 'failed'],
        [id2, 'ok'],
      ]);
      expect(record.problems).toEqual([{ snapshot: id1, path: `data${source}/a.txt`, problem: expect.stringMatching(via === 'ssh' ? /^its bytes differ from the manifest's .* at the secondary target\)$/ : /^its bytes differ from the primary's copy \(checksum\)$/) }]);
      expect(found.stderr).toContain('the next respaldo run copies the snapshot to CSC again');

      // The next run (nothing due) replaces CSC's damaged copy, and the check passes again.
      const repair = await d.run('run');
      expect(repair.code, repair.stderr).toBe(0);
      expect(recordsOf(d, 'copy').at(-1)).toMatchObject({ snapshot: { id: id1 }, repair: true, verified: { result: 'ok' } });
      expect(readFileSync(join(atCsc(id1), 'data', source, 'a.txt'), 'utf8')).toBe('alpha\n');
      expect((await d.run('verify', 'docs', '--target', 'secondary', '--read-data')).code).toBe(0);
      // Repaired once: a later run does not copy it again.
      const copies = recordsOf(d, 'copy').length;
      expect((await d.run('run')).code).toBe(0);
      expect(recordsOf(d, 'copy')).toHaveLength(copies);

      // A file lost at CSC is found by the listing alone, and a whole copy lost too; the
      // next run copies both again.
      rmSync(join(atCsc(id2), 'data', source, 'b.bin'));
      expect((await d.run('verify', 'docs', '--target', 'secondary')).code).toBe(3);
      expect(lastRecord(d).problems).toContainEqual({ snapshot: id2, path: `data${source}/b.bin`, problem: 'missing at the secondary target' });
      rmSync(atCsc(id1), { recursive: true });
      expect((await d.run('verify', 'docs', '--target', 'secondary')).code).toBe(3);
      expect(lastRecord(d).problems[0]).toEqual({ snapshot: id1, path: '', problem: expect.stringMatching(/^missing on the secondary target, yet record \d+ keeps it there and no prune record deleted it$/) });
      const again = await d.run('run');
      expect(again.code, again.stderr).toBe(0);
      expect(recordsOf(d, 'copy').slice(-2)).toMatchObject([
        { snapshot: { id: id2 }, repair: true },
        { snapshot: { id: id1 }, repair: true },
      ]);
      expect((await d.run('verify', 'docs', '--target', 'secondary', '--read-data')).code).toBe(0);
      expect(readFileSync(join(atCsc(id1), 'data', source, 'a.txt'), 'utf8')).toBe('alpha\n');

      // The primary's snapshot.yaml rots: the primary's check names it; CSC's copy is checked
      // against the record's digest over SSH, and cannot be compared at a daemon, which is not
      // counted against CSC.
      const summary = join(d.target, 'web01/docs/snapshots', id1, 'snapshot.yaml');
      const goodSummary = readFileSync(summary);
      // A digit of its finish time, so that it still reads as a summary: only its digest tells.
      flipBit(summary, goodSummary.indexOf('finished: ') + 'finished: '.length + 3);
      expect((await d.run('verify', 'docs', '--target', 'primary')).code).toBe(3);
      expect(lastRecord(d).problems).toEqual([{ snapshot: id1, path: 'snapshot.yaml', problem: expect.stringMatching(/^its digest is not the one the backup record carries/) }]);
      const atCscCheck = await d.run('verify', 'docs', '--target', 'secondary', '--read-data');
      if (via === 'ssh') {
        expect(atCscCheck.code).toBe(0);
        expect(lastRecord(d).snapshots.map((s: any) => s.result)).toEqual(['ok', 'ok']);
      } else {
        expect(atCscCheck.code).toBe(3);
        expect(atCscCheck.stdout).toContain(`not checked: snapshot ${id1}: the primary's snapshot.yaml, which the copy would be compared with, does not match the digest its record carries`);
        expect(lastRecord(d)).toMatchObject({ result: 'ok', snapshots: [{ id: id1, result: 'unchecked' }, { id: id2, result: 'ok' }] });
      }
      // CSC's copy is damaged too: its repair would copy the primary's rotten snapshot.yaml, so
      // it is refused, and the copy of a new backup still goes.
      flipBit(join(atCsc(id1), 'data', source, 'a.txt'));
      if (via === 'ssh') expect((await d.run('verify', 'docs', '--target', 'secondary', '--read-data')).code).toBe(3);
      else expect((await d.run('run')).code).toBe(0); // a daemon's check cannot tell which side is damaged: nothing to repair
      writeFileSync(join(source, 'c.txt'), 'gamma\n');
      const third = await d.run('run', '--all');
      const id3 = d.snapshots('docs')[2]!;
      expect(recordsOf(d, 'copy').at(-1)).toMatchObject({ snapshot: { id: id3 } });
      expect(recordsOf(d, 'copy').at(-1)!.repair).toBeUndefined();
      if (via === 'ssh') {
        expect(third.code).toBe(3);
        expect(recordsOf(d, 'failure').at(-1)!.cause).toContain(`the primary's snapshot.yaml of snapshot ${id1} no longer matches the digest its backup record carries: nothing was sent to the secondary target`);
      } else expect(third.code, third.stderr).toBe(0);
      expect(readFileSync(join(atCsc(id1), 'snapshot.yaml'))).toEqual(goodSummary);
      await verified(d);
    });
  }
});
