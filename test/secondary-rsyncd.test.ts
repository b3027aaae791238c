/**
 * CSC's copy in a module of a real rsync daemon (rsync://user@host:port/module/path): each
 * backup reaches it, unchanged files hard-linked to the previous copy, compared there by
 * checksum before its snapshot.yaml makes it complete; damage at CSC is found and
 * repaired; copies wait while the daemon is down; a restore borrows CSC's copy; prune
 * deletes exactly what the rules say; the module's password never leaves its file.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type CliResult, type Deployment, deployment, describeTree, inodeOf, recordsOf, tempDir, verified, withoutInodes, writeTree } from './helpers.js';
import { asStored, rsyncd, type Rsyncd } from './rsyncd.js';

function setSecondary(d: Deployment, secondary: unknown): void {
  const config = parse(readFileSync(d.config, 'utf8'));
  config.targets.secondary = secondary;
  writeFileSync(d.config, JSON.stringify(config));
}

function sameTree(primary: string, csc: string): void {
  expect(asStored(describeTree(csc))).toEqual(asStored(describeTree(primary)));
}

/** Flips one bit of a file at CSC, keeping its size and times: only reading the bytes can tell. */
function damage(file: string): void {
  const { atime, mtime } = statSync(file);
  const bytes = readFileSync(file);
  bytes[0] ^= 0x01;
  writeFileSync(file, bytes);
  utimesSync(file, atime, mtime);
}

