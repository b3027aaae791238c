/**
 * A primary target on another host, over SSH (a real sshd on loopback): snapshots made
 * there by rsync with --link-dest, listed and read back there, matched against the
 * originals here; dumps and bundles made here and sent; verify at rest, restore and prune
 * against it; an unreachable target recorded as a failure that leaves the previous
 * snapshot as it was.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Deployment, deployment, describeTree, eventOf, flipBit, git, inodeOf, lastRecord, manifestOf, recordsOf, refusedConfig, setMtimeNs, tempDir, usePrimary, withoutInodes, writeTree } from './helpers.js';
import { sshd, type Sshd } from './sshd.js';
import { RemotePrimaryTarget } from '../dist/agent/remote-target.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe('a primary target over SSH', () => {
  let server: Sshd;

  beforeAll(async () => {
    server = await sshd();
  });
  afterAll(async () => {
    await server?.stop();
  });

  /** Points the deployment's primary target at `dir` through the test's sshd; returns where its snapshots of `repo` are. */
  function remotePrimary(dep: Deployment, dir: string, edit?: (config: any) => void): (repo: string) => string {
    usePrimary(dep, { url: `root@127.0.0.1:${dir}`, port: server.port, identity: server.identity, 'host-key': server.hostKey }, edit);
    return (repo) => join(dir, dep.host, repo, 'snapshots');
  }

  it('backs up into it, sends only what changed, and verifies, restores and prunes there', async () => {
    const d = await deployment([{ name: 'docs', paths: ['/placeholder'], retention: { 'keep-last': 2 } } as any]);
    const source = join(d.root, 'docs');
    const disk = join(d.root, "jaa's disk (remote)");
    mkdirSync(disk);
    writeTree(source, { 'a.txt': 'alpha\n', 'sub/b.bin': Buffer.alloc(300_000, 7), 'gone.txt': 'to be deleted\n', "odd name $HOME.txt": 'odd\n' });
    const at = remotePrimary(d, disk, (c) => (c.repositories[0].paths = [source]));

    const first = await d.run('run', '--all');
    expect(first.code, first.stderr).toBe(0);
    const [id1] = readdirSync(at('docs'));
    const data1 = join(at('docs'), id1!, 'data', source);
    // The stored tree is the source's, entry for entry.
    expect(withoutInodes(describeTree(data1))).toEqual(withoutInodes(describeTree(source)));
    expect(existsSync(d.target)).toBe(false);
    const b1 = lastRecord(d);
    expect(b1).toMatchObject({ type: 'backup', repository: 'docs', snapshot: { id: id1, target: 'primary', location: `web01/docs/snapshots/${id1}` }, verification: { checksum: { files: 4, mismatches: 0 } } });
    // The manifest gives each file the digest of its original.
    const manifest = (id: string) => manifestOf(join(at('docs'), id));
    for (const e of manifest(id1!).filter((e) => e.type === 'f')) expect(e.sha256, e.path).toBe(sha256(join('/', e.path)));
    expect(`sha256:${sha256(join(at('docs'), id1!, 'manifest.jsonl'))}`).toBe(b1.snapshot.manifest);
    expect(`sha256:${sha256(join(at('docs'), id1!, 'snapshot.yaml'))}`).toBe(b1.snapshot.digest);

    // A change: one file rewritten, one added, one deleted.
    writeFileSync(join(source, 'a.txt'), 'alpha, second version\n');
    writeFileSync(join(source, 'new.txt'), 'new\n');
    rmSync(join(source, 'gone.txt'));
    const second = await d.run('run', '--all');
    expect(second.code, second.stderr).toBe(0);
    const id2 = readdirSync(at('docs')).sort()[1]!;
    const data2 = join(at('docs'), id2, 'data', source);
    expect(withoutInodes(describeTree(data2))).toEqual(withoutInodes(describeTree(source)));
    // What did not change is the previous snapshot's file (one inode), the rest is new.
    expect(inodeOf(join(data2, 'sub/b.bin'))).toBe(inodeOf(join(data1, 'sub/b.bin')));
    expect(inodeOf(join(data2, 'a.txt'))).not.toBe(inodeOf(join(data1, 'a.txt')));
    expect(readFileSync(join(data1, 'a.txt'), 'utf8')).toBe('alpha\n');
    const b2 = lastRecord(d);
    expect(b2).toMatchObject({ type: 'backup', snapshot: { id: id2 }, previous: { id: id1 }, changed: { files: 2 }, verification: { checksum: { files: 2, mismatches: 0 } } });
    for (const e of manifest(id2).filter((e) => e.type === 'f')) expect(e.sha256, e.path).toBe(sha256(join('/', e.path)));

    // Nothing changed: the comparison runs against the target and records the same snapshot.
    const same = await d.run('run', '--all');
    expect(same.code, same.stderr).toBe(0);
    expect(lastRecord(d)).toMatchObject({ type: 'backup', snapshot: { id: id2 }, unchanged: true });

    // A restore from the target, byte for byte.
    const into = join(tempDir(), 'restored');
    const restored = await d.run('restore', 'docs', '--to', into);
    expect(restored.code, restored.stderr).toBe(0);
    expect(withoutInodes(describeTree(join(into, source)))).toEqual(withoutInodes(describeTree(source)));
    expect(lastRecord(d)).toMatchObject({ type: 'restore', repository: 'docs', snapshot: { id: id2, target: 'primary' }, verification: { files: 4, mismatches: 0 } });
    expect(recordsOf(d, 'media-loan')).toHaveLength(0);

    // Verify at rest reads the files where they lie; one flipped bit there is found.
    const clean = await d.run('verify', '--all', '--read-data');
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    flipBit(join(data2, 'new.txt'));
    const damaged = await d.run('verify', '--all', '--read-data');
    expect(damaged.code).not.toBe(0);
    const v = lastRecord(d);
    expect(v).toMatchObject({ type: 'verify', target: 'primary', result: 'failed' });
    expect(JSON.stringify(v)).toContain('new.txt');

    // Prune at the target: keep-last 2 of three snapshots.
    writeFileSync(join(source, 'a.txt'), 'alpha, third version\n');
    expect((await d.run('run', '--all')).code).not.toBe(2);
    expect(readdirSync(at('docs'))).toHaveLength(3);
    const pruned = await d.run('prune', '--apply');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(readdirSync(at('docs')).sort()).not.toContain(id1);
    expect(readdirSync(at('docs'))).toHaveLength(2);
    expect(recordsOf(d, 'prune').at(-1)).toMatchObject({ repository: 'docs', target: 'primary' });

    // The label reads the snapshot's files on this machine: refused, with what to do.
    const label = await d.run('label', 'docs');
    expect(label.code).toBe(2);
    expect(label.stderr).toMatch(/"respaldo label" needs the primary target on this machine, and .* keeps it at root@127\.0\.0\.1:.* over SSH/);
    const status = await d.run('status');
    expect(status.stdout).toMatch(/docs/);

    // No record names the key or the target's local folders.
    const all = readdirSync(join(d.records, 'hosts/web01'), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => readFileSync(join(d.records, 'hosts/web01', f), 'utf8'))
      .join('\n');
    expect(all).not.toContain(server.identity);
  }, 180_000);

  it('sends a database dump and a git bundle made here, each checked before it is sent', async () => {
    const dbFile = join(tempDir(), 'shop.db');
    const db = new Database(dbFile);
    db.exec('CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)');
    for (let i = 0; i < 50; i++) db.prepare('INSERT INTO orders (item) VALUES (?)').run(`item ${i}`);
    db.close();
    const repo = join(tempDir(), 'app');
    mkdirSync(repo);
    git(repo, 'init', '--quiet', '-b', 'main');
    writeFileSync(join(repo, 'index.html'), '<h1>hola</h1>\n');
    git(repo, 'add', '.');
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@e', 'commit', '--quiet', '-m', 'first');
    git(repo, 'tag', 'v1');
    git(repo, 'checkout', '--quiet', '-b', 'feature');

    const d = await deployment([
      { name: 'shop-db', kind: 'database', engine: 'sqlite', paths: [dbFile] } as any,
      { name: 'app', kind: 'source', paths: [repo] },
    ]);
    const disk = join(d.root, 'remote');
    mkdirSync(disk);
    const at = remotePrimary(d, disk);
    const r = await d.run('run', '--all');
    expect(r.code, r.stderr).toBe(0);

    const [dbId] = readdirSync(at('shop-db'));
    const stored = join(at('shop-db'), dbId!, 'data/sqlite/1-shop.db');
    const copy = new Database(stored, { readonly: true });
    expect(copy.prepare('SELECT count(*) FROM orders').pluck().get()).toBe(50);
    copy.close();
    const backups = recordsOf(d, 'backup');
    expect(backups.find((b) => b.repository === 'shop-db')).toMatchObject({ verification: { level: 'restore', restore: { result: 'ok' }, checksum: { mismatches: 0 } } });
    const code = backups.find((b) => b.repository === 'app')!;
    expect(code).toMatchObject({ verification: { level: 'restore', checksum: { mismatches: 0 } } });
    expect(code.git.repositories[0].refs.map((x: { name: string }) => x.name).sort()).toEqual(['refs/heads/feature', 'refs/heads/main', 'refs/tags/v1']);
    const [appId] = readdirSync(at('app'));
    const bundles = readdirSync(join(at('app'), appId!, 'data'), { recursive: true }).map(String).filter((f) => f.endsWith('.bundle'));
    expect(bundles).toHaveLength(1);
    // The dump comes back from the target as it was stored, checked against the manifest.
    const into = join(tempDir(), 'dump');
    const restored = await d.run('restore', 'shop-db', '--to', into);
    expect(restored.code, restored.stderr).toBe(0);
    expect(sha256(join(into, 'sqlite/1-shop.db'))).toBe(sha256(stored));
    // Nothing was left in the staging folder here.
    expect(readdirSync(join(d.root, 'state/staging/web01/app'))).toEqual([]);
  }, 120_000);

  it('links a later snapshot from the previous one at the target, and never removes through a link', async () => {
    const root = tempDir();
    const target = new RemotePrimaryTarget({ kind: 'ssh', user: 'root', host: '127.0.0.1', path: join(root, 'disk'), port: server.port, identity: server.identity, hostKey: server.hostKey, knownHosts: undefined }, join(root, 'state'));
    const store = target.repository('web01', 'docs');
    const previous = join(root, 'disk/web01/docs/snapshots/20261101T000000Z/data');
    writeTree(previous, { 'keep.txt': 'keep\n', 'stale.txt': 'old\n', 'dir/stale.bin': 'old\n', 'dir/keep.bin': 'keep\n' });
    const outside = join(root, 'outside');
    writeTree(outside, { 'precious.txt': 'must stay\n' });
    symlinkSync(outside, join(previous, 'link'));
    const signal = new AbortController().signal;
    try {
      await store.prepare();
      const id = '20261102T000000Z';
      await store.begin(id);
      expect(await store.linkPrevious('20261101T000000Z', id, [Buffer.from('stale.txt'), Buffer.from('dir/stale.bin')], signal)).toBe(true);
      const data = join(root, 'disk/web01/docs/incomplete', id, 'data');
      expect([...describeTree(data).keys()].sort()).toEqual(['dir', 'dir/keep.bin', 'keep.txt', 'link']);
      expect(inodeOf(join(data, 'dir/keep.bin'))).toBe(inodeOf(join(previous, 'dir/keep.bin')));
      expect(readFileSync(join(previous, 'stale.txt'), 'utf8')).toBe('old\n');
      // A stale name through a link of the tree: nothing is removed there, the data folder is left empty.
      const id2 = '20261103T000000Z';
      await store.begin(id2);
      expect(await store.linkPrevious('20261101T000000Z', id2, [Buffer.from('link/precious.txt')], signal)).toBe(false);
      expect(readFileSync(join(outside, 'precious.txt'), 'utf8')).toBe('must stay\n');
      expect(readdirSync(join(root, 'disk/web01/docs/incomplete', id2, 'data'))).toEqual([]);
      expect(await store.linkPrevious('20261101T000000Z', id2, [Buffer.from('../escape')], signal)).toBe(false);
    } finally {
      await target.close();
    }
  }, 60_000);

  it('copies from it to CSC through this machine, a later copy linked at CSC, and restores from CSC when its copy is gone', async () => {
    const d = await deployment([{ name: 'tree', paths: ['/placeholder'] }]);
    const source = join(d.root, 'tree');
    writeTree(source, { 'keep.txt': 'keep\n', 'change.txt': 'v1\n', 'gone.txt': 'gone\n', 'sub/big.bin': Buffer.alloc(200_000, 3), 'odd name $x.txt': 'odd\n', 'file-to-dir': 'file\n' });
    symlinkSync('keep.txt', join(source, 'link'));
    setMtimeNs(join(source, 'keep.txt'), 1_700_000_000_123_456_789n);
    const disk = join(d.root, 'jaa');
    const csc = join(d.root, 'csc');
    mkdirSync(disk);
    mkdirSync(csc);
    const at = remotePrimary(d, disk, (c) => {
      c.repositories[0].paths = [source];
      c.targets.secondary = { url: `root@127.0.0.1:${csc}`, port: server.port, identity: server.identity, 'host-key': server.hostKey };
    });
    const atCsc = (id: string) => join(csc, 'web01/tree/snapshots', id);
    const first = await d.run('run', '--all', '--json');
    expect(first.code, first.stderr).toBe(0);
    const [id1] = readdirSync(at('tree'));
    // CSC's copy is the primary's snapshot entry for entry: modes, times to the nanosecond, links.
    expect(withoutInodes(describeTree(atCsc(id1!)))).toEqual(withoutInodes(describeTree(join(at('tree'), id1!))));
    const copies = recordsOf(d, 'copy');
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatchObject({ snapshot: { id: id1, target: 'secondary' }, verified: { method: 'rehash', result: 'ok', scope: 'full' } });

    writeFileSync(join(source, 'change.txt'), 'v2\n');
    rmSync(join(source, 'gone.txt'));
    rmSync(join(source, 'file-to-dir'));
    writeTree(join(source, 'file-to-dir'), { 'inside.txt': 'now a folder\n' });
    writeFileSync(join(source, 'new.txt'), 'new\n');
    const olderAtCsc = describeTree(atCsc(id1!));
    const second = await d.run('run', '--all', '--json');
    expect(second.code, second.stderr).toBe(0);
    const id2 = readdirSync(at('tree')).sort()[1]!;
    expect(withoutInodes(describeTree(atCsc(id2)))).toEqual(withoutInodes(describeTree(join(at('tree'), id2))));
    const copied = eventOf(second.stdout, 'copied');
    expect(copied).toMatchObject({ snapshot: id2, seconds: { link: expect.any(Number), transfer: expect.any(Number) } });
    expect(copied.seconds.again).toBeUndefined();
    expect(recordsOf(d, 'copy').map((c) => c.verified.scope)).toEqual(['full', 'changed']);
    const data = (id: string) => join(atCsc(id), 'data', source);
    expect(inodeOf(join(data(id2), 'sub/big.bin'))).toBe(inodeOf(join(data(id1!), 'sub/big.bin')));
    expect(inodeOf(join(data(id2), 'change.txt'))).not.toBe(inodeOf(join(data(id1!), 'change.txt')));
    expect(describeTree(atCsc(id1!))).toEqual(olderAtCsc);

    // JAA's copy of the newest snapshot is gone: the restore borrows CSC's, and says so.
    rmSync(join(at('tree'), id2), { recursive: true });
    const into = join(tempDir(), 'restored');
    const restored = await d.run('restore', 'tree', '--snapshot', id2, '--to', into);
    expect(restored.code, restored.stderr).toBe(0);
    expect(withoutInodes(describeTree(join(into, source)))).toEqual(withoutInodes(describeTree(source)));
    expect(recordsOf(d, 'media-loan').at(-1)).toMatchObject({ snapshot: id2, from: 'secondary' });
  }, 180_000);

  it('records a failure when the target cannot be reached, and the previous snapshot stays as it was', async () => {
    const d = await deployment([{ name: 'docs', paths: ['/placeholder'] }]);
    const source = join(d.root, 'docs');
    writeTree(source, { 'a.txt': 'alpha\n' });
    const disk = join(d.root, 'remote');
    mkdirSync(disk);
    const at = remotePrimary(d, disk, (c) => (c.repositories[0].paths = [source]));
    expect((await d.run('run', '--all')).code).toBe(0);
    const before = describeTree(at('docs'));

    writeFileSync(join(source, 'a.txt'), 'changed\n');
    await server.stop();
    try {
      const down = await d.run('run', '--all');
      expect(down.code).toBe(3);
      expect(down.stderr).toMatch(/the primary target root@127\.0\.0\.1:.* cannot be reached/);
      expect(lastRecord(d)).toMatchObject({ type: 'failure', repository: 'docs', stage: 'target' });
      expect(lastRecord(d).cause).toMatch(/cannot be reached/);
    } finally {
      await server.start();
    }
    expect(describeTree(at('docs'))).toEqual(before);
    // A disk that is not mounted at the target: the host's folder is missing, the run says so.
    renameSync(join(disk, 'web01'), join(disk, 'elsewhere'));
    const unmounted = await d.run('run', '--all');
    expect(unmounted.code).toBe(3);
    expect(unmounted.stderr).toMatch(/the primary target root@127\.0\.0\.1:.* has no folder for host web01, yet record \d+ keeps snapshot .* there: is the backup disk mounted\?/);
    expect(existsSync(join(disk, 'web01'))).toBe(false);
    renameSync(join(disk, 'elsewhere'), join(disk, 'web01'));
    const back = await d.run('run', '--all');
    expect(back.code, back.stderr).toBe(0);
    expect(readdirSync(at('docs'))).toHaveLength(2);
  }, 120_000);
});

