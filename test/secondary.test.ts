/**
 * The second copy (clause 4.1.6): each backup reaches CSC's target over SSH (a real sshd on
 * loopback) or on a local path, compared there by checksum, recorded by `copy` records;
 * damage at CSC is found and repaired; copies wait while CSC is down and all arrive after.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type Deployment, deployment, describeTree, eventOf, inodeOf, recordsOf, respaldo, setMtimeNs, tempDir, verified, withoutInodes, writeTree } from './helpers.js';
import { sshd, type Sshd } from './sshd.js';
import { LINK, REMOVE, REMOVE_EACH, RMTREE } from '../dist/agent/secondary.js';

/** The data trees of a snapshot on the primary and at CSC, compared as a user would: every entry's type, mode, time, bytes. */
function sameTree(a: string, b: string): void {
  expect(withoutInodes(describeTree(b))).toEqual(withoutInodes(describeTree(a)));
}

describe('the second copy over SSH', () => {
  let server: Sshd;
  let d: Deployment;
  let csc: string;
  let source: string;

  beforeAll(async () => {
    server = await sshd();
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** Points the deployment's one repository at `source`, and its secondary target at `dir` through the test's sshd. */
  function overSsh(dep: Deployment, source: string, dir: string): void {
    const config = parse(readFileSync(dep.config, 'utf8'));
    config.repositories[0].paths = [source];
    config.targets.secondary = { url: `root@127.0.0.1:${dir}`, port: server.port, identity: server.identity, 'host-key': server.hostKey };
    writeFileSync(dep.config, JSON.stringify(config));
  }

  it('reaches CSC, shares inodes with the previous copy, and a damaged copy at CSC is found and repaired', async () => {
    d = await deployment([{ name: 'docs', paths: ['/placeholder'] }]);
    source = join(d.root, 'docs');
    csc = join(d.root, 'csc storage (CSC)');
    mkdirSync(csc);
    writeTree(source, { 'a.txt': 'alpha\n', 'sub/b.bin': Buffer.alloc(100_000, 7), "odd name $HOME 'q'.txt": 'odd\n' });
    overSsh(d, source, csc);

    const first = await d.run('run', '--all', '--json');
    expect(first.code, first.stderr).toBe(0);
    const [id1] = d.snapshots('docs');
    // The first copy's files were read back at CSC as they arrived: its 3 files, the
    // manifest and the summary, none left for the check after the transfer.
    const copied = eventOf(first.stdout, 'copied');
    expect(copied).toMatchObject({ snapshot: id1, readEarly: 5 });
    const copies = recordsOf(d, 'copy');
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({ repository: 'docs', snapshot: { id: id1, target: 'secondary', location: `web01/docs/snapshots/${id1}` }, from: 'primary', to: 'secondary', verified: { method: 'rehash', result: 'ok' } });
    // The copy's digests are those of the backup record: the same snapshot.
    const backup = recordsOf(d, 'backup')[0]!;
    expect(copies[0]!.snapshot.digest).toBe(backup.snapshot.digest);
    expect(copies[0]!.snapshot.manifest).toBe(backup.snapshot.manifest);
    const at = (id: string) => join(csc, 'web01/docs/snapshots', id);
    sameTree(join(d.target, 'web01/docs/snapshots', id1!), at(id1!));

    // A second backup after a change: at CSC, the unchanged file is a hard link to the first copy.
    writeFileSync(join(source, 'a.txt'), 'alpha, changed\n');
    const second = await d.run('run', '--all');
    expect(second.code, second.stderr).toBe(0);
    const [, id2] = d.snapshots('docs');
    const data = (id: string) => join(at(id), 'data', source);
    expect(inodeOf(join(data(id2!), 'sub/b.bin'))).toBe(inodeOf(join(data(id1!), 'sub/b.bin')));
    expect(inodeOf(join(data(id2!), 'a.txt'))).not.toBe(inodeOf(join(data(id1!), 'a.txt')));
    expect(readFileSync(join(data(id2!), 'a.txt'), 'utf8')).toBe('alpha, changed\n');
    // The first copy was compared file by file; the second, its new files by checksum and the
    // rest (hard links to the first copy) by size, time and mode.
    expect(recordsOf(d, 'copy').map((c) => c.verified.scope)).toEqual(['full', 'changed']);
    sameTree(join(d.target, 'web01/docs/snapshots', id2!), at(id2!));

    // One byte flipped at CSC, same size and time: only reading the bytes can tell.
    const damaged = join(data(id2!), 'a.txt');
    const { atime, mtime } = statSync(damaged);
    const bytes = readFileSync(damaged);
    bytes[0] ^= 0x01;
    writeFileSync(damaged, bytes);
    utimesSync(damaged, atime, mtime);
    const third = await d.run('run', '--all');
    expect(third.code, third.stderr).toBe(0);
    const verify = recordsOf(d, 'verify').at(-1)!;
    expect(verify).toMatchObject({ repository: 'docs', reason: 'before-copy', target: 'secondary', method: 'rehash', read: { data: 'all' }, snapshots: [{ id: id2, location: `web01/docs/snapshots/${id2}`, result: 'failed', problems: 1 }], result: 'failed' });
    expect(verify.problems.map((p: { path: string }) => p.path)).toEqual([`data${source}/a.txt`]);
    const repair = recordsOf(d, 'copy').at(-1)!;
    expect(repair).toMatchObject({ snapshot: { id: id2 }, repair: true, verified: { result: 'ok' } });
    expect(readFileSync(damaged, 'utf8')).toBe('alpha, changed\n');
    sameTree(join(d.target, 'web01/docs/snapshots', id2!), at(id2!));
    await verified(d);
  });

  it('refuses a CSC whose host key is not the pinned one, and records why', async () => {
    const config = parse(readFileSync(d.config, 'utf8'));
    const pinned = config.targets.secondary['host-key'];
    // Another key: what an impostor on CSC's address would present.
    const other = join(d.root, 'other_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    config.targets.secondary['host-key'] = readFileSync(`${other}.pub`, 'utf8').trim();
    writeFileSync(d.config, JSON.stringify(config));
    writeFileSync(join(source, 'impostor.txt'), 'x\n');
    const before = d.snapshots('docs');
    const r = await d.run('run', '--all');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot be reached: .*Host key verification failed/);
    expect(recordsOf(d, 'failure').at(-1)).toMatchObject({ stage: 'copy' });
    // Nothing reached the impostor: CSC holds only what it held.
    const fresh = d.snapshots('docs').filter((id) => !before.includes(id));
    expect(readdirSync(join(csc, 'web01/docs/snapshots'))).not.toContain(fresh[0]);
    config.targets.secondary['host-key'] = pinned;
    writeFileSync(d.config, JSON.stringify(config));
    const back = await respaldo(['run', '--config', d.config]);
    expect(back.code, back.stderr).toBe(0);
    expect(readdirSync(join(csc, 'web01/docs/snapshots'))).toContain(fresh[0]);
  });

  it('queues the copies while CSC is unreachable and delivers them all, in order, once it is back', async () => {
    await server.stop();
    const before = d.snapshots('docs');
    for (let i = 1; i <= 3; i++) {
      writeFileSync(join(source, `new-${i}.txt`), `run ${i}\n`);
      const r = await d.run('run', '--all');
      // The backup itself is good; the copy failed: partly done.
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/secondary target .* cannot be reached/);
      const failure = recordsOf(d, 'failure').at(-1)!;
      expect(failure).toMatchObject({ repository: 'docs', stage: 'copy' });
      expect(failure.cause).toContain(`${i} snapshot(s) wait for the secondary target`);
    }
    const waiting = d.snapshots('docs').filter((id) => !before.includes(id));
    expect(waiting).toHaveLength(3);
    const status = await d.run('status');
    expect(status.stdout).toMatch(/docs .*3 pending, oldest \d+ min old/);

    await server.start();
    const copiesBefore = recordsOf(d, 'copy').length;
    const back = await respaldo(['run', '--config', d.config]);
    expect(back.code, back.stderr).toBe(0);
    const delivered = recordsOf(d, 'copy').slice(copiesBefore);
    expect(delivered.map((c) => c.snapshot.id)).toEqual(waiting);
    for (const id of waiting) sameTree(join(d.target, 'web01/docs/snapshots', id), join(csc, 'web01/docs/snapshots', id));
    expect((await d.run('status')).stdout).toMatch(/docs .*up to date/);
    await verified(d);
  });

  it('makes a later copy from the older one as the manifests tell, whatever changed, and leaves the older copy as it was', async () => {
    const e = await deployment([{ name: 'tree', paths: ['/placeholder'] }]);
    const src = join(e.root, 'tree');
    const cscRoot = join(e.root, 'csc');
    mkdirSync(cscRoot);
    writeTree(src, {
      'keep.txt': 'kept\n',
      'same-size.txt': 'aaaa\n',
      'gone.txt': 'gone\n',
      'gone-dir/x.txt': 'x\n',
      'gone-dir/sub/y.txt': 'y\n',
      'file-to-dir': 'a file first\n',
      'dir-to-file/z.txt': 'z\n',
      'mode-dir/inside.txt': 'inside\n',
      'renamed-old.txt': 'renamed\n',
      'big.bin': Buffer.alloc(300_000, 3),
    });
    symlinkSync('keep.txt', join(src, 'link'));
    symlinkSync('keep.txt', join(src, 'link-to-file'));
    overSsh(e, src, cscRoot);
    const first = await e.run('run', '--all');
    expect(first.code, first.stderr).toBe(0);
    const [id1] = e.snapshots('tree');
    const at = (id: string) => join(cscRoot, 'web01/tree/snapshots', id);
    const olderBefore = describeTree(at(id1!));

    // Every kind of change: bytes of the same size, deleted files and folders, a file become
    // a folder and a folder a file, a link retargeted or become a file, a folder's mode, a
    // rename, a new empty folder, a changed block in a large file.
    const sameSize = join(src, 'same-size.txt');
    const { mtimeNs } = statSync(sameSize, { bigint: true });
    writeFileSync(sameSize, 'bbbb\n');
    setMtimeNs(sameSize, mtimeNs + 1_000_000_000n);
    rmSync(join(src, 'gone.txt'));
    rmSync(join(src, 'gone-dir'), { recursive: true });
    rmSync(join(src, 'file-to-dir'));
    writeTree(src, { 'file-to-dir/now-inside.txt': 'now a folder\n' });
    rmSync(join(src, 'dir-to-file'), { recursive: true });
    writeFileSync(join(src, 'dir-to-file'), 'now a file\n');
    rmSync(join(src, 'link'));
    symlinkSync('renamed-new.txt', join(src, 'link'));
    rmSync(join(src, 'link-to-file'));
    writeFileSync(join(src, 'link-to-file'), 'no longer a link\n');
    chmodSync(join(src, 'mode-dir'), 0o700);
    renameSync(join(src, 'renamed-old.txt'), join(src, 'renamed-new.txt'));
    mkdirSync(join(src, 'empty-new'));
    const big = readFileSync(join(src, 'big.bin'));
    big.fill(9, 100_000, 100_100);
    writeFileSync(join(src, 'big.bin'), big);
    const second = await e.run('run', '--all', '--json');
    expect(second.code, second.stderr).toBe(0);
    const [, id2] = e.snapshots('tree');
    sameTree(join(e.target, 'web01/tree/snapshots', id2!), at(id2!));
    // The copy was linked at CSC and sent by name, and needed no second transfer.
    const copied = eventOf(second.stdout, 'copied');
    expect(copied).toMatchObject({ snapshot: id2, seconds: { link: expect.any(Number), transfer: expect.any(Number) } });
    expect(copied.seconds.again).toBeUndefined();
    expect(recordsOf(e, 'copy').map((c) => c.verified.scope)).toEqual(['full', 'changed']);
    // Unchanged files share their inode with the older copy; changed ones do not.
    const data = (id: string, rel: string) => join(at(id), 'data', src, rel);
    expect(inodeOf(data(id2!, 'keep.txt'))).toBe(inodeOf(data(id1!, 'keep.txt')));
    expect(inodeOf(data(id2!, 'same-size.txt'))).not.toBe(inodeOf(data(id1!, 'same-size.txt')));
    expect(readFileSync(data(id2!, 'same-size.txt'), 'utf8')).toBe('bbbb\n');
    // The older copy: every entry as it was, bytes, modes, times and inodes.
    expect(describeTree(at(id1!))).toEqual(olderBefore);
    await verified(e);
  });
});

describe('removing at CSC under a login that is not root', () => {
  it('empties folders that came read-only, and never changes what an older copy shares', () => {
    const root = tempDir();
    chmodSync(root, 0o755);
    const older = join(root, 'older');
    const copy = join(root, 'copy');
    writeTree(older, { 'ro/f.txt': 'f\n', 'ro/deep/g.txt': 'g\n', 'keep/h.txt': 'h\n', 'shared.txt': 's\n' });
    chmodSync(join(older, 'shared.txt'), 0o444);
    execFileSync('chown', ['-R', '65534:65534', root]);
    // Folders as a Go module cache has them: read-only for their owner too.
    for (const dir of ['ro/deep', 'ro', 'keep']) chmodSync(join(older, dir), 0o555);
    const before = describeTree(older);
    // Run from a folder the login cannot enter, as sudo from root's home does.
    const home = join(root, 'home');
    mkdirSync(home, { mode: 0o700 });
    const asNobody = (script: string, args: string[], input?: Buffer) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', script, 'sh', ...args], { cwd: home, ...(input ? { input } : {}) });

    const linked = asNobody(LINK, [copy, older]);
    expect(linked.status, linked.stderr.toString()).toBe(0);
    expect(inodeOf(join(copy, 'keep/h.txt'))).toBe(inodeOf(join(older, 'keep/h.txt')));
    const removed = asNobody(REMOVE, [copy, REMOVE_EACH], Buffer.from('ro/f.txt\0ro/deep\0shared.txt\0'));
    expect(removed.status, removed.stderr.toString()).toBe(0);
    for (const gone of ['ro/f.txt', 'ro/deep', 'shared.txt']) expect(existsSync(join(copy, gone))).toBe(false);
    expect(readFileSync(join(copy, 'keep/h.txt'), 'utf8')).toBe('h\n');
    // The older copy: every file, folder, mode and time as it was.
    expect(describeTree(older)).toEqual(before);

    // And a whole copy goes, read-only folders and all, and folders that cannot be listed.
    writeTree(copy, { 'locked/inner/i.txt': 'i\n' });
    execFileSync('chown', ['-R', '65534:65534', join(copy, 'locked')]);
    chmodSync(join(copy, 'locked/inner'), 0o000);
    chmodSync(join(copy, 'locked'), 0o000);
    const whole = asNobody(`${RMTREE}rmtree "$1"`, [copy]);
    expect(whole.status, whole.stderr.toString()).toBe(0);
    expect(existsSync(copy)).toBe(false);
    expect(describeTree(older)).toEqual(before);
  });
});

describe('the second copy on a local path', () => {
  it('copies every snapshot to a second disk and records it', async () => {
    const d = await deployment([{ name: 'etc', kind: 'config', paths: ['/placeholder'] }]);
    const source = join(d.root, 'etc');
    writeTree(source, { 'nginx.conf': 'worker_processes 2;\n' });
    const second = join(d.root, 'second-disk');
    mkdirSync(second);
    const config = parse(readFileSync(d.config, 'utf8'));
    config.repositories[0].paths = [source];
    config.targets.secondary = second;
    writeFileSync(d.config, JSON.stringify(config));
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);
    const [id] = d.snapshots('etc');
    sameTree(join(d.target, 'web01/etc/snapshots', id!), join(second, 'web01/etc/snapshots', id!));
    expect(recordsOf(d, 'copy')).toHaveLength(1);
    await verified(d);
  });

  it("never carries a file damaged on JAA's disk to CSC: the copy fails naming it, and goes once the file is whole again", async () => {
    const d = await deployment([{ name: 'etc', kind: 'config', paths: ['/placeholder'] }]);
    const source = join(d.root, 'etc');
    writeTree(source, { 'nginx.conf': 'worker_processes 2;\n', 'mime.types': 'text/html html;\n' });
    const config = parse(readFileSync(d.config, 'utf8'));
    config.repositories[0].paths = [source];
    writeFileSync(d.config, JSON.stringify(config));
    expect((await d.run('run', '--all')).code).toBe(0);
    const [id] = d.snapshots('etc');
    // Bit rot on the primary after its backup verified it: same size, same time.
    const stored = join(d.target, 'web01/etc/snapshots', id!, 'data', source, 'nginx.conf');
    const good = readFileSync(stored);
    const rotten = Buffer.from(good);
    rotten[3] ^= 1;
    writeFileSync(stored, rotten);
    execFileSync('touch', ['-r', join(source, 'nginx.conf'), stored]);
    const second = join(d.root, 'second-disk');
    mkdirSync(second);
    config.targets.secondary = second;
    writeFileSync(d.config, JSON.stringify(config));
    const r = await d.run('run');
    expect(r.code).toBe(3);
    const failure = recordsOf(d, 'failure').at(-1)!;
    expect(failure).toMatchObject({ repository: 'etc', stage: 'copy' });
    expect(failure.cause).toContain(`does not match the primary's manifest after the transfer: 1 difference(s); first: data{paths[0]}/nginx.conf: its bytes differ from the manifest's`);
    expect(recordsOf(d, 'copy')).toHaveLength(0);
    expect(readdirSync(join(second, 'web01/etc/snapshots'))).toEqual([]);
    expect(readdirSync(join(second, 'web01/etc/incomplete'))).toEqual([]);
    // JAA puts the file back (from CSC's copy of an older snapshot, say): the copy goes.
    writeFileSync(stored, good);
    execFileSync('touch', ['-r', join(source, 'nginx.conf'), stored]);
    const again = await d.run('run');
    expect(again.code, again.stderr).toBe(0);
    expect(recordsOf(d, 'copy')).toMatchObject([{ snapshot: { id }, verified: { method: 'rehash', scope: 'full', result: 'ok' } }]);
    sameTree(join(d.target, 'web01/etc/snapshots', id!), join(second, 'web01/etc/snapshots', id!));
    await verified(d);
  });
});