describe('the second copy to an rsync daemon', () => {
  let daemon: Rsyncd;
  let d: Deployment;
  let source: string;
  let csc: string;
  /** Every stdout and stderr of the agent in these tests: none may hold the password. */
  const outputs: string[] = [];
  const run = async (...args: string[]): Promise<CliResult> => {
    const r = await d.run(...args);
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const primaryDir = (id: string) => join(d.target, 'web01/docs/snapshots', id);
  const at = (id: string) => join(csc, 'web01/docs/snapshots', id);

  beforeAll(async () => {
    daemon = await rsyncd();
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('reaches CSC with snapshot.yaml last, links unchanged files to the previous copy, and a damaged or incomplete copy is found and repaired', async () => {
    d = await deployment([{ name: 'docs', paths: ['/placeholder'] }]);
    source = join(d.root, 'docs');
    csc = join(daemon.module, 'dse');
    mkdirSync(csc);
    writeTree(source, { 'a.txt': 'alpha\n', 'sub/b.bin': randomBytes(100_000), "odd name $HOME 'q'.txt": 'odd\n' });
    symlinkSync('a.txt', join(source, 'link-to-a'));
    const config = parse(readFileSync(d.config, 'utf8'));
    config.repositories[0].paths = [source];
    writeFileSync(d.config, JSON.stringify(config));
    setSecondary(d, { url: daemon.url('csc/dse'), 'password-file': daemon.passwordFile });

    const first = await run('run', '--all');
    expect(first.code, first.stderr).toBe(0);
    const [id1] = d.snapshots('docs') as [string];
    const copies = recordsOf(d, 'copy');
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({ repository: 'docs', snapshot: { id: id1, target: 'secondary', location: `web01/docs/snapshots/${id1}` }, from: 'primary', to: 'secondary', verified: { method: 'rsync-checksum', result: 'ok' } });
    const backup = recordsOf(d, 'backup')[0]!;
    expect(copies[0]!.snapshot.digest).toBe(backup.snapshot.digest);
    expect(copies[0]!.snapshot.manifest).toBe(backup.snapshot.manifest);
    // The whole snapshot, snapshot.yaml included: a complete copy.
    sameTree(primaryDir(id1), at(id1));
    expect(readFileSync(join(at(id1), 'snapshot.yaml'))).toEqual(readFileSync(join(primaryDir(id1), 'snapshot.yaml')));
    // The folders respaldo made in the module are private, as `mkdir -p` with umask 077 makes them over SSH.
    for (const rel of ['web01', 'web01/docs', 'web01/docs/snapshots']) expect((statSync(join(csc, rel)).mode & 0o777).toString(8)).toBe('700');

    // A second backup after a change: at CSC the unchanged files are hard links into the
    // first copy (--link-dest=../<previous>/, resolved by the daemon inside the module).
    writeFileSync(join(source, 'a.txt'), 'alpha, changed\n');
    const second = await run('run', '--all');
    expect(second.code, second.stderr).toBe(0);
    const [, id2] = d.snapshots('docs') as [string, string];
    const data = (id: string) => join(at(id), 'data', source);
    expect(inodeOf(join(data(id2), 'sub/b.bin'))).toBe(inodeOf(join(data(id1), 'sub/b.bin')));
    expect(inodeOf(join(data(id2), "odd name $HOME 'q'.txt"))).toBe(inodeOf(join(data(id1), "odd name $HOME 'q'.txt")));
    expect(inodeOf(join(data(id2), 'a.txt'))).not.toBe(inodeOf(join(data(id1), 'a.txt')));
    expect(readFileSync(join(data(id2), 'a.txt'), 'utf8')).toBe('alpha, changed\n');
    sameTree(primaryDir(id2), at(id2));
    // A daemon's copies are compared file by file, and their records say so.
    expect(recordsOf(d, 'copy').map((c) => c.verified.scope)).toEqual(['full', 'full']);

    // One bit flipped at CSC: the next backup's recheck of the newest copy finds it, and the copy is repaired.
    damage(join(data(id2), 'a.txt'));
    writeFileSync(join(source, 'c.txt'), 'gamma\n');
    const third = await run('run', '--all');
    expect(third.code, third.stderr).toBe(0);
    const verify = recordsOf(d, 'verify').at(-1)!;
    expect(verify).toMatchObject({ repository: 'docs', reason: 'before-copy', target: 'secondary', method: 'rsync-checksum', snapshots: [{ id: id2, result: 'failed' }], result: 'failed' });
    expect(verify.problems.map((p: { path: string }) => p.path)).toEqual([`data${source}/a.txt`]);
    // The damaged copy is replaced before the new one is linked to it.
    expect(recordsOf(d, 'copy').slice(-2)).toMatchObject([{ snapshot: { id: id2 }, repair: true, verified: { result: 'ok' } }, { snapshot: { id: d.snapshots('docs')[2] } }]);
    expect(readFileSync(join(data(id2), 'a.txt'), 'utf8')).toBe('alpha, changed\n');
    sameTree(primaryDir(id2), at(id2));
    // The third snapshot, linked to the repaired copy, has the right bytes.
    const [, , id3] = d.snapshots('docs') as [string, string, string];
    sameTree(primaryDir(id3), at(id3));

    // A copy without its snapshot.yaml (a crash between a repair's first and last step) is
    // incomplete: it no longer counts, the recheck says so, and the copy is completed again.
    rmSync(join(at(id3), 'snapshot.yaml'));
    writeFileSync(join(source, 'd.txt'), 'delta\n');
    const fourth = await run('run', '--all');
    expect(fourth.code, fourth.stderr).toBe(0);
    const recheck = recordsOf(d, 'verify').at(-1)!;
    expect(recheck).toMatchObject({ target: 'secondary', snapshots: [{ id: id3, result: 'failed' }], result: 'failed' });
    expect(recheck.problems).toContainEqual({ snapshot: id3, path: 'snapshot.yaml', problem: 'missing at the secondary target' });
    const id4 = d.snapshots('docs').at(-1)!;
    expect(recordsOf(d, 'copy').slice(-2)).toMatchObject([{ snapshot: { id: id3 }, repair: true }, { snapshot: { id: id4 } }]);
    sameTree(primaryDir(id3), at(id3));
    sameTree(primaryDir(id4), at(id4));
    await verified(d);
  });

  it('queues the copies while the daemon is down for two runs and delivers both, in order, once it is back', async () => {
    await daemon.stop();
    const before = d.snapshots('docs');
    for (let i = 1; i <= 2; i++) {
      writeFileSync(join(source, `new-${i}.txt`), `run ${i}\n`);
      const r = await run('run', '--all');
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/the secondary target rsync:\/\/respaldo@127\.0\.0\.1:\d+\/csc\/dse cannot be reached/);
      const failure = recordsOf(d, 'failure').at(-1)!;
      expect(failure).toMatchObject({ repository: 'docs', stage: 'copy' });
      expect(failure.cause).toContain(`${i} snapshot(s) wait for the secondary target`);
    }
    const waiting = d.snapshots('docs').filter((id) => !before.includes(id));
    expect(waiting).toHaveLength(2);
    expect((await run('status')).stdout).toMatch(/docs .*2 pending, oldest \d+ min old/);

    await daemon.start();
    const copiesBefore = recordsOf(d, 'copy').length;
    const back = await run('run');
    expect(back.code, back.stderr).toBe(0);
    expect(recordsOf(d, 'copy').slice(copiesBefore).map((c) => c.snapshot.id)).toEqual(waiting);
    for (const id of waiting) sameTree(primaryDir(id), at(id));
    // The second one was linked to the first: the file that did not change between them is one inode.
    expect(inodeOf(join(at(waiting[1]!), 'data', source, 'new-1.txt'))).toBe(inodeOf(join(at(waiting[0]!), 'data', source, 'new-1.txt')));
    expect((await run('status')).stdout).toMatch(/docs .*up to date/);
    await verified(d);
  });

  it('counts no copy that could not be compared, and completes it on the next run', async () => {
    // A module that refuses --checksum takes the delivery, then refuses the comparison.
    setSecondary(d, { url: daemon.url('csc-nochecksum/dse'), 'password-file': daemon.passwordFile });
    writeFileSync(join(source, 'e.txt'), 'epsilon\n');
    const r = await run('run', '--all');
    expect(r.code, r.stderr).toBe(3);
    const id = d.snapshots('docs').at(-1)!;
    const failure = recordsOf(d, 'failure').at(-1)!;
    expect(failure).toMatchObject({ repository: 'docs', stage: 'copy' });
    expect(failure.cause).toMatch(/^CSC's rsync daemon refuses the option --checksum .*\(while comparing snapshot \S+ with its copy\)/);
    expect(failure.hint).toMatch(/"refuse options"/);
    // The re-check of the newest copy comes first and is refused: nothing of the new snapshot
    // counts at CSC (no snapshot.yaml), and no copy record says otherwise.
    expect(existsSync(join(at(id), 'snapshot.yaml'))).toBe(false);
    expect(recordsOf(d, 'copy').map((c) => c.snapshot.id)).not.toContain(id);

    setSecondary(d, { url: daemon.url('csc/dse'), 'password-file': daemon.passwordFile });
    const back = await run('run');
    expect(back.code, back.stderr).toBe(0);
    expect(recordsOf(d, 'copy').at(-1)).toMatchObject({ snapshot: { id }, verified: { result: 'ok' } });
    sameTree(primaryDir(id), at(id));
    await verified(d);
  });

  it('restores from CSC when the primary lost the snapshot, and records the media loan', async () => {
    const [id1] = d.snapshots('docs') as [string];
    const expected = describeTree(join(primaryDir(id1), 'data'));
    rmSync(primaryDir(id1), { recursive: true });
    const to = join(tempDir(), 'restored');
    const r = await run('restore', 'docs', '--snapshot', id1, '--to', to, '--reason', 'physical-damage', '--request', 'REQ-2026-0007');
    expect(r.code, r.stderr).toBe(0);
    expect(withoutInodes(describeTree(to))).toEqual(withoutInodes(expected));
    expect(readFileSync(join(to, source, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(readlinkSync(join(to, source, 'link-to-a'))).toBe('a.txt');
    const loan = recordsOf(d, 'media-loan').at(-1)!;
    expect(loan).toMatchObject({ repository: 'docs', snapshot: id1, from: 'secondary', label: `web01/docs/${id1}`, request: 'REQ-2026-0007' });
    expect(loan.reason).toMatch(/is not on the primary target/);
    expect(recordsOf(d, 'restore').at(-1)).toMatchObject({ snapshot: { id: id1, target: 'secondary' }, source_copy: 'secondary', reason: 'physical-damage', verification: { mismatches: 0 }, result: 'ok' });
    await verified(d);
  });

  it('says clearly when the daemon refuses the password or the writes, and the password never reaches a record or the output', async () => {
    const tries: { secondary: unknown; cause: RegExp; hint: RegExp }[] = [];
    const wrong = join(d.root, 'wrong.pass');
    writeFileSync(wrong, 'not-the-password\n', { mode: 0o600 });
    tries.push({ secondary: { url: daemon.url('csc/dse'), 'password-file': wrong }, cause: /CSC's rsync daemon refused the password of user respaldo for module "csc"/, hint: /targets\.secondary\.password-file holds the password that the module's "secrets file" at CSC gives respaldo/ });
    // Without a password file: an error, not a prompt.
    tries.push({ secondary: daemon.url('csc/dse'), cause: /the module "csc" of CSC's rsync daemon \(rsync:\/\/respaldo@127\.0\.0\.1:\d+\/csc\/dse\) asks for a password/, hint: /password-file: / });
    const open = join(d.root, 'open.pass');
    writeFileSync(open, `${daemon.password}\n`);
    chmodSync(open, 0o644);
    tries.push({ secondary: { url: daemon.url('csc/dse'), 'password-file': open }, cause: /targets\.secondary\.password-file \{secondary\.password-file\} can be read by other users \(mode 0644\)/, hint: /chmod 600 \{secondary\.password-file\}/ });
    tries.push({ secondary: { url: daemon.url('csc-ro/dse'), 'password-file': daemon.passwordFile }, cause: /the module "csc-ro" of CSC's rsync daemon is read only/, hint: /"read only = no"/ });
    tries.push({ secondary: { url: daemon.url('csc/nowhere'), 'password-file': daemon.passwordFile }, cause: /the secondary target's folder rsync:\/\/respaldo@127\.0\.0\.1:\d+\/csc\/nowhere does not exist/, hint: /create it at CSC/ });
    for (const [i, t] of tries.entries()) {
      setSecondary(d, t.secondary);
      writeFileSync(join(source, `try-${i}.txt`), `${i}\n`);
      const r = await run('run', '--all');
      expect(r.code, r.stderr).toBe(3);
      const failure = recordsOf(d, 'failure').at(-1)!;
      expect(failure).toMatchObject({ repository: 'docs', stage: 'copy' });
      expect(failure.cause).toMatch(t.cause);
      expect(failure.hint).toMatch(t.hint);
      expect(failure.cause).toContain(`${i + 1} snapshot(s) wait for the secondary target`);
    }
    // Nothing was written where it was refused.
    expect(existsSync(join(daemon.module, 'nowhere'))).toBe(false);

    setSecondary(d, { url: daemon.url('csc/dse'), 'password-file': daemon.passwordFile });
    const copiesBefore = recordsOf(d, 'copy').length;
    const back = await run('run');
    expect(back.code, back.stderr).toBe(0);
    expect(recordsOf(d, 'copy').slice(copiesBefore)).toHaveLength(tries.length);

    for (const f of d.recordFiles()) expect(readFileSync(join(d.records, f), 'utf8'), f).not.toContain(daemon.password);
    expect(outputs.join('\n')).not.toContain(daemon.password);
    await verified(d);
  });
});

describe("pruning CSC's copy in an rsync daemon", () => {
  let daemon: Rsyncd;
  beforeAll(async () => {
    daemon = await rsyncd();
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it('deletes exactly the snapshots the rules delete, and nothing else in the module', async () => {
    const { runPrune } = await import('../dist/agent/commands/prune.js');
    const { runRun } = await import('../dist/agent/commands/run.js');
    const { memoryReporter } = await import('../dist/agent/report.js');
    const src = join(tempDir(), 'src');
    const constant = randomBytes(200_000);
    writeTree(src, { 'day.txt': 'day 0\n', 'constant.bin': constant });
    const d = await deployment([{ name: 'docs', paths: [src], schedule: { every: '1d' }, retention: { 'keep-last': 2 } }], { extra: { timezone: 'UTC' } });
    const csc = join(daemon.module, 'dse');
    mkdirSync(csc);
    setSecondary(d, { url: daemon.url('csc/dse'), 'password-file': daemon.passwordFile });
    let now = new Date('2026-11-02T03:00:00Z').getTime();
    const reporter = memoryReporter();
    const ctx = { cwd: d.root, env: process.env, now: () => new Date(now), reporter, signal: new AbortController().signal };
    const snapshotsAt = join(csc, 'web01/docs/snapshots');
    /** The complete copies at CSC: folders holding a snapshot.yaml. */
    const atCsc = () =>
      readdirSync(snapshotsAt)
        .filter((n) => /^\d{8}T\d{6}Z(-\d+)?$/.test(n) && existsSync(join(snapshotsAt, n, 'snapshot.yaml')))
        .sort();
    for (let n = 1; n <= 4; n++) {
      writeFileSync(join(src, 'day.txt'), `day ${n}\n`);
      expect(await runRun(ctx, { config: d.config, repos: [], all: false, manual: false, verify: undefined, progress: false })).toBe(0);
      now += 24 * 3_600_000;
    }
    const all = d.snapshots('docs');
    expect(all).toHaveLength(4);
    expect(atCsc()).toEqual(all);

    // Around the repository's copies, what the prune must leave alone: the same ids under
    // another host and another repository, names that only start like a snapshot's, an
    // id-named folder one level up, the archive.
    const decoys = [
      ...all.map((id) => `web02/docs/snapshots/${id}/snapshot.yaml`),
      ...all.map((id) => `web01/other/snapshots/${id}/snapshot.yaml`),
      'web01/docs/snapshots/NOTES.txt',
      `web01/docs/snapshots/${all[0]}.old/snapshot.yaml`,
      `web01/docs/snapshots/${all[1]}x`,
      `web01/docs/${all[0]}/snapshot.yaml`,
      'web01/docs/archive/wal/000000010000000000000001',
    ];
    for (const rel of decoys) writeTree(csc, { [rel]: `decoy ${rel}\n` });
    // An incomplete copy: a delivery cut short, or a prune stopped after snapshot.yaml went.
    const cut = '20261101T030000Z';
    writeTree(join(snapshotsAt, cut), { 'manifest.jsonl': '', [`data${src}/day.txt`]: 'day -1\n' });
    const kept = all.slice(2);
    const before = new Map(kept.map((id) => [id, describeTree(join(snapshotsAt, id))]));

    // The dry run deletes nothing.
    expect(await runPrune(ctx, { config: d.config, repos: [], apply: false, manual: false })).toBe(0);
    expect(atCsc()).toEqual(all);
    expect(existsSync(join(snapshotsAt, cut))).toBe(true);

    expect(await runPrune(ctx, { config: d.config, repos: [], apply: true, manual: false })).toBe(0);
    expect(atCsc()).toEqual(kept);
    expect(readdirSync(snapshotsAt).sort()).toEqual([...kept, `${all[0]}.old`, `${all[1]}x`, 'NOTES.txt'].sort());
    for (const rel of decoys) expect(readFileSync(join(csc, rel), 'utf8')).toBe(`decoy ${rel}\n`);
    // The kept copies are as they were, inodes and all, and the file they share keeps its bytes.
    for (const id of kept) expect(describeTree(join(snapshotsAt, id))).toEqual(before.get(id));
    expect(readFileSync(join(snapshotsAt, kept[1]!, 'data', src, 'constant.bin'))).toEqual(constant);
    const pruned = recordsOf(d, 'prune');
    expect(pruned.map((r) => [r.target, r.deleted])).toEqual([
      ['primary', all.slice(0, 2)],
      ['secondary', all.slice(0, 2)],
    ]);
    expect(pruned[1]!.kept.map((k: { id: string }) => k.id)).toEqual(kept);
    expect(reporter.events).toContainEqual({ type: 'info', message: `docs: removed what an interrupted prune or copy left of snapshot(s) ${cut} on the secondary target` });

    // The next backup still reaches CSC, linked to the newest copy left there.
    writeFileSync(join(src, 'day.txt'), 'day 5\n');
    expect(await runRun(ctx, { config: d.config, repos: [], all: false, manual: false, verify: undefined, progress: false })).toBe(0);
    const newest = d.snapshots('docs').at(-1)!;
    expect(atCsc()).toEqual([...kept, newest]);
    expect(inodeOf(join(snapshotsAt, newest, 'data', src, 'constant.bin'))).toBe(inodeOf(join(snapshotsAt, kept[1]!, 'data', src, 'constant.bin')));
    await verified(d);
  });
});

describe('an rsync daemon target in the configuration', () => {
  it('refuses a url that is not one, and the options of other kinds of target, naming the field', async () => {
    const d = await deployment([{ name: 'etc', kind: 'config', paths: ['/etc/hostname'] }]);
    const cases: [unknown, RegExp][] = [
      ['rsync://csc.example', /targets\.secondary: "rsync:\/\/csc\.example" is not an rsync daemon target: write it as rsync:\/\/user@host\/module\/path/],
      ['rsync://csc.example/respaldos/a/../b', /is not an rsync daemon target/],
      ['rsync://csc.example/respaldos/dse*', /is not an rsync daemon target/],
      [{ url: 'rsync://csc.example/respaldos', identity: '/etc/respaldo/csc.key' }, /targets\.secondary: "identity" is for SSH targets/],
      [{ url: 'rsync://csc.example/respaldos', port: 8873 }, /"port" is for SSH targets \(user@host:\/path\); an rsync daemon's port goes in the url: rsync:\/\/host:8873\/module/],
      [{ url: '/mnt/csc', 'password-file': '/etc/respaldo/csc.pass' }, /targets\.secondary: "password-file" is for rsync daemon targets/],
    ];
    for (const [secondary, message] of cases) {
      setSecondary(d, secondary);
      const r = await d.run('run', '--all');
      expect(r.code, JSON.stringify(secondary)).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(d.snapshots('etc')).toEqual([]);
  });
});