describe('a remote primary target: what the config refuses', () => {
  const base = 'host: web01\nkey: /k\nrecords: /r\nstate: /tmp/respaldo-state\n';
  const hostKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ8m2 jaa';

  const check = refusedConfig;

  it('wants the host key pinned, and refuses an rsync daemon as CSC after a remote primary, and point-in-time recovery on it', async () => {
    const repo = 'repositories:\n  - name: a\n    kind: files\n    paths: [/a]\n';
    expect(await check('unpinned.yaml', `${base}targets:\n  primary: jaa@disk.example:/srv\n${repo}`)).toMatch(/unpinned\.yaml:6: targets\.primary: pin the target's host key: write the target as \{ url: jaa@disk\.example:\/srv, host-key:/);
    const remote = `targets:\n  primary: { url: "jaa@disk.example:/srv", host-key: "${hostKey}" }\n`;
    expect(await check('daemon-csc.yaml', `${base}${remote}  secondary: rsync://csc.example/respaldos\n${repo}`)).toMatch(/daemon-csc\.yaml:7: targets\.secondary: the primary target is remote \(jaa@disk\.example:\/srv\), and an rsync daemon's copies are compared with the primary's snapshot on this machine/);
    expect(await check('pitr.yaml', `${base}${remote}repositories:\n  - name: pg\n    kind: database\n    engine: postgresql\n    pitr: true\n    databases: [shop]\n`)).toMatch(/pitr\.yaml:\d+: repositories\[0\]\.pitr: point-in-time recovery needs the primary target on this machine/);
  });
});