describe('secondary target configuration', () => {
  it('refuses an SSH target without a pinned host key, for either target, naming the field', async () => {
    const d = await deployment([{ name: 'etc', kind: 'config', paths: ['/etc/hostname'] }]);
    const config = parse(readFileSync(d.config, 'utf8'));
    config.targets.secondary = 'csc@respaldos.csc.example:/srv/respaldos';
    writeFileSync(d.config, JSON.stringify(config));
    const r = await d.run('run', '--all');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/targets\.secondary.*pin CSC's host key/);
    config.targets.secondary = d.target;
    writeFileSync(d.config, JSON.stringify(config));
    const same = await d.run('run', '--all');
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/targets\.secondary: .* overlap/);
    config.targets.primary = 'csc@host:/srv';
    delete config.targets.secondary;
    writeFileSync(d.config, JSON.stringify(config));
    const remote = await d.run('run', '--all');
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/targets\.primary: pin the target's host key/);
  });
});

describe('pruning both copies', () => {
  it('applies the rules at CSC too, and never deletes JAA\'s copy of a snapshot that has not reached CSC', async () => {
    const { runPrune } = await import('../dist/agent/commands/prune.js');
    const { runRun } = await import('../dist/agent/commands/run.js');
    const { memoryReporter } = await import('../dist/agent/report.js');
    const src = join(tempDir(), 'src');
    writeTree(src, { 'day.txt': 'day 0\n' });
    const d = await deployment([{ name: 'docs', paths: [src], schedule: { every: '1d' }, retention: { 'keep-last': 2 } }], { extra: { timezone: 'UTC' } });
    const csc = join(d.root, 'csc');
    mkdirSync(csc);
    const config = parse(readFileSync(d.config, 'utf8'));
    config.targets.secondary = csc;
    writeFileSync(d.config, JSON.stringify(config));
    let now = new Date('2026-11-02T03:00:00Z').getTime();
    const ctx = { cwd: d.root, env: process.env, now: () => new Date(now), reporter: memoryReporter(), signal: new AbortController().signal };
    const run = () => runRun(ctx, { config: d.config, repos: [], all: false, manual: false, verify: undefined, progress: false });
    const prune = () => runPrune(ctx, { config: d.config, repos: [], apply: true, manual: false });
    const atCsc = () => readdirSync(join(csc, 'web01/docs/snapshots')).sort();
    for (let n = 1; n <= 4; n++) {
      writeFileSync(join(src, 'day.txt'), `day ${n}\n`);
      expect(await run()).toBe(0);
      now += 24 * 3_600_000;
    }
    const all = d.snapshots('docs');
    expect(atCsc()).toEqual(all);
    expect(await prune()).toBe(0);
    expect(d.snapshots('docs')).toEqual(all.slice(2));
    expect(atCsc()).toEqual(all.slice(2));
    const pruned = recordsOf(d, 'prune');
    expect(pruned.map((r) => [r.target, r.deleted])).toEqual([
      ['primary', all.slice(0, 2)],
      ['secondary', all.slice(0, 2)],
    ]);

    // CSC's disk is gone for two days: those two snapshots exist only at JAA's.
    renameSync(csc, `${csc}-away`);
    for (let n = 5; n <= 6; n++) {
      writeFileSync(join(src, 'day.txt'), `day ${n}\n`);
      expect(await run()).toBe(3);
      now += 24 * 3_600_000;
    }
    renameSync(`${csc}-away`, csc);
    const waiting = d.snapshots('docs').slice(-2);
    const config2 = parse(readFileSync(d.config, 'utf8'));
    config2.repositories[0].retention = { 'keep-last': 1 };
    writeFileSync(d.config, JSON.stringify(config2));
    expect(await prune()).toBe(0);
    // keep-last 1 keeps the newest; the other waiting one stays too, for CSC.
    expect(d.snapshots('docs')).toEqual(waiting);
    const primary = recordsOf(d, 'prune').filter((r) => r.target === 'primary').at(-1)!;
    expect(primary.kept.find((k: { id: string }) => k.id === waiting[0]).reasons).toContain('not copied to CSC yet');
    // At CSC, keep-last 1 left the newest copy it had; the next run delivers the two that waited.
    expect(await run()).toBe(0);
    expect(atCsc()).toEqual([all[3], ...waiting]);
    await verified(d);
  });
});
